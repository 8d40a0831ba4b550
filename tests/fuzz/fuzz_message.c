/*
 * libFuzzer target for control messages as the enclave half receives them from
 * the host: no input may crash the decoder, read out of bounds or allocate more
 * than it holds; and what it accepts must encode and decode again to the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t again[MSG_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg m, d;
	char err[128];

	if (msg_decode(data, size, &m, err, sizeof(err)) == 0 && m.type >= MSG_HELLO &&
	    m.type <= MSG_STATS) {
		size_t n = msg_encode(&m, again, sizeof(again));
		if (n == 0 || msg_decode(again, n, &d, err, sizeof(err)) != 0)
			abort();
		/* Each type carries its own fields; the others are not sent again. */
		if (d.type != m.type)
			abort();
		if (m.type == MSG_HELLO &&
		    (d.nrules != m.nrules || strcmp(d.version, m.version) != 0 ||
		     (m.nrules && memcmp(d.rules, m.rules, m.nrules * sizeof(*m.rules)) != 0)))
			abort();
		if (m.type == MSG_LOG && (d.level != m.level || strcmp(d.text, m.text) != 0))
			abort();
		if (m.type >= MSG_HEARTBEAT && d.seq != m.seq)
			abort();
		if (m.type == MSG_STATS &&
		    (d.nstats != m.nstats ||
		     (m.nstats && memcmp(d.stats, m.stats, m.nstats * sizeof(*m.stats)) != 0)))
			abort();
		msg_free(&d);
	}
	msg_free(&m);
	return 0;
}
