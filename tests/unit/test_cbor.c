/*
 * The CBOR codec against RFC 8949's Appendix A and against libcbor: every value is
 * built as a libcbor tree, encoded by both, and each side decodes the other's bytes.
 * Malformed input must fail with the right error and read nothing out of bounds;
 * buffers are cut to exact size so ASan and valgrind see any stray read.
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * libcbor's <cbor.h> names its type enum `enum cbor_type`, like ours: rename theirs in
 * this file (tags do not reach the ABI). And with -Isrc, <cbor.h> is ours: reach
 * theirs through its cbor/ directory, which src/ does not have.
 */
#define cbor_type libcbor_type
#include <cbor/../cbor.h>
#undef cbor_type

#include "cbor.h"

static bool mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0; /* libcbor's empty strings may have a NULL handle */
}

/* Hex (spaces allowed) into an exact-size heap buffer. */
static uint8_t *unhex(const char *hex, size_t *n)
{
	uint8_t *b = malloc(strlen(hex) / 2 + 1);
	unsigned x;

	*n = 0;
	for (const char *s = hex; *s;) {
		if (*s == ' ') {
			s++;
			continue;
		}
		assert_int_equal(sscanf(s, "%2x", &x), 1);
		b[(*n)++] = (uint8_t)x;
		s += 2;
	}
	return realloc(b, *n ? *n : 1);
}

static uint8_t *copy(const void *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (n > 0)
		memcpy(b, p, n);
	return b;
}

/* libcbor items of the shortest width, so that its serialization is the preferred one. */
static cbor_item_t *lc_uint(uint64_t v)
{
	return v <= UINT8_MAX	 ? cbor_build_uint8((uint8_t)v)
	       : v <= UINT16_MAX ? cbor_build_uint16((uint16_t)v)
	       : v <= UINT32_MAX ? cbor_build_uint32((uint32_t)v)
				 : cbor_build_uint64(v);
}

static cbor_item_t *lc_negint(uint64_t n)
{
	return n <= UINT8_MAX	 ? cbor_build_negint8((uint8_t)n)
	       : n <= UINT16_MAX ? cbor_build_negint16((uint16_t)n)
	       : n <= UINT32_MAX ? cbor_build_negint32((uint32_t)n)
				 : cbor_build_negint64(n);
}

static void skip_ws(const char **s)
{
	while (**s == ' ')
		(*s)++;
}

/*
 * RFC 8949 diagnostic notation, the part the tests need: integers, "text" (\" and \\
 * escapes; UTF-8 as is), h'hex', [...], {...}, false, true, null. Builds a libcbor tree.
 */
static cbor_item_t *parse(const char **s)
{
	cbor_item_t *kids[64];
	size_t n = 0;
	char buf[256];
	const char *p;

	skip_ws(s);
	if (**s == '[' || **s == '{') {
		char close = **s == '[' ? ']' : '}';
		cbor_item_t *c;

		for ((*s)++, skip_ws(s); **s != close; skip_ws(s)) {
			assert_true(n + 2 <= 64);
			kids[n++] = parse(s);
			skip_ws(s);
			if (close == '}') {
				assert_int_equal(*(*s)++, ':');
				kids[n++] = parse(s);
				skip_ws(s);
			}
			if (**s == ',')
				(*s)++;
		}
		(*s)++;
		c = close == ']' ? cbor_new_definite_array(n) : cbor_new_definite_map(n / 2);
		for (size_t i = 0; i < n; i += close == ']' ? 1 : 2) {
			if (close == ']')
				assert_true(cbor_array_push(c, cbor_move(kids[i])));
			else
				assert_true(cbor_map_add(
				    c, (struct cbor_pair){.key = cbor_move(kids[i]),
							  .value = cbor_move(kids[i + 1])}));
		}
		return c;
	}
	if (**s == '"') {
		for (p = *s + 1; *p != '"'; p++) {
			if (*p == '\\')
				p++;
			assert_true(n < sizeof(buf));
			buf[n++] = *p;
		}
		*s = p + 1;
		return cbor_build_stringn(buf, n);
	}
	if (**s == 'h') {
		unsigned x;

		for (p = *s + 2; *p != '\''; p += 2) {
			assert_int_equal(sscanf(p, "%2x", &x), 1);
			assert_true(n < sizeof(buf));
			buf[n++] = (char)x;
		}
		*s = p + 1;
		return cbor_build_bytestring((const unsigned char *)buf, n);
	}
	static const char *const words[] = {"false", "true", "null"};
	for (int i = 0; i < 3; i++) {
		if (strncmp(*s, words[i], strlen(words[i])) == 0) {
			*s += strlen(words[i]);
			return i == 2 ? cbor_new_null() : cbor_build_bool(i == 1);
		}
	}
	/* -2^64 does not fit in 64 bits: count the magnitude in 128. */
	bool neg = **s == '-';
	unsigned __int128 m = 0;

	for (p = *s + neg; *p >= '0' && *p <= '9'; p++)
		m = m * 10 + (unsigned)(*p - '0');
	assert_true(p > *s + neg);
	*s = p;
	return neg ? lc_negint((uint64_t)(m - 1)) : lc_uint((uint64_t)m);
}

