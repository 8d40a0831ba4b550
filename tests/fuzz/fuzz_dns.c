/*
 * libFuzzer target for the DNS query parser and reply builder: no input may crash
 * them or read out of bounds; the decider sees only a hostname (lowercase, no
 * empty label, at most 253 characters) in a well-formed IN query; and every reply
 * is well-formed: the query's ID, QR set, at most one question (the query's own,
 * byte for byte), an A record only for an A or ANY query the decider gave an
 * address, at most one OPT, nothing after the last record, within the size limit.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum dns_verdict verdict;
static int calls;

static uint16_t at16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static enum dns_verdict decide(void *ctx, const char *name, uint16_t qtype, struct in_addr *addr)
{
	size_t n = strlen(name);

	(void)ctx, (void)qtype;
	calls++;
	if (n == 0 || n > 253 || name[0] == '.' || name[n - 1] == '.' || strstr(name, ".."))
		abort();
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
		      name[i] == '-' || name[i] == '_' || name[i] == '.'))
			abort();
	addr->s_addr = htonl(0x7f000101);
	return verdict;
}

/* A reply as a client reads it: the header's counts match what follows, exactly. */
static void check_reply(const uint8_t *r, size_t n, const struct dns_query *q, size_t limit)
{
	if (n < 12 || n > limit || at16(r) != q->id || !(at16(r + 2) & DNS_QR))
		abort();
	unsigned qd = at16(r + 4), an = at16(r + 6), ns = at16(r + 8), ar = at16(r + 10);
	if (qd > 1 || an > 1 || ns != 0 || ar > 1 || (an && !qd))
		abort();
	size_t pos = 12;
	if (qd) {
		if (q->question_len == 0 || n - pos < q->question_len ||
		    memcmp(r + pos, q->question, q->question_len) != 0)
			abort();
		pos += q->question_len;
	}
	if (an) {
		if (verdict != DNS_ADDR || (q->qtype != DNS_TYPE_A && q->qtype != DNS_TYPE_ANY))
			abort();
		static const uint8_t rr[12] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, DNS_TTL, 0, 4};
		if (n - pos < 16 || memcmp(r + pos, rr, sizeof(rr)) != 0)
			abort();
		pos += 16;
	}
	if (ar) {
		if (!q->edns || n - pos < 11 || r[pos] != 0 || at16(r + pos + 1) != DNS_TYPE_OPT ||
		    at16(r + pos + 9) != 0)
			abort();
		pos += 11;
	}
	if (pos != n)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[DNS_REPLY_MAX];
	struct dns_query q;

	/* A copy of exactly size bytes, so that ASan sees any read past them. */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	int parsed = dns_parse_query(p, size, &q);
	for (int v = DNS_ADDR; v <= DNS_NXDOMAIN; v++) {
		for (int tcp = 0; tcp <= 1; tcp++) {
			verdict = (enum dns_verdict)v;
			calls = 0;
			size_t n = dns_answer(p, size, tcp, decide, NULL, out);
			if ((parsed != 0) != (n == 0))
				abort();
			bool asks = parsed == 0 && q.rcode == DNS_RCODE_NOERROR && q.hostname;
			if (calls != asks)
				abort();
			size_t limit = tcp || (q.edns && q.edns_size >= DNS_REPLY_MAX)
					   ? DNS_REPLY_MAX
				       : q.edns ? q.edns_size
						: 512;
			if (n > 0)
				check_reply(out, n, &q, limit);
			/* What the decider said is what the client reads. */
			bool a = q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_ANY;
			if (asks && at16(out + 6) != (v == DNS_ADDR && a))
				abort();
			if (asks && DNS_RCODE(at16(out + 2)) != (v == DNS_NXDOMAIN ? 3 : 0))
				abort();
		}
	}
	free(p);
	return 0;
}
