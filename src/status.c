#include "status.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "dir.h"
#include "egress.h"
#include "log.h"
#include "message.h"
#include "net.h"
#include "util.h"
#include "version.h"

/* How long a question waits for the enclave half's counters before it is answered without. */
#define STATUS_WAIT_MS 1000
/* How long the client waits for the answer. */
#define QUERY_WAIT_S 5

struct status_client {
	struct status_client *next;
	int fd;
};

struct status_server {
	struct loop *loop;
	const struct config *cfg;
	struct proxy *px;
	struct control *ctl;
	uint32_t enclave_cid;
	const char *path;
	int fd; /* the listener, -1 before status_start() */
	/* Clients waiting for the question in flight to the enclave half, if any. */
	struct status_client *waiting;
	bool asking;
	struct loop_timer deadline;
	const struct egress_stats *egress; /* NULL: no egress view */
};

void status_set_egress(struct status_server *s, const struct egress_stats *egress)
{
	s->egress = egress;
}

/* The busiest destinations, at most MSG_EGRESS_MAX, into m; false when out of memory. */
static bool fill_egress(const struct status_server *s, struct msg *m)
{
	long n = egress_stats_msg(s->egress, MSG_EGRESS_MAX, &m->egress);

	m->negress = n > 0 ? (size_t)n : 0;
	return n >= 0;
}

/*
 * The reply to every waiting client: this half's counters per rule, and the enclave's
 * (its STATS, em) when they came in time (matched by vsock_port, zero for a rule it
 * lacks); the egress counters of both the same way.
 */
static void answer(struct status_server *s, const struct msg *em)
{
	const struct config *c = s->cfg;
	const struct msg_stat *estats = em ? em->stats : NULL;
	size_t nestats = em ? em->nstats : 0;
	struct msg m = {
	    .type = MSG_STATUS,
	    .cid = s->enclave_cid,
	    .rules = c->rules,
	    .nrules = c->nrules,
	    .nstats = c->nrules,
	    .has_peer_stats = estats != NULL,
	    .npeer_stats = estats ? c->nrules : 0,
	    /* The enclave's own, decoded and bounded by msg_decode: borrowed, not copied. */
	    .peer_egress = em ? em->egress : NULL,
	    .npeer_egress = em ? em->negress : 0,
	};
	const char *peer_version = NULL;
	uint8_t *buf = malloc(MSG_STATUS_MAX);
	size_t n = 0;

	snprintf(m.version, sizeof(m.version), "%s", QPROXY_VERSION);
	m.connected = control_linked(s->ctl, &peer_version);
	m.has_app = control_app(s->ctl, &m.app);
	snprintf(m.peer_version, sizeof(m.peer_version), "%s", m.connected ? peer_version : "");
	m.stats = calloc(c->nrules ? c->nrules : 1, sizeof(*m.stats));
	m.peer_stats = calloc(c->nrules ? c->nrules : 1, sizeof(*m.peer_stats));
	bool built = buf && m.stats && m.peer_stats && fill_egress(s, &m);
	if (built) {
		proxy_stats_msg(s->px, m.stats);
		for (size_t i = 0; i < c->nrules; i++) {
			uint32_t port = c->rules[i].vsock_port;
			m.peer_stats[i] = (struct msg_stat){.vsock_port = port};
			for (size_t j = 0; j < nestats; j++)
				if (estats[j].vsock_port == port)
					m.peer_stats[i] = estats[j];
		}
		n = msg_encode(&m, buf, MSG_STATUS_MAX);
	}
	if (n == 0)
		log_warn(0, "status: cannot build the reply: %s",
			 built ? "too large" : strerror(ENOMEM));
	while (s->waiting) {
		struct status_client *sc = s->waiting;
		s->waiting = sc->next;
		/* Into an empty socket buffer made big enough: one write does it, or nothing will.
		 */
		ssize_t w = n > 0 ? write(sc->fd, buf, n) : 0;
		if (w >= 0 && (size_t)w < n)
			log_warn(0, "status: reply cut short: %zd of %zu bytes", w, n);
		else if (w < 0)
			log_debug(0, "status: reply: %s", strerror(errno));
		close(sc->fd);
		free(sc);
	}
	free(m.stats);
	free(m.peer_stats);
	free(m.egress);
	free(buf);
}