static cbor_item_t *diag(const char *text)
{
	const char *s = text;
	cbor_item_t *v = parse(&s);

	skip_ws(&s);
	assert_int_equal(*s, '\0');
	return v;
}

/* Our encoder, driven by a libcbor tree. */
static void encode(struct cbor_enc *e, const cbor_item_t *v)
{
	if (e->overflow) /* all later puts are ignored (encoder_ints checks): save the walk */
		return;
	switch (cbor_typeof(v)) {
	case CBOR_TYPE_UINT:
		cbor_put_uint(e, cbor_get_int(v));
		break;
	case CBOR_TYPE_NEGINT:
		if (cbor_get_int(v) <= INT64_MAX)
			cbor_put_int(e, -1 - (int64_t)cbor_get_int(v));
		else
			cbor_put_negint(e, cbor_get_int(v));
		break;
	case CBOR_TYPE_BYTESTRING:
		cbor_put_bytes(e, cbor_bytestring_handle(v), cbor_bytestring_length(v));
		break;
	case CBOR_TYPE_STRING:
		cbor_put_text(e, (const char *)cbor_string_handle(v), cbor_string_length(v));
		break;
	case CBOR_TYPE_ARRAY:
		cbor_put_array(e, cbor_array_size(v));
		for (size_t i = 0; i < cbor_array_size(v); i++)
			encode(e, cbor_array_handle(v)[i]);
		break;
	case CBOR_TYPE_MAP:
		cbor_put_map(e, cbor_map_size(v));
		for (size_t i = 0; i < cbor_map_size(v); i++) {
			encode(e, cbor_map_handle(v)[i].key);
			encode(e, cbor_map_handle(v)[i].value);
		}
		break;
	default:
		if (cbor_is_null(v))
			cbor_put_null(e);
		else if (cbor_is_bool(v))
			cbor_put_bool(e, cbor_get_bool(v));
		else
			fail_msg("no such value in our subset");
	}
}

/* Encode with a buffer doubled until it fits: the overflow path, on the way. */
static uint8_t *encode_alloc(const cbor_item_t *v, size_t *n)
{
	for (size_t cap = 16;; cap *= 2) {
		uint8_t *b = malloc(cap);
		struct cbor_enc e;

		cbor_enc_init(&e, b, cap);
		encode(&e, v);
		*n = cbor_enc_done(&e);
		if (*n > 0)
			return b;
		assert_true(e.overflow);
		free(b);
	}
}

/* Two libcbor trees hold the same value (integers of any width). */
static bool lc_equal(const cbor_item_t *a, const cbor_item_t *b)
{
	if (cbor_typeof(a) != cbor_typeof(b))
		return false;
	switch (cbor_typeof(a)) {
	case CBOR_TYPE_UINT:
	case CBOR_TYPE_NEGINT:
		return cbor_get_int(a) == cbor_get_int(b);
	case CBOR_TYPE_BYTESTRING:
		return cbor_bytestring_length(a) == cbor_bytestring_length(b) &&
		       mem_eq(cbor_bytestring_handle(a), cbor_bytestring_handle(b),
			      cbor_bytestring_length(a));
	case CBOR_TYPE_STRING:
		return cbor_string_length(a) == cbor_string_length(b) &&
		       mem_eq(cbor_string_handle(a), cbor_string_handle(b), cbor_string_length(a));
	case CBOR_TYPE_ARRAY:
		if (cbor_array_size(a) != cbor_array_size(b))
			return false;
		for (size_t i = 0; i < cbor_array_size(a); i++)
			if (!lc_equal(cbor_array_handle(a)[i], cbor_array_handle(b)[i]))
				return false;
		return true;
	case CBOR_TYPE_MAP:
		if (cbor_map_size(a) != cbor_map_size(b))
			return false;
		for (size_t i = 0; i < cbor_map_size(a); i++)
			if (!lc_equal(cbor_map_handle(a)[i].key, cbor_map_handle(b)[i].key) ||
			    !lc_equal(cbor_map_handle(a)[i].value, cbor_map_handle(b)[i].value))
				return false;
		return true;
	case CBOR_TYPE_FLOAT_CTRL:
		return cbor_float_ctrl_is_ctrl(a) && cbor_float_ctrl_is_ctrl(b) &&
		       cbor_ctrl_value(a) == cbor_ctrl_value(b);
	default:
		return false;
	}
}

