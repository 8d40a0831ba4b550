#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "egress.h"
#include "log.h"
#include "message.h"
#include "net.h"
#include "util.h"
#include "version.h"

#define ACCEPT_BATCH 16

_Static_assert(METRICS_CLIENTS < CONTROL_STATS_WAITERS,
	       "every scrape may wait for the enclave's counters, and the status server too");
#define SOURCES 8
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static bool buf_room(struct metrics_buf *b, size_t n)
{
	if (b->nomem)
		return false;
	char *p = array_grow(b->p, &b->cap, b->len + n + 1, 1);
	if (!p) {
		b->nomem = true;
		return false;
	}
	b->p = p;
	return true;
}

static void buf_add(struct metrics_buf *b, const char *s, size_t n)
{
	if (!buf_room(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct metrics_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_add(b, small, (size_t)n);
		return;
	}
	if (!buf_room(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* The format's escapes: \\ and \n everywhere, \" in label values only. */
static void buf_escaped(struct metrics_buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_str(b, "\\\\");
		else if (*s == '\n')
			buf_str(b, "\\n");
		else if (*s == '"' && quote)
			buf_str(b, "\\\"");
		else
			buf_add(b, s, 1);
	}
}

void metrics_family(struct metrics_buf *b, const char *name, enum metrics_type type,
		    const char *help)
{
	metrics_printf(b, "# HELP %s ", name);
	buf_escaped(b, help, false);
	metrics_printf(b, "\n# TYPE %s %s\n", name, type == METRICS_COUNTER ? "counter" : "gauge");
}

static void sample_va(struct metrics_buf *b, const char *name, uint64_t value, va_list ap)
{
	const char *key, *sep = "{";

	buf_str(b, name);
	while ((key = va_arg(ap, const char *)) != NULL) {
		metrics_printf(b, "%s%s=\"", sep, key);
		buf_escaped(b, va_arg(ap, const char *), true);
		buf_str(b, "\"");
		sep = ",";
	}
	metrics_printf(b, "%s %" PRIu64 "\n", *sep == ',' ? "}" : "", value);
}

void metrics_sample(struct metrics_buf *b, const char *name, uint64_t value, ...)
{
	va_list ap;

	va_start(ap, value);
	sample_va(b, name, value, ap);
	va_end(ap);
}

static bool is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Bytes [from, to) are header lines, each "name: value" ending in LF or CRLF. */
static bool headers_ok(const char *s, size_t from, size_t to)
{
	size_t i = from;

	while (i < to) {
		size_t name = i;
		while (i < to && is_tchar(s[i]))
			i++;
		/* No name, or a line folded onto the one before (obsolete, and a smuggling aid). */
		if (i == name || i >= to || s[i] != ':')
			return false;
		for (; i < to && s[i] != '\n'; i++) {
			unsigned char ch = (unsigned char)s[i];
			bool cr_at_end = ch == '\r' && i + 1 < to && s[i + 1] == '\n';
			if ((ch < 0x20 && ch != '\t' && !cr_at_end) || ch == 0x7f)
				return false;
		}
		i++;
	}
	return true;
}

int metrics_parse_request(const char *buf, size_t len, bool *head)
{
	const char *nl = memchr(buf, '\n', len);
	size_t line = nl ? (size_t)(nl - buf) : len, i = 0;
	int more = len >= METRICS_HEAD_MAX ? 431 : 0;

	*head = false;
	/* A CR at the end of what came may be the first half of a CRLF. */
	if (line > 0 && buf[line - 1] == '\r')
		line--;
	while (i < line && is_tchar(buf[i]))
		i++;
	size_t method = i;
	if (i < line && (buf[i] != ' ' || method == 0))
		return 400;
	if (i++ == line)
		return nl ? 400 : more;
	size_t target = i;
	while (i < line && buf[i] > 0x20 && buf[i] < 0x7f)
		i++;
	size_t target_len = i - target;
	if (i < line && (buf[i] != ' ' || target_len == 0))
		return 400;
	if (i++ == line)
		return nl ? 400 : more;
	size_t v = line - i;
	if (v > 8 || (memcmp(buf + i, "HTTP/1.1", v) != 0 && memcmp(buf + i, "HTTP/1.0", v) != 0))
		return 400;
	if (!nl)
		return more;
	if (v != 8)
		return 400;
	/* The head ends at an empty line; every line between is a header. */
	size_t start = (size_t)(nl - buf) + 1, end = start;
	while (end < len && buf[end] != '\n' &&
	       !(buf[end] == '\r' && end + 1 < len && buf[end + 1] == '\n')) {
		const char *next = memchr(buf + end, '\n', len - end);
		if (!next)
			return more;
		end = (size_t)(next - buf) + 1;
	}
	if (end >= len || (buf[end] == '\r' && end + 1 >= len))
		return more;
	if (!headers_ok(buf, start, end))
		return 400;
	*head = method == 4 && memcmp(buf, "HEAD", 4) == 0;
	if (!*head && !(method == 3 && memcmp(buf, "GET", 3) == 0))
		return 405;
	const char *q = memchr(buf + target, '?', target_len);
	size_t path_len = q ? (size_t)(q - (buf + target)) : target_len;
	if (path_len != 8 || memcmp(buf + target, "/metrics", 8) != 0)
		return 404;
	return 200;
}

enum client_state { CL_READ, CL_WAIT, CL_WRITE, CL_DRAIN };

struct client {
	struct metrics *m;
	struct client *prev, *next;
	int fd;
	enum client_state state;
	bool head;
	size_t in_len;
	struct metrics_buf out;
	size_t out_off;
	struct loop_timer timer;
	struct loop_defer free_d;
	char in[METRICS_HEAD_MAX];
};

struct metrics {
	struct loop *loop;
	const struct config *cfg;
	struct proxy *px;
	struct control *ctl;
	int fd;
	uint16_t port;
	struct client *clients;
	size_t nclients;
	uint64_t scrapes, refused;
	int64_t started; /* CLOCK_REALTIME seconds when the half set up its endpoint */
	const struct egress_stats *egress; /* NULL: no egress */
	struct {
		metrics_write_fn *write;
		void *arg;
	} sources[SOURCES];
	size_t nsources;
};

static void client_free(struct loop_defer *d)
{
	struct client *c = container_of(d, struct client, free_d);

	free(c->out.p);
	free(c);
}

/* Close now, free after the loop's pass: events for this fd may still be pending in it. */
static void client_drop(struct client *c)
{
	struct metrics *m = c->m;

	control_cancel_stats(m->ctl, c);
	loop_timer_stop(m->loop, &c->timer);
	loop_del(m->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		m->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->nclients--;
	loop_defer(m->loop, &c->free_d);
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	}
	return "Internal Server Error";
}

/* A whole response in b: its head, and body unless the request was HEAD. */
static void response(struct metrics_buf *b, int status, const char *type, const char *body,
		     size_t n, bool head)
{
	metrics_printf(b,
		       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		       "Connection: close\r\n\r\n",
		       status, reason(status), type, n,
		       status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!head)
		buf_add(b, body, n);
}

static void error_response(struct metrics_buf *b, int status, bool head)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "%d %s%s\n", status, reason(status),
			 status == 404 ? ": the metrics are at /metrics" : "");

	response(b, status, "text/plain; charset=utf-8", body, (size_t)n, head);
}

static void client_io(struct loop *l, int fd, short rev, void *arg);

/* Send what the socket takes; once all is gone, read until the client closes. */
static void client_write(struct client *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			log_debug(0, "metrics: send: %s", strerror(errno));
			client_drop(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/*
	 * Closing with the client's bytes unread would reset the connection, and a reset
	 * can destroy the answer before it is read: say we are done, and wait for its close.
	 */
	shutdown(c->fd, SHUT_WR);
	c->state = CL_DRAIN;
	loop_set(c->m->loop, c->fd, POLLIN);
}

static void client_respond(struct client *c, int status, const struct msg *enclave)
{
	struct metrics *m = c->m;

	c->state = CL_WRITE;
	if (status == 200) {
		struct metrics_buf body = {0};
		metrics_write(m, &body, enclave);
		if (body.nomem)
			status = 503;
		else
			response(&c->out, 200, CONTENT_TYPE, body.p, body.len, c->head);
		free(body.p);
		m->scrapes++;
	}
	if (status != 200)
		error_response(&c->out, status, c->head);
	if (c->out.nomem) {
		log_warn(0, "metrics: dropping a scrape: %s", strerror(ENOMEM));
		client_drop(c);
		return;
	}
	/* Without its deadline a client that never reads would hold its place for ever. */
	if (loop_timer_set(m->loop, &c->timer, METRICS_CLIENT_MS) != 0) {
		client_drop(c);
		return;
	}
	loop_set(m->loop, c->fd, POLLOUT);
	client_write(c);
}

static void on_enclave_stats(void *arg, const struct msg *stats)
{
	struct client *c = arg;

	client_respond(c, 200, stats);
}

static void client_read(struct client *c)
{
	struct metrics *m = c->m;
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_drop(c); /* gone before its request was whole */
		return;
	}
	c->in_len += (size_t)n;
	int status = metrics_parse_request(c->in, c->in_len, &c->head);
	if (status == 0)
		return;
	if (status == 200 && control_ask_stats(m->ctl, on_enclave_stats, c) == 0) {
		/* Not polled meanwhile: whatever it sends now is read, and dropped, at the end. */
		c->state = CL_WAIT;
		loop_set(m->loop, c->fd, 0);
		if (loop_timer_set(m->loop, &c->timer, METRICS_ENCLAVE_WAIT_MS) == 0)
			return;
		control_cancel_stats(m->ctl, c);
	}
	client_respond(c, status, NULL);
}

static void client_io(struct loop *l, int fd, short rev, void *arg)
{
	struct client *c = arg;
	char sink[512];

	(void)l, (void)fd, (void)rev;
	switch (c->state) {
	case CL_READ:
		client_read(c);
		break;
	case CL_WRITE:
		client_write(c);
		break;
	case CL_DRAIN: {
		ssize_t n = read(c->fd, sink, sizeof(sink));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			client_drop(c);
		break;
	}
	case CL_WAIT:
		break;
	}
}

static void on_client_timer(struct loop *l, struct loop_timer *t)
{
	struct client *c = container_of(t, struct client, timer);

	(void)l;
	if (c->state == CL_WAIT) {
		/* The enclave half did not answer in time: the page goes without its figures. */
		control_cancel_stats(c->m->ctl, c);
		client_respond(c, 200, NULL);
		return;
	}
	log_debug(0, "metrics: dropping a client that took over %d ms", METRICS_CLIENT_MS);
	client_drop(c);
}

/* Past METRICS_CLIENTS: a short answer if the socket takes it at once, and closed. */
static void refuse(struct metrics *m, int fd)
{
	struct metrics_buf b = {0};

	m->refused++;
	error_response(&b, 503, false);
	if (!b.nomem && send(fd, b.p, b.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug(0, "metrics: refusing a client: %s", strerror(errno));
	free(b.p);
	/* What it has sent already, unread, would make the close a reset that may beat the answer.
	 */
	shutdown(fd, SHUT_WR);
	char sink[512];
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct metrics *m = arg;

	(void)rev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = net_accept_or_pause(l, fd, NULL, NULL);
		if (cfd < 0) {
			if (errno == ECONNABORTED || errno == EPROTO)
				continue;
			return;
		}
		if (m->nclients >= METRICS_CLIENTS) {
			refuse(m, cfd);
			continue;
		}
		struct client *c = calloc(1, sizeof(*c));
		if (!c || loop_add(l, cfd, POLLIN, client_io, c) != 0) {
			free(c);
			close(cfd);
			continue;
		}
		c->m = m;
		c->fd = cfd;
		c->free_d.fn = client_free;
		loop_timer_init(&c->timer, on_client_timer);
		c->next = m->clients;
		if (m->clients)
			m->clients->prev = c;
		m->clients = c;
		m->nclients++;
		/* Without its deadline a silent client would hold its place for ever. */
		if (loop_timer_set(l, &c->timer, METRICS_CLIENT_MS) != 0)
			client_drop(c);
	}
}

/*
 * The figures of one rule in one half, as the families below read them: the host
 * half's from its proxy, the enclave half's as the control link brought them.
 */
struct figures {
	const struct rule *rule;
	const char *half;
	char rule_name[CONFIG_RULE_NAME_LEN];
	char vsock_port[12];
	struct msg_stat st;
	const unsigned long *failed_by; /* by enum proxy_fail; NULL for the enclave half */
};

#define STAT(f) offsetof(struct msg_stat, f)

/*
 * The families every rule has in each half, in order; a row with no help adds samples
 * to the family of the row above. limited: only for a half with max_connections.
 */
static const struct rule_family {
	const char *name, *help;
	enum metrics_type type;
	size_t offset;		   /* of the uint64_t in struct msg_stat */
	const char *label, *value; /* one more label, or NULL */
	bool limited;
} rule_families[] = {
    {"qproxy_connections_opened_total",
     "Connections accepted by the rule's listener (not those refused by max_connections)",
     METRICS_COUNTER, STAT(total), NULL, NULL, false},
    {"qproxy_connections_open", "Connections of the rule open now", METRICS_GAUGE, STAT(open), NULL,
     NULL, false},
    {"qproxy_connections_refused_total",
     "Clients closed at once because the rule had max_connections open", METRICS_COUNTER,
     STAT(refused), NULL, NULL, false},
    {"qproxy_connections_max", "The half's max_connections for the rule (only when set)",
     METRICS_GAUGE, STAT(limit), NULL, NULL, true},
    {"qproxy_bytes_total",
     "Bytes relayed by the rule's connections, open ones included: up towards its server, "
     "down towards its client",
     METRICS_COUNTER, STAT(bytes_up), "direction", "up", false},
    {"qproxy_bytes_total", NULL, METRICS_COUNTER, STAT(bytes_down), "direction", "down", false},
};

static void rule_sample(struct metrics_buf *b, const struct rule_family *f,
			const struct figures *fg)
{
	uint64_t v = *(const uint64_t *)((const char *)&fg->st + f->offset);

	if (f->limited && fg->st.limit == 0)
		return;
	if (f->label)
		metrics_sample(b, f->name, v, "rule", fg->rule_name, "vsock_port", fg->vsock_port,
			       "half", fg->half, f->label, f->value, NULL);
	else
		metrics_sample(b, f->name, v, "rule", fg->rule_name, "vsock_port", fg->vsock_port,
			       "half", fg->half, NULL);
}

/* Failures by cause: the host half knows them; the enclave half's come as one count. */
static void failed_samples(struct metrics_buf *b, const struct figures *fg)
{
	static const char name[] = "qproxy_connections_failed_total";

	for (size_t k = 0; fg->failed_by && k < PROXY_FAILS; k++)
		metrics_sample(b, name, fg->failed_by[k], "rule", fg->rule_name, "vsock_port",
			       fg->vsock_port, "half", fg->half, "cause", proxy_fail_names[k],
			       NULL);
	if (!fg->failed_by)
		metrics_sample(b, name, fg->st.failed, "rule", fg->rule_name, "vsock_port",
			       fg->vsock_port, "half", fg->half, "cause", "unknown", NULL);
}

/*
 * Host rule i's figures (host: this half's, from proxy_stats_msg()) in fg[0], the
 * enclave's for it (matched by vsock_port) in fg[1].
 */
static size_t rule_figures(struct metrics *m, size_t i, const struct msg_stat *host,
			   const struct msg_stat *estats, size_t nestats, struct figures fg[2])
{
	const struct rule *r = &m->cfg->rules[i];
	size_t n = 1;

	fg[0] = (struct figures){
	    .rule = r, .half = "host", .st = *host, .failed_by = proxy_stats(m->px, i)->failed_by};
	for (size_t j = 0; estats && j < nestats; j++) {
		if (estats[j].vsock_port != r->vsock_port)
			continue;
		fg[1] = (struct figures){.rule = r, .half = "enclave", .st = estats[j]};
		n = 2;
		break;
	}
	for (size_t h = 0; h < n; h++) {
		config_rule_name(r, fg[h].rule_name, sizeof(fg[h].rule_name));
		snprintf(fg[h].vsock_port, sizeof(fg[h].vsock_port), "%" PRIu32, r->vsock_port);
	}
	return n;
}

static void write_rules(struct metrics *m, struct metrics_buf *b, const struct msg_stat *estats,
			size_t nestats)
{
	size_t nrules = m->cfg->nrules;
	struct figures *fg = calloc(nrules ? 2 * nrules : 1, sizeof(*fg));
	size_t *nfg = calloc(nrules ? nrules : 1, sizeof(*nfg));
	struct msg_stat *host = calloc(nrules ? nrules : 1, sizeof(*host));

	if (!fg || !nfg || !host) {
		b->nomem = true;
		free(fg);
		free(nfg);
		free(host);
		return;
	}
	proxy_stats_msg(m->px, host);
	for (size_t i = 0; i < nrules; i++)
		nfg[i] = rule_figures(m, i, &host[i], estats, nestats, &fg[2 * i]);
	free(host);
	for (size_t f = 0; f < sizeof(rule_families) / sizeof(rule_families[0]); f++) {
		const struct rule_family *rf = &rule_families[f];
		if (rf->help)
			metrics_family(b, rf->name, rf->type, rf->help);
		for (size_t i = 0; i < nrules; i++)
			for (size_t h = 0; h < nfg[i]; h++)
				rule_sample(b, rf, &fg[2 * i + h]);
	}
	metrics_family(b, "qproxy_connections_failed_total", METRICS_COUNTER,
		       "Connections that failed, by cause: connect, resolve, proxy_header, relay, "
		       "internal; the enclave half's as cause unknown");
	for (size_t i = 0; i < nrules; i++)
		for (size_t h = 0; h < nfg[i]; h++)
			failed_samples(b, &fg[2 * i + h]);
	free(fg);
	free(nfg);
}

/* Open fds: entries of /proc/self/fd but "." and "..", and the one reading it. */
static uint64_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	uint64_t n = 0;

	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n > 0 ? n - 1 : 0;
}

/* The process families under the names Prometheus' own client libraries use. */
static void write_process(struct metrics *m, struct metrics_buf *b)
{
	struct rusage ru;
	struct rlimit rl;
	long pages = 0, page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%*s %ld", &pages) != 1)
			pages = 0;
		fclose(f);
	}
	metrics_family(b, "process_open_fds", METRICS_GAUGE, "Open file descriptors");
	metrics_sample(b, "process_open_fds", open_fds(), NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		metrics_family(b, "process_max_fds", METRICS_GAUGE,
			       "The limit on open file descriptors");
		metrics_sample(b, "process_max_fds", (uint64_t)rl.rlim_cur, NULL);
	}
	metrics_family(b, "process_resident_memory_bytes", METRICS_GAUGE,
		       "Resident memory, in bytes");
	metrics_sample(b, "process_resident_memory_bytes",
		       (uint64_t)(pages > 0 ? pages : 0) * (uint64_t)(page > 0 ? page : 0), NULL);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		/* Whole seconds: the writer's values are integers, and a counter may move by one.
		 */
		uint64_t s = (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec);
		metrics_family(b, "process_cpu_seconds_total", METRICS_COUNTER,
			       "CPU time used, user and system, in whole seconds");
		metrics_sample(b, "process_cpu_seconds_total", s, NULL);
	}
	metrics_family(b, "process_start_time_seconds", METRICS_GAUGE,
		       "When the half started, in seconds since the Unix epoch");
	metrics_sample(b, "process_start_time_seconds", (uint64_t)m->started, NULL);
}

