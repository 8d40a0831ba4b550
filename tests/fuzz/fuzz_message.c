/*
 * libFuzzer target for control messages as the enclave half receives them from
 * the host, and for the status reply as `qproxy status` receives it: no input may
 * crash the decoder, read out of bounds or allocate more than it holds; and what
 * it accepts must encode and decode again to the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t again[MSG_STATUS_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg m, d;
	char err[128];

	if (msg_decode(data, size, &m, err, sizeof(err)) == 0 && m.type >= MSG_HELLO &&
	    m.type <= MSG_TIME) {
		size_t n = msg_encode(&m, again, sizeof(again));
		if (n == 0 || msg_decode(again, n, &d, err, sizeof(err)) != 0)
			abort();
		/* Each type carries its own fields; the others are not sent again. */
		if (d.type != m.type)
			abort();
		if ((m.type == MSG_HELLO || m.type == MSG_STATUS) &&
		    (d.nrules != m.nrules || strcmp(d.version, m.version) != 0 ||
		     (m.nrules && memcmp(d.rules, m.rules, m.nrules * sizeof(*m.rules)) != 0)))
			abort();
		if (m.type == MSG_LOG && (d.level != m.level || strcmp(d.text, m.text) != 0))
			abort();
		if (((m.type >= MSG_HEARTBEAT && m.type <= MSG_STATS) || m.type >= MSG_TIME_REQ) &&
		    d.seq != m.seq)
			abort();
		if (m.type == MSG_TIME && d.time_ns != m.time_ns)
			abort();
		/* The app's fields one by one: the struct's padding is not the codec's. */
		const struct msg_app *a = &m.app, *b = &d.app;
		if ((m.type == MSG_APP || m.type == MSG_STATUS) &&
		    (d.has_app != m.has_app ||
		     (m.has_app &&
		      (strcmp(a->command, b->command) != 0 || a->pid != b->pid ||
		       a->running != b->running || a->uptime_ms != b->uptime_ms ||
		       a->restarts != b->restarts || a->exits != b->exits ||
		       a->status != b->status || a->signal != b->signal))))
			abort();
		if ((m.type == MSG_STATS || m.type == MSG_STATUS) &&
		    (d.nstats != m.nstats ||
		     (m.nstats && memcmp(d.stats, m.stats, m.nstats * sizeof(*m.stats)) != 0)))
			abort();
		if (m.type == MSG_STATUS &&
		    (d.cid != m.cid || d.connected != m.connected ||
		     strcmp(d.peer_version, m.peer_version) != 0 ||
		     d.has_peer_stats != m.has_peer_stats || d.npeer_stats != m.npeer_stats ||
		     (m.npeer_stats && memcmp(d.peer_stats, m.peer_stats,
					      m.npeer_stats * sizeof(*m.peer_stats)) != 0) ||
		     d.npeer_egress != m.npeer_egress ||
		     (m.npeer_egress && memcmp(d.peer_egress, m.peer_egress,
					       m.npeer_egress * sizeof(*m.peer_egress)) != 0)))
			abort();
		/* Egress counters: the host half's in STATUS, the enclave half's in STATS. */
		if ((m.type == MSG_STATS || m.type == MSG_STATUS) &&
		    (d.negress != m.negress ||
		     (m.negress && memcmp(d.egress, m.egress, m.negress * sizeof(*m.egress)) != 0)))
			abort();
		msg_free(&d);
	}
	msg_free(&m);
	return 0;
}
