/*
 * libFuzzer target for what a client of the enclave's egress proxy sends first:
 * an HTTP request head, or a SOCKS5 greeting and request. No input may crash a
 * parser or read out of bounds; a parser never claims more bytes than it was
 * given, answers "more" only below its bound, and every destination it returns
 * has a host and a port. An absolute-form head rewrites within its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char out[PROXYREQ_HEAD_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_req r;
	char err[PROXYREQ_ERR_LEN], host[POLICY_NAME_MAX + 1];
	int status = 0;
	uint16_t port = 0;
	uint8_t rep;
	bool no_auth;

	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	long n = http_head_parse((const char *)p, size, &r, &status, err, sizeof(err));
	if (n > (long)size || (n == 0 && size >= PROXYREQ_HEAD_MAX) ||
	    (n < 0 && (status < 400 || status > 599)))
		abort();
	if (n > 0) {
		if (r.host[0] == '\0' || r.port == 0)
			abort();
		if (r.form == HTTP_ABSOLUTE &&
		    http_head_origin((const char *)p, (size_t)n, &r, out, sizeof(out)) == 0)
			abort();
	}
	long g = socks_greeting_parse(p, size, &no_auth);
	if (g > (long)size)
		abort();
	if (g > 0) {
		long q = socks_request_parse(p + g, size - (size_t)g, host, &port, &rep, err,
					     sizeof(err));
		if (q > (long)size - g || (q > 0 && (host[0] == '\0' || port == 0)))
			abort();
	}
	free(p);
	return 0;
}
