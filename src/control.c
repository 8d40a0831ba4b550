#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "egress.h"
#include "clocksync.h"
#include "log.h"
#include "message.h"
#include "net.h"
#include "util.h"
#include "version.h"

#define TICK_MS 1000
#define HEARTBEAT_MS 2000
/* Three heartbeats missed: the peer is gone, or hung. */
#define DEAD_MS 6000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define WAIT_WARN_MS 10000
#define OUT_CAP (4 * (4 + MSG_MAX))
/* Host: new connections that may each be the enclave half, until their HELLO says so. */
#define CANDIDATES 4
/* An unanswered question younger than this is joined; an older one may be lost: ask anew. */
#define STATS_JOIN_MS 500
/* Log lines the enclave keeps while the link is down: 128 x 1 KiB (an app's line is long). */
#define RING_LINES 128
#define RING_LINE_MAX MSG_TEXT_MAX
/* Enclave, with sync_clock: how often it asks the host for the time. */
#define CLOCK_EVERY_MS 60000

struct ring_line {
	unsigned char level;
	unsigned short len;
	char text[RING_LINE_MAX];
};

/* One connection between the halves, with our HELLO queued on it from the start. */
struct link {
	struct control *ctl;
	int fd;
	bool hello; /* the peer's HELLO received */
	size_t in_len;
	size_t out_off, out_len;
	int64_t since, last_rx, last_tx;
	char peer[NET_ADDR_LEN];
	uint8_t in[4 + MSG_MAX];
	uint8_t out[OUT_CAP];
};

struct stats_waiter {
	control_stats_fn *fn;
	void *arg;
	uint64_t seq;
};

struct control {
	struct loop *loop;
	const struct config *cfg;
	struct proxy *px;
	struct control_opts o;
	bool host;
	int lfd; /* host: the control listener */
	int cfd; /* enclave: a connect in progress, -1 when none */

	/*
	 * The link, NULL while down. The host half takes a new connection for its link
	 * only once the peer's HELLO has decoded: until then it is a candidate, and
	 * whatever it sends, or does not, the link in place keeps going.
	 */
	struct link *link;
	struct link *cand[CANDIDATES];
	char peer[NET_ADDR_LEN]; /* enclave: the host half's address */
	char peer_version[MSG_VERSION_MAX];

	struct loop_timer tick;
	struct loop_timer retry; /* enclave: reconnect */
	int64_t backoff;
	int64_t down_since; /* enclave: when the link went down or first failed, 0 while up */
	bool down_logged;
	uint64_t seq;

	/*
	 * host: who waits for the enclave's counters, each with the seq of its question;
	 * a reply answers every waiter whose question is not newer. The last question sent.
	 */
	struct stats_waiter waiters[CONTROL_STATS_WAITERS];
	size_t nwaiters;
	const struct egress_stats *egress; /* enclave: sent in each STATS */
	uint64_t stats_seq;
	int64_t stats_asked;
	unsigned long links; /* host: links established, the first and each one since */

	/* enclave: log lines waiting for the link */
	struct ring_line *ring;
	unsigned ring_head, ring_n;
	uint64_t dropped;

	/*
	 * The app's state: enclave, the supervisor's, sent on each change (app_pending
	 * until it is); host, the enclave's last word on it. app_at: when it was set.
	 */
	bool has_app, app_pending;
	struct msg_app app;
	int64_t app_at;

	/* enclave, with sync_clock: the question for the host's time in flight */
	uint64_t clock_seq;
	int64_t clock_asked_ns, clock_last;
};

/* The log sink has no argument: one control channel per process. */
static struct control *sink_ctl;
static uint8_t frame[4 + MSG_MAX];

static void link_drop(struct link *k, const char *why);
static void connect_start(struct control *ctl);
static void connect_failed(struct control *ctl, int err);

static uint64_t jitter_state;

