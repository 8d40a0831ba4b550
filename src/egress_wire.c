#include "egress_wire.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cbor.h"

enum { Q_HOST = 1, Q_PORT = 2 };
enum { A_STATUS = 1, A_REASON = 2, A_ADDR = 3, A_RULE = 4 };

/* A frame is one flat map: a nested value is only ever skipped. */
#define WIRE_DEPTH 2

static size_t frame_done(struct cbor_enc *e, uint8_t *buf)
{
	size_t n = cbor_enc_done(e);

	if (n == 0 || n - 4 > EGRESS_FRAME_MAX)
		return 0;
	n -= 4;
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	return n + 4;
}

size_t egress_req_encode(const struct egress_req *r, uint8_t *buf, size_t cap)
{
	struct cbor_enc e;

	if (cap < 4)
		return 0;
	cbor_enc_init(&e, buf, cap);
	e.len = 4; /* the length goes there once it is known */
	cbor_put_map(&e, 2);
	cbor_put_uint(&e, Q_HOST);
	cbor_put_cstr(&e, r->host);
	cbor_put_uint(&e, Q_PORT);
	cbor_put_uint(&e, r->port);
	return frame_done(&e, buf);
}

size_t egress_reply_encode(const struct egress_reply *r, uint8_t *buf, size_t cap)
{
	struct cbor_enc e;

	if (cap < 4)
		return 0;
	cbor_enc_init(&e, buf, cap);
	e.len = 4;
	cbor_put_map(&e, 4);
	cbor_put_uint(&e, A_STATUS);
	cbor_put_uint(&e, r->status);
	cbor_put_uint(&e, A_REASON);
	cbor_put_cstr(&e, r->reason);
	cbor_put_uint(&e, A_ADDR);
	cbor_put_cstr(&e, r->addr);
	cbor_put_uint(&e, A_RULE);
	cbor_put_cstr(&e, r->rule);
	return frame_done(&e, buf);
}

long egress_frame_len(const uint8_t *buf, size_t n)
{
	if (n < 4)
		return 0;
	uint32_t len =
	    (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (len == 0 || len > EGRESS_FRAME_MAX)
		return -1;
	return (long)len + 4;
}

/*
 * One value of a map: a uint up to max into *u, or text of fewer than cap bytes
 * (no NUL) into text. false with err filled when it is neither.
 */
struct field {
	const char *what;
	uint64_t max; /* a uint, when text is NULL */
	uint64_t *u;
	char *text; /* text of at most cap - 1 bytes */
	size_t cap;
	bool seen;
};

static int decode(const uint8_t *buf, size_t len, struct field *f, size_t nf, char *err,
		  size_t errlen)
{
	struct cbor_dec d;
	struct cbor_item it;
	int e = cbor_check(buf, len, WIRE_DEPTH);

	if (e != CBOR_OK) {
		snprintf(err, errlen, "%s", cbor_strerror(e));
		return -1;
	}
	cbor_dec_init(&d, buf, len);
	if (!cbor_next(&d, &it) || it.type != CBOR_MAP || it.u > 16) {
		snprintf(err, errlen, "expected a map of at most 16 pairs");
		return -1;
	}
	for (uint64_t i = it.u; i > 0; i--) {
		struct cbor_item key;
		/* cbor_check() has seen the whole item: these cannot fail. */
		cbor_next(&d, &key);
		struct field *x = NULL;
		for (size_t k = 0; key.type == CBOR_UINT && k < nf; k++)
			if (key.u == k + 1)
				x = &f[k];
		if (!x) {
			cbor_skip(&d, WIRE_DEPTH);
			continue;
		}
		cbor_next(&d, &it);
		if (x->seen) {
			snprintf(err, errlen, "%s: given twice", x->what);
			return -1;
		}
		x->seen = true;
		if (x->text &&
		    (it.type != CBOR_TEXT || it.len >= x->cap || memchr(it.ptr, '\0', it.len))) {
			snprintf(err, errlen, "%s: expected text of at most %zu bytes", x->what,
				 x->cap - 1);
			return -1;
		}
		if (!x->text && (it.type != CBOR_UINT || it.u > x->max)) {
			snprintf(err, errlen, "%s: expected an unsigned integer up to %llu",
				 x->what, (unsigned long long)x->max);
			return -1;
		}
		if (x->text) {
			memcpy(x->text, it.ptr, it.len);
			x->text[it.len] = '\0';
		} else {
			*x->u = it.u;
		}
	}
	for (size_t k = 0; k < nf; k++) {
		if (!f[k].seen) {
			snprintf(err, errlen, "%s: missing", f[k].what);
			return -1;
		}
	}
	return 0;
}

int egress_req_decode(const uint8_t *buf, size_t len, struct egress_req *r, char *err,
		      size_t errlen)
{
	uint64_t port = 0;
	struct field f[] = {
	    [Q_HOST - 1] = {.what = "host", .text = r->host, .cap = sizeof(r->host)},
	    [Q_PORT - 1] = {.what = "port", .max = 65535, .u = &port},
	};

	memset(r, 0, sizeof(*r));
	if (decode(buf, len, f, 2, err, errlen) != 0)
		return -1;
	if (port == 0 || r->host[0] == '\0') {
		snprintf(err, errlen, "%s is empty", port ? "host" : "port");
		return -1;
	}
	r->port = (uint16_t)port;
	return 0;
}

int egress_reply_decode(const uint8_t *buf, size_t len, struct egress_reply *r, char *err,
			size_t errlen)
{
	uint64_t status = 0;
	struct field f[] = {
	    [A_STATUS - 1] = {.what = "status", .max = EGRESS_STATUS_MAX, .u = &status},
	    [A_REASON - 1] = {.what = "reason", .text = r->reason, .cap = sizeof(r->reason)},
	    [A_ADDR - 1] = {.what = "address", .text = r->addr, .cap = sizeof(r->addr)},
	    [A_RULE - 1] = {.what = "rule", .text = r->rule, .cap = sizeof(r->rule)},
	};

	memset(r, 0, sizeof(*r));
	if (decode(buf, len, f, 4, err, errlen) != 0)
		return -1;
	r->status = (unsigned)status;
	return 0;
}

const char *egress_status_name(unsigned status)
{
	static const char *const names[] = {
	    [EGRESS_OK] = "ok",
	    [EGRESS_DENIED] = "denied",
	    [EGRESS_NO_NAME] = "no such name",
	    [EGRESS_REFUSED] = "refused",
	    [EGRESS_TIMEOUT] = "timeout",
	    [EGRESS_BAD] = "bad request",
	    [EGRESS_BUSY] = "busy",
	};
	return status <= EGRESS_STATUS_MAX ? names[status] : "unknown";
}

/* A reply at its longest: the map, four keys, three texts with 2-byte heads, a status. */
_Static_assert(1 + 4 + 1 + 3 * 3 + EGRESS_REASON_MAX + EGRESS_ADDR_MAX + EGRESS_RULE_MAX <=
		   EGRESS_FRAME_MAX,
	       "a reply may not fit in a frame");
