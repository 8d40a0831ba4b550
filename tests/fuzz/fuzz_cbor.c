/*
 * libFuzzer target for the CBOR decoder: no input may crash it or read out of bounds,
 * and since it accepts only preferred serialization, whatever cbor_check accepts must
 * re-encode, item by item, to exactly the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reencode(struct cbor_enc *e, const struct cbor_item *it)
{
	switch (it->type) {
	case CBOR_UINT:
		cbor_put_uint(e, it->u);
		break;
	case CBOR_NEGINT:
		cbor_put_negint(e, it->u);
		break;
	case CBOR_BYTES:
		cbor_put_bytes(e, it->ptr, it->len);
		break;
	case CBOR_TEXT:
		cbor_put_text(e, (const char *)it->ptr, it->len);
		break;
	case CBOR_ARRAY:
		cbor_put_array(e, it->u);
		break;
	case CBOR_MAP:
		cbor_put_map(e, it->u);
		break;
	case CBOR_BOOL:
		cbor_put_bool(e, it->b);
		break;
	case CBOR_NULL:
		cbor_put_null(e);
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cbor_dec d, s;
	struct cbor_item it;
	struct cbor_enc e;
	enum cbor_err err = cbor_check(data, size, CBOR_MAX_DEPTH);

	/* Any input, checked or not, walks item by item to its end or to an error. */
	cbor_dec_init(&d, data, size);
	while (d.p < d.end && cbor_next(&d, &it)) {
		if ((it.type == CBOR_BYTES || it.type == CBOR_TEXT) &&
		    (it.ptr < data || it.len > (size_t)(d.end - it.ptr)))
			abort();
	}
	/* Flat, it knows no depth and reads past the first item; but its errors are real. */
	if (d.p > d.end || d.err < CBOR_OK || d.err > CBOR_EUTF8 ||
	    (d.err != CBOR_OK && err == CBOR_OK))
		abort();
	if (err != CBOR_OK)
		return 0;
	/* Accepted: shallower limits may only add EDEPTH. */
	for (int depth = 0; depth < CBOR_MAX_DEPTH; depth++) {
		enum cbor_err e2 = cbor_check(data, size, depth);

		if (e2 != CBOR_OK && e2 != CBOR_EDEPTH)
			abort();
	}

	uint8_t *out = malloc(size);

	cbor_enc_init(&e, out, size);
	cbor_dec_init(&d, data, size);
	while (d.p < d.end) {
		/* Every item, from where it starts, skips cleanly (its depth only shrinks). */
		s = d;
		if (!cbor_skip(&s, CBOR_MAX_DEPTH) || s.p > s.end || s.p <= d.p)
			abort();
		if (d.p == data && s.p != d.end)
			abort();
		if (!cbor_next(&d, &it))
			abort();
		reencode(&e, &it);
	}
	if (cbor_enc_done(&e) != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	return 0;
}
