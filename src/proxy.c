#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "lograte.h"
#include "message.h"
#include "net.h"
#include "proxyproto.h"
#include "relay.h"
#include "resolve.h"
#include "util.h"

/*
 * Per address tried, unless the rule's connect_timeout says otherwise: a
 * blackholed first address must not cost the whole connection.
 */
#define CONNECT_TIMEOUT_MS (CONFIG_CONNECT_TIMEOUT * 1000)
/* A name with no answer by then fails, whatever resolv.conf's timeouts. */
#define RESOLVE_TIMEOUT_MS 10000
/* An emulated vsock listener with a full backlog says EAGAIN: retry this often. */
#define CONNECT_RETRY_MS 10
#define ACCEPT_BATCH 64
/* A full rule says so at most this often, with how many it refused meanwhile. */
#define FULL_LOG_MS 1000
/* accept_proxy_protocol: a client's whole PROXY header must arrive within this. */
#define PP_HEADER_TIMEOUT_MS 5000

enum target { TARGET_VSOCK, TARGET_LOCAL_TCP, TARGET_NAME };

struct listener {
	struct proxy *px;
	const struct rule *rule;
	char label[CONFIG_RULE_NAME_LEN];
	char address[NET_IPV4_LEN]; /* enclave, outbound: where it listens */
	bool vsock; /* listens on vsock, so peers are checked by CID */
	enum target target;
	int fd;
	int64_t last_pause_log;
	struct logcount full_log; /* refusals for max_connections, said once per FULL_LOG_MS */
	struct proxy_stats stats;
};

struct proxy {
	struct loop *loop;
	struct proxy_opts opts;
	struct listener *ln;
	size_t n;
	unsigned long next_id;
	struct conn *conns; /* every open connection, so that none outlives proxy_free() */
};

/*
 * HEADER: reading the client's PROXY header (accept_proxy_protocol).
 * PREAMBLE: connected, writing what goes before the relay: our PROXY header
 * and the client's bytes that came behind its own header.
 */
enum conn_state { CONN_RESOLVING, CONN_CONNECTING, CONN_RELAYING, CONN_HEADER, CONN_PREAMBLE };

/*
 * A host half's inbound connection under a PROXY protocol key: held only until
 * the relay starts, so that other connections pay nothing for it.
 */
struct conn_pp {
	struct sockaddr_storage src, dst; /* what our header names */
	size_t in_len;			  /* read of the client's header, and what followed it */
	uint8_t in[PP_IN_MAX];
	size_t out_off, out_len; /* the preamble: our header, then the client's early bytes */
	uint8_t out[PP_OUT_MAX + PP_IN_MAX];
	size_t early; /* of out, the client's bytes */
};

struct conn {
	struct relay relay;
	struct listener *ln;
	unsigned long id;
	enum conn_state state;
	int cfd, sfd;
	int64_t start;
	struct loop_timer timer; /* connect deadline or retry; idle checks once relaying */
	unsigned retries;
	struct relay_idle idle; /* idle_timeout's watch */
	struct resolve_req *rq;
	struct conn_pp *pp; /* NULL but under a PROXY protocol key, before the relay */
	size_t early;	    /* client bytes sent in the preamble, before the relay counted any */
	struct addrinfo *ai, *cur; /* TARGET_NAME: the addresses, and the one being tried */
	struct addrinfo lit;       /* an IP literal's one address, never from the resolver */
	struct sockaddr_storage lit_ss;
	char peer[NET_ADDR_LEN];
	char far[CONFIG_STR_MAX + NET_ADDR_LEN + 4];
	struct loop_defer free_d;
	struct conn *prev, *next; /* in px->conns */
};

static void conn_attempt(struct conn *c);
static void listener_pause(struct listener *ln, const char *what, int err);

static void conn_free(struct loop_defer *d)
{
	struct conn *c = container_of(d, struct conn, free_d);

	if (c->prev)
		c->prev->next = c->next;
	else
		c->ln->px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->ai)
		freeaddrinfo(c->ai);
	free(c->pp);
	free(c);
}