/* Our decoder reads the value v next. */
static bool dec_equal(struct cbor_dec *d, const cbor_item_t *v)
{
	struct cbor_item it;

	if (!cbor_next(d, &it))
		return false;
	switch (cbor_typeof(v)) {
	case CBOR_TYPE_UINT:
		return it.type == CBOR_UINT && it.u == cbor_get_int(v);
	case CBOR_TYPE_NEGINT:
		return it.type == CBOR_NEGINT && it.u == cbor_get_int(v);
	case CBOR_TYPE_BYTESTRING:
		return it.type == CBOR_BYTES && it.len == cbor_bytestring_length(v) &&
		       mem_eq(it.ptr, cbor_bytestring_handle(v), it.len);
	case CBOR_TYPE_STRING:
		return it.type == CBOR_TEXT && it.len == cbor_string_length(v) &&
		       mem_eq(it.ptr, cbor_string_handle(v), it.len);
	case CBOR_TYPE_ARRAY:
		if (it.type != CBOR_ARRAY || it.u != cbor_array_size(v))
			return false;
		for (size_t i = 0; i < cbor_array_size(v); i++)
			if (!dec_equal(d, cbor_array_handle(v)[i]))
				return false;
		return true;
	case CBOR_TYPE_MAP:
		if (it.type != CBOR_MAP || it.u != cbor_map_size(v))
			return false;
		for (size_t i = 0; i < cbor_map_size(v); i++)
			if (!dec_equal(d, cbor_map_handle(v)[i].key) ||
			    !dec_equal(d, cbor_map_handle(v)[i].value))
				return false;
		return true;
	default:
		if (cbor_is_null(v))
			return it.type == CBOR_NULL;
		return cbor_is_bool(v) && it.type == CBOR_BOOL && it.b == cbor_get_bool(v);
	}
}

/* Every cut of a short message; the ends and some 64 cuts in the middle of a long one. */
static size_t next_cut(size_t k, size_t n)
{
	if (n > 1024 && k >= 64 && k + 64 < n)
		return k + n / 64 < n - 64 ? k + n / 64 : n - 64;
	return k + 1;
}

/*
 * Every check for one value (a libcbor tree, which this consumes): our bytes are
 * libcbor's byte for byte (and hex's, if given); libcbor reads ours back to the
 * value and we read libcbor's; every prefix is truncated; every short buffer overflows.
 */
static void check_value(cbor_item_t *v, const char *hex)
{
	size_t n, tn, tcap, want_n;
	uint8_t *ours = encode_alloc(v, &n);
	unsigned char *theirs;
	struct cbor_load_result r;
	struct cbor_dec d;

	if (hex != NULL) {
		uint8_t *want = unhex(hex, &want_n);

		if (want_n != n || memcmp(want, ours, n) != 0)
			fail_msg("encoding differs from RFC 8949's %s", hex);
		free(want);
	}

	tn = cbor_serialize_alloc(v, &theirs, &tcap);
	assert_int_equal(tn, n);
	assert_memory_equal(theirs, ours, n);

	cbor_item_t *back = cbor_load(ours, n, &r);
	assert_int_equal(r.error.code, CBOR_ERR_NONE);
	assert_int_equal(r.read, n);
	assert_true(lc_equal(v, back));
	cbor_decref(&back);

	uint8_t *exact = copy(theirs, tn);
	assert_int_equal(cbor_check(exact, tn, CBOR_MAX_DEPTH), CBOR_OK);
	cbor_dec_init(&d, exact, tn);
	assert_true(dec_equal(&d, v));
	assert_ptr_equal(d.p, exact + tn);
	free(exact);

	for (size_t k = 0; k < n; k = next_cut(k, n)) {
		uint8_t *cut = copy(ours, k);
		enum cbor_err err = cbor_check(cut, k, CBOR_MAX_DEPTH);

		if (err != CBOR_ETRUNC && err != CBOR_ELEN)
			fail_msg("prefix %zu of %zu: %s", k, n, cbor_strerror(err));
		free(cut);
	}

	for (size_t k = 0; k < n; k = next_cut(k, n)) {
		uint8_t *b = malloc(k + 8);
		struct cbor_enc e;

		memset(b, 0xa5, k + 8);
		cbor_enc_init(&e, b, k);
		encode(&e, v);
		assert_int_equal(cbor_enc_done(&e), 0);
		assert_true(e.len <= k);
		for (size_t i = k; i < k + 8; i++)
			assert_int_equal(b[i], 0xa5);
		free(b);
	}

	free(ours);
	free(theirs);
	cbor_decref(&v);
}

