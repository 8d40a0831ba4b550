#include "egress_proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dns.h"
#include "log.h"
#include "lograte.h"
#include "net.h"
#include "proxyreq.h"
#include "relay.h"
#include "util.h"

/* An emulated vsock listener with a full backlog says EAGAIN: retry this often, this long. */
#define LINK_RETRY_MS 10
#define LINK_TIMEOUT_MS (CONFIG_CONNECT_TIMEOUT * 1000)
/* The most ports a DNS name listens on (policy_name_ports). */
#define DNS_PORTS_MAX 16

enum pc_kind { PK_UNKNOWN, PK_HTTP, PK_SOCKS, PK_DNS };
enum pc_state { PC_HEAD, PC_LINK, PC_REPLY, PC_RELAYING };

struct pconn {
	struct relay relay;
	struct egress_proxy *ep;
	unsigned long id;
	enum pc_kind kind;
	enum pc_state state;
	bool greeted; /* SOCKS5: the greeting has been answered */
	int cfd, vfd;
	int64_t start;
	struct loop_timer timer; /* the head's deadline, the link's, the reply's */
	unsigned retries;
	char peer[NET_ADDR_LEN];
	char in[PROXYREQ_HEAD_MAX]; /* the client's request, and what came behind it */
	size_t in_len, head_len;
	struct http_req http;
	char host[POLICY_NAME_MAX + 1];
	uint16_t port;
	char dest[EGRESS_DEST_LEN];
	uint8_t reply[4 + EGRESS_FRAME_MAX];
	size_t reply_len;
	bool admitted; /* counted in ep->open: under max_connections */
	struct relay_idle idle;
	struct egress_dest *stat;
	struct loop_defer free_d;
	struct pconn *prev, *next;
};

/* One DNS name's address, and a listener per port. */
struct dns_name {
	char name[POLICY_NAME_MAX + 1];
	uint32_t addr; /* host byte order */
};

struct dns_listener {
	struct egress_proxy *ep;
	size_t name; /* index in ep->names */
	uint16_t port;
	int fd;
};

struct egress_proxy {
	struct loop *loop;
	const struct config *cfg;
	struct proxy_opts opts;
	int fd; /* 127.0.0.1:proxy_port, or -1 */
	unsigned long next_id;
	struct pconn *conns;
	struct egress_stats stats;
	struct dns_name *names;
	size_t nnames, names_cap;
	struct dns_listener **dl;
	size_t ndl, dl_cap;
	struct dns_server *dns;
	int64_t last_pause_log;
	struct lograte denied; /* names the DNS mode denied, said once a minute */
	size_t open;	       /* connections let past the policy, for max_connections */
	struct logcount busy_log; /* their refusals, said once a second */
};

static const char *kind_name(enum pc_kind k)
{
	static const char *const names[] = {
	    [PK_UNKNOWN] = "proxy", [PK_HTTP] = "http", [PK_SOCKS] = "socks5", [PK_DNS] = "dns"};
	return names[k];
}

static void pconn_free(struct loop_defer *d)
{
	struct pconn *c = container_of(d, struct pconn, free_d);

	loop_timer_stop(c->ep->loop, &c->timer); /* an idle check's, when the proxy goes first */
	if (c->prev)
		c->prev->next = c->next;
	else
		c->ep->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->ep->open -= c->admitted;
	free(c);
}

static void pconn_drop(struct pconn *c)
{
	struct loop *l = c->ep->loop;

	loop_timer_stop(l, &c->timer);
	if (c->vfd >= 0) {
		loop_del(l, c->vfd);
		close(c->vfd);
	}
	if (c->cfd >= 0) {
		loop_del(l, c->cfd);
		close(c->cfd);
	}
	c->vfd = c->cfd = -1;
}

/* A few bytes to a fresh socket, whose buffer takes them whole: false if it did not. */
static bool send_all(int fd, const void *buf, size_t n)
{
	return n == 0 || send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n;
}

static const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "Connection established";
	case 403:
		return "Forbidden";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	}
	return "Bad Request";
}

