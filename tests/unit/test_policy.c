/* The egress policy: entries as written and printed, and every verdict on names and addresses. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

static struct policy_entry entry(const char *s)
{
	struct policy_entry e;
	char err[POLICY_ERR_LEN];

	if (policy_parse_entry(s, &e, err, sizeof(err)) != 0) {
		print_error("%s: %s\n", s, err);
		fail();
	}
	return e;
}

/* A policy from NULL-terminated lists; each entry's line is its index + 1. */
static void policy_of(struct policy *p, const char *const *allow, const char *const *deny)
{
	static struct policy_entry a[32], d[32];
	size_t i;

	for (i = 0; allow && allow[i]; i++) {
		a[i] = entry(allow[i]);
		a[i].line = (int)i + 1;
	}
	p->allow = (struct policy_list){a, i, 32};
	for (i = 0; deny && deny[i]; i++) {
		d[i] = entry(deny[i]);
		d[i].line = (int)i + 1;
	}
	p->deny = (struct policy_list){d, i, 32};
}

static void canonical(void **state)
{
	const char *const cases[][2] = {
	    {"api.example.com:443", "api.example.com:443"},
	    {"API.Example.COM.:443", "api.example.com:443"},
	    {"*.Example.com:1-1", "*.example.com:1"},
	    {"a_b-c.d:8000-8010", "a_b-c.d:8000-8010"},
	    {"x:1-65535", "x:*"},
	    {"x:*", "x:*"},
	    {"10.0.0.0/8:5432", "10.0.0.0/8:5432"},
	    {"10.1.2.3/32:1", "10.1.2.3:1"},
	    {"0.0.0.0/0:*", "0.0.0.0/0:*"},
	    {"[2001:DB8:0::/32]:443", "[2001:db8::/32]:443"},
	    {"[::1]:80", "[::1]:80"},
	    {"[::ffff:1.2.3.4]:80", "[::ffff:1.2.3.4]:80"},
	    {"169.254.169.254:80", "169.254.169.254:80"},
	};
	char buf[POLICY_ENTRY_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_entry e = entry(cases[i][0]);
		assert_string_equal(policy_entry_str(&e, buf, sizeof(buf)), cases[i][1]);
		struct policy_entry again = entry(buf);
		assert_memory_equal(&e, &again, sizeof(e));
	}
	struct policy_entry e = entry("*.a.b:1");
	assert_int_equal(e.kind, POLICY_SUFFIX);
	assert_string_equal(e.name, "a.b");
	e = entry("[2001:db8::/32]:443");
	assert_int_equal(e.kind, POLICY_CIDR);
	assert_int_equal(e.family, AF_INET6);
	assert_int_equal(e.prefix, 32);
}

