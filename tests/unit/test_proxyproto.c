/* The PROXY protocol: headers encoded byte for byte, parsed back, and hostile ones refused. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static struct sockaddr_storage addr(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(port);
		assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		s->sin_family = AF_INET;
		s->sin_port = htons(port);
		assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	}
	return ss;
}

static void assert_addr(const struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_storage want = addr(ip, port);
	size_t n =
	    want.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	assert_int_equal(ss->ss_family, want.ss_family);
	assert_memory_equal(ss, &want, n);
}

static long parse(const void *p, size_t n, struct pp_header *h, char *err)
{
	return pp_parse(p, n, h, err, PP_ERR_LEN);
}

static void expect_refused(const void *p, size_t n, const char *want)
{
	struct pp_header h;
	char err[PP_ERR_LEN] = "";

	long rc = parse(p, n, &h, err);
	if (rc != -1 || strcmp(err, want) != 0)
		print_error("got %ld \"%s\", want -1 \"%s\"\n", rc, err, want);
	assert_int_equal(rc, -1);
	assert_string_equal(err, want);
}

static void expect_refused_str(const char *s, const char *want)
{
	expect_refused(s, strlen(s), want);
}

static void v1_encoded(void **state)
{
	struct sockaddr_storage s = addr("192.0.2.7", 52282), d = addr("10.0.0.1", 5050);
	struct sockaddr_storage s6 = addr("2001:db8::7", 443), d6 = addr("::1", 80);
	uint8_t out[PP_OUT_MAX];
	size_t n;

	(void)state;
	n = pp_encode(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	assert_int_equal(n, strlen("PROXY TCP4 192.0.2.7 10.0.0.1 52282 5050\r\n"));
	assert_memory_equal(out, "PROXY TCP4 192.0.2.7 10.0.0.1 52282 5050\r\n", n);
	n = pp_encode(PP_V1, (struct sockaddr *)&s6, (struct sockaddr *)&d6, out, sizeof(out));
	assert_memory_equal(out, "PROXY TCP6 2001:db8::7 ::1 443 80\r\n", n);
	/* Mixed: the IPv4 one as IPv4-mapped IPv6. */
	n = pp_encode(PP_V1, (struct sockaddr *)&s6, (struct sockaddr *)&d, out, sizeof(out));
	assert_memory_equal(out, "PROXY TCP6 2001:db8::7 ::ffff:10.0.0.1 443 5050\r\n", n);
	/* No room: nothing. */
	assert_int_equal(pp_encode(PP_V1, (struct sockaddr *)&s, (struct sockaddr *)&d, out, 10),
			 0);
	/* Not IP: UNKNOWN. */
	struct sockaddr_storage u = {.ss_family = AF_UNIX};
	n = pp_encode(PP_V1, (struct sockaddr *)&u, (struct sockaddr *)&d, out, sizeof(out));
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", n);
	/* The longest line fits PP_OUT_MAX. */
	struct sockaddr_storage l1 = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	n = pp_encode(PP_V1, (struct sockaddr *)&l1, (struct sockaddr *)&l1, out, sizeof(out));
	assert_int_equal(n, 104);
}

static void v2_encoded(void **state)
{
	struct sockaddr_storage s = addr("192.0.2.7", 0x1234), d = addr("10.0.0.1", 0x5678);
	struct sockaddr_storage s6 = addr("2001:db8::7", 443), d6 = addr("::1", 80);
	uint8_t out[PP_OUT_MAX];
	size_t n;

	(void)state;
	n = pp_encode(PP_V2, (struct sockaddr *)&s, (struct sockaddr *)&d, out, sizeof(out));
	static const uint8_t v4[] = {0x21, 0x11, 0, 12, 192,  0,    2,	  7,
				     10,   0,	 0, 1,	0x12, 0x34, 0x56, 0x78};
	assert_int_equal(n, 28);
	assert_memory_equal(out, sig, 12);
	assert_memory_equal(out + 12, v4, sizeof(v4));
	n = pp_encode(PP_V2, (struct sockaddr *)&s6, (struct sockaddr *)&d6, out, sizeof(out));
	assert_int_equal(n, 52);
	assert_int_equal(out[12], 0x21);
	assert_int_equal(out[13], 0x21);
	assert_int_equal(out[15], 36);
	assert_int_equal(out[16], 0x20);
	assert_int_equal(out[51], 80);
	assert_int_equal(pp_encode(PP_V2, (struct sockaddr *)&s6, (struct sockaddr *)&d6, out, 51),
			 0);
	/* Not IP: LOCAL, no addresses. */
	struct sockaddr_storage u = {.ss_family = AF_UNIX};
	n = pp_encode(PP_V2, (struct sockaddr *)&u, (struct sockaddr *)&d, out, sizeof(out));
	assert_int_equal(n, 16);
	assert_int_equal(out[12], 0x20);
	assert_int_equal(out[13], 0);
}