/* RFC 8949 Appendix A, the part in our subset. */
static const struct {
	const char *diag, *hex;
} rfc[] = {
    {"0", "00"},
    {"1", "01"},
    {"10", "0a"},
    {"23", "17"},
    {"24", "1818"},
    {"25", "1819"},
    {"100", "1864"},
    {"1000", "1903e8"},
    {"1000000", "1a000f4240"},
    {"1000000000000", "1b000000e8d4a51000"},
    {"18446744073709551615", "1bffffffffffffffff"},
    {"-18446744073709551616", "3bffffffffffffffff"},
    {"-1", "20"},
    {"-10", "29"},
    {"-100", "3863"},
    {"-1000", "3903e7"},
    {"h''", "40"},
    {"h'01020304'", "4401020304"},
    {"\"\"", "60"},
    {"\"a\"", "6161"},
    {"\"IETF\"", "6449455446"},
    {"\"\\\"\\\\\"", "62225c"},
    {"\"\u00fc\"", "62c3bc"},
    {"\"\u6c34\"", "63e6b0b4"},
    {"\"\U00010151\"", "64f0908591"}, /* "\ud800\udd51" */
    {"[]", "80"},
    {"[1, 2, 3]", "83010203"},
    {"[1, [2, 3], [4, 5]]", "8301820203820405"},
    {"[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]",
     "98190102030405060708090a0b0c0d0e0f101112131415161718181819"},
    {"{}", "a0"},
    {"{1: 2, 3: 4}", "a201020304"},
    {"{\"a\": 1, \"b\": [2, 3]}", "a26161016162820203"},
    {"[\"a\", {\"b\": \"c\"}]", "826161a161626163"},
    {"{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}",
     "a56161614161626142616361436164614461656145"},
    {"false", "f4"},
    {"true", "f5"},
    {"null", "f6"},
};

/* A control message as qproxy might send one: small-int and short-text keys. */
#define MESSAGE                                                                                    \
	"{0: \"0.1.0\", 1: [{\"listen\": \"tcp:0.0.0.0:80\", \"vsock\": 5000, \"allow\": "         \
	"true}, {\"listen\": \"tcp:[::]:443\", \"vsock\": 5001, \"allow\": false, \"note\": "      \
	"null}], 2: h'deadbeef00ff', -1: {\"id\": 1234567890123, \"nonce\": "                      \
	"h'000102030405060708090a0b0c0d0e0f', "                                                    \
	"\"limits\": {\"conns\": 256, \"idle\": 65536, \"delta\": -300}}}"

static const char *const more[] = {
    MESSAGE,
    "[255, 256, 65535, 65536, 4294967295, 4294967296, 9223372036854775807]",
    "[-24, -25, -256, -257, -65536, -65537, -4294967296, -4294967297]",
    "[-9223372036854775808, -9223372036854775809, -18446744073709551615]",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", /* 16 deep: the most we take */
    "{\"k\": {\"k\": {\"k\": null}}}",
    "[h'', \"\", [], {}, [[]], {\"\": {}}]",
    "{0: 1, -1: 2, \"x\": 3, h'00': 4, [1]: 5, {}: 6, true: 7, null: 8}",
    "\"\u00e9t\u00e9 \u2603 \U0001F600\"",
};

static void rfc_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++)
		check_value(diag(rfc[i].diag), rfc[i].hex);
}

static void against_libcbor(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
		check_value(diag(more[i]), NULL);
}

/* Lengths and counts at every head size: 23/24, 255/256, 65535/65536 and past. */
static void head_sizes(void **state)
{
	static const size_t len[] = {23, 24, 255, 256, 65535, 65536, 70000};
	char *s = malloc(70000);

	(void)state;
	for (size_t i = 0; i < 70000; i++)
		s[i] = (char)('a' + i % 26);
	for (size_t i = 0; i < sizeof(len) / sizeof(len[0]); i++) {
		check_value(cbor_build_stringn(s, len[i]), NULL);
		check_value(cbor_build_bytestring((unsigned char *)s, len[i]), NULL);
		cbor_item_t *a = cbor_new_definite_array(len[i]);
		for (size_t j = 0; j < len[i]; j++)
			assert_true(cbor_array_push(a, cbor_move(lc_uint(j))));
		check_value(a, NULL);
		if (len[i] > 256)
			continue;
		cbor_item_t *m = cbor_new_definite_map(len[i]);
		for (size_t j = 0; j < len[i]; j++)
			assert_true(cbor_map_add(
			    m, (struct cbor_pair){.key = cbor_move(lc_uint(j)),
						  .value = cbor_move(cbor_new_null())}));
		check_value(m, NULL);
	}
	free(s);
}

static size_t enc(uint8_t *buf, size_t cap, void (*build)(struct cbor_enc *))
{
	struct cbor_enc e;

	cbor_enc_init(&e, buf, cap);
	build(&e);
	return cbor_enc_done(&e);
}

