/* Control messages: every type round-trips, hostile bytes are refused, and config differences are
 * named. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"
#include "message.h"

static uint8_t buf[MSG_MAX];

static void collect(void *arg, const char *line);
static void expect_refused(const uint8_t *p, size_t n, const char *want);

static struct rule in_rule(uint32_t vsock, uint16_t host, uint16_t enclave)
{
	return (struct rule){
	    .dir = RULE_INBOUND, .vsock_port = vsock, .host_port = host, .enclave_port = enclave};
}

static struct rule out_rule(uint32_t vsock, const char *name, uint16_t port, uint32_t addr)
{
	struct rule r = {
	    .dir = RULE_OUTBOUND, .vsock_port = vsock, .tcp_port = port, .enclave_address = addr};
	snprintf(r.hostname, sizeof(r.hostname), "%s", name);
	return r;
}

static void decode_ok(size_t n, struct msg *m)
{
	char err[128];

	assert_true(n > 0);
	int rc = msg_decode(buf, n, m, err, sizeof(err));
	if (rc != 0)
		print_error("decode: %s\n", err);
	assert_int_equal(rc, 0);
}

static void hello_round_trip(void **state)
{
	struct rule rules[] = {in_rule(9000, 80, 8080),
			       out_rule(7777, "api.example.com", 443, 0x7f000002)};
	struct msg m = {
	    .type = MSG_HELLO, .proto = MSG_PROTO, .role = 1, .rules = rules, .nrules = 2};
	struct msg d;

	(void)state;
	strcpy(m.version, "9.8.7");
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_HELLO);
	assert_int_equal(d.proto, MSG_PROTO);
	assert_int_equal(d.role, 1);
	assert_string_equal(d.version, "9.8.7");
	assert_int_equal(d.nrules, 2);
	assert_int_equal(d.rules[0].dir, RULE_INBOUND);
	assert_int_equal(d.rules[0].vsock_port, 9000);
	assert_int_equal(d.rules[0].host_port, 80);
	assert_int_equal(d.rules[0].enclave_port, 8080);
	assert_int_equal(d.rules[1].dir, RULE_OUTBOUND);
	assert_string_equal(d.rules[1].hostname, "api.example.com");
	assert_int_equal(d.rules[1].tcp_port, 443);
	assert_int_equal(d.rules[1].enclave_address, 0x7f000002);
	assert_int_equal(d.egress_port, 0);
	msg_free(&d);

	/* [egress]'s port goes along when there is one, and only then. */
	m.egress_port = 8001;
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.egress_port, 8001);
	assert_int_equal(d.nrules, 2);
	msg_free(&d);
	m.egress_port = UINT32_MAX - 1; /* the largest a config takes */
	assert_true(msg_encode(&m, buf, sizeof(buf)) <= msg_hello_size(rules, 2, m.egress_port));
}

static void other_types_round_trip(void **state)
{
	struct msg_stat st[2] = {{9000, 1, 2, 3, 4, 5, 6, 100},
				 {7777, 0, UINT64_MAX, 0, 1ull << 40, 7, 0, 0}};
	struct msg m = {.type = MSG_LOG, .level = 2};
	struct msg d;

	(void)state;
	strcpy(m.text, "2026-11-22T19:16:14.400Z WARN  something; with \"quotes\"");
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_LOG);
	assert_int_equal(d.level, 2);
	assert_string_equal(d.text, m.text);
	msg_free(&d);

	m = (struct msg){.type = MSG_STATS, .seq = 42, .stats = st, .nstats = 2};
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.seq, 42);
	assert_int_equal(d.nstats, 2);
	assert_memory_equal(d.stats, st, sizeof(st));
	msg_free(&d);

	for (unsigned t = MSG_HEARTBEAT; t <= MSG_STATS_REQ; t++) {
		m = (struct msg){.type = t, .seq = 1u << 31};
		decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
		assert_int_equal(d.type, t);
		assert_int_equal(d.seq, 1u << 31);
		msg_free(&d);
	}
}