static const char *hint(const struct conn *c, int err)
{
	struct proxy *px = c->ln->px;

	if (err != ECONNREFUSED && err != ECONNRESET && err != ETIMEDOUT)
		return "";
	switch (c->ln->target) {
	case TARGET_VSOCK:
		return px->opts.role == PROXY_HOST
			       ? " (is the enclave half running, with this rule in its config?)"
			       : " (is the host half running, with this rule in its config?)";
	case TARGET_LOCAL_TCP:
		return " (is the application listening there?)";
	case TARGET_NAME:
		return "";
	}
	return "";
}

/* Before the relay: stop the timer and the lookup, close whatever is open. */
static void conn_drop(struct conn *c)
{
	struct loop *l = c->ln->px->loop;

	loop_timer_stop(l, &c->timer);
	if (c->rq)
		resolve_cancel(c->rq);
	c->rq = NULL;
	if (c->sfd >= 0) {
		loop_del(l, c->sfd);
		close(c->sfd);
	}
	if (c->cfd >= 0) {
		if (c->state == CONN_HEADER)
			loop_del(l, c->cfd);
		close(c->cfd);
	}
	c->sfd = c->cfd = -1;
}

/* Give up on the far side: one line says why, and the client is closed at once. */
static void conn_give_up(struct conn *c, enum proxy_fail cause, const char *what, const char *why,
			 const char *help)
{
	struct loop *l = c->ln->px->loop;

	log_warn(c->id, "%s: %s -> %s: %s: %s%s", c->ln->label, c->peer, c->far, what, why, help);
	conn_drop(c);
	c->ln->stats.open--;
	c->ln->stats.failed++;
	c->ln->stats.failed_by[cause]++;
	loop_defer(l, &c->free_d);
}

static void conn_fail(struct conn *c, enum proxy_fail cause, const char *what, int err)
{
	conn_give_up(c, cause, what, strerror(err), hint(c, err));
}

static void conn_done(struct relay *r)
{
	struct conn *c = container_of(r, struct conn, relay);
	struct listener *ln = c->ln;
	int64_t ms = loop_now() - c->start;
	uint64_t up = r->up.bytes + c->early; /* with the client's bytes in the preamble */

	loop_timer_stop(ln->px->loop, &c->timer);
	ln->stats.open--;
	ln->stats.bytes_up += up;
	ln->stats.bytes_down += r->down.bytes;
	if (c->idle.fired) {
		log_info(c->id,
			 "%s: closed after %lld ms without a byte either way (idle_timeout %" PRIu32
			 " s); %llu bytes up, %llu down, %lld ms",
			 ln->label, (long long)(loop_now() - c->idle.since), ln->rule->idle_timeout,
			 (unsigned long long)r->up.bytes, (unsigned long long)r->down.bytes,
			 (long long)ms);
	} else if (r->err) {
		/* A client that resets or leaves is routine; trouble on the server's side is not. */
		bool routine = r->err_side == RELAY_CLIENT && (r->err == ECONNRESET || r->err == EPIPE);
		ln->stats.failed += !routine;
		ln->stats.failed_by[PROXY_FAIL_RELAY] += !routine;
		log_msg(routine ? LOG_INFO : LOG_WARN, c->id,
			"%s: closed on error from the %s side: %s; %llu bytes up, %llu down, %lld ms; "
			"up %s, down %s",
			ln->label, r->err_side == RELAY_CLIENT ? "client" : "server", strerror(r->err),
			(unsigned long long)up, (unsigned long long)r->down.bytes,
			(long long)ms, relay_pipe_mode(&r->up), relay_pipe_mode(&r->down));
	} else {
		log_info(c->id, "%s: closed; %llu bytes up, %llu down, %lld ms; up %s, down %s",
			 ln->label, (unsigned long long)up, (unsigned long long)r->down.bytes,
			 (long long)ms, relay_pipe_mode(&r->up), relay_pipe_mode(&r->down));
	}
	conn_free(&c->free_d);
}

