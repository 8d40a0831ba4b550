/*
 * The metrics endpoint: the text-format writer and its escapes, the request-head parser
 * case by case and byte by byte, and the server on a real loop against a real control
 * channel (host half, vsock emulated in a tmp dir) with a fake enclave half that answers,
 * stays silent, or goes; several scrapes at once, and more than it takes; the app's state
 * and both halves' egress counters.
 */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "egress.h"
#include "half_rig.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "net.h"

#define HOST_CID 3
#define ENCLAVE_CID 4
#define PORT 6666

static void writer_escapes_help_and_label_values(void **state)
{
	struct metrics_buf b = {0};

	(void)state;
	metrics_family(&b, "x_total", METRICS_COUNTER, "a\\b\nc \"q\"");
	metrics_sample(&b, "x_total", 7, "rule", "a\"b\\c\nd", "half", "host", NULL);
	metrics_family(&b, "y", METRICS_GAUGE, "plain");
	metrics_sample(&b, "y", UINT64_MAX, NULL);
	assert_false(b.nomem);
	assert_string_equal(b.p, "# HELP x_total a\\\\b\\nc \"q\"\n"
				 "# TYPE x_total counter\n"
				 "x_total{rule=\"a\\\"b\\\\c\\nd\",half=\"host\"} 7\n"
				 "# HELP y plain\n"
				 "# TYPE y gauge\n"
				 "y 18446744073709551615\n");
	assert_int_equal(b.len, strlen(b.p));
	free(b.p);
}

/* Past any fixed buffer: a long label value, and many lines. */
static void writer_grows(void **state)
{
	struct metrics_buf b = {0};
	char big[3000];

	(void)state;
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	metrics_printf(&b, "%s=%s\n", "long", big);
	for (int i = 0; i < 1000; i++)
		metrics_sample(&b, "n", (uint64_t)i, "i", "x", NULL);
	assert_false(b.nomem);
	assert_int_equal(strncmp(b.p, "long=vvv", 8), 0);
	assert_int_equal(b.p[5 + sizeof(big) - 1], '\n');
	assert_non_null(strstr(b.p, "n{i=\"x\"} 999\n"));
	assert_int_equal(b.len, strlen(b.p));
	free(b.p);
}

static const struct parse_case {
	const char *in;
	int status;
	bool head;
} parse_cases[] = {
    {"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", 200, false},
    {"GET /metrics HTTP/1.0\r\n\r\n", 200, false},
    {"GET /metrics HTTP/1.1\n\n", 200, false}, /* bare LFs, as lenient servers take them */
    {"HEAD /metrics HTTP/1.1\r\n\r\n", 200, true},
    {"GET /metrics?name[]=up HTTP/1.1\r\n\r\n", 200, false},
    {"GET / HTTP/1.1\r\n\r\n", 404, false},
    {"GET /metrics/ HTTP/1.1\r\n\r\n", 404, false},
    {"GET /metricsx HTTP/1.1\r\n\r\n", 404, false},
    {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, false},
    {"get /metrics HTTP/1.1\r\n\r\n", 405, false}, /* methods are case-sensitive */
    {"BREW /pot HTTP/1.1\r\n\r\n", 405, false},
    {"GET /metrics HTTP/2.0\r\n\r\n", 400, false},
    {"GET /metrics HTTP/1.1 \r\n\r\n", 400, false},
    {"GET  /metrics HTTP/1.1\r\n\r\n", 400, false},
    {"GET /metrics\r\n\r\n", 400, false}, /* HTTP/0.9 */
    {" GET /metrics HTTP/1.1\r\n\r\n", 400, false},
    {"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", 400, false},
    {"GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n", 400, false},
    {"GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, false},
    {"GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n", 400, false},
    {"GET /me\x01trics HTTP/1.1\r\n\r\n", 400, false},
    {"\x16\x03\x01\x02\x00", 400, false}, /* a TLS hello: refused at its first byte */
    {"GET /metrics HTTP/1.1\r\nHost", 0, false},
    {"GET /metrics HTTP/1.1\r\n\r", 0, false},
    {"", 0, false},
};

static void parse_cases_each_get_their_status(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		bool head = !c->head;
		int st = metrics_parse_request(c->in, strlen(c->in), &head);
		if (st != c->status)
			fail_msg("case %zu %s: %d, not %d", i, c->in, st, c->status);
		if (st == 200)
			assert_int_equal(head, c->head);
	}
}

