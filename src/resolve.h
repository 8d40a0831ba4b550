#ifndef QPROXY_RESOLVE_H
#define QPROXY_RESOLVE_H

#include <netdb.h>
#include <stdint.h>

#include "loop.h"

/*
 * Name resolution off the event loop: getaddrinfo() blocks, and musl has no
 * asynchronous resolver, so worker threads run it and hand results back
 * through a pipe that the loop polls. A lookup that finds no worker idle
 * starts one, up to RESOLVE_WORKERS_MAX; a worker idle for a while ends. So a
 * slow lookup holds up no other one, unless RESOLVE_WORKERS_MAX of them are
 * stuck at once: then new lookups wait for a worker.
 *
 * Every lookup ends by its deadline all the same, whatever the resolver's own
 * timeouts (resolv.conf's, which we do not control): with no answer by then it
 * fails, and its worker's late answer is dropped when it comes.
 */
#define RESOLVE_WORKERS_MAX 64

struct resolve_req;

/*
 * ai is the callee's (freeaddrinfo), NULL when err is set. err says why the
 * lookup failed: the resolver's message, or "no answer within N s". Once it
 * is called the request is gone: do not cancel it.
 */
typedef void resolve_fn(void *arg, struct addrinfo *ai, const char *err);

/*
 * Look up host (port for the addresses), family AF_UNSPEC, AF_INET or AF_INET6;
 * fn is called from the loop within timeout_ms. NULL with errno on failure.
 */
struct resolve_req *resolve_start(struct loop *l, const char *host, uint16_t port, int family,
				  int64_t timeout_ms, resolve_fn *fn, void *arg);

/* The callback will not be called; the request is freed when its worker is done. */
void resolve_cancel(struct resolve_req *rq);

#endif