/* The enclave's app, as control_app() tells it: nothing when the enclave half runs none. */
static void write_app(struct metrics *m, struct metrics_buf *b)
{
	struct msg_app a;

	if (!control_app(m->ctl, &a))
		return;
	metrics_family(b, "qproxy_app_info", METRICS_GAUGE,
		       "The app the enclave half runs: 1, with its command line");
	metrics_sample(b, "qproxy_app_info", 1, "command", a.command, NULL);
	metrics_family(b, "qproxy_app_up", METRICS_GAUGE, "1 while the enclave's app runs");
	metrics_sample(b, "qproxy_app_up", a.running, NULL);
	metrics_family(b, "qproxy_app_uptime_seconds", METRICS_GAUGE,
		       "How long the enclave's app has run since it last started, in whole "
		       "seconds; 0 while it does not run");
	metrics_sample(b, "qproxy_app_uptime_seconds", a.running ? a.uptime_ms / 1000 : 0, NULL);
	metrics_family(b, "qproxy_app_restarts_total", METRICS_COUNTER,
		       "Starts of the enclave's app after the first");
	metrics_sample(b, "qproxy_app_restarts_total", a.restarts, NULL);
	metrics_family(b, "qproxy_app_exits_total", METRICS_COUNTER,
		       "How often the enclave's app has ended");
	metrics_sample(b, "qproxy_app_exits_total", a.exits, NULL);
	if (a.exits == 0)
		return;
	metrics_family(b, "qproxy_app_last_exit_status", METRICS_GAUGE,
		       "The app's last exit: its code, or 128 + the signal that ended it");
	metrics_sample(b, "qproxy_app_last_exit_status", a.status, NULL);
}

