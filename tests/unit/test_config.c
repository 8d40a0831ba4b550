/* The config parser: the guide's files, every error message and its line, inih's traps, printing.
 */
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
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CONTROL_PORT 6666

/* From the vendor guide, trailing blanks included. */
static const char guide_inbound[] =
    "[[inbound_connections]]\n"
    "host_port = 5050 \n"
    "enclave_port = 5050 \n"
    "vsock_port = 9995  \n"
    "\n"
    "[[inbound_connections]]\n"
    "host_port = 5443 \n"
    "enclave_port = 5443 \n"
    "vsock_port = 9994  \n"
    "\n"
    "[log_location]\n"
    "host_log = \"host.log\" # qproxy host log name, "
    "e.g./var/log/qproxy/host.log\n"
    "enclave_log = \"enclave.log\" # qproxy enclave log name, "
    "e.g./var/log/qproxy/enclave.log\n"
    "log_level = \"info\" # qproxy logger level, e.g. \"off\", "
    "\"info\", \"warn\", \"error\", \"debug\", \"trace\"\n"
    "host_log_dir = \"/var/log/qproxy\" # qproxy host log dir, and "
    "its default value is \"/var/log/qproxy\"\n"
    "enclave_log_dir = \"/var/log/qproxy\" # qproxy enclave log dir, "
    "and its default value is \"/var/log/qproxy\"\n";

static const char guide_reference[] = "[[outbound_connections]]\n"
				      "hostname = \"api.myservice.com\" \n"
				      "vsock_port = 7777 \n"
				      "tcp_port = 443  \n"
				      "\n"
				      "[[outbound_connections]]\n"
				      "hostname = \"another.api.com\" \n"
				      "vsock_port = 7778 \n"
				      "tcp_port = 5555  \n"
				      "\n"
				      "[[inbound_connections]]\n"
				      "host_port = 80  \n"
				      "enclave_port = 80  \n"
				      "vsock_port = 9000   \n"
				      "\n"
				      "[[inbound_connections]]\n"
				      "host_port = 443 \n"
				      "enclave_port = 443 \n"
				      "vsock_port = 9001  \n"
				      "\n"
				      "[log_location]\n"
				      "host_log = \"host.log\"  \n"
				      "enclave_log = \"enclave.log\"  \n"
				      "log_level = \"info\"  \n"
				      "host_log_dir = \"/var/log/qproxy\"  \n"
				      "enclave_log_dir = \"/var/log/qproxy\"";

/* n bytes of text, which may hold NULs. */
static int parse_n(struct config *c, const char *text, size_t n, uint32_t control_port)
{
	/* glibc's fmemopen() refuses an empty buffer. */
	FILE *f = n ? fmemopen((void *)text, n, "r") : fopen("/dev/null", "r");

	assert_non_null(f);
	int rc = config_parse(c, "cfg.toml", f, control_port);
	fclose(f);
	return rc;
}

/*
 * Allocation number fail_at (from 0, malloc and realloc counted together) fails, once:
 * the linker sends config.c's calls here (ld --wrap), and nothing else's.
 */
static long fail_at = -1;
static long allocs;

void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_malloc(size_t size)
{
	return fail_at >= 0 && allocs++ == fail_at ? NULL : __real_malloc(size);
}
void *__wrap_realloc(void *p, size_t size)
{
	return fail_at >= 0 && allocs++ == fail_at ? NULL : __real_realloc(p, size);
}

static int parse(struct config *c, const char *text)
{
	return parse_n(c, text, strlen(text), CONTROL_PORT);
}

static void parse_ok(struct config *c, const char *text)
{
	if (parse(c, text) != 0) {
		for (size_t i = 0; i < c->nerrors; i++)
			print_error("unexpected: %s\n", c->errors[i]);
		fail();
	}
	assert_int_equal(c->nerrors, 0);
}

/* The config is rejected with exactly these errors, in this order, and holds nothing else. */
static void expect_errors_n(const char *text, size_t n, uint32_t control_port,
			    const char *const *want, size_t nwant)
{
	struct config c;
	int rc = parse_n(&c, text, n, control_port);
	bool same = c.nerrors == nwant;

	for (size_t i = 0; same && i < nwant; i++)
		same = strcmp(c.errors[i], want[i]) == 0;
	if (!same) {
		for (size_t i = 0; i < nwant; i++)
			print_error("want: %s\n", want[i]);
		for (size_t i = 0; i < c.nerrors; i++)
			print_error("got:  %s\n", c.errors[i]);
	}
	assert_true(same);
	assert_int_equal(rc, -1);
	assert_int_equal(c.nrules, 0);
	assert_false(c.has_log_location);
	assert_false(c.has_egress);
	assert_int_equal(c.egress.allow.n + c.egress.deny.n, 0);
	config_free(&c);
}

#define EXPECT_ERRORS_N(text, n, port, ...)                                                        \
	do {                                                                                       \
		const char *const want_[] = {__VA_ARGS__};                                         \
		expect_errors_n(text, n, port, want_, sizeof(want_) / sizeof(want_[0]));           \
	} while (0)
#define EXPECT_ERRORS(text, ...) EXPECT_ERRORS_N(text, strlen(text), CONTROL_PORT, __VA_ARGS__)

#define IN "[[inbound_connections]]\n"
#define OUT "[[outbound_connections]]\n"
#define IN_OK IN "host_port = 80\nenclave_port = 80\nvsock_port = 9000\n"

static void guide_inbound_parses(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, guide_inbound);
	assert_int_equal(c.nrules, 2);
	assert_int_equal(c.rules[0].dir, RULE_INBOUND);
	assert_int_equal(c.rules[0].line, 1);
	assert_int_equal(c.rules[0].host_port, 5050);
	assert_int_equal(c.rules[0].enclave_port, 5050);
	assert_int_equal(c.rules[0].vsock_port, 9995);
	assert_int_equal(c.rules[1].line, 6);
	assert_int_equal(c.rules[1].host_port, 5443);
	assert_int_equal(c.rules[1].enclave_port, 5443);
	assert_int_equal(c.rules[1].vsock_port, 9994);
	assert_true(c.has_log_location);
	assert_string_equal(c.host_log, "host.log");
	assert_string_equal(c.enclave_log, "enclave.log");
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.host_log_dir, "/var/log/qproxy");
	assert_string_equal(c.enclave_log_dir, "/var/log/qproxy");
	config_free(&c);
}

static void guide_reference_parses(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, guide_reference);
	/* Its tcp_port 443 and enclave_port 443 would meet inside the enclave: a warning, not an
	 * error. */
	assert_int_equal(c.nwarnings, 1);
	assert_string_equal(
	    c.warnings[0], "cfg.toml:4: warning: tcp_port 443 is also the enclave_port at line 18: "
			   "the enclave half will listen on 127.0.0.1:443, where that rule's "
			   "application must");
	assert_int_equal(c.nrules, 4);
	assert_int_equal(c.rules[0].dir, RULE_OUTBOUND);
	assert_string_equal(c.rules[0].hostname, "api.myservice.com");
	assert_int_equal(c.rules[0].vsock_port, 7777);
	assert_int_equal(c.rules[0].tcp_port, 443);
	assert_int_equal(c.rules[1].dir, RULE_OUTBOUND);
	assert_int_equal(c.rules[1].line, 6);
	assert_string_equal(c.rules[1].hostname, "another.api.com");
	assert_int_equal(c.rules[1].vsock_port, 7778);
	assert_int_equal(c.rules[1].tcp_port, 5555);
	assert_int_equal(c.rules[2].dir, RULE_INBOUND);
	assert_int_equal(c.rules[2].line, 11);
	assert_int_equal(c.rules[2].host_port, 80);
	assert_int_equal(c.rules[2].vsock_port, 9000);
	assert_int_equal(c.rules[3].host_port, 443);
	assert_int_equal(c.rules[3].enclave_port, 443);
	assert_int_equal(c.rules[3].vsock_port, 9001);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.hosts_file, "");
	config_free(&c);
}

static void defaults(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n");
	assert_int_equal(c.rules[0].enclave_address, 0x7f000001);
	assert_string_equal(c.hosts_file, "");
	assert_false(c.has_log_location);
	assert_string_equal(c.host_log, "");
	assert_string_equal(c.enclave_log, "");
	assert_string_equal(c.host_log_dir, "/var/log/qproxy");
	assert_string_equal(c.enclave_log_dir, "/var/log/qproxy");
	assert_int_equal(c.log_level, -1);
	config_free(&c);
	parse_ok(&c, IN_OK "[log_location]\nlog_level = \"TRACE\"\nhost_log_dir = \"/tmp\"\n");
	assert_true(c.has_log_location);
	assert_int_equal(c.log_level, LOG_TRACE);
	assert_string_equal(c.host_log_dir, "/tmp");
	assert_string_equal(c.enclave_log_dir, "/var/log/qproxy");
	config_free(&c);
	/* Every outbound rule, not only the first: each starts from the default. */
	parse_ok(&c, guide_reference);
	assert_int_equal(c.rules[0].enclave_address, 0x7f000001);
	assert_int_equal(c.rules[1].enclave_address, 0x7f000001);
	config_free(&c);
	parse_ok(&c, OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 2\n"
			 "enclave_address = \"127.0.0.9\"\n" OUT
			 "hostname = \"b\"\nvsock_port = 3\ntcp_port = 4\n");
	assert_int_equal(c.rules[0].enclave_address, 0x7f000009);
	assert_int_equal(c.rules[1].enclave_address, 0x7f000001);
	config_free(&c);
}