/* msg_stats_size() is what the largest STATS for these rules takes: with and without limits. */
static void stats_size_is_the_largest(void **state)
{
	struct rule rules[3] = {in_rule(9000, 80, 8080), in_rule(9001, 81, 8081),
				out_rule(7777, "h", 443, 0x7f000001)};
	struct msg_stat st[3];
	struct msg m = {.type = MSG_STATS, .seq = UINT64_MAX, .stats = st, .nstats = 3};

	(void)state;
	rules[1].max_connections = 1000000;
	for (size_t i = 0; i < 3; i++)
		st[i] = (struct msg_stat){rules[i].vsock_port,
					  UINT64_MAX,
					  UINT64_MAX,
					  UINT64_MAX,
					  UINT64_MAX,
					  UINT64_MAX,
					  rules[i].max_connections ? UINT64_MAX : 0,
					  rules[i].max_connections};
	assert_int_equal(msg_encode(&m, buf, sizeof(buf)), msg_stats_size(rules, 3));
	/* refused, at its largest, and 1000000, each behind a key byte */
	assert_int_equal(msg_stat_size(&rules[1]), msg_stat_size(&rules[0]) + (1 + 9) + (1 + 5));
}

static void assert_stat_equal(const struct msg_stat *a, const struct msg_stat *b)
{
	assert_int_equal(a->vsock_port, b->vsock_port);
	assert_int_equal(a->open, b->open);
	assert_int_equal(a->total, b->total);
	assert_int_equal(a->failed, b->failed);
	assert_int_equal(a->bytes_up, b->bytes_up);
	assert_int_equal(a->bytes_down, b->bytes_down);
	assert_int_equal(a->refused, b->refused);
	assert_int_equal(a->limit, b->limit);
}

/* The status socket's reply: the rules, this half's counters, the enclave's when it answered. */
static struct msg_app some_app(void)
{
	struct msg_app a = {.pid = 42,
			    .running = true,
			    .uptime_ms = 1ull << 33,
			    .restarts = 3,
			    .exits = 3,
			    .status = 137,
			    .signal = 9};

	strcpy(a.command, "/root/app.sh --port 5000 \xc3\xa9");
	return a;
}

static void app_and_time_round_trip(void **state)
{
	struct msg m = {.type = MSG_APP, .has_app = true, .app = some_app()}, d;

	(void)state;
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_APP);
	assert_true(d.has_app);
	assert_memory_equal(&d.app, &m.app, sizeof(m.app));
	msg_free(&d);

	/* A status reply carries the app when there is one, and only then. */
	m = (struct msg){.type = MSG_STATUS, .has_app = true, .app = some_app()};
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_true(d.has_app);
	assert_memory_equal(&d.app, &m.app, sizeof(m.app));
	msg_free(&d);
	m.has_app = false;
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_false(d.has_app);
	msg_free(&d);

	m = (struct msg){.type = MSG_TIME, .seq = 7, .time_ns = 1796000000123456789ull};
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_TIME);
	assert_int_equal(d.seq, 7);
	assert_int_equal(d.time_ns, 1796000000123456789ull);
	msg_free(&d);
	m = (struct msg){.type = MSG_TIME_REQ, .seq = 8};
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_TIME_REQ);
	assert_int_equal(d.seq, 8);
	msg_free(&d);
}

static void app_refused_when_malformed(void **state)
{
	/* {0: 7, 15: {0: 1}}: a command that is not text */
	const uint8_t not_text[] = {0xa2, 0x00, 0x07, 0x0f, 0xa1, 0x00, 0x01};
	/* {0: 7, 15: {1: 4294967296}}: a pid past 32 bits */
	const uint8_t big_pid[] = {0xa2, 0x00, 0x07, 0x0f, 0xa1, 0x01, 0x1b, 0x00,
				   0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00};
	/* {0: 7, 15: {}, 15: {}}: the app twice */
	const uint8_t twice[] = {0xa3, 0x00, 0x07, 0x0f, 0xa0, 0x0f, 0xa0};

	(void)state;
	expect_refused(not_text, sizeof(not_text), "app command: expected text");
	expect_refused(big_pid, sizeof(big_pid), "app pid or status: expected an unsigned integer");
	expect_refused(twice, sizeof(twice), "app given twice");
}