static void conn_relay(struct conn *c)
{
	struct loop *l = c->ln->px->loop;

	if (c->pp) {
		c->early = c->pp->early;
		free(c->pp);
		c->pp = NULL;
	}
	net_tune(c->cfd);
	net_tune(c->sfd);
	if (relay_start(&c->relay, l, c->cfd, c->sfd, conn_done) != 0) {
		conn_fail(c, PROXY_FAIL_INTERNAL, "relay", errno);
		return;
	}
	c->state = CONN_RELAYING;
	log_info(c->id, "%s: %s -> %s: connected", c->ln->label, c->peer, c->far);
	relay_idle_start(&c->idle, loop_now());
	/* Without its timer (out of memory) the connection only goes without the limit. */
	if (c->ln->rule->idle_timeout)
		loop_timer_set(l, &c->timer,
			       relay_idle_first((int64_t)c->ln->rule->idle_timeout * 1000));
}

static void conn_idle_check(struct conn *c)
{
	int64_t next = relay_idle_check(&c->relay, &c->idle,
					(int64_t)c->ln->rule->idle_timeout * 1000, loop_now());
	if (next > 0)
		loop_timer_set(c->ln->px->loop, &c->timer, next);
}

/*
 * Write the preamble; the relay starts once it has all gone, so no client
 * byte can overtake it. A fresh socket takes it at once but for a short write.
 */
static void on_preamble_io(struct loop *l, int fd, short rev, void *arg)
{
	struct conn *c = arg;
	struct conn_pp *pp = c->pp;

	(void)rev;
	while (pp->out_off < pp->out_len) {
		ssize_t n = send(fd, pp->out + pp->out_off, pp->out_len - pp->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (c->state == CONN_PREAMBLE)
				return;
			/* Both, or neither: a far side that never reads must not hold us. */
			c->state = CONN_PREAMBLE;
			if (loop_add(l, fd, POLLOUT, on_preamble_io, c) != 0 ||
			    loop_timer_set(l, &c->timer, CONNECT_TIMEOUT_MS) != 0)
				conn_fail(c, PROXY_FAIL_INTERNAL, "send", errno);
			return;
		}
		if (n < 0) {
			conn_fail(c, PROXY_FAIL_CONNECT, "send", errno);
			return;
		}
		pp->out_off += (size_t)n;
	}
	if (c->state == CONN_PREAMBLE) {
		loop_timer_stop(l, &c->timer);
		loop_del(l, fd);
	}
	conn_relay(c);
}

static void conn_established(struct conn *c)
{
	struct loop *l = c->ln->px->loop;

	loop_timer_stop(l, &c->timer);
	loop_del(l, c->sfd);
	if (c->pp)
		on_preamble_io(l, c->sfd, 0, c);
	else
		conn_relay(c);
}

/* The attempt in flight failed with err: try the next address, or give up. */
static void conn_next(struct conn *c, int err)
{
	if (c->sfd >= 0) {
		loop_del(c->ln->px->loop, c->sfd);
		close(c->sfd);
		c->sfd = -1;
	}
	if (c->cur && c->cur->ai_next) {
		c->cur = c->cur->ai_next;
		conn_attempt(c);
		return;
	}
	conn_fail(c, PROXY_FAIL_CONNECT, "connect", err);
}

static void on_connect_io(struct loop *l, int fd, short rev, void *arg)
{
	struct conn *c = arg;

	(void)l, (void)rev;
	int err = net_connect_result(fd);
	if (err == 0)
		conn_established(c);
	else
		conn_next(c, err);
}

static void on_conn_timer(struct loop *l, struct loop_timer *t)
{
	struct conn *c = container_of(t, struct conn, timer);

	(void)l;
	if (c->state == CONN_RELAYING)
		conn_idle_check(c);
	else if (c->state == CONN_HEADER)
		conn_give_up(c, PROXY_FAIL_HEADER, "PROXY header", "none within 5 s", ""); /* PP_HEADER_TIMEOUT_MS */
	else if (c->state == CONN_PREAMBLE)
		conn_fail(c, PROXY_FAIL_CONNECT, "send", ETIMEDOUT);
	else if (c->state == CONN_CONNECTING && c->sfd < 0)
		conn_attempt(c); /* the backlog-full retry */
	else
		conn_next(c, ETIMEDOUT);
}

