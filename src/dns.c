#include "dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "markfile.h"
#include "net.h"
#include "util.h"

#define HEADER_LEN 12
/* An A record after the question: a pointer to its name, type, class, TTL, length, address. */
#define ANSWER_LEN 16
/* A minimal OPT record: root name, type, size, extended rcode and flags, no options. */
#define OPT_LEN 11
/* The UDP payload size our OPT states: the common safe size (DNS flag day 2020). */
#define EDNS_SIZE 1232
/* Without EDNS, a UDP reply is at most this (RFC 1035 4.2.1). */
#define UDP_PLAIN_MAX 512
/* Datagrams read per wakeup, so that a flood of them leaves the loop to others in turn. */
#define UDP_BATCH 64
/* Replies a TCP client may have waiting unread before we stop reading its queries. */
#define TCP_OUT_MAX (8 * (2 + DNS_REPLY_MAX))

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static bool host_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Step over the name at *pos. With q, a name in the question: no pointers, and its
 * text goes to q->name (a byte no hostname has shows as '?' and clears q->hostname).
 * Without, a name in another record, which may end in a pointer (never followed).
 */
static int read_name(const uint8_t *p, size_t len, size_t *pos, struct dns_query *q)
{
	size_t at = *pos, wire = 1, n = 0;

	for (;;) {
		if (at >= len)
			return -1;
		uint8_t l = p[at];
		if (l == 0) {
			at++;
			break;
		}
		if ((l & 0xc0) == 0xc0 && !q) {
			if (at + 2 > len)
				return -1;
			at += 2;
			break;
		}
		/* A pointer in the question, or the reserved label types 01 and 10. */
		if (l & 0xc0)
			return -1;
		wire += 1 + (size_t)l;
		if (wire > 255 || at + 1 + l > len)
			return -1;
		for (size_t i = 0; q && i < l; i++) {
			uint8_t c = p[at + 1 + i];
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + 'a' - 'A');
			if (!host_char(c)) {
				q->hostname = false;
				c = '?';
			}
			if (i == 0 && n > 0)
				q->name[n++] = '.';
			q->name[n++] = (char)c;
		}
		at += 1 + (size_t)l;
	}
	if (q) {
		q->name[n] = '\0';
		if (n == 0)
			q->hostname = false;
	}
	*pos = at;
	return 0;
}

/* The options of an OPT record must tile its data exactly. */
static int check_options(const uint8_t *p, size_t len)
{
	size_t at = 0;

	while (at < len) {
		if (len - at < 4 || get16(p + at + 2) > len - at - 4)
			return -1;
		at += 4 + get16(p + at + 2);
	}
	return 0;
}

/* The additional records: tolerated, each within the packet; at most one OPT, well-formed. */
static int read_additional(const uint8_t *p, size_t len, size_t *pos, unsigned count,
			   struct dns_query *q, unsigned *version)
{
	for (unsigned i = 0; i < count; i++) {
		size_t start = *pos;
		if (read_name(p, len, pos, NULL) != 0 || len - *pos < 10)
			return -1;
		const uint8_t *rr = p + *pos;
		uint16_t rdlen = get16(rr + 8);
		*pos += 10;
		if (len - *pos < rdlen)
			return -1;
		if (get16(rr) == DNS_TYPE_OPT) {
			if (q->edns || *pos - 10 - start != 1 ||
			    check_options(p + *pos, rdlen) != 0)
				return -1;
			q->edns = true;
			q->edns_size =
			    get16(rr + 2) < UDP_PLAIN_MAX ? UDP_PLAIN_MAX : get16(rr + 2);
			*version = rr[5];
		}
		*pos += rdlen;
	}
	return 0;
}

