#include "message.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbor.h"

enum {
	K_TYPE,
	K_PROTO,
	K_VERSION,
	K_ROLE,
	K_RULES,
	K_LEVEL,
	K_TEXT,
	K_SEQ,
	K_STATS,
	K_CID,
	K_CONNECTED,
	K_PEER_VERSION,
	K_PEER_STATS,
	K_EGRESS,
	K_PEER_EGRESS,
	K_APP,
	K_TIME,
	K_EGRESS_PORT,
};
enum { R_DIR, R_VSOCK, R_HOST_PORT, R_ENCLAVE_PORT, R_TCP_PORT, R_HOSTNAME, R_ADDRESS };
enum { A_CMD, A_PID, A_RUNNING, A_UPTIME, A_RESTARTS, A_EXITS, A_STATUS, A_SIGNAL, A_KEYS };
enum { S_VSOCK, S_OPEN, S_TOTAL, S_FAILED, S_UP, S_DOWN, S_REFUSED, S_LIMIT, S_KEYS };
enum { E_DEST, E_OPEN, E_TOTAL, E_DENIED, E_UP, E_DOWN, E_REFUSED, E_KEYS };

/*
 * A status reply holds the rules (within a HELLO's MSG_MAX, which the config check
 * ensures) and two counters per rule: each an S_KEYS-pair map of a key byte and a uint of at
 * most 9 bytes, under an array head of at most 3 bytes (MSG_MAX_RULES < 65536).
 */
#define STAT_MAX (1 + S_KEYS * (1 + 9))
/* An egress entry: its destination's text and five counters, each under a key byte. */
#define EGRESS_ENTRY_MAX (1 + 1 + 3 + MSG_DEST_MAX + (E_KEYS - 1) * (1 + 9))
#define APP_MAX (1 + A_KEYS * (1 + 9) + MSG_APP_CMD_MAX + 2)
_Static_assert(MSG_STATUS_MAX >= MSG_MAX + 2 * (1 + 3 + MSG_MAX_RULES * STAT_MAX) +
				     2 * MSG_VERSION_MAX + APP_MAX + 64 +
				     2 * (3 + MSG_EGRESS_MAX * EGRESS_ENTRY_MAX),
	       "a status reply may not fit in MSG_STATUS_MAX");

/* A message is a map of maps in an array in a map: deeper is not ours. */
#define MSG_DEPTH 4

static void put_rule(struct cbor_enc *e, const struct rule *r)
{
	bool in = r->dir == RULE_INBOUND;

	cbor_put_map(e, 5);
	cbor_put_uint(e, R_DIR);
	cbor_put_uint(e, in ? 0 : 1);
	cbor_put_uint(e, R_VSOCK);
	cbor_put_uint(e, r->vsock_port);
	if (in) {
		cbor_put_uint(e, R_HOST_PORT);
		cbor_put_uint(e, r->host_port);
		cbor_put_uint(e, R_ENCLAVE_PORT);
		cbor_put_uint(e, r->enclave_port);
		cbor_put_uint(e, R_TCP_PORT); /* keeps every rule a 5-pair map */
		cbor_put_uint(e, 0);
	} else {
		cbor_put_uint(e, R_TCP_PORT);
		cbor_put_uint(e, r->tcp_port);
		cbor_put_uint(e, R_HOSTNAME);
		cbor_put_cstr(e, r->hostname);
		cbor_put_uint(e, R_ADDRESS);
		cbor_put_uint(e, r->enclave_address);
	}
}

static void put_stat(struct cbor_enc *e, const struct msg_stat *s)
{
	const uint64_t v[S_KEYS] = {s->vsock_port, s->open,	  s->total,   s->failed,
				    s->bytes_up,   s->bytes_down, s->refused, s->limit};
	/*
	 * refused and limit only when not zero: a rule without max_connections refuses
	 * nothing, so its entry stays the size it always was, and only limits can make
	 * a STATS frame outgrow MSG_MAX. What is decoded encodes back the same.
	 */
	bool has[S_KEYS];
	unsigned n = 0;

	for (unsigned k = 0; k < S_KEYS; k++)
		n += has[k] = k < S_REFUSED || v[k] != 0;
	cbor_put_map(e, n);
	for (unsigned k = 0; k < S_KEYS; k++) {
		if (!has[k])
			continue;
		cbor_put_uint(e, k);
		cbor_put_uint(e, v[k]);
	}
}