static socklen_t conn_addr(struct conn *c, struct sockaddr_storage *ss)
{
	const struct rule *r = c->ln->rule;
	struct proxy *px = c->ln->px;

	switch (c->ln->target) {
	case TARGET_VSOCK:
		return net_vsock_addr(px->opts.peer_cid, r->vsock_port, ss);
	case TARGET_LOCAL_TCP: {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		memset(ss, 0, sizeof(*ss));
		sin->sin_family = AF_INET;
		sin->sin_port = htons(r->enclave_port);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*sin);
	}
	case TARGET_NAME:
		memcpy(ss, c->cur->ai_addr, c->cur->ai_addrlen);
		return c->cur->ai_addrlen;
	}
	return 0;
}

/* Every connect this half makes for the rule, to a vsock port, the app or a far address. */
static int64_t connect_ms(const struct conn *c)
{
	uint32_t s = c->ln->rule->connect_timeout;

	return s ? (int64_t)s * 1000 : CONNECT_TIMEOUT_MS;
}

static void conn_attempt(struct conn *c)
{
	struct loop *l = c->ln->px->loop;
	struct sockaddr_storage ss;
	socklen_t len = conn_addr(c, &ss);
	bool pending;

	c->state = CONN_CONNECTING;
	if (c->ln->target == TARGET_NAME) {
		char addr[NET_ADDR_LEN];
		net_addr_str((struct sockaddr *)&ss, len, addr, sizeof(addr));
		snprintf(c->far, sizeof(c->far), "%s (%s)", c->ln->rule->hostname, addr);
	}
	c->sfd = net_connect((struct sockaddr *)&ss, len, &pending);
	if (c->sfd < 0) {
		int err = errno; /* the pause below logs, and a log sink may leave its own errno */
		/* No fd for the far side: this client waits, and no new one is taken meanwhile. */
		bool no_fd = err == EMFILE || err == ENFILE;
		if (no_fd)
			listener_pause(c->ln, "connect", err);
		/* A retry with no timer would never come: fail now, not hold the client. */
		if ((err == EAGAIN || no_fd) && ++c->retries < connect_ms(c) / CONNECT_RETRY_MS &&
		    loop_timer_set(l, &c->timer, CONNECT_RETRY_MS) == 0)
			return;
		conn_next(c, err);
		return;
	}
	if (!pending) {
		conn_established(c);
		return;
	}
	/* Both, or neither: without its timer a connect to a silent peer could wait forever. */
	if (loop_add(l, c->sfd, POLLOUT, on_connect_io, c) != 0 ||
	    loop_timer_set(l, &c->timer, connect_ms(c)) != 0)
		conn_next(c, errno);
}

static void on_resolved(void *arg, struct addrinfo *ai, const char *err)
{
	struct conn *c = arg;

	c->rq = NULL;
	if (err) {
		conn_give_up(c, PROXY_FAIL_RESOLVE, "resolve", err, "");
		return;
	}
	c->ai = c->cur = ai;
	conn_attempt(c);
}

/* Our header, if the rule sends one, then the client's bytes that came behind its own. */
static void conn_pp_preamble(struct conn *c, const uint8_t *early, size_t n)
{
	struct conn_pp *pp = c->pp;
	uint8_t v = c->ln->rule->proxy_protocol;

	pp->out_len = v == PP_NONE ? 0
				   : pp_encode(v, (struct sockaddr *)&pp->src,
					       (struct sockaddr *)&pp->dst, pp->out, PP_OUT_MAX);
	if (n > 0)
		memcpy(pp->out + pp->out_len, early, n);
	pp->out_len += n;
	pp->early = n;
}