static void on_enclave_stats(void *arg, const struct msg *m)
{
	struct status_server *s = arg;

	if (!s->asking)
		return; /* too late: the clients have had their answer */
	s->asking = false;
	loop_timer_stop(s->loop, &s->deadline);
	answer(s, m);
}

static void on_deadline(struct loop *l, struct loop_timer *t)
{
	struct status_server *s = container_of(t, struct status_server, deadline);

	(void)l;
	s->asking = false;
	control_cancel_stats(s->ctl, s);
	answer(s, NULL);
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct status_server *s = arg;

	(void)rev;
	int cfd = net_accept_or_pause(l, fd, NULL, NULL);
	if (cfd < 0)
		return;
	struct status_client *sc = malloc(sizeof(*sc));
	if (!sc) {
		close(cfd);
		return;
	}
	/* The reply can be larger than the default socket buffer (MSG_STATUS_MAX); best effort. */
	int size = MSG_STATUS_MAX;
	setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	sc->fd = cfd;
	sc->next = s->waiting;
	s->waiting = sc;
	if (s->asking)
		return; /* the question in flight answers this client too */
	if (control_ask_stats(s->ctl, on_enclave_stats, s) == 0 &&
	    loop_timer_set(l, &s->deadline, STATUS_WAIT_MS) == 0) {
		s->asking = true;
		return;
	}
	answer(s, NULL);
}

/* The status socket: root only, in a root-only directory. */
static enum status_start_result status_listen(const char *path, int *fdp, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	char dir[sizeof(sun.sun_path)];

	if (net_unix_addr(&sun, "status socket", path, err, errlen) != 0)
		return STATUS_UNAVAILABLE;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		/* A tiny-init enclave or a minimal host may have no /run: make what is missing. */
		char failed[sizeof(dir)];
		if (dir_create(dir, 0700, failed, sizeof(failed)) != 0) {
			snprintf(err, errlen, "status socket dir %s: %s", failed, strerror(errno));
			return STATUS_UNAVAILABLE;
		}
		/* Whoever may write in the dir may put a socket of theirs in our place. */
		struct stat st = {0};
		if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
		    (st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022)) {
			snprintf(
			    err, errlen,
			    "status socket dir %s is not a directory that only this user can write "
			    "(mode %04o): refusing it; give --status-socket a path in one",
			    dir, (unsigned)(st.st_mode & 07777));
			return STATUS_UNSAFE_DIR;
		}
	}
	if (net_unix_claim(&sun) != 0) {
		snprintf(err, errlen, "status socket %s: another host half answers there", path);
		return STATUS_UNAVAILABLE;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "status socket %s: %s", path, strerror(errno));
		return STATUS_UNAVAILABLE;
	}
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r != 0 || chmod(path, 0600) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "status socket %s: %s", path, strerror(errno));
		close(fd);
		return STATUS_UNAVAILABLE;
	}
	*fdp = fd;
	return STATUS_STARTED;
}

struct status_server *status_new(struct loop *l, const struct config *c, struct proxy *px,
				 struct control *ctl, uint32_t enclave_cid)
{
	struct status_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->cfg = c;
	s->px = px;
	s->ctl = ctl;
	s->enclave_cid = enclave_cid;
	s->fd = -1;
	loop_timer_init(&s->deadline, on_deadline);
	return s;
}

enum status_start_result status_start(struct status_server *s, const char *path, char *err,
				      size_t errlen)
{
	int fd;
	enum status_start_result r = status_listen(path, &fd, err, errlen);

	if (r != STATUS_STARTED)
		return r;
	if (loop_add(s->loop, fd, POLLIN, on_accept, s) != 0) {
		snprintf(err, errlen, "status socket %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return STATUS_UNAVAILABLE;
	}
	s->fd = fd;
	s->path = path;
	return STATUS_STARTED;
}

void status_free(struct status_server *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->deadline);
	control_cancel_stats(s->ctl, s);
	if (s->fd >= 0) {
		loop_del(s->loop, s->fd);
		close(s->fd);
		unlink(s->path);
	}
	while (s->waiting) {
		struct status_client *sc = s->waiting;
		s->waiting = sc->next;
		close(sc->fd);
		free(sc);
	}
	free(s);
}

