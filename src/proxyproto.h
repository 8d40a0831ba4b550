#ifndef QPROXY_PROXYPROTO_H
#define QPROXY_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * The PROXY protocol (HAProxy's specification, versions 1 and 2): a header
 * that a proxy sends before the client's bytes, naming the client (source)
 * and the address it connected to (destination). Pure: bytes in and out.
 */
enum pp_version { PP_NONE = 0, PP_V1 = 1, PP_V2 = 2 };

/* The longest v1 line, "\r\n" included, as the specification bounds it. */
#define PP_V1_MAX 107
/* v2: the fixed 16 bytes, and what we take of its length field (addresses, then TLVs). */
#define PP_V2_HEAD 16
#define PP_V2_LEN_MAX 520
/* The most a header we accept can take: a v2 one at its bound. */
#define PP_IN_MAX (PP_V2_HEAD + PP_V2_LEN_MAX)
/* The most pp_encode() writes: a v1 TCP6 line (v2 for IPv6 is 52 bytes). */
#define PP_OUT_MAX PP_V1_MAX
#define PP_ERR_LEN 96

struct pp_header {
	enum pp_version version;
	/*
	 * No client named: v2 LOCAL, v1 UNKNOWN, or v2 with no address family. The
	 * connection's own addresses stand, and src and dst are left unset.
	 */
	bool local;
	struct sockaddr_storage src, dst; /* AF_INET or AF_INET6, ports included */
};

/*
 * Parse the header at the start of p[0, n): v1 or v2, told apart by their
 * first bytes. Returns its length (the client's own bytes follow it), 0 when
 * the n bytes are a good start but not yet a whole header (more may come: n
 * never reaches PP_IN_MAX then), or -1 with err saying why it is refused
 * ("not a PROXY header", "v1: bad source port", ...).
 */
long pp_parse(const uint8_t *p, size_t n, struct pp_header *h, char *err, size_t errlen);

/*
 * Write the header for a TCP connection from src to dst, at most PP_OUT_MAX
 * bytes; returns its length, or 0 when size is too small. IPv4 and IPv6 may
 * be mixed (the IPv4 one is then written as IPv4-mapped IPv6); any other
 * family gives v1's "PROXY UNKNOWN" or v2's LOCAL, which name no client.
 */
size_t pp_encode(enum pp_version v, const struct sockaddr *src, const struct sockaddr *dst,
		 uint8_t *out, size_t size);

#endif