static void on_header_io(struct loop *l, int fd, short rev, void *arg)
{
	struct conn *c = arg;
	struct conn_pp *pp = c->pp;
	struct pp_header h;
	char why[PP_ERR_LEN];

	(void)rev;
	ssize_t n = read(fd, pp->in + pp->in_len, sizeof(pp->in) - pp->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n < 0) {
		conn_fail(c, PROXY_FAIL_HEADER, "PROXY header", errno);
		return;
	}
	if (n == 0) {
		conn_give_up(c, PROXY_FAIL_HEADER, "PROXY header",
			     pp->in_len ? "the client closed in the middle of it"
					: "the client closed before sending one",
			     "");
		return;
	}
	pp->in_len += (size_t)n;
	/* The parser says 0 only below PP_IN_MAX: the buffer cannot fill without an answer. */
	long len = pp_parse(pp->in, pp->in_len, &h, why, sizeof(why));
	if (len < 0) {
		conn_give_up(c, PROXY_FAIL_HEADER, "PROXY header", why, "");
		return;
	}
	if (len == 0)
		return;
	loop_timer_stop(l, &c->timer);
	loop_del(l, fd);
	if (!h.local) {
		/* "[IPv6]:port" takes at most 54 bytes: both fit in c->peer. */
		char orig[60], via[60];
		net_addr_str((struct sockaddr *)&pp->src, sizeof(pp->src), via, sizeof(via));
		net_addr_str((struct sockaddr *)&h.src, sizeof(h.src), orig, sizeof(orig));
		snprintf(c->peer, sizeof(c->peer), "%s via %s", orig, via);
		pp->src = h.src;
		pp->dst = h.dst;
	}
	conn_pp_preamble(c, pp->in + len, pp->in_len - (size_t)len);
	conn_attempt(c);
}

/*
 * A host half's inbound rule with a PROXY protocol key. Our header names the
 * client and the address it reached, unless the client's own header (under
 * accept_proxy_protocol) names others. 0 when the connection goes on.
 */
static int conn_pp_start(struct conn *c, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct loop *l = c->ln->px->loop;
	socklen_t len = sizeof(struct sockaddr_storage);

	c->pp = calloc(1, sizeof(*c->pp));
	if (!c->pp) {
		conn_fail(c, PROXY_FAIL_INTERNAL, "PROXY protocol", ENOMEM);
		return -1;
	}
	memcpy(&c->pp->src, peer, plen);
	if (getsockname(c->cfd, (struct sockaddr *)&c->pp->dst, &len) != 0) {
		conn_fail(c, PROXY_FAIL_INTERNAL, "getsockname", errno);
		return -1;
	}
	if (!c->ln->rule->accept_proxy_protocol) {
		conn_pp_preamble(c, NULL, 0);
		return 0;
	}
	/* Both, or neither: a client that never sends its header must not hold us. */
	c->state = CONN_HEADER;
	if (loop_add(l, c->cfd, POLLIN, on_header_io, c) != 0 ||
	    loop_timer_set(l, &c->timer, PP_HEADER_TIMEOUT_MS) != 0) {
		conn_fail(c, PROXY_FAIL_INTERNAL, "PROXY header", errno);
		return -1;
	}
	return 0;
}

static void conn_start(struct listener *ln, int fd, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct proxy *px = ln->px;
	const struct rule *r = ln->rule;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		log_warn(0, "%s: dropping a connection: out of memory", ln->label);
		close(fd);
		return;
	}
	c->ln = ln;
	c->id = ++px->next_id;
	c->next = px->conns;
	if (px->conns)
		px->conns->prev = c;
	px->conns = c;
	c->cfd = fd;
	c->sfd = -1;
	c->start = loop_now();
	c->free_d.fn = conn_free;
	loop_timer_init(&c->timer, on_conn_timer);
	net_addr_str((const struct sockaddr *)peer, plen, c->peer, sizeof(c->peer));
	ln->stats.open++;
	ln->stats.total++;

	switch (ln->target) {
	case TARGET_VSOCK:
		snprintf(c->far, sizeof(c->far), "vsock %u:%u", px->opts.peer_cid, r->vsock_port);
		/* Only the host half acts: the enclave half passes the header on as bytes. */
		if (px->opts.role == PROXY_HOST &&
		    (r->proxy_protocol != PP_NONE || r->accept_proxy_protocol)) {
			if (conn_pp_start(c, peer, plen) != 0 || c->state == CONN_HEADER)
				return;
		}
		conn_attempt(c);
		return;
	case TARGET_LOCAL_TCP:
		snprintf(c->far, sizeof(c->far), "127.0.0.1:%u", r->enclave_port);
		conn_attempt(c);
		return;
	case TARGET_NAME:
		break;
	}
	snprintf(c->far, sizeof(c->far), "%s:%u", r->hostname, r->tcp_port);
	socklen_t len = net_ip_literal(r->hostname, r->tcp_port, &c->lit_ss);
	if (len > 0) {
		c->lit.ai_addr = (struct sockaddr *)&c->lit_ss;
		c->lit.ai_addrlen = len;
		c->cur = &c->lit;
		conn_attempt(c);
		return;
	}
	c->state = CONN_RESOLVING;
	c->rq = resolve_start(px->loop, r->hostname, r->tcp_port, px->opts.family,
			      RESOLVE_TIMEOUT_MS, on_resolved, c);
	if (!c->rq)
		conn_fail(c, PROXY_FAIL_RESOLVE, "resolve", errno);
}

