/*
 * libFuzzer target for the PROXY protocol parser: no input may crash it or read
 * out of bounds; it answers "more" only below PP_IN_MAX and never claims more
 * bytes than it was given; and a header it accepts, encoded again, parses back
 * to the same addresses.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pp_header h, again;
	char err[PP_ERR_LEN];
	uint8_t out[PP_OUT_MAX];

	/* A copy of exactly size bytes, so that ASan sees any read past them. */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	long n = pp_parse(p, size, &h, err, sizeof(err));
	if (n < -1 || n > (long)size || (n == 0 && size >= PP_IN_MAX))
		abort();
	if (n == -1 && (err[0] == '\0' || strlen(err) >= sizeof(err)))
		abort();
	if (n > 0 && !h.local) {
		if ((h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6) ||
		    h.src.ss_family != h.dst.ss_family)
			abort();
		size_t m = pp_encode(h.version, (struct sockaddr *)&h.src,
				     (struct sockaddr *)&h.dst, out, sizeof(out));
		if (m == 0 || pp_parse(out, m, &again, err, sizeof(err)) != (long)m ||
		    again.local || memcmp(&again.src, &h.src, addr_len(&h.src)) != 0 ||
		    memcmp(&again.dst, &h.dst, addr_len(&h.dst)) != 0)
			abort();
	}
	free(p);
	return 0;
}
