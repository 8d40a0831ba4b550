/* The relay state machine, driven through socketpairs standing in for client and server. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "loop.h"
#include "relay.h"

/* Buffers of RELAY_BUF bytes fail while fail_bufs is set: memory runs out in copy mode. */
static bool fail_bufs;
static unsigned buf_attempts;

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
	if (fail_bufs && size == RELAY_BUF) {
		buf_attempts++;
		return NULL;
	}
	return __real_malloc(size);
}

struct rig {
	struct loop *loop;
	struct relay relay;
	int client;  /* the application's end of the client connection */
	int server;  /* the application's end of the server connection */
	int pfd[2];  /* the relay's ends */
	int done;
};

static struct rig *current;
static const char *mode; /* what relay_pipe_mode() must say in this group */

static void on_done(struct relay *r)
{
	(void)r;
	current->done++;
}

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	int a[2], b[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
	g->client = a[0];
	g->server = b[0];
	g->pfd[0] = a[1];
	g->pfd[1] = b[1];
	g->loop = loop_new();
	assert_non_null(g->loop);
	assert_int_equal(relay_start(&g->relay, g->loop, a[1], b[1], on_done), 0);
	current = g;
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;

	if (!g->done)
		relay_abort(&g->relay, RELAY_CLIENT, ECONNABORTED);
	loop_once(g->loop, 0);
	close(g->client);
	close(g->server);
	loop_free(g->loop);
	free(g);
	return 0;
}

/* Run the loop until cond holds, at most 2 s; cond is evaluated once per round. */
#define RUN_UNTIL(g, cond)                                                                         \
	do {                                                                                       \
		int ok_ = 0;                                                                       \
		for (int i_ = 0; i_ < 2000; i_++) {                                                \
			if ((cond)) {                                                              \
				ok_ = 1;                                                           \
				break;                                                             \
			}                                                                          \
			assert_true(loop_once((g)->loop, 1) >= 0);                                 \
		}                                                                                  \
		assert_true(ok_);                                                                  \
	} while (0)

static ssize_t read_some(int fd, char *buf, size_t n)
{
	ssize_t r = read(fd, buf, n);
	return r < 0 && errno == EAGAIN ? -2 : r;
}

/* Moves what fits from buf to fd: bytes moved, 0 when none could be. */
static size_t io_some(ssize_t (*op)(int, void *, size_t), int fd, char *buf, size_t n)
{
	ssize_t r = n ? op(fd, buf, n) : 0;
	return r > 0 ? (size_t)r : 0;
}

static ssize_t write_op(int fd, void *buf, size_t n)
{
	return write(fd, buf, n);
}

/* n bytes from one application end to the other, written and read as room allows, checked. */
static void pass_bytes(struct rig *g, int from, int to, size_t n)
{
	static char out[512 * 1024], in[512 * 1024];
	size_t sent = 0, got = 0;

	assert_true(n <= sizeof(out));
	for (size_t i = 0; i < n; i++)
		out[i] = (char)(i * 31 + n);
	RUN_UNTIL(g, (sent += io_some(write_op, from, out + sent, n - sent),
		      got += io_some(read, to, in + got, n - got), got == n));
	assert_memory_equal(in, out, n);
}

static void both_ways(void **state)
{
	struct rig *g = *state;
	char buf[64];
	ssize_t n = -2;

	assert_int_equal(write(g->client, "ping", 4), 4);
	RUN_UNTIL(g, (n = read_some(g->server, buf, sizeof(buf))) != -2);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "ping", 4);

	assert_int_equal(write(g->server, "pong!", 5), 5);
	n = -2;
	RUN_UNTIL(g, (n = read_some(g->client, buf, sizeof(buf))) != -2);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "pong!", 5);

	/* Drained: no buffer and no kernel pipe is held while nothing is in flight. */
	assert_null(g->relay.up.buf);
	assert_null(g->relay.down.buf);
	assert_int_equal(g->relay.up.kp[0], -1);
	assert_int_equal(g->relay.down.kp[0], -1);
	assert_int_equal(g->relay.up.bytes, 4);
	assert_int_equal(g->relay.down.bytes, 5);
	/* Small messages go by the buffer, splice on or off: a read and a write each. */
	assert_string_equal(relay_pipe_mode(&g->relay.up), "copy");
	assert_string_equal(relay_pipe_mode(&g->relay.down), "copy");
}

