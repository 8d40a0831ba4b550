#ifndef QPROXY_CLOCKSYNC_H
#define QPROXY_CLOCKSYNC_H

#include <stdint.h>

/*
 * The enclave's clock against the host's, from one question and its answer over
 * the control link: the enclave asks, the host answers at once with its
 * CLOCK_REALTIME. The answer was read somewhere within the round trip, so taking
 * it as read halfway errs by at most half the round trip. Pure: numbers in, a
 * verdict out; the caller sets the clock.
 */

/* A sample whose round trip is longer says too little: skipped. */
#define CLOCKSYNC_MAX_RTT_NS (500 * 1000000LL)
/* Off by more than this, beyond the sample's error: stepped. */
#define CLOCKSYNC_THRESHOLD_NS (100 * 1000000LL)

struct clocksync_sample {
	int64_t rtt_ns;	  /* from the question sent to the answer read, monotonic */
	int64_t host_ns;  /* the host's CLOCK_REALTIME in the answer */
	int64_t local_ns; /* ours when the answer was read */
};

enum clocksync_verdict {
	CLOCKSYNC_SLOW,	 /* round trip too long (or negative): skip the sample */
	CLOCKSYNC_CLOSE, /* within the threshold, or within the sample's error of it */
	CLOCKSYNC_STEP,	 /* step the clock by *offset_ns */
};

/* *offset_ns: what to add to our clock to match the host's (set for CLOSE and STEP). */
enum clocksync_verdict clocksync_judge(const struct clocksync_sample *s, int64_t *offset_ns);

#endif