/* The message, written the way control.c writes one: by hand, keys in a fixed order. */
static void build_message(struct cbor_enc *e)
{
	static const uint8_t mark[] = {0xde, 0xad, 0xbe, 0xef, 0x00, 0xff};
	uint8_t nonce[16];

	for (int i = 0; i < 16; i++)
		nonce[i] = (uint8_t)i;
	cbor_put_map(e, 4);
	cbor_put_uint(e, 0);
	cbor_put_cstr(e, "0.1.0");
	cbor_put_uint(e, 1);
	cbor_put_array(e, 2);
	cbor_put_map(e, 3);
	cbor_put_cstr(e, "listen");
	cbor_put_cstr(e, "tcp:0.0.0.0:80");
	cbor_put_cstr(e, "vsock");
	cbor_put_uint(e, 5000);
	cbor_put_cstr(e, "allow");
	cbor_put_bool(e, true);
	cbor_put_map(e, 4);
	cbor_put_cstr(e, "listen");
	cbor_put_text(e, "tcp:[::]:443 and more", 12);
	cbor_put_cstr(e, "vsock");
	cbor_put_int(e, 5001);
	cbor_put_cstr(e, "allow");
	cbor_put_bool(e, false);
	cbor_put_cstr(e, "note");
	cbor_put_null(e);
	cbor_put_uint(e, 2);
	cbor_put_bytes(e, mark, sizeof(mark));
	cbor_put_int(e, -1);
	cbor_put_map(e, 3);
	cbor_put_cstr(e, "id");
	cbor_put_uint(e, 1234567890123);
	cbor_put_cstr(e, "nonce");
	cbor_put_bytes(e, nonce, sizeof(nonce));
	cbor_put_cstr(e, "limits");
	cbor_put_map(e, 3);
	cbor_put_cstr(e, "conns");
	cbor_put_uint(e, 256);
	cbor_put_cstr(e, "idle");
	cbor_put_uint(e, 65536);
	cbor_put_cstr(e, "delta");
	cbor_put_int(e, -300);
}

static void message_by_hand(void **state)
{
	uint8_t buf[256];
	size_t n = enc(buf, sizeof(buf), build_message);
	struct cbor_load_result r;
	cbor_item_t *want = diag(MESSAGE);

	(void)state;
	assert_true(n > 0);
	cbor_item_t *got = cbor_load(buf, n, &r);
	assert_int_equal(r.error.code, CBOR_ERR_NONE);
	assert_int_equal(r.read, n);
	assert_true(lc_equal(want, got));
	cbor_decref(&got);
	cbor_decref(&want);
	for (size_t cap = 0; cap < n; cap++)
		assert_int_equal(enc(buf, cap, build_message), 0);
}

/* Reading the message the way control.c reads one: match keys, skip what is unknown. */
static void message_pull(void **state)
{
	uint8_t buf[256];
	size_t n = enc(buf, sizeof(buf), build_message);
	struct cbor_dec d;
	struct cbor_item it, k;
	uint64_t vsock[2] = {0, 0};
	bool allow[2] = {false, true};

	(void)state;
	assert_int_equal(cbor_check(buf, n, 3), CBOR_OK);
	assert_int_equal(cbor_check(buf, n, 2), CBOR_EDEPTH);
	cbor_dec_init(&d, buf, n);
	assert_true(cbor_next(&d, &it) && it.type == CBOR_MAP && it.u == 4);
	for (uint64_t i = 0; i < 4; i++) {
		assert_true(cbor_next(&d, &k));
		if (k.type != CBOR_UINT || k.u != 1) {
			assert_true(cbor_skip(&d, CBOR_MAX_DEPTH));
			continue;
		}
		assert_true(cbor_next(&d, &it) && it.type == CBOR_ARRAY && it.u == 2);
		for (int r = 0; r < 2; r++) {
			struct cbor_item m;

			assert_true(cbor_next(&d, &m) && m.type == CBOR_MAP);
			for (uint64_t j = 0; j < m.u; j++) {
				assert_true(cbor_next(&d, &k));
				if (cbor_text_eq(&k, "vsock")) {
					assert_true(cbor_next(&d, &it) && it.type == CBOR_UINT);
					vsock[r] = it.u;
				} else if (cbor_text_eq(&k, "allow")) {
					assert_true(cbor_next(&d, &it) && it.type == CBOR_BOOL);
					allow[r] = it.b;
				} else {
					assert_true(cbor_skip(&d, CBOR_MAX_DEPTH));
				}
			}
		}
	}
	assert_ptr_equal(d.p, buf + n);
	assert_int_equal(vsock[0], 5000);
	assert_int_equal(vsock[1], 5001);
	assert_true(allow[0]);
	assert_false(allow[1]);
}