static void integers(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN "host_port = +8_0\nenclave_port = 80\nvsock_port = 4_294_967_294\n");
	assert_int_equal(c.rules[0].host_port, 80);
	assert_int_equal(c.rules[0].enclave_port, 80);
	assert_int_equal(c.rules[0].vsock_port, 4294967294u);
	config_free(&c);
	parse_ok(&c, IN "host_port = 65535\nenclave_port = 1\nvsock_port = 1\n");
	assert_int_equal(c.rules[0].host_port, 65535);
	config_free(&c);
	/* TOML has no leading zeros: not octal, not decimal, not an integer. */
	EXPECT_ERRORS(IN "host_port = 0080\nenclave_port = 0_8\nvsock_port = 9000\n",
		      "cfg.toml:2: host_port: expected an integer, got 0080",
		      "cfg.toml:3: enclave_port: expected an integer, got 0_8");
}

static void limits(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN_OK OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n");
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(c.rules[i].max_connections, 0);
		assert_int_equal(c.rules[i].idle_timeout, 0);
		assert_int_equal(c.rules[i].connect_timeout, 0);
	}
	config_free(&c);
	parse_ok(&c, IN_OK
		 "max_connections = 1_000_000\nidle_timeout = 86400\nconnect_timeout = 1\n" OUT
		 "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\nmax_connections = "
		 "1\nidle_timeout = 1\nconnect_timeout = 300\n");
	assert_int_equal(c.rules[0].max_connections, 1000000);
	assert_int_equal(c.rules[0].idle_timeout, 86400);
	assert_int_equal(c.rules[0].connect_timeout, 1);
	assert_int_equal(c.rules[1].max_connections, 1);
	assert_int_equal(c.rules[1].idle_timeout, 1);
	assert_int_equal(c.rules[1].connect_timeout, 300);
	config_free(&c);
	EXPECT_ERRORS(IN_OK "max_connections = 0\nidle_timeout = 86401\nconnect_timeout = 301\n",
		      "cfg.toml:5: max_connections 0 is out of range 1..1000000",
		      "cfg.toml:6: idle_timeout 86401 is out of range 1..86400",
		      "cfg.toml:7: connect_timeout 301 is out of range 1..300");
	EXPECT_ERRORS(OUT
		      "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\nmax_connections = "
		      "1000001\nidle_timeout = \"5\"\nconnect_timeout = -5\nmax_connections = 2\n",
		      "cfg.toml:5: max_connections 1000001 is out of range 1..1000000",
		      "cfg.toml:6: idle_timeout: expected an integer, got \"5\"",
		      "cfg.toml:7: connect_timeout -5 is out of range 1..300",
		      "cfg.toml:8: max_connections is already set at line 5");
	EXPECT_ERRORS(IN_OK "[log_location]\nidle_timeout = 5\n",
		      "cfg.toml:6: unknown key idle_timeout in [log_location]");
}

static void strings(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"a\\\"b\\\\c\"\nvsock_port = 1\ntcp_port = 2\n");
	assert_string_equal(c.rules[0].hostname, "a\"b\\c");
	config_free(&c);
	parse_ok(&c, OUT "hostname = \"\\\\\"\nvsock_port = 1\ntcp_port = 2\n");
	assert_string_equal(c.rules[0].hostname, "\\");
	config_free(&c);
	parse_ok(&c, OUT "hostname = \"h=1: 'x'\t[y]\"\nvsock_port = 1\ntcp_port = 2\n");
	assert_string_equal(c.rules[0].hostname, "h=1: 'x'\t[y]");
	config_free(&c);
}

static void unknown_table(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[foo]\nx = 1\n[[bar]]\n", "cfg.toml:5: unknown table [foo]",
		      "cfg.toml:7: unknown table [[bar]]");
	EXPECT_ERRORS(IN_OK "[inbound_connection]\n",
		      "cfg.toml:5: unknown table [inbound_connection]");
}

static void log_location_twice(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[log_location]\nlog_level = \"info\"\n[log_location]\n"
			    "log_level = \"warn\"\n",
		      "cfg.toml:7: [log_location] is already defined at line 5");
}

static void log_location_as_array(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[[log_location]]\nlog_level = \"info\"\n",
		      "cfg.toml:5: log_location is a table: write [log_location], not "
		      "[[log_location]]");
}

static void array_as_table(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[inbound_connections]\nhost_port = 81\n",
		      "cfg.toml:5: inbound_connections is an array of tables: write "
		      "[[inbound_connections]]");
	EXPECT_ERRORS(IN_OK "[outbound_connections]\n",
		      "cfg.toml:5: outbound_connections is an array of tables: write "
		      "[[outbound_connections]]");
}

static void unknown_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 80\nhostname = \"h\"\nenclave_port = 80\nvsock_port = 9\n",
		      "cfg.toml:3: unknown key hostname in [[inbound_connections]]");
	EXPECT_ERRORS(IN_OK "[log_location]\nlog_dir = \"/tmp\"\n",
		      "cfg.toml:6: unknown key log_dir in [log_location]");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\nHostname = \"h\"\n",
		      "cfg.toml:5: unknown key Hostname in [[outbound_connections]]");
}

static void key_outside_table(void **state)
{
	(void)state;
	EXPECT_ERRORS("# comment\nlog_level = \"info\"\n" IN_OK,
		      "cfg.toml:2: key log_level is outside any table");
}

static void duplicate_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "host_port = 81\n", "cfg.toml:5: host_port is already set at line 2");
	EXPECT_ERRORS(IN_OK "[log_location]\nhost_log = \"a\"\nhost_log = \"b\"\n",
		      "cfg.toml:7: host_log is already set at line 6");
}

static void wrong_type(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = \"80\"\nenclave_port = 80\nvsock_port = 9\n",
		      "cfg.toml:2: host_port: expected an integer, got \"80\"");
	EXPECT_ERRORS(IN "host_port = 0x50\nenclave_port = 8.0\nvsock_port = true\n",
		      "cfg.toml:2: host_port: expected an integer, got 0x50",
		      "cfg.toml:3: enclave_port: expected an integer, got 8.0",
		      "cfg.toml:4: vsock_port: expected an integer, got true");
	EXPECT_ERRORS(IN "host_port = 1__0\nenclave_port = _1\nvsock_port = 1_\n",
		      "cfg.toml:2: host_port: expected an integer, got 1__0",
		      "cfg.toml:3: enclave_port: expected an integer, got _1",
		      "cfg.toml:4: vsock_port: expected an integer, got 1_");
	EXPECT_ERRORS(OUT "hostname = api.com\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: expected a string, got api.com");
	EXPECT_ERRORS(IN_OK "[log_location]\nlog_level = 3\nhost_log = 'x'\n",
		      "cfg.toml:6: log_level: expected a string, got 3",
		      "cfg.toml:7: host_log: expected a string, got 'x'");
}

static void missing_key(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 80\n\n" OUT "hostname = \"h\"\n",
		      "cfg.toml:1: missing key enclave_port in [[inbound_connections]]",
		      "cfg.toml:1: missing key vsock_port in [[inbound_connections]]",
		      "cfg.toml:4: missing key vsock_port in [[outbound_connections]]",
		      "cfg.toml:4: missing key tcp_port in [[outbound_connections]]");
}

static void tcp_port_range(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 0\nenclave_port = 65536\nvsock_port = 9\n",
		      "cfg.toml:2: host_port 0 is out of range 1..65535",
		      "cfg.toml:3: enclave_port 65536 is out of range 1..65535");
	EXPECT_ERRORS(
	    IN "host_port = -80\nenclave_port = 99999999999999999999999999\n"
	       "vsock_port = 9\n",
	    "cfg.toml:2: host_port -80 is out of range 1..65535",
	    "cfg.toml:3: enclave_port 99999999999999999999999999 is out of range 1..65535");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 70_000\n",
		      "cfg.toml:4: tcp_port 70_000 is out of range 1..65535");
	EXPECT_ERRORS(IN "host_port = -0\nenclave_port = 18446744073709551616\nvsock_port = 9\n",
		      "cfg.toml:2: host_port -0 is out of range 1..65535",
		      "cfg.toml:3: enclave_port 18446744073709551616 is out of range 1..65535");
}

static void vsock_port_range(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 1\nenclave_port = 1\nvsock_port = 0\n",
		      "cfg.toml:4: vsock_port 0 is out of range 1..4294967294");
	EXPECT_ERRORS(IN "host_port = 1\nenclave_port = 1\nvsock_port = 4294967295\n",
		      "cfg.toml:4: vsock_port 4294967295 is out of range 1..4294967294");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 4294967296\ntcp_port = 1\n",
		      "cfg.toml:3: vsock_port 4294967296 is out of range 1..4294967294");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = -1\ntcp_port = 1\n",
		      "cfg.toml:3: vsock_port -1 is out of range 1..4294967294");
}

