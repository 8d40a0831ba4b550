/* CBOR (RFC 8949), the control channel's subset: see cbor.h. */
#include <string.h>

#include "cbor.h"

enum {
	MAJOR_UINT,
	MAJOR_NEGINT,
	MAJOR_BYTES,
	MAJOR_TEXT,
	MAJOR_ARRAY,
	MAJOR_MAP,
	MAJOR_TAG,
	MAJOR_SIMPLE
};
enum { SIMPLE_FALSE = 20, SIMPLE_TRUE = 21, SIMPLE_NULL = 22 };

void cbor_enc_init(struct cbor_enc *e, uint8_t *buf, size_t cap)
{
	e->buf = buf;
	e->cap = cap;
	e->len = 0;
	e->overflow = false;
}

static void put_raw(struct cbor_enc *e, const void *p, size_t n)
{
	if (e->overflow || n > e->cap - e->len) {
		e->overflow = true;
		return;
	}
	if (n > 0) /* p may be NULL then, and memcpy must not see it */
		memcpy(e->buf + e->len, p, n);
	e->len += n;
}

/* The shortest head: the argument in the initial byte, or in 1, 2, 4 or 8 bytes after it. */
static void put_head(struct cbor_enc *e, int major, uint64_t v)
{
	uint8_t h[9];
	size_t n;

	if (v < 24) {
		h[0] = (uint8_t)((unsigned)major << 5 | v);
		put_raw(e, h, 1);
		return;
	}
	n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;
	h[0] = (uint8_t)(major << 5 | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27));
	for (size_t i = 0; i < n; i++)
		h[1 + i] = (uint8_t)(v >> 8 * (n - 1 - i));
	put_raw(e, h, 1 + n);
}

void cbor_put_uint(struct cbor_enc *e, uint64_t v)
{
	put_head(e, MAJOR_UINT, v);
}

void cbor_put_int(struct cbor_enc *e, int64_t v)
{
	if (v >= 0)
		put_head(e, MAJOR_UINT, (uint64_t)v);
	else
		put_head(e, MAJOR_NEGINT, (uint64_t)(-1 - v)); /* no overflow, even for INT64_MIN */
}

void cbor_put_negint(struct cbor_enc *e, uint64_t n)
{
	put_head(e, MAJOR_NEGINT, n);
}

void cbor_put_bytes(struct cbor_enc *e, const void *p, size_t n)
{
	put_head(e, MAJOR_BYTES, n);
	put_raw(e, p, n);
}

void cbor_put_text(struct cbor_enc *e, const char *s, size_t n)
{
	put_head(e, MAJOR_TEXT, n);
	put_raw(e, s, n);
}

void cbor_put_cstr(struct cbor_enc *e, const char *s)
{
	cbor_put_text(e, s, strlen(s));
}

void cbor_put_array(struct cbor_enc *e, uint64_t n)
{
	put_head(e, MAJOR_ARRAY, n);
}

void cbor_put_map(struct cbor_enc *e, uint64_t npairs)
{
	put_head(e, MAJOR_MAP, npairs);
}

void cbor_put_bool(struct cbor_enc *e, bool v)
{
	put_head(e, MAJOR_SIMPLE, v ? SIMPLE_TRUE : SIMPLE_FALSE);
}

void cbor_put_null(struct cbor_enc *e)
{
	put_head(e, MAJOR_SIMPLE, SIMPLE_NULL);
}

size_t cbor_enc_done(const struct cbor_enc *e)
{
	return e->overflow ? 0 : e->len;
}

void cbor_dec_init(struct cbor_dec *d, const void *buf, size_t len)
{
	d->p = buf;
	d->end = len > 0 ? d->p + len : d->p; /* buf may be NULL when len is 0 */
	d->err = CBOR_OK;
}

static bool fail(struct cbor_dec *d, int err)
{
	d->err = err;
	return false;
}

