#include "clocksync.h"

enum clocksync_verdict clocksync_judge(const struct clocksync_sample *s, int64_t *offset_ns)
{
	if (s->rtt_ns < 0 || s->rtt_ns > CLOCKSYNC_MAX_RTT_NS)
		return CLOCKSYNC_SLOW;
	/* The host read its clock rtt/2 ago, give or take rtt/2. */
	int64_t off = s->host_ns + s->rtt_ns / 2 - s->local_ns;
	*offset_ns = off;
	int64_t mag = off < 0 ? -off : off;
	/* Only a step that is surely needed: the offset less its possible error. */
	return mag - s->rtt_ns / 2 > CLOCKSYNC_THRESHOLD_NS ? CLOCKSYNC_STEP : CLOCKSYNC_CLOSE;
}
