#ifndef QPROXY_LOGRATE_H
#define QPROXY_LOGRATE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Log lines that repeat, said at most once per window per key: a DNS resolver's
 * retries, or an app that asks for a denied name every second, would otherwise
 * fill the log with one line each. The first time a key is seen it is said; until
 * window ms have passed it is counted; the next time after that it is said again,
 * with the count. LOGRATE_KEYS keys are remembered; a new one takes the place of
 * the one said longest ago, and that one's count is lost.
 */
#define LOGRATE_KEYS 32
#define LOGRATE_KEY_MAX 253

struct lograte {
	int64_t window; /* ms */
	struct {
		char key[LOGRATE_KEY_MAX + 1];
		int64_t said; /* loop time it was last said; 0: an empty slot */
		unsigned long unsaid;
	} seen[LOGRATE_KEYS];
};

/*
 * Whether to say key now (ms, monotonic, above 0); when so, *unsaid is how many
 * times it came since it was last said. A key longer than LOGRATE_KEY_MAX is
 * known by its first LOGRATE_KEY_MAX bytes.
 */
bool lograte_say(struct lograte *r, const char *key, int64_t now, unsigned long *unsaid);

/*
 * One kind of line (refusals for max_connections, say), said at most once per
 * `every` ms, each time with how many came since the last one said, this one
 * included. Zeroed, it says the first at once.
 */
struct logcount {
	int64_t said; /* loop time it was last said; 0: never */
	unsigned long count;
};

/* Count one; whether to say it now, and then *count, how many the line stands for. */
bool logcount_say(struct logcount *c, int64_t now, int64_t every, unsigned long *count);

#endif
