/* Repeating log lines: said once per window per key, or once per interval, with counts. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <stdio.h>
#include <string.h>

#include "lograte.h"

static struct lograte rate = {.window = 60000};

static void each_key_once_per_window(void **state)
{
	unsigned long unsaid = 99;

	(void)state;
	memset(rate.seen, 0, sizeof(rate.seen));
	assert_true(lograte_say(&rate, "a.example", 1000, &unsaid));
	assert_int_equal(unsaid, 0);
	assert_false(lograte_say(&rate, "a.example", 1001, &unsaid));
	assert_false(lograte_say(&rate, "a.example", 60999, &unsaid));
	/* Another key is said at once; a prefix of one is another key. */
	assert_true(lograte_say(&rate, "b.example", 2000, &unsaid));
	assert_true(lograte_say(&rate, "a.exampl", 2000, &unsaid));
	/* The window over: said again, with the two counted since. */
	assert_true(lograte_say(&rate, "a.example", 61000, &unsaid));
	assert_int_equal(unsaid, 2);
	assert_false(lograte_say(&rate, "a.example", 61001, &unsaid));
	assert_true(lograte_say(&rate, "a.example", 121000, &unsaid));
	assert_int_equal(unsaid, 1);
	assert_true(lograte_say(&rate, "b.example", 62000, &unsaid));
	assert_int_equal(unsaid, 0);
}

static void a_new_key_takes_the_oldest_place(void **state)
{
	unsigned long unsaid;
	char key[32];

	(void)state;
	memset(rate.seen, 0, sizeof(rate.seen));
	for (int i = 0; i < LOGRATE_KEYS; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_true(lograte_say(&rate, key, 1000 + i, &unsaid));
	}
	/* All remembered: none is said again within the window. */
	for (int i = 0; i < LOGRATE_KEYS; i++) {
		snprintf(key, sizeof(key), "n%d", i);
		assert_false(lograte_say(&rate, key, 5000, &unsaid));
	}
	/* One more: it takes n0's place (said longest ago), so n0 is new again, and takes n1's. */
	assert_true(lograte_say(&rate, "extra", 6000, &unsaid));
	assert_true(lograte_say(&rate, "n0", 6001, &unsaid));
	assert_int_equal(unsaid, 0);
	assert_false(lograte_say(&rate, "n2", 6002, &unsaid));
	assert_true(lograte_say(&rate, "n1", 6003, &unsaid));
}

static void a_long_key_is_known_by_its_start(void **state)
{
	char a[LOGRATE_KEY_MAX + 20], b[LOGRATE_KEY_MAX + 20];
	unsigned long unsaid;

	(void)state;
	memset(rate.seen, 0, sizeof(rate.seen));
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[LOGRATE_KEY_MAX + 5] = 'y';
	assert_true(lograte_say(&rate, a, 1000, &unsaid));
	assert_false(lograte_say(&rate, b, 1001, &unsaid));
	b[LOGRATE_KEY_MAX - 1] = 'y';
	assert_true(lograte_say(&rate, b, 1002, &unsaid));
}

/* One kind of line, said once per interval with how many it stands for, itself included. */
static void counted_once_per_interval(void **state)
{
	struct logcount c = {0};
	unsigned long n = 99;

	(void)state;
	assert_true(logcount_say(&c, 5, 1000, &n)); /* the first at once, early clock or not */
	assert_int_equal(n, 1);
	assert_false(logcount_say(&c, 6, 1000, &n));
	assert_false(logcount_say(&c, 1004, 1000, &n));
	assert_true(logcount_say(&c, 1005, 1000, &n));
	assert_int_equal(n, 3);
	assert_true(logcount_say(&c, 9000, 1000, &n));
	assert_int_equal(n, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_key_once_per_window),
	    cmocka_unit_test(a_new_key_takes_the_oldest_place),
	    cmocka_unit_test(a_long_key_is_known_by_its_start),
	    cmocka_unit_test(counted_once_per_interval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
