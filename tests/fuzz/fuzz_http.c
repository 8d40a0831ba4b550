/*
 * libFuzzer target for the metrics endpoint's request-head parser: no input may crash
 * it or read out of bounds; it answers one of its statuses, waits for more only below
 * METRICS_HEAD_MAX, and answers the same for any longer input that starts with what it
 * answered (an answer never depends on bytes it has not seen).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool head, head_more;

	/* A copy of exactly size bytes, so that ASan sees any read past them. */
	char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	int st = metrics_parse_request(p, size, &head);
	if (st != 0 && st != 200 && st != 400 && st != 404 && st != 405 && st != 431)
		abort();
	if (st == 0 && size >= METRICS_HEAD_MAX)
		abort();
	/* HEAD is told only of a head it could read whole, with the right method. */
	if (head && st != 200 && st != 404)
		abort();
	/* The same bytes and one more: an answer, once given, stays. */
	if (st != 0 && st != 431 && size > 0) {
		char *q = malloc(size + 1);
		if (!q)
			abort();
		memcpy(q, p, size);
		q[size] = '\n';
		if (metrics_parse_request(q, size + 1, &head_more) != st || head_more != head)
			abort();
		free(q);
	}
	free(p);
	return 0;
}