static void put_egress(struct cbor_enc *e, const struct msg_egress *v, size_t n)
{
	cbor_put_array(e, n);
	for (size_t i = 0; i < n; i++) {
		const uint64_t c[E_KEYS] = {0,		 v[i].open,	  v[i].total,	v[i].denied,
					    v[i].bytes_up, v[i].bytes_down, v[i].refused};
		cbor_put_map(e, E_KEYS);
		cbor_put_uint(e, E_DEST);
		cbor_put_cstr(e, v[i].dest);
		for (unsigned k = E_OPEN; k < E_KEYS; k++) {
			cbor_put_uint(e, k);
			cbor_put_uint(e, c[k]);
		}
	}
}

static void put_app(struct cbor_enc *e, const struct msg_app *a)
{
	const uint64_t v[A_KEYS] = {0,		 a->pid,   0,	      a->uptime_ms,
				    a->restarts, a->exits, a->status, a->signal};

	cbor_put_map(e, A_KEYS);
	cbor_put_uint(e, A_CMD);
	cbor_put_cstr(e, a->command);
	cbor_put_uint(e, A_RUNNING);
	cbor_put_bool(e, a->running);
	for (unsigned k = A_PID; k < A_KEYS; k++) {
		if (k == A_RUNNING)
			continue;
		cbor_put_uint(e, k);
		cbor_put_uint(e, v[k]);
	}
}

static void put_rules(struct cbor_enc *e, const struct rule *rules, size_t n)
{
	cbor_put_array(e, n);
	for (size_t i = 0; i < n; i++)
		put_rule(e, &rules[i]);
}

static void put_stats(struct cbor_enc *e, const struct msg_stat *stats, size_t n)
{
	cbor_put_array(e, n);
	for (size_t i = 0; i < n; i++)
		put_stat(e, &stats[i]);
}

size_t msg_rule_size(const struct rule *r)
{
	uint8_t buf[CONFIG_STR_MAX + 64];
	struct cbor_enc e;

	cbor_enc_init(&e, buf, sizeof(buf));
	put_rule(&e, r);
	return cbor_enc_done(&e);
}

/* m with an empty array, grown to hold one share per rule: the message with them all. */
static size_t with_rules(const struct msg *m, const struct rule *rules, size_t n,
			 size_t (*share)(const struct rule *r))
{
	uint8_t buf[MSG_VERSION_MAX + 64];
	struct cbor_enc e;

	size_t size = msg_encode(m, buf, sizeof(buf)) - 1;
	cbor_enc_init(&e, buf, sizeof(buf));
	cbor_put_array(&e, n);
	size += cbor_enc_done(&e);
	for (size_t i = 0; i < n; i++)
		size += share(&rules[i]);
	return size;
}

size_t msg_hello_size(const struct rule *rules, size_t n, uint32_t egress_port)
{
	struct msg m = {
	    .type = MSG_HELLO, .proto = UINT32_MAX, .role = 1, .egress_port = egress_port};

	memset(m.version, 'v', sizeof(m.version) - 1);
	return with_rules(&m, rules, n, msg_rule_size);
}

size_t msg_stat_size(const struct rule *r)
{
	/* Only a rule with max_connections can refuse. */
	uint64_t refused = r->max_connections ? UINT64_MAX : 0;
	struct msg_stat s = {r->vsock_port, UINT64_MAX, UINT64_MAX, UINT64_MAX,
			     UINT64_MAX,    UINT64_MAX, refused,    r->max_connections};
	uint8_t buf[STAT_MAX];
	struct cbor_enc e;

	cbor_enc_init(&e, buf, sizeof(buf));
	put_stat(&e, &s);
	return cbor_enc_done(&e);
}

size_t msg_stats_size(const struct rule *rules, size_t n)
{
	struct msg m = {.type = MSG_STATS, .seq = UINT64_MAX};

	return with_rules(&m, rules, n, msg_stat_size);
}

