#ifndef QPROXY_CONFIG_H
#define QPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/* inih reads at most 199 bytes a line, so no value can be longer. */
#define CONFIG_STR_MAX 200

enum rule_dir { RULE_INBOUND, RULE_OUTBOUND };

struct rule {
	enum rule_dir dir;
	int line; /* line of the rule's [[...]] header */
	uint32_t vsock_port;
	uint16_t host_port;    /* inbound: the host half listens on 0.0.0.0:host_port */
	uint16_t enclave_port; /* inbound: the enclave half connects to 127.0.0.1:enclave_port */
	uint16_t tcp_port;     /* outbound: enclave listens enclave_address:tcp_port, host connects
				  hostname:tcp_port */
	char hostname[CONFIG_STR_MAX]; /* outbound */
	uint32_t enclave_address; /* outbound: in 127.0.0.0/8, host byte order; default 127.0.0.1 */
	/*
	 * Per half, each enforced by the half whose config says so, and never compared
	 * between halves: 0 when not set. max_connections: open at once, past it a new
	 * client is closed at once; idle_timeout: seconds without a byte either way;
	 * connect_timeout: seconds per address tried (unset: CONFIG_CONNECT_TIMEOUT).
	 */
	uint32_t max_connections;
	uint32_t idle_timeout;
	uint32_t connect_timeout;
	/* inbound, acted on by the host half only (see proxyproto.h) */
	uint8_t proxy_protocol;	    /* enum pp_version: the header it sends; PP_NONE by default */
	bool accept_proxy_protocol; /* its clients send one, which names the original client */
};

#define CONFIG_CONNECT_TIMEOUT 5
#define CONFIG_MAX_CONNECTIONS 1000000
#define CONFIG_IDLE_TIMEOUT_MAX 86400 /* a day */
#define CONFIG_CONNECT_TIMEOUT_MAX 300

struct config {
	struct rule *rules;
	size_t nrules;

	bool has_log_location;		      /* a [log_location] table was present */
	char host_log[CONFIG_STR_MAX];	      /* "" when not set */
	char enclave_log[CONFIG_STR_MAX];     /* "" when not set */
	char host_log_dir[CONFIG_STR_MAX];    /* defaults to /var/log/qproxy */
	char enclave_log_dir[CONFIG_STR_MAX]; /* defaults to /var/log/qproxy */
	int log_level;			      /* enum log_level, or -1 when not set */

	char hosts_file[CONFIG_STR_MAX]; /* [enclave] hosts_file, "" when not set */
	char metrics[CONFIG_STR_MAX];	 /* [host] metrics, "IP:PORT", "" when not set */

	/*
	 * [egress]: destinations by policy, not by rule (see policy.h). The host half
	 * listens on egress_vsock_port; the enclave half serves HTTP CONNECT and
	 * SOCKS5 on 127.0.0.1:egress_proxy_port, and with egress_dns a DNS server.
	 */
	bool has_egress;			 /* an [egress] table was present */
	uint32_t egress_vsock_port;		 /* required in [egress]; 0 without it */
	uint16_t egress_proxy_port;		 /* 0 when not set: no proxy */
	bool egress_dns;			 /* enclave: answer DNS on 127.0.0.1:53 */
	char egress_resolv_conf[CONFIG_STR_MAX]; /* "" when not set */
	uint32_t egress_connect_timeout; /* seconds per address, 0: CONFIG_CONNECT_TIMEOUT */
	uint32_t egress_max_connections; /* each half's own cap on egress connections, 0: none */
	uint32_t egress_idle_timeout;	 /* seconds without a byte either way, 0: none */
	struct policy egress;		 /* allow and deny, each entry with its line */
	bool sync_clock; /* [enclave] sync_clock: the enclave half sets its clock from the host's */

	/* Every problem found, each "FILE:LINE: message", in line order. */
	char **errors;
	size_t nerrors;
	/* "FILE:LINE: warning: message": legal but doubtful; only when there are no errors. */
	char **warnings;
	size_t nwarnings;
	/*
	 * Memory ran out while parsing: the config is refused, and the errors list may
	 * miss what could not be stored. Said by the caller, which needs no memory for it.
	 */
	bool nomem;
};

/*
 * Parse and validate. control_port is the vsock port of the control channel,
 * which no rule may use. Returns 0 when the config is valid; otherwise -1 with
 * every error in c->errors (a file that cannot be read is one error too).
 * The config must be freed with config_free() in both cases.
 */
int config_load(struct config *c, const char *path, uint32_t control_port);

/* The same from an open stream; name is used in the messages. */
int config_parse(struct config *c, const char *name, FILE *f, uint32_t control_port);

/*
 * A rule as users see it everywhere, in logs, status and diffs: "inbound 5050"
 * (the host port its clients connect to), "outbound api.example.com:443" (what
 * it reaches; an IPv6 literal in brackets). Returns buf.
 */
#define CONFIG_RULE_NAME_LEN (CONFIG_STR_MAX + 24)
const char *config_rule_name(const struct rule *r, char *buf, size_t size);

/*
 * Every difference between the host's rules and the enclave's, one line each,
 * handed to emit; rules are matched by vsock_port. Returns how many there were.
 * In config_diff.c.
 */
size_t config_diff(const struct rule *host, size_t nhost, const struct rule *enclave,
		   size_t nenclave, void (*emit)(void *arg, const char *line), void *arg);
/*
 * The same for [egress]'s vsock_port, 0 in a half without [egress]: the enclave half's
 * egress goes to its port, which the host half must listen on. Returns 0 or 1.
 */
size_t config_diff_egress(uint32_t host, uint32_t enclave,
			  void (*emit)(void *arg, const char *line), void *arg);

/* The rules and log settings as canonical TOML, which parses back to the same config. */
void config_print(const struct config *c, FILE *out);

void config_free(struct config *c);

#endif