static void bad_entries(void **state)
{
	const char *const cases[][2] = {
	    {"api.example.com", "api.example.com: no :PORT after the destination (a port, a "
				"range a-b, or *)"},
	    {"a:", "bad port : expected a port 1..65535, a range a-b, or *"},
	    {"a:0", "bad port 0: expected a port 1..65535, a range a-b, or *"},
	    {"a:65536", "bad port 65536: expected a port 1..65535, a range a-b, or *"},
	    {"a:080", "bad port 080: expected a port 1..65535, a range a-b, or *"},
	    {"a:+80", "bad port +80: expected a port 1..65535, a range a-b, or *"},
	    {"a:1-", "bad port 1-: expected a port 1..65535, a range a-b, or *"},
	    {"a:1-2-3", "bad port 1-2-3: expected a port 1..65535, a range a-b, or *"},
	    {"a:9-8", "port range 9-8 runs backwards"},
	    {"a:**", "bad port **: expected a port 1..65535, a range a-b, or *"},
	    {"*:443", "* is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
		      "letters, digits, - and _, at most 253 bytes)"},
	    {"*.:443", "*. is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
		       "letters, digits, - and _, at most 253 bytes)"},
	    {"a.*.b:443", "a.*.b is not a hostname, *.suffix, IP address or CIDR (a name: labels "
			  "of letters, digits, - and _, at most 253 bytes)"},
	    {"a..b:1", "a..b is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
		       "letters, digits, - and _, at most 253 bytes)"},
	    {".a:1", ".a is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
		     "letters, digits, - and _, at most 253 bytes)"},
	    {"a b:1", "a b is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
		      "letters, digits, - and _, at most 253 bytes)"},
	    {"::1:80", "::1:80: an IPv6 address goes in brackets, as [::1]:443"},
	    {"[::1:80", "[::1:80: no ] after ["},
	    {"[::1]80", "[::1]80: no :PORT after the destination (a port, a range a-b, or *)"},
	    {"[a.b]:80", "a.b in brackets is not an IPv6 address"},
	    {"[1.2.3.4]:80", "1.2.3.4 in brackets is not an IPv6 address"},
	    {"10.0.0.1/8:1", "10.0.0.1/8 has bits set past its /8 prefix"},
	    {"10.0.0.0/33:1", "bad prefix length /33: expected 0..32"},
	    {"10.0.0.0/:1", "bad prefix length /: expected 0..32"},
	    {"10.0.0.0/08:1", "bad prefix length /08: expected 0..32"},
	    {"[::/129]:1", "bad prefix length /129: expected 0..128"},
	    {"[fe80::1/10]:1", "fe80::1/10 has bits set past its /10 prefix"},
	    {"a/8:1", "a/8 is not a CIDR: expected ADDRESS/BITS"},
	};
	char err[POLICY_ERR_LEN], name[300];
	struct policy_entry e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (policy_parse_entry(cases[i][0], &e, err, sizeof(err)) != -1)
			fail_msg("%s parsed", cases[i][0]);
		assert_string_equal(err, cases[i][1]);
	}
	/* A name: labels of at most 63 bytes, 253 in all. */
	memset(name, 'a', 63);
	strcpy(name + 63, ".b:1");
	assert_int_equal(policy_parse_entry(name, &e, err, sizeof(err)), 0);
	name[63] = 'a';
	strcpy(name + 64, ".b:1");
	assert_int_equal(policy_parse_entry(name, &e, err, sizeof(err)), -1);
	for (size_t i = 0; i < 253; i++)
		name[i] = i % 2 ? '.' : 'a';
	strcpy(name + 253, ":1");
	assert_int_equal(policy_parse_entry(name, &e, err, sizeof(err)), 0);
	strcpy(name + 253, "a:1");
	name[253] = '.', name[254] = 'a';
	strcpy(name + 255, ":1");
	assert_int_equal(policy_parse_entry(name, &e, err, sizeof(err)), -1);
}

