/* The poll loop: timers fire in deadline order, deletions inside a pass are safe, deferred work runs after it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "loop.h"
#include "net.h"

static int fired[8], nfired;

struct tagged {
	struct loop_timer t;
	int tag;
};

static void on_timer(struct loop *l, struct loop_timer *t)
{
	(void)l;
	fired[nfired++] = ((struct tagged *)t)->tag;
}

static void timers_in_order(void **state)
{
	struct loop *l = loop_new();
	struct tagged t[5];
	const int64_t delay[5] = {30, 10, 50, 20, 40};

	(void)state;
	nfired = 0;
	int64_t start = loop_now(); /* before arming: each deadline is at least this + its delay */
	for (int i = 0; i < 5; i++) {
		loop_timer_init(&t[i].t, on_timer);
		t[i].tag = i;
		assert_int_equal(loop_timer_set(l, &t[i].t, delay[i]), 0);
	}
	loop_timer_stop(l, &t[4].t); /* stopped: never fires */
	loop_timer_set(l, &t[2].t, 5); /* re-armed earlier: fires first */
	while (nfired < 4 && loop_now() - start < 2000)
		loop_once(l, 100);
	assert_int_equal(nfired, 4);
	assert_int_equal(fired[0], 2);
	assert_int_equal(fired[1], 1);
	assert_int_equal(fired[2], 3);
	assert_int_equal(fired[3], 0);
	assert_true(loop_now() - start >= 30);
	loop_free(l);
}

/* Two ready fds whose handlers delete each other: the second must not be called after deletion. */
static int calls;
static int other_fd;

static void deleter(struct loop *l, int fd, short rev, void *arg)
{
	(void)fd, (void)rev, (void)arg;
	calls++;
	loop_del(l, other_fd);
	loop_del(l, fd);
}

static void delete_in_pass(void **state)
{
	struct loop *l = loop_new();
	int a[2], b[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	calls = 0;
	assert_int_equal(loop_add(l, a[0], POLLIN, deleter, NULL), 0);
	assert_int_equal(loop_add(l, b[0], POLLIN, deleter, NULL), 0);
	other_fd = b[0];
	loop_once(l, 100);
	assert_int_equal(calls, 1);
	loop_once(l, 10); /* compacted, nothing left to call */
	assert_int_equal(calls, 1);
	/* The same fd number can be registered again at once. */
	assert_int_equal(loop_add(l, a[0], POLLIN, deleter, NULL), 0);
	other_fd = a[0];
	loop_once(l, 100);
	assert_int_equal(calls, 2);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	loop_free(l);
}

static int deferred_runs;

static void on_defer(struct loop_defer *d)
{
	(void)d;
	deferred_runs++;
}

static void defer_once(void **state)
{
	struct loop *l = loop_new();
	struct loop_defer d = {.fn = on_defer};

	(void)state;
	deferred_runs = 0;
	loop_defer(l, &d);
	loop_defer(l, &d);
	assert_int_equal(deferred_runs, 0);
	loop_once(l, 0);
	assert_int_equal(deferred_runs, 1);
	loop_free(l);
}

/* Undeferred, an entry leaves the queue wherever it is in it; the others still run. */
static void undefer(void **state)
{
	struct loop *l = loop_new();
	struct loop_defer d[3] = {{.fn = on_defer}, {.fn = on_defer}, {.fn = on_defer}};

	(void)state;
	deferred_runs = 0;
	for (int i = 0; i < 3; i++)
		loop_defer(l, &d[i]);
	loop_undefer(l, &d[1]);
	loop_undefer(l, &d[1]);
	assert_false(d[1].queued);
	loop_once(l, 0);
	assert_int_equal(deferred_runs, 2);
	loop_defer(l, &d[1]);
	loop_once(l, 0);
	assert_int_equal(deferred_runs, 3);
	loop_free(l);
}

/* The CID check on accepted vsock peers, with forged addresses (the emulation has no CIDs). */
static void vsock_peer_check(void **state)
{
	struct sockaddr_vm svm = {.svm_family = AF_VSOCK, .svm_cid = 4, .svm_port = 1234};
	struct sockaddr_un_like {
		sa_family_t family;
	} un = {AF_UNIX};

	(void)state;
	assert_true(net_vsock_peer_ok((struct sockaddr *)&svm, 4));
	assert_false(net_vsock_peer_ok((struct sockaddr *)&svm, 5));
	svm.svm_cid = 3;
	assert_false(net_vsock_peer_ok((struct sockaddr *)&svm, 4));
	assert_true(net_vsock_peer_ok((struct sockaddr *)&un, 4));
	char buf[NET_ADDR_LEN];
	svm.svm_cid = 7;
	assert_string_equal(net_addr_str((struct sockaddr *)&svm, sizeof(svm), buf, sizeof(buf)),
			    "vsock 7:1234");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(timers_in_order),	cmocka_unit_test(delete_in_pass),
	    cmocka_unit_test(defer_once),	cmocka_unit_test(undefer),
	    cmocka_unit_test(vsock_peer_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