/*
 * Bulk goes through the kernel pipe once a read fills a buffer; a small message after it
 * turns the direction back to the buffer (the first may still be spliced).
 */
static void bulk_splices_small_copies(void **state)
{
	struct rig *g = *state;
	bool splicing = strcmp(mode, "splice") == 0;

	pass_bytes(g, g->client, g->server, 400 * 1000);
	uint64_t bulk = g->relay.up.spliced;
	assert_string_equal(relay_pipe_mode(&g->relay.up), mode);
	if (splicing)
		assert_true(bulk >= 400 * 1000 - RELAY_BUF); /* all but the first buffer or so */
	for (int i = 0; i < 3; i++)
		pass_bytes(g, g->client, g->server, 100);
	assert_true(g->relay.up.spliced <= bulk + 100); /* at most the first small one */
	uint64_t after = g->relay.up.spliced;
	for (int i = 0; i < 3; i++) {
		pass_bytes(g, g->client, g->server, 100);
		pass_bytes(g, g->server, g->client, 100);
	}
	assert_int_equal(g->relay.up.spliced, after);
	assert_int_equal(g->relay.down.spliced, 0);
	assert_int_equal(g->relay.up.bytes, 400 * 1000 + 600);
	assert_int_equal(g->relay.up.kp[0], -1);
	assert_null(g->relay.up.buf);
}