static void normalize(void **state)
{
	char out[POLICY_NAME_MAX + 1];

	(void)state;
	assert_int_equal(policy_normalize("Api.Example.COM.", out), 0);
	assert_string_equal(out, "api.example.com");
	assert_int_equal(policy_normalize("[2001:DB8::1]", out), 0);
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(policy_normalize("2001:0db8::0001", out), 0);
	assert_string_equal(out, "2001:db8::1");
	assert_int_equal(policy_normalize("10.0.0.1", out), 0);
	assert_string_equal(out, "10.0.0.1");
	char shown[POLICY_SHOWN_LEN], longer[100];
	assert_string_equal(policy_shown("a\nb\x1b c\xc3\xa9", shown), "a?b??c??");
	memset(longer, 'x', 99);
	longer[99] = '\0';
	assert_int_equal(strlen(policy_shown(longer, shown)), 60);
	const char *const bad[] = {"",	   ".",	   "a..b", "a b", "a/b",	 "*.a",
				   "a:80", "a\\b", "..",   "[a]", "\xc3\xa9.com"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (policy_normalize(bad[i], out) != -1)
			fail_msg("%s normalized to %s", bad[i], out);
}

static void check(const struct policy *p, const char *host, uint16_t port, enum policy_verdict want,
		  int want_line)
{
	const struct policy_entry *rule = NULL;
	enum policy_verdict v = policy_check_name(p, host, port, &rule);

	if (v != want || (rule ? rule->line : 0) != want_line)
		fail_msg("%s:%u: verdict %d by line %d, want %d by line %d", host, port, v,
			 rule ? rule->line : 0, want, want_line);
}

static void names(void **state)
{
	const char *const allow[] = {"api.example.com:443",
				     "*.amazonaws.com:443",
				     "10.0.0.0/8:5432",
				     "web.example.org:8000-8010",
				     "[2001:db8::/32]:*",
				     "1.2.3.4:80",
				     "*.internal.example.com:443",
				     NULL};
	const char *const deny[] = {"*.internal.example.com:*", "10.9.0.0/16:*",
				    "web.example.org:8005", NULL};
	struct policy p;

	(void)state;
	policy_of(&p, allow, deny);
	check(&p, "api.example.com", 443, POLICY_ALLOWED, 1);
	check(&p, "api.example.com", 80, POLICY_NO_MATCH, 0);
	check(&p, "example.com", 443, POLICY_NO_MATCH, 0);
	check(&p, "xapi.example.com", 443, POLICY_NO_MATCH, 0);
	check(&p, "s3.amazonaws.com", 443, POLICY_ALLOWED, 2);
	check(&p, "a.b.s3.amazonaws.com", 443, POLICY_ALLOWED, 2);
	check(&p, "amazonaws.com", 443, POLICY_NO_MATCH, 0); /* *. is below the name only */
	check(&p, "xamazonaws.com", 443, POLICY_NO_MATCH, 0);
	check(&p, "web.example.org", 8000, POLICY_ALLOWED, 4);
	check(&p, "web.example.org", 8010, POLICY_ALLOWED, 4);
	check(&p, "web.example.org", 8011, POLICY_NO_MATCH, 0);
	check(&p, "web.example.org", 8005, POLICY_DENIED, 3); /* deny wins */
	check(&p, "db.internal.example.com", 443, POLICY_DENIED, 1);
	check(&p, "internal.example.com", 443, POLICY_NO_MATCH, 0);
	/* IP literals meet the CIDR entries, and names never do. */
	check(&p, "10.1.2.3", 5432, POLICY_ALLOWED, 3);
	check(&p, "10.9.2.3", 5432, POLICY_DENIED, 2);
	check(&p, "11.0.0.1", 5432, POLICY_NO_MATCH, 0);
	check(&p, "1.2.3.4", 80, POLICY_ALLOWED, 6);
	check(&p, "1.2.3.5", 80, POLICY_NO_MATCH, 0);
	check(&p, "2001:db8::1", 1, POLICY_ALLOWED, 5);
	check(&p, "2001:db9::1", 1, POLICY_NO_MATCH, 0);
	check(&p, "10.0.0.0", 5432, POLICY_ALLOWED, 3);
	/* An empty policy denies all. */
	struct policy none = {0};
	check(&none, "api.example.com", 443, POLICY_NO_MATCH, 0);
}

static struct sockaddr_storage sa_of(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
	} else {
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
	}
	return ss;
}

static void check_addr(const struct policy *p, const char *ip, uint16_t port,
		       enum policy_verdict want, enum policy_special want_special, int want_line)
{
	struct sockaddr_storage ss = sa_of(ip, port),
				own[2] = {sa_of("192.0.2.7", 0), sa_of("2001:db8:1::7", 0)};
	const struct policy_entry *rule = NULL;
	enum policy_special sp;
	enum policy_verdict v = policy_check_addr(p, (struct sockaddr *)&ss, own, 2, &sp, &rule);

	if (v != want || sp != want_special || (rule ? rule->line : 0) != want_line)
		fail_msg("%s port %u: verdict %d (%s) by line %d, want %d (%s) by line %d", ip,
			 port, v, policy_special_name(sp), rule ? rule->line : 0, want,
			 policy_special_name(want_special), want_line);
	assert_int_equal(policy_special((struct sockaddr *)&ss, own, 2), want_special);
}