static void encoder_ints(void **state)
{
	static const int64_t v[] = {0, 23, 24, -1, -24, -25, -256, -257, INT64_MIN, INT64_MAX};
	uint8_t a[9], b[9];
	struct cbor_enc e, f;

	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		cbor_enc_init(&e, a, sizeof(a));
		cbor_enc_init(&f, b, sizeof(b));
		cbor_put_int(&e, v[i]);
		if (v[i] < 0)
			cbor_put_negint(&f, (uint64_t)(-1 - v[i]));
		else
			cbor_put_uint(&f, (uint64_t)v[i]);
		assert_int_equal(cbor_enc_done(&e), cbor_enc_done(&f));
		assert_memory_equal(a, b, cbor_enc_done(&e));
	}
	/* An empty string with no pointer at all, and an empty buffer with none. */
	cbor_enc_init(&e, a, sizeof(a));
	cbor_put_bytes(&e, NULL, 0);
	cbor_put_text(&e, NULL, 0);
	assert_int_equal(cbor_enc_done(&e), 2);
	cbor_enc_init(&e, NULL, 0);
	cbor_put_null(&e);
	assert_int_equal(cbor_enc_done(&e), 0);
	/* Once over, always over: a smaller item after a big one must not slip in. */
	cbor_enc_init(&e, a, 4);
	cbor_put_uint(&e, UINT64_MAX);
	cbor_put_uint(&e, 1);
	assert_int_equal(e.len, 0);
	assert_int_equal(cbor_enc_done(&e), 0);
}

static const struct {
	const char *hex;
	enum cbor_err err;
} bad[] = {
    {"", CBOR_ETRUNC},
    /* truncated heads */
    {"18", CBOR_ETRUNC},
    {"19 00", CBOR_ETRUNC},
    {"1a 00 00 01", CBOR_ETRUNC},
    {"1b 00 00 00 01 00 00 00", CBOR_ETRUNC},
    {"38", CBOR_ETRUNC},
    {"59 01", CBOR_ETRUNC},
    {"9a 00 01 00", CBOR_ETRUNC},
    {"bb 00 00 00", CBOR_ETRUNC},
    {"82 01", CBOR_ELEN},
    {"82 01 18", CBOR_ETRUNC},
    {"a1 01", CBOR_ELEN},
    {"a2 01 02 03", CBOR_ELEN},
    {"a1 61 61", CBOR_ETRUNC},
    /* payloads and counts past the end */
    {"41", CBOR_ELEN},
    {"44 01 02 03", CBOR_ELEN},
    {"63 61 62", CBOR_ELEN},
    {"5b ff ff ff ff ff ff ff ff", CBOR_ELEN},
    {"5b ff ff ff ff ff ff ff ff 00 01 02 03", CBOR_ELEN},
    {"7b 80 00 00 00 00 00 00 00 61", CBOR_ELEN},
    {"9b 80 00 00 00 00 00 00 00", CBOR_ELEN},
    {"9b 80 00 00 00", CBOR_ETRUNC}, /* 2^63 items, in 5 bytes */
    {"9a 80 00 00 00", CBOR_ELEN},   /* 2^31 items, in 5 bytes */
    {"9b ff ff ff ff ff ff ff ff 01 02 03 04", CBOR_ELEN},
    {"bb 80 00 00 00 00 00 00 00 01 02", CBOR_ELEN},
    {"bb ff ff ff ff ff ff ff ff 01 02", CBOR_ELEN},
    {"a3 01 02 03 04 05", CBOR_ELEN},
    /* indefinite lengths and breaks */
    {"5f 41 00 ff", CBOR_EUNSUPPORTED},
    {"7f 61 61 ff", CBOR_EUNSUPPORTED},
    {"9f ff", CBOR_EUNSUPPORTED},
    {"bf ff", CBOR_EUNSUPPORTED},
    {"ff", CBOR_EUNSUPPORTED},
    {"81 ff", CBOR_EUNSUPPORTED},
    /* tags */
    {"c0 74 32 30 31 33 2d 30 33 2d 32 31 54 32 30 3a 30 34 3a 30 30 5a", CBOR_EUNSUPPORTED},
    {"c1 1a 51 4b 67 b0", CBOR_EUNSUPPORTED},
    {"d8 20 60", CBOR_EUNSUPPORTED},
    {"db", CBOR_EUNSUPPORTED},
    /* floats, undefined, other simple values */
    {"f9 00 00", CBOR_EUNSUPPORTED},
    {"f9", CBOR_EUNSUPPORTED},
    {"fa 47 c3 50 00", CBOR_EUNSUPPORTED},
    {"fb 3f f1 99 99 99 99 99 9a", CBOR_EUNSUPPORTED},
    {"f7", CBOR_EUNSUPPORTED},
    {"e0", CBOR_EUNSUPPORTED},
    {"f3", CBOR_EUNSUPPORTED},
    {"f8 10", CBOR_EUNSUPPORTED},
    {"f8 14", CBOR_EUNSUPPORTED}, /* false, but in two bytes */
    {"f8 ff", CBOR_EUNSUPPORTED},
    {"82 f5 f7", CBOR_EUNSUPPORTED},
    /* reserved additional information */
    {"1c", CBOR_EUNSUPPORTED},
    {"3d", CBOR_EUNSUPPORTED},
    {"5e", CBOR_EUNSUPPORTED},
    {"7c", CBOR_EUNSUPPORTED},
    {"9d", CBOR_EUNSUPPORTED},
    {"be", CBOR_EUNSUPPORTED},
    {"fc", CBOR_EUNSUPPORTED},
    /* non-minimal heads */
    {"18 05", CBOR_ENONMINIMAL},
    {"18 17", CBOR_ENONMINIMAL},
    {"19 00 ff", CBOR_ENONMINIMAL},
    {"1a 00 00 ff ff", CBOR_ENONMINIMAL},
    {"1b 00 00 00 00 ff ff ff ff", CBOR_ENONMINIMAL},
    {"1b 00 00 00 00 00 00 00 00", CBOR_ENONMINIMAL},
    {"38 00", CBOR_ENONMINIMAL},
    {"58 00", CBOR_ENONMINIMAL},
    {"79 00 01 61", CBOR_ENONMINIMAL},
    {"98 01 01", CBOR_ENONMINIMAL},
    {"b8 00", CBOR_ENONMINIMAL},
    {"81 18 00", CBOR_ENONMINIMAL},
    /* text that is not UTF-8 */
    {"61 ff", CBOR_EUTF8},
    {"61 80", CBOR_EUTF8},
    {"64 80 90 80 80", CBOR_EUTF8}, /* a continuation byte cannot lead */
    {"61 c3", CBOR_EUTF8},
    {"62 c3 41", CBOR_EUTF8},
    {"62 c0 80", CBOR_EUTF8},	    /* overlong NUL */
    {"63 e0 80 80", CBOR_EUTF8},    /* overlong */
    {"64 f0 80 80 80", CBOR_EUTF8}, /* overlong */
    {"63 ed a0 80", CBOR_EUTF8},    /* surrogate U+D800 */
    {"64 f4 90 80 80", CBOR_EUTF8}, /* U+110000 */
    {"64 f8 88 80 80", CBOR_EUTF8},
    {"63 f0 90 85", CBOR_EUTF8},    /* cut inside the string, not the input */
    {"64 fc 80 80 80", CBOR_EUTF8}, /* a 6-byte lead would decode in range */
    {"82 61 c3 80", CBOR_EUTF8},    /* the sequence goes on past the string */
    {"81 61 fe", CBOR_EUTF8},
    /* trailing bytes */
    {"00 00", CBOR_ETRAILING},
    {"80 80", CBOR_ETRAILING},
    {"a0 ff", CBOR_ETRAILING},
    {"62 61 62 63", CBOR_ETRAILING},
    {"82 01 02 03", CBOR_ETRAILING},
};

