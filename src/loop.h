#ifndef QPROXY_LOOP_H
#define QPROXY_LOOP_H

#include <stdbool.h>
#include <stdint.h>

/*
 * One event loop: registered fds with callbacks (epoll, level-triggered, with
 * poll()'s event names and meaning), one-shot timers on CLOCK_MONOTONIC, and
 * deferred work that runs after each dispatch pass.
 */
struct loop;

typedef void loop_io_fn(struct loop *l, int fd, short revents, void *arg);

struct loop_timer {
	int64_t when; /* ms on CLOCK_MONOTONIC */
	void (*fn)(struct loop *l, struct loop_timer *t);
	unsigned idx; /* position in the heap, or -1u when not armed */
};

struct loop_defer {
	struct loop_defer *next;
	void (*fn)(struct loop_defer *d);
	bool queued;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);

/* Register fd; events 0 keeps it registered but not polled. -1 on ENOMEM. */
int loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg);
/* Both do nothing for an fd that is not registered. */
void loop_set(struct loop *l, int fd, short events);
void loop_del(struct loop *l, int fd);
/*
 * Stop polling fd for ms, then poll it for what it was polled for before. For a
 * listener out of fds or memory: still ready, it would make the loop spin.
 */
void loop_pause(struct loop *l, int fd, int64_t ms);

int64_t loop_now(void);
void loop_timer_init(struct loop_timer *t, void (*fn)(struct loop *, struct loop_timer *));
/* Arm (or re-arm) t to fire once, ms milliseconds from now. */
int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/*
 * Run d->fn after the current dispatch pass, once however often it is queued:
 * the place to free objects whose fds may still have events pending in the pass.
 */
void loop_defer(struct loop *l, struct loop_defer *d);
/* Take d off the queue, for an owner about to free it; nothing when it is not queued. */
void loop_undefer(struct loop *l, struct loop_defer *d);

/*
 * Block sig and have loop_run() return it when it arrives. Blocked outside
 * epoll_pwait(), a signal can never slip in between a check and the wait.
 */
int loop_catch_signal(struct loop *l, int sig);

/* One wait (at most max_ms, -1 for no limit) and its dispatch: 0, a caught signal, or -1. */
int loop_once(struct loop *l, int max_ms);

/*
 * Poll and dispatch: returns a caught signal's number, 0 after loop_stop() (called
 * during this run or since the last one returned), -1 on error.
 */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
