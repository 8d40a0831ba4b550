#include "policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A range of at most this many ports counts as explicit for the DNS mode; "*" never does. */
#define DNS_RANGE_MAX 16

static bool is_label_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

static char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* s[0, n) as a name: lower case into out, no trailing dot. -1 when it is no name. */
static int name_normalize(const char *s, size_t n, char out[POLICY_NAME_MAX + 1])
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > POLICY_NAME_MAX)
		return -1;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = lower(s[i]);
		if (ch == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (!is_label_char(ch) || ++label > 63) {
			return -1;
		}
		out[i] = ch;
	}
	out[n] = '\0';
	return label == 0 ? -1 : 0;
}

/* An IP literal s[0, n), brackets already off: family, or 0 when it is none. */
static int parse_ip(const char *s, size_t n, uint8_t addr[16])
{
	char buf[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, buf, addr) == 1)
		return AF_INET6;
	return 0;
}

int policy_normalize(const char *s, char out[POLICY_NAME_MAX + 1])
{
	size_t n = strlen(s);
	uint8_t addr[16];
	bool brackets = n >= 2 && s[0] == '[' && s[n - 1] == ']';

	if (brackets) {
		s++;
		n -= 2;
	}
	int family = parse_ip(s, n, addr);
	if (brackets && family != AF_INET6)
		return -1;
	if (family) {
		inet_ntop(family, addr, out, POLICY_NAME_MAX + 1);
		return 0;
	}
	return name_normalize(s, n, out);
}

const char *policy_shown(const char *s, char buf[POLICY_SHOWN_LEN])
{
	size_t n = 0;

	for (; s[n] && n < 60; n++)
		buf[n] = s[n] > 0x20 && s[n] < 0x7f ? s[n] : '?';
	buf[n] = '\0';
	return buf;
}

/* "443", "8000-8100" or "*" into e. */
static int parse_ports(const char *s, struct policy_entry *e, char *err, size_t errlen)
{
	unsigned long v[2];
	int n = 0;

	if (strcmp(s, "*") == 0) {
		e->port_lo = 1;
		e->port_hi = 65535;
		return 0;
	}
	for (const char *p = s; n < 2; n++) {
		char *end;
		if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
			break;
		v[n] = strtoul(p, &end, 10);
		if (v[n] < 1 || v[n] > 65535)
			break;
		p = end;
		if (*p == '\0') {
			e->port_lo = (uint16_t)v[0];
			e->port_hi = (uint16_t)v[n];
			if (e->port_lo > e->port_hi) {
				snprintf(err, errlen, "port range %s runs backwards", s);
				return -1;
			}
			return 0;
		}
		if (*p++ != '-')
			break;
	}
	snprintf(err, errlen, "bad port %s: expected a port 1..65535, a range a-b, or *", s);
	return -1;
}

/* "10.0.0.0/8" or "2001:db8::/32" (no brackets): a CIDR into e. */
static int parse_cidr(const char *s, size_t n, struct policy_entry *e, char *err, size_t errlen)
{
	const char *slash = memchr(s, '/', n);
	size_t alen = slash ? (size_t)(slash - s) : n;
	int family = parse_ip(s, alen, e->addr);

	if (!family)
		return 1; /* not an address: a name, maybe */
	unsigned max = family == AF_INET ? 32 : 128, bits = max;
	if (slash) {
		const char *p = slash + 1;
		size_t plen = n - alen - 1;
		bits = 0;
		if (plen == 0 || plen > 3 || (p[0] == '0' && plen > 1))
			bits = 999;
		for (size_t i = 0; i < plen && bits != 999; i++)
			bits =
			    p[i] >= '0' && p[i] <= '9' ? bits * 10 + (unsigned)(p[i] - '0') : 999;
		if (bits > max) {
			snprintf(err, errlen, "bad prefix length /%.*s: expected 0..%u", (int)plen,
				 p, max);
			return -1;
		}
	}
	for (unsigned i = bits; i < max; i++) {
		if (e->addr[i / 8] & (0x80 >> (i % 8))) {
			snprintf(err, errlen, "%.*s has bits set past its /%u prefix", (int)n, s,
				 bits);
			return -1;
		}
	}
	e->kind = POLICY_CIDR;
	e->family = (uint8_t)family;
	e->prefix = (uint8_t)bits;
	return 0;
}

