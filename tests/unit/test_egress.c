/* Egress counters per destination: one entry each, bounded, the busiest first. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <string.h>

#include "egress.h"

static void entries(void **state)
{
	struct egress_stats s = {0};
	char buf[EGRESS_DEST_LEN];

	(void)state;
	struct egress_dest *a = egress_stats_get(&s, "api.example.com", 443);
	struct egress_dest *b = egress_stats_get(&s, "2001:db8::1", 80);
	assert_ptr_equal(egress_stats_get(&s, "api.example.com", 443), a);
	assert_ptr_not_equal(egress_stats_get(&s, "api.example.com", 80), a);
	assert_string_equal(a->name, "api.example.com:443");
	assert_string_equal(b->name, "[2001:db8::1]:80");
	assert_string_equal(egress_dest_str("::1", 1, buf, sizeof(buf)), "[::1]:1");
	/* An entry stays where it is while others come: connections hold on to theirs. */
	a->total = 7;
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "h%d.example.com", i);
		egress_stats_get(&s, buf, 1);
	}
	assert_int_equal(a->total, 7);
	assert_ptr_equal(egress_stats_get(&s, "api.example.com", 443), a);
	/* Past the bound, one "(others)" entry for the rest. */
	for (int i = 0; i < EGRESS_DESTS_MAX; i++) {
		snprintf(buf, sizeof(buf), "x%d.example.com", i);
		egress_stats_get(&s, buf, 1);
	}
	assert_int_equal(s.n, EGRESS_DESTS_MAX);
	struct egress_dest *o = egress_stats_get(&s, "late.example.com", 1);
	assert_ptr_equal(o, &s.others);
	assert_string_equal(o->name, "(others)");
	egress_stats_free(&s);
	assert_int_equal(s.n, 0);
}

static void busiest_first(void **state)
{
	struct egress_stats s = {0};
	const struct egress_dest *top[3];
	char buf[32];

	(void)state;
	assert_int_equal(egress_stats_top(&s, top, 3), 0);
	for (int i = 0; i < 6; i++) {
		snprintf(buf, sizeof(buf), "h%d", i);
		struct egress_dest *d = egress_stats_get(&s, buf, 1);
		d->total = (unsigned long)(i % 3); /* h0, h3: nothing at all; left out */
		d->bytes_down = (uint64_t)i;	   /* ties broken by bytes */
	}
	egress_stats_get(&s, "denied", 1)->denied = 1;
	size_t n = egress_stats_top(&s, top, 3);
	assert_int_equal(n, 3);
	assert_string_equal(top[0]->name, "h5:1"); /* 2 connections, 5 bytes */
	assert_string_equal(top[1]->name, "h2:1"); /* 2, 2 */
	assert_string_equal(top[2]->name, "h4:1"); /* 1, 4 */
	const struct egress_dest *all[10];
	assert_int_equal(egress_stats_top(&s, all, 10), 5);
	assert_string_equal(all[4]->name, "denied:1");
	egress_stats_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(entries),
	    cmocka_unit_test(busiest_first),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
