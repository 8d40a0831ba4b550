#include "egress.h"

#include <errno.h>
#include <ifaddrs.h>
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
#include "relay.h"
#include "resolve.h"
#include "util.h"

/* A name with no answer by then fails, whatever resolv.conf's timeouts. */
#define RESOLVE_TIMEOUT_MS 10000
#define ACCEPT_BATCH 64
/* This host's own addresses, as many as are looked at, and how long they are trusted. */
#define OWN_MAX 64
#define OWN_REFRESH_MS 1000

const char *egress_dest_str(const char *host, uint16_t port, char *buf, size_t size)
{
	bool v6 = strchr(host, ':') != NULL;

	snprintf(buf, size, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
	return buf;
}

struct egress_dest *egress_stats_get(struct egress_stats *s, const char *host, uint16_t port)
{
	char name[EGRESS_DEST_LEN];

	egress_dest_str(host, port, name, sizeof(name));
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i]->name, name) == 0)
			return s->v[i];
	snprintf(s->others.name, sizeof(s->others.name), "(others)");
	if (s->n == EGRESS_DESTS_MAX)
		return &s->others;
	struct egress_dest **v = array_grow(s->v, &s->cap, s->n + 1, sizeof(*v));
	if (!v)
		return &s->others;
	s->v = v;
	struct egress_dest *d = calloc(1, sizeof(*d));
	if (!d)
		return &s->others;
	memcpy(d->name, name, sizeof(name));
	s->v[s->n++] = d;
	return d;
}

static bool busier(const struct egress_dest *a, const struct egress_dest *b)
{
	if (a->total != b->total)
		return a->total > b->total;
	return a->bytes_up + a->bytes_down > b->bytes_up + b->bytes_down;
}

size_t egress_stats_top(const struct egress_stats *s, const struct egress_dest **out, size_t max)
{
	size_t n = 0;

	/* An insertion into a short sorted list: max is small, entries at most a few hundred. */
	for (size_t i = 0; i <= s->n; i++) {
		const struct egress_dest *d = i < s->n ? s->v[i] : &s->others;
		if (d->total == 0 && d->denied == 0)
			continue;
		size_t at = n < max ? n : max;
		while (at > 0 && busier(d, out[at - 1]))
			at--;
		if (at >= max)
			continue;
		size_t last = n < max ? n : max - 1;
		memmove(&out[at + 1], &out[at], (last - at) * sizeof(*out));
		out[at] = d;
		if (n < max)
			n++;
	}
	return n;
}

long egress_stats_msg(const struct egress_stats *s, size_t max, struct msg_egress **out)
{
	const struct egress_dest *top[MSG_EGRESS_MAX];
	size_t n = s ? egress_stats_top(s, top, max < MSG_EGRESS_MAX ? max : MSG_EGRESS_MAX) : 0;

	*out = NULL;
	if (n == 0)
		return 0;
	*out = calloc(n, sizeof(**out));
	if (!*out)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct msg_egress *e = &(*out)[i];
		snprintf(e->dest, sizeof(e->dest), "%s", top[i]->name);
		e->open = top[i]->open;
		e->total = top[i]->total;
		e->denied = top[i]->denied;
		e->refused = top[i]->refused;
		e->bytes_up = top[i]->bytes_up;
		e->bytes_down = top[i]->bytes_down;
	}
	return (long)n;
}