int policy_parse_entry(const char *s, struct policy_entry *e, char *err, size_t errlen)
{
	const char *colon, *dest = s;
	size_t n;

	memset(e, 0, sizeof(*e));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close) {
			snprintf(err, errlen, "%s: no ] after [", s);
			return -1;
		}
		dest = s + 1;
		n = (size_t)(close - dest);
		colon = close + 1;
		if (*colon != ':')
			colon = NULL;
	} else {
		colon = strrchr(s, ':');
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && memchr(s, ':', n)) {
			snprintf(err, errlen, "%s: an IPv6 address goes in brackets, as [::1]:443",
				 s);
			return -1;
		}
	}
	if (!colon) {
		snprintf(err, errlen,
			 "%s: no :PORT after the destination (a port, a range a-b, or *)", s);
		return -1;
	}
	if (parse_ports(colon + 1, e, err, errlen) != 0)
		return -1;
	int r = parse_cidr(dest, n, e, err, errlen);
	if (r < 0 || (r == 0 && (e->family == AF_INET6) == (s[0] == '[')))
		return r;
	if (s[0] == '[' || r == 0) {
		snprintf(err, errlen, "%.*s in brackets is not an IPv6 address", (int)n, dest);
		return -1;
	}
	e->kind = POLICY_NAME;
	if (n >= 2 && dest[0] == '*' && dest[1] == '.') {
		e->kind = POLICY_SUFFIX;
		dest += 2;
		n -= 2;
	}
	if (memchr(dest, '/', n)) {
		snprintf(err, errlen, "%.*s is not a CIDR: expected ADDRESS/BITS", (int)n, dest);
		return -1;
	}
	if (name_normalize(dest, n, e->name) != 0) {
		snprintf(err, errlen,
			 "%.*s is not a hostname, *.suffix, IP address or CIDR (a name: labels of "
			 "letters, digits, - and _, at most %d bytes)",
			 (int)(colon - s), s, POLICY_NAME_MAX);
		return -1;
	}
	return 0;
}

const char *policy_entry_str(const struct policy_entry *e, char *buf, size_t size)
{
	char ports[16], addr[INET6_ADDRSTRLEN];

	if (e->port_lo == 1 && e->port_hi == 65535)
		snprintf(ports, sizeof(ports), "*");
	else if (e->port_lo == e->port_hi)
		snprintf(ports, sizeof(ports), "%u", e->port_lo);
	else
		snprintf(ports, sizeof(ports), "%u-%u", e->port_lo, e->port_hi);
	if (e->kind != POLICY_CIDR) {
		snprintf(buf, size, "%s%s:%s", e->kind == POLICY_SUFFIX ? "*." : "", e->name,
			 ports);
		return buf;
	}
	inet_ntop(e->family, e->addr, addr, sizeof(addr));
	bool v6 = e->family == AF_INET6, single = e->prefix == (v6 ? 128 : 32);
	if (single)
		snprintf(buf, size, "%s%s%s:%s", v6 ? "[" : "", addr, v6 ? "]" : "", ports);
	else
		snprintf(buf, size, "%s%s/%u%s:%s", v6 ? "[" : "", addr, e->prefix, v6 ? "]" : "",
			 ports);
	return buf;
}

static bool port_in(const struct policy_entry *e, uint16_t port)
{
	return port >= e->port_lo && port <= e->port_hi;
}

/* Is the address (family, 4 or 16 bytes) inside e's network? */
static bool cidr_has(const struct policy_entry *e, int family, const uint8_t *a)
{
	if (e->kind != POLICY_CIDR || e->family != family)
		return false;
	unsigned full = e->prefix / 8, rest = e->prefix % 8;
	if (memcmp(e->addr, a, full) != 0)
		return false;
	return rest == 0 || ((e->addr[full] ^ a[full]) & (0xff00 >> rest)) == 0;
}