int dns_parse_query(const uint8_t *p, size_t len, struct dns_query *q)
{
	memset(q, 0, sizeof(*q));
	if (len < HEADER_LEN)
		return -1;
	q->id = get16(p);
	q->flags = get16(p + 2);
	if (q->flags & DNS_QR)
		return -1; /* a response: answering it could start a loop between two servers */
	if (DNS_OPCODE(q->flags) != 0) {
		q->rcode = DNS_RCODE_NOTIMP;
		return 0;
	}
	q->rcode = DNS_RCODE_FORMERR;
	size_t pos = HEADER_LEN;
	q->hostname = true;
	if (get16(p + 4) != 1 || read_name(p, len, &pos, q) != 0 || len - pos < 4) {
		q->name[0] = '\0';
		q->hostname = false;
		return 0;
	}
	q->qtype = get16(p + pos);
	q->qclass = get16(p + pos + 2);
	pos += 4;
	q->question_len = pos - HEADER_LEN;
	memcpy(q->question, p + HEADER_LEN, q->question_len);
	unsigned version = 0;
	if (get16(p + 6) != 0 || get16(p + 8) != 0)
		return 0; /* a query carries no answer or authority records */
	if (read_additional(p, len, &pos, get16(p + 10), q, &version) != 0) {
		q->edns = false; /* a FORMERR for a bad OPT goes without one (RFC 6891 7) */
		return 0;
	}
	if (pos != len)
		return 0;
	if (version != 0)
		q->rcode = DNS_RCODE_BADVERS;
	else if (q->qclass != DNS_CLASS_IN || q->qtype == DNS_TYPE_AXFR ||
		 q->qtype == DNS_TYPE_IXFR)
		q->rcode = DNS_RCODE_NOTIMP;
	else
		q->rcode = DNS_RCODE_NOERROR;
	return 0;
}

size_t dns_build_reply(const struct dns_query *q, enum dns_rcode rcode, const struct in_addr *addr,
		       uint8_t *out, size_t limit)
{
	uint16_t flags =
	    (uint16_t)(DNS_QR | DNS_RA | (q->flags & (0x7800 | DNS_RD | DNS_CD)) | (rcode & 0xf));
	size_t qlen = q->question_len;
	bool answer = addr && qlen > 0, opt = q->edns;

	if (limit < HEADER_LEN)
		return 0;
	if (HEADER_LEN + qlen + (answer ? ANSWER_LEN : 0) + (opt ? OPT_LEN : 0) > limit) {
		flags |= DNS_TC;
		answer = false;
	}
	if (HEADER_LEN + qlen + (opt ? OPT_LEN : 0) > limit)
		qlen = 0, opt = false;
	uint8_t *w = put16(out, q->id);
	w = put16(w, flags);
	w = put16(w, qlen > 0);
	w = put16(w, answer);
	w = put16(w, 0);
	w = put16(w, opt);
	memcpy(w, q->question, qlen);
	w += qlen;
	if (answer) {
		w = put16(w, 0xc000 | HEADER_LEN); /* the question's name */
		w = put16(w, DNS_TYPE_A);
		w = put16(w, DNS_CLASS_IN);
		w = put16(w, 0);
		w = put16(w, DNS_TTL);
		w = put16(w, 4);
		memcpy(w, &addr->s_addr, 4);
		w += 4;
	}
	if (opt) {
		*w++ = 0; /* the root */
		w = put16(w, DNS_TYPE_OPT);
		w = put16(w, EDNS_SIZE);
		*w++ = (uint8_t)(rcode >> 4);
		*w++ = 0;	 /* version */
		w = put16(w, 0); /* DO clear: no DNSSEC here */
		w = put16(w, 0);
	}
	return (size_t)(w - out);
}

size_t dns_answer(const uint8_t *pkt, size_t len, bool tcp, dns_decide_fn *decide, void *ctx,
		  uint8_t out[DNS_REPLY_MAX])
{
	struct dns_query q;
	struct in_addr a = {0};
	const struct in_addr *addr = NULL;

	if (dns_parse_query(pkt, len, &q) != 0)
		return 0;
	enum dns_rcode rcode = q.rcode;
	if (rcode == DNS_RCODE_NOERROR && !q.hostname) {
		rcode = DNS_RCODE_NXDOMAIN;
	} else if (rcode == DNS_RCODE_NOERROR) {
		switch (decide(ctx, q.name, q.qtype, &a)) {
		case DNS_ADDR:
			if (q.qtype == DNS_TYPE_A || q.qtype == DNS_TYPE_ANY)
				addr = &a;
			break;
		case DNS_EMPTY:
			break;
		case DNS_NXDOMAIN:
			rcode = DNS_RCODE_NXDOMAIN;
			break;
		default:
			rcode = DNS_RCODE_SERVFAIL;
			break;
		}
	}
	size_t limit = UDP_PLAIN_MAX;
	if (tcp)
		limit = DNS_REPLY_MAX;
	else if (q.edns)
		limit = q.edns_size < DNS_REPLY_MAX ? q.edns_size : DNS_REPLY_MAX;
	return dns_build_reply(&q, rcode, addr, out, limit);
}

struct dns_conn {
	struct dns_conn *next, *prev;
	struct dns_server *srv;
	int fd;
	bool eof;
	struct loop_timer deadline;
	struct loop_defer defer;
	size_t in_len;
	size_t out_off, out_len;
	uint8_t in[2 + DNS_QUERY_MAX];
	uint8_t out[TCP_OUT_MAX];
};