/* Every prefix of a good head waits for more; the whole answers, whatever follows it. */
static void every_prefix_waits(void **state)
{
	static const char *const good[] = {
	    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nUser-Agent: Prometheus/2\r\n\r\n",
	    "HEAD /metrics HTTP/1.0\n\n"};
	bool head;

	(void)state;
	for (size_t g = 0; g < 2; g++) {
		size_t n = strlen(good[g]);
		for (size_t len = 0; len < n; len++)
			if (metrics_parse_request(good[g], len, &head) != 0)
				fail_msg("%s: %zu bytes of %zu answered", good[g], len, n);
		char more[256];
		snprintf(more, sizeof(more), "%sGET / HTTP/1.1\r\n\r\n", good[g]);
		assert_int_equal(metrics_parse_request(more, strlen(more), &head), 200);
		assert_int_equal(head, g == 1);
	}
}

/* A head that has not ended by METRICS_HEAD_MAX bytes is refused; a bad one sooner. */
static void heads_are_bounded(void **state)
{
	static char big[METRICS_HEAD_MAX + 1];
	bool head;
	size_t n = (size_t)snprintf(big, sizeof(big), "GET /metrics HTTP/1.1\r\nX: ");

	(void)state;
	memset(big + n, 'a', sizeof(big) - 1 - n);
	assert_int_equal(metrics_parse_request(big, METRICS_HEAD_MAX - 1, &head), 0);
	assert_int_equal(metrics_parse_request(big, METRICS_HEAD_MAX, &head), 431);
	memset(big, 'A', sizeof(big) - 1);
	assert_int_equal(metrics_parse_request(big, METRICS_HEAD_MAX, &head), 431);
	memcpy(big, "GET /", 5);
	assert_int_equal(metrics_parse_request(big, METRICS_HEAD_MAX, &head), 431);
}

struct rig {
	char dir[64];
	struct half h;
	struct metrics *m;
	uint16_t port;
	struct rig_link enclave; /* fd -1 when none */
	bool answer;		 /* the fake enclave answers questions for its counters */
	bool egress;		 /* its answers carry egress counters */
	int questions;
};

static const char rig_toml[] = "[[inbound_connections]]\n"
			       "host_port = 5050\n"
			       "enclave_port = 5050\n"
			       "vsock_port = 9995\n"
			       "max_connections = 10\n"
			       "\n"
			       "[[outbound_connections]]\n"
			       "hostname = \"api.example.com\"\n"
			       "vsock_port = 7777\n"
			       "tcp_port = 443\n";

static void source_write(void *arg, struct metrics_buf *b)
{
	metrics_family(b, "qproxy_test_source", METRICS_GAUGE, "A source's own family");
	metrics_sample(b, "qproxy_test_source", *(const int *)arg, NULL);
}

static const int source_value = 42;

static int setup(void **state)
{
	struct rig *g = calloc(1, sizeof(*g));
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char err[256];

	assert_non_null(g);
	log_set_level(LOG_OFF);
	g->enclave.fd = -1;
	snprintf(g->dir, sizeof(g->dir), "/tmp/qpmtXXXXXX");
	assert_non_null(mkdtemp(g->dir));
	assert_int_equal(net_vsock_emulate(g->dir, HOST_CID, err, sizeof(err)), 0);
	half_new(&g->h, PROXY_HOST, ENCLAVE_CID, PORT, rig_toml);
	assert_int_equal(control_start(g->h.ctl, err, sizeof(err)), 0);
	g->m = metrics_new(g->h.loop, &g->h.cfg, g->h.px, g->h.ctl);
	assert_non_null(g->m);
	assert_int_equal(metrics_add_source(g->m, source_write, (void *)&source_value), 0);
	/* Port 0: the kernel's choice, which the endpoint tells. */
	assert_int_equal(
	    metrics_start(g->m, (struct sockaddr *)&sin, sizeof(sin), err, sizeof(err)), 0);
	g->port = metrics_port(g->m);
	assert_true(g->port > 0);
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct rig *g = *state;

	if (g->enclave.fd >= 0)
		close(g->enclave.fd);
	metrics_free(g->m);
	half_free(&g->h);
	rmdir(g->dir);
	free(g);
	return 0;
}

static void enclave_links(struct rig *g)
{
	g->enclave.fd = rig_enclave_links(&g->h, g->dir, HOST_CID, PORT);
}