/* Say that ln is paused, once in a while: each pause is short, the trouble may last. */
static void listener_paused(struct listener *ln, const char *what, int err)
{
	int64_t now = loop_now();

	if (now - ln->last_pause_log >= 10000) {
		log_warn(0, "%s: %s: %s; pausing accepts for %d ms", ln->label, what, strerror(err),
			 NET_ACCEPT_PAUSE_MS);
		ln->last_pause_log = now;
	}
}

/*
 * Out of fds or memory: stop taking new clients for a while. Those waiting in
 * the listen queue stay there, to be served when fds free up, rather than be
 * accepted only to be closed.
 */
static void listener_pause(struct listener *ln, const char *what, int err)
{
	loop_pause(ln->px->loop, ln->fd, NET_ACCEPT_PAUSE_MS);
	listener_paused(ln, what, err);
}

/*
 * A rule at its max_connections: the client is closed at once rather than left
 * to wait in the queue, and the listener goes on serving; the refusals are said
 * at most once per FULL_LOG_MS, each line with their count since the last.
 */
static void listener_refuse(struct listener *ln, int fd, const struct sockaddr_storage *peer,
			    socklen_t plen)
{
	char who[NET_ADDR_LEN];
	unsigned long n;

	close(fd);
	ln->stats.refused++;
	if (!logcount_say(&ln->full_log, loop_now(), FULL_LOG_MS, &n))
		return;
	log_warn(0, "%s: refused %s: max_connections %" PRIu32 " open; %lu refused since last said",
		 ln->label, net_addr_str((const struct sockaddr *)peer, plen, who, sizeof(who)),
		 ln->rule->max_connections, n);
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct listener *ln = arg;

	(void)rev;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen;
		int cfd = net_accept_or_pause(l, fd, &peer, &plen);
		if (cfd < 0) {
			if (errno == ECONNABORTED || errno == EPROTO)
				continue; /* that client is gone; the next may be waiting */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				listener_paused(ln, "accept", errno);
			return;
		}
		if (ln->vsock && !net_vsock_peer_ok((struct sockaddr *)&peer, ln->px->opts.peer_cid)) {
			char who[NET_ADDR_LEN];
			log_warn(0, "%s: refused %s: only CID %u may connect", ln->label,
				 net_addr_str((struct sockaddr *)&peer, plen, who, sizeof(who)),
				 ln->px->opts.peer_cid);
			close(cfd);
			continue;
		}
		if (ln->rule->max_connections && ln->stats.open >= ln->rule->max_connections) {
			listener_refuse(ln, cfd, &peer, plen);
			continue;
		}
		conn_start(ln, cfd, &peer, plen);
	}
}

struct proxy *proxy_new(struct loop *l, const struct config *c, const struct proxy_opts *o)
{
	struct proxy *px = calloc(1, sizeof(*px));

	if (!px)
		return NULL;
	px->ln = calloc(c->nrules ? c->nrules : 1, sizeof(*px->ln));
	if (!px->ln) {
		free(px);
		return NULL;
	}
	px->loop = l;
	px->opts = *o;
	px->n = c->nrules;
	for (size_t i = 0; i < px->n; i++) {
		struct listener *ln = &px->ln[i];
		const struct rule *r = &c->rules[i];
		bool host = o->role == PROXY_HOST;
		ln->px = px;
		ln->rule = r;
		ln->fd = -1;
		ln->last_pause_log = -10000;
		config_rule_name(r, ln->label, sizeof(ln->label));
		if (r->dir == RULE_INBOUND) {
			ln->vsock = !host;
			ln->target = host ? TARGET_VSOCK : TARGET_LOCAL_TCP;
		} else {
			ln->vsock = host;
			ln->target = host ? TARGET_NAME : TARGET_VSOCK;
			net_ipv4_str(r->enclave_address ? r->enclave_address : INADDR_LOOPBACK,
				     ln->address);
		}
	}
	return px;
}