/* Whatever we encode parses back to the same addresses, whole or not at all. */
static void round_trip(void **state)
{
	const char *ips[][2] = {
	    {"192.0.2.7", "10.0.0.1"}, {"2001:db8::7", "fe80::1"}, {"0.0.0.0", "255.255.255.255"}};
	uint8_t out[PP_OUT_MAX + 8];
	struct pp_header h;
	char err[PP_ERR_LEN];

	(void)state;
	for (int v = PP_V1; v <= PP_V2; v++) {
		for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
			struct sockaddr_storage s = addr(ips[i][0], 65535), d = addr(ips[i][1], 0);
			size_t n = pp_encode(v, (struct sockaddr *)&s, (struct sockaddr *)&d, out,
					     PP_OUT_MAX);
			assert_true(n > 0);
			/* Any prefix is a good start, never a header nor an error. */
			for (size_t k = 0; k < n; k++)
				assert_int_equal(parse(out, k, &h, err), 0);
			/* The client's own bytes behind it are not the header's. */
			memcpy(out + n, "GET /", 5);
			assert_int_equal(parse(out, n + 5, &h, err), (long)n);
			assert_int_equal(h.version, v);
			assert_false(h.local);
			assert_addr(&h.src, ips[i][0], 65535);
			assert_addr(&h.dst, ips[i][1], 0);
		}
	}
}

static void v1_parsed(void **state)
{
	struct pp_header h;
	char err[PP_ERR_LEN];
	const char *unk = "PROXY UNKNOWN ff:: whatever\r\nGET";

	(void)state;
	assert_int_equal(parse("PROXY TCP6 ::1 2001:db8::1 1 65535\r\n", 36, &h, err), 36);
	assert_addr(&h.src, "::1", 1);
	assert_addr(&h.dst, "2001:db8::1", 65535);
	assert_int_equal(parse(unk, strlen(unk), &h, err), (long)strlen(unk) - 3);
	assert_true(h.local);
	assert_int_equal(parse("PROXY UNKNOWN\r\n", 15, &h, err), 15);
	assert_true(h.local);
}

