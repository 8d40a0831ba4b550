#ifndef QPROXY_DNS_H
#define QPROXY_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

/*
 * The enclave half's DNS server (RFC 1035): UDP and TCP on one address and port,
 * on the event loop. It answers only what the caller decides, one question per
 * query: an A record, an empty NOERROR, or NXDOMAIN. It never forwards a query.
 *
 * What it answers without asking the caller:
 * - a response (QR set), or fewer than 12 bytes: dropped, no reply;
 * - an opcode other than QUERY: NOTIMP, header only;
 * - QDCOUNT not 1, a compression pointer or bad label in the question, answer or
 *   authority records, a bad or second EDNS OPT record, bytes after the last
 *   record: FORMERR (echoing the question when it parsed);
 * - a class other than IN, or a zone transfer (AXFR, IXFR): NOTIMP;
 * - EDNS version other than 0: BADVERS (RFC 6891);
 * - a name that is not a hostname (the root, or a byte other than a letter, digit,
 *   '-' or '_': no policy can allow it, and a '*' must never reach a wildcard
 *   match): NXDOMAIN.
 * Flags: ID, RD and CD echoed; QR and RA set (the caller answers for any name, as
 * a recursive resolver would). A query with an OPT record gets a minimal OPT back
 * (no options, DO clear). Over UDP a reply that would not fit the client's size
 * (512, or its EDNS size) goes without its answer and with TC set; with one A
 * record it always fits, so this is never reached in practice.
 */

#define DNS_PORT 53
/*
 * The TTL of an A record. Short: an answer costs nothing on loopback, and a
 * synthetic address must not outlive by long the half that gave it (after a
 * restart the same address may serve another name) or a policy change.
 */
#define DNS_TTL 10
/* The longest query taken, over UDP or TCP: larger ones are dropped, or end the TCP client. */
#define DNS_QUERY_MAX 4096
/* No reply is longer: header, a question of at most 259 bytes, one A record, an OPT. */
#define DNS_REPLY_MAX 512
/* A name in text: at most 253 characters, and the NUL. */
#define DNS_NAME_LEN 254
/* TCP clients at once; more wait in the listen backlog until one leaves. */
#define DNS_TCP_CLIENTS_MAX 64
/* A TCP client must complete a query this often, or it is closed (RFC 7766 6.2.3). */
#define DNS_TCP_IDLE_MS 10000

enum dns_verdict { DNS_ADDR, DNS_EMPTY, DNS_NXDOMAIN };

/*
 * Called synchronously for each well-formed query of class IN, for its one question;
 * name is lowercase, no trailing dot; qtype the query type (1 = A, 28 = AAAA, ...).
 * DNS_ADDR fills addr (network byte order, as inet_pton fills it): an A record for an
 * A (or ANY) query, an empty NOERROR for any other type. decide must not free the
 * server. The caller logs its own decisions (a denial, say); the server logs malformed
 * queries at debug level only, since any local process may send them.
 */
typedef enum dns_verdict dns_decide_fn(void *ctx, const char *name, uint16_t qtype,
				       struct in_addr *addr);

/* NULL when out of memory. */
struct dns_server *dns_server_new(struct loop *l, dns_decide_fn *decide, void *ctx);
/*
 * Listen on UDP and TCP at ip (IPv4) and port; once per server. 0, or -1 with err
 * naming the socket and the cause ("bind udp 127.0.0.1:53: Address in use").
 */
int dns_server_listen(struct dns_server *s, const char *ip, uint16_t port, char *err,
		      size_t errlen);
/* Closes the sockets and every TCP client. NULL is fine. */
void dns_server_free(struct dns_server *s);

/*
 * Point the system resolver at nameserver (an IP literal) in the resolv.conf at
 * path: a "nameserver" line in a marked block at the top, replacing any block an
 * earlier run wrote, every other line kept, the file rewritten in place (see
 * markfile.h). Resolvers ask the nameservers in the order written, so ours goes first;
 * the others stay, for the file as it was. 0, or -1 with err filled and the file
 * untouched.
 */
int resolvconf_write(const char *path, const char *nameserver, char *err, size_t errlen);

/* The pure parts, for tests and the fuzzer. */

enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_OPT = 41,
	DNS_TYPE_IXFR = 251,
	DNS_TYPE_AXFR = 252,
	DNS_TYPE_ANY = 255
};
enum { DNS_CLASS_IN = 1 };

/* Above 15 an rcode is extended: its high bits go in the OPT record (RFC 6891 6.1.3). */
enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_BADVERS = 16,
};

/* The header flags, in their 16-bit word. */
enum {
	DNS_QR = 0x8000,
	DNS_AA = 0x0400,
	DNS_TC = 0x0200,
	DNS_RD = 0x0100,
	DNS_RA = 0x0080,
	DNS_CD = 0x0010,
};
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define DNS_RCODE(flags) ((flags)&0xf)

/* The longest question on the wire: a name of 255 bytes, its type and class. */
#define DNS_QUESTION_MAX (255 + 4)

struct dns_query {
	uint16_t id;
	uint16_t flags;
	/* NOERROR: a question to decide; else what to answer without deciding. */
	enum dns_rcode rcode;
	/* The question as sent (its case kept, for clients that check it): echoed in the reply. */
	uint8_t question[DNS_QUESTION_MAX];
	size_t question_len;	 /* 0 when it did not parse */
	char name[DNS_NAME_LEN]; /* lowercase, no trailing dot; "" for the root */
	bool hostname;		 /* name has only letters, digits, '-' and '_', and is not "" */
	uint16_t qtype, qclass;
	bool edns;	    /* a well-formed OPT record came: the reply carries one */
	uint16_t edns_size; /* the client's UDP payload size, at least 512 */
};

/* Parse a query: -1 to drop it, else 0 with q filled and q->rcode saying what to answer. */
int dns_parse_query(const uint8_t *pkt, size_t len, struct dns_query *q);

/*
 * The reply to q with rcode and, when addr is not NULL, one A record for it, in
 * at most limit bytes of out (at least 12). One that would not fit goes without
 * its answer and with TC set, or without its question too. Returns its length.
 */
size_t dns_build_reply(const struct dns_query *q, enum dns_rcode rcode, const struct in_addr *addr,
		       uint8_t *out, size_t limit);

/*
 * The whole of one query: parse, decide (only for a hostname in a well-formed IN
 * query), build. tcp: no size limit but DNS_REPLY_MAX, which out must hold. The
 * reply's length, or 0 when the query is dropped.
 */
size_t dns_answer(const uint8_t *pkt, size_t len, bool tcp, dns_decide_fn *decide, void *ctx,
		  uint8_t out[DNS_REPLY_MAX]);

#endif