static void malformed(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n;
		uint8_t *b = unhex(bad[i].hex, &n);
		enum cbor_err err = cbor_check(b, n, CBOR_MAX_DEPTH);

		if (err != bad[i].err)
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].hex, cbor_strerror(err),
				 cbor_strerror(bad[i].err));
		free(b);
	}
	/* Good text at the edges of UTF-8. */
	static const char *const good[] = {"61 7f",	     "62 c2 80",       "62 df bf",
					   "63 e0 a0 80",    "63 ed 9f bf",    "63 ee 80 80",
					   "64 f0 90 80 80", "64 f4 8f bf bf", "60"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		size_t n;
		uint8_t *b = unhex(good[i], &n);

		if (cbor_check(b, n, 0) != CBOR_OK)
			fail_msg("%s rejected", good[i]);
		free(b);
	}
	assert_int_equal(cbor_check(NULL, 0, CBOR_MAX_DEPTH), CBOR_ETRUNC);
}

/* n containers, one inside the other, around a 0 (or, innermost, empty). */
static uint8_t *nest(size_t n, bool map, bool empty, size_t *len)
{
	uint8_t *b = malloc(2 * n + 1);

	*len = 0;
	for (size_t i = 0; i < n; i++) {
		if (empty && i == n - 1) {
			b[(*len)++] = map ? 0xa0 : 0x80;
			return b;
		}
		b[(*len)++] = map ? 0xa1 : 0x81;
		if (map)
			b[(*len)++] = 0x00; /* the key */
	}
	b[(*len)++] = 0x00;
	return b;
}