struct dns_server {
	struct loop *loop;
	dns_decide_fn *decide;
	void *ctx;
	int udp_fd, tcp_fd;
	char where[32]; /* "127.0.0.1:53", for the log */
	struct dns_conn *conns;
	unsigned nconns;
	uint8_t dgram[DNS_QUERY_MAX];
};

/* Malformed queries come from local processes only: worth a debug line, no more. */
static void log_reply(const struct dns_server *s, const char *proto, const uint8_t *out, size_t n)
{
	if (n == 0)
		log_debug(0, "dns %s %s: dropped a message that is not a query", proto, s->where);
	else if (DNS_RCODE(get16(out + 2)) != DNS_RCODE_NOERROR &&
		 DNS_RCODE(get16(out + 2)) != DNS_RCODE_NXDOMAIN)
		log_debug(0, "dns %s %s: answered rcode %u", proto, s->where,
			  DNS_RCODE(get16(out + 2)));
}

static void on_udp(struct loop *l, int fd, short rev, void *arg)
{
	struct dns_server *s = arg;
	uint8_t out[DNS_REPLY_MAX];

	(void)l, (void)rev;
	for (int i = 0; i < UDP_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		/* MSG_TRUNC: the datagram's whole length, to tell one larger than the buffer. */
		ssize_t n = recvfrom(fd, s->dgram, sizeof(s->dgram), MSG_TRUNC,
				     (struct sockaddr *)&peer, &plen);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			continue; /* an ICMP error for an earlier reply: nothing to do */
		}
		if ((size_t)n > sizeof(s->dgram)) {
			log_debug(0, "dns udp %s: dropped a datagram of %zd bytes", s->where, n);
			continue;
		}
		size_t m = dns_answer(s->dgram, (size_t)n, false, s->decide, s->ctx, out);
		log_reply(s, "udp", out, m);
		/* A full socket buffer loses the reply, as the network could: the client retries.
		 */
		if (m > 0)
			sendto(fd, out, m, MSG_DONTWAIT, (struct sockaddr *)&peer, plen);
	}
}

static void conn_free(struct loop_defer *d)
{
	free(container_of(d, struct dns_conn, defer));
}