static void vsock_port_twice(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK IN "host_port = 81\nenclave_port = 81\nvsock_port = 9000\n",
		      "cfg.toml:8: vsock_port 9000 is already used at line 4");
	EXPECT_ERRORS(IN_OK OUT "hostname = \"h\"\nvsock_port = 9000\ntcp_port = 1\n" OUT
				"hostname = \"h\"\nvsock_port = 9000\ntcp_port = 2\n",
		      "cfg.toml:7: vsock_port 9000 is already used at line 4",
		      "cfg.toml:11: vsock_port 9000 is already used at line 4");
}

static void vsock_port_is_control_port(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 1\nenclave_port = 1\nvsock_port = 6666\n",
		      "cfg.toml:4: vsock_port 6666 is the control port (see --control-port)");
	const char *t = OUT "hostname = \"h\"\nvsock_port = 7000\ntcp_port = 1\n";
	EXPECT_ERRORS_N(t, strlen(t), 7000,
			"cfg.toml:3: vsock_port 7000 is the control port (see --control-port)");
}

static void host_port_twice(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "\n" IN "host_port = 80\nenclave_port = 81\nvsock_port = 9001\n",
		      "cfg.toml:7: host_port 80 is already used at line 2");
}

static void tcp_port_twice(void **state)
{
	(void)state;
	EXPECT_ERRORS(OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n" OUT
			  "hostname = \"b\"\nvsock_port = 2\ntcp_port = 443\n",
		      "cfg.toml:8: tcp_port 443 is already used at line 4");
}

/*
 * The enclave half would listen on 127.0.0.1:80 for the outbound rule, where
 * the inbound rule expects the application; but the guide's reference config
 * does exactly this with port 443, and it must pass.
 */
static void tcp_port_may_be_enclave_port(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN_OK OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 80\n");
	config_free(&c);
}

/* Two host ports may lead to one enclave application; the outbound host side only connects. */
static void shared_ports_are_fine(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN_OK IN "host_port = 8080\nenclave_port = 80\nvsock_port = 9001\n" OUT
			      "hostname = \"h\"\nvsock_port = 9002\ntcp_port = 8081\n" OUT
			      "hostname = \"h\"\nvsock_port = 9003\ntcp_port = 8082\n");
	assert_int_equal(c.nrules, 4);
	config_free(&c);
}

static void enclave_address(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
			 "enclave_address = \"127.0.0.2\"\n" OUT
			 "hostname = \"h\"\nvsock_port = 3\ntcp_port = 4\n"
			 "enclave_address = \"127.255.255.254\"\n" OUT
			 "hostname = \"h\"\nvsock_port = 5\ntcp_port = 6\n"
			 "enclave_address = \"127.0.0.1\"\n" OUT
			 "hostname = \"h\"\nvsock_port = 7\ntcp_port = 8\n"
			 "enclave_address = \"127.0.0.0\"\n");
	assert_int_equal(c.rules[0].enclave_address, 0x7f000002);
	assert_int_equal(c.rules[1].enclave_address, 0x7ffffffe);
	assert_int_equal(c.rules[2].enclave_address, 0x7f000001);
	assert_int_equal(c.rules[3].enclave_address, 0x7f000000);
	config_free(&c);
}

static void enclave_address_bad(void **state)
{
	(void)state;
	EXPECT_ERRORS(
	    OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
		"enclave_address = \"localhost\"\n",
	    "cfg.toml:5: enclave_address \"localhost\" is not a dotted-quad IPv4 address");
	/* Only the canonical dotted quad: what inet_aton() would take is not enough. */
	EXPECT_ERRORS(
	    OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
		"enclave_address = \"127.1\"\n" OUT
		"hostname = \"h\"\nvsock_port = 3\ntcp_port = 4\n"
		"enclave_address = \"127.0.0.01\"\n" OUT
		"hostname = \"h\"\nvsock_port = 5\ntcp_port = 6\n"
		"enclave_address = \"::1\"\n" OUT "hostname = \"h\"\nvsock_port = 7\ntcp_port = 8\n"
		"enclave_address = \" 127.0.0.2\"\n",
	    "cfg.toml:5: enclave_address \"127.1\" is not a dotted-quad IPv4 address",
	    "cfg.toml:10: enclave_address \"127.0.0.01\" is not a dotted-quad IPv4 address",
	    "cfg.toml:15: enclave_address \"::1\" is not a dotted-quad IPv4 address",
	    "cfg.toml:20: enclave_address \" 127.0.0.2\" is not a dotted-quad IPv4 "
	    "address");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
			  "enclave_address = \"10.0.0.1\"\n" OUT
			  "hostname = \"h\"\nvsock_port = 3\ntcp_port = 4\n"
			  "enclave_address = \"128.0.0.1\"\n",
		      "cfg.toml:5: enclave_address \"10.0.0.1\" is not in 127.0.0.0/8",
		      "cfg.toml:10: enclave_address \"128.0.0.1\" is not in 127.0.0.0/8");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
			  "enclave_address = \"127.255.255.255\"\n",
		      "cfg.toml:5: enclave_address \"127.255.255.255\" is the broadcast address of "
		      "127.0.0.0/8");
	EXPECT_ERRORS(OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\n"
			  "enclave_address = 2130706434\n" OUT
			  "hostname = \"h\"\nvsock_port = 3\ntcp_port = 4\n"
			  "enclave_address = \"\"\n" OUT
			  "hostname = \"h\"\nvsock_port = 5\ntcp_port = 6\n"
			  "enclave_address = \"127.0.0.2\"\nenclave_address = \"127.0.0.3\"\n",
		      "cfg.toml:5: enclave_address: expected a string, got 2130706434",
		      "cfg.toml:10: enclave_address is empty",
		      "cfg.toml:16: enclave_address is already set at line 15");
	/* The enclave half connects inbound rules to 127.0.0.1; they have no enclave_address. */
	EXPECT_ERRORS(IN_OK "enclave_address = \"127.0.0.2\"\n",
		      "cfg.toml:5: unknown key enclave_address in [[inbound_connections]]");
}

/* Two HTTPS APIs on 443, each at its own address. */
static void tcp_port_per_address(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n"
			 "enclave_address = \"127.0.0.2\"\n" OUT
			 "hostname = \"b\"\nvsock_port = 2\ntcp_port = 443\n"
			 "enclave_address = \"127.0.0.3\"\n" OUT
			 "hostname = \"c\"\nvsock_port = 3\ntcp_port = 443\n");
	assert_int_equal(c.nrules, 3);
	assert_int_equal(c.nwarnings, 0);
	config_free(&c);
	EXPECT_ERRORS(OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n"
			  "enclave_address = \"127.0.0.2\"\n" OUT
			  "hostname = \"b\"\nvsock_port = 2\ntcp_port = 443\n"
			  "enclave_address = \"127.0.0.2\"\n",
		      "cfg.toml:9: tcp_port 443 on 127.0.0.2 is already used at line 4");
	/* 127.0.0.1 written out is the default: the message does not name it. */
	EXPECT_ERRORS(OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n" OUT
			  "hostname = \"b\"\nvsock_port = 2\ntcp_port = 443\n"
			  "enclave_address = \"127.0.0.1\"\n",
		      "cfg.toml:8: tcp_port 443 is already used at line 4");
	/* The address may come after the port: the clash is found once the file is read. */
	EXPECT_ERRORS(OUT "hostname = \"a\"\nenclave_address = \"127.0.0.5\"\nvsock_port = 1\n"
			  "tcp_port = 80\n" OUT "hostname = \"b\"\nvsock_port = 2\ntcp_port = 80\n"
			  "enclave_address = \"127.0.0.5\"\n",
		      "cfg.toml:9: tcp_port 80 on 127.0.0.5 is already used at line 5");
	/* A bad address is one error, not a clash as well. */
	EXPECT_ERRORS(
	    OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n" OUT
		"hostname = \"b\"\nvsock_port = 2\ntcp_port = 443\n"
		"enclave_address = \"127.0.0.x\"\n",
	    "cfg.toml:9: enclave_address \"127.0.0.x\" is not a dotted-quad IPv4 address");
	/* Other addresses do not make vsock ports any less unique. */
	EXPECT_ERRORS(OUT "hostname = \"a\"\nvsock_port = 1\ntcp_port = 443\n"
			  "enclave_address = \"127.0.0.2\"\n" OUT
			  "hostname = \"b\"\nvsock_port = 1\ntcp_port = 443\n"
			  "enclave_address = \"127.0.0.3\"\n",
		      "cfg.toml:8: vsock_port 1 is already used at line 3");
}

/* The application listens on 127.0.0.1:enclave_port; another address is out of its way. */
static void enclave_port_warning_only_at_loopback(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN_OK OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 80\n"
			       "enclave_address = \"127.0.0.2\"\n");
	assert_int_equal(c.nwarnings, 0);
	config_free(&c);
	parse_ok(&c, IN_OK OUT "hostname = \"h\"\nvsock_port = 1\ntcp_port = 80\n"
			       "enclave_address = \"127.0.0.1\"\n");
	assert_int_equal(c.nwarnings, 1);
	assert_string_equal(c.warnings[0],
			    "cfg.toml:8: warning: tcp_port 80 is also the enclave_port at line 3: "
			    "the enclave half will listen on 127.0.0.1:80, where that rule's "
			    "application must");
	config_free(&c);
}

