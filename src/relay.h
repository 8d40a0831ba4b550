#ifndef QPROXY_RELAY_H
#define QPROXY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

/*
 * Bytes one direction may hold in flight: in a kernel pipe when splicing bulk
 * (kernel memory, and fewer, larger moves: +15% throughput, -25% CPU per byte
 * against 64 KiB here), or in a buffer of ours when copying small messages or
 * when splice is off. Either exists only while bytes are in flight.
 */
#define RELAY_PIPE (256 * 1024)
#define RELAY_BUF (64 * 1024)
/* No memory for a buffer: stop reading that socket this long, rather than spin on it. */
#define RELAY_NOMEM_PAUSE_MS 100

/*
 * One direction: bytes from `from` wait to be written to `to`, len of them.
 * Small messages wait in buf[off, off+len), by read and write: one copy each way
 * costs less than two splices through a kernel pipe. Bulk waits in a kernel pipe,
 * moved by splice(2) without a copy through user space. A read that fills the
 * buffer turns the direction to splice; a splice that moves less than
 * RELAY_SMALL turns it back; the switch is made only while nothing waits, so
 * bytes keep their order. Where the kernel cannot splice these sockets, the
 * direction copies for good. Buffer and pipe come from a pool when bytes arrive
 * and go back when they have all left.
 */
#define RELAY_SMALL (16 * 1024)
struct pipe {
	int from, to;
	int kp[2];  /* the kernel pipe, or -1 */
	bool copy;  /* splice failed here, or is off: read/write from now on */
	bool bulk;  /* the last reads came large: splice the next */
	bool full;  /* the kernel pipe took no more: wait for a write before reading again */
	char *buf;  /* the buffer, while bytes wait in it */
	uint32_t off, len;
	bool eof;  /* from has no more bytes */
	bool shut; /* and all of them reached to, whose write side is shut */
	uint64_t bytes;
	uint64_t spliced; /* of bytes, those that went through the kernel pipe */
};

enum relay_side { RELAY_CLIENT, RELAY_SERVER };

/*
 * A connection: fd[RELAY_CLIENT] (accepted) and fd[RELAY_SERVER] (connected),
 * up = client -> server, down = server -> client. Each pipe runs until EOF,
 * which becomes shutdown(SHUT_WR) on its far side once drained, while the other
 * keeps flowing; an error on either side ends both at once.
 */
struct relay {
	struct loop *loop;
	int fd[2];
	struct pipe up, down;
	int err;                 /* errno that ended the relay, 0 when both pipes finished */
	enum relay_side err_side; /* the side err came from */
	bool done;
	void (*on_done)(struct relay *r); /* after the fds are closed, outside the dispatch pass */
	struct loop_defer defer;
};

/* Take ownership of both fds and start relaying. -1 with errno when the loop cannot take them. */
int relay_start(struct relay *r, struct loop *l, int client, int server, void (*on_done)(struct relay *));

/* End the relay now, as if side had failed with err; on_done still follows. */
void relay_abort(struct relay *r, enum relay_side side, int err);
/* End it now, closing both fds, and never call on_done: for an owner that frees r at once. */
void relay_discard(struct relay *r);

/*
 * idle_timeout for a relay: its idle time read from its byte counters a few
 * times per limit (RELAY_IDLE_CHECKS), so the hot path pays nothing for it, no
 * clock and no timer per byte; it closes at most a quarter of the limit late.
 * relay_idle_start() when the relay starts; then relay_idle_check() on each run
 * of a timer first set to relay_idle_first() ms.
 */
#define RELAY_IDLE_CHECKS 4
struct relay_idle {
	uint64_t bytes; /* relayed when last looked at */
	int64_t since;	/* loop time that count was first seen: the last byte's, or the start */
	bool fired;	/* the relay was closed for it */
};
void relay_idle_start(struct relay_idle *w, int64_t now);
int64_t relay_idle_first(int64_t limit_ms);
/*
 * ms until the next look; or 0 when there is none: the relay has been idle for
 * limit_ms, and is now ending (a plain close both ways, not a reset; w->fired
 * set), or it already ended otherwise.
 */
int64_t relay_idle_check(struct relay *r, struct relay_idle *w, int64_t limit_ms, int64_t now);

/* splice(2) where the kernel can (the default), or read/write only: for tests and comparisons. */
void relay_use_splice(bool on);

/*
 * How a pipe has moved its bytes, for the close log: "splice" when some went
 * through the kernel pipe, "copy" when all were read and written (small messages
 * only; or the kernel refused splice on one of its sockets, no kernel pipe could
 * be had, or relay_use_splice(false)).
 */
const char *relay_pipe_mode(const struct pipe *p);

#endif