#define EGRESS(f) offsetof(struct msg_egress, f)

/* Egress families, as rule_families: per destination and half. */
static const struct egress_family {
	const char *name, *help;
	enum metrics_type type;
	size_t offset; /* of the uint64_t in struct msg_egress */
	const char *direction;
} egress_families[] = {
    {"qproxy_egress_connections_opened_total",
     "Egress connections the enclave's apps opened to the destination (denied ones too)",
     METRICS_COUNTER, EGRESS(total), NULL},
    {"qproxy_egress_connections_open", "Egress connections to the destination open now",
     METRICS_GAUGE, EGRESS(open), NULL},
    {"qproxy_egress_denied_total", "Egress connections to the destination the policy refused",
     METRICS_COUNTER, EGRESS(denied), NULL},
    {"qproxy_egress_refused_total",
     "Egress connections to the destination refused while that half's max_connections were open",
     METRICS_COUNTER, EGRESS(refused), NULL},
    {"qproxy_egress_bytes_total",
     "Egress bytes relayed, up towards the destination, down towards the enclave's app",
     METRICS_COUNTER, EGRESS(bytes_up), "up"},
    {"qproxy_egress_bytes_total", NULL, METRICS_COUNTER, EGRESS(bytes_down), "down"},
};

static void egress_samples(struct metrics_buf *b, const struct egress_family *f, const char *half,
			   const struct msg_egress *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = *(const uint64_t *)((const char *)&e[i] + f->offset);
		if (f->direction)
			metrics_sample(b, f->name, v, "dest", e[i].dest, "half", half, "direction",
				       f->direction, NULL);
		else
			metrics_sample(b, f->name, v, "dest", e[i].dest, "half", half, NULL);
	}
}

