/*
 * The supervisor's pure parts (backoff, policy names), the clock's verdicts on given
 * samples, and the supervisor itself on a real child through a real loop.
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clocksync.h"
#include "log.h"
#include "loop.h"
#include "supervisor.h"

#define MS 1000000LL

static void backoff_doubles_up_to_the_cap(void **state)
{
	(void)state;
	/* r = 0 gives the least of each range, r = all ones modulo it the most. */
	int64_t d = SUPERVISOR_BACKOFF_MIN_MS;
	for (unsigned n = 1; n < 20; n++) {
		int64_t lo = supervisor_backoff(n, 0), hi = supervisor_backoff(n, d / 2);
		assert_int_equal(lo, d / 2);
		assert_int_equal(hi, d);
		for (uint64_t r = 1; r < 5000; r += 97) {
			int64_t w = supervisor_backoff(n, r * 7919);
			assert_true(w >= d / 2 && w <= d);
		}
		d = d * 2 > SUPERVISOR_BACKOFF_MAX_MS ? SUPERVISOR_BACKOFF_MAX_MS : d * 2;
	}
	assert_int_equal(supervisor_backoff(1, 0), SUPERVISOR_BACKOFF_MIN_MS / 2);
	assert_int_equal(supervisor_backoff(100, SUPERVISOR_BACKOFF_MAX_MS / 2),
			 SUPERVISOR_BACKOFF_MAX_MS);
	/* Jitter: different numbers, different waits. */
	assert_true(supervisor_backoff(3, 1) != supervisor_backoff(3, 2));
}

static void restart_names(void **state)
{
	enum supervisor_restart r;

	(void)state;
	assert_int_equal(supervisor_restart_parse("no", &r), 0);
	assert_int_equal(r, RESTART_NO);
	assert_int_equal(supervisor_restart_parse("on-failure", &r), 0);
	assert_int_equal(r, RESTART_ON_FAILURE);
	assert_int_equal(supervisor_restart_parse("always", &r), 0);
	assert_int_equal(r, RESTART_ALWAYS);
	assert_int_equal(supervisor_restart_parse("On-Failure", &r), -1);
	assert_int_equal(supervisor_restart_parse("", &r), -1);
	assert_int_equal(supervisor_restart_parse("never", &r), -1);
}

static enum clocksync_verdict judge(int64_t rtt, int64_t host, int64_t local, int64_t *off)
{
	struct clocksync_sample s = {.rtt_ns = rtt, .host_ns = host, .local_ns = local};

	*off = 0;
	return clocksync_judge(&s, off);
}

static void clock_verdicts(void **state)
{
	int64_t base = 1796000000LL * 1000 * MS, off;

	(void)state;
	/* The host read its clock halfway through the round trip. */
	assert_int_equal(judge(10 * MS, base, base + 5 * MS, &off), CLOCKSYNC_CLOSE);
	assert_int_equal(off, 0);
	/* 3 s behind: a step of +3 s. */
	assert_int_equal(judge(10 * MS, base, base - 2995 * MS, &off), CLOCKSYNC_STEP);
	assert_int_equal(off, 3000 * MS);
	/* 2 s ahead: a step back. */
	assert_int_equal(judge(2 * MS, base, base + 2001 * MS, &off), CLOCKSYNC_STEP);
	assert_int_equal(off, -2000 * MS);
	/* Under the threshold: left alone. */
	assert_int_equal(judge(2 * MS, base, base - 80 * MS, &off), CLOCKSYNC_CLOSE);
	assert_int_equal(off, 81 * MS);
	/* Over the threshold only by less than the sample's error: not sure, left alone. */
	assert_int_equal(judge(400 * MS, base, base - 50 * MS, &off), CLOCKSYNC_CLOSE);
	assert_int_equal(off, 250 * MS);
	/* Far over it with the same error: stepped. */
	assert_int_equal(judge(400 * MS, base, base - 1000 * MS, &off), CLOCKSYNC_STEP);
	/* A round trip too long, or impossible, says nothing however far off. */
	assert_int_equal(judge(CLOCKSYNC_MAX_RTT_NS + 1, base, base - 3600000 * MS, &off),
			 CLOCKSYNC_SLOW);
	assert_int_equal(judge(-1, base, base - 3600000 * MS, &off), CLOCKSYNC_SLOW);
	assert_int_equal(judge(CLOCKSYNC_MAX_RTT_NS, base, base - 3600000 * MS, &off),
			 CLOCKSYNC_STEP);
}

/* What the supervisor logs, through the log's sink. */
static char seen[8192];
static size_t nseen;

static void sink(int level, const char *line, size_t len)
{
	int n = snprintf(seen + nseen, sizeof(seen) - nseen, "%d %.*s\n", level, (int)len, line);
	if (n > 0 && (size_t)n < sizeof(seen) - nseen)
		nseen += (size_t)n;
}

static struct msg_app last_app;
static int changes;
/* Stop the app with this signal at its first exit (0: never), as SIGTERM would. */
static int stop_at_exit;
static struct supervisor *running;