int proxy_listen(struct proxy *px, char *err, size_t errlen)
{
	char why[NET_ERR_LEN];

	for (size_t i = 0; i < px->n; i++) {
		struct listener *ln = &px->ln[i];
		const struct rule *r = ln->rule;
		if (ln->vsock)
			ln->fd = net_listen_vsock(r->vsock_port, why, sizeof(why));
		else if (r->dir == RULE_INBOUND)
			ln->fd = net_listen_tcp("0.0.0.0", r->host_port, why, sizeof(why));
		else
			ln->fd = net_listen_tcp(ln->address, r->tcp_port, why, sizeof(why));
		if (ln->fd >= 0 && loop_add(px->loop, ln->fd, POLLIN, on_accept, ln) != 0) {
			snprintf(why, sizeof(why), "%s", strerror(errno));
			close(ln->fd);
			ln->fd = -1;
		}
		if (ln->fd < 0) {
			snprintf(err, errlen, "%s (config line %d): %s", ln->label, r->line, why);
			proxy_close(px);
			return -1;
		}
	}
	return 0;
}

void proxy_close(struct proxy *px)
{
	for (size_t i = 0; i < px->n; i++) {
		struct listener *ln = &px->ln[i];
		if (ln->fd < 0)
			continue;
		loop_del(px->loop, ln->fd);
		close(ln->fd);
		ln->fd = -1;
		if (ln->vsock)
			net_unlisten_vsock(ln->rule->vsock_port);
	}
}

/* At exit: every connection closed and freed now, wherever it was; none left queued in the loop. */
static void conn_destroy(struct conn *c)
{
	if (c->state == CONN_RELAYING) {
		loop_timer_stop(c->ln->px->loop, &c->timer);
		relay_discard(&c->relay); /* closes both fds */
	} else
		conn_drop(c);
	loop_undefer(c->ln->px->loop, &c->free_d);
	conn_free(&c->free_d);
}

void proxy_free(struct proxy *px)
{
	if (!px)
		return;
	while (px->conns)
		conn_destroy(px->conns);
	proxy_close(px);
	free(px->ln);
	free(px);
}

const char *const proxy_fail_names[PROXY_FAILS] = {
    [PROXY_FAIL_CONNECT] = "connect",	  [PROXY_FAIL_RESOLVE] = "resolve",
    [PROXY_FAIL_HEADER] = "proxy_header", [PROXY_FAIL_RELAY] = "relay",
    [PROXY_FAIL_INTERNAL] = "internal",
};

size_t proxy_rules(const struct proxy *px)
{
	return px->n;
}

const struct proxy_stats *proxy_stats(const struct proxy *px, size_t i)
{
	return &px->ln[i].stats;
}

void proxy_stats_msg(const struct proxy *px, struct msg_stat *out)
{
	for (size_t i = 0; i < px->n; i++) {
		const struct listener *ln = &px->ln[i];
		out[i] = (struct msg_stat){
		    .vsock_port = ln->rule->vsock_port,
		    .open = ln->stats.open,
		    .total = ln->stats.total,
		    .failed = ln->stats.failed,
		    .bytes_up = ln->stats.bytes_up,
		    .bytes_down = ln->stats.bytes_down,
		    .refused = ln->stats.refused,
		    .limit = ln->rule->max_connections,
		};
	}
	/* At its close a connection adds these same figures to its rule's: no step back. */
	for (const struct conn *c = px->conns; c; c = c->next) {
		if (c->state != CONN_RELAYING)
			continue;
		struct msg_stat *st = &out[c->ln - px->ln];
		st->bytes_up += c->relay.up.bytes + c->early;
		st->bytes_down += c->relay.down.bytes;
	}
}
