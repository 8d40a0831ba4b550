#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/*
 * Drained buffers and empty kernel pipes go back to small free lists: a busy
 * connection reuses one without a syscall or malloc, an idle one holds none.
 */
#define POOL_MAX 64
#define PIPES_MAX 32

static void *pool[POOL_MAX];
static unsigned pool_n;
static int pipes[PIPES_MAX][2];
static unsigned pipes_n;
static unsigned relays_live;
static bool no_splice;

void relay_use_splice(bool on)
{
	no_splice = !on;
}

const char *relay_pipe_mode(const struct pipe *p)
{
	return p->spliced ? "splice" : "copy";
}

/* With no connection left, the pools go too: an idle proxy holds nothing it does not need. */
static void pools_drain(void)
{
	while (pool_n > 0)
		free(pool[--pool_n]);
	while (pipes_n > 0) {
		pipes_n--;
		close(pipes[pipes_n][0]);
		close(pipes[pipes_n][1]);
	}
}

static char *buf_get(void)
{
	if (pool_n > 0)
		return pool[--pool_n];
	return malloc(RELAY_BUF);
}

static void buf_put(char *b)
{
	if (pool_n < POOL_MAX)
		pool[pool_n++] = b;
	else
		free(b);
}

static int kpipe_get(int kp[2])
{
	if (pipes_n > 0) {
		pipes_n--;
		kp[0] = pipes[pipes_n][0];
		kp[1] = pipes[pipes_n][1];
		return 0;
	}
	if (pipe2(kp, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	/* Past pipe-max-size this fails and the pipe keeps 64 KiB: fine, only slower. */
	fcntl(kp[0], F_SETPIPE_SZ, RELAY_PIPE);
	return 0;
}

/* Only an empty pipe can be reused. */
static void kpipe_put(int kp[2], bool empty)
{
	if (kp[0] < 0)
		return;
	if (empty && pipes_n < PIPES_MAX) {
		pipes[pipes_n][0] = kp[0];
		pipes[pipes_n][1] = kp[1];
		pipes_n++;
	} else {
		close(kp[0]);
		close(kp[1]);
	}
	kp[0] = kp[1] = -1;
}

/* What the pipe may hold: a buffer's worth while bytes wait in one, else a kernel pipe's. */
static uint32_t pipe_cap(const struct pipe *p)
{
	return p->buf || p->copy ? RELAY_BUF : RELAY_PIPE;
}

static bool pipe_wants_read(const struct pipe *p)
{
	return !p->eof && !p->full && p->off + p->len < pipe_cap(p);
}

/* EINVAL: the kernel cannot splice these sockets; none of the kernels we run refuses any. */
static bool splice_unsupported(int err)
{
	return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP;
}

/* The bytes in the kernel pipe go to a buffer, and the pipe goes to read/write for good. */
static int pipe_to_copy(struct pipe *p)
{
	p->copy = true;
	if (p->kp[0] < 0)
		return 0;
	/*
	 * Sockets that take no splice in refuse it on the first read, with the pipe
	 * empty. One that refused it out, with more than a buffer in the pipe, is
	 * not known to exist; it would end the connection, not lose bytes.
	 */
	if (p->len > RELAY_BUF)
		return -1;
	if (p->len > 0) {
		p->buf = buf_get();
		if (!p->buf)
			return -1;
		p->off = 0;
		ssize_t n = read(p->kp[0], p->buf, p->len);
		if (n != (ssize_t)p->len)
			return -1;
	}
	kpipe_put(p->kp, true);
	return 0;
}

static ssize_t pipe_write_some(struct pipe *p)
{
	if (!p->buf && p->kp[0] >= 0) {
		ssize_t n = splice(p->kp[0], NULL, p->to, NULL, p->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n >= 0 || !splice_unsupported(errno))
			return n;
		if (pipe_to_copy(p) != 0) {
			errno = EIO;
			return -1;
		}
	}
	return send(p->to, p->buf + p->off, p->len, MSG_NOSIGNAL);
}

/* Write what the pipe holds; at EOF with nothing left, pass the EOF on. */
static int pipe_flush(struct pipe *p)
{
	while (p->len > 0) {
		ssize_t n = pipe_write_some(p);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		if (p->buf)
			p->off += (uint32_t)n;
		else
			p->spliced += (uint64_t)n;
		p->len -= (uint32_t)n;
		p->bytes += (uint64_t)n;
		p->full = false;
	}
	if (p->buf) {
		buf_put(p->buf);
		p->buf = NULL;
		p->off = 0;
	}
	kpipe_put(p->kp, true);
	if (p->eof && !p->shut) {
		/* A peer that already reset cannot take our FIN; either way this pipe is done. */
		shutdown(p->to, SHUT_WR);
		p->shut = true;
	}
	return 0;
}

/* Into the kernel pipe: while bytes wait there, or when the last reads came large. */
static ssize_t pipe_splice_in(struct pipe *p)
{
	if (p->kp[0] < 0 && kpipe_get(p->kp) != 0) {
		p->copy = true; /* out of fds: the buffer still works */
		return -2;
	}
	uint32_t was = p->len;
	ssize_t n = splice(p->from, NULL, p->kp[1], NULL, RELAY_PIPE - p->len,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n >= 0 || !splice_unsupported(errno)) {
		if (n > 0 && was == 0 && n < RELAY_SMALL)
			p->bulk = false; /* a small message: the next goes by the buffer */
		return n;
	}
	if (pipe_to_copy(p) != 0) {
		errno = EIO;
		return -1;
	}
	return -2;
}

static ssize_t pipe_read_some(struct pipe *p)
{
	if (!p->copy && !p->buf && (p->len > 0 || p->bulk)) {
		ssize_t n = pipe_splice_in(p);
		if (n != -2)
			return n;
	}
	if (!p->buf) {
		p->buf = buf_get();
		if (!p->buf) {
			errno = ENOMEM;
			return -1;
		}
	}
	size_t room = RELAY_BUF - p->off - p->len;
	ssize_t n = read(p->from, p->buf + p->off + p->len, room);
	if (n == (ssize_t)room && !p->copy)
		p->bulk = true; /* more than a buffer came at once: splice once this has left */
	return n;
}

/* 0 when read (bytes, EOF or nothing yet), 1 when out of memory for now, -1 on error. */
static int pipe_fill(struct pipe *p)
{
	for (;;) {
		ssize_t n = pipe_read_some(p);
		if (n > 0) {
			p->len += (uint32_t)n;
			return 0;
		}
		if (n == 0) {
			p->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/*
			 * A kernel pipe counts slots, not bytes: with small segments it fills
			 * before RELAY_PIPE, and splice says EAGAIN while the socket is still
			 * readable. Polling it then would spin.
			 */
			if (!p->buf && p->len > 0)
				p->full = true;
			return 0;
		}
		return errno == ENOMEM ? 1 : -1;
	}
}

static void relay_update(struct relay *r)
{
	short c = (short)((pipe_wants_read(&r->up) ? POLLIN : 0) | (r->down.len ? POLLOUT : 0));
	short s = (short)((pipe_wants_read(&r->down) ? POLLIN : 0) | (r->up.len ? POLLOUT : 0));

	loop_set(r->loop, r->fd[RELAY_CLIENT], c);
	loop_set(r->loop, r->fd[RELAY_SERVER], s);
}

static void relay_finish(struct loop_defer *d)
{
	struct relay *r = container_of(d, struct relay, defer);

	r->on_done(r);
}

static void relay_close(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		struct pipe *p = i ? &r->down : &r->up;
		if (p->buf) {
			buf_put(p->buf);
			p->buf = NULL;
		}
		kpipe_put(p->kp, p->len == 0);
		loop_del(r->loop, r->fd[i]);
	}
	/*
	 * A reset travels on as a reset: lingering 0 makes close() send RST to
	 * the other side's peer instead of a FIN that would look like a clean end.
	 */
	if (r->err == ECONNRESET) {
		struct linger lg = {1, 0};
		setsockopt(r->fd[!r->err_side], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(r->fd[0]);
	close(r->fd[1]);
	r->fd[0] = r->fd[1] = -1;
	if (--relays_live == 0)
		pools_drain();
	r->done = true;
	loop_defer(r->loop, &r->defer);
}

static void relay_fail(struct relay *r, enum relay_side side, int err)
{
	if (r->done)
		return;
	r->err = err ? err : EIO;
	r->err_side = side;
	relay_close(r);
}

void relay_abort(struct relay *r, enum relay_side side, int err)
{
	relay_fail(r, side, err);
}

void relay_discard(struct relay *r)
{
	relay_fail(r, RELAY_CLIENT, ECONNABORTED);
	loop_undefer(r->loop, &r->defer);
}

static void relay_io(struct loop *l, int fd, short rev, void *arg)
{
	struct relay *r = arg;
	enum relay_side side = fd == r->fd[RELAY_CLIENT] ? RELAY_CLIENT : RELAY_SERVER;
	struct pipe *in = side == RELAY_CLIENT ? &r->up : &r->down;  /* reads fd */
	struct pipe *out = side == RELAY_CLIENT ? &r->down : &r->up; /* writes fd */

	(void)l;
	if (r->done)
		return;
	/* POLLERR and POLLHUP are left for the read or write below to report. */
	if (out->len > 0 && (rev & (POLLOUT | POLLERR | POLLHUP)) && pipe_flush(out) != 0) {
		relay_fail(r, side, errno);
		return;
	}
	if (pipe_wants_read(in) && (rev & (POLLIN | POLLERR | POLLHUP))) {
		int f = pipe_fill(in);
		if (f < 0) {
			relay_fail(r, side, errno);
			return;
		}
		/*
		 * The bytes wait in the socket, which stays readable: polling it now
		 * would spin until memory comes back. Leave the socket alone a while (its
		 * writes wait too: a pause is short, and memory is short for all).
		 */
		if (f > 0)
			loop_pause(r->loop, fd, RELAY_NOMEM_PAUSE_MS);
		/* Write at once: most of the time the far side has room, which saves a poll round. */
		if (pipe_flush(in) != 0) {
			relay_fail(r, !side, errno);
			return;
		}
	}
	if (r->up.shut && r->down.shut) {
		relay_close(r);
		return;
	}
	relay_update(r);
}

int relay_start(struct relay *r, struct loop *l, int client, int server, void (*on_done)(struct relay *))
{
	*r = (struct relay){
		.loop = l,
		.fd = {client, server},
		.up = {.from = client, .to = server, .kp = {-1, -1}, .copy = no_splice},
		.down = {.from = server, .to = client, .kp = {-1, -1}, .copy = no_splice},
		.on_done = on_done,
		.defer = {.fn = relay_finish},
	};
	if (loop_add(l, client, POLLIN, relay_io, r) != 0)
		return -1;
	if (loop_add(l, server, POLLIN, relay_io, r) != 0) {
		loop_del(l, client);
		return -1;
	}
	relays_live++;
	return 0;
}

void relay_idle_start(struct relay_idle *w, int64_t now)
{
	*w = (struct relay_idle){.since = now};
}

int64_t relay_idle_first(int64_t limit_ms)
{
	return limit_ms / RELAY_IDLE_CHECKS;
}

int64_t relay_idle_check(struct relay *r, struct relay_idle *w, int64_t limit_ms, int64_t now)
{
	uint64_t bytes = r->up.bytes + r->down.bytes;

	if (bytes != w->bytes) {
		w->bytes = bytes;
		w->since = now;
	}
	if (r->done)
		return 0; /* ended otherwise, and not yet freed */
	int64_t left = limit_ms - (now - w->since);
	if (left <= 0) {
		w->fired = true;
		relay_abort(r, RELAY_CLIENT, ETIMEDOUT);
		return 0;
	}
	return left < limit_ms / RELAY_IDLE_CHECKS ? left : limit_ms / RELAY_IDLE_CHECKS;
}
