/*
 * The status server against a real control channel (host half, vsock emulated in a tmp
 * dir): what it answers with the enclave absent, silent or answering, and when a fault is
 * injected through ld --wrap (malloc, loop_timer_set; see the Makefile).
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
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
#include "message.h"
#include "net.h"
#include "status.h"

#define HOST_CID 3
#define ENCLAVE_CID 4
#define PORT 6666

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
int __real_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms);
int __wrap_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms);

/* Faults: the next malloc of this size fails (0: none); the next timer of this length. */
static size_t fail_malloc_size;
static int64_t fail_timer_ms;
/* The control channel's tick, also 1 s: the first timer armed, and never failed. */
static struct loop_timer *tick_timer;

void *__wrap_malloc(size_t size)
{
	if (fail_malloc_size && size == fail_malloc_size) {
		fail_malloc_size = 0;
		errno = ENOMEM;
		return NULL;
	}
	return __real_malloc(size);
}

int __wrap_loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms)
{
	if (!tick_timer)
		tick_timer = t;
	if (fail_timer_ms && ms == fail_timer_ms && t != tick_timer) {
		fail_timer_ms = 0;
		errno = ENOMEM;
		return -1;
	}
	return __real_loop_timer_set(l, t, ms);
}

struct rig {
	char dir[64];
	char sock[108];
	struct half h;
	struct status_server *st;
	int enclave; /* the test's end of a fake enclave half's control link, or -1 */
	/* What the fake enclave answers when asked for its counters. */
	const struct msg_stat *estats;
	size_t nestats;
	struct rig_link link;
};

/* The rules: the default below, or the text a test gives as its initial state. */
static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	static const struct msg_stat estats[] = {{7777, 1, 2, 3, 4, 5, 0, 0},
						 {9995, 6, 7, 8, 9, 10, 11, 12}};
	char err[256];
	static const char toml[] = "[[inbound_connections]]\n"
				   "host_port = 5050\n"
				   "enclave_port = 5050\n"
				   "vsock_port = 9995\n"
				   "\n"
				   "[[outbound_connections]]\n"
				   "hostname = \"api.example.com\"\n"
				   "vsock_port = 7777\n"
				   "tcp_port = 443\n";

	assert_non_null(g);
	log_set_level(LOG_OFF);
	fail_malloc_size = 0;
	fail_timer_ms = 0;
	tick_timer = NULL;
	g->enclave = -1;
	snprintf(g->dir, sizeof(g->dir), "/tmp/qpstXXXXXX");
	assert_non_null(mkdtemp(g->dir));
	/* Two levels that do not exist yet: the server makes them. */
	snprintf(g->sock, sizeof(g->sock), "%s/run/qp/host.sock", g->dir);
	assert_int_equal(net_vsock_emulate(g->dir, HOST_CID, err, sizeof(err)), 0);
	g->estats = estats;
	g->nestats = 2;
	half_new(&g->h, PROXY_HOST, ENCLAVE_CID, PORT, *state ? *state : toml);
	assert_int_equal(control_start(g->h.ctl, err, sizeof(err)), 0);
	g->st = status_new(g->h.loop, &g->h.cfg, g->h.px, g->h.ctl, ENCLAVE_CID);
	assert_non_null(g->st);
	assert_int_equal(status_start(g->st, g->sock, err, sizeof(err)), STATUS_STARTED);
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;
	char path[128];

	if (g->enclave >= 0)
		close(g->enclave);
	status_free(g->st);
	half_free(&g->h);
	snprintf(path, sizeof(path), "%s/run/qp", g->dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/run", g->dir);
	rmdir(path);
	rmdir(g->dir);
	free(g);
	return 0;
}

/* A fake enclave half, linked. */
static void enclave_links(struct rig *g)
{
	g->enclave = rig_enclave_links(&g->h, g->dir, HOST_CID, PORT);
}

/* The next whole message the host half sent the fake enclave, if one has arrived. */
static bool enclave_reads(struct rig *g, struct msg *m)
{
	g->link.fd = g->enclave;
	return rig_link_read(&g->link, m);
}

/*
 * Ask the status socket, running the loop until the answer has come and the server has
 * closed; with answer_stats, the fake enclave answers the question for its counters.
 * Returns the bytes of the reply (0: none) in buf.
 */
