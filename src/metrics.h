#ifndef QPROXY_METRICS_H
#define QPROXY_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "control.h"
#include "loop.h"
#include "proxy.h"

/*
 * The host half's Prometheus endpoint (--metrics, [host] metrics): a small HTTP/1.x
 * server on the event loop. GET or HEAD /metrics answers 200 with the text format
 * (version 0.0.4); another path 404, another method 405, a malformed head 400, one
 * over METRICS_HEAD_MAX 431; one request per connection, then it is closed. Nothing
 * is gathered until a scrape asks: this half's figures from its proxy, egress and
 * control link (the enclave's app as the link last told it), the enclave half's over
 * the link (waited for at most METRICS_ENCLAVE_WAIT_MS, then left out and
 * qproxy_enclave_stats_up says 0), and the sources' own.
 *
 * Each client has METRICS_CLIENT_MS to send its head and again to take the answer,
 * or it is dropped; past METRICS_CLIENTS at once, a new one gets a 503 and is closed.
 * Writes never block: what the socket does not take waits for POLLOUT.
 */
#define METRICS_HEAD_MAX 8192
#define METRICS_CLIENTS 16
#define METRICS_CLIENT_MS 5000
#define METRICS_ENCLAVE_WAIT_MS 1000

/*
 * The writer, for the families here and those of other modules: a growing buffer
 * that records running out of memory, checked once when the page is done.
 */
struct metrics_buf {
	char *p;
	size_t len, cap;
	bool nomem;
};

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

/* "# HELP name help" and "# TYPE name type": once per family, before its samples. */
void metrics_family(struct metrics_buf *b, const char *name, enum metrics_type type,
		    const char *help);
/*
 * One sample, "name{k1="v1",k2="v2"} value": labels as key and value strings in turn,
 * ended by NULL; each value escaped as the format wants (\\, \" and \n).
 */
void metrics_sample(struct metrics_buf *b, const char *name, uint64_t value, ...)
    __attribute__((sentinel));
/* printf onto the end of b. */
void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The head of a request in buf[0, len): 0 while it may still become a whole one, else
 * the status to answer: 200 for GET or HEAD of /metrics (a query string is ignored),
 * 404 another path, 405 another method, 400 a head HTTP/1.x would not send, 431 one
 * still incomplete at METRICS_HEAD_MAX bytes. *head: the method was HEAD.
 */
int metrics_parse_request(const char *buf, size_t len, bool *head);

struct metrics;

/*
 * Another module's families (the supervisor's, egress'...): write(arg, b) is called at
 * each scrape, after the built-in ones, and writes whole families with the writer.
 */
typedef void metrics_write_fn(void *arg, struct metrics_buf *b);

/* NULL when out of memory. */
struct metrics *metrics_new(struct loop *l, const struct config *c, struct proxy *px,
			    struct control *ctl);
/* -1 when out of room (a handful of sources fit). */
int metrics_add_source(struct metrics *m, metrics_write_fn *write, void *arg);
/* Listen at sa (net_parse_ip_port()); err says where and why not: "bind tcp 127.0.0.1:9464: ..." */
int metrics_start(struct metrics *m, const struct sockaddr *sa, socklen_t len, char *err,
		  size_t errlen);
/* The port listened on, 0 before metrics_start(). */
uint16_t metrics_port(const struct metrics *m);
/* Close the listener and every client. NULL is fine. */
void metrics_free(struct metrics *m);

/* The host half's egress counters (egress_server_stats()), read at each scrape; none without. */
struct egress_stats;
void metrics_set_egress(struct metrics *m, const struct egress_stats *egress);

/*
 * The page a scrape gets, into b: enclave is the enclave half's STATS (its rules' and
 * egress counters), NULL when they did not come.
 */
void metrics_write(struct metrics *m, struct metrics_buf *b, const struct msg *enclave);

#endif
