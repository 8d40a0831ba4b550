#ifndef QPROXY_CONTROL_H
#define QPROXY_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "loop.h"
#include "proxy.h"

/*
 * The control channel between the halves, on vsock control_port: the host half
 * listens (for its enclave's CID only), the enclave half connects and keeps
 * reconnecting. Over it: each side's rules, compared and every difference
 * logged on both sides; the enclave's log lines, kept in a ring while the link
 * is down; heartbeats; and the enclave's counters for `qproxy status`, which
 * asks the host half over a local Unix socket.
 */
#define CONTROL_STATUS_PATH "/run/qproxy/host.sock"

struct control_opts {
	enum proxy_role role;
	uint32_t peer_cid;
	uint32_t port;
	const char *status_path; /* host: the status socket, NULL for none */
};

struct control;

struct control *control_new(struct loop *l, const struct config *c, struct proxy *px,
			     const struct control_opts *o);
/* Host: listen on the control port and the status socket. Enclave: start connecting. */
int control_start(struct control *ctl, char *err, size_t errlen);
void control_free(struct control *ctl);

/* The `qproxy status` client: ask the host half at path, print to out. 0, or -1 with err. */
int control_status(const char *path, FILE *out, char *err, size_t errlen);

/*
 * Every difference between the host's rules and the enclave's, one line each,
 * handed to emit; rules are matched by vsock_port. Returns how many there were.
 */
size_t control_diff(const struct rule *host, size_t nhost, const struct rule *enclave,
		    size_t nenclave, void (*emit)(void *arg, const char *line), void *arg);

#endif
