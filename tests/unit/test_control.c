/*
 * The control link where only an injected fault reaches it: loop_add and net_connect are
 * wrapped by the linker (--wrap, see the Makefile), and fail or hang when a test says so.
 * The host half is a plain Unix socket where the vsock emulation looks for it.
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "half_rig.h"
#include "log.h"
#include "net.h"

#define HOST_CID 3
#define ENCLAVE_CID 4
#define PORT 6666
/* Longer than the longest reconnect backoff: a link that does not come back by then never will. */
#define RECONNECT_WAIT_MS 15000

int __real_loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg);
int __wrap_loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg);
int __real_net_connect(const struct sockaddr *sa, socklen_t len, bool *pending);
int __wrap_net_connect(const struct sockaddr *sa, socklen_t len, bool *pending);

/* Faults to inject: how many loop_add calls for a POLLIN link fail; a connect that hangs. */
static int fail_link_adds;
static bool hang_connect;
static int hung_peer = -1; /* the far end of the hanging connect's socket */

int __wrap_loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg)
{
	if (events == POLLIN && fail_link_adds > 0) {
		fail_link_adds--;
		errno = ENOMEM;
		return -1;
	}
	return __real_loop_add(l, fd, events, fn, arg);
}

/* A connect that stays in progress: a socketpair end is writable, but nobody polls it here. */
int __wrap_net_connect(const struct sockaddr *sa, socklen_t len, bool *pending)
{
	int sv[2];

	if (!hang_connect)
		return __real_net_connect(sa, len, pending);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	hung_peer = sv[1];
	*pending = true;
	return sv[0];
}

