#ifndef QPROXY_EGRESS_PROXY_H
#define QPROXY_EGRESS_PROXY_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "egress.h"
#include "loop.h"
#include "proxy.h"

/*
 * Egress by policy, the enclave half: where applications' connections to the
 * outside come in, and go on to the host half's [egress] vsock_port (egress.h).
 *
 * The proxy: on 127.0.0.1:proxy_port, HTTP CONNECT, plain http:// requests in
 * absolute form (one per connection) and SOCKS5, told apart by the first byte
 * (proxyreq.h). Each request is checked against this half's own policy before
 * the host half is asked; a refusal is answered as HTTP and SOCKS5 say: denied
 * 403 / 0x02, no such name 502 / 0x04, refused 502 / 0x05, timeout 504 / 0x04.
 *
 * The DNS mode's other door: egress_proxy_map() gives a name the policy allows
 * on explicit ports an address of its own in EGRESS_DNS_NET, and listens there
 * on each of those ports; a connection to one is an egress connection to that
 * name and port, with no request to parse.
 */
#define EGRESS_DNS_NET 0x7f640000u /* 127.100.0.0/16, host byte order */
#define EGRESS_DNS_NAMES_MAX 65000 /* the addresses 127.100.0.1 and on */
/* A client's whole request head must come within this. */
#define EGRESS_HEAD_TIMEOUT_MS 10000
/* The host half's reply must come within this: a lookup, then a connect per address. */
#define EGRESS_REPLY_TIMEOUT_MS 30000

struct egress_proxy;

struct egress_proxy *egress_proxy_new(struct loop *l, const struct config *c,
				      const struct proxy_opts *o);
/*
 * Listen on 127.0.0.1:proxy_port, if the config sets it; with dns = true, the
 * DNS server (dns.h) on 127.0.0.1:53, and resolv_conf pointed at it. 0, or -1
 * with err.
 */
int egress_proxy_listen(struct egress_proxy *ep, char *err, size_t errlen);
/* Close the listeners and every connection. NULL is fine. */
void egress_proxy_free(struct egress_proxy *ep);
const struct egress_stats *egress_proxy_stats(const struct egress_proxy *ep);

enum egress_map_result {
	EGRESS_MAPPED,	    /* *addr is the name's, listened on for each of its ports */
	EGRESS_DENIED_NAME, /* the policy allows the name on no explicit port (logged) */
	EGRESS_MAP_FAILED,  /* no address or listener could be had (logged) */
};

/*
 * The DNS mode's answer for name: the same address for as long as the half
 * runs, and a listener on it for every port policy_name_ports() gives, each
 * open before this returns. addr in network byte order.
 */
enum egress_map_result egress_proxy_map(struct egress_proxy *ep, const char *name,
					struct in_addr *addr);

#endif
