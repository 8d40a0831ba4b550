#ifndef QPROXY_STATUS_H
#define QPROXY_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "control.h"
#include "loop.h"
#include "proxy.h"

/*
 * `qproxy status`: the host half answers on a Unix socket, root only in a
 * root-only directory, with one MSG_STATUS message (message.h) and closes;
 * the client prints it as a table. The host half's counters come from its
 * proxy, the enclave half's from the control link, asked for each question.
 */
#define STATUS_PATH_DEFAULT "/run/qproxy/host.sock"

enum status_start_result {
	STATUS_STARTED = 0,
	/* No status socket, for a reason err gives: the host half does its job without it. */
	STATUS_UNAVAILABLE = -1,
	/* The socket's directory is one others can write: the host half must not start. */
	STATUS_UNSAFE_DIR = -2,
};

struct status_server;

/* enclave_cid: what the reply says the host half serves. NULL when out of memory. */
struct status_server *status_new(struct loop *l, const struct config *c, struct proxy *px,
				 struct control *ctl, uint32_t enclave_cid);
/* The host half's egress counters, for the reply's egress view; none without this. */
struct egress_stats;
void status_set_egress(struct status_server *s, const struct egress_stats *egress);

/* Listen at path, creating its directory (0700) and the missing ones above it (0755). */
enum status_start_result status_start(struct status_server *s, const char *path, char *err,
				      size_t errlen);
/* Closes the socket, removes its file, and drops clients still waiting. NULL is fine. */
void status_free(struct status_server *s);

/* The client: ask the host half at path, print the table to out. 0, or -1 with err. */
int status_query(const char *path, FILE *out, char *err, size_t errlen);

#endif
