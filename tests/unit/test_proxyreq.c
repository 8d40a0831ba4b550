/* The egress proxy's parsers: HTTP request heads and SOCKS5, as clients send them and worse. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <string.h>

#include "proxyreq.h"

static long head(const char *s, struct http_req *r, int *status, char *err)
{
	return http_head_parse(s, strlen(s), r, status, err, PROXYREQ_ERR_LEN);
}

static void connect_form(void **state)
{
	const char *s = "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n"
			"User-Agent: curl\r\n\r\nTLS";
	struct http_req r;
	char err[PROXYREQ_ERR_LEN];
	int status = 0;

	(void)state;
	assert_int_equal(head(s, &r, &status, err), (long)strlen(s) - 3);
	assert_int_equal(r.form, HTTP_CONNECT);
	assert_string_equal(r.host, "api.example.com");
	assert_int_equal(r.port, 443);
	assert_int_equal(head("CONNECT [2001:db8::1]:8443 HTTP/1.0\r\n\r\n", &r, &status, err), 39);
	assert_string_equal(r.host, "2001:db8::1");
	assert_int_equal(r.port, 8443);
	/* Not yet whole: more is wanted, byte by byte. */
	for (size_t n = 0; n < strlen(s) - 3; n++)
		assert_int_equal(http_head_parse(s, n, &r, &status, err, sizeof(err)), 0);
}

static void absolute_form(void **state)
{
	const char *s = "GET http://Example.COM:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"
			"Proxy-Connection: keep-alive\r\nconnection: keep-alive\r\nAccept: */*\r\n"
			"Proxy-Authorization: Basic eA==\r\n\r\n";
	struct http_req r;
	char err[PROXYREQ_ERR_LEN], out[PROXYREQ_HEAD_MAX];
	int status = 0;

	(void)state;
	long n = head(s, &r, &status, err);
	assert_int_equal(n, (long)strlen(s));
	assert_int_equal(r.form, HTTP_ABSOLUTE);
	assert_string_equal(r.host, "Example.COM");
	assert_int_equal(r.port, 8080);
	size_t m = http_head_origin(s, (size_t)n, &r, out, sizeof(out));
	out[m] = '\0';
	assert_string_equal(out,
			    "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\n"
			    "Connection: close\r\n\r\n");
	/* No path: "/"; no port: 80. */
	s = "HEAD http://h HTTP/1.0\r\n\r\n";
	n = head(s, &r, &status, err);
	assert_int_equal(r.port, 80);
	m = http_head_origin(s, (size_t)n, &r, out, sizeof(out));
	out[m] = '\0';
	assert_string_equal(out, "HEAD / HTTP/1.0\r\nConnection: close\r\n\r\n");
	s = "GET http://h?q HTTP/1.1\r\n\r\n";
	n = head(s, &r, &status, err);
	m = http_head_origin(s, (size_t)n, &r, out, sizeof(out));
	out[m] = '\0';
	assert_string_equal(out, "GET /?q HTTP/1.1\r\nConnection: close\r\n\r\n");
	/* Too small a buffer: 0, never a cut head. */
	assert_int_equal(http_head_origin(s, (size_t)n, &r, out, 20), 0);
}

static void bad_heads(void **state)
{
	const struct {
		const char *head;
		int status;
		const char *err;
	} cases[] = {
	    {"GET / HTTP/1.1\r\n\r\n", 400,
	     "not a proxy request: expected CONNECT or an http:// URL"},
	    {"GET https://h/ HTTP/1.1\r\n\r\n", 501,
	     "https:// in absolute form: use CONNECT for TLS"},
	    {"CONNECT h HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port, got h"},
	    {"CONNECT h:0 HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port, got h:0"},
	    {"CONNECT h:65536 HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port, got h:65536"},
	    {"CONNECT [::1 HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port, got [::1"},
	    {"CONNECT :443 HTTP/1.1\r\n\r\n", 400, "CONNECT needs host:port, got :443"},
	    {"GET http://u@h/ HTTP/1.1\r\n\r\n", 400, "bad host in the URL http://u@h/"},
	    {"GET http:///x HTTP/1.1\r\n\r\n", 400, "bad host in the URL http:///x"},
	    {"CONNECT h:1 HTTP/2.0\r\n\r\n", 400, "malformed request line"},
	    {"CONNECT  h:1 HTTP/1.1\r\n\r\n", 400, "malformed request line"},
	    {"\r\n\r\n", 400, "malformed request line"},
	    {"G(T http://h/ HTTP/1.1\r\n\r\n", 400, "malformed request line"},
	};
	struct http_req r;
	char err[PROXYREQ_ERR_LEN];
	int status;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		status = 0;
		if (head(cases[i].head, &r, &status, err) != -1)
			fail_msg("accepted: %s", cases[i].head);
		assert_int_equal(status, cases[i].status);
		assert_string_equal(err, cases[i].err);
	}
	/* A bare LF or an escape in the request line is quoted as '?': no forged log line. */
	assert_int_equal(head("CONNECT a\nb\x1b HTTP/1.1\r\n\r\n", &r, &status, err), -1);
	assert_string_equal(err, "CONNECT needs host:port, got a?b?");
	const char nul[] = "CONNECT h:1 HTTP/1.1\r\nX: \0\r\n\r\n";
	assert_int_equal(http_head_parse(nul, sizeof(nul) - 1, &r, &status, err, sizeof(err)), -1);
	assert_string_equal(err, "a NUL byte in the request head");
	/* A head that never ends: refused once the bound is reached, not before. */
	static char big[PROXYREQ_HEAD_MAX + 10];
	memset(big, 'a', sizeof(big));
	assert_int_equal(http_head_parse(big, PROXYREQ_HEAD_MAX - 1, &r, &status, err, sizeof(err)),
			 0);
	assert_int_equal(http_head_parse(big, sizeof(big), &r, &status, err, sizeof(err)), -1);
	assert_int_equal(status, 431);
}