static void conn_close(struct dns_conn *c)
{
	struct dns_server *s = c->srv;

	loop_timer_stop(s->loop, &c->deadline);
	loop_del(s->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (s->nconns-- == DNS_TCP_CLIENTS_MAX)
		loop_set(s->loop, s->tcp_fd, POLLIN);
	loop_defer(s->loop, &c->defer);
}

static void on_deadline(struct loop *l, struct loop_timer *t)
{
	struct dns_conn *c = container_of(t, struct dns_conn, deadline);

	(void)l;
	log_debug(0, "dns tcp %s: client closed after %d ms without a query", c->srv->where,
		  DNS_TCP_IDLE_MS);
	conn_close(c);
}

/* Answer each whole query in c->in while the replies have room. -1 ends the client. */
static int conn_answer(struct dns_conn *c)
{
	struct dns_server *s = c->srv;
	size_t at = 0;
	int rc = 0;

	while (c->in_len - at >= 2) {
		size_t mlen = get16(c->in + at);
		if (mlen > DNS_QUERY_MAX) {
			log_debug(0, "dns tcp %s: client sent a message of %zu bytes, at most %d",
				  s->where, mlen, DNS_QUERY_MAX);
			rc = -1;
			break;
		}
		if (c->in_len - at - 2 < mlen || sizeof(c->out) - c->out_len < 2 + DNS_REPLY_MAX)
			break;
		size_t n = dns_answer(c->in + at + 2, mlen, true, s->decide, s->ctx,
				      c->out + c->out_len + 2);
		log_reply(s, "tcp", c->out + c->out_len + 2, n);
		if (n > 0) {
			put16(c->out + c->out_len, (uint16_t)n);
			c->out_len += 2 + n;
		}
		at += 2 + mlen;
		loop_timer_set(s->loop, &c->deadline, DNS_TCP_IDLE_MS);
	}
	memmove(c->in, c->in + at, c->in_len - at);
	c->in_len -= at;
	return rc;
}

/* Write what is waiting. -1 when the client is gone. */
static int conn_flush(struct dns_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void on_conn(struct loop *l, int fd, short rev, void *arg)
{
	struct dns_conn *c = arg;

	(void)rev;
	if (conn_flush(c) != 0)
		goto close;
	if (!c->eof && c->in_len < sizeof(c->in)) {
		ssize_t n = read(fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		if (n == 0)
			c->eof = true;
		else if (n > 0)
			c->in_len += (size_t)n;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			goto close;
	}
	/* Replies flushed make room for more of the queries already read. */
	for (;;) {
		size_t before = c->in_len;
		if (conn_answer(c) != 0 || conn_flush(c) != 0)
			goto close;
		if (c->in_len == before || c->out_len > 0)
			break;
	}
	if (c->eof && c->out_len == 0)
		goto close; /* all answered: what is left is a query cut short by the EOF */
	/*
	 * Read only while a reply has room: a client that sends and never reads stops
	 * being read, and its deadline ends it.
	 */
	bool room = sizeof(c->out) - c->out_len >= 2 + DNS_REPLY_MAX && c->in_len < sizeof(c->in);
	loop_set(l, fd, (short)((!c->eof && room ? POLLIN : 0) | (c->out_len ? POLLOUT : 0)));
	return;
close:
	conn_close(c);
}

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	struct dns_server *s = arg;

	(void)rev;
	int cfd = net_accept_or_pause(l, fd, NULL, NULL);
	if (cfd < 0)
		return;
	struct dns_conn *c = malloc(sizeof(*c));
	if (!c) {
		close(cfd);
		loop_pause(l, fd, NET_ACCEPT_PAUSE_MS);
		return;
	}
	*c = (struct dns_conn){.srv = s, .fd = cfd, .defer = {.fn = conn_free}};
	loop_timer_init(&c->deadline, on_deadline);
	if (loop_add(l, cfd, POLLIN, on_conn, c) != 0 ||
	    loop_timer_set(l, &c->deadline, DNS_TCP_IDLE_MS) != 0) {
		loop_del(l, cfd);
		close(cfd);
		free(c);
		loop_pause(l, fd, NET_ACCEPT_PAUSE_MS);
		return;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	/* Full: the rest wait in the backlog, unread, until a client leaves. */
	if (++s->nconns == DNS_TCP_CLIENTS_MAX)
		loop_set(l, fd, 0);
}

struct dns_server *dns_server_new(struct loop *l, dns_decide_fn *decide, void *ctx)
{
	struct dns_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->decide = decide;
	s->ctx = ctx;
	s->udp_fd = s->tcp_fd = -1;
	return s;
}

int dns_server_listen(struct dns_server *s, const char *ip, uint16_t port, char *err, size_t errlen)
{
	if (s->udp_fd >= 0) {
		snprintf(err, errlen, "dns server: already listening on %s", s->where);
		return -1;
	}
	int u = net_listen_udp(ip, port, err, errlen);
	if (u < 0)
		return -1;
	int t = net_listen_tcp(ip, port, err, errlen);
	if (t < 0) {
		close(u);
		return -1;
	}
	if (loop_add(s->loop, u, POLLIN, on_udp, s) != 0 ||
	    loop_add(s->loop, t, POLLIN, on_accept, s) != 0) {
		snprintf(err, errlen, "dns server %s:%u: %s", ip, port, strerror(errno));
		loop_del(s->loop, u);
		close(u);
		close(t);
		return -1;
	}
	s->udp_fd = u;
	s->tcp_fd = t;
	snprintf(s->where, sizeof(s->where), "%s:%u", ip, port);
	return 0;
}

void dns_server_free(struct dns_server *s)
{
	if (!s)
		return;
	while (s->conns) {
		struct dns_conn *c = s->conns;
		conn_close(c);
		loop_undefer(s->loop, &c->defer);
		free(c);
	}
	for (int i = 0; i < 2; i++) {
		int fd = i ? s->tcp_fd : s->udp_fd;
		if (fd >= 0) {
			loop_del(s->loop, fd);
			close(fd);
		}
	}
	free(s);
}

#define RESOLV_BEGIN                                                                               \
	"# BEGIN qproxy: the enclave's DNS server, rewritten by qproxy enclave at each start\n"

int resolvconf_write(const char *path, const char *nameserver, char *err, size_t errlen)
{
	char block[64 + INET6_ADDRSTRLEN];

	if (!net_is_ip_literal(nameserver)) {
		snprintf(err, errlen, "resolv.conf %s: nameserver %s is not an IP address", path,
			 nameserver);
		return -1;
	}
	snprintf(block, sizeof(block), "nameserver %s\n", nameserver);
	return markfile_write(path, "resolv.conf", RESOLV_BEGIN, block, err, errlen);
}