/* The client hears of the failure in its own protocol, with the reason in an HTTP body. */
static void answer_error(struct pconn *c, int http, uint8_t socks, const char *why)
{
	char buf[EGRESS_REASON_MAX + 256];
	int n;

	if (c->kind == PK_SOCKS) {
		const uint8_t rep[10] = {5, socks, 0, 1};
		send_all(c->cfd, rep, sizeof(rep));
		return;
	}
	if (c->kind != PK_HTTP)
		return; /* a DNS-mode client has no protocol to hear it in: it is closed */
	n = snprintf(buf, sizeof(buf),
		     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		     "Connection: close\r\n\r\n%s\n",
		     http, http_reason(http), strlen(why) + 1, why);
	send_all(c->cfd, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/*
 * The connection ends before its relay: the client is answered, one line says
 * why (a warning when a policy refused it), and it is closed.
 */
static void pconn_fail(struct pconn *c, int http, uint8_t socks, bool denied, const char *why)
{
	log_msg(denied ? LOG_WARN : LOG_INFO, c->id, "egress %s %s -> %s: %s", kind_name(c->kind),
		c->peer, c->dest[0] ? c->dest : "?", why);
	answer_error(c, http, socks, why);
	pconn_drop(c);
	if (c->stat) {
		c->stat->open--;
		c->stat->denied += denied;
	}
	loop_defer(c->ep->loop, &c->free_d);
}

static void pconn_done(struct relay *r)
{
	struct pconn *c = container_of(r, struct pconn, relay);

	loop_timer_stop(c->ep->loop, &c->timer);
	c->stat->open--;
	c->stat->bytes_up += r->up.bytes;
	c->stat->bytes_down += r->down.bytes;
	if (c->idle.fired)
		log_info(c->id,
			 "egress %s %s -> %s: closed after %lld ms without a byte either way "
			 "(idle_timeout %" PRIu32 " s); %llu bytes up, %llu down, %lld ms",
			 kind_name(c->kind), c->peer, c->dest,
			 (long long)(loop_now() - c->idle.since), c->ep->cfg->egress_idle_timeout,
			 (unsigned long long)r->up.bytes, (unsigned long long)r->down.bytes,
			 (long long)(loop_now() - c->start));
	else
		log_info(c->id, "egress %s %s -> %s: closed%s%s; %llu bytes up, %llu down, %lld ms",
			 kind_name(c->kind), c->peer, c->dest, r->err ? " on error: " : "",
			 r->err ? strerror(r->err) : "", (unsigned long long)r->up.bytes,
			 (unsigned long long)r->down.bytes, (long long)(loop_now() - c->start));
	pconn_free(&c->free_d);
}

/*
 * The host half connected: tell the client, hand the host half what the client
 * sent that is the destination's (a rewritten http:// head, bytes after the
 * head), and relay.
 */
static void pconn_relay(struct pconn *c, const struct egress_reply *rep)
{
	static const char ok_http[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	static const uint8_t ok_socks[10] = {5, SOCKS_OK, 0, 1};
	char head[PROXYREQ_HEAD_MAX + 64];
	size_t n = 0;
	bool sent = true;

	if (c->kind == PK_HTTP && c->http.form == HTTP_ABSOLUTE) {
		n = http_head_origin(c->in, c->head_len, &c->http, head, sizeof(head));
		sent = n > 0 && send_all(c->vfd, head, n);
	} else if (c->kind == PK_HTTP) {
		sent = send_all(c->cfd, ok_http, sizeof(ok_http) - 1);
	} else if (c->kind == PK_SOCKS) {
		sent = send_all(c->cfd, ok_socks, sizeof(ok_socks));
	}
	if (sent)
		sent = send_all(c->vfd, c->in + c->head_len, c->in_len - c->head_len);
	if (!sent) {
		pconn_fail(c, 502, SOCKS_FAILURE, false, "could not pass the request on");
		return;
	}
	net_tune(c->cfd);
	if (relay_start(&c->relay, c->ep->loop, c->cfd, c->vfd, pconn_done) != 0) {
		pconn_fail(c, 502, SOCKS_FAILURE, false, strerror(errno));
		return;
	}
	c->relay.up.bytes = c->in_len - c->head_len + n; /* what went ahead of the relay */
	c->state = PC_RELAYING;
	log_info(c->id, "egress %s %s -> %s: connected; the host half reached %s, allowed by %s",
		 kind_name(c->kind), c->peer, c->dest, rep->addr, rep->rule);
	relay_idle_start(&c->idle, loop_now());
	/* Without its timer (out of memory) the connection only goes without the limit. */
	if (c->ep->cfg->egress_idle_timeout)
		loop_timer_set(c->ep->loop, &c->timer,
			       relay_idle_first((int64_t)c->ep->cfg->egress_idle_timeout * 1000));
}

/* The host half's answer, as the client's protocol says it. */
static void pconn_answer(struct pconn *c, const struct egress_reply *rep)
{
	static const struct {
		int http;
		uint8_t socks;
	} map[] = {
	    [EGRESS_DENIED] = {403, SOCKS_NOT_ALLOWED},
	    [EGRESS_NO_NAME] = {502, SOCKS_HOST_UNREACHABLE},
	    [EGRESS_REFUSED] = {502, SOCKS_REFUSED},
	    [EGRESS_TIMEOUT] = {504, SOCKS_HOST_UNREACHABLE},
	    [EGRESS_BAD] = {502, SOCKS_FAILURE},
	    [EGRESS_BUSY] = {503, SOCKS_FAILURE},
	};
	char why[EGRESS_REASON_MAX + 32];

	if (rep->status == EGRESS_OK) {
		pconn_relay(c, rep);
		return;
	}
	snprintf(why, sizeof(why), "host half: %s: %s", egress_status_name(rep->status),
		 rep->reason);
	pconn_fail(c, map[rep->status].http, map[rep->status].socks, rep->status == EGRESS_DENIED,
		   why);
}

static void on_reply_io(struct loop *l, int fd, short rev, void *arg)
{
	struct pconn *c = arg;
	struct egress_reply rep;
	char why[EGRESS_REASON_MAX];

	(void)rev;
	long want = egress_frame_len(c->reply, c->reply_len);
	size_t need = want > 0 ? (size_t)want - c->reply_len : 4 - c->reply_len;
	ssize_t n = want < 0 ? 0 : read(fd, c->reply + c->reply_len, need);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 || want < 0) {
		snprintf(why, sizeof(why), "host half: %s",
			 n < 0	    ? strerror(errno)
			 : want < 0 ? "reply frame out of bounds"
				    : "closed without a reply");
		pconn_fail(c, 502, SOCKS_FAILURE, false, why);
		return;
	}
	c->reply_len += (size_t)n;
	want = egress_frame_len(c->reply, c->reply_len);
	if (want == 0 || (want > 0 && c->reply_len < (size_t)want))
		return;
	strcpy(why, "host half: bad reply: ");
	if (want < 0 || egress_reply_decode(c->reply + 4, c->reply_len - 4, &rep, why + 22,
					    sizeof(why) - 22) != 0) {
		pconn_fail(c, 502, SOCKS_FAILURE, false, why);
		return;
	}
	loop_timer_stop(l, &c->timer);
	loop_del(l, fd);
	pconn_answer(c, &rep);
}

/* The link to the host half is up: send the request, wait for the reply. */
static void pconn_linked(struct pconn *c)
{
	struct loop *l = c->ep->loop;
	struct egress_req req = {.port = c->port};
	uint8_t buf[4 + EGRESS_FRAME_MAX];

	loop_timer_stop(l, &c->timer);
	loop_del(l, c->vfd);
	memcpy(req.host, c->host, sizeof(req.host));
	size_t n = egress_req_encode(&req, buf, sizeof(buf));
	if (n == 0 || !send_all(c->vfd, buf, n)) {
		pconn_fail(c, 502, SOCKS_FAILURE, false,
			   "could not send the request to the host half");
		return;
	}
	c->state = PC_REPLY;
	if (loop_add(l, c->vfd, POLLIN, on_reply_io, c) != 0 ||
	    loop_timer_set(l, &c->timer, EGRESS_REPLY_TIMEOUT_MS) != 0)
		pconn_fail(c, 502, SOCKS_FAILURE, false, strerror(errno));
}

static void pconn_link_failed(struct pconn *c, int err)
{
	char why[160];

	snprintf(why, sizeof(why),
		 "connect to the host half's egress vsock port %" PRIu32
		 ": %s (is the host half running, with [egress] in its config?)",
		 c->ep->cfg->egress_vsock_port, strerror(err));
	pconn_fail(c, 502, SOCKS_FAILURE, false, why);
}

static void on_link_io(struct loop *l, int fd, short rev, void *arg)
{
	struct pconn *c = arg;

	(void)l, (void)rev;
	int err = net_connect_result(fd);
	if (err == 0)
		pconn_linked(c);
	else
		pconn_link_failed(c, err);
}

static void pconn_link(struct pconn *c)
{
	struct loop *l = c->ep->loop;
	struct sockaddr_storage ss;
	socklen_t len = net_vsock_addr(c->ep->opts.peer_cid, c->ep->cfg->egress_vsock_port, &ss);

	c->state = PC_LINK;
	int r = egress_connect(l, (struct sockaddr *)&ss, len, &c->vfd, on_link_io, c, &c->timer,
			       LINK_TIMEOUT_MS);
	int err = errno;
	/* A retry with no timer would never come: fail now, not hold the client. */
	if (r < 0 && c->vfd < 0 && err == EAGAIN &&
	    ++c->retries < LINK_TIMEOUT_MS / LINK_RETRY_MS &&
	    loop_timer_set(l, &c->timer, LINK_RETRY_MS) == 0)
		return;
	if (r < 0)
		pconn_link_failed(c, err);
	else if (r > 0)
		pconn_linked(c);
}

/*
 * max_connections are open: the client hears so in its own protocol (503), and
 * the refusals are said at most once a second, each line with the count since.
 */
static void pconn_busy(struct pconn *c, uint32_t max)
{
	struct egress_proxy *ep = c->ep;
	char why[80];
	unsigned long n;

	snprintf(why, sizeof(why), "max_connections %" PRIu32 " open in the enclave half", max);
	answer_error(c, 503, SOCKS_FAILURE, why);
	pconn_drop(c);
	c->stat->open--;
	c->stat->refused++;
	if (logcount_say(&ep->busy_log, loop_now(), 1000, &n))
		log_warn(0,
			 "egress: refused %s %s -> %s: max_connections %" PRIu32
			 " open; %lu refused since last said",
			 kind_name(c->kind), c->peer, c->dest, max, n);
	loop_defer(ep->loop, &c->free_d);
}

/* The destination is known: this half's policy first, then the host half's. */
static void pconn_decide(struct pconn *c, const char *host, uint16_t port)
{
	const struct policy_entry *rule;
	char why[EGRESS_REASON_MAX], entry[POLICY_ENTRY_LEN];

	loop_timer_stop(c->ep->loop, &c->timer);
	loop_del(c->ep->loop, c->cfd);
	if (policy_normalize(host, c->host) != 0) {
		char shown[POLICY_SHOWN_LEN];
		snprintf(why, sizeof(why), "%s is not a hostname or IP address",
			 policy_shown(host, shown));
		pconn_fail(c, 400, SOCKS_HOST_UNREACHABLE, true, why);
		return;
	}
	c->port = port;
	egress_dest_str(c->host, port, c->dest, sizeof(c->dest));
	c->stat = egress_stats_get(&c->ep->stats, c->host, port);
	c->stat->open++;
	c->stat->total++;
	enum policy_verdict v = policy_check_name(&c->ep->cfg->egress, c->host, port, &rule);
	if (v != POLICY_ALLOWED) {
		if (rule)
			snprintf(why, sizeof(why), "denied by \"%s\" (line %d)",
				 policy_entry_str(rule, entry, sizeof(entry)), rule->line);
		else
			snprintf(why, sizeof(why), "denied: no allow entry matches");
		pconn_fail(c, 403, SOCKS_NOT_ALLOWED, true, why);
		return;
	}
	uint32_t max = c->ep->cfg->egress_max_connections;
	if (max && c->ep->open >= max) {
		pconn_busy(c, max);
		return;
	}
	c->admitted = true;
	c->ep->open++;
	log_info(c->id, "egress %s %s -> %s: allowed by \"%s\" (line %d); asking the host half",
		 kind_name(c->kind), c->peer, c->dest, policy_entry_str(rule, entry, sizeof(entry)),
		 rule->line);
	pconn_link(c);
}

/* SOCKS5: the greeting, then the request, from c->in. */
static void pconn_socks(struct pconn *c)
{
	char host[POLICY_NAME_MAX + 1], why[PROXYREQ_ERR_LEN];
	uint16_t port;
	uint8_t rep;

	if (!c->greeted) {
		bool no_auth;
		long n = socks_greeting_parse((const uint8_t *)c->in, c->in_len, &no_auth);
		if (n == 0)
			return;
		if (n < 0 || !no_auth) {
			static const uint8_t none[2] = {5, 0xff};
			if (n > 0)
				send_all(c->cfd, none, sizeof(none));
			c->kind = PK_UNKNOWN; /* nothing more to answer */
			pconn_fail(c, 0, 0, false,
				   n < 0 ? "malformed SOCKS5 greeting"
					 : "SOCKS5 client offers no method but authentication");
			return;
		}
		static const uint8_t ok[2] = {5, 0};
		if (!send_all(c->cfd, ok, sizeof(ok))) {
			pconn_fail(c, 0, SOCKS_FAILURE, false, "could not answer the greeting");
			return;
		}
		c->greeted = true;
		memmove(c->in, c->in + n, c->in_len - (size_t)n);
		c->in_len -= (size_t)n;
	}
	long n = socks_request_parse((const uint8_t *)c->in, c->in_len, host, &port, &rep, why,
				     sizeof(why));
	if (n == 0)
		return;
	if (n < 0) {
		pconn_fail(c, 0, rep, false, why);
		return;
	}
	c->head_len = (size_t)n;
	pconn_decide(c, host, port);
}

static void pconn_http(struct pconn *c)
{
	char why[PROXYREQ_ERR_LEN];
	int status;

	long n = http_head_parse(c->in, c->in_len, &c->http, &status, why, sizeof(why));
	if (n == 0)
		return;
	if (n < 0) {
		pconn_fail(c, status, 0, false, why);
		return;
	}
	c->head_len = (size_t)n;
	pconn_decide(c, c->http.host, c->http.port);
}

static void on_head_io(struct loop *l, int fd, short rev, void *arg)
{
	struct pconn *c = arg;

	(void)l, (void)rev;
	ssize_t n = read(fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		pconn_fail(c, 400, SOCKS_FAILURE, false,
			   n < 0 ? strerror(errno) : "the client closed before its request");
		return;
	}
	if (c->in_len == 0)
		c->kind = c->in[0] == 5 ? PK_SOCKS : PK_HTTP;
	c->in_len += (size_t)n;
	if (c->kind == PK_SOCKS)
		pconn_socks(c);
	else
		pconn_http(c);
}

static void on_pconn_timer(struct loop *l, struct loop_timer *t)
{
	struct pconn *c = container_of(t, struct pconn, timer);

	(void)l;
	switch (c->state) {
	case PC_HEAD:
		pconn_fail(c, 400, SOCKS_FAILURE, false, "no whole request within 10 s");
		break;
	case PC_LINK:
		if (c->vfd < 0)
			pconn_link(c); /* the backlog-full retry */
		else
			pconn_link_failed(c, ETIMEDOUT);
		break;
	case PC_REPLY:
		pconn_fail(c, 504, SOCKS_HOST_UNREACHABLE, false,
			   "no answer from the host half within 30 s");
		break;
	case PC_RELAYING: {
		int64_t next = relay_idle_check(
		    &c->relay, &c->idle, (int64_t)c->ep->cfg->egress_idle_timeout * 1000, loop_now());
		if (next > 0)
			loop_timer_set(l, &c->timer, next);
		break;
	}
	}
}

static struct pconn *pconn_new(struct egress_proxy *ep, int fd, enum pc_kind kind,
			       const struct sockaddr_storage *peer, socklen_t plen)
{
	struct pconn *c = calloc(1, sizeof(*c));

	if (!c) {
		log_warn(0, "egress: dropping a connection: out of memory");
		close(fd);
		return NULL;
	}
	c->ep = ep;
	c->id = ++ep->next_id;
	c->kind = kind;
	c->cfd = fd;
	c->vfd = -1;
	c->start = loop_now();
	c->free_d.fn = pconn_free;
	net_addr_str((const struct sockaddr *)peer, plen, c->peer, sizeof(c->peer));
	c->next = ep->conns;
	if (ep->conns)
		ep->conns->prev = c;
	ep->conns = c;
	loop_timer_init(&c->timer, on_pconn_timer);
	return c;
}

static void proxy_start(void *arg, int cfd, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct egress_proxy *ep = arg;
	struct pconn *c = pconn_new(ep, cfd, PK_UNKNOWN, peer, plen);

	if (!c)
		return;
	/* Both, or neither: a client that never sends its request must not hold us. */
	if (loop_add(ep->loop, cfd, POLLIN, on_head_io, c) != 0 ||
	    loop_timer_set(ep->loop, &c->timer, EGRESS_HEAD_TIMEOUT_MS) != 0)
		pconn_fail(c, 502, SOCKS_FAILURE, false, strerror(errno));
}

static void on_proxy_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct egress_proxy *ep = arg;

	(void)rev;
	egress_accept_all(l, fd, proxy_start, ep, &ep->last_pause_log);
}

static void dns_accepted(void *arg, int cfd, const struct sockaddr_storage *peer, socklen_t plen)
{
	struct dns_listener *d = arg;
	struct pconn *c = pconn_new(d->ep, cfd, PK_DNS, peer, plen);

	if (c)
		pconn_decide(c, d->ep->names[d->name].name, d->port);
}

static void on_dns_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct dns_listener *d = arg;

	(void)rev;
	egress_accept_all(l, fd, dns_accepted, d, &d->ep->last_pause_log);
}