static void socks(void **state)
{
	const uint8_t greet[] = {5, 2, 2, 0};
	const uint8_t auth_only[] = {5, 1, 2};
	const uint8_t name[] = {5, 1, 0, 3, 3, 'a', '.', 'b', 0x01, 0xbb};
	const uint8_t v4[] = {5, 1, 0, 1, 10, 0, 0, 1, 0, 80};
	const uint8_t v6[] = {5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0,	   0,
			      0, 0, 0, 0, 0,	0,    0,    0,	  1, 0x1f, 0x90};
	char host[POLICY_NAME_MAX + 1], err[PROXYREQ_ERR_LEN];
	uint16_t port;
	uint8_t rep;
	bool no_auth;

	(void)state;
	assert_int_equal(socks_greeting_parse(greet, sizeof(greet), &no_auth), 4);
	assert_true(no_auth);
	assert_int_equal(socks_greeting_parse(greet, 3, &no_auth), 0);
	assert_int_equal(socks_greeting_parse(auth_only, 3, &no_auth), 3);
	assert_false(no_auth);
	assert_int_equal(socks_greeting_parse((const uint8_t *)"\x04\x01", 2, &no_auth), -1);
	assert_int_equal(socks_greeting_parse((const uint8_t *)"\x05\x00", 2, &no_auth), -1);

	assert_int_equal(
	    socks_request_parse(name, sizeof(name), host, &port, &rep, err, sizeof(err)), 10);
	assert_string_equal(host, "a.b");
	assert_int_equal(port, 443);
	for (size_t n = 0; n < sizeof(name); n++)
		assert_int_equal(socks_request_parse(name, n, host, &port, &rep, err, sizeof(err)),
				 0);
	assert_int_equal(socks_request_parse(v4, sizeof(v4), host, &port, &rep, err, sizeof(err)),
			 10);
	assert_string_equal(host, "10.0.0.1");
	assert_int_equal(port, 80);
	assert_int_equal(socks_request_parse(v6, sizeof(v6), host, &port, &rep, err, sizeof(err)),
			 22);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 8080);

	/* The fuzzer's find: a name of 255 bytes, which the length byte allows. */
	static uint8_t longname[4 + 1 + 255 + 2] = {5, 1, 0, 3, 255};
	memset(longname + 5, 'a', 255);
	assert_int_equal(
	    socks_request_parse(longname, sizeof(longname), host, &port, &rep, err, sizeof(err)),
	    -1);
	assert_string_equal(err, "SOCKS5 request with a name of 255 bytes, at most 253");
	longname[4] = 253;
	assert_int_equal(
	    socks_request_parse(longname, 4 + 1 + 253 + 2, host, &port, &rep, err, sizeof(err)),
	    4 + 1 + 253 + 2);
	assert_int_equal(strlen(host), 253);

	const struct {
		uint8_t b[12];
		size_t n;
		uint8_t rep;
		const char *err;
	} bad[] = {
	    {{5, 2, 0, 1, 1, 2, 3, 4, 0, 80},
	     10,
	     SOCKS_CMD_UNSUPPORTED,
	     "SOCKS5 command 2 is not supported: only CONNECT"},
	    {{5, 1, 0, 9}, 4, SOCKS_ATYP_UNSUPPORTED, "SOCKS5 address type 9 is not supported"},
	    {{4, 1, 0, 1}, 4, SOCKS_FAILURE, "malformed SOCKS5 request"},
	    {{5, 1, 0, 3, 0}, 5, SOCKS_FAILURE, "SOCKS5 request with an empty name"},
	    {{5, 1, 0, 3, 2, 'a', 0, 0, 80},
	     9,
	     SOCKS_FAILURE,
	     "SOCKS5 request with a NUL in its name"},
	    {{5, 1, 0, 1, 1, 2, 3, 4, 0, 0}, 10, SOCKS_FAILURE, "SOCKS5 request for port 0"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
		    socks_request_parse(bad[i].b, bad[i].n, host, &port, &rep, err, sizeof(err)),
		    -1);
		assert_int_equal(rep, bad[i].rep);
		assert_string_equal(err, bad[i].err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(connect_form),
	    cmocka_unit_test(absolute_form),
	    cmocka_unit_test(bad_heads),
	    cmocka_unit_test(socks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