static size_t ask(struct rig *g, bool answer_stats, uint8_t *buf, size_t cap)
{
	int fd = rig_unix_connect(g->sock);
	size_t len = 0;

	for (int64_t end = loop_now() + RIG_WAIT_MS; loop_now() < end;) {
		assert_true(loop_once(g->h.loop, 10) >= 0);
		struct msg m;
		while (answer_stats && enclave_reads(g, &m)) {
			if (m.type == MSG_STATS_REQ) {
				struct msg r = {.type = MSG_STATS,
						.seq = m.seq,
						.stats = (struct msg_stat *)g->estats,
						.nstats = g->nestats};
				rig_send_frame(g->enclave, &r);
			}
			msg_free(&m);
		}
		ssize_t n = recv(fd, buf + len, cap - len, MSG_DONTWAIT);
		if (n == 0) {
			close(fd);
			return len;
		}
		if (n > 0)
			len += (size_t)n;
	}
	fail_msg("no answer on the status socket");
	return 0;
}

static void decode_reply_n(const uint8_t *buf, size_t len, struct msg *m, size_t nrules)
{
	char err[128];

	assert_int_equal(msg_decode(buf, len, m, err, sizeof(err)), 0);
	assert_int_equal(m->type, MSG_STATUS);
	assert_int_equal(m->cid, ENCLAVE_CID);
	assert_int_equal(m->nrules, nrules);
	assert_int_equal(m->nstats, nrules);
}

static void decode_reply(const uint8_t *buf, size_t len, struct msg *m)
{
	decode_reply_n(buf, len, m, 2);
	assert_int_equal(m->stats[0].vsock_port, 9995);
	assert_int_equal(m->stats[1].vsock_port, 7777);
}

static uint8_t reply[MSG_STATUS_MAX];

static void no_enclave_no_enclave_rows(void **state)
{
	struct rig *g = *state;
	struct msg m;

	decode_reply(reply, ask(g, false, reply, sizeof(reply)), &m);
	assert_false(m.connected);
	assert_string_equal(m.peer_version, "");
	assert_false(m.has_peer_stats);
	msg_free(&m);
}

/* The enclave's counters, matched to the host's rules by vsock_port whatever their order. */
static void enclave_answers_with_its_rows(void **state)
{
	struct rig *g = *state;
	struct msg m;

	enclave_links(g);
	decode_reply(reply, ask(g, true, reply, sizeof(reply)), &m);
	assert_true(m.connected);
	assert_string_equal(m.peer_version, "9.9.9");
	assert_true(m.has_peer_stats);
	assert_int_equal(m.npeer_stats, 2);
	assert_int_equal(m.peer_stats[0].vsock_port, 9995);
	assert_int_equal(m.peer_stats[0].total, 7);
	assert_int_equal(m.peer_stats[1].vsock_port, 7777);
	assert_int_equal(m.peer_stats[1].bytes_down, 5);
	msg_free(&m);
}

/* The enclave's app, as it last said, in the reply; its uptime counted on meanwhile. */
static void enclave_app_in_the_reply(void **state)
{
	struct rig *g = *state;
	struct msg app = {.type = MSG_APP, .has_app = true}, m;
	struct msg_app got;

	enclave_links(g);
	decode_reply(reply, ask(g, true, reply, sizeof(reply)), &m);
	assert_false(m.has_app); /* none said yet */
	msg_free(&m);
	snprintf(app.app.command, sizeof(app.app.command), "/root/app.sh --port 5000");
	app.app.pid = 42;
	app.app.running = true;
	app.app.uptime_ms = 5000;
	app.app.restarts = 2;
	app.app.exits = 2;
	app.app.status = 137;
	app.app.signal = 9;
	rig_send_frame(g->enclave, &app);
	for (int64_t end = loop_now() + RIG_WAIT_MS;
	     !control_app(g->h.ctl, &got) && loop_now() < end;)
		assert_true(loop_once(g->h.loop, 10) >= 0);
	decode_reply(reply, ask(g, true, reply, sizeof(reply)), &m);
	assert_true(m.has_app);
	assert_string_equal(m.app.command, "/root/app.sh --port 5000");
	assert_int_equal(m.app.pid, 42);
	assert_true(m.app.running);
	assert_true(m.app.uptime_ms >= 5000 && m.app.uptime_ms < 5000 + RIG_WAIT_MS);
	assert_int_equal(m.app.restarts, 2);
	assert_int_equal(m.app.exits, 2);
	assert_int_equal(m.app.status, 137);
	assert_int_equal(m.app.signal, 9);
	msg_free(&m);
}