static void enclave_table(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN_OK "[enclave]\nhosts_file = \"/etc/hosts\"\n");
	assert_string_equal(c.hosts_file, "/etc/hosts");
	assert_false(c.has_log_location);
	config_free(&c);
	/* Anywhere in the file, and empty is fine: the key is optional. */
	parse_ok(&c, "[enclave]\n" IN_OK);
	assert_string_equal(c.hosts_file, "");
	assert_int_equal(c.nrules, 1);
	config_free(&c);
	EXPECT_ERRORS(IN_OK "[enclave]\nhosts_file = \"etc/hosts\"\n",
		      "cfg.toml:6: hosts_file \"etc/hosts\" must be an absolute path");
	EXPECT_ERRORS(IN_OK "[enclave]\nhosts_file = \"\"\n", "cfg.toml:6: hosts_file is empty");
	EXPECT_ERRORS(IN_OK "[enclave]\nhosts_file = /etc/hosts\n",
		      "cfg.toml:6: hosts_file: expected a string, got /etc/hosts");
	EXPECT_ERRORS(IN_OK "[enclave]\nhosts_file = \"/a\"\n[enclave]\nhosts_file = \"/b\"\n",
		      "cfg.toml:7: [enclave] is already defined at line 5");
	EXPECT_ERRORS(IN_OK "[[enclave]]\nhosts_file = \"/etc/hosts\"\n",
		      "cfg.toml:5: enclave is a table: write [enclave], not [[enclave]]");
	EXPECT_ERRORS(IN_OK "[enclave]\nhosts = \"/etc/hosts\"\n",
		      "cfg.toml:6: unknown key hosts in [enclave]");
	/* Each [name] table counts on its own. */
	parse_ok(&c, IN_OK "[log_location]\n[enclave]\n");
	config_free(&c);
}

#define API(name, vsock, addr)                                                                     \
	OUT "hostname = \"" name "\"\nvsock_port = " #vsock "\ntcp_port = 443\n"                   \
	    "enclave_address = \"" addr "\"\n"

#define HOSTS_FILE "[enclave]\nhosts_file = \"/etc/hosts\"\n"

/* In a hosts file one name has one address. */
static void hostname_mapped_twice(void **state)
{
	struct config c;

	(void)state;
	EXPECT_ERRORS(
	    HOSTS_FILE API("api.example.com", 1, "127.0.0.2")
		API("api.example.com", 2, "127.0.0.3"),
	    "cfg.toml:9: hostname api.example.com is already mapped to 127.0.0.2 at line 4");
	/* Names compare without case; the default address counts as well. */
	EXPECT_ERRORS(
	    OUT "hostname = \"API.example.com\"\nvsock_port = 1\ntcp_port = 80\n" API(
		"api.example.COM", 2, "127.0.0.3") "[enclave]\nhosts_file = \"/h\"\n",
	    "cfg.toml:6: hostname api.example.COM is already mapped to 127.0.0.1 at line 2");
	/* Without a hosts file nothing is mapped. */
	parse_ok(&c, API("api.example.com", 1, "127.0.0.2") API("api.example.com", 2, "127.0.0.3"));
	config_free(&c);
	parse_ok(&c, API("api.example.com", 1, "127.0.0.2")
			 API("api.example.com", 2, "127.0.0.3") "[enclave]\n");
	config_free(&c);
	/* One name at one address on two ports is one line of the hosts file. */
	parse_ok(&c, API("api.example.com", 1, "127.0.0.2") OUT
		 "hostname = \"api.example.com\"\nvsock_port = 2\ntcp_port = 80\n"
		 "enclave_address = \"127.0.0.2\"\n[enclave]\nhosts_file = \"/etc/hosts\"\n");
	config_free(&c);
	/* IP literals are not mapped at all. */
	parse_ok(&c, API("10.0.0.1", 1, "127.0.0.2") API("10.0.0.1", 2, "127.0.0.3")
			 API("::1", 3, "127.0.0.4") API("::1", 4, "127.0.0.5") HOSTS_FILE);
	config_free(&c);
	/* A bad hosts_file still asks for the check: all the errors at once. */
	EXPECT_ERRORS(API("a", 1, "127.0.0.2")
			  API("a", 2, "127.0.0.3") "[enclave]\nhosts_file = \"hosts\"\n",
		      "cfg.toml:7: hostname a is already mapped to 127.0.0.2 at line 2",
		      "cfg.toml:12: hosts_file \"hosts\" must be an absolute path");
	/* A bad address maps nothing: one error for it. */
	EXPECT_ERRORS(API("a", 1, "127.0.0.2") API("a", 2, "10.0.0.3") HOSTS_FILE,
		      "cfg.toml:10: enclave_address \"10.0.0.3\" is not in 127.0.0.0/8");
	/* Each clash names the first rule with the name. */
	EXPECT_ERRORS(API("a", 1, "127.0.0.2") API("a", 2, "127.0.0.2") API("a", 3, "127.0.0.3")
			  HOSTS_FILE,
		      "cfg.toml:9: tcp_port 443 on 127.0.0.2 is already used at line 4",
		      "cfg.toml:12: hostname a is already mapped to 127.0.0.2 at line 2");
}

static void unknown_log_level(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[log_location]\nlog_level = \"verbose\"\n",
		      "cfg.toml:6: log_level \"verbose\" is not one of off, error, warn, info, "
		      "debug, trace");
}

static void empty_strings(void **state)
{
	(void)state;
	EXPECT_ERRORS(OUT "hostname = \"\"\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname is empty");
	EXPECT_ERRORS(IN_OK "[log_location]\nhost_log = \"\"\nenclave_log = \"\"\n"
			    "host_log_dir = \"\"\nenclave_log_dir = \"\"\nlog_level = \"\"\n",
		      "cfg.toml:6: host_log is empty", "cfg.toml:7: enclave_log is empty",
		      "cfg.toml:8: host_log_dir is empty", "cfg.toml:9: enclave_log_dir is empty",
		      "cfg.toml:10: log_level is empty");
}

static void unterminated_string(void **state)
{
	(void)state;
	/* The key counts as set: no "missing key hostname" as well. */
	EXPECT_ERRORS(OUT "hostname = \"api.com\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: unterminated string");
	EXPECT_ERRORS(OUT "hostname = \"api.com\\\"\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: unterminated string");
	EXPECT_ERRORS(OUT "hostname = \"\"\"\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: unexpected text after value: \"");
}

static void bad_escape(void **state)
{
	(void)state;
	EXPECT_ERRORS(OUT "hostname = \"a\\nb\"\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: bad escape \\n in string (only \\\" and \\\\ are "
		      "allowed)");
	EXPECT_ERRORS(IN_OK "[log_location]\nhost_log = \"\\u00e9\"\n",
		      "cfg.toml:6: host_log: bad escape \\u in string (only \\\" and \\\\ are "
		      "allowed)");
}

static void control_characters(void **state)
{
	static const char nul[] = OUT "hostname = \"a\0b\"\nvsock_port = 1\ntcp_port = 2\n";

	(void)state;
	EXPECT_ERRORS(OUT "hostname = \"a\ab\"\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: control character 0x07 is not allowed");
	EXPECT_ERRORS_N(nul, sizeof(nul) - 1, CONTROL_PORT,
			"cfg.toml:2: control character 0x00 is not allowed");
	EXPECT_ERRORS(IN_OK "# a \x1f comment\n",
		      "cfg.toml:5: control character 0x1f is not allowed");
	EXPECT_ERRORS(IN_OK "host_port = 1\r2\n",
		      "cfg.toml:5: control character 0x0d is not allowed");
	EXPECT_ERRORS(IN_OK "\x7f\n", "cfg.toml:5: control character 0x7f is not allowed");
}

static void text_after_value(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port = 80 80\nenclave_port = 80\nvsock_port = 9 # ok\n",
		      "cfg.toml:2: host_port: unexpected text after value: 80");
	EXPECT_ERRORS(OUT "hostname = \"a\" \"b\" # c\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: unexpected text after value: \"b\" # c");
	EXPECT_ERRORS(IN_OK "[log_location]\nhost_log = \"a\"b\n",
		      "cfg.toml:6: host_log: unexpected text after value: b");
}

static void missing_value(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port =\nenclave_port = # none\nvsock_port = 9\n",
		      "cfg.toml:2: host_port: missing value",
		      "cfg.toml:3: enclave_port: missing value");
}

static void malformed_lines(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[[inbound_connections]\nhost_port = 1\n",
		      "cfg.toml:5: malformed table header [[inbound_connections]");
	EXPECT_ERRORS(IN_OK "[log_location\n", "cfg.toml:5: malformed table header [log_location");
	EXPECT_ERRORS(IN_OK "[log_location]]\n",
		      "cfg.toml:5: malformed table header [log_location]]");
	EXPECT_ERRORS(IN_OK "[]\n[a.b]\n[\"log_location\"]\n[log_location] x\n",
		      "cfg.toml:5: malformed table header []",
		      "cfg.toml:6: malformed table header [a.b]",
		      "cfg.toml:7: malformed table header [\"log_location\"]",
		      "cfg.toml:8: malformed table header [log_location] x");
	EXPECT_ERRORS(IN_OK "\"host_port\" = 1\n= 1\n; ini comment\n",
		      "cfg.toml:5: expected key = value, [table] or [[table]]",
		      "cfg.toml:6: expected key = value, [table] or [[table]]",
		      "cfg.toml:7: expected key = value, [table] or [[table]]");
	EXPECT_ERRORS(IN_OK "host_port\na.b = 1\n", "cfg.toml:5: expected = after key host_port",
		      "cfg.toml:6: expected = after key a");
}