/* The client sends its request and shuts its write side; the answer still comes back. */
static void half_close(void **state)
{
	struct rig *g = *state;
	char buf[64];
	ssize_t n = -2;

	assert_int_equal(write(g->client, "request", 7), 7);
	assert_int_equal(shutdown(g->client, SHUT_WR), 0);
	RUN_UNTIL(g, (n = read_some(g->server, buf, sizeof(buf))) == 7);
	assert_memory_equal(buf, "request", 7);
	n = -2;
	RUN_UNTIL(g, (n = read_some(g->server, buf, sizeof(buf))) != -2);
	assert_int_equal(n, 0); /* EOF reached the server */
	assert_true(g->relay.up.shut);
	assert_false(g->relay.down.eof);

	/* The other direction keeps flowing, in several pieces. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(write(g->server, "answer", 6), 6);
		n = -2;
		RUN_UNTIL(g, (n = read_some(g->client, buf, sizeof(buf))) != -2);
		assert_int_equal(n, 6);
		assert_memory_equal(buf, "answer", 6);
	}
	assert_int_equal(g->done, 0);

	assert_int_equal(shutdown(g->server, SHUT_WR), 0);
	n = -2;
	RUN_UNTIL(g, (n = read_some(g->client, buf, sizeof(buf))) != -2);
	assert_int_equal(n, 0);
	RUN_UNTIL(g, g->done == 1);
	assert_int_equal(g->relay.err, 0);
	assert_int_equal(g->relay.up.bytes, 7);
	assert_int_equal(g->relay.down.bytes, 18);
}

/* A server that does not read: the relay stops reading the client, and loses nothing. */
static void backpressure(void **state)
{
	struct rig *g = *state;
	static char out[8 << 20], in[8 << 20];
	size_t sent = 0, got = 0;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (char)(i * 7 + i / 4099);
	/* Fill until the client can write no more and the relay has settled. */
	for (int round = 0; round < 200; round++) {
		ssize_t w = write(g->client, out + sent, sizeof(out) - sent);
		if (w > 0)
			sent += (size_t)w;
		loop_once(g->loop, 1);
	}
	assert_true(sent < sizeof(out));      /* the client was stopped... */
	assert_true(g->relay.up.len <= (g->relay.up.copy ? RELAY_BUF : RELAY_PIPE)); /* ...and the relay no more than its pipe */
	size_t held = sent;
	for (int round = 0; round < 50; round++) {
		ssize_t w = write(g->client, out + sent, sizeof(out) - sent);
		if (w > 0)
			sent += (size_t)w;
		loop_once(g->loop, 1);
	}
	assert_int_equal(sent, held); /* stable: nothing more is taken while the server is stuck */

	/* Now the server reads: every byte arrives, in order. */
	for (int round = 0; round < 100000 && got < sizeof(in); round++) {
		ssize_t w = write(g->client, out + sent, sizeof(out) - sent);
		if (w > 0)
			sent += (size_t)w;
		loop_once(g->loop, 0);
		ssize_t r = read(g->server, in + got, sizeof(in) - got);
		if (r > 0)
			got += (size_t)r;
	}
	assert_int_equal(got, sizeof(in));
	assert_memory_equal(in, out, sizeof(in));
}

/*
 * The server goes away with data unread: both sides are closed at once, with the cause.
 * Over a Unix socket the client reads a plain EOF: closing a Unix stream socket resets
 * its peer only when unread bytes are left behind, and the relay leaves none: a Unix
 * socket cannot carry a reset on, nor can the vsock emulation built on it. Over TCP the
 * relay does pass it on (reset_from_server_tcp, reset_from_client_tcp).
 */
static void reset(void **state)
{
	struct rig *g = *state;
	char buf[64];

	assert_int_equal(write(g->client, "data", 4), 4);
	RUN_UNTIL(g, g->relay.up.bytes == 4);
	close(g->server); /* unread data: the relay's end sees ECONNRESET */
	g->server = -1;
	RUN_UNTIL(g, g->done == 1);
	assert_int_equal(g->relay.err, ECONNRESET);
	assert_int_equal(g->relay.err_side, RELAY_SERVER);
	assert_int_equal(read(g->client, buf, sizeof(buf)), 0);
}

/* idle_timeout's watch, on a clock given by hand: a byte resets it; silence ends the relay. */
static void idle_watch(void **state)
{
	struct rig *g = *state;
	struct relay_idle w;
	char buf[8];

	relay_idle_start(&w, 1000);
	assert_int_equal(relay_idle_first(4000), 1000);
	assert_int_equal(relay_idle_check(&g->relay, &w, 4000, 2000), 1000);
	assert_int_equal(relay_idle_check(&g->relay, &w, 4000, 4500), 500); /* 500 ms left */
	assert_int_equal(write(g->client, "x", 1), 1);
	RUN_UNTIL(g, g->relay.up.bytes == 1);
	assert_int_equal(relay_idle_check(&g->relay, &w, 4000, 4600), 1000); /* the byte: anew */
	assert_int_equal(w.since, 4600);
	assert_false(w.fired);
	assert_int_equal(relay_idle_check(&g->relay, &w, 4000, 8600), 0);
	assert_true(w.fired);
	RUN_UNTIL(g, g->done == 1);
	/* A plain close both ways: the byte arrived, then EOF, no reset. */
	assert_int_equal(read(g->server, buf, sizeof(buf)), 1);
	assert_int_equal(read(g->server, buf, sizeof(buf)), 0);
	assert_int_equal(read(g->client, buf, sizeof(buf)), 0);
	assert_int_equal(relay_idle_check(&g->relay, &w, 4000, 9000), 0); /* done: no more looks */
}

/* A connected loopback TCP pair, both ends non-blocking: *a connected, *b accepted. */
static void tcp_pair(int *a, int *b)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l, 1), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*a >= 0);
	assert_int_equal(connect(*a, (struct sockaddr *)&sin, sizeof(sin)), 0);
	*b = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	assert_true(*b >= 0);
	assert_int_equal(fcntl(*a, F_SETFL, O_NONBLOCK), 0);
	close(l);
}

/* The rig with TCP connections on both sides, as the relay has them in a real half. */
static int setup_tcp(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	tcp_pair(&g->client, &g->pfd[0]);
	tcp_pair(&g->server, &g->pfd[1]);
	g->loop = loop_new();
	assert_non_null(g->loop);
	assert_int_equal(relay_start(&g->relay, g->loop, g->pfd[0], g->pfd[1], on_done), 0);
	current = g;
	*state = g;
	return 0;
}

/* close() that sends a TCP reset (RST) instead of a FIN. */
static void close_with_reset(int fd)
{
	struct linger lg = {1, 0};

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(fd);
}

/* What the peer at fd sees of the end: 0 for EOF, else the errno of the read. */
static int end_seen(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char buf[64];

	assert_int_equal(poll(&pfd, 1, 2000), 1);
	ssize_t n = read(fd, buf, sizeof(buf));
	assert_true(n <= 0); /* every byte sent before was read already */
	return n == 0 ? 0 : errno;
}

