/*
 * A small, pure, strict CBOR (RFC 8949) codec for the control channel: buffer in,
 * values out; no I/O, no allocation.
 *
 * The subset: unsigned and negative integers, byte and text strings, arrays, maps,
 * false, true and null, all with definite lengths. The encoder always writes the
 * shortest head (RFC 8949 §4.2.1), and the decoder accepts nothing else, so a message
 * has exactly one encoding; map keys are written in whatever fixed order the caller uses.
 */
#ifndef QPROXY_CBOR_H
#define QPROXY_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The deepest nesting of arrays and maps cbor_skip() and cbor_check() will follow. */
#define CBOR_MAX_DEPTH 16

/*
 * The encoder. Calls after the buffer filled up do nothing but remember it, so a
 * message is built without checks and judged once, by cbor_enc_done().
 */
struct cbor_enc {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};

void cbor_enc_init(struct cbor_enc *e, uint8_t *buf, size_t cap);
void cbor_put_uint(struct cbor_enc *e, uint64_t v);
void cbor_put_int(struct cbor_enc *e, int64_t v); /* negative -> major type 1 */
/* The value -1-n, as the decoder reports it: reaches -2^64, which int64_t cannot. */
void cbor_put_negint(struct cbor_enc *e, uint64_t n);
void cbor_put_bytes(struct cbor_enc *e, const void *p, size_t n);
void cbor_put_text(struct cbor_enc *e, const char *s, size_t n); /* s must be UTF-8 */
void cbor_put_cstr(struct cbor_enc *e, const char *s);		 /* text, strlen */
void cbor_put_array(struct cbor_enc *e, uint64_t n);		 /* n items follow */
void cbor_put_map(struct cbor_enc *e, uint64_t npairs);		 /* key, value, key, ... follow */
void cbor_put_bool(struct cbor_enc *e, bool v);
void cbor_put_null(struct cbor_enc *e);
/* Bytes written, or 0 when the buffer was too small (then nothing is usable). */
size_t cbor_enc_done(const struct cbor_enc *e);

enum cbor_type {
	CBOR_UINT,
	CBOR_NEGINT,
	CBOR_BYTES,
	CBOR_TEXT,
	CBOR_ARRAY,
	CBOR_MAP,
	CBOR_BOOL,
	CBOR_NULL
};

struct cbor_item {
	enum cbor_type type;
	/* UINT: the value; NEGINT: n where the value is -1-n; ARRAY: items; MAP: pairs */
	uint64_t u;
	const uint8_t *ptr; /* BYTES/TEXT: the payload (inside the input buffer); else NULL */
	size_t len;	    /* BYTES/TEXT: its length */
	bool b;		    /* BOOL */
};

enum cbor_err {
	CBOR_OK,
	CBOR_ETRUNC,	   /* the input ends inside an item's head, or where an item should start */
	CBOR_ELEN,	   /* a string or container length past the end of the input */
	CBOR_EUNSUPPORTED, /* tag, float, simple value other than false/true/null, indefinite
			      length, or reserved additional information 28-30 */
	CBOR_ENONMINIMAL,  /* a head longer than needed */
	CBOR_EDEPTH,	   /* arrays and maps nested deeper than allowed */
	CBOR_ETRAILING,	   /* bytes after the item (cbor_check) */
	CBOR_EUTF8,	   /* a text string that is not valid UTF-8 */
};

/* The decoder: p moves from the start of the input to end; err is an enum cbor_err. */
struct cbor_dec {
	const uint8_t *p, *end;
	int err;
};

void cbor_dec_init(struct cbor_dec *d, const void *buf, size_t len);
/*
 * Read the next item's head (and for BYTES/TEXT its payload). Containers are entered:
 * their children follow. Returns false and sets d->err on any error; once in error,
 * stays in error.
 */
bool cbor_next(struct cbor_dec *d, struct cbor_item *it);
/*
 * Skip one whole item (containers with all their contents), with at most max_depth
 * arrays and maps open at once (0: scalars only; capped at CBOR_MAX_DEPTH).
 */
bool cbor_skip(struct cbor_dec *d, int max_depth);
/*
 * Is [buf, buf+len) exactly one well-formed item of our subset, nested at most max_depth?
 * Use it to validate a whole message before interpreting it.
 */
enum cbor_err cbor_check(const void *buf, size_t len, int max_depth);
const char *cbor_strerror(int err);

/*
 * Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
 * The length of the character s starts with (1..4), within n > 0 bytes; 0 when the
 * bytes there are not one.
 */
size_t cbor_utf8_char(const uint8_t *s, size_t n);

/* Is the item the text string s? For matching map keys. */
bool cbor_text_eq(const struct cbor_item *it, const char *s);

#endif
