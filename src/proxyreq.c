#include "proxyreq.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* "\r\n\r\n" in buf[0, n): the head's length through it, or 0. */
static size_t head_end(const char *buf, size_t n)
{
	for (size_t i = 3; i < n; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

/* RFC 9110's tchar, which makes a method or a header name. */
static bool is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

__attribute__((format(printf, 5, 6))) static long refuse(int *status, int code, char *err,
							 size_t errlen, const char *fmt, ...)
{
	va_list ap;

	*status = code;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* It may quote the request: no byte of it may end the log line or steer a terminal. */
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return -1;
}

/*
 * host[:port] from s[0, n) into r: a name or IPv4 literal, or [IPv6]. With no
 * port, def (0: a port is required). false when it is none of those.
 */
static bool parse_authority(const char *s, size_t n, uint16_t def, struct http_req *r)
{
	const char *host = s, *colon = NULL;
	size_t hlen;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		if (!close)
			return false;
		host = s + 1;
		hlen = (size_t)(close - host);
		if ((size_t)(close + 1 - s) < n) {
			if (close[1] != ':')
				return false;
			colon = close + 1;
		}
	} else {
		colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
	}
	if (hlen == 0 || hlen > POLICY_NAME_MAX)
		return false;
	unsigned long port = def;
	if (colon) {
		size_t plen = (size_t)(s + n - colon - 1);
		port = 0;
		if (plen == 0 || plen > 5)
			return false;
		for (size_t i = 1; i <= plen; i++) {
			if (colon[i] < '0' || colon[i] > '9')
				return false;
			port = port * 10 + (unsigned long)(colon[i] - '0');
		}
	}
	if (port == 0 || port > 65535)
		return false;
	memcpy(r->host, host, hlen);
	r->host[hlen] = '\0';
	r->port = (uint16_t)port;
	return true;
}

long http_head_parse(const char *buf, size_t n, struct http_req *r, int *status, char *err,
		     size_t errlen)
{
	size_t len = head_end(buf, n < PROXYREQ_HEAD_MAX ? n : PROXYREQ_HEAD_MAX);

	memset(r, 0, sizeof(*r));
	if (len == 0 && n < PROXYREQ_HEAD_MAX)
		return 0;
	if (len == 0)
		return refuse(status, 431, err, errlen, "request head longer than %d bytes",
			      PROXYREQ_HEAD_MAX);
	if (memchr(buf, '\0', len))
		return refuse(status, 400, err, errlen, "a NUL byte in the request head");
	const char *eol = memmem(buf, len, "\r\n", 2); /* found: the head ends with two */
	size_t m = 0;
	while (m < (size_t)(eol - buf) && is_tchar(buf[m]))
		m++;
	if (m == 0 || buf[m] != ' ')
		return refuse(status, 400, err, errlen, "malformed request line");
	const char *target = buf + m + 1;
	const char *sp = memchr(target, ' ', (size_t)(eol - target));
	if (!sp || sp == target ||
	    (strncmp(sp, " HTTP/1.1\r\n", 11) != 0 && strncmp(sp, " HTTP/1.0\r\n", 11) != 0))
		return refuse(status, 400, err, errlen, "malformed request line");
	size_t tlen = (size_t)(sp - target);
	r->line_end = (size_t)(eol - buf) + 2;
	r->method_len = m;
	if (m == 7 && memcmp(buf, "CONNECT", 7) == 0) {
		r->form = HTTP_CONNECT;
		if (!parse_authority(target, tlen, 0, r))
			return refuse(status, 400, err, errlen, "CONNECT needs host:port, got %.*s",
				      (int)(tlen < 80 ? tlen : 80), target);
		return (long)len;
	}
	if (tlen < 7 || strncasecmp(target, "http://", 7) != 0) {
		if (tlen >= 8 && strncasecmp(target, "https://", 8) == 0)
			return refuse(status, 501, err, errlen,
				      "https:// in absolute form: use CONNECT for TLS");
		return refuse(status, 400, err, errlen,
			      "not a proxy request: expected CONNECT or an http:// URL");
	}
	r->form = HTTP_ABSOLUTE;
	const char *auth = target + 7, *end = target + tlen;
	const char *p = auth;
	while (p < end && *p != '/' && *p != '?' && *p != '#')
		p++;
	if (memchr(auth, '@', (size_t)(p - auth)) ||
	    !parse_authority(auth, (size_t)(p - auth), 80, r))
		return refuse(status, 400, err, errlen, "bad host in the URL %.*s",
			      (int)(tlen < 80 ? tlen : 80), target);
	r->path_off = (size_t)(p - buf);
	r->path_len = (size_t)(end - p);
	return (long)len;
}

/* Headers the proxy acts on, or that speak of the client's connection to it. */
static bool hop_by_hop(const char *line, size_t n)
{
	static const char *const names[] = {"connection", "proxy-connection", "keep-alive",
					    "proxy-authorization"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		size_t k = strlen(names[i]);
		if (n > k && line[k] == ':' && strncasecmp(line, names[i], k) == 0)
			return true;
	}
	return false;
}

size_t http_head_origin(const char *buf, size_t head_len, const struct http_req *r, char *out,
			size_t cap)
{
	const char *version = buf + r->line_end - 10; /* "HTTP/1.x\r\n" */
	int n = snprintf(out, cap, "%.*s %s%.*s %.8s\r\n", (int)r->method_len, buf,
			 r->path_len && buf[r->path_off] == '/' ? "" : "/", (int)r->path_len,
			 buf + r->path_off, version);
	if (n < 0 || (size_t)n >= cap)
		return 0;
	size_t len = (size_t)n;
	/* Each header line up to the blank line, which ends the head. */
	for (size_t at = r->line_end; at + 2 < head_len;) {
		const char *eol = memmem(buf + at, head_len - at, "\r\n", 2);
		size_t ln = (size_t)(eol - (buf + at)) + 2;
		if (!hop_by_hop(buf + at, ln)) {
			if (len + ln >= cap)
				return 0;
			memcpy(out + len, buf + at, ln);
			len += ln;
		}
		at += ln;
	}
	static const char close_hdr[] = "Connection: close\r\n\r\n";
	if (len + sizeof(close_hdr) > cap)
		return 0;
	memcpy(out + len, close_hdr, sizeof(close_hdr) - 1);
	return len + sizeof(close_hdr) - 1;
}

long socks_greeting_parse(const uint8_t *b, size_t n, bool *no_auth)
{
	*no_auth = false;
	if (n >= 1 && b[0] != 5)
		return -1;
	if (n < 2)
		return 0;
	if (b[1] == 0)
		return -1;
	if (n < 2 + (size_t)b[1])
		return 0;
	for (size_t i = 0; i < b[1]; i++)
		*no_auth |= b[2 + i] == 0;
	return 2 + (long)b[1];
}

long socks_request_parse(const uint8_t *b, size_t n, char host[POLICY_NAME_MAX + 1], uint16_t *port,
			 uint8_t *rep, char *err, size_t errlen)
{
	size_t alen;

	*rep = SOCKS_FAILURE;
	if (n < 4)
		return 0;
	if (b[0] != 5 || b[2] != 0) {
		snprintf(err, errlen, "malformed SOCKS5 request");
		return -1;
	}
	switch (b[3]) {
	case 1:
		alen = 4;
		break;
	case 4:
		alen = 16;
		break;
	case 3:
		if (n < 5)
			return 0;
		alen = 1 + (size_t)b[4];
		if (b[4] == 0) {
			snprintf(err, errlen, "SOCKS5 request with an empty name");
			return -1;
		}
		break;
	default:
		*rep = SOCKS_ATYP_UNSUPPORTED;
		snprintf(err, errlen, "SOCKS5 address type %u is not supported", b[3]);
		return -1;
	}
	if (n < 4 + alen + 2)
		return 0;
	if (b[1] != 1) {
		*rep = SOCKS_CMD_UNSUPPORTED;
		snprintf(err, errlen, "SOCKS5 command %u is not supported: only CONNECT", b[1]);
		return -1;
	}
	if (b[3] == 3) {
		/* A length byte allows 255: two more than any name, and than host holds. */
		if (b[4] > POLICY_NAME_MAX) {
			snprintf(err, errlen, "SOCKS5 request with a name of %u bytes, at most %d",
				 b[4], POLICY_NAME_MAX);
			return -1;
		}
		if (memchr(b + 5, '\0', b[4])) {
			snprintf(err, errlen, "SOCKS5 request with a NUL in its name");
			return -1;
		}
		memcpy(host, b + 5, b[4]);
		host[b[4]] = '\0';
	} else {
		inet_ntop(b[3] == 1 ? AF_INET : AF_INET6, b + 4, host, POLICY_NAME_MAX + 1);
	}
	*port = (uint16_t)(b[4 + alen] << 8 | b[4 + alen + 1]);
	if (*port == 0) {
		snprintf(err, errlen, "SOCKS5 request for port 0");
		return -1;
	}
	return (long)(4 + alen + 2);
}