/*
 * One side resets with nothing unread on either side: the relay passes the reset on as a
 * reset (the other side reads ECONNRESET), where a plain close would have sent a FIN.
 */
static void reset_passed_on(struct rig *g, enum relay_side from)
{
	int *resetter = from == RELAY_CLIENT ? &g->client : &g->server;
	int other = from == RELAY_CLIENT ? g->server : g->client;
	char buf[8];

	/* Bytes cross first, and are read: nothing is left unread anywhere. */
	assert_int_equal(write(g->client, "data", 4), 4);
	RUN_UNTIL(g, read_some(g->server, buf, sizeof(buf)) == 4);
	close_with_reset(*resetter);
	*resetter = -1;
	RUN_UNTIL(g, g->done == 1);
	assert_int_equal(g->relay.err, ECONNRESET);
	assert_int_equal(g->relay.err_side, from);
	assert_int_equal(end_seen(other), ECONNRESET);
}

static void reset_from_server_tcp(void **state)
{
	reset_passed_on(*state, RELAY_SERVER);
}

static void reset_from_client_tcp(void **state)
{
	reset_passed_on(*state, RELAY_CLIENT);
}

/* Both ends close cleanly at the same time: one completion, no error. */
static void both_eof(void **state)
{
	struct rig *g = *state;

	shutdown(g->client, SHUT_WR);
	shutdown(g->server, SHUT_WR);
	RUN_UNTIL(g, g->done == 1);
	assert_int_equal(g->relay.err, 0);
	assert_int_equal(fcntl(g->pfd[0], F_GETFD), -1); /* the relay closed its fds */
	assert_int_equal(fcntl(g->pfd[1], F_GETFD), -1);
}

/*
 * No memory for a buffer: the bytes wait in the socket, and the relay must not
 * ask again at every pass while the socket stays readable (100% CPU until
 * memory comes back); it backs off as a listener out of fds does, then goes on.
 */
static void no_memory_backs_off(void **state)
{
	struct rig *g = *state;
	char buf[8];
	ssize_t n = -2;

	fail_bufs = true;
	buf_attempts = 0;
	assert_int_equal(write(g->client, "x", 1), 1);
	int64_t t0 = loop_now();
	for (int i = 0; i < 200; i++)
		assert_true(loop_once(g->loop, 0) >= 0);
	int64_t elapsed = loop_now() - t0;
	assert_true(buf_attempts >= 1);
	/* At most one try per pause, whatever the speed of this machine. */
	assert_true(buf_attempts <= 2 + elapsed / RELAY_NOMEM_PAUSE_MS);
	fail_bufs = false;
	RUN_UNTIL(g, (n = read_some(g->server, buf, sizeof(buf))) != -2);
	assert_int_equal(n, 1);
	assert_int_equal(buf[0], 'x');
}

static int with_splice(void **state)
{
	(void)state;
	relay_use_splice(true);
	mode = "splice";
	return 0;
}

static int with_copy(void **state)
{
	(void)state;
	relay_use_splice(false);
	mode = "copy";
	return 0;
}

/*
 * splice(2) as relay.c sees it: this definition stands in for libc's in the test binary.
 * It is the real system call unless a test makes it refuse with EINVAL, as the kernel does
 * for a socket it cannot splice. No socket we use refuses on the kernels we run (Unix, TCP
 * and AF_VSOCK all splice on 6.1: the VM test checks the last), so the refusal is made here.
 */
static enum { SPLICE_REAL, SPLICE_REFUSE_ALL, SPLICE_REFUSE_OUT, SPLICE_REFUSE_OUT_OVER_BUF } splice_mode;
static unsigned splice_refused;

ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags)
{
	struct stat st;
	int queued = 0;
	bool out = fstat(fd_out, &st) == 0 && S_ISSOCK(st.st_mode); /* from the kernel pipe */
	bool refuse = splice_mode == SPLICE_REFUSE_ALL || (out && splice_mode == SPLICE_REFUSE_OUT);

	if (out && splice_mode == SPLICE_REFUSE_OUT_OVER_BUF)
		refuse = ioctl(fd_in, FIONREAD, &queued) == 0 && queued > RELAY_BUF;
	if (refuse) {
		splice_refused++;
		errno = EINVAL;
		return -1;
	}
	return syscall(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags);
}