struct egress_proxy *egress_proxy_new(struct loop *l, const struct config *c,
				      const struct proxy_opts *o)
{
	struct egress_proxy *ep = calloc(1, sizeof(*ep));

	if (!ep)
		return NULL;
	ep->loop = l;
	ep->cfg = c;
	ep->opts = *o;
	ep->fd = -1;
	ep->last_pause_log = -10000;
	ep->denied.window = 60000;
	return ep;
}

/*
 * The DNS server's question: a name the policy allows on explicit ports gets
 * its address (an A record, or an empty answer to AAAA and the rest), any
 * other NXDOMAIN; egress_proxy_map() logs the denial.
 */
static enum dns_verdict dns_decide(void *ctx, const char *name, uint16_t qtype,
				   struct in_addr *addr)
{
	(void)qtype;
	return egress_proxy_map(ctx, name, addr) == EGRESS_MAPPED ? DNS_ADDR : DNS_NXDOMAIN;
}

/* dns = true: the DNS server on 127.0.0.1:53, then resolv_conf pointed at it. */
static int dns_start(struct egress_proxy *ep, char *err, size_t errlen)
{
	const struct config *c = ep->cfg;

	if (!c->egress_dns)
		return 0;
	ep->dns = dns_server_new(ep->loop, dns_decide, ep);
	if (!ep->dns) {
		snprintf(err, errlen, "egress dns: %s", strerror(ENOMEM));
		return -1;
	}
	if (dns_server_listen(ep->dns, "127.0.0.1", DNS_PORT, err, errlen) != 0)
		return -1;
	if (c->egress_resolv_conf[0]) {
		if (resolvconf_write(c->egress_resolv_conf, "127.0.0.1", err, errlen) != 0)
			return -1;
		log_info(0, "egress dns: %s points at 127.0.0.1:53", c->egress_resolv_conf);
	}
	return 0;
}