void egress_stats_free(struct egress_stats *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int egress_connect(struct loop *l, const struct sockaddr *sa, socklen_t len, int *fd,
		   loop_io_fn *fn, void *arg, struct loop_timer *t, int64_t ms)
{
	bool pending;

	*fd = net_connect(sa, len, &pending);
	if (*fd < 0)
		return -1;
	if (!pending)
		return 1;
	/* Both, or neither: without its timer a connect to a silent peer could wait forever. */
	if (loop_add(l, *fd, POLLOUT, fn, arg) != 0 || loop_timer_set(l, t, ms) != 0)
		return -1;
	return 0;
}

enum econn_state { EC_REQUEST, EC_RESOLVING, EC_CONNECTING, EC_RELAYING };

struct econn {
	struct relay relay;
	struct egress_server *s;
	unsigned long id;
	enum econn_state state;
	int cfd, sfd;
	int64_t start;
	struct loop_timer timer; /* the request's deadline, then each connect's */
	struct resolve_req *rq;
	struct addrinfo *ai, *cur;
	struct addrinfo lit;
	struct sockaddr_storage lit_ss;
	uint8_t in[4 + EGRESS_FRAME_MAX];
	size_t in_len;
	struct egress_req req;
	char host[POLICY_NAME_MAX + 1]; /* req.host as the policy sees it */
	char dest[EGRESS_DEST_LEN];
	char rule[EGRESS_RULE_MAX]; /* the allow entry, and its line */
	char addr[NET_ADDR_LEN];
	char refused[EGRESS_REASON_MAX]; /* why the addresses were passed over, "" when none was */
	int refused_status;
	bool admitted; /* counted in open: under max_connections */
	struct relay_idle idle;
	struct egress_dest *stat;
	struct loop_defer free_d;
	struct econn *prev, *next;
};

struct egress_server {
	struct loop *loop;
	const struct config *cfg;
	struct proxy_opts opts;
	int fd;
	unsigned long next_id;
	struct econn *conns;
	/*
	 * With max_connections: open counts the connections let past their request;
	 * live counts all, and those past 2 x max_connections are closed at accept,
	 * so that requests refused for being over the limit are bounded too.
	 */
	size_t open, live;
	struct logcount busy_log; /* their refusals, said once a second */
	struct egress_stats stats;
	int64_t last_pause_log;
	struct sockaddr_storage own[OWN_MAX]; /* this host's addresses, read at own_at */
	size_t nown;
	int64_t own_at;
};

static void econn_attempt(struct econn *c);

static void econn_free(struct loop_defer *d)
{
	struct econn *c = container_of(d, struct econn, free_d);

	loop_timer_stop(c->s->loop, &c->timer); /* an idle check's, when the server goes first */
	if (c->prev)
		c->prev->next = c->next;
	else
		c->s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->ai)
		freeaddrinfo(c->ai);
	c->s->live--;
	c->s->open -= c->admitted;
	free(c);
}

/* Refusals for max_connections, said at most once a second, each line with the count since. */
static void busy_said(struct egress_server *s, const char *what)
{
	unsigned long n;

	if (logcount_say(&s->busy_log, loop_now(), 1000, &n))
		log_warn(0, "egress: %s: max_connections %" PRIu32 " open; %lu refused since last said",
			 what, s->cfg->egress_max_connections, n);
}

/* Before the relay: stop the timer and the lookup, close whatever is open. */
static void econn_drop(struct econn *c)
{
	struct loop *l = c->s->loop;

	loop_timer_stop(l, &c->timer);
	if (c->rq)
		resolve_cancel(c->rq);
	c->rq = NULL;
	if (c->sfd >= 0) {
		loop_del(l, c->sfd);
		close(c->sfd);
	}
	if (c->cfd >= 0) {
		loop_del(l, c->cfd);
		close(c->cfd);
	}
	c->sfd = c->cfd = -1;
}

