/*
 * The DNS server: queries parsed and answered byte for byte, hostile ones refused,
 * a real UDP and TCP round trip on 127.0.0.1 through the loop, and resolv.conf
 * rewritten in place. loop_timer_set is wrapped (see the Makefile) so that the TCP
 * read deadline can be made short.
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dns.h"
#include "loop.h"

/* Timers of this length (the TCP read deadline) are armed for 50 ms instead. */
static int64_t shrink_ms;

int __real_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms);
int __wrap_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms)
{
	return __real_loop_timer_set(l, t, shrink_ms && ms == shrink_ms ? 50 : ms);
}

/* The decider: what it was asked, and what it answers. */
static struct {
	int calls;
	char name[DNS_NAME_LEN];
	uint16_t qtype;
	enum dns_verdict verdict;
} dec;

static enum dns_verdict decide(void *ctx, const char *name, uint16_t qtype, struct in_addr *addr)
{
	(void)ctx;
	dec.calls++;
	snprintf(dec.name, sizeof(dec.name), "%s", name);
	dec.qtype = qtype;
	inet_pton(AF_INET, "127.0.1.7", addr);
	return dec.verdict;
}

static void decide_reset(enum dns_verdict v)
{
	memset(&dec, 0, sizeof(dec));
	dec.verdict = v;
}

/* "api.Example.com" in wire form at p; its length. */
static size_t put_name(uint8_t *p, const char *name)
{
	size_t n = 0;

	while (*name) {
		const char *dot = strchr(name, '.');
		size_t l = dot ? (size_t)(dot - name) : strlen(name);
		p[n++] = (uint8_t)l;
		memcpy(p + n, name, l);
		n += l;
		name += l + (dot != NULL);
	}
	p[n++] = 0;
	return n;
}

/* A query with one question: id 0x1234, RD set, class IN unless said. */
static size_t query(uint8_t *p, const char *name, uint16_t qtype)
{
	static const uint8_t head[12] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};

	memcpy(p, head, sizeof(head));
	size_t n = 12 + put_name(p + 12, name);
	p[n++] = (uint8_t)(qtype >> 8);
	p[n++] = (uint8_t)qtype;
	p[n++] = 0;
	p[n++] = 1;
	return n;
}

/* Append an OPT record with size, version and rdata; bumps ARCOUNT. */
static size_t add_opt(uint8_t *p, size_t n, uint16_t size, uint8_t version, const uint8_t *rdata,
		      uint16_t rdlen)
{
	uint8_t rr[11] = {0,	   0, 41, (uint8_t)(size >> 8),	 (uint8_t)size, 0,
			  version, 0, 0,  (uint8_t)(rdlen >> 8), (uint8_t)rdlen};

	memcpy(p + n, rr, sizeof(rr));
	if (rdlen)
		memcpy(p + n + sizeof(rr), rdata, rdlen);
	p[11]++;
	return n + sizeof(rr) + rdlen;
}

static uint16_t at16(const uint8_t *p, size_t off)
{
	return (uint16_t)(p[off] << 8 | p[off + 1]);
}

/* The reply's header: id, flags, and the four counts. */
static void assert_header(const uint8_t *r, uint16_t flags, int qd, int an, int ns, int ar)
{
	assert_int_equal(at16(r, 0), 0x1234);
	assert_int_equal(at16(r, 2), flags);
	assert_int_equal(at16(r, 4), qd);
	assert_int_equal(at16(r, 6), an);
	assert_int_equal(at16(r, 8), ns);
	assert_int_equal(at16(r, 10), ar);
}

static size_t answer(const uint8_t *q, size_t n, uint8_t *out)
{
	return dns_answer(q, n, false, decide, NULL, out);
}

#define FLAGS (DNS_QR | DNS_RD | DNS_RA)

