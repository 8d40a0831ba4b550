/* The app's output into log lines: splitting, the cut of long lines, escaping, the last line. */
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

#include "appline.h"

#define MAX_LINES 16

struct got {
	size_t n;
	char text[MAX_LINES][APPLINE_OUT_MAX];
	size_t len[MAX_LINES];
};

static void collect(void *arg, const char *text, size_t len)
{
	struct got *g = arg;

	assert_true(g->n < MAX_LINES);
	assert_int_equal(strlen(text), len);
	assert_true(len < APPLINE_OUT_MAX);
	memcpy(g->text[g->n], text, len + 1);
	g->len[g->n++] = len;
}

static void feed_str(struct appline *a, struct got *g, const char *s)
{
	appline_feed(a, s, strlen(s), collect, g);
}

static void lines_split_at_newlines(void **state)
{
	struct appline a;
	struct got g = {0};

	(void)state;
	appline_init(&a);
	feed_str(&a, &g, "one\ntw");
	assert_int_equal(g.n, 1);
	feed_str(&a, &g, "o\r\n\nthree");
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[0], "one");
	assert_string_equal(g.text[1], "two"); /* CRLF: the CR goes with the newline */
	assert_string_equal(g.text[2], "");    /* an empty line is a line */
	/* No newline at the end: the line still comes, at EOF, once. */
	appline_end(&a, collect, &g);
	assert_int_equal(g.n, 4);
	assert_string_equal(g.text[3], "three");
	appline_end(&a, collect, &g);
	assert_int_equal(g.n, 4);
}

static void bytes_one_at_a_time(void **state)
{
	const char *in = "h\xc3\xa9llo w\xe2\x82\xacrld\n";
	struct appline a;
	struct got g = {0};

	(void)state;
	appline_init(&a);
	/* A UTF-8 character split across reads is still one character. */
	for (size_t i = 0; in[i]; i++)
		appline_feed(&a, in + i, 1, collect, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0], "h\xc3\xa9llo w\xe2\x82\xacrld");
}

static void invalid_utf8_and_controls_escaped(void **state)
{
	/* a lone continuation byte, 0xff, an overlong '/', a surrogate, a cut-off sequence */
	const char in[] = "a\x80z\xff"
			  "\xc0\xaf"
			  "\xed\xa0\x80"
			  "\x1b[31m\tok\x7f\xe2\x82\n";
	struct appline a;
	struct got g = {0};

	(void)state;
	appline_init(&a);
	appline_feed(&a, in, sizeof(in) - 1, collect, &g);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0],
			    "a\\x80z\\xff\\xc0\\xaf\\xed\\xa0\\x80\\x1b[31m\tok\\x7f\\xe2\\x82");
}

static void long_line_cut_and_counted(void **state)
{
	size_t big = 1024 * 1024;
	char *in = malloc(big + 8);
	struct appline a;
	struct got g = {0};

	(void)state;
	assert_non_null(in);
	memset(in, 'x', big);
	memcpy(in + big, "\nnext\n", 6);
	appline_init(&a);
	/* In pieces, as a pipe hands it over. */
	for (size_t off = 0; off < big + 6; off += 65536) {
		size_t n = big + 6 - off < 65536 ? big + 6 - off : 65536;
		appline_feed(&a, in + off, n, collect, &g);
	}
	assert_int_equal(g.n, 2);
	char want[APPLINE_OUT_MAX];
	memset(want, 'x', APPLINE_KEEP);
	snprintf(want + APPLINE_KEEP, sizeof(want) - APPLINE_KEEP, " [line cut: %zu bytes]", big);
	assert_string_equal(g.text[0], want);
	/* The line after the cut one starts afresh. */
	assert_string_equal(g.text[1], "next");
	free(in);
}

static void escapes_that_outgrow_the_text_are_cut(void **state)
{
	unsigned char in[APPLINE_KEEP + 1];
	struct appline a;
	struct got g = {0};

	(void)state;
	memset(in, 0xff, APPLINE_KEEP);
	in[APPLINE_KEEP] = '\n';
	appline_init(&a);
	appline_feed(&a, in, sizeof(in), collect, &g);
	assert_int_equal(g.n, 1);
	/* Each byte becomes 4: as many whole escapes as fit, then the mark. */
	size_t fit = APPLINE_TEXT_MAX / 4;
	assert_int_equal(strncmp(g.text[0] + 4 * fit, " [line cut: 768 bytes]", 23), 0);
	for (size_t i = 0; i < fit; i++)
		assert_memory_equal(g.text[0] + 4 * i, "\\xff", 4);
}

static void line_of_exactly_keep_bytes_is_whole(void **state)
{
	char in[APPLINE_KEEP + 1];
	struct appline a;
	struct got g = {0};

	(void)state;
	memset(in, 'y', APPLINE_KEEP);
	in[APPLINE_KEEP] = '\n';
	appline_init(&a);
	appline_feed(&a, in, sizeof(in), collect, &g);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], APPLINE_KEEP);
	assert_null(strstr(g.text[0], "cut"));
}

static void escape_reports_what_it_took(void **state)
{
	char out[8];
	size_t used;

	(void)state;
	/* Room for "ab" and the NUL only: the \xff after them does not fit whole. */
	assert_int_equal(appline_escape((const unsigned char *)"ab\xff", 3, out, 3, &used), 2);
	assert_int_equal(used, 2);
	assert_string_equal(out, "ab");
	assert_int_equal(appline_escape((const unsigned char *)"ab\xff", 3, out, 8, &used), 6);
	assert_int_equal(used, 3);
	assert_string_equal(out, "ab\\xff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_split_at_newlines),
	    cmocka_unit_test(bytes_one_at_a_time),
	    cmocka_unit_test(invalid_utf8_and_controls_escaped),
	    cmocka_unit_test(long_line_cut_and_counted),
	    cmocka_unit_test(escapes_that_outgrow_the_text_are_cut),
	    cmocka_unit_test(line_of_exactly_keep_bytes_is_whole),
	    cmocka_unit_test(escape_reports_what_it_took),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