/* The host half answers the enclave's question for its time at once, with its clock. */
static void host_answers_the_time(void **state)
{
	struct rig *g = *state;
	struct msg q = {.type = MSG_TIME_REQ, .seq = 77}, m = {0};
	struct timespec ts;

	enclave_links(g);
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t before = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	rig_send_frame(g->enclave, &q);
	bool answered = false;
	for (int64_t end = loop_now() + RIG_WAIT_MS; !answered && loop_now() < end;) {
		assert_true(loop_once(g->h.loop, 10) >= 0);
		while (!answered && enclave_reads(g, &m)) {
			answered = m.type == MSG_TIME;
			if (!answered)
				msg_free(&m);
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t after = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	assert_true(answered);
	assert_int_equal(m.seq, 77);
	assert_true(m.time_ns >= before && m.time_ns <= after);
	msg_free(&m);
}

/* A linked enclave that never answers: the clients still get this half's rows. */
static void silent_enclave_is_not_waited_for_forever(void **state)
{
	struct rig *g = *state;
	struct msg m;

	enclave_links(g);
	decode_reply(reply, ask(g, false, reply, sizeof(reply)), &m);
	assert_true(m.connected);
	assert_false(m.has_peer_stats);
	msg_free(&m);
}

/* No timer for the wait: answered at once, without the enclave's rows, not left hanging. */
static void no_timer_answers_at_once(void **state)
{
	struct rig *g = *state;
	struct msg m;

	enclave_links(g);
	fail_timer_ms = 1000;
	decode_reply(reply, ask(g, true, reply, sizeof(reply)), &m);
	assert_int_equal(fail_timer_ms, 0); /* the fault was hit */
	assert_true(m.connected);
	assert_false(m.has_peer_stats);
	msg_free(&m);
	/* The enclave's late answer is dropped, and the next question works as usual. */
	decode_reply(reply, ask(g, true, reply, sizeof(reply)), &m);
	assert_true(m.has_peer_stats);
	msg_free(&m);
}

/* No memory for the reply: the client sees the socket closed, and the server goes on. */
static void no_memory_for_the_reply_closes_the_client(void **state)
{
	struct rig *g = *state;
	struct msg m;

	fail_malloc_size = MSG_STATUS_MAX;
	assert_int_equal(ask(g, false, reply, sizeof(reply)), 0);
	assert_int_equal(fail_malloc_size, 0);
	decode_reply(reply, ask(g, false, reply, sizeof(reply)), &m);
	msg_free(&m);
}

/*
 * The largest reply a config can ask for: 1024 rules whose HELLO just fits, and the
 * enclave's counters at their largest. It arrives whole, in the one write it is sent in.
 */
#define BIG_RULES 1024
static char big_toml[BIG_RULES * 128];
static struct msg_stat big_stats[BIG_RULES];

static void largest_reply_arrives_whole(void **state)
{
	struct rig *g = *state;
	struct msg m;

	for (size_t i = 0; i < BIG_RULES; i++)
		/* No limits: the config check keeps limited rules' larger entries in a frame. */
		big_stats[i] =
		    (struct msg_stat){10000 + (uint32_t)i, UINT64_MAX, UINT64_MAX, UINT64_MAX,
				      UINT64_MAX,	   UINT64_MAX, 0,	   0};
	g->estats = big_stats;
	g->nestats = BIG_RULES;
	enclave_links(g);
	size_t len = ask(g, true, reply, sizeof(reply));
	assert_true(len > 128 * 1024); /* well past a frame's 64 KiB */
	decode_reply_n(reply, len, &m, BIG_RULES);
	assert_true(m.has_peer_stats);
	assert_int_equal(m.peer_stats[BIG_RULES - 1].bytes_down, UINT64_MAX);
	msg_free(&m);
}

int main(void)
{
	/* Hostnames as long as 1024 rules allow: the HELLO a hair under 64 KiB. */
	size_t off = 0;
	for (size_t i = 0; i < BIG_RULES; i++)
		off += (size_t)snprintf(big_toml + off, sizeof(big_toml) - off,
					"[[outbound_connections]]\nhostname = "
					"\"h%04zu.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
					"vsock_port = %zu\ntcp_port = %zu\n",
					i, 10000 + i, 20000 + i);

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(no_enclave_no_enclave_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(enclave_answers_with_its_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(enclave_app_in_the_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(host_answers_the_time, setup, teardown),
	    cmocka_unit_test_setup_teardown(silent_enclave_is_not_waited_for_forever, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(no_timer_answers_at_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(no_memory_for_the_reply_closes_the_client, setup,
					    teardown),
	    cmocka_unit_test_prestate_setup_teardown(largest_reply_arrives_whole, setup, teardown,
						     big_toml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