/* Backoff with jitter, so that many enclaves restarting together do not retry in step. */
static int64_t jitter(int64_t ms)
{
	if (!jitter_state)
		jitter_state =
		    (uint64_t)loop_now() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15u;
	jitter_state ^= jitter_state << 13;
	jitter_state ^= jitter_state >> 7;
	jitter_state ^= jitter_state << 17;
	return ms / 2 + (int64_t)(jitter_state % (uint64_t)(ms / 2 + 1));
}

static short link_events(const struct link *k)
{
	return (short)(POLLIN | (k->out_len ? POLLOUT : 0));
}

/* Queue one message; false when the output buffer has no room (the caller decides what is lost). */
static bool link_send(struct link *k, const struct msg *m)
{
	size_t n = msg_encode(m, frame + 4, MSG_MAX);
	if (n == 0)
		return false;
	if (k->out_off > 0 && k->out_off + k->out_len + 4 + n > OUT_CAP) {
		memmove(k->out, k->out + k->out_off, k->out_len);
		k->out_off = 0;
	}
	if (k->out_off + k->out_len + 4 + n > OUT_CAP)
		return false;
	frame[0] = (uint8_t)(n >> 24);
	frame[1] = (uint8_t)(n >> 16);
	frame[2] = (uint8_t)(n >> 8);
	frame[3] = (uint8_t)n;
	memcpy(k->out + k->out_off + k->out_len, frame, 4 + n);
	k->out_len += 4 + n;
	k->last_tx = loop_now();
	loop_set(k->ctl->loop, k->fd, link_events(k));
	return true;
}

/* On the link, when there is one. */
static bool send_simple(struct control *ctl, unsigned type, uint64_t seq)
{
	struct msg m = {.type = type, .seq = seq};

	return ctl->link && link_send(ctl->link, &m);
}

static bool send_log(struct control *ctl, int level, const char *text, size_t len)
{
	struct msg m = {.type = MSG_LOG, .level = (unsigned)level};

	if (len >= sizeof(m.text))
		len = sizeof(m.text) - 1;
	memcpy(m.text, text, len);
	m.text[len] = '\0';
	return ctl->link && link_send(ctl->link, &m);
}

/* The app's state now: its uptime counts on from when it was set. */
static struct msg_app app_now(const struct control *ctl)
{
	struct msg_app a = ctl->app;

	if (a.running)
		a.uptime_ms += (uint64_t)(loop_now() - ctl->app_at);
	return a;
}

static void app_flush(struct control *ctl)
{
	struct msg m = {.type = MSG_APP, .has_app = true};

	if (!ctl->app_pending || !ctl->link)
		return;
	m.app = app_now(ctl);
	if (link_send(ctl->link, &m))
		ctl->app_pending = false;
}

static void ring_push(struct control *ctl, int level, const char *line, size_t len)
{
	if (ctl->ring_n == RING_LINES) {
		/* Keep the newest: drop the oldest, and count it. */
		ctl->ring_head = (ctl->ring_head + 1) % RING_LINES;
		ctl->ring_n--;
		ctl->dropped++;
	}
	struct ring_line *l = &ctl->ring[(ctl->ring_head + ctl->ring_n++) % RING_LINES];
	if (len >= RING_LINE_MAX)
		len = RING_LINE_MAX - 1;
	l->level = (unsigned char)level;
	l->len = (unsigned short)len;
	memcpy(l->text, line, len);
}

/* Send what the ring holds, as far as the output buffer takes it; then the app's state. */
static void ring_flush(struct control *ctl)
{
	while (ctl->link && ctl->ring_n > 0) {
		struct ring_line *l = &ctl->ring[ctl->ring_head];
		if (!send_log(ctl, l->level, l->text, l->len))
			return;
		ctl->ring_head = (ctl->ring_head + 1) % RING_LINES;
		ctl->ring_n--;
	}
	if (ctl->link && ctl->ring_n == 0 && ctl->dropped > 0) {
		uint64_t n = ctl->dropped;
		ctl->dropped = 0;
		/* A line like any other: here, and through the sink to the host. */
		log_warn(0,
			 "control: %llu log lines were dropped while the host half was unreachable",
			 (unsigned long long)n);
	}
	if (ctl->ring_n == 0)
		app_flush(ctl);
}