/* One pass of the loop, and the fake enclave's part: count questions, answer them. */
static void step(struct rig *g)
{
	static const struct msg_stat estats[] = {{7777, 1, 2, 3, 4, 5, 0, 0},
						 {9995, 6, 7, 8, 9, 10, 11, 12}};
	static const struct msg_egress eegress[] = {{"api.example.com:443", 1, 2, 0, 30, 40, 6},
						    {"evil.test:80", 0, 5, 5, 0, 0, 0}};
	struct msg m;

	assert_true(loop_once(g->h.loop, 10) >= 0);
	while (g->enclave.fd >= 0 && rig_link_read(&g->enclave, &m)) {
		if (m.type == MSG_STATS_REQ) {
			g->questions++;
			struct msg r = {.type = MSG_STATS,
					.seq = m.seq,
					.stats = (struct msg_stat *)estats,
					.nstats = 2,
					.egress = g->egress ? (struct msg_egress *)eegress : NULL,
					.negress = g->egress ? 2 : 0};
			if (g->answer)
				rig_send_frame(g->enclave.fd, &r);
		}
		msg_free(&m);
	}
}

static int client(struct rig *g, const char *request)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_port = htons(g->port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (*request)
		assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL),
				 (ssize_t)strlen(request));
	return fd;
}

/* Run the loop until the server has answered fd and closed it: what it said, to be freed. */
static char *response(struct rig *g, int fd)
{
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);

	assert_non_null(buf);
	for (int64_t end = loop_now() + RIG_WAIT_MS; loop_now() < end;) {
		step(g);
		ssize_t n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
		if (n == 0) {
			close(fd);
			buf[len] = '\0';
			return buf;
		}
		if (n > 0)
			len += (size_t)n;
	}
	fail_msg("no whole answer from the metrics endpoint");
	return NULL;
}

static char *get(struct rig *g, const char *request)
{
	return response(g, client(g, request));
}

static const char scrape_req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";

static void assert_has(const char *text, const char *line)
{
	if (!strstr(text, line))
		fail_msg("no %s in:\n%s", line, text);
}

