#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_AF_UNSPEC 0x0
#define V2_AF_INET 0x1
#define V2_AF_INET6 0x2
#define V2_STREAM 0x1

static long refuse(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return -1;
}

/* A decimal port as the specification writes it: 0..65535, no sign, no leading zero. */
static bool parse_port(const char *s, uint16_t *port)
{
	size_t n = strlen(s);
	unsigned v = 0;

	if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* An address and a port, both in network byte order, as a sockaddr of family. */
static void sockaddr_set(struct sockaddr_storage *ss, int family, const void *addr,
			 const void *port)
{
	memset(ss, 0, sizeof(*ss));
	ss->ss_family = (sa_family_t)family;
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		memcpy(&s->sin_addr, addr, 4);
		memcpy(&s->sin_port, port, 2);
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		memcpy(&s->sin6_addr, addr, 16);
		memcpy(&s->sin6_port, port, 2);
	}
}

static bool parse_addr(int family, const char *s, uint16_t port, struct sockaddr_storage *ss)
{
	uint8_t a[16];
	uint16_t p = htons(port);

	if (inet_pton(family, s, a) != 1)
		return false;
	sockaddr_set(ss, family, a, &p);
	return true;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n", fields one space apart. */
static long parse_v1(const uint8_t *p, size_t n, struct pp_header *h, char *err, size_t errlen)
{
	char line[PP_V1_MAX + 1], *field[6];
	size_t len = 0, nf = 0;

	while (len + 1 < n && len + 2 <= PP_V1_MAX && !(p[len] == '\r' && p[len + 1] == '\n'))
		len++;
	if (len + 1 >= n || !(p[len] == '\r' && p[len + 1] == '\n'))
		return len + 2 > PP_V1_MAX ? refuse(err, errlen, "v1: no CRLF within 107 bytes")
					   : 0;
	memcpy(line, p, len);
	line[len] = '\0';
	h->version = PP_V1;
	for (char *s = line; nf < 6; nf++) {
		field[nf] = s;
		s = strchr(s, ' ');
		if (!s) {
			nf++;
			break;
		}
		*s++ = '\0';
		if (nf == 5)
			return refuse(err, errlen, "v1: too many fields");
	}
	if (nf >= 2 && strcmp(field[1], "UNKNOWN") == 0) {
		/* The specification says to ignore whatever else the line holds. */
		h->local = true;
		return (long)len + 2;
	}
	if (nf < 2 || (strcmp(field[1], "TCP4") != 0 && strcmp(field[1], "TCP6") != 0))
		return refuse(err, errlen, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (nf != 6)
		return refuse(err, errlen, "v1: expected 6 fields");
	int family = field[1][3] == '4' ? AF_INET : AF_INET6;
	uint16_t sport, dport;
	if (!parse_port(field[4], &sport))
		return refuse(err, errlen, "v1: bad source port");
	if (!parse_port(field[5], &dport))
		return refuse(err, errlen, "v1: bad destination port");
	if (!parse_addr(family, field[2], sport, &h->src))
		return refuse(err, errlen, "v1: bad source address");
	if (!parse_addr(family, field[3], dport, &h->dst))
		return refuse(err, errlen, "v1: bad destination address");
	return (long)len + 2;
}

static long parse_v2(const uint8_t *p, size_t n, struct pp_header *h, char *err, size_t errlen)
{
	if (n < PP_V2_HEAD)
		return 0;
	h->version = PP_V2;
	if (p[12] >> 4 != 2)
		return refuse(err, errlen, "v2: version is not 2");
	unsigned cmd = p[12] & 0xf, fam = p[13] >> 4, proto = p[13] & 0xf;
	size_t len = (size_t)p[14] << 8 | p[15];
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return refuse(err, errlen, "v2: command is neither LOCAL nor PROXY");
	if (len > PP_V2_LEN_MAX)
		return refuse(err, errlen, "v2: longer than 536 bytes");
	if (n < PP_V2_HEAD + len)
		return 0;
	long total = (long)(PP_V2_HEAD + len);
	const uint8_t *a = p + PP_V2_HEAD;
	/* LOCAL: the proxy's own connection (a health check); no client is named. */
	if (cmd == V2_CMD_LOCAL || fam == V2_AF_UNSPEC) {
		h->local = true;
		return total;
	}
	if ((fam != V2_AF_INET && fam != V2_AF_INET6) || proto != V2_STREAM)
		return refuse(err, errlen, "v2: not TCP over IPv4 or IPv6");
	/* Source and destination addresses, then their ports; TLVs may follow. */
	size_t w = fam == V2_AF_INET ? 4 : 16;
	int af = fam == V2_AF_INET ? AF_INET : AF_INET6;
	if (len < 2 * w + 4)
		return refuse(err, errlen,
			      w == 4 ? "v2: too short for IPv4 addresses"
				     : "v2: too short for IPv6 addresses");
	sockaddr_set(&h->src, af, a, a + 2 * w);
	sockaddr_set(&h->dst, af, a + w, a + 2 * w + 2);
	return total;
}

long pp_parse(const uint8_t *p, size_t n, struct pp_header *h, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	/* Told apart by the first byte; a wrong byte is refused as soon as it arrives. */
	if (n > 0 && p[0] == v2_sig[0]) {
		size_t m = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
		if (memcmp(p, v2_sig, m) != 0)
			return refuse(err, errlen, "not a PROXY header");
		return n < sizeof(v2_sig) ? 0 : parse_v2(p, n, h, err, errlen);
	}
	size_t m = n < sizeof(v1_sig) - 1 ? n : sizeof(v1_sig) - 1;
	if (memcmp(p, v1_sig, m) != 0)
		return refuse(err, errlen, "not a PROXY header");
	return n < sizeof(v1_sig) - 1 ? 0 : parse_v1(p, n, h, err, errlen);
}

/* An address as IPv6: itself, or an IPv4 one mapped (::ffff:a.b.c.d). */
static void as_v6(const struct sockaddr *sa, uint8_t addr[16], uint16_t *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		memcpy(addr, &s->sin6_addr, 16);
		*port = s->sin6_port;
		return;
	}
	const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
	memset(addr, 0, 10);
	addr[10] = addr[11] = 0xff;
	memcpy(addr + 12, &s->sin_addr, 4);
	*port = s->sin_port;
}

static bool is_ip(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

size_t pp_encode(enum pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
		 uint8_t *out, size_t size)
{
	bool ip = is_ip(src) && is_ip(dst);
	bool v4 = ip && src->sa_family == AF_INET && dst->sa_family == AF_INET;
	uint8_t a[2][16];
	uint16_t port[2]; /* network byte order */

	if (v4) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src;
		const struct sockaddr_in *d = (const struct sockaddr_in *)dst;
		memcpy(a[0], &s->sin_addr, 4);
		memcpy(a[1], &d->sin_addr, 4);
		port[0] = s->sin_port;
		port[1] = d->sin_port;
	} else if (ip) {
		as_v6(src, a[0], &port[0]);
		as_v6(dst, a[1], &port[1]);
	}
	if (v == PP_V1) {
		char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN], line[PP_OUT_MAX + 1];
		int n;
		if (ip) {
			int af = v4 ? AF_INET : AF_INET6;
			inet_ntop(af, a[0], s, sizeof(s));
			inet_ntop(af, a[1], d, sizeof(d));
			n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
				     v4 ? "TCP4" : "TCP6", s, d, ntohs(port[0]), ntohs(port[1]));
		} else {
			n = snprintf(line, sizeof(line), "PROXY UNKNOWN\r\n");
		}
		if (n < 0 || (size_t)n > size)
			return 0;
		memcpy(out, line, (size_t)n);
		return (size_t)n;
	}
	size_t alen = !ip ? 0 : v4 ? 12 : 36, total = PP_V2_HEAD + alen;
	if (total > size)
		return 0;
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = ip ? 0x20 | V2_CMD_PROXY : 0x20 | V2_CMD_LOCAL;
	out[13] = !ip ? 0 : (v4 ? V2_AF_INET : V2_AF_INET6) << 4 | V2_STREAM;
	out[14] = 0;
	out[15] = (uint8_t)alen;
	if (ip) {
		size_t w = v4 ? 4 : 16;
		memcpy(out + 16, a[0], w);
		memcpy(out + 16 + w, a[1], w);
		memcpy(out + 16 + 2 * w, &port[0], 2);
		memcpy(out + 18 + 2 * w, &port[1], 2);
	}
	return total;
}