int egress_proxy_listen(struct egress_proxy *ep, char *err, size_t errlen)
{
	char why[NET_ERR_LEN];

	if (!ep->cfg->has_egress)
		return 0;
	if (dns_start(ep, err, errlen) != 0)
		return -1;
	if (!ep->cfg->egress_proxy_port)
		return 0;
	ep->fd = net_listen_tcp("127.0.0.1", ep->cfg->egress_proxy_port, why, sizeof(why));
	if (ep->fd >= 0 && loop_add(ep->loop, ep->fd, POLLIN, on_proxy_accept, ep) != 0) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		close(ep->fd);
		ep->fd = -1;
	}
	if (ep->fd < 0) {
		snprintf(err, errlen, "egress proxy_port 127.0.0.1:%u: %s",
			 ep->cfg->egress_proxy_port, why);
		return -1;
	}
	return 0;
}

/* Listen on the name's address for one of its ports; the listener joins ep->dl. */
static bool dns_listen(struct egress_proxy *ep, size_t name, uint16_t port)
{
	char ip[NET_IPV4_LEN], why[NET_ERR_LEN];
	struct dns_listener **dl = array_grow(ep->dl, &ep->dl_cap, ep->ndl + 1, sizeof(*dl));
	struct dns_listener *d = dl ? calloc(1, sizeof(*d)) : NULL;

	if (dl)
		ep->dl = dl;
	if (!d) {
		log_error(0, "egress dns %s: out of memory", ep->names[name].name);
		return false;
	}
	*d = (struct dns_listener){ep, name, port, -1};
	net_ipv4_str(ep->names[name].addr, ip);
	d->fd = net_listen_tcp(ip, port, why, sizeof(why));
	if (d->fd >= 0 && loop_add(ep->loop, d->fd, POLLIN, on_dns_accept, d) != 0) {
		snprintf(why, sizeof(why), "%s", strerror(errno));
		close(d->fd);
		d->fd = -1;
	}
	if (d->fd < 0) {
		log_error(0, "egress dns %s: listen on %s:%u: %s", ep->names[name].name, ip, port,
			  why);
		free(d);
		return false;
	}
	ep->dl[ep->ndl++] = d;
	return true;
}

