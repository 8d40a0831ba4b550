#ifndef QPROXY_PROXYREQ_H
#define QPROXY_PROXYREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * What a client of the enclave's egress proxy asks for, parsed from its first
 * bytes: an HTTP request head (RFC 9110/9112: CONNECT host:port, or a request
 * in absolute form, http://host[:port]/path) or a SOCKS5 greeting and request
 * (RFC 1928: no authentication, CONNECT, a domain name or an IPv4/IPv6
 * address). Pure: bytes in, a destination out; nothing is read past what the
 * parse says it took. The first byte tells them apart: 0x05 is SOCKS5.
 */
#define PROXYREQ_HEAD_MAX 8192 /* an HTTP head, at most; a larger one is refused (431) */
#define PROXYREQ_ERR_LEN 128

enum http_form { HTTP_CONNECT, HTTP_ABSOLUTE };

struct http_req {
	enum http_form form;
	char host[POLICY_NAME_MAX + 1]; /* as written, brackets off */
	uint16_t port;
	/* HTTP_ABSOLUTE: the method, and the path and query (from the '/' on), in the head */
	size_t method_len, path_off, path_len;
	size_t line_end; /* where the request line's CRLF ends */
};

/*
 * The head in buf[0, n): > 0, its length through the blank line; 0 while it is
 * not complete (and n < PROXYREQ_HEAD_MAX); -1 with *status the HTTP status to
 * answer (400, 405, 431, 501) and err a reason.
 */
long http_head_parse(const char *buf, size_t n, struct http_req *r, int *status, char *err,
		     size_t errlen);

/*
 * An absolute-form head rewritten for the origin server: origin-form request
 * line, the Proxy-* and hop-by-hop connection headers dropped, and
 * "Connection: close", so that the next request comes on a new connection.
 * Its length in out, or 0 when it does not fit in cap.
 */
size_t http_head_origin(const char *buf, size_t head_len, const struct http_req *r, char *out,
			size_t cap);

/* SOCKS5 reply codes (RFC 1928, section 6). */
enum socks_rep {
	SOCKS_OK = 0,
	SOCKS_FAILURE = 1,
	SOCKS_NOT_ALLOWED = 2,
	SOCKS_HOST_UNREACHABLE = 4,
	SOCKS_REFUSED = 5,
	SOCKS_CMD_UNSUPPORTED = 7,
	SOCKS_ATYP_UNSUPPORTED = 8,
};

/*
 * The greeting in b[0, n): > 0, its length, with *no_auth whether it offers
 * method 0 (no authentication); 0 while incomplete; -1 when it is no SOCKS5
 * greeting.
 */
long socks_greeting_parse(const uint8_t *b, size_t n, bool *no_auth);

/*
 * The request: > 0, its length, with host (a name, or an address as text) and
 * port; 0 while incomplete; -1 with *rep the reply code to send and err why.
 */
long socks_request_parse(const uint8_t *b, size_t n, char host[POLICY_NAME_MAX + 1], uint16_t *port,
			 uint8_t *rep, char *err, size_t errlen);

#endif
