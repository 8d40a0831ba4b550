#ifndef QPROXY_MESSAGE_H
#define QPROXY_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/*
 * The control channel's messages: each a CBOR map with small integer keys,
 * framed on the wire by a 4-byte big-endian length. Keys a side does not know
 * are skipped, so a newer peer can add some; `proto` says which set it speaks.
 * Pure: bytes in, struct out, and back.
 */
#define MSG_PROTO 1
#define MSG_MAX (64 * 1024) /* a frame's CBOR, at most; a larger one drops the link */
#define MSG_MAX_RULES 1024
#define MSG_TEXT_MAX 1024
#define MSG_VERSION_MAX 32
/*
 * The status socket's reply, which carries the rules (at most what a HELLO holds)
 * and two counters per rule: it is not framed, and may be larger than a frame.
 */
#define MSG_STATUS_MAX (4 * MSG_MAX)

enum msg_type {
	MSG_HELLO = 1, /* version, proto, role, rules: sent by each side when the link comes up */
	MSG_LOG = 2,   /* enclave -> host: one log line */
	MSG_HEARTBEAT = 3, /* both ways, every few seconds */
	MSG_STATS_REQ = 4, /* host -> enclave: seq */
	MSG_STATS = 5,	   /* enclave -> host: seq, one entry per rule; its egress counters */
	/* The host half's answer on its status socket, never on the link. */
	MSG_STATUS = 6,	  /* version, cid, connected, peer_version, rules, stats, peer_stats, app */
	MSG_APP = 7,	  /* enclave -> host: app, the supervised app's state, on each change */
	MSG_TIME_REQ = 8, /* enclave -> host: seq; asks for the host's wall-clock time */
	MSG_TIME = 9,	  /* host -> enclave: seq, time_ns: the answer, at once */
};

#define MSG_APP_CMD_MAX 256

/* The app the enclave half runs (supervisor.h), as the host half learns it. */
struct msg_app {
	char command[MSG_APP_CMD_MAX]; /* its command line, cut to fit */
	uint32_t pid;		       /* while it runs, else 0 */
	bool running;
	uint64_t uptime_ms; /* while it runs: since it started, when this was sent */
	uint64_t restarts;  /* starts after the first */
	uint64_t exits;	    /* how often it has ended: each new one is logged on the host */
	uint32_t status;    /* the last exit: its code, or 128 + signal */
	uint32_t signal;    /* the signal that ended it, 0 for an exit */
};

struct msg_stat {
	uint32_t vsock_port; /* the rule's key: unique in a valid config */
	uint64_t open, total, failed, bytes_up, bytes_down;
	uint64_t refused; /* by max_connections */
	uint64_t limit;	  /* that half's max_connections, 0 for none */
};

/*
 * STATUS: the host half's egress counters for one destination, "host:port". At
 * most MSG_EGRESS_MAX of them, the busiest.
 */
#define MSG_EGRESS_MAX 32
#define MSG_DEST_MAX 270
struct msg_egress {
	char dest[MSG_DEST_MAX];
	uint64_t open, total, denied, bytes_up, bytes_down;
	uint64_t refused; /* by that half's [egress] max_connections */
};

struct msg {
	unsigned type;
	unsigned proto;
	unsigned role; /* HELLO: 0 host, 1 enclave */
	char version[MSG_VERSION_MAX];
	struct rule *rules; /* HELLO; allocated by msg_decode */
	size_t nrules;
	unsigned level; /* LOG */
	char text[MSG_TEXT_MAX];
	uint64_t seq;		/* HEARTBEAT, STATS_REQ, STATS */
	struct msg_stat *stats; /* STATS; STATUS: the host half's, one per rule; by msg_decode */
	size_t nstats;
	uint32_t cid;			    /* STATUS: the enclave's CID */
	bool connected;			    /* STATUS: the enclave half is linked */
	char peer_version[MSG_VERSION_MAX]; /* STATUS: its version, "" when not linked */
	/* STATUS: the enclave half's counters, one per rule, when it answered in time. */
	bool has_peer_stats;
	struct msg_stat *peer_stats; /* allocated by msg_decode */
	size_t npeer_stats;
	/*
	 * STATUS: the host half's egress by destination, busiest first; STATS: the enclave
	 * half's. Each sent when there is any.
	 */
	struct msg_egress *egress; /* allocated by msg_decode */
	size_t negress;
	struct msg_egress *peer_egress; /* STATUS: the enclave half's, from its STATS */
	size_t npeer_egress;
	/* APP; STATUS: when the enclave half runs an app and has said so. */
	bool has_app;
	struct msg_app app;
	uint64_t time_ns; /* TIME: the host's CLOCK_REALTIME, ns since the epoch */
	/* HELLO: [egress]'s vsock_port; 0 (and not sent) in a half without [egress]. */
	uint32_t egress_port;
};

/*
 * The bytes a HELLO carrying these rules and [egress]'s vsock_port (0: none) takes,
 * at most (with the longest version string): a config whose HELLO exceeds MSG_MAX, or which has more than
 * MSG_MAX_RULES rules, cannot cross the link, and must not pass the config check.
 * msg_rule_size() is one rule's share.
 */
size_t msg_hello_size(const struct rule *rules, size_t n, uint32_t egress_port);
size_t msg_rule_size(const struct rule *r);
/*
 * The same for the enclave half's STATS, with every counter at its largest: an
 * entry grows with max_connections, so limits on many rules may not fit either.
 */
size_t msg_stats_size(const struct rule *rules, size_t n);
size_t msg_stat_size(const struct rule *r);

/* The CBOR of m into buf; its length, or 0 when it does not fit. */
size_t msg_encode(const struct msg *m, uint8_t *buf, size_t cap);

/*
 * Decode one message from exactly len bytes. Everything is checked before
 * anything is allocated, and no allocation exceeds what the bytes can hold.
 * 0, or -1 with a reason in err; msg_free() in both cases.
 */
int msg_decode(const uint8_t *buf, size_t len, struct msg *m, char *err, size_t errlen);
void msg_free(struct msg *m);

#endif
