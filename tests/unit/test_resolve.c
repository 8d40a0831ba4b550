/*
 * Lookups off the loop, with getaddrinfo() wrapped by the linker (see the
 * Makefile): names starting "stuck" block like a blackholed DNS server until
 * the test lets them go, "syserr" fails with EAI_SYSTEM, any other name is
 * answered at once with 127.0.0.1.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "loop.h"
#include "resolve.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool released;
static unsigned stuck_now, stuck_most;

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	if (strncmp(node, "stuck", 5) == 0) {
		pthread_mutex_lock(&mu);
		if (++stuck_now > stuck_most)
			stuck_most = stuck_now;
		pthread_cond_broadcast(&cv);
		while (!released)
			pthread_cond_wait(&cv, &mu);
		stuck_now--;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		return EAI_AGAIN;
	}
	if (strcmp(node, "syserr") == 0) {
		errno = ECONNREFUSED;
		return EAI_SYSTEM;
	}
	struct addrinfo h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return __real_getaddrinfo("127.0.0.1", service, &h, res);
}

/* Let every stuck lookup go, and wait until their workers have left getaddrinfo(). */
static void release_all(void)
{
	pthread_mutex_lock(&mu);
	released = true;
	pthread_cond_broadcast(&cv);
	while (stuck_now > 0)
		pthread_cond_wait(&cv, &mu);
	released = false;
	pthread_mutex_unlock(&mu);
}

/* Until n lookups are stuck at once; a test that fails here would otherwise hang. */
static void wait_stuck(unsigned n)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&mu);
	while (stuck_now < n && pthread_cond_timedwait(&cv, &mu, &until) == 0)
		;
	unsigned now = stuck_now;
	pthread_mutex_unlock(&mu);
	assert_int_equal(now, n);
}

struct result {
	int calls;
	bool ok;
	uint16_t port;
	char err[128];
};

static void on_result(void *arg, struct addrinfo *ai, const char *err)
{
	struct result *r = arg;

	r->calls++;
	r->ok = ai != NULL;
	if (ai) {
		assert_null(err);
		assert_int_equal(ai->ai_family, AF_INET);
		r->port = ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port);
		freeaddrinfo(ai);
	} else {
		assert_non_null(err);
		snprintf(r->err, sizeof(r->err), "%s", err);
	}
}

static struct loop *loop;

/* Run the loop until r has its answer; a test that fails here would otherwise hang. */
static void wait_result(struct result *r)
{
	for (int i = 0; i < 30000 && r->calls == 0; i++)
		assert_true(loop_once(loop, 1) >= 0);
	assert_int_equal(r->calls, 1);
}

/* Some passes of the loop, enough for answers already in to be handed on. */
static void run_passes(void)
{
	for (int i = 0; i < 10; i++)
		assert_true(loop_once(loop, 1) >= 0);
}

static void answers(void **state)
{
	struct result r = {0};

	(void)state;
	assert_non_null(resolve_start(loop, "example", 443, AF_UNSPEC, 60000, on_result, &r));
	wait_result(&r);
	assert_true(r.ok);
	assert_int_equal(r.port, 443);
}

/* EAI_SYSTEM's errno is the worker thread's, not whatever the loop's thread holds. */
static void system_error(void **state)
{
	struct result r = {0};

	(void)state;
	assert_non_null(resolve_start(loop, "syserr", 80, AF_UNSPEC, 60000, on_result, &r));
	wait_result(&r);
	assert_false(r.ok);
	assert_string_equal(r.err, "Connection refused");
}

/* Lookups stuck on a dead DNS server hold up no other: more of them than the old four workers. */
static void stuck_hold_up_nothing(void **state)
{
	struct result stuck[8], r = {0};
	struct resolve_req *rq[8];

	(void)state;
	memset(stuck, 0, sizeof(stuck));
	for (int i = 0; i < 8; i++)
		assert_non_null(rq[i] = resolve_start(loop, "stuck.example", 443, AF_UNSPEC, 60000,
						      on_result, &stuck[i]));
	wait_stuck(8);
	assert_non_null(resolve_start(loop, "example", 80, AF_UNSPEC, 60000, on_result, &r));
	wait_result(&r);
	assert_true(r.ok);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(stuck[i].calls, 0);
		resolve_cancel(rq[i]);
	}
	release_all();
	run_passes();
	for (int i = 0; i < 8; i++)
		assert_int_equal(stuck[i].calls, 0); /* cancelled: the late answers are dropped */
}

/* No answer by the deadline: the lookup fails, saying so; the late answer is dropped. */
static void deadline(void **state)
{
	struct result r = {0};

	(void)state;
	assert_non_null(resolve_start(loop, "stuck.example", 443, AF_UNSPEC, 50, on_result, &r));
	wait_result(&r);
	assert_false(r.ok);
	assert_string_equal(r.err, "no answer within 50 ms");
	release_all();
	run_passes();
	assert_int_equal(r.calls, 1);
}

/*
 * With every worker stuck, a new lookup waits for one, and still ends by its
 * deadline; no more than RESOLVE_WORKERS_MAX threads were ever started.
 */
static void cap_and_deadline(void **state)
{
	static struct result stuck[RESOLVE_WORKERS_MAX];
	static struct resolve_req *rq[RESOLVE_WORKERS_MAX];
	struct result r = {0};

	(void)state;
	memset(stuck, 0, sizeof(stuck));
	pthread_mutex_lock(&mu);
	stuck_most = 0;
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < RESOLVE_WORKERS_MAX; i++)
		assert_non_null(rq[i] = resolve_start(loop, "stuck.example", 443, AF_UNSPEC, 60000,
						      on_result, &stuck[i]));
	wait_stuck(RESOLVE_WORKERS_MAX);
	assert_non_null(resolve_start(loop, "example", 80, AF_UNSPEC, 1000, on_result, &r));
	wait_result(&r);
	assert_false(r.ok);
	assert_string_equal(r.err, "no answer within 1 s");
	for (int i = 0; i < RESOLVE_WORKERS_MAX; i++)
		resolve_cancel(rq[i]);
	release_all();
	run_passes();
	pthread_mutex_lock(&mu);
	assert_int_equal(stuck_most, RESOLVE_WORKERS_MAX);
	pthread_mutex_unlock(&mu);
}

/* Cancelled, a lookup never calls back, answered or not. */
static void cancel(void **state)
{
	struct result r = {0};

	(void)state;
	struct resolve_req *rq =
	    resolve_start(loop, "example", 80, AF_UNSPEC, 60000, on_result, &r);
	assert_non_null(rq);
	resolve_cancel(rq);
	for (int i = 0; i < 100; i++)
		assert_true(loop_once(loop, 1) >= 0);
	assert_int_equal(r.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(answers),
	    cmocka_unit_test(system_error),
	    cmocka_unit_test(stuck_hold_up_nothing),
	    cmocka_unit_test(deadline),
	    cmocka_unit_test(cap_and_deadline),
	    cmocka_unit_test(cancel),
	};

	loop = loop_new();
	assert_non_null(loop);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	loop_free(loop);
	return rc;
}