/* Each half's own max_connections beside its open count: "3/100", or "3" for no limit. */
static void print_rows(FILE *out, const char *half, const struct msg *m, const struct msg_stat *st)
{
	for (size_t i = 0; i < m->nrules; i++) {
		const struct rule *r = &m->rules[i];
		char name[CONFIG_RULE_NAME_LEN], open[48];
		int n = snprintf(open, sizeof(open), "%llu", (unsigned long long)st[i].open);
		if (st[i].limit)
			snprintf(open + n, sizeof(open) - (size_t)n, "/%llu",
				 (unsigned long long)st[i].limit);
		fprintf(out, "%-28s %-8s %13s %8llu %7llu %14llu %14llu %8llu\n",
			config_rule_name(r, name, sizeof(name)), half, open,
			(unsigned long long)st[i].total, (unsigned long long)st[i].failed,
			(unsigned long long)st[i].bytes_up, (unsigned long long)st[i].bytes_down,
			(unsigned long long)st[i].refused);
	}
}

static void print_egress(FILE *out, const char *half, const struct msg_egress *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%-40s %-8s %8llu %8llu %8llu %14llu %14llu %8llu\n", e[i].dest, half,
			(unsigned long long)e[i].open, (unsigned long long)e[i].total,
			(unsigned long long)e[i].denied, (unsigned long long)e[i].bytes_up,
			(unsigned long long)e[i].bytes_down, (unsigned long long)e[i].refused);
}

/* The enclave's app: its command, then how it is, on one line each. */
static void print_app(FILE *out, const struct msg_app *a)
{
	char last[96] = "none";

	if (a->exits && a->signal)
		snprintf(last, sizeof(last), "status %u (signal %u, %s)", a->status, a->signal,
			 strsignal((int)a->signal));
	else if (a->exits)
		snprintf(last, sizeof(last), "status %u", a->status);
	fprintf(out, "enclave app: %s\n", a->command);
	if (a->running)
		fprintf(out, "  running, pid %u, uptime %llu s", a->pid,
			(unsigned long long)(a->uptime_ms / 1000));
	else
		fprintf(out, "  exited");
	fprintf(out, ", restarts %llu, last exit %s\n", (unsigned long long)a->restarts, last);
}

/* Read the whole reply: the host half writes it and closes. The length read, or -1. */
static ssize_t read_reply(int fd, uint8_t *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	struct timeval tv = {QUERY_WAIT_S, 0};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (len < cap && (n = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)n;
	return (ssize_t)len;
}

int status_query(const char *path, FILE *out, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	uint8_t *buf;
	struct msg m;
	char why[128];

	if (net_unix_addr(&sun, "status socket", path, err, errlen) != 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(err, errlen, "no host half answers at %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf = malloc(MSG_STATUS_MAX);
	if (!buf) {
		snprintf(err, errlen, "status socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	ssize_t len = read_reply(fd, buf, MSG_STATUS_MAX);
	close(fd);
	int rc = msg_decode(buf, (size_t)len, &m, why, sizeof(why));
	free(buf);
	/* Every row needs its counters: a reply short of some is not ours. */
	if (rc != 0 || m.type != MSG_STATUS || m.nstats != m.nrules ||
	    (m.has_peer_stats && m.npeer_stats != m.nrules)) {
		msg_free(&m);
		snprintf(err, errlen,
			 "status socket %s: the reply is not one this qproxy understands", path);
		return -1;
	}
	fprintf(out, "host half: qproxy %s, enclave CID %u\n", m.version, m.cid);
	if (m.connected)
		fprintf(out, "enclave half: connected, qproxy %s\n", m.peer_version);
	else
		fprintf(out, "enclave half: not connected\n");
	if (m.has_app)
		print_app(out, &m.app);
	fprintf(out, "%-28s %-8s %13s %8s %7s %14s %14s %8s\n", "RULE", "HALF", "OPEN", "TOTAL",
		"FAILED", "BYTES UP", "BYTES DOWN", "REFUSED");
	print_rows(out, "host", &m, m.stats);
	if (m.has_peer_stats)
		print_rows(out, "enclave", &m, m.peer_stats);
	if (m.negress > 0 || m.npeer_egress > 0) {
		fprintf(out, "\n%-40s %-8s %8s %8s %8s %14s %14s %8s\n", "EGRESS (busiest first)",
			"HALF", "OPEN", "TOTAL", "DENIED", "BYTES UP", "BYTES DOWN", "REFUSED");
		print_egress(out, "host", m.egress, m.negress);
		print_egress(out, "enclave", m.peer_egress, m.npeer_egress);
	}
	msg_free(&m);
	return 0;
}