static void depth(void **state)
{
	size_t n;
	uint8_t *b;

	(void)state;
	for (int map = 0; map < 2; map++) {
		for (int empty = 0; empty < 2; empty++) {
			b = nest(16, map, empty, &n);
			assert_int_equal(cbor_check(b, n, 16), CBOR_OK);
			assert_int_equal(cbor_check(b, n, 15), CBOR_EDEPTH);
			free(b);
			b = nest(17, map, empty, &n);
			assert_int_equal(cbor_check(b, n, 16), CBOR_EDEPTH);
			assert_int_equal(cbor_check(b, n, 17), CBOR_EDEPTH); /* capped */
			assert_int_equal(cbor_check(b, n, 1000), CBOR_EDEPTH);
			free(b);
		}
	}
	/* A deep nest costs no stack: the walk is iterative. */
	b = nest(1000000, false, false, &n);
	assert_int_equal(cbor_check(b, n, CBOR_MAX_DEPTH), CBOR_EDEPTH);
	free(b);
	/* Depth 0: scalars only. */
	assert_int_equal(cbor_check("\x01", 1, 0), CBOR_OK);
	assert_int_equal(cbor_check("\x80", 1, 0), CBOR_EDEPTH);
	assert_int_equal(cbor_check("\x80", 1, -1), CBOR_EDEPTH);
	/* Siblings do not add up: depth is nesting, not count. */
	assert_int_equal(cbor_check("\x83\x81\x00\x81\x00\x81\x00", 7, 2), CBOR_OK);
	assert_int_equal(cbor_check("\x83\x81\x00\x81\x00\x81\x81\x00", 8, 2), CBOR_EDEPTH);
}

static void decoder_api(void **state)
{
	static const uint8_t in[] = {0x83, 0x20, 0x63, 'k', 'e', 'y', 0xf7, 0x01};
	struct cbor_dec d;
	struct cbor_item it;

	(void)state;
	cbor_dec_init(&d, in, sizeof(in));
	assert_true(cbor_next(&d, &it));
	assert_int_equal(it.type, CBOR_ARRAY);
	assert_int_equal(it.u, 3);
	assert_true(cbor_next(&d, &it));
	assert_int_equal(it.type, CBOR_NEGINT);
	assert_int_equal(it.u, 0);
	assert_true(cbor_next(&d, &it));
	assert_true(cbor_text_eq(&it, "key"));
	assert_false(cbor_text_eq(&it, "ke"));
	assert_false(cbor_text_eq(&it, "keys"));
	assert_ptr_equal(it.ptr, in + 3);
	/* An error sticks, and the position stays where it happened. */
	const uint8_t *at = d.p;
	assert_false(cbor_next(&d, &it));
	assert_int_equal(d.err, CBOR_EUNSUPPORTED);
	assert_false(cbor_next(&d, &it));
	assert_false(cbor_skip(&d, CBOR_MAX_DEPTH));
	assert_int_equal(d.err, CBOR_EUNSUPPORTED);
	assert_ptr_equal(d.p, at);

	/* Even when the next item would read well. */
	static const uint8_t nonmin[] = {0x18, 0x05, 0x01};
	cbor_dec_init(&d, nonmin, sizeof(nonmin));
	assert_false(cbor_next(&d, &it));
	assert_int_equal(d.err, CBOR_ENONMINIMAL);
	assert_false(cbor_next(&d, &it));
	assert_int_equal(d.err, CBOR_ENONMINIMAL);

	/* Simple values carry nothing but b. */
	static const uint8_t simple[] = {0x82, 0xf5, 0xf6};
	cbor_dec_init(&d, simple, sizeof(simple));
	assert_true(cbor_next(&d, &it) && cbor_next(&d, &it));
	assert_int_equal(it.type, CBOR_BOOL);
	assert_true(it.b);
	assert_int_equal(it.u, 0);
	assert_true(cbor_next(&d, &it));
	assert_int_equal(it.type, CBOR_NULL);
	assert_false(it.b);
	assert_int_equal(it.u, 0);
	assert_null(it.ptr);

	/* Bytes are not text, even when they spell the key. */
	static const uint8_t bytes[] = {0x43, 'k', 'e', 'y'};
	cbor_dec_init(&d, bytes, sizeof(bytes));
	assert_true(cbor_next(&d, &it));
	assert_int_equal(it.type, CBOR_BYTES);
	assert_false(cbor_text_eq(&it, "key"));

	/* The end of the input where an item should be. */
	cbor_dec_init(&d, in + 7, 1);
	assert_true(cbor_next(&d, &it));
	assert_false(cbor_next(&d, &it));
	assert_int_equal(d.err, CBOR_ETRUNC);
	cbor_dec_init(&d, NULL, 0);
	assert_false(cbor_skip(&d, CBOR_MAX_DEPTH));
	assert_int_equal(d.err, CBOR_ETRUNC);

	/* Every error has its own message. */
	for (int i = CBOR_OK; i <= CBOR_EUTF8; i++)
		for (int j = CBOR_OK; j < i; j++)
			assert_string_not_equal(cbor_strerror(i), cbor_strerror(j));
	assert_string_equal(cbor_strerror(99), "unknown CBOR error");
	assert_string_equal(cbor_strerror(-1), "unknown CBOR error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(rfc_vectors),  cmocka_unit_test(against_libcbor),
	    cmocka_unit_test(head_sizes),   cmocka_unit_test(message_by_hand),
	    cmocka_unit_test(message_pull), cmocka_unit_test(encoder_ints),
	    cmocka_unit_test(malformed),    cmocka_unit_test(depth),
	    cmocka_unit_test(decoder_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