/*
 * The busiest destinations of each half (at most MSG_EGRESS_MAX, as `qproxy status`
 * shows them): the host half's from its egress server, the enclave's from its STATS.
 * No families when neither half has any.
 */
static void write_egress(struct metrics *m, struct metrics_buf *b, const struct msg *enclave)
{
	struct msg_egress *host;
	long nhost = egress_stats_msg(m->egress, MSG_EGRESS_MAX, &host);
	size_t nencl = enclave ? enclave->negress : 0;

	if (nhost < 0) {
		b->nomem = true;
		return;
	}
	/* Nothing to free then: host is NULL when there are none. */
	if (nhost == 0 && nencl == 0)
		return;
	for (size_t f = 0; f < sizeof(egress_families) / sizeof(egress_families[0]); f++) {
		const struct egress_family *ef = &egress_families[f];
		if (ef->help)
			metrics_family(b, ef->name, ef->type, ef->help);
		egress_samples(b, ef, "host", host, (size_t)nhost);
		egress_samples(b, ef, "enclave", enclave ? enclave->egress : NULL, nencl);
	}
	free(host);
}

void metrics_set_egress(struct metrics *m, const struct egress_stats *egress)
{
	m->egress = egress;
}

void metrics_write(struct metrics *m, struct metrics_buf *b, const struct msg *enclave)
{
	const char *version;
	bool linked = control_linked(m->ctl, &version);

	metrics_family(b, "qproxy_info", METRICS_GAUGE,
		       "This qproxy host half: 1, with its version");
	metrics_sample(b, "qproxy_info", 1, "version", QPROXY_VERSION, NULL);
	metrics_family(b, "qproxy_enclave_link_up", METRICS_GAUGE,
		       "1 while the enclave half is linked over the control channel");
	metrics_sample(b, "qproxy_enclave_link_up", linked, NULL);
	metrics_family(b, "qproxy_enclave_links_total", METRICS_COUNTER,
		       "Control links the enclave half established: the first, and each after a "
		       "loss or restart");
	metrics_sample(b, "qproxy_enclave_links_total", control_links(m->ctl), NULL);
	if (linked) {
		metrics_family(b, "qproxy_enclave_info", METRICS_GAUGE,
			       "The linked enclave half: 1, with its version");
		metrics_sample(b, "qproxy_enclave_info", 1, "version", version, NULL);
	}
	metrics_family(b, "qproxy_enclave_stats_up", METRICS_GAUGE,
		       "1 when the enclave half's counters came with this scrape (within 1 s)");
	metrics_sample(b, "qproxy_enclave_stats_up", enclave != NULL, NULL);
	write_rules(m, b, enclave ? enclave->stats : NULL, enclave ? enclave->nstats : 0);
	write_app(m, b);
	write_egress(m, b, enclave);
	metrics_family(b, "qproxy_metrics_scrapes_total", METRICS_COUNTER,
		       "Scrapes of this endpoint answered, before this one");
	metrics_sample(b, "qproxy_metrics_scrapes_total", m->scrapes, NULL);
	metrics_family(b, "qproxy_metrics_refused_total", METRICS_COUNTER,
		       "Clients of this endpoint refused: too many at once");
	metrics_sample(b, "qproxy_metrics_refused_total", m->refused, NULL);
	write_process(m, b);
	for (size_t i = 0; i < m->nsources; i++)
		m->sources[i].write(m->sources[i].arg, b);
}