/* Every line the enclave half logs goes to the host too, or waits in the ring. */
static void log_to_host(int level, const char *line, size_t len)
{
	struct control *ctl = sink_ctl;

	if (!ctl)
		return;
	if (ctl->link && ctl->ring_n == 0 && send_log(ctl, level, line, len))
		return;
	ring_push(ctl, level, line, len);
}

static void emit_warn(void *arg, const char *line)
{
	(void)arg;
	log_warn(0, "control: %s", line);
}

static void on_hello(struct control *ctl, const struct msg *m)
{
	const char *peer = ctl->host ? "enclave" : "host";

	ctl->link->hello = true;
	snprintf(ctl->peer_version, sizeof(ctl->peer_version), "%s", m->version);
	if (m->proto != MSG_PROTO || strcmp(m->version, QPROXY_VERSION) != 0)
		log_warn(
		    0,
		    "control: the %s half runs qproxy %s (protocol %u), this one %s (protocol %d)",
		    peer, m->version, m->proto, QPROXY_VERSION, MSG_PROTO);
	const struct config *c = ctl->cfg;
	size_t n = ctl->host
		       ? config_diff(c->rules, c->nrules, m->rules, m->nrules, emit_warn, NULL)
		       : config_diff(m->rules, m->nrules, c->rules, c->nrules, emit_warn, NULL);
	/* A peer of another version may not say: its version differs, as said above. */
	if (strcmp(m->version, QPROXY_VERSION) == 0)
		n += ctl->host
			 ? config_diff_egress(c->egress_vsock_port, m->egress_port, emit_warn, NULL)
			 : config_diff_egress(m->egress_port, c->egress_vsock_port, emit_warn, NULL);
	if (n == 0)
		log_info(0, "control: the %s half's rules match this one's (%zu rules)", peer,
			 c->nrules);
}

/*
 * The counters of question seq to those who asked it or an earlier one; or none (m
 * NULL) to all when the link went down first (seq UINT64_MAX). Taken off the list before
 * any is called, so that a callback may ask again or cancel.
 */
static void stats_done(struct control *ctl, uint64_t seq, const struct msg *m)
{
	struct stats_waiter done[CONTROL_STATS_WAITERS];
	size_t ndone = 0, keep = 0;

	for (size_t i = 0; i < ctl->nwaiters; i++) {
		if (ctl->waiters[i].seq <= seq)
			done[ndone++] = ctl->waiters[i];
		else
			ctl->waiters[keep++] = ctl->waiters[i];
	}
	ctl->nwaiters = keep;
	for (size_t i = 0; i < ndone; i++)
		done[i].fn(done[i].arg, m);
}

static void on_stats(struct control *ctl, struct msg *m)
{
	stats_done(ctl, m->seq, m);
}

static void send_stats(struct control *ctl, uint64_t seq)
{
	size_t n = proxy_rules(ctl->px);
	struct msg_stat *st = calloc(n ? n : 1, sizeof(*st));
	struct msg m = {.type = MSG_STATS, .seq = seq, .stats = st, .nstats = n};

	if (!st)
		return;
	proxy_stats_msg(ctl->px, st);
	/*
	 * The egress counters, as many as fit: the config check keeps the rules' within a
	 * frame, and what room is left goes to the busiest destinations.
	 */
	uint8_t *probe = malloc(MSG_MAX);
	for (size_t max = MSG_EGRESS_MAX; probe && max > 0; max /= 2) {
		long ne = egress_stats_msg(ctl->egress, max, &m.egress);
		m.negress = ne > 0 ? (size_t)ne : 0;
		if (ne <= 0 || msg_encode(&m, probe, MSG_MAX) > 0)
			break;
		free(m.egress);
		m.egress = NULL;
		m.negress = 0;
	}
	free(probe);
	if (ctl->link)
		link_send(ctl->link, &m);
	free(m.egress);
	free(st);
}

void control_set_egress(struct control *ctl, const struct egress_stats *egress)
{
	ctl->egress = egress;
}