/* The keys after a bad header belong to no table: no "unknown key" or "already set" for them. */
static void keys_after_bad_header_are_ignored(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK "[[inbound_connections\nhost_port = 80\n[nope]\nfoo = 1\n",
		      "cfg.toml:5: malformed table header [[inbound_connections",
		      "cfg.toml:7: unknown table [nope]");
}

/* The example, with the ways TOML lets an array be written. */
#define EGRESS_EXAMPLE                                                                             \
	"[egress]\n"                                                                               \
	"vsock_port = 8000               # the host half listens here\n"                           \
	"proxy_port = 3128\n"                                                                      \
	"dns = true\n"                                                                             \
	"resolv_conf = \"/etc/resolv.conf\"\n"                                                     \
	"connect_timeout = 3\n"                                                                    \
	"allow = [\n"                                                                              \
	"  \"api.example.com:443\",\n"                                                             \
	"  # a comment between elements\n"                                                         \
	"\n"                                                                                       \
	"  \"*.amazonaws.com:443\", \"10.0.0.0/8:5432\" ,\"API.Example.ORG.:8000-8010\",\n"        \
	"  \"[2001:DB8::/32]:*\"\n"                                                                \
	"  , \"[::1]:80\" ]  # closed\n"                                                           \
	"deny = [\"*.internal.example.com:*\"]\n"

static void egress(void **state)
{
	struct config c;
	char buf[POLICY_ENTRY_LEN];

	(void)state;
	parse_ok(&c, EGRESS_EXAMPLE);
	assert_true(c.has_egress);
	assert_int_equal(c.nrules, 0);
	assert_int_equal(c.egress_vsock_port, 8000);
	assert_int_equal(c.egress_proxy_port, 3128);
	assert_true(c.egress_dns);
	assert_string_equal(c.egress_resolv_conf, "/etc/resolv.conf");
	assert_int_equal(c.egress_connect_timeout, 3);
	const char *const allow[] = {"api.example.com:443", "*.amazonaws.com:443",
				     "10.0.0.0/8:5432",	    "api.example.org:8000-8010",
				     "[2001:db8::/32]:*",   "[::1]:80"};
	const int lines[] = {8, 11, 11, 11, 12, 13};
	assert_int_equal(c.egress.allow.n, 6);
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(policy_entry_str(&c.egress.allow.v[i], buf, sizeof(buf)),
				    allow[i]);
		assert_int_equal(c.egress.allow.v[i].line, lines[i]);
	}
	assert_int_equal(c.egress.deny.n, 1);
	assert_string_equal(policy_entry_str(&c.egress.deny.v[0], buf, sizeof(buf)),
			    "*.internal.example.com:*");
	assert_int_equal(c.egress.deny.v[0].line, 14);
	config_free(&c);

	/* Only vsock_port is required; no lists: everything is denied. */
	parse_ok(&c, "[egress]\nvsock_port = 8000\n");
	assert_int_equal(c.egress.allow.n + c.egress.deny.n, 0);
	assert_int_equal(c.egress_proxy_port, 0);
	config_free(&c);
	EXPECT_ERRORS("[egress]\nallow = []\n", "cfg.toml:1: missing key vsock_port in [egress]");
}

/* No line limit caps a list: one entry a line, far past anything inih holds at once. */
static void egress_long_list(void **state)
{
	size_t n = 20000, cap = n * 40 + 64, off = 0;
	char *text = malloc(cap);
	struct config c;

	(void)state;
	assert_non_null(text);
	off += (size_t)snprintf(text, cap, "[egress]\nvsock_port = 1\nallow = [\n");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(text + off, cap - off, "\"h%zu.example.com:%zu\",%s", i,
					1 + i % 65535, i % 3 == 2 ? "\n" : " ");
	snprintf(text + off, cap - off, "]\n");
	parse_ok(&c, text);
	assert_int_equal(c.egress.allow.n, n);
	assert_string_equal(c.egress.allow.v[n - 1].name, "h19999.example.com");
	assert_int_equal(c.egress.allow.v[n - 1].port_lo, 20000);
	assert_int_equal(c.egress.allow.v[n - 1].line, 3 + (int)(n / 3) + 1);
	config_free(&c);
	free(text);
}

static void egress_errors(void **state)
{
	(void)state;
	EXPECT_ERRORS("[egress]\nvsock_port = 1\nallow = [\"a.com\", \"*:1\", \"a:0\", \"a:9-8\",\n"
		      "\"10.0.0.1/8:1\", \"::1:80\", \"[x]:1\", \"[::1]\", \"1.2.3.0/33:1\", "
		      "\"a/8:1\", \"\"]\n",
		      "cfg.toml:3: allow: a.com: no :PORT after the destination (a port, a range "
		      "a-b, or *)",
		      "cfg.toml:3: allow: * is not a hostname, *.suffix, IP address or CIDR (a "
		      "name: labels of letters, digits, - and _, at most 253 bytes)",
		      "cfg.toml:3: allow: bad port 0: expected a port 1..65535, a range a-b, or *",
		      "cfg.toml:3: allow: port range 9-8 runs backwards",
		      "cfg.toml:4: allow: 10.0.0.1/8 has bits set past its /8 prefix",
		      "cfg.toml:4: allow: ::1:80: an IPv6 address goes in brackets, as [::1]:443",
		      "cfg.toml:4: allow: x in brackets is not an IPv6 address",
		      "cfg.toml:4: allow: [::1]: no :PORT after the destination (a port, a range "
		      "a-b, or *)",
		      "cfg.toml:4: allow: bad prefix length /33: expected 0..32",
		      "cfg.toml:4: allow: a/8 is not a CIDR: expected ADDRESS/BITS",
		      "cfg.toml:4: allow: an entry is empty");
	/* Array syntax: each mistake once, on its own line, and the rest still read. */
	EXPECT_ERRORS("[egress]\nvsock_port = 1\nallow = [\n , \"a:1\"\n\"b:1\" \"c:1\"\n"
		      "1, \"d:1\",\n\"e:1\"] x\n\"f\n",
		      "cfg.toml:4: allow: expected a string before ,",
		      "cfg.toml:5: allow: expected , or ] after an element, got \"b:1\" \"c:1\"",
		      "cfg.toml:6: allow: expected a string in the array, got 1",
		      "cfg.toml:7: allow: unexpected text after value: x",
		      "cfg.toml:8: expected key = value, [table] or [[table]]");
	/* An array left open: found at the next key or header, or at the end. */
	EXPECT_ERRORS("[egress]\nvsock_port = 1\nallow = [\"a:1\",\ndeny = []\n",
		      "cfg.toml:3: allow: unterminated array: no ] before line 4");
	EXPECT_ERRORS("[egress]\nallow = [\"a:1\",\n[log_location]\nlog_level = \"x\"\n",
		      "cfg.toml:1: missing key vsock_port in [egress]",
		      "cfg.toml:2: allow: unterminated array: no ] before line 3",
		      "cfg.toml:4: log_level \"x\" is not one of off, error, warn, info, debug, "
		      "trace");
	EXPECT_ERRORS("[egress]\nvsock_port = 1\ndeny = [\n\"a:1\"\n",
		      "cfg.toml:3: deny: unterminated array: no ] before the end of the file");
	EXPECT_ERRORS("[egress]\nvsock_port = 1\nallow = [\"a\\q:1\"]\n",
		      "cfg.toml:3: allow: bad escape \\q in string (only \\\" and \\\\ are "
		      "allowed)");
	/* Arrays where none belongs, a list that is not one, twice, or in the wrong place. */
	EXPECT_ERRORS("[egress]\nvsock_port = [1]\ndns = [true, 1]\nresolv_conf = [\"/x\"]\n"
		      "allow = \"a:1\"\ndeny = []\ndeny = [\"b:1\"]\nnope = [\"c\"]\n"
		      "[log_location]\nallow = [\"d:1\"]\n",
		      "cfg.toml:2: vsock_port: expected an integer, got an array",
		      "cfg.toml:3: dns: expected true or false, got an array",
		      "cfg.toml:4: resolv_conf: expected a string, got an array",
		      "cfg.toml:5: allow: expected an array of strings, as "
		      "[\"api.example.com:443\"], got \"a:1\"",
		      "cfg.toml:7: deny is already set at line 6",
		      "cfg.toml:8: unknown key nope in [egress]",
		      "cfg.toml:10: unknown key allow in [log_location]");
	/* Its ports clash with the others: the control port, a rule's, an outbound listener. */
	EXPECT_ERRORS("[egress]\nvsock_port = 6666\nproxy_port = 443\n" OUT
		      "hostname = \"h\"\nvsock_port = 7\ntcp_port = 443\n" IN
		      "host_port = 1\nenclave_port = 1\nvsock_port = 7\n[egress]\n",
		      "cfg.toml:2: vsock_port 6666 is the control port (see --control-port)",
		      "cfg.toml:7: tcp_port 443 is already used at line 3",
		      "cfg.toml:11: vsock_port 7 is already used at line 6",
		      "cfg.toml:12: [egress] is already defined at line 1");
}