/* Send the reply on the fresh vsock socket, whose buffer takes it whole; false if not. */
static bool econn_reply(struct econn *c, unsigned status, const char *reason)
{
	struct egress_reply r = {.status = status};
	uint8_t buf[4 + EGRESS_FRAME_MAX];

	snprintf(r.reason, sizeof(r.reason), "%s", reason);
	snprintf(r.addr, sizeof(r.addr), "%s", c->addr);
	snprintf(r.rule, sizeof(r.rule), "%s", c->rule);
	size_t n = egress_reply_encode(&r, buf, sizeof(buf));
	return n > 0 && send(c->cfd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n;
}

/* The request fails: the enclave half hears why, the log says it, and the connection ends. */
static void econn_fail(struct econn *c, unsigned status, const char *why)
{
	struct egress_server *s = c->s;
	bool denied = status == EGRESS_DENIED || status == EGRESS_BAD;

	log_msg(denied ? LOG_WARN : LOG_INFO, c->id, "egress %s: %s: %s",
		c->dest[0] ? c->dest : "request", egress_status_name(status), why);
	econn_reply(c, status, why);
	econn_drop(c);
	if (c->stat) {
		c->stat->open--;
		c->stat->denied += denied;
	}
	loop_defer(s->loop, &c->free_d);
}

static void econn_done(struct relay *r)
{
	struct econn *c = container_of(r, struct econn, relay);

	/* up: from the enclave, which is the relay's client side, to the destination. */
	loop_timer_stop(c->s->loop, &c->timer);
	c->stat->open--;
	c->stat->bytes_up += r->up.bytes;
	c->stat->bytes_down += r->down.bytes;
	if (c->idle.fired)
		log_info(c->id,
			 "egress %s (%s): closed after %lld ms without a byte either way "
			 "(idle_timeout %" PRIu32 " s); %llu bytes up, %llu down, %lld ms",
			 c->dest, c->addr, (long long)(loop_now() - c->idle.since),
			 c->s->cfg->egress_idle_timeout, (unsigned long long)r->up.bytes,
			 (unsigned long long)r->down.bytes, (long long)(loop_now() - c->start));
	else
		log_info(c->id, "egress %s (%s): closed%s%s; %llu bytes up, %llu down, %lld ms",
			 c->dest, c->addr, r->err ? " on error: " : "",
			 r->err ? strerror(r->err) : "", (unsigned long long)r->up.bytes,
			 (unsigned long long)r->down.bytes, (long long)(loop_now() - c->start));
	econn_free(&c->free_d);
}

static void econn_established(struct econn *c)
{
	struct loop *l = c->s->loop;

	loop_timer_stop(l, &c->timer);
	loop_del(l, c->sfd);
	if (!econn_reply(c, EGRESS_OK, "")) {
		econn_fail(c, EGRESS_REFUSED, "the enclave half did not take the reply");
		return;
	}
	net_tune(c->sfd);
	if (relay_start(&c->relay, l, c->cfd, c->sfd, econn_done) != 0) {
		econn_fail(c, EGRESS_REFUSED, strerror(errno));
		return;
	}
	c->state = EC_RELAYING;
	log_info(c->id, "egress %s (%s): connected, allowed by %s", c->dest, c->addr, c->rule);
	relay_idle_start(&c->idle, loop_now());
	/* Without its timer (out of memory) the connection only goes without the limit. */
	if (c->s->cfg->egress_idle_timeout)
		loop_timer_set(l, &c->timer,
			       relay_idle_first((int64_t)c->s->cfg->egress_idle_timeout * 1000));
}

/*
 * This host's own addresses, for the check that no name leads back to it: read
 * again at most once a second (a netlink dump per connection would cost more than
 * the rest of its setup), so an address added just now is refused a second late.
 */
static size_t own_addresses(struct egress_server *s)
{
	struct sockaddr_storage *own = s->own;
	struct ifaddrs *ifa, *i;
	size_t n = 0, max = OWN_MAX;

	if (loop_now() - s->own_at < OWN_REFRESH_MS)
		return s->nown;
	if (getifaddrs(&ifa) != 0)
		return s->nown;
	for (i = ifa; i && n < max; i = i->ifa_next) {
		if (!i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		memset(&own[n], 0, sizeof(own[n]));
		memcpy(&own[n], i->ifa_addr,
		       i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
							 : sizeof(struct sockaddr_in6));
		n++;
	}
	freeifaddrs(ifa);
	s->own_at = loop_now();
	return s->nown = n;
}

/*
 * May c->cur be connected to? The name was allowed; the address must be too.
 * If not, c->refused says why (for the first one refused).
 */
static bool econn_address_ok(struct econn *c, const struct sockaddr_storage *own, size_t nown)
{
	const struct policy_entry *rule;
	enum policy_special sp;
	char addr[NET_ADDR_LEN], entry[POLICY_ENTRY_LEN];
	enum policy_verdict v =
	    policy_check_addr(&c->s->cfg->egress, c->cur->ai_addr, own, nown, &sp, &rule);

	if (v == POLICY_ALLOWED) {
		/* A special address is opened by an entry of its own: the one that matters. */
		if (rule)
			snprintf(c->rule, sizeof(c->rule), "\"%s\" (line %d)",
				 policy_entry_str(rule, entry, sizeof(entry)), rule->line);
		return true;
	}
	net_addr_str(c->cur->ai_addr, c->cur->ai_addrlen, addr, sizeof(addr));
	if (c->refused[0])
		return false;
	if (v == POLICY_DENIED)
		snprintf(c->refused, sizeof(c->refused), "address %s denied by \"%s\" (line %d)",
			 addr, policy_entry_str(rule, entry, sizeof(entry)), rule->line);
	else
		snprintf(c->refused, sizeof(c->refused),
			 "address %s is %s, and no allow entry names it", addr,
			 policy_special_name(sp));
	return false;
}

/* From c->cur on, the next address the policy lets us use; false when none is left. */
static bool econn_next_usable(struct econn *c)
{
	size_t nown = own_addresses(c->s);

	for (; c->cur; c->cur = c->cur->ai_next)
		if (econn_address_ok(c, c->s->own, nown))
			return true;
	return false;
}

/* The attempt in flight failed with err: try the next address, or give up. */
static void econn_next(struct econn *c, int err)
{
	char why[EGRESS_REASON_MAX];

	if (c->sfd >= 0) {
		loop_del(c->s->loop, c->sfd);
		close(c->sfd);
		c->sfd = -1;
	}
	c->cur = c->cur->ai_next;
	if (c->cur && econn_next_usable(c)) {
		econn_attempt(c);
		return;
	}
	snprintf(why, sizeof(why), "connect %s: %s", c->addr, strerror(err));
	econn_fail(c, err == ETIMEDOUT ? EGRESS_TIMEOUT : EGRESS_REFUSED, why);
}

static void on_connect_io(struct loop *l, int fd, short rev, void *arg)
{
	struct econn *c = arg;

	(void)l, (void)rev;
	int err = net_connect_result(fd);
	if (err == 0)
		econn_established(c);
	else
		econn_next(c, err);
}

static int64_t connect_ms(const struct econn *c)
{
	uint32_t s = c->s->cfg->egress_connect_timeout;

	return (int64_t)(s ? s : CONFIG_CONNECT_TIMEOUT) * 1000;
}

static void econn_attempt(struct econn *c)
{
	c->state = EC_CONNECTING;
	net_addr_str(c->cur->ai_addr, c->cur->ai_addrlen, c->addr, sizeof(c->addr));
	int r = egress_connect(c->s->loop, c->cur->ai_addr, c->cur->ai_addrlen, &c->sfd,
			       on_connect_io, c, &c->timer, connect_ms(c));
	if (r < 0)
		econn_next(c, errno);
	else if (r > 0)
		econn_established(c);
}

/* The addresses to try, from c->ai on: the first usable one, or the reply saying why none. */
static void econn_try(struct econn *c)
{
	if (!econn_next_usable(c)) {
		econn_fail(c, c->refused_status, c->refused);
		return;
	}
	econn_attempt(c);
}

static void on_resolved(void *arg, struct addrinfo *ai, const char *err)
{
	struct econn *c = arg;
	char why[EGRESS_REASON_MAX];

	c->rq = NULL;
	if (err) {
		snprintf(why, sizeof(why), "resolve %s: %s", c->host, err);
		econn_fail(
		    c, strncmp(err, "no answer within", 16) == 0 ? EGRESS_TIMEOUT : EGRESS_NO_NAME,
		    why);
		return;
	}
	c->ai = c->cur = ai;
	/* An address refused after a name was allowed: the name is no way around it. */
	c->refused_status = EGRESS_REFUSED;
	econn_try(c);
}

/* A whole request has come: check it as the policy says, then look up or connect. */
static void econn_request(struct econn *c)
{
	struct egress_server *s = c->s;
	const struct policy_entry *rule;
	char why[EGRESS_REASON_MAX], entry[POLICY_ENTRY_LEN];

	if (policy_normalize(c->req.host, c->host) != 0) {
		char shown[POLICY_SHOWN_LEN];
		snprintf(why, sizeof(why), "%s is not a hostname or IP address",
			 policy_shown(c->req.host, shown));
		econn_fail(c, EGRESS_BAD, why);
		return;
	}
	egress_dest_str(c->host, c->req.port, c->dest, sizeof(c->dest));
	c->stat = egress_stats_get(&s->stats, c->host, c->req.port);
	c->stat->open++;
	c->stat->total++;
	enum policy_verdict v = policy_check_name(&s->cfg->egress, c->host, c->req.port, &rule);
	if (v != POLICY_ALLOWED) {
		if (rule)
			snprintf(why, sizeof(why), "\"%s\" (line %d) denies it",
				 policy_entry_str(rule, entry, sizeof(entry)), rule->line);
		else
			snprintf(why, sizeof(why), "no allow entry matches");
		econn_fail(c, EGRESS_DENIED, why);
		return;
	}
	snprintf(c->rule, sizeof(c->rule), "\"%s\" (line %d)",
		 policy_entry_str(rule, entry, sizeof(entry)), rule->line);
	uint32_t max = s->cfg->egress_max_connections;
	if (max && s->open >= max) {
		snprintf(why, sizeof(why), "max_connections %" PRIu32 " open in the host half", max);
		econn_reply(c, EGRESS_BUSY, why);
		econn_drop(c);
		c->stat->open--;
		c->stat->refused++;
		snprintf(why, sizeof(why), "refused %s", c->dest);
		busy_said(s, why);
		loop_defer(s->loop, &c->free_d);
		return;
	}
	c->admitted = true;
	s->open++;
	socklen_t len = net_ip_literal(c->host, c->req.port, &c->lit_ss);
	if (len > 0) {
		/* An IP literal is allowed by its address: a special one is a denial too. */
		c->lit.ai_addr = (struct sockaddr *)&c->lit_ss;
		c->lit.ai_addrlen = len;
		c->cur = &c->lit;
		c->refused_status = EGRESS_DENIED;
		econn_try(c);
		return;
	}
	c->state = EC_RESOLVING;
	c->rq = resolve_start(s->loop, c->host, c->req.port, s->opts.family, RESOLVE_TIMEOUT_MS,
			      on_resolved, c);
	if (!c->rq)
		econn_fail(c, EGRESS_REFUSED, strerror(errno));
}

/* Read the request's frame, and not a byte past it: what follows belongs to the relay. */
static void on_request_io(struct loop *l, int fd, short rev, void *arg)
{
	struct econn *c = arg;
	char why[EGRESS_REASON_MAX];

	(void)rev;
	long want = egress_frame_len(c->in, c->in_len);
	if (want < 0) {
		econn_fail(c, EGRESS_BAD, "request frame is empty or longer than 1024 bytes");
		return;
	}
	size_t need = want ? (size_t)want - c->in_len : 4 - c->in_len;
	ssize_t n = read(fd, c->in + c->in_len, need);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		econn_fail(c, EGRESS_BAD,
			   n < 0 ? strerror(errno) : "the enclave half closed before its request");
		return;
	}
	c->in_len += (size_t)n;
	want = egress_frame_len(c->in, c->in_len);
	if (want < 0) {
		econn_fail(c, EGRESS_BAD, "request frame is empty or longer than 1024 bytes");
		return;
	}
	if (want == 0 || c->in_len < (size_t)want)
		return;
	strcpy(why, "bad request: ");
	if (egress_req_decode(c->in + 4, c->in_len - 4, &c->req, why + 13, sizeof(why) - 13) != 0) {
		econn_fail(c, EGRESS_BAD, why);
		return;
	}
	loop_timer_stop(l, &c->timer);
	loop_del(l, fd);
	econn_request(c);
}

static void on_econn_timer(struct loop *l, struct loop_timer *t)
{
	struct econn *c = container_of(t, struct econn, timer);

	if (c->state == EC_RELAYING) {
		int64_t next = relay_idle_check(
		    &c->relay, &c->idle, (int64_t)c->s->cfg->egress_idle_timeout * 1000, loop_now());
		if (next > 0)
			loop_timer_set(l, &c->timer, next);
	} else if (c->state == EC_REQUEST) {
		econn_fail(c, EGRESS_BAD, "no whole request within 5 s");
	} else {
		econn_next(c, ETIMEDOUT);
	}
}

static void econn_start(struct egress_server *s, int fd)
{
	uint32_t max = s->cfg->egress_max_connections;
	if (max && s->live >= 2 * (size_t)max) {
		close(fd);
		busy_said(s, "closed a connection at once, before its request");
		return;
	}
	struct econn *c = calloc(1, sizeof(*c));

	if (!c) {
		log_warn(0, "egress: dropping a connection: out of memory");
		close(fd);
		return;
	}
	s->live++;
	c->s = s;
	c->id = ++s->next_id;
	c->cfd = fd;
	c->sfd = -1;
	c->start = loop_now();
	c->free_d.fn = econn_free;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	loop_timer_init(&c->timer, on_econn_timer);
	/* Both, or neither: a peer that never sends its request must not hold us. */
	if (loop_add(s->loop, fd, POLLIN, on_request_io, c) != 0 ||
	    loop_timer_set(s->loop, &c->timer, EGRESS_REQUEST_TIMEOUT_MS) != 0)
		econn_fail(c, EGRESS_REFUSED, strerror(errno));
}

void egress_accept_all(struct loop *l, int fd, egress_accept_fn *start, void *arg,
		       int64_t *last_log)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen;
		int cfd = net_accept_or_pause(l, fd, &peer, &plen);
		if (cfd < 0) {
			if (errno == ECONNABORTED || errno == EPROTO)
				continue; /* that client is gone; the next may be waiting */
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    loop_now() - *last_log >= 10000) {
				log_warn(0, "egress: accept: %s; pausing accepts for %d ms",
					 strerror(errno), NET_ACCEPT_PAUSE_MS);
				*last_log = loop_now();
			}
			return;
		}
		start(arg, cfd, &peer, plen);
	}
}

