/*
 * For the unit tests of the control channel and the status server: one half's config,
 * loop, proxy (not listening) and control channel (not started), as main.c builds them.
 * Include after cmocka.h.
 */
#ifndef QPROXY_TEST_HALF_RIG_H
#define QPROXY_TEST_HALF_RIG_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "loop.h"
#include "message.h"
#include "proxy.h"

/* Longer than any wait of the code under test: a test that waits this long has failed. */
#define RIG_WAIT_MS 10000

struct half {
	struct config cfg;
	struct loop *loop;
	struct proxy *px;
	struct control *ctl;
};

/* The half of role, whose peer is peer_cid, with the rules of toml and the control port. */
static inline void half_new(struct half *h, enum proxy_role role, uint32_t peer_cid, uint32_t port,
			    const char *toml)
{
	struct proxy_opts po = {.role = role, .peer_cid = peer_cid};
	struct control_opts co = {.role = role, .peer_cid = peer_cid, .port = port};
	FILE *f = fmemopen((void *)toml, strlen(toml), "r");

	assert_non_null(f);
	assert_int_equal(config_parse(&h->cfg, "test.toml", f, port), 0);
	fclose(f);
	h->loop = loop_new();
	assert_non_null(h->loop);
	h->px = proxy_new(h->loop, &h->cfg, &po);
	assert_non_null(h->px);
	h->ctl = control_new(h->loop, &h->cfg, h->px, &co);
	assert_non_null(h->ctl);
}

static inline void half_free(struct half *h)
{
	control_free(h->ctl);
	proxy_free(h->px);
	loop_free(h->loop);
	config_free(&h->cfg);
}

static inline int rig_unix_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* m, framed as on the control link. */
static inline void rig_send_frame(int fd, const struct msg *m)
{
	static uint8_t frame[4 + MSG_MAX];
	size_t n = msg_encode(m, frame + 4, MSG_MAX);

	assert_true(n > 0);
	frame[0] = (uint8_t)(n >> 24);
	frame[1] = (uint8_t)(n >> 16);
	frame[2] = (uint8_t)(n >> 8);
	frame[3] = (uint8_t)n;
	assert_int_equal(send(fd, frame, 4 + n, MSG_NOSIGNAL), (ssize_t)(4 + n));
}

/* A fake enclave's end of the control link: its fd and what it has read but not taken. */
struct rig_link {
	int fd;
	uint8_t in[4 + MSG_MAX];
	size_t in_len;
};

/* The next whole message the host half sent on k, if one has arrived. */
static inline bool rig_link_read(struct rig_link *k, struct msg *m)
{
	char err[128];
	ssize_t n = recv(k->fd, k->in + k->in_len, sizeof(k->in) - k->in_len, MSG_DONTWAIT);

	if (n > 0)
		k->in_len += (size_t)n;
	if (k->in_len < 4)
		return false;
	size_t len =
	    (size_t)k->in[0] << 24 | (size_t)k->in[1] << 16 | (size_t)k->in[2] << 8 | k->in[3];
	if (k->in_len < 4 + len)
		return false;
	assert_int_equal(msg_decode(k->in + 4, len, m, err, sizeof(err)), 0);
	memmove(k->in, k->in + 4 + len, k->in_len - 4 - len);
	k->in_len -= 4 + len;
	return true;
}

/*
 * A fake enclave half on the host half h's control socket at path: it connects and
 * says hello with h's own rules, as version. Its fd.
 */
static inline int rig_enclave_hello(struct half *h, const char *path, const char *version)
{
	struct msg hello = {.type = MSG_HELLO,
			    .proto = MSG_PROTO,
			    .role = 1,
			    .rules = h->cfg.rules,
			    .nrules = h->cfg.nrules};
	int fd = rig_unix_connect(path);

	snprintf(hello.version, sizeof(hello.version), "%s", version);
	rig_send_frame(fd, &hello);
	return fd;
}

/* Run h's loop until the enclave half linked is the one of this version. */
static inline void rig_wait_linked(struct half *h, const char *version)
{
	const char *v = "";

	for (int64_t end = loop_now() + RIG_WAIT_MS;
	     !(control_linked(h->ctl, &v) && strcmp(v, version) == 0) && loop_now() < end;)
		assert_true(loop_once(h->loop, 10) >= 0);
	assert_true(control_linked(h->ctl, &v));
	assert_string_equal(v, version);
}

/*
 * A fake enclave half "9.9.9", linked to the host half h whose vsock emulation is in dir
 * (as host_cid, control port port). Its fd.
 */
static inline int rig_enclave_links(struct half *h, const char *dir, uint32_t host_cid,
				    uint32_t port)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%u.%u", dir, host_cid, port);
	int fd = rig_enclave_hello(h, path, "9.9.9");
	rig_wait_linked(h, "9.9.9");
	return fd;
}

#endif