/*
 * An enclave line keeps its own time and level in front, and says whose it is
 * right after: "TIME LEVEL [enclave] message". The app's lines say so already:
 * "TIME LEVEL [app] line".
 */
static void write_enclave_line(const char *text)
{
	char line[MSG_TEXT_MAX + 16];
	const char *rest = strchr(text, ' ');

	if (rest)
		rest += strspn(rest, " ");
	if (rest)
		rest = strchr(rest, ' ');
	if (rest)
		rest += strspn(rest, " ");
	const char *whose = rest && strncmp(rest, "[app] ", 6) == 0 ? "" : "[enclave] ";
	int n =
	    rest ? snprintf(line, sizeof(line), "%.*s%s%s", (int)(rest - text), text, whose, rest)
		 : snprintf(line, sizeof(line), "[enclave] %s", text);
	log_write_line(line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Host: the enclave's app changed; each exit is news. */
static void on_app(struct control *ctl, const struct msg *m)
{
	const struct msg_app *a = &m->app;

	if (!m->has_app)
		return;
	bool news = a->exits > 0 && (!ctl->has_app || a->exits != ctl->app.exits);
	ctl->has_app = true;
	ctl->app = *a;
	ctl->app_at = loop_now();
	if (!news)
		return;
	int level = a->status == 0 ? LOG_INFO : LOG_WARN;
	if (a->signal)
		log_always(level, "enclave app exited on signal %u (%s), status %u; %llu restarts",
			   a->signal, strsignal((int)a->signal), a->status,
			   (unsigned long long)a->restarts);
	else
		log_always(level, "enclave app exited with status %u; %llu restarts", a->status,
			   (unsigned long long)a->restarts);
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Enclave: the host's time, answering our question: step the clock when it is off. */
static void on_time(struct control *ctl, const struct msg *m)
{
	if (!ctl->cfg->sync_clock || m->seq != ctl->clock_seq || ctl->clock_asked_ns == 0)
		return;
	/* Our reading before the round trip's end, so that |offset| <= rtt/2 holds exactly
	 * when both halves read one clock. */
	int64_t local_ns = realtime_ns();
	struct clocksync_sample smp = {
	    .rtt_ns = monotonic_ns() - ctl->clock_asked_ns,
	    .host_ns = (int64_t)m->time_ns,
	    .local_ns = local_ns,
	};
	ctl->clock_asked_ns = 0;
	int64_t offset;
	enum clocksync_verdict v = clocksync_judge(&smp, &offset);
	if (v == CLOCKSYNC_SLOW) {
		log_debug(0, "clock: sample skipped: round trip %lld ms",
			  (long long)(smp.rtt_ns / 1000000));
		return;
	}
	if (v == CLOCKSYNC_CLOSE) {
		log_debug(0, "clock: %+.3f ms from the host's (round trip %.3f ms): left alone",
			  (double)offset / 1e6, (double)smp.rtt_ns / 1e6);
		return;
	}
	/* Where the clock should be now, from the same reading the offset was taken from. */
	int64_t want = realtime_ns() + offset;
	struct timespec ts = {.tv_sec = want / 1000000000, .tv_nsec = want % 1000000000};
	if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
		log_warn(0, "clock: cannot step the clock by %+.3f s to the host's: %s",
			 (double)offset / 1e9, strerror(errno));
		return;
	}
	log_warn(0,
		 "clock: stepped by %+.3f s to the host's time (round trip %.1f ms, error at most "
		 "%.1f ms)",
		 (double)offset / 1e9, (double)smp.rtt_ns / 1e6, (double)smp.rtt_ns / 2e6);
}

static void on_message(struct control *ctl, struct msg *m)
{
	struct msg reply = {.type = MSG_TIME, .seq = m->seq};

	switch (m->type) {
	case MSG_HELLO:
		on_hello(ctl, m);
		break;
	case MSG_LOG:
		if (ctl->host)
			write_enclave_line(m->text);
		break;
	case MSG_STATS_REQ:
		if (!ctl->host)
			send_stats(ctl, m->seq);
		break;
	case MSG_STATS:
		if (ctl->host)
			on_stats(ctl, m);
		break;
	case MSG_APP:
		if (ctl->host)
			on_app(ctl, m);
		break;
	case MSG_TIME_REQ:
		/* Answered at once: the round trip bounds the error of the enclave's reading. */
		reply.time_ns = (uint64_t)realtime_ns();
		if (ctl->host && ctl->link)
			link_send(ctl->link, &reply);
		break;
	case MSG_TIME:
		if (!ctl->host)
			on_time(ctl, m);
		break;
	default:
		break; /* HEARTBEAT, or a type of a later version: its arrival is all we need */
	}
}

static void cand_remove(struct control *ctl, struct link *k)
{
	for (size_t i = 0; i < CANDIDATES; i++)
		if (ctl->cand[i] == k)
			ctl->cand[i] = NULL;
}

/* A candidate said hello: it is the enclave half now, and the link it had is gone. */
static void promote(struct control *ctl, struct link *k)
{
	cand_remove(ctl, k);
	if (ctl->link)
		link_drop(ctl->link, "replaced by a new connection");
	ctl->link = k;
	ctl->links++;
	log_info(0, "control: link to the enclave half up (%s)", k->peer);
}

/* Take whole frames from the input buffer. false when the link had to be dropped. */
static bool link_parse(struct link *k)
{
	struct control *ctl = k->ctl;
	size_t off = 0;

	while (k->in_len - off >= 4) {
		const uint8_t *p = k->in + off;
		size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
		char err[128], why[160];
		if (n == 0 || n > MSG_MAX) {
			snprintf(why, sizeof(why), "protocol error: a message of %zu bytes", n);
			link_drop(k, why);
			return false;
		}
		if (k->in_len - off < 4 + n)
			break;
		struct msg m;
		if (msg_decode(p + 4, n, &m, err, sizeof(err)) != 0) {
			msg_free(&m);
			snprintf(why, sizeof(why), "protocol error: %s", err);
			link_drop(k, why);
			return false;
		}
		if (k != ctl->link && m.type != MSG_HELLO) {
			snprintf(why, sizeof(why),
				 "protocol error: a message of type %u before its hello", m.type);
			msg_free(&m);
			link_drop(k, why);
			return false;
		}
		if (k != ctl->link)
			promote(ctl, k);
		on_message(ctl, &m);
		msg_free(&m);
		off += 4 + n;
	}
	memmove(k->in, k->in + off, k->in_len - off);
	k->in_len -= off;
	return true;
}

static void on_link_io(struct loop *l, int fd, short rev, void *arg)
{
	struct link *k = arg;
	struct control *ctl = k->ctl;

	(void)l;
	if (rev & (POLLIN | POLLHUP | POLLERR)) {
		ssize_t n = read(fd, k->in + k->in_len, sizeof(k->in) - k->in_len);
		if (n == 0) {
			link_drop(k, "closed by the peer");
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			link_drop(k, strerror(errno));
			return;
		}
		if (n > 0) {
			k->in_len += (size_t)n;
			k->last_rx = loop_now();
			if (!link_parse(k))
				return;
		}
	}
	while (k->out_len > 0) {
		ssize_t n = send(fd, k->out + k->out_off, k->out_len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			link_drop(k, strerror(errno));
			return;
		}
		k->out_off += (size_t)n;
		k->out_len -= (size_t)n;
	}
	if (k->out_len == 0)
		k->out_off = 0;
	if (!ctl->host)
		ring_flush(ctl);
	loop_set(ctl->loop, fd, link_events(k));
}

static void link_free(struct link *k)
{
	loop_del(k->ctl->loop, k->fd);
	close(k->fd);
	free(k);
}

/* A link on fd, polled, with our HELLO queued; NULL with errno, and fd closed, on failure. */
static struct link *link_new(struct control *ctl, int fd, const char *peer)
{
	struct msg hello = {
	    .type = MSG_HELLO,
	    .proto = MSG_PROTO,
	    .role = ctl->host ? 0 : 1,
	    .rules = ctl->cfg->rules,
	    .nrules = ctl->cfg->nrules,
	    .egress_port = ctl->cfg->egress_vsock_port,
	};
	struct link *k = malloc(sizeof(*k));

	if (!k || loop_add(ctl->loop, fd, POLLIN, on_link_io, k) != 0) {
		int err = k ? errno : ENOMEM;
		free(k);
		close(fd);
		errno = err;
		return NULL;
	}
	k->ctl = ctl;
	k->fd = fd;
	k->hello = false;
	k->in_len = k->out_off = k->out_len = 0;
	k->since = k->last_rx = k->last_tx = loop_now();
	snprintf(k->peer, sizeof(k->peer), "%s", peer);
	snprintf(hello.version, sizeof(hello.version), "%s", QPROXY_VERSION);
	if (!link_send(k, &hello)) {
		/* The config check keeps every HELLO within a frame: this is not expected. */
		link_free(k);
		errno = EMSGSIZE;
		return NULL;
	}
	return k;
}

/* Enclave: the connect to the host half went through. */
static void link_up(struct control *ctl, int fd)
{
	struct link *k = link_new(ctl, fd, ctl->peer);

	if (!k) {
		/* Try again later, as after any failed connect. */
		connect_failed(ctl, errno);
		return;
	}
	ctl->link = k;
	ctl->backoff = BACKOFF_MIN_MS;
	ctl->down_since = 0;
	ctl->down_logged = false;
	log_info(0, "control: link to the host half up (%s)", ctl->peer);
	/* The app's state again: the host half may be a new one. */
	ctl->app_pending = ctl->has_app;
	/* And the clock's question at the next tick. */
	ctl->clock_last = 0;
	ring_flush(ctl);
}

static void link_drop(struct link *k, const char *why)
{
	struct control *ctl = k->ctl;
	bool live = k == ctl->link;
	char peer[NET_ADDR_LEN];

	snprintf(peer, sizeof(peer), "%s", k->peer);
	/* Gone before a word is logged: the enclave's log lines must go to the ring now. */
	if (live)
		ctl->link = NULL;
	else
		cand_remove(ctl, k);
	link_free(k);
	if (!live) {
		log_warn(0, "control: dropped a connection from %s before its hello: %s", peer,
			 why);
		return;
	}
	if (ctl->host) {
		log_warn(0, "control: the enclave half is gone (%s): %s", peer, why);
		stats_done(ctl, UINT64_MAX, NULL);
		return;
	}
	log_warn(0, "control: link to the host half lost: %s; reconnecting", why);
	ctl->down_since = loop_now();
	ctl->down_logged = true;
	loop_timer_set(ctl->loop, &ctl->retry, jitter(ctl->backoff));
}

static void on_tick(struct loop *l, struct loop_timer *t)
{
	struct control *ctl = container_of(t, struct control, tick);
	int64_t now = loop_now();

	loop_timer_set(l, t, TICK_MS);
	for (size_t i = 0; i < CANDIDATES; i++)
		if (ctl->cand[i] && now - ctl->cand[i]->since > DEAD_MS)
			link_drop(ctl->cand[i], "no hello for 6 s");
	struct link *k = ctl->link;
	if (!k)
		return;
	if (now - k->last_rx > DEAD_MS) {
		link_drop(k, "no heartbeat for 6 s");
		return;
	}
	if (now - k->last_tx >= HEARTBEAT_MS)
		send_simple(ctl, MSG_HEARTBEAT, ++ctl->seq);
	if (!ctl->host && ctl->cfg->sync_clock &&
	    (ctl->clock_last == 0 || now - ctl->clock_last >= CLOCK_EVERY_MS)) {
		ctl->clock_last = now;
		ctl->clock_asked_ns = monotonic_ns();
		send_simple(ctl, MSG_TIME_REQ, ctl->clock_seq = ++ctl->seq);
	}
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct control *ctl = arg;
	struct sockaddr_storage peer;
	socklen_t plen;

	(void)rev;
	int cfd = net_accept_or_pause(l, fd, &peer, &plen);
	if (cfd < 0)
		return;
	char who[NET_ADDR_LEN];
	net_addr_str((struct sockaddr *)&peer, plen, who, sizeof(who));
	if (!net_vsock_peer_ok((struct sockaddr *)&peer, ctl->o.peer_cid)) {
		log_warn(0, "control: refused %s: only CID %u may connect", who, ctl->o.peer_cid);
		close(cfd);
		return;
	}
	/*
	 * A new connection from the enclave means it restarted, and the link in place is
	 * dead or dying; but only its HELLO shows that it is the enclave half. Until then
	 * it waits beside the link, in the oldest candidate's place when all are taken.
	 */
	size_t slot = 0;
	for (size_t i = 0; i < CANDIDATES; i++) {
		if (!ctl->cand[i]) {
			slot = i;
			break;
		}
		if (ctl->cand[i]->since < ctl->cand[slot]->since)
			slot = i;
	}
	if (ctl->cand[slot])
		link_drop(ctl->cand[slot], "newer connections took its place");
	ctl->cand[slot] = link_new(ctl, cfd, who);
	if (!ctl->cand[slot])
		log_warn(0, "control: connection from %s: %s", who, strerror(errno));
}

/*
 * The enclave half often starts before the host half: waiting for it is news,
 * not trouble, until it has gone on for a while.
 */
static void connect_failed(struct control *ctl, int err)
{
	int64_t now = loop_now();

	if (ctl->down_since == 0) {
		ctl->down_since = now;
		log_info(0, "control: waiting for the host half at %s: %s", ctl->peer,
			 strerror(err));
	} else if (!ctl->down_logged && now - ctl->down_since >= WAIT_WARN_MS) {
		log_warn(0, "control: no host half at %s after %d s: %s; still trying", ctl->peer,
			 WAIT_WARN_MS / 1000, strerror(err));
		ctl->down_logged = true;
	}
	ctl->backoff = ctl->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ctl->backoff * 2;
	loop_timer_set(ctl->loop, &ctl->retry, jitter(ctl->backoff));
}

static void on_connect_io(struct loop *l, int fd, short rev, void *arg)
{
	struct control *ctl = arg;

	(void)rev;
	loop_del(l, fd);
	ctl->cfd = -1;
	int err = net_connect_result(fd);
	if (err == 0) {
		link_up(ctl, fd);
		return;
	}
	close(fd);
	connect_failed(ctl, err);
}

static void on_retry(struct loop *l, struct loop_timer *t)
{
	(void)l;
	connect_start(container_of(t, struct control, retry));
}

static void connect_start(struct control *ctl)
{
	struct sockaddr_storage ss;
	socklen_t len = net_vsock_addr(ctl->o.peer_cid, ctl->o.port, &ss);
	bool pending;

	snprintf(ctl->peer, sizeof(ctl->peer), "vsock %u:%u", ctl->o.peer_cid, ctl->o.port);
	int fd = net_connect((struct sockaddr *)&ss, len, &pending);
	if (fd >= 0 && !pending) {
		link_up(ctl, fd);
		return;
	}
	if (fd >= 0 && loop_add(ctl->loop, fd, POLLOUT, on_connect_io, ctl) == 0) {
		ctl->cfd = fd;
		return;
	}
	int err = errno;
	if (fd >= 0)
		close(fd);
	connect_failed(ctl, err);
}

struct control *control_new(struct loop *l, const struct config *c, struct proxy *px,
			    const struct control_opts *o)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl)
		return NULL;
	ctl->loop = l;
	ctl->cfg = c;
	ctl->px = px;
	ctl->o = *o;
	ctl->host = o->role == PROXY_HOST;
	ctl->lfd = ctl->cfd = -1;
	ctl->backoff = BACKOFF_MIN_MS;
	if (!ctl->host)
		ctl->ring = malloc(RING_LINES * sizeof(*ctl->ring));
	if (!ctl->host && !ctl->ring) {
		control_free(ctl);
		return NULL;
	}
	loop_timer_init(&ctl->tick, on_tick);
	loop_timer_init(&ctl->retry, on_retry);
	if (!ctl->host) {
		/* From now on: what the enclave half says before the link is up waits in the ring.
		 */
		sink_ctl = ctl;
		log_set_sink(log_to_host);
	}
	return ctl;
}