static void no_rules(void **state)
{
	(void)state;
	EXPECT_ERRORS("", "cfg.toml:1: no rules: add [[inbound_connections]], "
			  "[[outbound_connections]] or [egress]");
	EXPECT_ERRORS("# nothing\n\n[log_location]\nlog_level = \"info\"\n",
		      "cfg.toml:1: no rules: add [[inbound_connections]], "
		      "[[outbound_connections]] or [egress]");
}

/* n outbound rules, each with a hostname of len bytes (at least 6): 4 lines a rule. */
/* n outbound rules, hostnames len bytes long, the first `limited` with max_connections. */
static char *outbound_rules(size_t n, size_t len, size_t limited)
{
	size_t cap = n * (len + 160) + 1, off = 0;
	char *text = malloc(cap), pad[CONFIG_STR_MAX];

	assert_non_null(text);
	memset(pad, 'a', len - 5);
	pad[len - 5] = '\0';
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(
		    text + off, cap - off,
		    OUT "hostname = \"h%04zu%s\"\nvsock_port = %zu\ntcp_port = %zu\n%s", i, pad,
		    10000 + i, 20000 + i, i < limited ? "max_connections = 1000000\n" : "");
	return text;
}

/*
 * A config the control link cannot carry must not load: more rules than a HELLO may
 * hold, or rules whose HELLO outgrows a frame. One rule fewer loads.
 */
static void link_limits(void **state)
{
	struct config c;

	(void)state;
	char *text = outbound_rules(1025, 8, 0);
	EXPECT_ERRORS(text, "cfg.toml:4097: rule 1025 of 1025: the control channel carries at "
			    "most 1024 rules");
	free(text);
	text = outbound_rules(1024, 8, 0);
	parse_ok(&c, text);
	assert_int_equal(c.nrules, 1024);
	config_free(&c);
	free(text);

	/* About 300 rules with long hostnames: the rule that crosses 64 KiB is named. */
	text = outbound_rules(330, 180, 0);
	assert_int_equal(parse(&c, text), -1);
	assert_int_equal(c.nerrors, 1);
	int line;
	size_t at, total;
	assert_int_equal(sscanf(c.errors[0],
				"cfg.toml:%d: the control channel carries a hello of at most 65536 "
				"bytes: the rules up to this one make it %zu (all 330 rules: %zu); "
				"use fewer rules or shorter hostnames",
				&line, &at, &total),
			 3);
	assert_true(at > 65536 && at < total);
	config_free(&c);
	free(text);
	size_t fit = (size_t)(line - 1) / 4; /* the rules before that one */
	assert_true(fit > 250 && fit < 330);
	text = outbound_rules(fit, 180, 0);
	parse_ok(&c, text);
	assert_int_equal(c.nrules, fit);
	config_free(&c);
	free(text);

	/* The enclave's counters: each limit adds two to its rule's, so not on every rule. */
	text = outbound_rules(1024, 8, 1024);
	assert_int_equal(parse(&c, text), -1);
	assert_int_equal(c.nerrors, 1);
	assert_int_equal(
	    sscanf(c.errors[0],
		   "cfg.toml:%d: the control channel carries the enclave half's counters "
		   "in at most 65536 bytes: the rules up to this one may make them %zu "
		   "(all 1024 rules: %zu); set max_connections on fewer rules",
		   &line, &at, &total),
	    3);
	assert_true(at > 65536 && at < total);
	config_free(&c);
	free(text);
	text = outbound_rules(1024, 8, 400);
	parse_ok(&c, text);
	config_free(&c);
	free(text);
}

static void cannot_open(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(config_load(&c, "/nonexistent/qproxy.toml", CONTROL_PORT), -1);
	assert_int_equal(c.nerrors, 1);
	assert_string_equal(c.errors[0],
			    "/nonexistent/qproxy.toml: cannot open: No such file or directory");
	config_free(&c);
	assert_int_equal(config_load(&c, "/", CONTROL_PORT), -1);
	assert_int_equal(c.nerrors, 1);
	assert_string_equal(c.errors[0], "/: cannot read: Is a directory");
	config_free(&c);
}

static void load_file(void **state)
{
	char path[] = "/tmp/qproxy-test-XXXXXX";
	int fd = mkstemp(path);
	struct config c;

	(void)state;
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs(guide_reference, f);
	fclose(f);
	assert_int_equal(config_load(&c, path, CONTROL_PORT), 0);
	assert_int_equal(c.nrules, 4);
	config_free(&c);
	unlink(path);
}

/* Several problems: every one is reported, in line order, and nothing is applied. */
static void all_errors_reported(void **state)
{
	(void)state;
	EXPECT_ERRORS(
	    "port = 1\n"
	    "[[inbound_connections]]\n"
	    "host_port = 0\n"
	    "enclave_port = 80 80\n"
	    "[[inbound_connections]]\n"
	    "host_port = 81\n"
	    "enclave_port = 81\n"
	    "vsock_port = 6666\n"
	    "[[outbound_connections]]\n"
	    "hostname = \"h\\t\"\n"
	    "[log_location]\n"
	    "log_level = \"loud\"\n"
	    "[logs]\n",
	    "cfg.toml:1: key port is outside any table",
	    "cfg.toml:2: missing key vsock_port in [[inbound_connections]]",
	    "cfg.toml:3: host_port 0 is out of range 1..65535",
	    "cfg.toml:4: enclave_port: unexpected text after value: 80",
	    "cfg.toml:8: vsock_port 6666 is the control port (see --control-port)",
	    "cfg.toml:9: missing key vsock_port in [[outbound_connections]]",
	    "cfg.toml:9: missing key tcp_port in [[outbound_connections]]",
	    "cfg.toml:10: hostname: bad escape \\t in string (only \\\" and \\\\ are allowed)",
	    "cfg.toml:12: log_level \"loud\" is not one of off, error, warn, info, debug, "
	    "trace",
	    "cfg.toml:13: unknown table [logs]");
}

/* inih would take an indented line for the continuation of the previous value. */
static void indented_lines(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "  [[inbound_connections]]\n"
		     "\thost_port = 80\n"
		     "    enclave_port\t=\t81   # x\n"
		     " \t vsock_port = 9000\n"
		     "\t[log_location]\n"
		     "\t\thost_log = \"h.log\"\n");
	assert_int_equal(c.nrules, 1);
	assert_int_equal(c.rules[0].host_port, 80);
	assert_int_equal(c.rules[0].enclave_port, 81);
	assert_int_equal(c.rules[0].vsock_port, 9000);
	assert_string_equal(c.host_log, "h.log");
	config_free(&c);
}

/* inih cuts a value at " ;", even inside quotes. */
static void semicolon_in_string(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"a ;b\"\nvsock_port = 1\ntcp_port = 2\n" OUT
			 "hostname = \" ; ;;\" # ; \n"
			 "vsock_port = 3\ntcp_port = 4\n");
	assert_string_equal(c.rules[0].hostname, "a ;b");
	config_free(&c);
	EXPECT_ERRORS(OUT "hostname = \"h\" ;x\nvsock_port = 1\ntcp_port = 2\n",
		      "cfg.toml:2: hostname: unexpected text after value: ;x");
	EXPECT_ERRORS(IN "host_port = 80;\nenclave_port = 80\nvsock_port = 9\n",
		      "cfg.toml:2: host_port: expected an integer, got 80;");
}

static void hash_in_string(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, OUT "hostname = \"a#b # c\" # comment\nvsock_port = 1#c\ntcp_port = 2\n");
	assert_string_equal(c.rules[0].hostname, "a#b # c");
	assert_int_equal(c.rules[0].vsock_port, 1);
	config_free(&c);
}