static bool name_matches(const struct policy_entry *e, const char *host)
{
	if (e->kind == POLICY_NAME)
		return strcmp(e->name, host) == 0;
	if (e->kind != POLICY_SUFFIX)
		return false;
	size_t hn = strlen(host), sn = strlen(e->name);
	return hn > sn + 1 && host[hn - sn - 1] == '.' && strcmp(host + hn - sn, e->name) == 0;
}

/* The first entry of l that matches, by name or address (family 0 for a name). */
static const struct policy_entry *list_find(const struct policy_list *l, const char *host,
					    int family, const uint8_t *a, uint16_t port)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct policy_entry *e = &l->v[i];
		if (port_in(e, port) && (family ? cidr_has(e, family, a) : name_matches(e, host)))
			return e;
	}
	return NULL;
}

static enum policy_verdict decide(const struct policy *p, const char *host, int family,
				  const uint8_t *a, uint16_t port, const struct policy_entry **rule)
{
	if ((*rule = list_find(&p->deny, host, family, a, port)))
		return POLICY_DENIED;
	if ((*rule = list_find(&p->allow, host, family, a, port)))
		return POLICY_ALLOWED;
	return POLICY_NO_MATCH;
}

enum policy_verdict policy_check_name(const struct policy *p, const char *host, uint16_t port,
				      const struct policy_entry **rule)
{
	uint8_t a[16];
	int family = parse_ip(host, strlen(host), a);

	return decide(p, host, family, a, port, rule);
}

/* sa's family, its address bytes in a, and its port. */
static int sa_addr(const struct sockaddr *sa, uint8_t a[16], uint16_t *port)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		memcpy(a, &sin->sin_addr, 4);
		*port = ntohs(sin->sin_port);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		/* An IPv4-mapped address is that IPv4 address, for every rule. */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(a, sin6->sin6_addr.s6_addr + 12, 4);
			*port = ntohs(sin6->sin6_port);
			return AF_INET;
		}
		memcpy(a, &sin6->sin6_addr, 16);
		*port = ntohs(sin6->sin6_port);
		return AF_INET6;
	}
	return 0;
}

/* The special ranges, as entries, so that one containment test serves both. */
static const struct {
	enum policy_special kind;
	struct policy_entry range;
} specials[] = {
    {POLICY_LINK_LOCAL, {.kind = POLICY_CIDR, .family = AF_INET, .prefix = 16, .addr = {169, 254}}},
    {POLICY_LINK_LOCAL,
     {.kind = POLICY_CIDR, .family = AF_INET6, .prefix = 10, .addr = {0xfe, 0x80}}},
    {POLICY_LOOPBACK, {.kind = POLICY_CIDR, .family = AF_INET, .prefix = 8, .addr = {127}}},
    {POLICY_LOOPBACK, {.kind = POLICY_CIDR, .family = AF_INET6, .prefix = 128, .addr = {[15] = 1}}},
    {POLICY_UNSPECIFIED, {.kind = POLICY_CIDR, .family = AF_INET, .prefix = 8, .addr = {0}}},
    {POLICY_UNSPECIFIED, {.kind = POLICY_CIDR, .family = AF_INET6, .prefix = 128, .addr = {0}}},
};

#define NSPECIALS (sizeof(specials) / sizeof(specials[0]))

/* The range sa is in, as an entry in *range (for POLICY_OWN, the one address). */
static enum policy_special special_range(int family, const uint8_t *a,
					 const struct sockaddr_storage *own, size_t nown,
					 struct policy_entry *range)
{
	for (size_t i = 0; i < NSPECIALS; i++) {
		if (cidr_has(&specials[i].range, family, a)) {
			*range = specials[i].range;
			return specials[i].kind;
		}
	}
	for (size_t i = 0; i < nown; i++) {
		uint8_t o[16];
		uint16_t port;
		if (sa_addr((const struct sockaddr *)&own[i], o, &port) == family &&
		    memcmp(o, a, family == AF_INET ? 4 : 16) == 0) {
			*range = (struct policy_entry){.kind = POLICY_CIDR,
						       .family = (uint8_t)family,
						       .prefix = family == AF_INET ? 32 : 128};
			memcpy(range->addr, a, 16);
			return POLICY_OWN;
		}
	}
	return POLICY_ORDINARY;
}