int control_start(struct control *ctl, char *err, size_t errlen)
{
	char why[NET_ERR_LEN];

	if (loop_timer_set(ctl->loop, &ctl->tick, TICK_MS) != 0) {
		snprintf(err, errlen, "control: %s", strerror(errno));
		return -1;
	}
	if (!ctl->host) {
		connect_start(ctl);
		return 0;
	}
	ctl->lfd = net_listen_vsock(ctl->o.port, why, sizeof(why));
	if (ctl->lfd < 0 || loop_add(ctl->loop, ctl->lfd, POLLIN, on_accept, ctl) != 0) {
		snprintf(err, errlen, "control channel (--control-port %u): %s", ctl->o.port,
			 ctl->lfd < 0 ? why : strerror(errno));
		return -1;
	}
	return 0;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	if (sink_ctl == ctl) {
		log_set_sink(NULL);
		sink_ctl = NULL;
	}
	loop_timer_stop(ctl->loop, &ctl->tick);
	loop_timer_stop(ctl->loop, &ctl->retry);
	if (ctl->link)
		link_free(ctl->link);
	for (size_t i = 0; i < CANDIDATES; i++)
		if (ctl->cand[i])
			link_free(ctl->cand[i]);
	if (ctl->cfd >= 0) {
		loop_del(ctl->loop, ctl->cfd);
		close(ctl->cfd);
	}
	if (ctl->lfd >= 0) {
		loop_del(ctl->loop, ctl->lfd);
		close(ctl->lfd);
		net_unlisten_vsock(ctl->o.port);
	}
	free(ctl->ring);
	free(ctl);
}

