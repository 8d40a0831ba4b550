/*
 * A connection's life in proxy.c where it can only be reached by injecting a
 * fault: net_connect, loop_timer_set, loop_defer and free are wrapped (see the
 * Makefile), the rest is the real code. The enclave half's inbound rule listens
 * on an emulated vsock socket in a temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "proxy.h"

#define VSOCK_PORT 5000
#define SELF_CID 4

/* What the wrapped net_connect does. */
enum connect_mode { CONNECT_REAL, CONNECT_FAIL, CONNECT_NEVER, CONNECT_PAIR };

static enum connect_mode connect_mode;
static int connect_errno;
static int never_pipe[2] = {-1, -1}; /* CONNECT_NEVER hands out the read end: never writable */
static int server_fd = -1;	     /* CONNECT_PAIR: the server's end of a connected pair */
static bool timers_fail;
static int timers_zero; /* arm timers for 0 ms: retries run at once */

int __real_net_connect(const struct sockaddr *sa, socklen_t len, bool *pending);
int __wrap_net_connect(const struct sockaddr *sa, socklen_t len, bool *pending)
{
	switch (connect_mode) {
	case CONNECT_REAL:
		break;
	case CONNECT_FAIL:
		errno = connect_errno;
		return -1;
	case CONNECT_NEVER:
		assert_int_equal(pipe2(never_pipe, O_NONBLOCK | O_CLOEXEC), 0);
		*pending = true;
		return never_pipe[0];
	case CONNECT_PAIR: {
		int sv[2];
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
		server_fd = sv[1];
		*pending = false;
		return sv[0];
	}
	}
	return __real_net_connect(sa, len, pending);
}

int __real_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms);
int __wrap_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms)
{
	if (timers_fail) {
		errno = ENOMEM;
		return -1;
	}
	return __real_loop_timer_set(l, t, timers_zero ? 0 : ms);
}

/* Every deferred callback queued, to catch the memory that holds one freed while queued. */
static struct loop_defer *queued[64];
static unsigned nqueued;
static unsigned freed_while_queued;

void __real_loop_defer(struct loop *l, struct loop_defer *d);
void __wrap_loop_defer(struct loop *l, struct loop_defer *d)
{
	if (nqueued < sizeof(queued) / sizeof(queued[0]))
		queued[nqueued++] = d;
	__real_loop_defer(l, d);
}

void __real_free(void *p);
void __wrap_free(void *p)
{
	if (p) {
		char *b = p, *e = b + malloc_usable_size(p);
		for (unsigned i = 0; i < nqueued; i++)
			if ((char *)queued[i] >= b && (char *)queued[i] < e && queued[i]->queued)
				freed_while_queued++;
	}
	__real_free(p);
}

/* The log, line by line, through the sink the enclave half uses to reach the host. */
static char log_text[16384];
static int sink_errno; /* the sink's own trouble, as a socket write would leave it in errno */

static void sink(int level, const char *line, size_t len)
{
	size_t n = strlen(log_text);

	(void)level;
	if (n + len + 2 < sizeof(log_text)) {
		memcpy(log_text + n, line, len);
		log_text[n + len] = '\n';
		log_text[n + len + 1] = '\0';
	}
	if (sink_errno)
		errno = sink_errno;
}

struct rig {
	char dir[32];
	struct rule rule;
	struct config cfg;
	struct loop *loop;
	struct proxy *px;
};

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	char err[NET_ERR_LEN];
	struct proxy_opts o = {.role = PROXY_ENCLAVE, .peer_cid = 3, .family = AF_UNSPEC};

	snprintf(g->dir, sizeof(g->dir), "/tmp/qpuXXXXXX");
	assert_non_null(mkdtemp(g->dir));
	assert_int_equal(net_vsock_emulate(g->dir, SELF_CID, err, sizeof(err)), 0);
	g->rule = (struct rule){.dir = RULE_INBOUND,
				.line = 1,
				.vsock_port = VSOCK_PORT,
				.host_port = 80,
				.enclave_port = 8080};
	g->cfg.rules = &g->rule;
	g->cfg.nrules = 1;
	g->loop = loop_new();
	assert_non_null(g->loop);
	g->px = proxy_new(g->loop, &g->cfg, &o);
	assert_non_null(g->px);
	assert_int_equal(proxy_listen(g->px, err, sizeof(err)), 0);

	connect_mode = CONNECT_REAL;
	timers_fail = false;
	timers_zero = 0;
	nqueued = freed_while_queued = 0;
	log_text[0] = '\0';
	sink_errno = 0;
	log_set_level(LOG_INFO);
	assert_int_equal(log_open("/tmp", "/dev/null", err, sizeof(err)), 0);
	log_set_sink(sink);
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;

	proxy_free(g->px);
	loop_free(g->loop);
	if (server_fd >= 0)
		close(server_fd);
	server_fd = -1;
	for (int i = 0; i < 2; i++)
		if (never_pipe[i] >= 0)
			close(never_pipe[i]);
	never_pipe[0] = never_pipe[1] = -1;
	rmdir(g->dir);
	log_set_sink(NULL);
	free(g);
	return 0;
}

