#ifndef QPROXY_CONTROL_H
#define QPROXY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "message.h"
#include "proxy.h"

/*
 * The control channel between the halves, on vsock control_port: the host half
 * listens (for its enclave's CID only), the enclave half connects and keeps
 * reconnecting. Over it: each side's rules, compared and every difference
 * logged on both sides; the enclave's log lines, kept in a ring while the link
 * is down; heartbeats; and the enclave's counters, for `qproxy status` (status.h).
 */

struct control_opts {
	enum proxy_role role;
	uint32_t peer_cid;
	uint32_t port;
};

struct control;

struct control *control_new(struct loop *l, const struct config *c, struct proxy *px,
			    const struct control_opts *o);
/* Host: listen on the control port. Enclave: start connecting. */
int control_start(struct control *ctl, char *err, size_t errlen);
void control_free(struct control *ctl);

/* Host: is the enclave half linked (its HELLO received)? *version: its version then. */
bool control_linked(const struct control *ctl, const char **version);

/* Host: how many links the enclave half has established, the first and each one since. */
unsigned long control_links(const struct control *ctl);

/*
 * Host: ask the enclave half for its counters. done(arg, m) is called once, with its
 * STATS message (m->stats, m->nstats; its egress counters in m->egress) when it arrives,
 * or with m NULL when the link goes down first. Several may wait at once (the status
 * server, scrapes), each answered by the first reply to its question or a later one; an
 * unanswered question a moment old is joined, not asked again. Nothing waits for ever:
 * the caller keeps its own deadline and cancels. -1 when the enclave half is not linked,
 * the question cannot be sent, or too many wait already.
 */
typedef void control_stats_fn(void *arg, const struct msg *m);
/* Who may wait at once: the status server and every scrape the metrics endpoint takes. */
#define CONTROL_STATS_WAITERS 32
int control_ask_stats(struct control *ctl, control_stats_fn *done, void *arg);
/* Forget every question arg waits on: its done will not be called. */
void control_cancel_stats(struct control *ctl, void *arg);

/* Enclave: the egress counters its STATS carry, the busiest first; none without this. */
struct egress_stats;
void control_set_egress(struct control *ctl, const struct egress_stats *egress);

/*
 * Enclave: the supervised app's state changed (supervisor.h): it goes to the host
 * half now, or when the link is next up, after the log lines waiting for it.
 */
void control_set_app(struct control *ctl, const struct msg_app *a);

/*
 * The app's state: the enclave half's own, or on the host the enclave's last word
 * on it, its uptime counted on to now. false when there is no app (none said yet).
 * For `qproxy status` and whoever else reports on the app.
 */
bool control_app(const struct control *ctl, struct msg_app *a);

/* Enclave: everything queued (log lines, the app's state) handed to the linked host half. */
bool control_drained(const struct control *ctl);

#endif