/* inih reads 199 bytes at most and would take the rest for a line of its own. */
static void long_lines(void **state)
{
	char text[1024], value[256];
	struct config c;

	(void)state;
	/* hostname="xxx...x": key and value of exactly 199 bytes are fine, and so is the next line.
	 */
	memset(value, 'x', 188);
	value[188] = '\0';
	snprintf(text, sizeof(text), OUT "hostname=\"%s\"\nvsock_port = 1\ntcp_port = 2\n", value);
	parse_ok(&c, text);
	assert_int_equal(strlen(c.rules[0].hostname), 188);
	assert_int_equal(c.rules[0].vsock_port, 1);
	config_free(&c);

	/* Blanks around "=" and a trailing comment do not count: inih never sees them. */
	snprintf(text, sizeof(text),
		 OUT "hostname   =   \"%s\"   # %s\nvsock_port = 1\ntcp_port = 2\n", value, value);
	parse_ok(&c, text);
	assert_int_equal(strlen(c.rules[0].hostname), 188);
	config_free(&c);

	/* One byte more than inih takes is an error, not a silent split. */
	value[189] = '\0';
	value[188] = 'x';
	snprintf(text, sizeof(text), OUT "hostname=\"%s\"\nvsock_port = 1\ntcp_port = 2\n", value);
	EXPECT_ERRORS(text, "cfg.toml:2: hostname: key and value take 200 bytes, at most 199");

	/* A long comment is fine, and must not spill a "key = value" into the table. */
	memset(value, 'c', 250);
	value[250] = '\0';
	snprintf(text, sizeof(text), IN_OK "# %s hostname = \"x\"\n", value);
	parse_ok(&c, text);
	assert_int_equal(c.nrules, 1);
	assert_int_equal(c.rules[0].host_port, 80);
	config_free(&c);

	/* A long header starts a table we ignore; its keys are not the previous table's. */
	snprintf(text, sizeof(text), IN_OK "[%s]\nhost_port = 81\n", value);
	char want[512];
	snprintf(want, sizeof(want), "cfg.toml:5: unknown table [%s]", value);
	EXPECT_ERRORS(text, want);

	/* A raw line past 4096 bytes is refused whatever it holds. */
	char *huge = malloc(5000);
	memset(huge, ' ', 4998);
	huge[0] = '#';
	huge[4998] = '\0';
	char *doc = malloc(6000);
	snprintf(doc, 6000, IN_OK "%s\n", huge);
	EXPECT_ERRORS(doc, "cfg.toml:5: line is 4998 bytes long, at most 4096");
	free(huge);
	free(doc);

	/* The limit excludes a CRLF. */
	memset(value, 'x', 188);
	value[188] = '\0';
	snprintf(text, sizeof(text), OUT "hostname=\"%s\"\r\nvsock_port = 1\ntcp_port = 2\n",
		 value);
	parse_ok(&c, text);
	config_free(&c);
}

static void key_colon_value(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN "host_port: 80\nenclave_port = 80\nvsock_port = 9\n",
		      "cfg.toml:2: expected = after key host_port");
}

static void empty_array_table(void **state)
{
	(void)state;
	EXPECT_ERRORS(IN_OK IN "\n" OUT,
		      "cfg.toml:5: missing key host_port in [[inbound_connections]]",
		      "cfg.toml:5: missing key enclave_port in [[inbound_connections]]",
		      "cfg.toml:5: missing key vsock_port in [[inbound_connections]]",
		      "cfg.toml:7: missing key hostname in [[outbound_connections]]",
		      "cfg.toml:7: missing key vsock_port in [[outbound_connections]]",
		      "cfg.toml:7: missing key tcp_port in [[outbound_connections]]");
}

/* inih sees [[x]] as section "[x": two tables of one array would merge into one. */
static void consecutive_array_tables(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, IN "host_port = 1\nenclave_port = 1\nvsock_port = 1\n" IN
			"host_port = 2\nenclave_port = 2\nvsock_port = 2\n" IN
			"host_port = 3\nenclave_port = 3\nvsock_port = 3\n");
	assert_int_equal(c.nrules, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c.rules[i].line, 1 + 4 * i);
		assert_int_equal(c.rules[i].host_port, i + 1);
		assert_int_equal(c.rules[i].vsock_port, i + 1);
	}
	config_free(&c);
}

static void crlf(void **state)
{
	char text[sizeof(guide_reference) * 2];
	size_t n = 0;
	struct config c;

	(void)state;
	for (const char *s = guide_reference; *s; s++) {
		if (*s == '\n')
			text[n++] = '\r';
		text[n++] = *s;
	}
	text[n] = '\0';
	parse_ok(&c, text);
	assert_int_equal(c.nrules, 4);
	assert_string_equal(c.rules[0].hostname, "api.myservice.com");
	assert_string_equal(c.enclave_log_dir, "/var/log/qproxy");
	config_free(&c);
	EXPECT_ERRORS(IN "host_port = 80\r\nenclave_port = 80\r\nvsock_port = x\r\n",
		      "cfg.toml:4: vsock_port: expected an integer, got x");
}

static void bom(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, "\xef\xbb\xbf" IN_OK);
	assert_int_equal(c.nrules, 1);
	config_free(&c);
	EXPECT_ERRORS("\xef\xbb\xbf" IN "host_port = 0\nenclave_port = 80\nvsock_port = 9\n",
		      "cfg.toml:2: host_port 0 is out of range 1..65535");
	/* Only at the start of the file. */
	EXPECT_ERRORS(IN_OK "\xef\xbb\xbf# x\n",
		      "cfg.toml:5: expected key = value, [table] or [[table]]");
}

static char *print_to_string(const struct config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_print(c, f);
	fclose(f);
	return buf;
}

static void assert_same_config(const struct config *a, const struct config *b)
{
	assert_int_equal(a->nrules, b->nrules);
	for (size_t i = 0; i < a->nrules; i++) {
		const struct rule *x = &a->rules[i], *y = &b->rules[i];
		assert_int_equal(x->dir, y->dir);
		assert_int_equal(x->vsock_port, y->vsock_port);
		assert_int_equal(x->host_port, y->host_port);
		assert_int_equal(x->enclave_port, y->enclave_port);
		assert_int_equal(x->tcp_port, y->tcp_port);
		assert_string_equal(x->hostname, y->hostname);
		assert_int_equal(x->enclave_address, y->enclave_address);
	}
	assert_int_equal(a->has_log_location, b->has_log_location);
	assert_string_equal(a->host_log, b->host_log);
	assert_string_equal(a->enclave_log, b->enclave_log);
	assert_string_equal(a->host_log_dir, b->host_log_dir);
	assert_string_equal(a->enclave_log_dir, b->enclave_log_dir);
	assert_int_equal(a->log_level, b->log_level);
	assert_string_equal(a->hosts_file, b->hosts_file);
	assert_int_equal(a->has_egress, b->has_egress);
	assert_int_equal(a->egress_vsock_port, b->egress_vsock_port);
	assert_int_equal(a->egress_proxy_port, b->egress_proxy_port);
	assert_int_equal(a->egress_dns, b->egress_dns);
	assert_string_equal(a->egress_resolv_conf, b->egress_resolv_conf);
	assert_int_equal(a->egress_connect_timeout, b->egress_connect_timeout);
	const struct policy_list *la[] = {&a->egress.allow, &a->egress.deny};
	const struct policy_list *lb[] = {&b->egress.allow, &b->egress.deny};
	for (size_t l = 0; l < 2; l++) {
		assert_int_equal(la[l]->n, lb[l]->n);
		for (size_t i = 0; i < la[l]->n; i++) {
			struct policy_entry x = la[l]->v[i], y = lb[l]->v[i];
			x.line = y.line = 0;
			assert_memory_equal(&x, &y, sizeof(x));
		}
	}
}

static void round_trip(const char *text)
{
	struct config a, b;

	parse_ok(&a, text);
	char *first = print_to_string(&a);
	parse_ok(&b, first);
	char *second = print_to_string(&b);
	assert_string_equal(first, second);
	assert_same_config(&a, &b);
	free(first);
	free(second);
	config_free(&a);
	config_free(&b);
}

/* [log_location] and [enclave] first, a path with blanks and quotes, two rules at one address. */
static const char enclave_config[] = "[log_location]\n"
				     "log_level = \"warn\"\n"
				     "[enclave]\n"
				     "hosts_file = \"/e t c/\\\"h\\\"\"\n"
				     "[[outbound_connections]]\n"
				     "hostname = \"api.example.com\"\n"
				     "vsock_port = 7777\n"
				     "tcp_port = 443\n"
				     "enclave_address = \"127.0.0.2\"\n"
				     "[[outbound_connections]]\n"
				     "enclave_address = \"127.0.0.2\"\n"
				     "hostname = \"api.example.com\"\n"
				     "vsock_port = 7779\n"
				     "tcp_port = 80\n"
				     "[[outbound_connections]]\n"
				     "hostname = \"other.example.com\"\n"
				     "vsock_port = 7778\n"
				     "tcp_port = 443\n"
				     "enclave_address = \"127.0.0.1\"\n";

static void print_round_trip(void **state)
{
	(void)state;
	round_trip(guide_inbound);
	round_trip(guide_reference);
	round_trip(OUT "hostname = \"a \\\"q\\\" \\\\ ;b #c\"\nvsock_port = 1\ntcp_port = 2\n");
	round_trip(OUT "hostname = \"::1\"\nvsock_port = 1\ntcp_port = 2\n"
		       "[log_location]\nlog_level = \"OFF\"\n");
	round_trip(IN_OK "[log_location]\n");
	round_trip(enclave_config);
	round_trip(IN_OK "[enclave]\n");
	round_trip(EGRESS_EXAMPLE);
	round_trip("[egress]\nvsock_port = 8000\nallow = []\n");
	round_trip(IN_OK "connect_timeout = 7\nmax_connections = 3\n" OUT
			 "hostname = \"h\"\nvsock_port = 1\ntcp_port = 2\nidle_timeout = 60\n");
	/*
	 * The config fuzzer's first find: a hostname near the limit made the printed
	 * flow comment longer than inih's line, which then failed to parse back.
	 */
	char text[512], name[200];
	memset(name, 'n', 180);
	name[180] = '\0';
	snprintf(text, sizeof(text), OUT "hostname = \"%s\"\nvsock_port = 7777\ntcp_port = 443\n",
		 name);
	round_trip(text);
}