size_t msg_encode(const struct msg *m, uint8_t *buf, size_t cap)
{
	struct cbor_enc e;

	cbor_enc_init(&e, buf, cap);
	switch (m->type) {
	case MSG_HELLO:
		cbor_put_map(&e, 5u + (m->egress_port != 0));
		cbor_put_uint(&e, K_TYPE);
		cbor_put_uint(&e, m->type);
		cbor_put_uint(&e, K_PROTO);
		cbor_put_uint(&e, m->proto);
		cbor_put_uint(&e, K_VERSION);
		cbor_put_cstr(&e, m->version);
		cbor_put_uint(&e, K_ROLE);
		cbor_put_uint(&e, m->role);
		cbor_put_uint(&e, K_RULES);
		put_rules(&e, m->rules, m->nrules);
		if (m->egress_port) {
			cbor_put_uint(&e, K_EGRESS_PORT);
			cbor_put_uint(&e, m->egress_port);
		}
		break;
	case MSG_LOG:
		cbor_put_map(&e, 3);
		cbor_put_uint(&e, K_TYPE);
		cbor_put_uint(&e, m->type);
		cbor_put_uint(&e, K_LEVEL);
		cbor_put_uint(&e, m->level);
		cbor_put_uint(&e, K_TEXT);
		cbor_put_cstr(&e, m->text);
		break;
	case MSG_HEARTBEAT:
	case MSG_STATS_REQ:
	case MSG_STATS:
	case MSG_TIME_REQ:
	case MSG_TIME:
		cbor_put_map(&e, m->type == MSG_STATS  ? 3 + (m->negress > 0)
				 : m->type == MSG_TIME ? 3
						       : 2);
		cbor_put_uint(&e, K_TYPE);
		cbor_put_uint(&e, m->type);
		cbor_put_uint(&e, K_SEQ);
		cbor_put_uint(&e, m->seq);
		if (m->type == MSG_STATS) {
			cbor_put_uint(&e, K_STATS);
			put_stats(&e, m->stats, m->nstats);
		}
		if (m->type == MSG_STATS && m->negress > 0) {
			cbor_put_uint(&e, K_EGRESS);
			put_egress(&e, m->egress, m->negress);
		}
		if (m->type == MSG_TIME) {
			cbor_put_uint(&e, K_TIME);
			cbor_put_uint(&e, m->time_ns);
		}
		break;
	case MSG_APP:
		cbor_put_map(&e, m->has_app ? 2 : 1);
		cbor_put_uint(&e, K_TYPE);
		cbor_put_uint(&e, m->type);
		if (m->has_app) {
			cbor_put_uint(&e, K_APP);
			put_app(&e, &m->app);
		}
		break;
	case MSG_STATUS:
		cbor_put_map(&e, 7u + m->has_peer_stats + (m->negress > 0) + (m->npeer_egress > 0) +
				     m->has_app);
		cbor_put_uint(&e, K_TYPE);
		cbor_put_uint(&e, m->type);
		cbor_put_uint(&e, K_VERSION);
		cbor_put_cstr(&e, m->version);
		cbor_put_uint(&e, K_CID);
		cbor_put_uint(&e, m->cid);
		cbor_put_uint(&e, K_CONNECTED);
		cbor_put_bool(&e, m->connected);
		cbor_put_uint(&e, K_PEER_VERSION);
		cbor_put_cstr(&e, m->peer_version);
		cbor_put_uint(&e, K_RULES);
		put_rules(&e, m->rules, m->nrules);
		cbor_put_uint(&e, K_STATS);
		put_stats(&e, m->stats, m->nstats);
		if (m->has_peer_stats) {
			cbor_put_uint(&e, K_PEER_STATS);
			put_stats(&e, m->peer_stats, m->npeer_stats);
		}
		if (m->negress > 0) {
			cbor_put_uint(&e, K_EGRESS);
			put_egress(&e, m->egress, m->negress);
		}
		if (m->npeer_egress > 0) {
			cbor_put_uint(&e, K_PEER_EGRESS);
			put_egress(&e, m->peer_egress, m->npeer_egress);
		}
		if (m->has_app) {
			cbor_put_uint(&e, K_APP);
			put_app(&e, &m->app);
		}
		break;
	default:
		return 0;
	}
	return cbor_enc_done(&e);
}

struct rd {
	struct cbor_dec d;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static bool fail(struct rd *r, const char *fmt, ...)
{
	va_list ap;

