#ifndef QPROXY_RESOLVE_H
#define QPROXY_RESOLVE_H

#include <netdb.h>
#include <stdint.h>

#include "loop.h"

/*
 * Name resolution off the event loop: getaddrinfo() blocks, and musl has no
 * asynchronous resolver, so a few worker threads run it and hand results back
 * through a pipe that the loop polls. Slow lookups never hold up other connections.
 */
struct resolve_req;

/* ai is owned by the callee (freeaddrinfo), NULL when gai_err is set. */
typedef void resolve_fn(void *arg, struct addrinfo *ai, int gai_err);

/* family: AF_UNSPEC, AF_INET or AF_INET6. NULL with errno on failure. */
struct resolve_req *resolve_start(struct loop *l, const char *host, uint16_t port, int family,
				  resolve_fn *fn, void *arg);

/* The callback will not be called; the request is freed when its worker is done. */
void resolve_cancel(struct resolve_req *rq);

#endif