static void no_enclave_this_half_only(void **state)
{
	struct rig *g = *state;
	char *r = get(g, scrape_req);

	assert_int_equal(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_has(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
	assert_has(r, "\r\nConnection: close\r\n");
	assert_has(r, "\nqproxy_enclave_link_up 0\n");
	assert_has(r, "\nqproxy_enclave_stats_up 0\n");
	assert_has(r, "\nqproxy_connections_opened_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"host\"} 0\n");
	assert_has(r, "\nqproxy_connections_max{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"host\"} 10\n");
	/* No limit, no series. */
	assert_null(strstr(r, "qproxy_connections_max{rule=\"outbound"));
	assert_null(strstr(r, "half=\"enclave\""));
	/* No app said, no egress counted: no such families. */
	assert_null(strstr(r, "qproxy_app_"));
	assert_null(strstr(r, "qproxy_egress_"));
	assert_has(r, "\nqproxy_test_source 42\n");
	/* The length says where the body ends. */
	const char *body = strstr(r, "\r\n\r\n") + 4;
	char want[64];
	snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
	assert_has(r, want);
	free(r);
}

static void enclave_answers_with_its_series(void **state)
{
	struct rig *g = *state;

	g->answer = true;
	enclave_links(g);
	char *r = get(g, scrape_req);
	assert_has(r, "\nqproxy_enclave_link_up 1\n");
	assert_has(r, "\nqproxy_enclave_stats_up 1\n");
	assert_has(r, "\nqproxy_enclave_links_total 1\n");
	assert_has(r, "\nqproxy_enclave_info{version=\"9.9.9\"} 1\n");
	/* Matched by vsock_port: {9995, open 6, total 7, failed 8, up 9, down 10, refused 11, 12}
	 */
	assert_has(r, "\nqproxy_connections_opened_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"enclave\"} 7\n");
	assert_has(r, "\nqproxy_connections_open{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"enclave\"} 6\n");
	assert_has(r,
		   "\nqproxy_connections_refused_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		   "half=\"enclave\"} 11\n");
	assert_has(r, "\nqproxy_connections_max{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"enclave\"} 12\n");
	assert_has(r, "\nqproxy_bytes_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"enclave\",direction=\"up\"} 9\n");
	assert_has(r,
		   "\nqproxy_bytes_total{rule=\"outbound api.example.com:443\",vsock_port=\"7777\","
		   "half=\"enclave\",direction=\"down\"} 5\n");
	assert_has(r, "\nqproxy_connections_failed_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"enclave\",cause=\"unknown\"} 8\n");
	assert_has(r, "\nqproxy_connections_failed_total{rule=\"inbound 5050\",vsock_port=\"9995\","
		      "half=\"host\",cause=\"connect\"} 0\n");
	free(r);
}

/* Scrapes asked together share one question to the enclave half, and all get its answer. */
static void scrapes_at_once_share_a_question(void **state)
{
	struct rig *g = *state;
	int fds[4];

	g->answer = true;
	enclave_links(g);
	for (size_t i = 0; i < 4; i++)
		fds[i] = client(g, scrape_req);
	for (size_t i = 0; i < 4; i++) {
		char *r = response(g, fds[i]);
		assert_has(r, "\nqproxy_enclave_stats_up 1\n");
		free(r);
	}
	assert_int_equal(g->questions, 1);
}

/* A linked enclave that never answers: the page comes without its series after the wait. */
static void silent_enclave_is_left_out(void **state)
{
	struct rig *g = *state;

	enclave_links(g);
	int64_t start = loop_now();
	char *r = get(g, scrape_req);
	assert_true(loop_now() - start >= METRICS_ENCLAVE_WAIT_MS);
	assert_int_equal(g->questions, 1);
	assert_has(r, "\nqproxy_enclave_link_up 1\n");
	assert_has(r, "\nqproxy_enclave_stats_up 0\n");
	assert_null(strstr(r, "half=\"enclave\""));
	free(r);
	/* The next scrape asks anew, the old question being a second old. */
	g->answer = true;
	r = get(g, scrape_req);
	assert_int_equal(g->questions, 2);
	assert_has(r, "\nqproxy_enclave_stats_up 1\n");
	free(r);
}

/* The link goes while a scrape waits: it is answered at once, without the enclave. */
static void link_lost_while_waiting(void **state)
{
	struct rig *g = *state;

	enclave_links(g);
	int fd = client(g, scrape_req);
	for (int64_t end = loop_now() + RIG_WAIT_MS; g->questions == 0 && loop_now() < end;)
		step(g);
	assert_int_equal(g->questions, 1);
	close(g->enclave.fd);
	g->enclave.fd = -1;
	char *r = response(g, fd);
	assert_has(r, "\nqproxy_enclave_link_up 0\n");
	assert_has(r, "\nqproxy_enclave_stats_up 0\n");
	free(r);
}

static void other_requests_get_their_status(void **state)
{
	struct rig *g = *state;
	static const struct {
		const char *req, *status;
	} cases[] = {
	    {"GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found\r\n"},
	    {"DELETE /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed\r\n"},
	    {"\x16\x03\x01", "HTTP/1.1 400 Bad Request\r\n"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = get(g, cases[i].req);
		assert_int_equal(strncmp(r, cases[i].status, strlen(cases[i].status)), 0);
		free(r);
	}
	char *r = get(g, "HEAD /metrics HTTP/1.1\r\n\r\n");
	assert_int_equal(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n"); /* no body */
	free(r);
}

/* Full: the next client gets a 503 at once; a place that frees up serves again. */
static void clients_are_bounded(void **state)
{
	struct rig *g = *state;
	int idle[METRICS_CLIENTS];

	for (size_t i = 0; i < METRICS_CLIENTS; i++)
		idle[i] = client(g, "GET /metr");
	char *r = get(g, scrape_req);
	assert_int_equal(strncmp(r, "HTTP/1.1 503 Service Unavailable\r\n", 34), 0);
	free(r);
	close(idle[0]);
	r = get(g, scrape_req);
	assert_int_equal(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_has(r, "\nqproxy_metrics_refused_total 1\n");
	free(r);
	for (size_t i = 1; i < METRICS_CLIENTS; i++)
		close(idle[i]);
}

/* The app as the enclave half last said it, and both halves' egress by destination. */
static void app_and_egress_series(void **state)
{
	struct rig *g = *state;
	struct egress_stats es = {0};
	struct msg app = {.type = MSG_APP,
			  .has_app = true,
			  .app = {.command = "/bin/app --name \"a b\"",
				  .running = false,
				  .restarts = 3,
				  .exits = 4,
				  .status = 137,
				  .signal = 9}};

	g->answer = true;
	g->egress = true;
	struct egress_dest *d = egress_stats_get(&es, "db.example.com", 5432);
	d->open = 1, d->total = 2, d->bytes_up = 100, d->bytes_down = 200;
	egress_stats_get(&es, "10.0.0.1", 22)->denied = 1;
	metrics_set_egress(g->m, &es);
	enclave_links(g);
	rig_send_frame(g->enclave.fd, &app);
	char *r = get(g, scrape_req);
	assert_has(r, "\n# TYPE qproxy_app_up gauge\nqproxy_app_up 0\n");
	assert_has(r, "\nqproxy_app_info{command=\"/bin/app --name \\\"a b\\\"\"} 1\n");
	assert_has(r, "\n# TYPE qproxy_app_restarts_total counter\nqproxy_app_restarts_total 3\n");
	assert_has(r, "\nqproxy_app_exits_total 4\n");
	assert_has(r, "\nqproxy_app_last_exit_status 137\n");
	assert_has(r, "\nqproxy_app_uptime_seconds 0\n");
	assert_has(r, "\nqproxy_egress_connections_opened_total{dest=\"db.example.com:5432\","
		      "half=\"host\"} 2\n");
	assert_has(r, "\nqproxy_egress_connections_open{dest=\"db.example.com:5432\","
		      "half=\"host\"} 1\n");
	assert_has(r, "\nqproxy_egress_bytes_total{dest=\"db.example.com:5432\",half=\"host\","
		      "direction=\"up\"} 100\n");
	assert_has(r, "\nqproxy_egress_bytes_total{dest=\"db.example.com:5432\",half=\"host\","
		      "direction=\"down\"} 200\n");
	assert_has(r, "\nqproxy_egress_denied_total{dest=\"10.0.0.1:22\",half=\"host\"} 1\n");
	assert_has(r, "\nqproxy_egress_denied_total{dest=\"evil.test:80\",half=\"enclave\"} 5\n");
	assert_has(r, "\nqproxy_egress_refused_total{dest=\"api.example.com:443\","
		      "half=\"enclave\"} 6\n");
	assert_has(r, "\nqproxy_egress_refused_total{dest=\"db.example.com:5432\",half=\"host\"} "
		      "0\n");
	assert_has(r, "\nqproxy_egress_bytes_total{dest=\"api.example.com:443\",half=\"enclave\","
		      "direction=\"down\"} 40\n");
	/* One HELP and TYPE per family, the two directions under one. */
	assert_int_equal(strstr(strstr(r, "# TYPE qproxy_egress_bytes_total") + 1,
				"# TYPE qproxy_egress_bytes_total"),
			 NULL);
	free(r);

	/* Running again: up, with its uptime in whole seconds. */
	app.app.running = true;
	app.app.pid = 42;
	app.app.uptime_ms = 61500;
	app.app.restarts = 4;
	rig_send_frame(g->enclave.fd, &app);
	r = get(g, scrape_req);
	assert_has(r, "\nqproxy_app_up 1\n");
	assert_has(r, "\nqproxy_app_restarts_total 4\n");
	/* Counted on from when the enclave said 61.5 s: at least 61, however slow this runs. */
	const char *up = strstr(r, "\nqproxy_app_uptime_seconds ");
	assert_non_null(up);
	assert_true(strtoull(up + strlen("\nqproxy_app_uptime_seconds "), NULL, 10) >= 61);
	free(r);
	egress_stats_free(&es);
}

static void count_answer(void *arg, const struct msg *m)
{
	(void)m;
	(*(int *)arg)++;
}

/* At most CONTROL_STATS_WAITERS wait; each is answered once; one that cancels is not. */
static void control_waiters_are_bounded(void **state)
{
	struct rig *g = *state;
	enum { N = CONTROL_STATS_WAITERS };
	int answered[N + 1] = {0};

	g->answer = true;
	enclave_links(g);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(control_ask_stats(g->h.ctl, count_answer, &answered[i]), 0);
	assert_int_equal(control_ask_stats(g->h.ctl, count_answer, &answered[N]), -1);
	control_cancel_stats(g->h.ctl, &answered[3]);
	assert_int_equal(control_ask_stats(g->h.ctl, count_answer, &answered[N]), 0);
	for (int64_t end = loop_now() + RIG_WAIT_MS; answered[N] == 0 && loop_now() < end;)
		step(g);
	for (size_t i = 0; i <= N; i++)
		assert_int_equal(answered[i], i == 3 ? 0 : 1);
	assert_int_equal(g->questions, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(writer_escapes_help_and_label_values),
	    cmocka_unit_test(writer_grows),
	    cmocka_unit_test(parse_cases_each_get_their_status),
	    cmocka_unit_test(every_prefix_waits),
	    cmocka_unit_test(heads_are_bounded),
	    cmocka_unit_test_setup_teardown(no_enclave_this_half_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(enclave_answers_with_its_series, setup, teardown),
	    cmocka_unit_test_setup_teardown(scrapes_at_once_share_a_question, setup, teardown),
	    cmocka_unit_test_setup_teardown(silent_enclave_is_left_out, setup, teardown),
	    cmocka_unit_test_setup_teardown(link_lost_while_waiting, setup, teardown),
	    cmocka_unit_test_setup_teardown(other_requests_get_their_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(clients_are_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(control_waiters_are_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(app_and_egress_series, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