static int teardown_splice(void **state)
{
	splice_mode = SPLICE_REAL;
	splice_refused = 0;
	return teardown(state);
}


/*
 * Each way twice. Splice is tried once a read has filled a buffer: the first round is a
 * buffer and a little more, which the kernel pipe takes and a buffer can take back. The
 * refusals counted after the first round must not grow in the second.
 */
static void fallback_exchange(struct rig *g, unsigned refusals)
{
	pass_bytes(g, g->client, g->server, RELAY_BUF + 1000);
	pass_bytes(g, g->server, g->client, RELAY_BUF + 1000);
	assert_true(g->relay.up.copy);
	assert_true(g->relay.down.copy);
	assert_int_equal(splice_refused, refusals); /* once per direction... */
	pass_bytes(g, g->client, g->server, 300 * 1000);
	pass_bytes(g, g->server, g->client, 300 * 1000);
	assert_int_equal(splice_refused, refusals); /* ...and never tried again */
	assert_int_equal(g->relay.up.kp[0], -1);     /* no kernel pipe kept */
	assert_int_equal(g->relay.down.kp[0], -1);
	assert_int_equal(g->relay.up.bytes, RELAY_BUF + 1000 + 300 * 1000);
	assert_int_equal(g->relay.down.bytes, RELAY_BUF + 1000 + 300 * 1000);
	assert_int_equal(g->relay.up.spliced, 0);
	assert_string_equal(relay_pipe_mode(&g->relay.up), "copy");
}

/* Sockets that refuse splice from the start: each direction goes to read/write by itself. */
static void splice_refused_on_read(void **state)
{
	splice_mode = SPLICE_REFUSE_ALL;
	fallback_exchange(*state, 2);
}

/* Refused on the way out, with bytes already in the kernel pipe: they move to a buffer. */
static void splice_refused_on_write(void **state)
{
	splice_mode = SPLICE_REFUSE_OUT;
	fallback_exchange(*state, 2);
}

static bool feed(int fd)
{
	static char block[1 << 20];

	return write(fd, block, sizeof(block)) > 0;
}

/*
 * Refused on the way out with more in the kernel pipe than a buffer holds (a socket like
 * that is not known to exist): the connection ends with EIO rather than lose bytes quietly.
 */
static void splice_refused_over_a_buffer(void **state)
{
	struct rig *g = *state;

	splice_mode = SPLICE_REFUSE_OUT_OVER_BUF; /* and the server never reads */
	RUN_UNTIL(g, (feed(g->client), g->done == 1));
	assert_int_equal(g->relay.err, EIO);
	assert_int_equal(g->relay.err_side, RELAY_SERVER);
	assert_int_equal(splice_refused, 1);
}

/* Each test twice: through kernel pipes with splice, and through buffers with read/write. */
int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(bulk_splices_small_copies, setup, teardown),
		cmocka_unit_test_setup_teardown(half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(reset, setup, teardown),
		cmocka_unit_test_setup_teardown(reset_from_server_tcp, setup_tcp, teardown),
		cmocka_unit_test_setup_teardown(reset_from_client_tcp, setup_tcp, teardown),
		cmocka_unit_test_setup_teardown(both_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(idle_watch, setup, teardown),
	};
	const struct CMUnitTest copy_only[] = {
		cmocka_unit_test_setup_teardown(no_memory_backs_off, setup, teardown),
	};
	/* The fallback from splice to read/write, in a relay started with splice on. */
	const struct CMUnitTest refused[] = {
		cmocka_unit_test_setup_teardown(splice_refused_on_read, setup, teardown_splice),
		cmocka_unit_test_setup_teardown(splice_refused_on_write, setup, teardown_splice),
		cmocka_unit_test_setup_teardown(splice_refused_over_a_buffer, setup, teardown_splice),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("splice", tests, with_splice, NULL) |
	       cmocka_run_group_tests_name("read/write", tests, with_copy, NULL) |
	       cmocka_run_group_tests_name("read/write only", copy_only, with_copy, NULL) |
	       cmocka_run_group_tests_name("splice refused", refused, with_splice, NULL);
}