/* What a name resolves to: deny entries and the special ranges, which a name cannot open. */
static void addresses(void **state)
{
	const char *const allow[] = {
	    "0.0.0.0/0:*",  "169.254.169.254:80", "127.0.0.0/8:6379",  "[::/0]:*",
	    "192.0.2.7:22", "[fe80::/10]:443",	  "169.254.0.0/15:81", NULL};
	const char *const deny[] = {"10.0.0.0/8:*", "[2001:db8:dead::/48]:*", NULL};
	struct policy p;

	(void)state;
	policy_of(&p, allow, deny);
	check_addr(&p, "93.184.216.34", 443, POLICY_ALLOWED, POLICY_ORDINARY, 0);
	check_addr(&p, "10.1.1.1", 443, POLICY_DENIED, POLICY_ORDINARY, 1);
	check_addr(&p, "::ffff:10.1.1.1", 443, POLICY_DENIED, POLICY_ORDINARY, 1);
	check_addr(&p, "2001:db8:dead::1", 443, POLICY_DENIED, POLICY_ORDINARY, 2);
	/* The metadata service: only the entry that names it, on its port; /0 is no name. */
	check_addr(&p, "169.254.169.254", 80, POLICY_ALLOWED, POLICY_LINK_LOCAL, 2);
	check_addr(&p, "169.254.169.254", 443, POLICY_NO_MATCH, POLICY_LINK_LOCAL, 0);
	check_addr(&p, "169.254.1.1", 81, POLICY_NO_MATCH, POLICY_LINK_LOCAL, 0); /* /15 is wider */
	check_addr(&p, "::ffff:169.254.169.254", 443, POLICY_NO_MATCH, POLICY_LINK_LOCAL, 0);
	check_addr(&p, "fe80::1", 443, POLICY_ALLOWED, POLICY_LINK_LOCAL, 6);
	check_addr(&p, "fe80::1", 80, POLICY_NO_MATCH, POLICY_LINK_LOCAL, 0);
	check_addr(&p, "127.0.0.1", 6379, POLICY_ALLOWED, POLICY_LOOPBACK, 3);
	check_addr(&p, "127.0.0.1", 22, POLICY_NO_MATCH, POLICY_LOOPBACK, 0);
	check_addr(&p, "::1", 22, POLICY_NO_MATCH, POLICY_LOOPBACK, 0);
	check_addr(&p, "0.0.0.0", 22, POLICY_NO_MATCH, POLICY_UNSPECIFIED, 0);
	check_addr(&p, "::", 22, POLICY_NO_MATCH, POLICY_UNSPECIFIED, 0);
	check_addr(&p, "192.0.2.7", 22, POLICY_ALLOWED, POLICY_OWN, 5);
	check_addr(&p, "192.0.2.7", 80, POLICY_NO_MATCH, POLICY_OWN, 0);
	check_addr(&p, "2001:db8:1::7", 80, POLICY_NO_MATCH, POLICY_OWN, 0);
	check_addr(&p, "192.0.2.8", 80, POLICY_ALLOWED, POLICY_ORDINARY, 0);
}

static void dns_ports(void **state)
{
	const char *const allow[] = {"api.example.com:443",
				     "api.example.com:80",
				     "*.example.com:8443",
				     "api.example.com:443",
				     "api.example.com:9000-9003",
				     "api.example.com:1-1000",
				     "api.example.com:*",
				     "10.0.0.0/8:22",
				     NULL};
	const char *const deny[] = {"api.example.com:9001", NULL};
	struct policy p;
	uint16_t ports[16];

	(void)state;
	policy_of(&p, allow, deny);
	size_t n = policy_name_ports(&p, "api.example.com", ports, 16);
	const uint16_t want[] = {80, 443, 8443, 9000, 9002, 9003};
	assert_int_equal(n, 6);
	assert_memory_equal(ports, want, sizeof(want));
	assert_int_equal(policy_name_ports(&p, "api.example.com", ports, 2), 2);
	assert_int_equal(policy_name_ports(&p, "other.example.com", ports, 16), 1);
	assert_int_equal(ports[0], 8443);
	assert_int_equal(policy_name_ports(&p, "example.net", ports, 16), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(canonical), cmocka_unit_test(bad_entries), cmocka_unit_test(normalize),
	    cmocka_unit_test(names),	 cmocka_unit_test(addresses),	cmocka_unit_test(dns_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