static void v1_hostile(void **state)
{
	char big[300];

	(void)state;
	expect_refused_str("GET / HTTP/1.1\r\n", "not a PROXY header");
	expect_refused_str("PROXZ", "not a PROXY header");
	expect_refused_str("proxy TCP4", "not a PROXY header");
	expect_refused_str("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
			   "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	expect_refused_str("PROXY \r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1: expected 6 fields");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "v1: too many fields");
	expect_refused_str("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", "v1: too many fields");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "v1: too many fields");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "v1: bad source port");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "v1: bad source port");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1: bad source port");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n", "v1: bad destination port");
	expect_refused_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", "v1: bad destination port");
	expect_refused_str("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1: bad source address");
	expect_refused_str("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "v1: bad source address");
	expect_refused_str("PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "v1: bad destination address");
	expect_refused_str("PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n", "v1: expected 6 fields");
	expect_refused("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33, "v1: expected 6 fields");
	/* No CRLF within 107 bytes: refused, however much more came. */
	memset(big, 'A', sizeof(big));
	memcpy(big, "PROXY TCP4 ", 11);
	struct pp_header h;
	char err[PP_ERR_LEN];
	assert_int_equal(parse(big, 106, &h, err), 0);
	expect_refused(big, 107, "v1: no CRLF within 107 bytes");
	expect_refused(big, sizeof(big), "v1: no CRLF within 107 bytes");
	/* CRLF as bytes 106 and 107: the longest line, still taken to its end. */
	memcpy(big + 105, "\r\n", 2);
	expect_refused(big, 107, "v1: expected 6 fields");
}

static size_t v2_head(uint8_t *p, uint8_t vc, uint8_t fp, uint16_t len)
{
	memcpy(p, sig, 12);
	p[12] = vc;
	p[13] = fp;
	p[14] = (uint8_t)(len >> 8);
	p[15] = (uint8_t)len;
	return 16;
}

static void v2_parsed_and_hostile(void **state)
{
	uint8_t p[PP_IN_MAX + 64];
	struct pp_header h;
	char err[PP_ERR_LEN];

	(void)state;
	memset(p, 0, sizeof(p));
	/* LOCAL, with addresses and TLVs to skip: the real addresses stand. */
	v2_head(p, 0x20, 0x11, 20);
	assert_int_equal(parse(p, 36, &h, err), 36);
	assert_true(h.local);
	/* PROXY over UNSPEC: the same. */
	v2_head(p, 0x21, 0x00, 0);
	assert_int_equal(parse(p, 16, &h, err), 16);
	assert_true(h.local);
	/* IPv6 with a TLV behind the addresses; only what the length says is the header's. */
	v2_head(p, 0x21, 0x21, 40);
	p[16] = 0x20, p[17] = 0x01, p[31] = 7; /* 2001::7 */
	p[47] = 1;			       /* ::1 */
	p[48] = 0x10, p[49] = 0x92;	       /* port 4242 */
	p[50] = 0, p[51] = 80;
	assert_int_equal(parse(p, 55, &h, err), 0);
	assert_int_equal(parse(p, 60, &h, err), 56);
	assert_addr(&h.src, "2001::7", 4242);
	assert_addr(&h.dst, "::1", 80);
	/* The largest we take, and one more. */
	v2_head(p, 0x21, 0x11, PP_V2_LEN_MAX);
	assert_int_equal(parse(p, PP_IN_MAX - 1, &h, err), 0);
	assert_int_equal(parse(p, PP_IN_MAX, &h, err), PP_IN_MAX);
	v2_head(p, 0x21, 0x11, PP_V2_LEN_MAX + 1);
	expect_refused(p, 16, "v2: longer than 536 bytes");
	v2_head(p, 0x21, 0x11, 0xffff);
	expect_refused(p, 16, "v2: longer than 536 bytes");
	/* Wrong version, command, family, protocol, lengths. */
	static const struct {
		uint8_t vc, fp;
		uint16_t len;
		const char *why;
	} bad[] = {
	    {0x11, 0x11, 12, "v2: version is not 2"},
	    {0x22, 0x11, 12, "v2: command is neither LOCAL nor PROXY"},
	    {0x21, 0x12, 12, "v2: not TCP over IPv4 or IPv6"},
	    {0x21, 0x31, 216, "v2: not TCP over IPv4 or IPv6"},
	    {0x21, 0x11, 11, "v2: too short for IPv4 addresses"},
	    {0x21, 0x21, 12, "v2: too short for IPv6 addresses"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused(p, v2_head(p, bad[i].vc, bad[i].fp, bad[i].len) + bad[i].len,
			       bad[i].why);
	/* A broken signature, refused at its first wrong byte. */
	v2_head(p, 0x21, 0x11, 12);
	p[5] = 'X';
	expect_refused(p, 6, "not a PROXY header");
	expect_refused("\r\n\r\n\0\r\nQUIX", 11, "not a PROXY header");
	assert_int_equal(parse("\r\n\r\n\0\r\nQUI", 10, &h, err), 0);
	expect_refused("\0", 1, "not a PROXY header");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(v1_encoded), cmocka_unit_test(v2_encoded),
	    cmocka_unit_test(round_trip), cmocka_unit_test(v1_parsed),
	    cmocka_unit_test(v1_hostile), cmocka_unit_test(v2_parsed_and_hostile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