static void changed(void *arg, const struct msg_app *app)
{
	(void)arg;
	last_app = *app;
	changes++;
	if (stop_at_exit && !app->running && app->exits == 1)
		supervisor_stop(running, stop_at_exit);
}

/* Run the loop as main.c does until the supervisor stops it; the exit status. */
static int run_app(char *const argv[], enum supervisor_restart restart)
{
	struct loop *l = loop_new();
	struct supervisor_opts o = {.argv = argv, .restart = restart, .stop_timeout_ms = 5000};
	char err[256];

	assert_non_null(l);
	assert_int_equal(loop_catch_signal(l, SIGCHLD), 0);
	struct supervisor *s = supervisor_new(l, &o, changed, NULL);
	assert_non_null(s);
	running = s;
	nseen = 0;
	seen[0] = '\0';
	changes = 0;
	log_set_level(LOG_INFO);
	log_set_sink(sink);
	assert_int_equal(supervisor_start(s, err, sizeof(err)), 0);
	for (int sig; (sig = loop_run(l)) == SIGCHLD;)
		supervisor_reap(s);
	int rc = supervisor_status(s);
	supervisor_free(s);
	loop_free(l);
	log_set_sink(NULL);
	return rc;
}

static void real_app_lines_and_status(void **state)
{
	char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; printf 'tail'; exit 7", NULL};

	(void)state;
	assert_int_equal(run_app(argv, RESTART_NO), 7);
	/* stdout at info, stderr at warn, the unended last line too, all before the exit. */
	assert_non_null(strstr(seen, "INFO  [app] out\n"));
	assert_non_null(strstr(seen, "WARN  [app] err\n"));
	char *tail = strstr(seen, "[app] tail\n"),
	     *exit_line = strstr(seen, "exited with status 7");
	assert_non_null(tail);
	assert_non_null(exit_line);
	assert_true(tail < exit_line);
	assert_false(last_app.running);
	assert_int_equal(last_app.exits, 1);
	assert_int_equal(last_app.status, 7);
	assert_int_equal(last_app.signal, 0);
	assert_string_equal(last_app.command,
			    "/bin/sh -c echo out; echo err >&2; printf 'tail'; exit 7");
}

static void restart_on_failure_until_success(void **state)
{
	/* Fails twice, then succeeds: a file counts the runs. */
	char path[] = "/tmp/qproxy-test-supervisor-XXXXXX";
	int fd = mkstemp(path);
	char script[512];

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	snprintf(script, sizeof(script),
		 "echo run >> %s; n=$(wc -l < %s); echo run $n; [ $n -ge 3 ]", path, path);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	assert_int_equal(run_app(argv, RESTART_ON_FAILURE), 0);
	unlink(path);
	assert_int_equal(last_app.restarts, 2);
	assert_int_equal(last_app.exits, 3);
	assert_non_null(strstr(seen, "[app] run 1\n"));
	assert_non_null(strstr(seen, "[app] run 3\n"));
	assert_non_null(strstr(seen, "app: restart 1 in "));
	assert_non_null(strstr(seen, "app: restart 2 in "));
	assert_null(strstr(seen, "app: restart 3 in "));
}

static void a_stop_while_waiting_to_restart_ends_it(void **state)
{
	char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};

	(void)state;
	/* Stopped between its exit and the restart: no restart, and its last status. */
	stop_at_exit = SIGTERM;
	assert_int_equal(run_app(argv, RESTART_ALWAYS), 3);
	stop_at_exit = 0;
	assert_int_equal(last_app.restarts, 0);
	assert_int_equal(last_app.exits, 1);
	assert_non_null(strstr(seen, "app: restart 1 in "));
	/* Started once only. */
	char *first = strstr(seen, "app: started ");
	assert_non_null(first);
	assert_null(strstr(first + 1, "app: started "));
}

static void killed_by_a_signal_is_128_plus(void **state)
{
	char *argv[] = {"/bin/sh", "-c", "kill -USR1 $$", NULL};

	(void)state;
	assert_int_equal(run_app(argv, RESTART_NO), 128 + SIGUSR1);
	assert_int_equal(last_app.signal, SIGUSR1);
}

static void a_command_that_cannot_run_is_127(void **state)
{
	char *argv[] = {"/nonexistent/app", NULL};

	(void)state;
	assert_int_equal(run_app(argv, RESTART_NO), 127);
	assert_non_null(
	    strstr(seen, "[app] qproxy: cannot run /nonexistent/app: No such file or directory"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(backoff_doubles_up_to_the_cap),
	    cmocka_unit_test(restart_names),
	    cmocka_unit_test(clock_verdicts),
	    cmocka_unit_test(real_app_lines_and_status),
	    cmocka_unit_test(restart_on_failure_until_success),
	    cmocka_unit_test(a_stop_while_waiting_to_restart_ends_it),
	    cmocka_unit_test(killed_by_a_signal_is_128_plus),
	    cmocka_unit_test(a_command_that_cannot_run_is_127),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