struct rig {
	char dir[64];
	char path[108];
	int host; /* the listener standing in for the host half */
	struct half h;
};

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	char err[256];
	static const char toml[] = "[[inbound_connections]]\n"
				   "host_port = 5050\n"
				   "enclave_port = 5050\n"
				   "vsock_port = 9995\n";

	assert_non_null(g);
	log_set_level(LOG_OFF);
	snprintf(g->dir, sizeof(g->dir), "/tmp/qpctlXXXXXX");
	assert_non_null(mkdtemp(g->dir));
	assert_int_equal(net_vsock_emulate(g->dir, ENCLAVE_CID, err, sizeof(err)), 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%u.%u", g->dir, HOST_CID, PORT);
	snprintf(g->path, sizeof(g->path), "%s", sun.sun_path);
	g->host = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(g->host >= 0);
	assert_int_equal(bind(g->host, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(g->host, 16), 0);
	half_new(&g->h, PROXY_ENCLAVE, HOST_CID, PORT, toml);
	fail_link_adds = 0;
	hang_connect = false;
	hung_peer = -1;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;

	half_free(&g->h);
	close(g->host);
	if (hung_peer >= 0)
		close(hung_peer);
	unlink(g->path);
	rmdir(g->dir);
	free(g);
	return 0;
}

/* Accept what the enclave half has connected, and close it: one connection, counted. */
static int accept_all(struct rig *g)
{
	int n = 0, fd;

	while ((fd = accept4(g->host, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		close(fd);
		n++;
	}
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The link's fd cannot be registered with the loop: the enclave half must try again
 * later, as after any other failed connect, not give up on the host half for good.
 */
static void enclave_reconnects_after_loop_add_fails(void **state)
{
	struct rig *g = *state;
	char err[256];

	fail_link_adds = 1;
	assert_int_equal(control_start(g->h.ctl, err, sizeof(err)), 0);
	assert_int_equal(fail_link_adds, 0); /* the fault was hit */
	assert_int_equal(accept_all(g), 1);  /* that connect reached the host, then was closed */
	int again = 0;
	for (int64_t end = now_ms() + RECONNECT_WAIT_MS; !again && now_ms() < end;) {
		assert_true(loop_once(g->h.loop, 50) >= 0);
		again = accept_all(g);
	}
	assert_int_equal(again, 1);
}

/* A connect still in progress belongs to the control channel: freeing it closes the socket. */
static void free_closes_a_connect_in_progress(void **state)
{
	struct rig *g = *state;
	char err[256], c;

	hang_connect = true;
	assert_int_equal(control_start(g->h.ctl, err, sizeof(err)), 0);
	assert_true(hung_peer >= 0);
	assert_int_equal(recv(hung_peer, &c, 1, MSG_DONTWAIT), -1); /* open: nothing yet, no EOF */
	assert_int_equal(errno, EAGAIN);
	control_free(g->h.ctl);
	g->h.ctl = NULL;
	assert_int_equal(recv(hung_peer, &c, 1, MSG_DONTWAIT), 0); /* EOF: our end was closed */
}

/*
 * The host half, linked with a fake enclave half of version 1.0.0, for the tests of what
 * new connections to its control port may and may not do to that link.
 */
#define CANDIDATES 5 /* one more than the host half keeps */

struct host_rig {
	char dir[64];
	char path[108]; /* the emulated control socket */
	struct half h;
	int linked;		/* the fake enclave's end of the link */
	int others[CANDIDATES]; /* more connections, -1 when none */
};

static int setup_host(void **state)
{
	struct host_rig *g = calloc(1, sizeof(*g));
	char err[256];

	assert_non_null(g);
	log_set_level(LOG_OFF);
	fail_link_adds = 0;
	snprintf(g->dir, sizeof(g->dir), "/tmp/qpctlXXXXXX");
	assert_non_null(mkdtemp(g->dir));
	assert_int_equal(net_vsock_emulate(g->dir, HOST_CID, err, sizeof(err)), 0);
	snprintf(g->path, sizeof(g->path), "%s/%u.%u", g->dir, HOST_CID, PORT);
	half_new(&g->h, PROXY_HOST, ENCLAVE_CID, PORT,
		 "[[inbound_connections]]\nhost_port = 5050\nenclave_port = 5050\n"
		 "vsock_port = 9995\n");
	assert_int_equal(control_start(g->h.ctl, err, sizeof(err)), 0);
	g->linked = rig_enclave_hello(&g->h, g->path, "1.0.0");
	rig_wait_linked(&g->h, "1.0.0");
	for (size_t i = 0; i < CANDIDATES; i++)
		g->others[i] = -1;
	*state = g;
	return 0;
}

static int teardown_host(void **state)
{
	struct host_rig *g = *state;

	half_free(&g->h);
	close(g->linked);
	for (size_t i = 0; i < CANDIDATES; i++)
		if (g->others[i] >= 0)
			close(g->others[i]);
	rmdir(g->dir);
	free(g);
	return 0;
}

/* Has the host half closed the connection at fd? What it sent before is read and dropped. */
static bool closed_by_host(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	return n == 0;
}

static void run_until_closed(struct host_rig *g, int fd)
{
	for (int64_t end = now_ms() + RIG_WAIT_MS; !closed_by_host(fd) && now_ms() < end;)
		assert_true(loop_once(g->h.loop, 10) >= 0);
	assert_true(closed_by_host(fd));
}

/* A new connection whose fd the loop cannot take is closed; the link is not touched. */
static void a_candidate_that_cannot_be_polled_leaves_the_link(void **state)
{
	struct host_rig *g = *state;

	fail_link_adds = 1;
	g->others[0] = rig_enclave_hello(&g->h, g->path, "2.0.0");
	run_until_closed(g, g->others[0]);
	assert_int_equal(fail_link_adds, 0);
	rig_wait_linked(&g->h, "1.0.0");
	assert_false(closed_by_host(g->linked));
}

/* Silent connections wait beside the link, four at most: the oldest makes way for a fifth. */
static void the_oldest_silent_candidate_makes_way(void **state)
{
	struct host_rig *g = *state;

	for (size_t i = 0; i < CANDIDATES; i++) {
		g->others[i] = rig_unix_connect(g->path);
		/* Taken one at a time, in this order, each at its own millisecond. */
		for (int64_t end = loop_now() + 2; loop_now() < end;)
			assert_true(loop_once(g->h.loop, 1) >= 0);
	}
	run_until_closed(g, g->others[0]);
	for (size_t i = 1; i < CANDIDATES; i++)
		assert_false(closed_by_host(g->others[i]));
	rig_wait_linked(&g->h, "1.0.0");
	assert_false(closed_by_host(g->linked));
}

/* A new connection that says hello is the enclave half restarted: it takes the link. */
static void a_candidate_saying_hello_takes_the_link(void **state)
{
	struct host_rig *g = *state;

	g->others[0] = rig_enclave_hello(&g->h, g->path, "2.0.0");
	rig_wait_linked(&g->h, "2.0.0");
	run_until_closed(g, g->linked);
	assert_false(closed_by_host(g->others[0]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(enclave_reconnects_after_loop_add_fails, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(free_closes_a_connect_in_progress, setup, teardown),
	    cmocka_unit_test_setup_teardown(a_candidate_that_cannot_be_polled_leaves_the_link,
					    setup_host, teardown_host),
	    cmocka_unit_test_setup_teardown(the_oldest_silent_candidate_makes_way, setup_host,
					    teardown_host),
	    cmocka_unit_test_setup_teardown(a_candidate_saying_hello_takes_the_link, setup_host,
					    teardown_host),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