bool control_linked(const struct control *ctl, const char **version)
{
	*version = ctl->peer_version;
	return ctl->link && ctl->link->hello;
}

unsigned long control_links(const struct control *ctl)
{
	return ctl->links;
}

int control_ask_stats(struct control *ctl, control_stats_fn *done, void *arg)
{
	int64_t now = loop_now();

	if (!ctl->host || !ctl->link || !ctl->link->hello || ctl->nwaiters == CONTROL_STATS_WAITERS)
		return -1;
	/* A question in flight, asked a moment ago: its answer will do for this one too. */
	bool join = false;
	for (size_t i = 0; i < ctl->nwaiters; i++)
		join |= ctl->waiters[i].seq == ctl->stats_seq;
	if (!join || now - ctl->stats_asked >= STATS_JOIN_MS) {
		if (!send_simple(ctl, MSG_STATS_REQ, ++ctl->seq))
			return -1;
		ctl->stats_seq = ctl->seq;
		ctl->stats_asked = now;
	}
	ctl->waiters[ctl->nwaiters].fn = done;
	ctl->waiters[ctl->nwaiters].arg = arg;
	ctl->waiters[ctl->nwaiters].seq = ctl->stats_seq;
	ctl->nwaiters++;
	return 0;
}

void control_cancel_stats(struct control *ctl, void *arg)
{
	size_t keep = 0;

	for (size_t i = 0; i < ctl->nwaiters; i++)
		if (ctl->waiters[i].arg != arg)
			ctl->waiters[keep++] = ctl->waiters[i];
	ctl->nwaiters = keep;
}

void control_set_app(struct control *ctl, const struct msg_app *a)
{
	ctl->has_app = true;
	ctl->app = *a;
	ctl->app_at = loop_now();
	ctl->app_pending = true;
	if (ctl->ring_n == 0)
		app_flush(ctl);
}

bool control_app(const struct control *ctl, struct msg_app *a)
{
	if (ctl->has_app)
		*a = app_now(ctl);
	return ctl->has_app;
}

bool control_drained(const struct control *ctl)
{
	return ctl->link && ctl->link->out_len == 0 && ctl->ring_n == 0 && !ctl->app_pending;
}
