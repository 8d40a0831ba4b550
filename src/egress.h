#ifndef QPROXY_EGRESS_H
#define QPROXY_EGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "egress_wire.h"
#include "loop.h"
#include "policy.h"
#include "proxy.h"

/*
 * Egress by policy, the host half: a listener on [egress] vsock_port takes the
 * enclave half's connections, each opening with a request (egress_wire.h) for
 * a host and port. The policy is checked again here, the name resolved off the
 * loop, every address it gives checked (policy_check_addr: no name opens the
 * metadata service, loopback or this host), then connected; the reply says
 * how it went, and on success the usual relay follows.
 *
 * Either half keeps counters per destination ("host:port"): at most
 * EGRESS_DESTS_MAX of them, and the rest in one "(others)" entry.
 */
#define EGRESS_DESTS_MAX 256
#define EGRESS_DEST_LEN (POLICY_NAME_MAX + 12) /* "[name]:65535" */
/* A request must have come whole within this. */
#define EGRESS_REQUEST_TIMEOUT_MS 5000

struct egress_dest {
	char name[EGRESS_DEST_LEN];
	unsigned long open, total, denied;
	unsigned long refused;	       /* by [egress] max_connections */
	uint64_t bytes_up, bytes_down; /* up: towards the destination */
};

/* Each entry allocated once: a connection holds on to its own. */
struct egress_stats {
	struct egress_dest **v;
	size_t n, cap;
	struct egress_dest others;
};

/* The entry of host:port, made if need be; never NULL (the "(others)" one at worst). */
struct egress_dest *egress_stats_get(struct egress_stats *s, const char *host, uint16_t port);
/* Up to max entries, busiest first (most connections, then most bytes), into out. */
size_t egress_stats_top(const struct egress_stats *s, const struct egress_dest **out, size_t max);
void egress_stats_free(struct egress_stats *s);
/*
 * The busiest max (at most MSG_EGRESS_MAX) entries as the control and status messages
 * carry them, in a new array (*out, NULL when none). How many, or -1 when out of memory.
 */
struct msg_egress;
long egress_stats_msg(const struct egress_stats *s, size_t max, struct msg_egress **out);

/* "host:port", "[v6]:port" */
const char *egress_dest_str(const char *host, uint16_t port, char *buf, size_t size);

/*
 * Connect *fd to sa and watch it in l: 1 when it connected at once; 0 when it
 * goes on, fn to be called on POLLOUT and t armed for ms; -1 with errno, *fd
 * then -1 or the caller's to close.
 */
int egress_connect(struct loop *l, const struct sockaddr *sa, socklen_t len, int *fd,
		   loop_io_fn *fn, void *arg, struct loop_timer *t, int64_t ms);

/*
 * Take every connection waiting on the listener fd, up to a batch, handing each
 * to start. Out of fds or memory, the listener pauses (net_accept_or_pause),
 * said at most every 10 s through *last_log.
 */
typedef void egress_accept_fn(void *arg, int fd, const struct sockaddr_storage *peer,
			      socklen_t plen);
void egress_accept_all(struct loop *l, int fd, egress_accept_fn *start, void *arg,
		       int64_t *last_log);

struct egress_server;

/* NULL when out of memory; a config without [egress] makes one that does nothing. */
struct egress_server *egress_server_new(struct loop *l, const struct config *c,
					const struct proxy_opts *o);
/* Listen on the vsock port, if the config has [egress]: 0, or -1 with err. */
int egress_server_listen(struct egress_server *s, char *err, size_t errlen);
/* Close the listener and every connection. NULL is fine. */
void egress_server_free(struct egress_server *s);
const struct egress_stats *egress_server_stats(const struct egress_server *s);

#endif
