/*
 * libFuzzer target for the egress request as the host half receives it over
 * vsock, from a peer that may not be the enclave: no input may crash the frame
 * reader or the decoder, or read out of bounds; a request it accepts encodes
 * and decodes again to the same. The reply decoder, which the enclave half
 * runs on the host's answer, gets the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct egress_req r, again;
	struct egress_reply rep, rep_again;
	char err[EGRESS_REASON_MAX];
	uint8_t buf[4 + EGRESS_FRAME_MAX];

	/* A copy of exactly size bytes, so that ASan sees any read past them. */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	long want = egress_frame_len(p, size);
	if (want > 4 + EGRESS_FRAME_MAX || (size < 4 && want != 0))
		abort();
	if (egress_req_decode(p, size, &r, err, sizeof(err)) == 0) {
		if (r.port == 0 || r.host[0] == '\0')
			abort();
		size_t n = egress_req_encode(&r, buf, sizeof(buf));
		if (n == 0 || egress_frame_len(buf, n) != (long)n ||
		    egress_req_decode(buf + 4, n - 4, &again, err, sizeof(err)) != 0 ||
		    memcmp(&r, &again, sizeof(r)) != 0)
			abort();
	}
	if (egress_reply_decode(p, size, &rep, err, sizeof(err)) == 0) {
		if (rep.status > EGRESS_STATUS_MAX)
			abort();
		size_t n = egress_reply_encode(&rep, buf, sizeof(buf));
		if (n == 0 ||
		    egress_reply_decode(buf + 4, n - 4, &rep_again, err, sizeof(err)) != 0 ||
		    memcmp(&rep, &rep_again, sizeof(rep)) != 0)
			abort();
	}
	free(p);
	return 0;
}