static void print_format(void **state)
{
	struct config c;

	(void)state;
	parse_ok(&c, guide_reference);
	char *s = print_to_string(&c);
	assert_string_equal(
	    s,
	    "# outbound: enclave 127.0.0.1:443 -> vsock port 7777 -> host api.myservice.com:443\n"
	    "[[outbound_connections]]\n"
	    "hostname = \"api.myservice.com\"\n"
	    "vsock_port = 7777\n"
	    "tcp_port = 443\n"
	    "\n"
	    "# outbound: enclave 127.0.0.1:5555 -> vsock port 7778 -> host another.api.com:5555\n"
	    "[[outbound_connections]]\n"
	    "hostname = \"another.api.com\"\n"
	    "vsock_port = 7778\n"
	    "tcp_port = 5555\n"
	    "\n"
	    "# inbound: tcp 0.0.0.0:80 -> vsock port 9000 -> enclave 127.0.0.1:80\n"
	    "[[inbound_connections]]\n"
	    "host_port = 80\n"
	    "enclave_port = 80\n"
	    "vsock_port = 9000\n"
	    "\n"
	    "# inbound: tcp 0.0.0.0:443 -> vsock port 9001 -> enclave 127.0.0.1:443\n"
	    "[[inbound_connections]]\n"
	    "host_port = 443\n"
	    "enclave_port = 443\n"
	    "vsock_port = 9001\n"
	    "\n"
	    "[log_location]\n"
	    "host_log = \"host.log\"\n"
	    "enclave_log = \"enclave.log\"\n"
	    "log_level = \"info\"\n"
	    "host_log_dir = \"/var/log/qproxy\"\n"
	    "enclave_log_dir = \"/var/log/qproxy\"\n");
	free(s);
	config_free(&c);

	parse_ok(&c, OUT "hostname = \"::1\"\nvsock_port = 1\ntcp_port = 2\n[log_location]\n"
			 "enclave_log = \"e.log\"\n");
	s = print_to_string(&c);
	assert_string_equal(s, "# outbound: enclave 127.0.0.1:2 -> vsock port 1 -> host [::1]:2\n"
			       "[[outbound_connections]]\n"
			       "hostname = \"::1\"\n"
			       "vsock_port = 1\n"
			       "tcp_port = 2\n"
			       "\n"
			       "[log_location]\n"
			       "enclave_log = \"e.log\"\n"
			       "host_log_dir = \"/var/log/qproxy\"\n"
			       "enclave_log_dir = \"/var/log/qproxy\"\n");
	free(s);
	config_free(&c);

	/* enclave_address only when it is not the default; [enclave] between rules and logs. */
	parse_ok(&c, enclave_config);
	s = print_to_string(&c);
	assert_string_equal(s, "# outbound: enclave 127.0.0.2:443 -> vsock port 7777 -> host "
			       "api.example.com:443\n"
			       "[[outbound_connections]]\n"
			       "hostname = \"api.example.com\"\n"
			       "vsock_port = 7777\n"
			       "tcp_port = 443\n"
			       "enclave_address = \"127.0.0.2\"\n"
			       "\n"
			       "# outbound: enclave 127.0.0.2:80 -> vsock port 7779 -> host "
			       "api.example.com:80\n"
			       "[[outbound_connections]]\n"
			       "hostname = \"api.example.com\"\n"
			       "vsock_port = 7779\n"
			       "tcp_port = 80\n"
			       "enclave_address = \"127.0.0.2\"\n"
			       "\n"
			       "# outbound: enclave 127.0.0.1:443 -> vsock port 7778 -> host "
			       "other.example.com:443\n"
			       "[[outbound_connections]]\n"
			       "hostname = \"other.example.com\"\n"
			       "vsock_port = 7778\n"
			       "tcp_port = 443\n"
			       "\n"
			       "[enclave]\n"
			       "hosts_file = \"/e t c/\\\"h\\\"\"\n"
			       "\n"
			       "[log_location]\n"
			       "log_level = \"warn\"\n"
			       "host_log_dir = \"/var/log/qproxy\"\n"
			       "enclave_log_dir = \"/var/log/qproxy\"\n");
	free(s);
	config_free(&c);

	/* An empty [enclave] says nothing, and is not printed. */
	parse_ok(&c, IN_OK "[enclave]\n");
	s = print_to_string(&c);
	assert_string_equal(s,
			    "# inbound: tcp 0.0.0.0:80 -> vsock port 9000 -> enclave 127.0.0.1:80\n"
			    "[[inbound_connections]]\n"
			    "host_port = 80\n"
			    "enclave_port = 80\n"
			    "vsock_port = 9000\n");
	free(s);
	config_free(&c);
}

/*
 * Memory running out at any allocation refuses the whole config, and says so through
 * nomem, even where the errors list itself could not grow, or the warnings could not be
 * handed over: never a config loaded with its warnings lost, never a silent refusal.
 */
static void out_of_memory_refuses_the_whole_config(void **state)
{
	/* Two rules, a warning (tcp_port 8443 is also an enclave_port), a log table. */
	const char *text =
	    "[[outbound_connections]]\nhostname = \"api.example.com\"\n"
	    "vsock_port = 7000\ntcp_port = 8443\n"
	    "[[inbound_connections]]\nhost_port = 443\nenclave_port = 8443\n"
	    "vsock_port = 9000\n[log_location]\nlog_level = \"info\"\n"
	    "[egress]\nvsock_port = 8000\nallow = [\"a:1\", \"b:2\"]\ndeny = [\"c:3\"]\n";
	struct config c;
	long k;

	(void)state;
	for (k = 0; k < 1000; k++) {
		fail_at = k;
		allocs = 0;
		int rc = parse(&c, text);
		bool hit = allocs > k;
		fail_at = -1;
		if (!hit) {
			assert_int_equal(rc, 0); /* past the last allocation: it loads */
			assert_false(c.nomem);
			assert_int_equal(c.nrules, 2);
			assert_int_equal(c.nwarnings, 1);
			assert_int_equal(c.egress.allow.n + c.egress.deny.n, 3);
			config_free(&c);
			break;
		}
		assert_int_equal(rc, -1);
		assert_true(c.nomem);
		assert_int_equal(c.nrules, 0);
		assert_null(c.rules);
		assert_null(c.egress.allow.v);
		assert_null(c.egress.deny.v);
		config_free(&c);
	}
	assert_true(k > 2 && k < 1000); /* several allocations were tried, and all of them */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(guide_inbound_parses),
	    cmocka_unit_test(out_of_memory_refuses_the_whole_config),
	    cmocka_unit_test(guide_reference_parses),
	    cmocka_unit_test(egress),
	    cmocka_unit_test(egress_long_list),
	    cmocka_unit_test(egress_errors),
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(integers),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(strings),
	    cmocka_unit_test(unknown_table),
	    cmocka_unit_test(log_location_twice),
	    cmocka_unit_test(log_location_as_array),
	    cmocka_unit_test(array_as_table),
	    cmocka_unit_test(unknown_key),
	    cmocka_unit_test(key_outside_table),
	    cmocka_unit_test(duplicate_key),
	    cmocka_unit_test(wrong_type),
	    cmocka_unit_test(missing_key),
	    cmocka_unit_test(tcp_port_range),
	    cmocka_unit_test(vsock_port_range),
	    cmocka_unit_test(vsock_port_twice),
	    cmocka_unit_test(vsock_port_is_control_port),
	    cmocka_unit_test(host_port_twice),
	    cmocka_unit_test(tcp_port_twice),
	    cmocka_unit_test(tcp_port_may_be_enclave_port),
	    cmocka_unit_test(shared_ports_are_fine),
	    cmocka_unit_test(enclave_address),
	    cmocka_unit_test(link_limits),
	    cmocka_unit_test(enclave_address_bad),
	    cmocka_unit_test(tcp_port_per_address),
	    cmocka_unit_test(enclave_port_warning_only_at_loopback),
	    cmocka_unit_test(enclave_table),
	    cmocka_unit_test(hostname_mapped_twice),
	    cmocka_unit_test(unknown_log_level),
	    cmocka_unit_test(empty_strings),
	    cmocka_unit_test(unterminated_string),
	    cmocka_unit_test(bad_escape),
	    cmocka_unit_test(control_characters),
	    cmocka_unit_test(text_after_value),
	    cmocka_unit_test(missing_value),
	    cmocka_unit_test(malformed_lines),
	    cmocka_unit_test(keys_after_bad_header_are_ignored),
	    cmocka_unit_test(no_rules),
	    cmocka_unit_test(cannot_open),
	    cmocka_unit_test(load_file),
	    cmocka_unit_test(all_errors_reported),
	    cmocka_unit_test(indented_lines),
	    cmocka_unit_test(semicolon_in_string),
	    cmocka_unit_test(hash_in_string),
	    cmocka_unit_test(long_lines),
	    cmocka_unit_test(key_colon_value),
	    cmocka_unit_test(empty_array_table),
	    cmocka_unit_test(consecutive_array_tables),
	    cmocka_unit_test(crlf),
	    cmocka_unit_test(bom),
	    cmocka_unit_test(print_round_trip),
	    cmocka_unit_test(print_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