static void a_record_for_an_allowed_name(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	size_t n = query(q, "Api.EXAMPLE.com", DNS_TYPE_A);

	(void)state;
	decide_reset(DNS_ADDR);
	size_t m = answer(q, n, r);
	assert_int_equal(dec.calls, 1);
	assert_string_equal(dec.name, "api.example.com");
	assert_int_equal(dec.qtype, 1);
	assert_int_equal(m, n + 16);
	assert_header(r, FLAGS, 1, 1, 0, 0);
	/* The question as sent, its case kept. */
	assert_memory_equal(r + 12, q + 12, n - 12);
	static const uint8_t rr[16] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, DNS_TTL, 0, 4, 127, 0, 1, 7};
	assert_memory_equal(r + n, rr, sizeof(rr));
}

static void other_verdicts_and_types(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	size_t n = query(q, "api.example.com", 28);

	(void)state;
	decide_reset(DNS_EMPTY);
	assert_int_equal(answer(q, n, r), n);
	assert_int_equal(dec.qtype, 28);
	assert_header(r, FLAGS, 1, 0, 0, 0);

	decide_reset(DNS_NXDOMAIN);
	assert_int_equal(answer(q, n, r), n);
	assert_header(r, FLAGS | DNS_RCODE_NXDOMAIN, 1, 0, 0, 0);

	/* An address for a type that is not A: no record of the wrong type, NOERROR. */
	n = query(q, "api.example.com", 15);
	decide_reset(DNS_ADDR);
	assert_int_equal(answer(q, n, r), n);
	assert_header(r, FLAGS, 1, 0, 0, 0);
	/* ANY gets the A record. */
	n = query(q, "api.example.com", DNS_TYPE_ANY);
	assert_int_equal(answer(q, n, r), n + 16);
	assert_header(r, FLAGS, 1, 1, 0, 0);
}

static void flags_echoed(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	size_t n = query(q, "a.b", DNS_TYPE_A);

	(void)state;
	decide_reset(DNS_ADDR);
	q[2] = 0;	      /* RD clear */
	q[3] = DNS_CD | 0x20; /* CD, and the AD bit, which is not echoed */
	assert_int_equal(answer(q, n, r), n + 16);
	assert_header(r, DNS_QR | DNS_RA | DNS_CD, 1, 1, 0, 0);
}

static void names_no_policy_can_allow(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	const char *names[] = {"", "*.example.com", "a b.example.com", "caf\xc3\xa9.example"};

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		decide_reset(DNS_ADDR);
		size_t n = query(q, names[i], DNS_TYPE_A);
		assert_int_equal(answer(q, n, r), n);
		assert_header(r, FLAGS | DNS_RCODE_NXDOMAIN, 1, 0, 0, 0);
		assert_int_equal(dec.calls, 0);
	}
	/* A dot inside a label ("a.b" as one label) would read as two labels: not a hostname. */
	static const uint8_t dotted[] = {0x12, 0x34, 1,	  0, 0,	  1,   0,   0, 0, 0, 0, 0, 3,
					 'a',  '.',  'b', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1};
	decide_reset(DNS_ADDR);
	assert_int_equal(answer(dotted, sizeof(dotted), r), sizeof(dotted));
	assert_int_equal(DNS_RCODE(at16(r, 2)), DNS_RCODE_NXDOMAIN);
	assert_int_equal(dec.calls, 0);
}