struct metrics *metrics_new(struct loop *l, const struct config *c, struct proxy *px,
			    struct control *ctl)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->loop = l;
	m->cfg = c;
	m->px = px;
	m->ctl = ctl;
	m->fd = -1;
	m->started = (int64_t)time(NULL);
	return m;
}

int metrics_add_source(struct metrics *m, metrics_write_fn *write, void *arg)
{
	if (m->nsources == SOURCES) {
		errno = ENOMEM;
		return -1;
	}
	m->sources[m->nsources].write = write;
	m->sources[m->nsources].arg = arg;
	m->nsources++;
	return 0;
}

int metrics_start(struct metrics *m, const struct sockaddr *sa, socklen_t len, char *err,
		  size_t errlen)
{
	char why[NET_ERR_LEN];
	struct sockaddr_storage at;
	socklen_t atlen = sizeof(at);

	int fd = net_listen_ip(sa, len, why, sizeof(why));
	if (fd < 0) {
		snprintf(err, errlen, "metrics: %s", why);
		return -1;
	}
	if (loop_add(m->loop, fd, POLLIN, on_accept, m) != 0) {
		snprintf(err, errlen, "metrics: %s", strerror(errno));
		close(fd);
		return -1;
	}
	m->fd = fd;
	if (getsockname(fd, (struct sockaddr *)&at, &atlen) == 0)
		m->port = ntohs(at.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&at)->sin6_port
							 : ((struct sockaddr_in *)&at)->sin_port);
	return 0;
}

uint16_t metrics_port(const struct metrics *m)
{
	return m->port;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	while (m->clients) {
		struct client *c = m->clients;
		client_drop(c);
		loop_undefer(m->loop, &c->free_d);
		client_free(&c->free_d);
	}
	if (m->fd >= 0) {
		loop_del(m->loop, m->fd);
		close(m->fd);
	}
	free(m);
}