static void status_round_trip(void **state)
{
	struct rule rules[] = {in_rule(9000, 80, 8080),
			       out_rule(7777, "api.example.com", 443, 0x7f000002)};
	struct msg_stat host[2] = {{9000, 1, 2, 3, 4, 5, 6, 1000000},
				   {7777, 0, UINT64_MAX, 0, 1ull << 40, 7, 0, 0}};
	struct msg_stat encl[2] = {{9000, 6, 7, 8, 9, 10, 11, 12}, {7777, 0, 0, 0, 0, 0, 0, 0}};
	struct msg m = {.type = MSG_STATUS,
			.cid = 4,
			.connected = true,
			.rules = rules,
			.nrules = 2,
			.stats = host,
			.nstats = 2,
			.has_peer_stats = true,
			.peer_stats = encl,
			.npeer_stats = 2};
	struct msg d;

	(void)state;
	strcpy(m.version, "0.1.0");
	strcpy(m.peer_version, "0.0.9");
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_STATUS);
	assert_string_equal(d.version, "0.1.0");
	assert_int_equal(d.cid, 4);
	assert_true(d.connected);
	assert_string_equal(d.peer_version, "0.0.9");
	assert_int_equal(d.nrules, 2);
	assert_string_equal(d.rules[1].hostname, "api.example.com");
	assert_int_equal(d.nstats, 2);
	assert_true(d.has_peer_stats);
	assert_int_equal(d.npeer_stats, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_stat_equal(&d.stats[i], &host[i]);
		assert_stat_equal(&d.peer_stats[i], &encl[i]);
	}
	msg_free(&d);

	/* Without the enclave's counters, and not connected: no enclave rows at all. */
	m.connected = false;
	m.has_peer_stats = false;
	m.peer_version[0] = '\0';
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_false(d.connected);
	assert_false(d.has_peer_stats);
	assert_null(d.peer_stats);
	assert_int_equal(d.nstats, 2);
	msg_free(&d);

	/* The egress view, when there is one: each destination whole, in order. */
	struct msg_egress eg[2] = {{"api.example.com:443", 1, 2, 3, 4, UINT64_MAX, 7},
				   {"[2001:db8::1]:80", 0, 0, 9, 0, 0, 0}};
	assert_null(d.egress);
	m.egress = eg;
	m.negress = 2;
	m.peer_egress = eg + 1;
	m.npeer_egress = 1;
	decode_ok(msg_encode(&m, buf, sizeof(buf)), &d);
	assert_int_equal(d.negress, 2);
	assert_memory_equal(d.egress, eg, sizeof(eg));
	assert_int_equal(d.npeer_egress, 1);
	assert_memory_equal(d.peer_egress, eg + 1, sizeof(eg[1]));
	msg_free(&d);
	assert_null(d.egress);
	assert_null(d.peer_egress);
	/* The enclave half's, in its STATS. */
	struct msg st = {
	    .type = MSG_STATS, .seq = 9, .stats = host, .nstats = 2, .egress = eg, .negress = 2};
	decode_ok(msg_encode(&st, buf, sizeof(buf)), &d);
	assert_int_equal(d.type, MSG_STATS);
	assert_int_equal(d.negress, 2);
	assert_memory_equal(d.egress, eg, sizeof(eg));
	msg_free(&d);

	/* "connected" is a boolean, nothing else. */
	expect_refused((const uint8_t *)"\xa2\x00\x06\x0a\x01", 5, "connected");
}

/* A later version's keys, integer or text, are skipped; what we know still arrives. */
static void unknown_keys_ignored(void **state)
{
	struct cbor_enc e;
	struct msg d;

	(void)state;
	cbor_enc_init(&e, buf, sizeof(buf));
	cbor_put_map(&e, 4);
	cbor_put_uint(&e, 99);
	cbor_put_array(&e, 2);
	cbor_put_cstr(&e, "x");
	cbor_put_map(&e, 0);
	cbor_put_uint(&e, 0);
	cbor_put_uint(&e, MSG_HEARTBEAT);
	cbor_put_cstr(&e, "future");
	cbor_put_bytes(&e, "\1\2", 2);
	cbor_put_uint(&e, 7);
	cbor_put_uint(&e, 5);
	decode_ok(cbor_enc_done(&e), &d);
	assert_int_equal(d.type, MSG_HEARTBEAT);
	assert_int_equal(d.seq, 5);
	msg_free(&d);
}

