#ifndef QPROXY_PROXY_H
#define QPROXY_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"

enum proxy_role { PROXY_HOST, PROXY_ENCLAVE };

struct proxy_opts {
	enum proxy_role role;
	uint32_t peer_cid; /* host: the enclave's CID; enclave: the parent's */
	int family;        /* host, outbound names: AF_UNSPEC, AF_INET or AF_INET6 */
};

/*
 * Why a connection failed: its far side could not be reached or refused what was
 * sent first (CONNECT), its name did not resolve, its client's PROXY header was bad
 * or missing (HEADER), it ended on an error other than the client leaving (RELAY),
 * or this half ran out of something (INTERNAL: memory, fds for its timers).
 */
enum proxy_fail {
	PROXY_FAIL_CONNECT,
	PROXY_FAIL_RESOLVE,
	PROXY_FAIL_HEADER,
	PROXY_FAIL_RELAY,
	PROXY_FAIL_INTERNAL,
	PROXY_FAILS
};
/* "connect", "resolve", "proxy_header", "relay", "internal" */
extern const char *const proxy_fail_names[PROXY_FAILS];

/* Counters of one rule in this half. */
struct proxy_stats {
	unsigned long open, total, failed; /* failed: the sum of failed_by */
	unsigned long failed_by[PROXY_FAILS];
	unsigned long refused; /* by max_connections */
	uint64_t bytes_up, bytes_down; /* up: towards the server of the rule */
};

/*
 * The listeners of one half, one per rule, and the connections they accept:
 * each is connected to its rule's far side and then relayed.
 */
struct proxy;

struct proxy *proxy_new(struct loop *l, const struct config *c, const struct proxy_opts *o);
/* Open every listener, or none: on failure err names the rule and the cause. */
int proxy_listen(struct proxy *px, char *err, size_t errlen);
/* Close the listeners (and emulated socket files); open connections go on. */
void proxy_close(struct proxy *px);
void proxy_free(struct proxy *px);

size_t proxy_rules(const struct proxy *px);
/* Rule i's counters as they stand: bytes of connections that have closed. */
const struct proxy_stats *proxy_stats(const struct proxy *px, size_t i);
/*
 * Every rule's counters as the control link, status and metrics carry them, one per
 * rule in out: with the rule's vsock_port and max_connections, and the bytes of open
 * connections too, so that they grow as bytes flow rather than at each close. One pass
 * over the open connections.
 */
struct msg_stat;
void proxy_stats_msg(const struct proxy *px, struct msg_stat *out);

#endif