static void server_start(void *arg, int cfd, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct egress_server *s = arg;

	if (!net_vsock_peer_ok((const struct sockaddr *)peer, s->opts.peer_cid)) {
		char who[NET_ADDR_LEN];
		log_warn(0, "egress: refused %s: only CID %u may connect",
			 net_addr_str((const struct sockaddr *)peer, plen, who, sizeof(who)),
			 s->opts.peer_cid);
		close(cfd);
		return;
	}
	econn_start(s, cfd);
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct egress_server *s = arg;

	(void)rev;
	egress_accept_all(l, fd, server_start, s, &s->last_pause_log);
}

struct egress_server *egress_server_new(struct loop *l, const struct config *c,
					const struct proxy_opts *o)
{
	struct egress_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->cfg = c;
	s->opts = *o;
	s->fd = -1;
	s->last_pause_log = -10000;
	s->own_at = INT64_MIN / 2; /* read at the first connection */
	return s;
}

int egress_server_listen(struct egress_server *s, char *err, size_t errlen)
{
	char why[NET_ERR_LEN];

	if (!s->cfg->has_egress)
		return 0;
	s->fd = net_listen_vsock(s->cfg->egress_vsock_port, why, sizeof(why));
	if (s->fd >= 0 && loop_add(s->loop, s->fd, POLLIN, on_accept, s) != 0) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		close(s->fd);
		s->fd = -1;
		net_unlisten_vsock(s->cfg->egress_vsock_port);
	}
	if (s->fd < 0) {
		snprintf(err, errlen, "egress vsock port %" PRIu32 ": %s",
			 s->cfg->egress_vsock_port, why);
		return -1;
	}
	return 0;
}

void egress_server_free(struct egress_server *s)
{
	if (!s)
		return;
	while (s->conns) {
		struct econn *c = s->conns;
		if (c->state == EC_RELAYING)
			relay_discard(&c->relay);
		else
			econn_drop(c);
		loop_undefer(s->loop, &c->free_d);
		econn_free(&c->free_d);
	}
	if (s->fd >= 0) {
		loop_del(s->loop, s->fd);
		close(s->fd);
		net_unlisten_vsock(s->cfg->egress_vsock_port);
	}
	egress_stats_free(&s->stats);
	free(s);
}

const struct egress_stats *egress_server_stats(const struct egress_server *s)
{
	return &s->stats;
}