/* A client of the rule, connected to its emulated vsock listener. */
static int client(void)
{
	struct sockaddr_storage ss;
	socklen_t len = net_vsock_addr(SELF_CID, VSOCK_PORT, &ss);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

/* Run the loop until fd reads EOF (1) or some passes have found it still open (0). */
static int closed_after_passes(struct loop *l, int fd, int passes)
{
	char b;

	for (int i = 0; i < passes; i++) {
		assert_true(loop_once(l, 0) >= 0);
		ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
		if (n == 0)
			return 1;
		assert_true(n < 0 && errno == EAGAIN);
	}
	return 0;
}

/*
 * An emulated vsock listener with a full backlog says EAGAIN, and the client
 * waits for a retry timer. With no memory for the timer, nothing would ever
 * wake that client: it must be told at once instead.
 */
static void retry_timer_fails(void **state)
{
	struct rig *g = *state;

	connect_mode = CONNECT_FAIL;
	connect_errno = EAGAIN;
	timers_fail = true;
	int fd = client();
	assert_int_equal(closed_after_passes(g->loop, fd, 20), 1);
	const struct proxy_stats *s = proxy_stats(g->px, 0);
	assert_int_equal(s->open, 0);
	assert_int_equal(s->failed, 1);
	assert_non_null(strstr(log_text,
			       "c1 inbound 80: vsock (emulated) -> 127.0.0.1:8080: connect: "
			       "Resource temporarily unavailable"));
	close(fd);
}

/* A connect in progress with no timer could wait for the far side forever. */
static void connect_timer_fails(void **state)
{
	struct rig *g = *state;

	connect_mode = CONNECT_NEVER;
	timers_fail = true;
	int fd = client();
	assert_int_equal(closed_after_passes(g->loop, fd, 20), 1);
	assert_int_equal(proxy_stats(g->px, 0)->failed, 1);
	assert_non_null(strstr(log_text, "connect: Cannot allocate memory"));
	close(fd);
}

/*
 * Out of fds, the connection says why: the errno of the connect, not one left
 * by the log line that pausing the listener writes (the enclave's sink writes
 * to a socket).
 */
static void out_of_fds_says_so(void **state)
{
	struct rig *g = *state;

	connect_mode = CONNECT_FAIL;
	connect_errno = EMFILE;
	timers_fail = true;
	sink_errno = EAGAIN;
	int fd = client();
	assert_int_equal(closed_after_passes(g->loop, fd, 20), 1);
	assert_non_null(
	    strstr(log_text, "inbound 80: connect: Too many open files; pausing accepts"));
	assert_non_null(strstr(log_text, "-> 127.0.0.1:8080: connect: Too many open files"));
	close(fd);
}

/* The retries of a full backlog end, and the client hears of it. */
static void retries_end(void **state)
{
	struct rig *g = *state;

	connect_mode = CONNECT_FAIL;
	connect_errno = EAGAIN;
	timers_zero = 1;
	int fd = client();
	assert_int_equal(closed_after_passes(g->loop, fd, 2000), 1);
	assert_int_equal(proxy_stats(g->px, 0)->failed, 1);
	close(fd);
}

/*
 * At exit every connection is freed, relaying or not. The relay queues its
 * end-of-relay callback in the loop; freeing the memory that holds it would
 * leave the loop a dangling entry, run by the next pass.
 */
static void free_while_relaying(void **state)
{
	struct rig *g = *state;
	char b[8];

	connect_mode = CONNECT_PAIR;
	int fd = client();
	assert_int_equal(closed_after_passes(g->loop, fd, 2), 0);
	assert_int_equal(send(fd, "hi", 2, 0), 2);
	for (int i = 0; i < 20 && recv(server_fd, b, sizeof(b), MSG_DONTWAIT) != 2; i++)
		assert_true(loop_once(g->loop, 0) >= 0);
	assert_int_equal(proxy_stats(g->px, 0)->open, 1);
	proxy_free(g->px);
	g->px = NULL;
	assert_int_equal(freed_while_queued, 0);
	/* The loop goes on (as it would for a restart): nothing of the connection is left in it. */
	assert_true(loop_once(g->loop, 0) >= 0);
	assert_int_equal(recv(fd, b, sizeof(b), 0), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(retry_timer_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(connect_timer_fails, setup, teardown),
	    cmocka_unit_test_setup_teardown(out_of_fds_says_so, setup, teardown),
	    cmocka_unit_test_setup_teardown(retries_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(free_while_relaying, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