static void longest_name(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	char name[300], want[300];

	(void)state;
	/* Four labels of 63, 63, 63 and 61: 253 characters, 255 bytes on the wire. */
	snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.61s",
		 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
		 "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
		 "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
	assert_int_equal(strlen(name), 253);
	for (size_t i = 0; i <= strlen(name); i++)
		want[i] = name[i] == 'A' ? 'a' : name[i];
	decide_reset(DNS_ADDR);
	size_t n = query(q, name, DNS_TYPE_A);
	assert_int_equal(answer(q, n, r), n + 16);
	assert_string_equal(dec.name, want);

	/* One more character: 256 bytes on the wire, FORMERR. */
	strcat(name, "d");
	n = query(q, name, DNS_TYPE_A);
	decide_reset(DNS_ADDR);
	assert_int_equal(answer(q, n, r), 12);
	assert_header(r, FLAGS | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	assert_int_equal(dec.calls, 0);
}

static void dropped(void **state)
{
	uint8_t q[512], r[DNS_REPLY_MAX];
	size_t n = query(q, "a.b", DNS_TYPE_A);

	(void)state;
	decide_reset(DNS_ADDR);
	for (size_t k = 0; k < 12; k++)
		assert_int_equal(answer(q, k, r), 0);
	q[2] |= 0x80; /* a response */
	assert_int_equal(answer(q, n, r), 0);
	assert_int_equal(dec.calls, 0);
}

/* Each bad query, and what it gets: rcode, and whether the question is echoed. */
static void refused_without_deciding(void **state)
{
	uint8_t q[600], r[DNS_REPLY_MAX];
	size_t n;

	(void)state;
	decide_reset(DNS_ADDR);
	/* Opcode STATUS: NOTIMP, the opcode echoed, no question. */
	n = query(q, "a.b", DNS_TYPE_A);
	q[2] |= 2 << 3;
	assert_int_equal(answer(q, n, r), 12);
	assert_header(r, FLAGS | (2 << 11) | DNS_RCODE_NOTIMP, 0, 0, 0, 0);

	/* QDCOUNT 0 and 2. */
	for (uint8_t qd = 0; qd <= 2; qd += 2) {
		n = query(q, "a.b", DNS_TYPE_A);
		q[5] = qd;
		assert_int_equal(answer(q, n, r), 12);
		assert_header(r, FLAGS | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	}

	/* A compression pointer in the question, and the reserved label types. */
	static const uint8_t kinds[] = {0xc0, 0x40, 0x80};
	for (size_t i = 0; i < sizeof(kinds); i++) {
		n = query(q, "a.b", DNS_TYPE_A);
		q[14] = kinds[i]; /* where the label "b" starts */
		q[15] = 12;
		assert_int_equal(answer(q, n, r), 12);
		assert_header(r, FLAGS | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	}

	/* Every cut of the question: FORMERR. */
	size_t full = query(q, "api.example.com", DNS_TYPE_A);
	for (n = 12; n < full; n++) {
		assert_int_equal(answer(q, n, r), 12);
		assert_header(r, FLAGS | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	}

	/* Class CH, and a zone transfer: NOTIMP with the question. */
	n = query(q, "version.bind", 16);
	q[n - 1] = 3;
	assert_int_equal(answer(q, n, r), n);
	assert_header(r, FLAGS | DNS_RCODE_NOTIMP, 1, 0, 0, 0);
	n = query(q, "example.com", DNS_TYPE_AXFR);
	assert_int_equal(answer(q, n, r), n);
	assert_header(r, FLAGS | DNS_RCODE_NOTIMP, 1, 0, 0, 0);

	/* An answer or authority record in a query, a byte after the question. */
	for (int i = 0; i < 3; i++) {
		n = query(q, "a.b", DNS_TYPE_A);
		if (i < 2)
			q[7 + 2 * i] = 1;
		else
			q[n++] = 0;
		assert_int_equal(answer(q, n, r), n - (i == 2));
		assert_header(r, FLAGS | DNS_RCODE_FORMERR, 1, 0, 0, 0);
	}
	assert_int_equal(dec.calls, 0);
}

static void edns(void **state)
{
	uint8_t q[600], r[DNS_REPLY_MAX];
	static const uint8_t cookie[12] = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
	static const uint8_t opt_ok[11] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};

	(void)state;
	decide_reset(DNS_ADDR);
	size_t n = query(q, "a.b", DNS_TYPE_A);
	n = add_opt(q, n, 4096, 0, cookie, sizeof(cookie));
	size_t qlen = 5 + 4; /* "a.b" on the wire, type, class */
	assert_int_equal(answer(q, n, r), 12 + qlen + 16 + 11);
	assert_header(r, FLAGS, 1, 1, 0, 1);
	assert_memory_equal(r + 12 + qlen + 16, opt_ok, sizeof(opt_ok));
	assert_int_equal(dec.calls, 1);

	/* Version 1: BADVERS, 16: 0 in the header, 1 in the OPT. */
	n = add_opt(q, query(q, "a.b", DNS_TYPE_A), 4096, 1, NULL, 0);
	assert_int_equal(answer(q, n, r), 12 + qlen + 11);
	assert_header(r, FLAGS, 1, 0, 0, 1);
	assert_int_equal(r[12 + qlen + 5], 1);
	assert_int_equal(dec.calls, 1);

	/* Two OPTs, an option longer than its record, an OPT with a name: FORMERR, no OPT. */
	n = query(q, "a.b", DNS_TYPE_A);
	n = add_opt(q, n, 4096, 0, NULL, 0);
	n = add_opt(q, n, 4096, 0, NULL, 0);
	assert_int_equal(answer(q, n, r), 12 + qlen);
	assert_header(r, FLAGS | DNS_RCODE_FORMERR, 1, 0, 0, 0);
	n = add_opt(q, query(q, "a.b", DNS_TYPE_A), 4096, 0, cookie, sizeof(cookie) - 1);
	assert_int_equal(answer(q, n, r), 12 + qlen);
	assert_header(r, FLAGS | DNS_RCODE_FORMERR, 1, 0, 0, 0);
	static const uint8_t named_opt[] = {0xc0, 12, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0};
	n = query(q, "a.b", DNS_TYPE_A);
	memcpy(q + n, named_opt, sizeof(named_opt));
	n += sizeof(named_opt);
	q[11] = 1;
	assert_int_equal(answer(q, n, r), 12 + qlen);
	assert_header(r, FLAGS | DNS_RCODE_FORMERR, 1, 0, 0, 0);

	/* Another record in the additional section (a TSIG, say) is stepped over. */
	static const uint8_t tsig[] = {0xc0, 12, 0, 250, 0, 255, 0, 0, 0, 0, 0, 2, 9, 9};
	n = query(q, "a.b", DNS_TYPE_A);
	memcpy(q + n, tsig, sizeof(tsig));
	n += sizeof(tsig);
	q[11] = 1;
	assert_int_equal(answer(q, n, r), 12 + qlen + 16);
	assert_header(r, FLAGS, 1, 1, 0, 0);
	assert_int_equal(dec.calls, 2);
}

static void truncation(void **state)
{
	uint8_t q[600], r[DNS_REPLY_MAX];
	struct dns_query pq;
	struct in_addr a = {htonl(0x7f000102)};
	size_t n = add_opt(q, query(q, "api.example.com", DNS_TYPE_A), 4096, 0, NULL, 0);
	size_t qlen = 17 + 4;

	(void)state;
	assert_int_equal(dns_parse_query(q, n, &pq), 0);
	assert_int_equal(pq.rcode, DNS_RCODE_NOERROR);
	assert_int_equal(dns_build_reply(&pq, DNS_RCODE_NOERROR, &a, r, DNS_REPLY_MAX),
			 12 + qlen + 16 + 11);
	/* One byte short of the answer: no answer, TC set, the question and OPT kept. */
	assert_int_equal(dns_build_reply(&pq, DNS_RCODE_NOERROR, &a, r, 12 + qlen + 16 + 10),
			 12 + qlen + 11);
	assert_header(r, FLAGS | DNS_TC, 1, 0, 0, 1);
	/* Short of the question too: the header alone. */
	assert_int_equal(dns_build_reply(&pq, DNS_RCODE_NOERROR, &a, r, 12 + qlen), 12);
	assert_header(r, FLAGS | DNS_TC, 0, 0, 0, 0);
	assert_int_equal(dns_build_reply(&pq, DNS_RCODE_NOERROR, &a, r, 11), 0);
}

/* A server on 127.0.0.1 at some free high port. */
static struct dns_server *server_up(struct loop *l, uint16_t *port)
{
	char err[256];
	struct dns_server *s = dns_server_new(l, decide, NULL);

	assert_non_null(s);
	for (*port = (uint16_t)(20000 + getpid() % 20000); *port < 60000; (*port)++)
		if (dns_server_listen(s, "127.0.0.1", *port, err, sizeof(err)) == 0)
			return s;
	fail_msg("no free port: %s", err);
	return NULL;
}

static int client(int type, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int r = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	assert_true(r == 0 || errno == EINPROGRESS);
	return fd;
}

/*
 * Run the loop until fd has given n bytes, or its end (EOF or an error), for at
 * most 5 s: what was read, or -2 when the time ran out first.
 */
static ssize_t drive_read(struct loop *l, int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	int64_t start = loop_now();

	while (got < n) {
		if (loop_now() - start > 5000)
			return -2;
		loop_once(l, 10);
		ssize_t k = read(fd, buf + got, n - got);
		if (k == 0 || (k < 0 && errno != EAGAIN))
			break;
		if (k > 0)
			got += (size_t)k;
	}
	return (ssize_t)got;
}

static void udp_round_trip(void **state)
{
	struct loop *l = loop_new();
	uint16_t port;
	struct dns_server *s = server_up(l, &port);
	uint8_t q[512], r[DNS_REPLY_MAX];
	char err[256];

	(void)state;
	decide_reset(DNS_ADDR);
	int fd = client(SOCK_DGRAM, port);
	size_t n = query(q, "api.example.com", DNS_TYPE_A);
	assert_int_equal(write(fd, q, n), n);
	assert_int_equal(drive_read(l, fd, r, n + 16), n + 16);
	assert_header(r, FLAGS, 1, 1, 0, 0);
	assert_int_equal(r[n + 15], 7);

	/* A malformed query gets FORMERR; a response nothing, so the next reply is for a good one.
	 */
	q[5] = 2;
	assert_int_equal(write(fd, q, n), n);
	assert_int_equal(drive_read(l, fd, r, 12), 12);
	assert_header(r, FLAGS | DNS_RCODE_FORMERR, 0, 0, 0, 0);
	q[5] = 1;
	q[2] |= 0x80;
	assert_int_equal(write(fd, q, n), n);
	q[2] &= 0x7f;
	q[1] = 0x35;
	assert_int_equal(write(fd, q, n), n);
	assert_int_equal(drive_read(l, fd, r, n + 16), n + 16);
	assert_int_equal(at16(r, 0), 0x1235);

	/* A datagram over DNS_QUERY_MAX is dropped whole; the next query is answered. */
	uint8_t *big = calloc(1, DNS_QUERY_MAX + 1);
	memcpy(big, q, n);
	assert_int_equal(write(fd, big, DNS_QUERY_MAX + 1), DNS_QUERY_MAX + 1);
	free(big);
	q[1] = 0x36;
	assert_int_equal(write(fd, q, n), n);
	assert_int_equal(drive_read(l, fd, r, n + 16), n + 16);
	assert_int_equal(at16(r, 0), 0x1236);

	/* Once per server; then an address in use, or not one: refused, named. */
	assert_int_equal(dns_server_listen(s, "127.0.0.1", port, err, sizeof(err)), -1);
	char want[64];
	snprintf(want, sizeof(want), "dns server: already listening on 127.0.0.1:%u", port);
	assert_string_equal(err, want);
	close(fd);
	dns_server_free(s);
	struct dns_server *t = dns_server_new(l, decide, NULL);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int busy = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(dns_server_listen(t, "127.0.0.1", port, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "bind udp 127.0.0.1:%u: Address already in use", port);
	assert_string_equal(err, want);
	close(busy);
	/* The TCP port taken: the UDP socket already bound is let go too. */
	busy = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(busy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(dns_server_listen(t, "127.0.0.1", port, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "bind tcp 127.0.0.1:%u: Address already in use", port);
	assert_string_equal(err, want);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(u, (struct sockaddr *)&sin, sizeof(sin)), 0);
	close(u);
	assert_int_equal(dns_server_listen(t, "localhost", port, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "bind udp localhost:%u: not an IPv4 address", port);
	assert_string_equal(err, want);
	close(busy);
	dns_server_free(t);
	loop_free(l);
}

/* Two queries in TCP frames, the second split across writes; then each reply in turn. */
static void tcp_round_trip(void **state)
{
	struct loop *l = loop_new();
	uint16_t port;
	struct dns_server *s = server_up(l, &port);
	uint8_t buf[1200], r[2 * (2 + DNS_REPLY_MAX)];

	(void)state;
	decide_reset(DNS_ADDR);
	int fd = client(SOCK_STREAM, port);
	size_t n = query(buf + 2, "api.example.com", DNS_TYPE_A);
	buf[0] = 0;
	buf[1] = (uint8_t)n;
	memcpy(buf + 2 + n, buf, 2 + n);
	buf[2 + n + 3] = 0x99; /* the second one's id */
	struct pollfd pfd = {fd, POLLOUT, 0};
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write(fd, buf, 2 + n + 5), 2 + n + 5);
	assert_int_equal(drive_read(l, fd, r, 2 + n + 16), 2 + n + 16);
	assert_int_equal(at16(r, 0), n + 16);
	assert_header(r + 2, FLAGS, 1, 1, 0, 0);
	assert_int_equal(write(fd, buf + 2 + n + 5, n - 3), n - 3);
	assert_int_equal(drive_read(l, fd, r, 2 + n + 16), 2 + n + 16);
	assert_int_equal(at16(r, 2), 0x1299);
	assert_int_equal(dec.calls, 2);

	/* Many queries sent before any reply is read: all answered, in order. */
	enum { MANY = 300 };
	uint8_t *many = malloc(MANY * (2 + n));
	for (int i = 0; i < MANY; i++) {
		memcpy(many + (size_t)i * (2 + n), buf, 2 + n);
		many[(size_t)i * (2 + n) + 3] = (uint8_t)i;
	}
	size_t sent = 0;
	uint8_t *replies = malloc(MANY * (2 + n + 16));
	ssize_t got = 0;
	int64_t start = loop_now();
	while (got < (ssize_t)(MANY * (2 + n + 16)) && loop_now() - start < 10000) {
		ssize_t k =
		    sent < MANY * (2 + n) ? write(fd, many + sent, MANY * (2 + n) - sent) : 0;
		if (k > 0)
			sent += (size_t)k;
		loop_once(l, 10);
		k = read(fd, replies + got, (size_t)(MANY * (2 + n + 16)) - (size_t)got);
		if (k > 0)
			got += k;
	}
	assert_int_equal(got, MANY * (2 + n + 16));
	for (int i = 0; i < MANY; i++)
		assert_int_equal(replies[(size_t)i * (2 + n + 16) + 3], (uint8_t)i);
	free(many);
	free(replies);

	/* Queries then the end of the client's stream: each is answered before the close. */
	int fd2 = client(SOCK_STREAM, port);
	struct pollfd pfd2 = {fd2, POLLOUT, 0};
	assert_int_equal(poll(&pfd2, 1, 5000), 1);
	enum { BURST = 100 };
	assert_true(BURST * (2 + n) <= DNS_QUERY_MAX);
	many = malloc(BURST * (2 + n));
	for (int i = 0; i < BURST; i++)
		memcpy(many + (size_t)i * (2 + n), buf, 2 + n);
	assert_int_equal(write(fd2, many, BURST * (2 + n)), BURST * (2 + n));
	assert_int_equal(shutdown(fd2, SHUT_WR), 0);
	replies = malloc(BURST * (2 + n + 16) + 1);
	assert_int_equal(drive_read(l, fd2, replies, BURST * (2 + n + 16) + 1),
			 BURST * (2 + n + 16));
	free(many);
	free(replies);
	close(fd2);

	/* A frame longer than any query: the client is closed. */
	assert_int_equal(write(fd, "\x10\x01", 2), 2);
	assert_int_equal(drive_read(l, fd, r, 1), 0);
	close(fd);
	dns_server_free(s);
	loop_free(l);
}

/* A client that sends half a query is closed at the deadline; an idle one too. */
static void tcp_read_deadline(void **state)
{
	struct loop *l = loop_new();
	uint16_t port;
	struct dns_server *s = server_up(l, &port);
	uint8_t r[64];

	(void)state;
	shrink_ms = DNS_TCP_IDLE_MS;
	int half = client(SOCK_STREAM, port), idle = client(SOCK_STREAM, port);
	struct pollfd pfd = {half, POLLOUT, 0};
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(write(half, "\x00\x20\x12\x34", 4), 4);
	assert_int_equal(drive_read(l, half, r, 1), 0);
	assert_int_equal(drive_read(l, idle, r, 1), 0);
	shrink_ms = 0;
	close(half);
	close(idle);
	dns_server_free(s);
	loop_free(l);
}

/* Past DNS_TCP_CLIENTS_MAX a client waits in the backlog until one leaves. */
static void tcp_clients_bounded(void **state)
{
	struct loop *l = loop_new();
	uint16_t port;
	struct dns_server *s = server_up(l, &port);
	uint8_t q[520], r[600];
	int fds[DNS_TCP_CLIENTS_MAX + 1];

	(void)state;
	decide_reset(DNS_EMPTY);
	size_t n = query(q + 2, "a.b", DNS_TYPE_A);
	q[0] = 0;
	q[1] = (uint8_t)n;
	for (int i = 0; i <= DNS_TCP_CLIENTS_MAX; i++) {
		fds[i] = client(SOCK_STREAM, port);
		struct pollfd pfd = {fds[i], POLLOUT, 0};
		assert_int_equal(poll(&pfd, 1, 5000), 1);
		/* Each of the first ones answered: it was accepted before the next one comes. */
		if (i < DNS_TCP_CLIENTS_MAX) {
			assert_int_equal(write(fds[i], q, 2 + n), 2 + n);
			assert_int_equal(drive_read(l, fds[i], r, 2 + n), 2 + n);
		}
	}
	int last = fds[DNS_TCP_CLIENTS_MAX];
	assert_int_equal(write(last, q, 2 + n), 2 + n);
	/* The listener is not polled while full: passes of the loop accept nothing. */
	for (int i = 0; i < 20; i++)
		loop_once(l, 0);
	assert_int_equal(read(last, r, sizeof(r)), -1);
	assert_int_equal(errno, EAGAIN);
	close(fds[0]);
	assert_int_equal(drive_read(l, last, r, 2 + n), 2 + n);
	assert_header(r + 2, FLAGS, 1, 0, 0, 0);
	for (int i = 1; i <= DNS_TCP_CLIENTS_MAX; i++)
		close(fds[i]);
	dns_server_free(s);
	loop_free(l);
}

/* dig's output for args against the server at port, the loop driven meanwhile. */
static const char *dig(struct loop *l, uint16_t port, const char *a, const char *b, const char *c)
{
	static char out[8192];
	char at[32];
	int p[2];
	pid_t pid;
	posix_spawn_file_actions_t fa;

	snprintf(at, sizeof(at), "-p%u", port);
	char *argv[] = {"dig",	   "@127.0.0.1", at,	    "+tries=1", "+time=5",
			(char *)a, (char *)b,	 (char *)c, NULL};
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	assert_int_equal(posix_spawnp(&pid, "dig", &fa, NULL, argv, NULL), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	ssize_t got = drive_read(l, p[0], (uint8_t *)out, sizeof(out) - 1);
	assert_true(got > 0);
	out[got] = '\0';
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	return out;
}

/* A real client, over UDP and TCP: dig finds nothing to warn about. */
static void dig_agrees(void **state)
{
	struct loop *l = loop_new();
	uint16_t port;
	struct dns_server *s = server_up(l, &port);
	const char *o;

	(void)state;
	decide_reset(DNS_ADDR);
	for (int tcp = 0; tcp < 2; tcp++) {
		o = dig(l, port, tcp ? "+tcp" : "+notcp", "API.example.com", "A");
		assert_non_null(strstr(o, "status: NOERROR"));
		assert_non_null(strstr(o, "flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0"));
		assert_non_null(strstr(o, "\nAPI.example.com.\t10\tIN\tA\t127.0.1.7\n"));
		assert_null(strstr(o, "WARNING"));
		assert_string_equal(dec.name, "api.example.com");
	}
	decide_reset(DNS_EMPTY);
	o = dig(l, port, "+tcp", "api.example.com", "AAAA");
	assert_non_null(strstr(o, "status: NOERROR"));
	assert_non_null(strstr(o, "ANSWER: 0"));
	assert_int_equal(dec.qtype, 28);
	decide_reset(DNS_NXDOMAIN);
	o = dig(l, port, "+notcp", "denied.example.com", "A");
	assert_non_null(strstr(o, "status: NXDOMAIN"));
	assert_null(strstr(o, "WARNING"));
	o = dig(l, port, "+notcp", "version.bind", "CH");
	assert_non_null(strstr(o, "status: NOTIMP"));
	dns_server_free(s);
	loop_free(l);
}

static char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static void spit(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), strlen(text));
	close(fd);
}

#define BLOCK(ip)                                                                                  \
	"# BEGIN qproxy: the enclave's DNS server, rewritten by qproxy enclave at each start\n"    \
	"nameserver " ip "\n# END qproxy\n"
#define OLD "# from dhcp\nnameserver 10.0.0.2\nsearch corp.example\n"

static void resolvconf_in_place(void **state)
{
	char dir[] = "/tmp/qproxy-test-dns-XXXXXX", path[64], err[256];
	struct stat before, after;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/resolv.conf", dir);
	spit(path, OLD);
	assert_int_equal(stat(path, &before), 0);
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), 0);
	assert_string_equal(slurp(path), BLOCK("127.0.0.1") OLD);
	/* Again, with another address: our block replaced, the rest as it was. */
	assert_int_equal(resolvconf_write(path, "::1", err, sizeof(err)), 0);
	assert_string_equal(slurp(path), BLOCK("::1") OLD);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);

	/* Not an address: refused whole, the file untouched. */
	assert_int_equal(resolvconf_write(path, "dns.example", err, sizeof(err)), -1);
	char want[160];
	snprintf(want, sizeof(want), "resolv.conf %s: nameserver dns.example is not an IP address",
		 path);
	assert_string_equal(err, want);
	assert_string_equal(slurp(path), BLOCK("::1") OLD);
	unlink(path);

	/* Missing: made with our block alone. */
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), 0);
	assert_string_equal(slurp(path), BLOCK("127.0.0.1"));

	/* An earlier block cut short (no END line): it goes, to the end of the file. */
	spit(path, OLD BLOCK("127.0.0.9"));
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), 0);
	assert_string_equal(slurp(path), BLOCK("127.0.0.1") OLD);
	spit(path, OLD "# BEGIN qproxy: the enclave's DNS server, rewritten by qproxy enclave "
		       "at each start\nnameserver 127.0.0.9\n");
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), 0);
	assert_string_equal(slurp(path), BLOCK("127.0.0.1") OLD);

	/* Over 1 MiB: refused, the file untouched. */
	assert_int_equal(truncate(path, 1 << 20), 0);
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "resolv.conf %s: larger than 1048576 bytes", path);
	assert_string_equal(err, want);
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_size, 1 << 20);
	assert_string_equal(slurp(path), BLOCK("127.0.0.1") OLD);
	unlink(path);
	rmdir(dir);

	/* A directory that is not there: the error names the file. */
	assert_int_equal(resolvconf_write(path, "127.0.0.1", err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "open resolv.conf %s: No such file or directory", path);
	assert_string_equal(err, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_record_for_an_allowed_name),
	    cmocka_unit_test(other_verdicts_and_types),
	    cmocka_unit_test(flags_echoed),
	    cmocka_unit_test(names_no_policy_can_allow),
	    cmocka_unit_test(longest_name),
	    cmocka_unit_test(dropped),
	    cmocka_unit_test(refused_without_deciding),
	    cmocka_unit_test(edns),
	    cmocka_unit_test(truncation),
	    cmocka_unit_test(udp_round_trip),
	    cmocka_unit_test(tcp_round_trip),
	    cmocka_unit_test(tcp_read_deadline),
	    cmocka_unit_test(tcp_clients_bounded),
	    cmocka_unit_test(dig_agrees),
	    cmocka_unit_test(resolvconf_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