	if (r->err[0])
		return false; /* the first reason is the one that counts */
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	return false;
}

static bool get_uint(struct rd *r, const char *what, uint64_t max, uint64_t *v)
{
	struct cbor_item it;

	if (!cbor_next(&r->d, &it))
		return fail(r, "%s: %s", what, cbor_strerror(r->d.err));
	if (it.type != CBOR_UINT || it.u > max)
		return fail(r, "%s: expected an unsigned integer up to %llu", what,
			    (unsigned long long)max);
	*v = it.u;
	return true;
}

static bool get_bool(struct rd *r, const char *what, bool *v)
{
	struct cbor_item it;

	if (!cbor_next(&r->d, &it))
		return fail(r, "%s: %s", what, cbor_strerror(r->d.err));
	if (it.type != CBOR_BOOL)
		return fail(r, "%s: expected true or false", what);
	*v = it.b;
	return true;
}

static bool get_text(struct rd *r, const char *what, char *out, size_t cap)
{
	struct cbor_item it;

	if (!cbor_next(&r->d, &it))
		return fail(r, "%s: %s", what, cbor_strerror(r->d.err));
	if (it.type != CBOR_TEXT || it.len >= cap || memchr(it.ptr, '\0', it.len))
		return fail(r, "%s: expected text of at most %zu bytes", what, cap - 1);
	memcpy(out, it.ptr, it.len);
	out[it.len] = '\0';
	return true;
}

/* The head of a container of type t; its count in *n, at most max. */
static bool get_container(struct rd *r, const char *what, enum cbor_type t, uint64_t max,
			  uint64_t *n)
{
	struct cbor_item it;

	if (!cbor_next(&r->d, &it))
		return fail(r, "%s: %s", what, cbor_strerror(r->d.err));
	if (it.type != t || it.u > max)
		return fail(r, "%s: expected %s of at most %llu", what,
			    t == CBOR_MAP ? "a map" : "an array", (unsigned long long)max);
	*n = it.u;
	return true;
}

static bool skip(struct rd *r)
{
	return cbor_skip(&r->d, MSG_DEPTH) || fail(r, "%s", cbor_strerror(r->d.err));
}

static bool get_rule(struct rd *r, struct rule *out)
{
	uint64_t n, k, v, dir = 2;

	if (!get_container(r, "rule", CBOR_MAP, 64, &n))
		return false;
	memset(out, 0, sizeof(*out));
	for (uint64_t i = 0; i < n; i++) {
		if (!get_uint(r, "rule key", UINT64_MAX, &k))
			return false;
		bool ok = true;
		switch (k) {
		case R_DIR:
			ok = get_uint(r, "rule direction", 1, &dir);
			break;
		case R_VSOCK:
			ok = get_uint(r, "vsock_port", UINT32_MAX, &v);
			out->vsock_port = (uint32_t)v;
			break;
		case R_HOST_PORT:
		case R_ENCLAVE_PORT:
		case R_TCP_PORT:
			ok = get_uint(r, "port", UINT16_MAX, &v);
			*(k == R_HOST_PORT	? &out->host_port
			  : k == R_ENCLAVE_PORT ? &out->enclave_port
						: &out->tcp_port) = (uint16_t)v;
			break;
		case R_HOSTNAME:
			ok = get_text(r, "hostname", out->hostname, sizeof(out->hostname));
			break;
		case R_ADDRESS:
			ok = get_uint(r, "enclave_address", UINT32_MAX, &v);
			out->enclave_address = (uint32_t)v;
			break;
		default:
			ok = skip(r);
		}
		if (!ok)
			return false;
	}
	if (dir > 1)
		return fail(r, "rule without a direction");
	/* Only the fields of its direction: a peer's extras must not read as differences. */
	if (dir == 0) {
		out->dir = RULE_INBOUND;
		out->tcp_port = 0;
		out->enclave_address = 0;
		memset(out->hostname, 0, sizeof(out->hostname));
	} else {
		out->dir = RULE_OUTBOUND;
		out->host_port = out->enclave_port = 0;
	}
	return true;
}

static bool get_stat(struct rd *r, struct msg_stat *out)
{
	uint64_t n, k, v;
	uint64_t *fields[S_KEYS] = {NULL,	    &out->open,	      &out->total,   &out->failed,
				    &out->bytes_up, &out->bytes_down, &out->refused, &out->limit};

	if (!get_container(r, "stat", CBOR_MAP, 64, &n))
		return false;
	memset(out, 0, sizeof(*out));
	for (uint64_t i = 0; i < n; i++) {
		if (!get_uint(r, "stat key", UINT64_MAX, &k))
			return false;
		if (k == S_VSOCK) {
			if (!get_uint(r, "vsock_port", UINT32_MAX, &v))
				return false;
			out->vsock_port = (uint32_t)v;
		} else if (k < S_KEYS) {
			if (!get_uint(r, "counter", UINT64_MAX, fields[k]))
				return false;
		} else if (!skip(r)) {
			return false;
		}
	}
	return true;
}

static bool get_egress(struct rd *r, struct msg_egress *out)
{
	uint64_t n, k;
	uint64_t *fields[E_KEYS] = {NULL,	    &out->open,	      &out->total,  &out->denied,
				    &out->bytes_up, &out->bytes_down, &out->refused};

	if (!get_container(r, "egress entry", CBOR_MAP, 64, &n))
		return false;
	memset(out, 0, sizeof(*out));
	for (uint64_t i = 0; i < n; i++) {
		if (!get_uint(r, "egress key", UINT64_MAX, &k))
			return false;
		bool ok = k == E_DEST  ? get_text(r, "destination", out->dest, sizeof(out->dest))
			  : k < E_KEYS ? get_uint(r, "counter", UINT64_MAX, fields[k])
				       : skip(r);
		if (!ok)
			return false;
	}
	return true;
}

static bool get_app(struct rd *r, struct msg_app *out)
{
	uint64_t n, k, v;
	uint64_t *fields[A_KEYS] = {NULL,	    NULL,	 NULL, &out->uptime_ms,
				    &out->restarts, &out->exits, NULL, NULL};

	if (!get_container(r, "app", CBOR_MAP, 64, &n))
		return false;
	memset(out, 0, sizeof(*out));
	for (uint64_t i = 0; i < n; i++) {
		if (!get_uint(r, "app key", UINT64_MAX, &k))
			return false;
		bool ok;
		switch (k) {
		case A_CMD:
			ok = get_text(r, "app command", out->command, sizeof(out->command));
			break;
		case A_RUNNING:
			ok = get_bool(r, "app running", &out->running);
			break;
		case A_PID:
		case A_STATUS:
		case A_SIGNAL:
			ok = get_uint(r, "app pid or status", UINT32_MAX, &v);
			*(k == A_PID	  ? &out->pid
			  : k == A_STATUS ? &out->status
					  : &out->signal) = (uint32_t)v;
			break;
		default:
			ok = k < A_KEYS ? get_uint(r, "app counter", UINT64_MAX, fields[k])
					: skip(r);
		}
		if (!ok)
			return false;
	}
	return true;
}

static bool get_array_max(struct rd *r, const char *what, size_t size, uint64_t max, void **out,
			  size_t *nout, bool (*get)(struct rd *, void *))
{
	uint64_t n;

	if (*out)
		return fail(r, "%s given twice", what);
	if (!get_container(r, what, CBOR_ARRAY, max, &n))
		return false;
	/* cbor_check() has seen all n items in the buffer: n is no claim, it is there. */
	*out = calloc(n ? n : 1, size);
	if (!*out)
		return fail(r, "out of memory");
	for (*nout = 0; *nout < n; (*nout)++)
		if (!get(r, (char *)*out + *nout * size))
			return false;
	return true;
}

static bool get_array(struct rd *r, const char *what, size_t size, void **out, size_t *nout,
		      bool (*get)(struct rd *, void *))
{
	return get_array_max(r, what, size, MSG_MAX_RULES, out, nout, get);
}

static bool get_egress_v(struct rd *r, void *p)
{
	return get_egress(r, p);
}

static bool get_rule_v(struct rd *r, void *p)
{
	return get_rule(r, p);
}

static bool get_stat_v(struct rd *r, void *p)
{
	return get_stat(r, p);
}

int msg_decode(const uint8_t *buf, size_t len, struct msg *m, char *err, size_t errlen)
{
	struct rd r = {.err = err, .errlen = errlen};
	uint64_t n, v, type = 0;

	memset(m, 0, sizeof(*m));
	err[0] = '\0';
	int e = cbor_check(buf, len, MSG_DEPTH);
	if (e != CBOR_OK)
		return fail(&r, "%s", cbor_strerror(e)), -1;
	cbor_dec_init(&r.d, buf, len);
	if (!get_container(&r, "message", CBOR_MAP, 64, &n))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct cbor_item key;
		/* A text key is some later version's: skip it with its value. */
		const uint8_t *at = r.d.p;
		if (!cbor_next(&r.d, &key))
			return fail(&r, "%s", cbor_strerror(r.d.err)), -1;
		if (key.type != CBOR_UINT) {
			r.d.p = at;
			if (!skip(&r) || !skip(&r))
				return -1;
			continue;
		}
		bool ok = true;
		switch (key.u) {
		case K_TYPE:
			ok = get_uint(&r, "type", UINT32_MAX, &type);
			break;
		case K_PROTO:
			ok = get_uint(&r, "proto", UINT32_MAX, &v);
			m->proto = (unsigned)v;
			break;
		case K_VERSION:
			ok = get_text(&r, "version", m->version, sizeof(m->version));
			break;
		case K_ROLE:
			ok = get_uint(&r, "role", 1, &v);
			m->role = (unsigned)v;
			break;
		case K_RULES:
			ok = get_array(&r, "rules", sizeof(*m->rules), (void **)&m->rules,
				       &m->nrules, get_rule_v);
			break;
		case K_LEVEL:
			ok = get_uint(&r, "level", 5, &v);
			m->level = (unsigned)v;
			break;
		case K_TEXT:
			ok = get_text(&r, "text", m->text, sizeof(m->text));
			break;
		case K_SEQ:
			ok = get_uint(&r, "seq", UINT64_MAX, &m->seq);
			break;
		case K_STATS:
			ok = get_array(&r, "stats", sizeof(*m->stats), (void **)&m->stats,
				       &m->nstats, get_stat_v);
			break;
		case K_CID:
			ok = get_uint(&r, "cid", UINT32_MAX, &v);
			m->cid = (uint32_t)v;
			break;
		case K_CONNECTED:
			ok = get_bool(&r, "connected", &m->connected);
			break;
		case K_PEER_VERSION:
			ok = get_text(&r, "peer version", m->peer_version, sizeof(m->peer_version));
			break;
		case K_PEER_STATS:
			ok = get_array(&r, "peer stats", sizeof(*m->peer_stats),
				       (void **)&m->peer_stats, &m->npeer_stats, get_stat_v);
			m->has_peer_stats = ok;
			break;
		case K_EGRESS:
			ok = get_array_max(&r, "egress", sizeof(*m->egress), MSG_EGRESS_MAX,
					   (void **)&m->egress, &m->negress, get_egress_v);
			break;
		case K_PEER_EGRESS:
			ok = get_array_max(&r, "peer egress", sizeof(*m->peer_egress),
					   MSG_EGRESS_MAX, (void **)&m->peer_egress,
					   &m->npeer_egress, get_egress_v);
			break;
		case K_APP:
			ok = m->has_app ? fail(&r, "app given twice") : get_app(&r, &m->app);
			m->has_app = ok;
			break;
		case K_TIME:
			ok = get_uint(&r, "time", UINT64_MAX, &m->time_ns);
			break;
		case K_EGRESS_PORT:
			ok = get_uint(&r, "egress port", UINT32_MAX, &v);
			m->egress_port = (uint32_t)v;
			break;
		default:
			ok = skip(&r);
		}
		if (!ok)
			return -1;
	}
	if (type == 0)
		return fail(&r, "message without a type"), -1;
	m->type = (unsigned)type;
	return 0;
}

void msg_free(struct msg *m)
{
	free(m->rules);
	free(m->stats);
	free(m->peer_stats);
	free(m->egress);
	free(m->peer_egress);
	m->rules = NULL;
	m->stats = m->peer_stats = NULL;
	m->egress = m->peer_egress = NULL;
	m->nrules = m->nstats = m->npeer_stats = m->negress = m->npeer_egress = 0;
	m->has_peer_stats = false;
	m->has_app = false;
}