size_t cbor_utf8_char(const uint8_t *s, size_t n)
{
	static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
	uint8_t c = s[0];
	size_t k = c < 0x80 ? 0 : c >= 0xc0 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : 3;
	uint32_t cp = c & (0x3f >> k);

	if (k == 0)
		return 1;
	if ((c & 0xc0) == 0x80 || c >= 0xf8 || n - 1 < k)
		return 0;
	for (size_t j = 1; j <= k; j++) {
		if ((s[j] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[j] & 0x3f);
	}
	if (cp < min[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k + 1;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = cbor_utf8_char(s + i, n - i)) == 0)
			return false;
	return true;
}

bool cbor_next(struct cbor_dec *d, struct cbor_item *it)
{
	uint64_t v;

	if (d->err != CBOR_OK)
		return false;
	if (d->p == d->end)
		return fail(d, CBOR_ETRUNC);
	int major = *d->p >> 5, ai = *d->p & 0x1f;

	/* Of major type 7 we take false, true and null only: all three fit in the initial byte. */
	if (major == MAJOR_TAG ||
	    (major == MAJOR_SIMPLE && (ai < SIMPLE_FALSE || ai > SIMPLE_NULL)))
		return fail(d, CBOR_EUNSUPPORTED);
	if (ai >= 28) /* reserved, or an indefinite length */
		return fail(d, CBOR_EUNSUPPORTED);
	d->p++;
	if (ai < 24) {
		v = (uint64_t)ai;
	} else {
		size_t n = (size_t)1 << (ai - 24);

		if ((size_t)(d->end - d->p) < n)
			return fail(d, CBOR_ETRUNC);
		v = 0;
		for (size_t i = 0; i < n; i++)
			v = v << 8 | *d->p++;
		/* The shortest form for v would have used fewer argument bytes (or none). */
		if (v < (n == 1 ? 24 : (uint64_t)1 << 4 * n))
			return fail(d, CBOR_ENONMINIMAL);
	}

	size_t avail = (size_t)(d->end - d->p);

	it->u = v;
	it->ptr = NULL;
	it->len = 0;
	it->b = false;
	switch (major) {
	case MAJOR_UINT:
		it->type = CBOR_UINT;
		break;
	case MAJOR_NEGINT:
		it->type = CBOR_NEGINT;
		break;
	case MAJOR_BYTES:
	case MAJOR_TEXT:
		it->type = major == MAJOR_BYTES ? CBOR_BYTES : CBOR_TEXT;
		if (v > avail)
			return fail(d, CBOR_ELEN);
		it->ptr = d->p;
		it->len = (size_t)v;
		if (major == MAJOR_TEXT && !utf8_valid(it->ptr, it->len))
			return fail(d, CBOR_EUTF8);
		d->p += it->len;
		break;
	case MAJOR_ARRAY:
	case MAJOR_MAP:
		/* Each child takes a byte at least, so a larger count is a lie; this also keeps
		   cbor_skip's counts (twice the pairs) from overflowing. */
		it->type = major == MAJOR_ARRAY ? CBOR_ARRAY : CBOR_MAP;
		if (v > (major == MAJOR_ARRAY ? avail : avail / 2))
			return fail(d, CBOR_ELEN);
		break;
	default:
		it->type = ai == SIMPLE_NULL ? CBOR_NULL : CBOR_BOOL;
		it->b = ai == SIMPLE_TRUE;
		it->u = 0;
		break;
	}
	return true;
}

bool cbor_skip(struct cbor_dec *d, int max_depth)
{
	uint64_t left[CBOR_MAX_DEPTH]; /* children still to skip in each open container */
	int depth = 0;
	struct cbor_item it;

	if (max_depth > CBOR_MAX_DEPTH)
		max_depth = CBOR_MAX_DEPTH;
	do {
		if (!cbor_next(d, &it))
			return false;
		if (depth > 0)
			left[depth - 1]--;
		if (it.type == CBOR_ARRAY || it.type == CBOR_MAP) {
			if (depth >= max_depth)
				return fail(d, CBOR_EDEPTH);
			/* cbor_next bounded a map's pairs by half the input: doubling cannot
			 * overflow. */
			left[depth++] = it.type == CBOR_MAP ? 2 * it.u : it.u;
		}
		while (depth > 0 && left[depth - 1] == 0)
			depth--;
	} while (depth > 0);
	return true;
}

enum cbor_err cbor_check(const void *buf, size_t len, int max_depth)
{
	struct cbor_dec d;

	cbor_dec_init(&d, buf, len);
	if (cbor_skip(&d, max_depth) && d.p != d.end)
		d.err = CBOR_ETRAILING;
	return (enum cbor_err)d.err;
}

const char *cbor_strerror(int err)
{
	static const char *const msg[] = {
	    [CBOR_OK] = "ok",
	    [CBOR_ETRUNC] = "truncated CBOR item",
	    [CBOR_ELEN] = "CBOR length past the end of the input",
	    [CBOR_EUNSUPPORTED] =
		"unsupported CBOR (tag, float, simple value or indefinite length)",
	    [CBOR_ENONMINIMAL] = "non-minimal CBOR head",
	    [CBOR_EDEPTH] = "CBOR nested too deep",
	    [CBOR_ETRAILING] = "trailing bytes after the CBOR item",
	    [CBOR_EUTF8] = "invalid UTF-8 in CBOR text",
	};

	if (err < 0 || (size_t)err >= sizeof(msg) / sizeof(msg[0]))
		return "unknown CBOR error";
	return msg[err];
}

bool cbor_text_eq(const struct cbor_item *it, const char *s)
{
	size_t n = strlen(s);

	return it->type == CBOR_TEXT && it->len == n && memcmp(it->ptr, s, n) == 0;
}
