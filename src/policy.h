#ifndef QPROXY_POLICY_H
#define QPROXY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The egress policy: allow and deny lists of entries, each a destination and
 * ports. Pure: strings and addresses in, verdicts out; nothing here resolves
 * a name or opens a socket.
 *
 * An entry is DEST:PORTS. DEST: a hostname ("api.example.com"), a suffix
 * wildcard ("*.example.com": any name below it, not the name itself), an IP
 * literal ("10.0.0.1", "[2001:db8::1]") or a CIDR ("10.0.0.0/8",
 * "[2001:db8::/32]"); an IPv6 one always in brackets. PORTS: a port, a range
 * "a-b", or "*". Names compare without case and without a trailing dot.
 */
#define POLICY_NAME_MAX 253 /* a DNS name's longest text form */
#define POLICY_ERR_LEN 160
/* The longest canonical form: "*." + name + ":" + "65535-65535", and its NUL. */
#define POLICY_ENTRY_LEN (POLICY_NAME_MAX + 16)

enum policy_kind { POLICY_NAME, POLICY_SUFFIX, POLICY_CIDR };

struct policy_entry {
	uint8_t kind;			/* enum policy_kind */
	uint8_t family;			/* POLICY_CIDR: AF_INET or AF_INET6 */
	uint8_t prefix;			/* POLICY_CIDR: bits; 32 or 128 for a single address */
	uint16_t port_lo, port_hi;	/* 1..65535 both for "*" */
	int line;			/* in the config, for the audit log */
	uint8_t addr[16];		/* POLICY_CIDR: the network, host bits zero */
	char name[POLICY_NAME_MAX + 1]; /* POLICY_NAME: the name; POLICY_SUFFIX: without "*." */
};

struct policy_list {
	struct policy_entry *v;
	size_t n, cap;
};

struct policy {
	struct policy_list allow, deny;
};

/* Parse one entry into e (line left 0). -1 with err saying what is wrong with it. */
int policy_parse_entry(const char *s, struct policy_entry *e, char *err, size_t errlen);

/* The entry as it parses back to itself: lower case, a port range "a-b" only when a < b. */
const char *policy_entry_str(const struct policy_entry *e, char *buf, size_t size);

/*
 * A destination's name as the policy compares it: lower case, one trailing
 * dot dropped, letters, digits, '-', '_' and '.' only, no empty label, at most
 * POLICY_NAME_MAX bytes. An IP literal passes as its canonical text. -1 when s
 * is neither.
 */
int policy_normalize(const char *s, char out[POLICY_NAME_MAX + 1]);

/*
 * A name that failed policy_normalize(), as a log line may show it: at most 60 bytes,
 * each control or non-ASCII byte as '?', so that no client can write a line of its own.
 * Returns buf.
 */
#define POLICY_SHOWN_LEN 64
const char *policy_shown(const char *s, char buf[POLICY_SHOWN_LEN]);

enum policy_verdict {
	POLICY_ALLOWED,	 /* by *rule, an allow entry */
	POLICY_DENIED,	 /* by *rule, a deny entry */
	POLICY_NO_MATCH, /* no entry allows it: denied by default; *rule is NULL */
};

/*
 * May a connection go to host:port, as the client names it? host: a
 * normalized name or IP literal (policy_normalize). A name is matched against
 * the name and suffix entries, an IP literal against the CIDR entries. Deny
 * wins over allow.
 */
enum policy_verdict policy_check_name(const struct policy *p, const char *host, uint16_t port,
				      const struct policy_entry **rule);

/*
 * What lies behind an address, whatever name led there: the ranges a name must
 * never reach unless an entry names them (the metadata service's link-local
 * range, loopback, unspecified), and the machine's own addresses.
 */
enum policy_special {
	POLICY_ORDINARY,
	POLICY_LINK_LOCAL,  /* 169.254.0.0/16, fe80::/10 */
	POLICY_LOOPBACK,    /* 127.0.0.0/8, ::1 */
	POLICY_UNSPECIFIED, /* 0.0.0.0/8, :: */
	POLICY_OWN,	    /* one of own[] */
};

/* The special range sa lies in, with own[] the machine's own addresses. */
enum policy_special policy_special(const struct sockaddr *sa, const struct sockaddr_storage *own,
				   size_t nown);
const char *policy_special_name(enum policy_special s);

/*
 * May a connection go to the address sa (port included), reached by a name the
 * policy allowed (or by an IP literal it allowed)? A deny entry covering the
 * address denies it. A special address needs an allow entry that covers the
 * address and lies wholly inside its range (169.254.169.254:80 or
 * 169.254.0.0/16:80 name the metadata service; 0.0.0.0/0 does not): then
 * POLICY_ALLOWED with that *rule. Any other address: POLICY_ALLOWED with *rule
 * NULL, since the name's entry decided. *special says which range it was in.
 */
enum policy_verdict policy_check_addr(const struct policy *p, const struct sockaddr *sa,
				      const struct sockaddr_storage *own, size_t nown,
				      enum policy_special *special,
				      const struct policy_entry **rule);

/* Does the policy allow name on explicit ports, and which: its DNS answer. See policy.c. */
size_t policy_name_ports(const struct policy *p, const char *name, uint16_t *ports, size_t max);

void policy_free(struct policy *p);

#endif