/*
 * The message fuzzer's find: a rule carrying the other direction's fields must decode
 * to its own direction's alone, or two equal configs would read as different.
 */
static void foreign_fields_dropped(void **state)
{
	struct cbor_enc e;
	struct msg d;

	(void)state;
	cbor_enc_init(&e, buf, sizeof(buf));
	cbor_put_map(&e, 2);
	cbor_put_uint(&e, 0);
	cbor_put_uint(&e, MSG_HELLO);
	cbor_put_uint(&e, 4);
	cbor_put_array(&e, 2);
	cbor_put_map(&e, 5); /* inbound, with an outbound rule's tcp_port and hostname */
	cbor_put_uint(&e, 0);
	cbor_put_uint(&e, 0);
	cbor_put_uint(&e, 1);
	cbor_put_uint(&e, 9000);
	cbor_put_uint(&e, 2);
	cbor_put_uint(&e, 80);
	cbor_put_uint(&e, 4);
	cbor_put_uint(&e, 443);
	cbor_put_uint(&e, 5);
	cbor_put_cstr(&e, "api.example.com");
	cbor_put_map(&e, 3); /* outbound, with an inbound rule's host_port */
	cbor_put_uint(&e, 0);
	cbor_put_uint(&e, 1);
	cbor_put_uint(&e, 1);
	cbor_put_uint(&e, 7777);
	cbor_put_uint(&e, 2);
	cbor_put_uint(&e, 8080);
	decode_ok(cbor_enc_done(&e), &d);
	assert_int_equal(d.rules[0].dir, RULE_INBOUND);
	assert_int_equal(d.rules[0].host_port, 80);
	assert_int_equal(d.rules[0].tcp_port, 0);
	assert_string_equal(d.rules[0].hostname, "");
	assert_int_equal(d.rules[1].dir, RULE_OUTBOUND);
	assert_int_equal(d.rules[1].vsock_port, 7777);
	assert_int_equal(d.rules[1].host_port, 0);
	/* Two rules equal in their own fields show no difference, whatever else was sent. */
	struct rule mine[] = {in_rule(9000, 80, 0), out_rule(7777, "", 0, 0)};
	assert_int_equal(config_diff(mine, 2, d.rules, 2, collect, NULL), 0);
	msg_free(&d);
}

static void expect_refused(const uint8_t *p, size_t n, const char *want)
{
	struct msg d;
	char err[128];

	memcpy(buf, p, n);
	assert_int_equal(msg_decode(buf, n, &d, err, sizeof(err)), -1);
	if (!strstr(err, want))
		print_error("error \"%s\" lacks \"%s\"\n", err, want);
	assert_non_null(strstr(err, want));
	msg_free(&d);
}

static void hostile_input_refused(void **state)
{
	(void)state;
	expect_refused((const uint8_t *)"\xa1\x07", 2, "");	      /* truncated */
	expect_refused((const uint8_t *)"\xa0", 1, "without a type"); /* no type */
	expect_refused((const uint8_t *)"\x80", 1, "expected a map"); /* not a map */
	expect_refused((const uint8_t *)"\xa1\x00\x61x", 4, "type");  /* type not a uint */
	/* 2^32 rules claimed in a few bytes: refused before anything is allocated. */
	expect_refused((const uint8_t *)"\xa2\x00\x01\x04\x9a\xff\xff\xff\xff", 9, "");
	/* A rule without a direction. */
	expect_refused((const uint8_t *)"\xa2\x00\x01\x04\x81\xa1\x01\x05", 8, "direction");
	/* A port past 65535. */
	expect_refused((const uint8_t *)"\xa2\x00\x01\x04\x81\xa2\x00\x00\x02\x1a\x00\x01\x00\x00",
		       14, "port");
	/* Nesting past the message's depth. */
	expect_refused((const uint8_t *)"\xa1\x63\x78\x78\x78\x81\x81\x81\x81\x81\x00", 11, "");
	/* Text with a NUL inside, and text longer than the field. */
	expect_refused((const uint8_t *)"\xa2\x00\x02\x06\x63\x61\x00\x62", 8, "text");
	uint8_t big[40] = {0xa2, 0x00, 0x01, 0x02, 0x78, 32};
	memset(big + 6, 'v', 32);
	expect_refused(big, 38, "version");
	/* Every prefix of a valid message is refused. */
	struct rule rules[] = {out_rule(7777, "api.example.com", 443, 0x7f000001)};
	struct msg m = {.type = MSG_HELLO, .proto = 1, .rules = rules, .nrules = 1};
	uint8_t whole[512];
	size_t n = msg_encode(&m, whole, sizeof(whole));
	for (size_t k = 0; k < n; k++)
		expect_refused(whole, k, "");
}

