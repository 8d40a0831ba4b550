#ifndef QPROXY_EGRESS_WIRE_H
#define QPROXY_EGRESS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/*
 * What goes over an egress connection before its relay: the enclave half's
 * request naming a destination, then the host half's reply. Each is one CBOR
 * map with small integer keys, framed as the control messages are, by a 4-byte
 * big-endian length; keys a side does not know are skipped. Pure: bytes in,
 * struct out, and back.
 *
 * The request is small and has a bound: a frame past EGRESS_FRAME_MAX (which also bounds
 * the reply: reason, address and rule at their longest), or one
 * that is not a request, is refused whole.
 */
#define EGRESS_FRAME_MAX 1024
#define EGRESS_REASON_MAX 400
#define EGRESS_ADDR_MAX 128			/* as NET_ADDR_LEN */
#define EGRESS_RULE_MAX (POLICY_ENTRY_LEN + 16) /* "\"entry\" (line N)" */

enum egress_status {
	EGRESS_OK = 0,
	EGRESS_DENIED = 1,  /* by the policy */
	EGRESS_NO_NAME = 2, /* the name does not resolve */
	EGRESS_REFUSED = 3, /* the connect failed, or no address may be used */
	EGRESS_TIMEOUT = 4, /* the connect, or the lookup, took too long */
	EGRESS_BAD = 5,	    /* the request itself was refused */
	EGRESS_BUSY = 6,    /* max_connections are open */
	EGRESS_STATUS_MAX = 6,
};

struct egress_req {
	char host[POLICY_NAME_MAX + 1]; /* a name or an IP literal, as the client gave it */
	uint16_t port;
};

struct egress_reply {
	unsigned status;		/* enum egress_status */
	char reason[EGRESS_REASON_MAX]; /* "" for EGRESS_OK */
	char addr[EGRESS_ADDR_MAX];	/* the address connected to, or "" */
	char rule[EGRESS_RULE_MAX];	/* the entry that decided, and its line, or "" */
};

/* A whole frame (length and CBOR) into buf; its length, or 0 when it does not fit. */
size_t egress_req_encode(const struct egress_req *r, uint8_t *buf, size_t cap);
size_t egress_reply_encode(const struct egress_reply *r, uint8_t *buf, size_t cap);

/*
 * Of n bytes read so far, how long is the whole frame? 0 while its length is
 * not all there yet; -1 when the length is 0 or past EGRESS_FRAME_MAX. Read no
 * more than that, so that no byte of the relay is taken for the frame's.
 */
long egress_frame_len(const uint8_t *buf, size_t n);

/* Decode a frame's CBOR, len bytes (after the length). 0, or -1 with a reason in err. */
int egress_req_decode(const uint8_t *buf, size_t len, struct egress_req *r, char *err,
		      size_t errlen);
int egress_reply_decode(const uint8_t *buf, size_t len, struct egress_reply *r, char *err,
			size_t errlen);

/* "ok", "denied", "no such name", "refused", "timeout", "bad request", "busy". */
const char *egress_status_name(unsigned status);

#endif
