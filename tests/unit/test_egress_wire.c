/* The egress request and reply on the wire: round trips, frames, and what is refused. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <string.h>

#include "egress_wire.h"

static void round_trip(void **state)
{
	struct egress_req r = {.host = "api.example.com", .port = 443}, back;
	struct egress_reply a = {.status = EGRESS_REFUSED, .reason = "connect 1.2.3.4:443: x"},
			    a_back;
	uint8_t buf[4 + EGRESS_FRAME_MAX];
	char err[EGRESS_REASON_MAX];

	(void)state;
	size_t n = egress_req_encode(&r, buf, sizeof(buf));
	assert_true(n > 4);
	assert_int_equal(egress_frame_len(buf, n), (long)n);
	for (size_t k = 0; k < 4; k++)
		assert_int_equal(egress_frame_len(buf, k), 0);
	assert_int_equal(egress_req_decode(buf + 4, n - 4, &back, err, sizeof(err)), 0);
	assert_string_equal(back.host, "api.example.com");
	assert_int_equal(back.port, 443);
	/* The longest of everything still fits a frame. */
	memset(a.reason, 'r', sizeof(a.reason) - 1);
	memset(a.addr, 'a', sizeof(a.addr) - 1);
	memset(a.rule, 'u', sizeof(a.rule) - 1);
	n = egress_reply_encode(&a, buf, sizeof(buf));
	assert_true(n > 4);
	assert_int_equal(egress_reply_decode(buf + 4, n - 4, &a_back, err, sizeof(err)), 0);
	assert_memory_equal(&a, &a_back, sizeof(a));
	assert_int_equal(egress_req_encode(&r, buf, 10), 0);
	assert_string_equal(egress_status_name(EGRESS_TIMEOUT), "timeout");
	assert_string_equal(egress_status_name(99), "unknown");
}

static void refused(void **state)
{
	char err[EGRESS_REASON_MAX];
	struct egress_req r;
	const struct {
		const char *cbor;
		size_t n;
		const char *err;
	} cases[] = {
	    {"\xa1\x01\x61h", 4, "port: missing"},
	    {"\xa2\x01\x61h\x02\x00", 6, "port is empty"},
	    {"\xa2\x01\x60\x02\x01", 5, "host is empty"},
	    {"\xa2\x01\x61h\x02\x1a\x00\x01\x00\x00", 10,
	     "port: expected an unsigned integer up to 65535"},
	    {"\xa2\x01\x01\x02\x01", 5, "host: expected text of at most 253 bytes"},
	    {"\xa3\x01\x61h\x02\x01\x01\x61i", 9, "host: given twice"},
	    {"\xa2\x01\x62h\x00\x02\x01", 7, "host: expected text of at most 253 bytes"},
	    {"\x82\x01\x02", 3, "expected a map of at most 16 pairs"},
	    {"\xa2\x01\x61h\x02\x01\x00", 7, "trailing bytes after the CBOR item"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (egress_req_decode((const uint8_t *)cases[i].cbor, cases[i].n, &r, err,
				      sizeof(err)) != -1)
			fail_msg("case %zu accepted", i);
		assert_string_equal(err, cases[i].err);
	}
	/* Unknown keys, of a later version, are skipped. */
	assert_int_equal(egress_req_decode((const uint8_t *)"\xa3\x09\x82\x01\x02\x01\x61h\x02\x01",
					   10, &r, err, sizeof(err)),
			 0);
	assert_string_equal(r.host, "h");
	/* Frames: empty, or past the bound. */
	assert_int_equal(egress_frame_len((const uint8_t *)"\0\0\0\0", 4), -1);
	assert_int_equal(egress_frame_len((const uint8_t *)"\0\0\x04\x01", 4), -1);
	assert_int_equal(egress_frame_len((const uint8_t *)"\0\0\x04\x00", 4), 4 + 1024);
	assert_int_equal(egress_frame_len((const uint8_t *)"\xff\0\0\0", 4), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip),
	    cmocka_unit_test(refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