enum policy_special policy_special(const struct sockaddr *sa, const struct sockaddr_storage *own,
				   size_t nown)
{
	uint8_t a[16] = {0};
	uint16_t port;
	struct policy_entry range;
	int family = sa_addr(sa, a, &port);

	return family ? special_range(family, a, own, nown, &range) : POLICY_ORDINARY;
}

const char *policy_special_name(enum policy_special s)
{
	static const char *const names[] = {
	    [POLICY_ORDINARY] = "ordinary",   [POLICY_LINK_LOCAL] = "link-local",
	    [POLICY_LOOPBACK] = "loopback",   [POLICY_UNSPECIFIED] = "unspecified",
	    [POLICY_OWN] = "this host's own",
	};
	return names[s];
}

/* Does e lie wholly inside range? */
static bool cidr_within(const struct policy_entry *e, const struct policy_entry *range)
{
	return e->kind == POLICY_CIDR && e->prefix >= range->prefix &&
	       cidr_has(range, e->family, e->addr);
}

enum policy_verdict policy_check_addr(const struct policy *p, const struct sockaddr *sa,
				      const struct sockaddr_storage *own, size_t nown,
				      enum policy_special *special,
				      const struct policy_entry **rule)
{
	uint8_t a[16] = {0};
	uint16_t port;
	struct policy_entry range;
	int family = sa_addr(sa, a, &port);

	*special = POLICY_ORDINARY;
	*rule = NULL;
	if (!family)
		return POLICY_NO_MATCH;
	if ((*rule = list_find(&p->deny, NULL, family, a, port)))
		return POLICY_DENIED;
	*special = special_range(family, a, own, nown, &range);
	if (*special == POLICY_ORDINARY)
		return POLICY_ALLOWED;
	for (size_t i = 0; i < p->allow.n; i++) {
		const struct policy_entry *e = &p->allow.v[i];
		if (port_in(e, port) && cidr_has(e, family, a) && cidr_within(e, &range)) {
			*rule = e;
			return POLICY_ALLOWED;
		}
	}
	return POLICY_NO_MATCH;
}

static int port_cmp(const void *x, const void *y)
{
	uint16_t a = *(const uint16_t *)x, b = *(const uint16_t *)y;

	return (a > b) - (a < b);
}

/*
 * The ports the DNS mode listens on for name: those of the allow entries that
 * match it by name and give a port or a short range (not "*"), less those a
 * deny entry takes back, sorted, each once; at most max of them. 0: the name
 * has no explicit port, and the DNS answers NXDOMAIN.
 */
size_t policy_name_ports(const struct policy *p, const char *name, uint16_t *ports, size_t max)
{
	const struct policy_entry *rule;
	size_t n = 0;

	for (size_t i = 0; i < p->allow.n; i++) {
		const struct policy_entry *e = &p->allow.v[i];
		if (e->kind == POLICY_CIDR || !name_matches(e, name) ||
		    e->port_hi - e->port_lo >= DNS_RANGE_MAX)
			continue;
		for (unsigned port = e->port_lo; port <= e->port_hi && n < max; port++) {
			if (policy_check_name(p, name, (uint16_t)port, &rule) != POLICY_ALLOWED)
				continue;
			bool seen = false;
			for (size_t j = 0; j < n && !seen; j++)
				seen = ports[j] == port;
			if (!seen)
				ports[n++] = (uint16_t)port;
		}
	}
	qsort(ports, n, sizeof(*ports), port_cmp);
	return n;
}

void policy_free(struct policy *p)
{
	free(p->allow.v);
	free(p->deny.v);
	memset(p, 0, sizeof(*p));
}