static char lines[8][512];
static size_t nlines;

static void collect(void *arg, const char *line)
{
	(void)arg;
	snprintf(lines[nlines++ % 8], sizeof(lines[0]), "%s", line);
}

static void diff_names_egress(void **state)
{
	(void)state;
	nlines = 0;
	assert_int_equal(config_diff_egress(0, 0, collect, NULL), 0);
	assert_int_equal(config_diff_egress(8001, 8001, collect, NULL), 0);
	assert_int_equal(nlines, 0);
	assert_int_equal(config_diff_egress(0, 8001, collect, NULL), 1);
	assert_string_equal(lines[0],
			    "config mismatch: the enclave has [egress] on vsock_port 8001, "
			    "the host does not: the host half refuses the enclave's egress");
	assert_int_equal(config_diff_egress(8001, 0, collect, NULL), 1);
	assert_string_equal(lines[1], "config mismatch: the host has [egress] on vsock_port 8001, "
				      "the enclave does not");
	assert_int_equal(config_diff_egress(8001, 8002, collect, NULL), 1);
	assert_string_equal(lines[2], "config mismatch: [egress]: vsock_port is 8001 in the host's "
				      "config, 8002 in the enclave's: the host half refuses the "
				      "enclave's egress");
	assert_int_equal(nlines, 3);
}

static void diff_names_each_difference(void **state)
{
	struct rule host[] = {in_rule(9000, 80, 80),
			      out_rule(7777, "api.example.com", 443, 0x7f000001),
			      in_rule(9001, 81, 81)};
	struct rule encl[] = {in_rule(9000, 8080, 80),
			      out_rule(7777, "api.other.com", 443, 0x7f000001),
			      out_rule(7778, "new.example.com", 8443, 0x7f000002)};

	(void)state;
	nlines = 0;
	assert_int_equal(config_diff(host, 3, host, 3, collect, NULL), 0);
	assert_int_equal(config_diff(host, 3, encl, 3, collect, NULL), 4);
	assert_string_equal(lines[0],
			    "config mismatch: inbound rule vsock_port 9000 (host 0.0.0.0:80 -> "
			    "enclave 127.0.0.1:80): host_port is 80 in the host's config, "
			    "8080 in the enclave's");
	assert_string_equal(lines[1],
			    "config mismatch: outbound rule vsock_port 7777 (enclave "
			    "127.0.0.1:443 -> api.example.com:443): hostname is "
			    "\"api.example.com\" in the host's config, \"api.other.com\" in "
			    "the enclave's");
	assert_string_equal(lines[2],
			    "config mismatch: the host has inbound rule vsock_port 9001 "
			    "(host 0.0.0.0:81 -> enclave 127.0.0.1:81), the enclave does not");
	assert_string_equal(lines[3],
			    "config mismatch: the enclave has outbound rule vsock_port 7778 "
			    "(enclave 127.0.0.2:8443 -> new.example.com:8443), the host does "
			    "not");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hello_round_trip),
	    cmocka_unit_test(diff_names_egress),
	    cmocka_unit_test(other_types_round_trip),
	    cmocka_unit_test(status_round_trip),
	    cmocka_unit_test(app_and_time_round_trip),
	    cmocka_unit_test(app_refused_when_malformed),
	    cmocka_unit_test(unknown_keys_ignored),
	    cmocka_unit_test(foreign_fields_dropped),
	    cmocka_unit_test(hostile_input_refused),
	    cmocka_unit_test(diff_names_each_difference),
	    cmocka_unit_test(stats_size_is_the_largest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