enum egress_map_result egress_proxy_map(struct egress_proxy *ep, const char *name,
					struct in_addr *addr)
{
	char norm[POLICY_NAME_MAX + 1];
	uint16_t ports[DNS_PORTS_MAX];
	size_t nports = 0;
	bool normal = policy_normalize(name, norm) == 0;

	if (normal)
		nports = policy_name_ports(&ep->cfg->egress, norm, ports, DNS_PORTS_MAX);
	if (nports == 0 || net_is_ip_literal(norm)) {
		unsigned long unsaid;
		if (!lograte_say(&ep->denied, normal ? norm : name, loop_now(), &unsaid))
			return EGRESS_DENIED_NAME;
		char more[64] = "; repeats are said once a minute at most";
		if (unsaid)
			snprintf(more, sizeof(more), "; asked %lu more times since last said",
				 unsaid);
		log_warn(0, "egress dns %.253s: denied: the policy allows it on no explicit port%s",
			 name, more);
		return EGRESS_DENIED_NAME;
	}
	for (size_t i = 0; i < ep->nnames; i++) {
		if (strcmp(ep->names[i].name, norm) == 0) {
			addr->s_addr = htonl(ep->names[i].addr);
			return EGRESS_MAPPED;
		}
	}
	struct dns_name *names =
	    ep->nnames < EGRESS_DNS_NAMES_MAX
		? array_grow(ep->names, &ep->names_cap, ep->nnames + 1, sizeof(*names))
		: NULL;
	if (!names) {
		log_error(0, "egress dns %s: no address left for it (%d names at most)", norm,
			  EGRESS_DNS_NAMES_MAX);
		return EGRESS_MAP_FAILED;
	}
	ep->names = names;
	size_t i = ep->nnames;
	memcpy(names[i].name, norm, sizeof(norm));
	names[i].addr = EGRESS_DNS_NET + 1 + (uint32_t)i;
	/* The name keeps its address, and the ports that could be had: each failure is logged. */
	ep->nnames++;
	size_t ok = 0;
	for (size_t p = 0; p < nports; p++)
		ok += dns_listen(ep, i, ports[p]);
	if (ok == 0)
		return EGRESS_MAP_FAILED;
	char ip[NET_IPV4_LEN];
	log_info(0, "egress dns %s: at %s, on %zu port%s", norm, net_ipv4_str(names[i].addr, ip),
		 nports, nports == 1 ? "" : "s");
	addr->s_addr = htonl(names[i].addr);
	return EGRESS_MAPPED;
}

void egress_proxy_free(struct egress_proxy *ep)
{
	if (!ep)
		return;
	while (ep->conns) {
		struct pconn *c = ep->conns;
		if (c->state == PC_RELAYING)
			relay_discard(&c->relay);
		else
			pconn_drop(c);
		loop_undefer(ep->loop, &c->free_d);
		pconn_free(&c->free_d);
	}
	if (ep->fd >= 0) {
		loop_del(ep->loop, ep->fd);
		close(ep->fd);
	}
	for (size_t i = 0; i < ep->ndl; i++) {
		loop_del(ep->loop, ep->dl[i]->fd);
		close(ep->dl[i]->fd);
		free(ep->dl[i]);
	}
	free(ep->dl);
	free(ep->names);
	dns_server_free(ep->dns);
	egress_stats_free(&ep->stats);
	free(ep);
}

const struct egress_stats *egress_proxy_stats(const struct egress_proxy *ep)
{
	return &ep->stats;
}
