#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	loop_io_fn *fn;
	void *arg;
	int fd;
	short paused_events; /* what to poll again at resume */
	int64_t resume;      /* paused until then, 0 when not paused */
};

struct loop {
	struct pollfd *pfd; /* pfd[i].fd is -1 while slot i is paused or deleted */
	struct slot *slot;
	unsigned n, cap;
	unsigned *fd_slot; /* fd -> slot index + 1, 0 when unregistered */
	unsigned fd_cap;
	bool dirty; /* some slots were deleted and await compaction */
	unsigned npaused;

	struct loop_timer **heap;
	unsigned nheap, heap_cap;

	struct loop_defer *deferred;
	sigset_t wait_mask;
	bool stopping;
};

static volatile sig_atomic_t caught_signal;

static void on_signal(int sig)
{
	caught_signal = sig;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (l)
		sigprocmask(SIG_BLOCK, NULL, &l->wait_mask);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	free(l->pfd);
	free(l->slot);
	free(l->fd_slot);
	free(l->heap);
	free(l);
}

static int grow(void **p, unsigned *cap, unsigned need, size_t size)
{
	if (need <= *cap)
		return 0;
	unsigned ncap = *cap ? *cap : 64;
	while (ncap < need)
		ncap *= 2;
	void *np = realloc(*p, (size_t)ncap * size);
	if (!np) {
		errno = ENOMEM;
		return -1;
	}
	*p = np;
	*cap = ncap;
	return 0;
}

int loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg)
{
	unsigned old_fd_cap = l->fd_cap;

	if (grow((void **)&l->fd_slot, &l->fd_cap, (unsigned)fd + 1, sizeof(*l->fd_slot)) != 0)
		return -1;
	memset(l->fd_slot + old_fd_cap, 0, (l->fd_cap - old_fd_cap) * sizeof(*l->fd_slot));
	unsigned cap = l->cap;
	if (grow((void **)&l->pfd, &cap, l->n + 1, sizeof(*l->pfd)) != 0)
		return -1;
	if (grow((void **)&l->slot, &l->cap, l->n + 1, sizeof(*l->slot)) != 0)
		return -1;
	unsigned i = l->n++;
	l->slot[i] = (struct slot){fn, arg, fd, 0, 0};
	l->pfd[i] = (struct pollfd){events ? fd : -1, events, 0};
	l->fd_slot[fd] = i + 1;
	return 0;
}

void loop_set(struct loop *l, int fd, short events)
{
	if ((unsigned)fd >= l->fd_cap || l->fd_slot[fd] == 0)
		return;
	unsigned i = l->fd_slot[fd] - 1;

	if (l->slot[i].resume) {
		l->slot[i].resume = 0;
		l->npaused--;
	}
	l->pfd[i].fd = events ? fd : -1;
	l->pfd[i].events = events;
}

void loop_pause(struct loop *l, int fd, int64_t ms)
{
	if ((unsigned)fd >= l->fd_cap || l->fd_slot[fd] == 0)
		return;
	unsigned i = l->fd_slot[fd] - 1;
	if (!l->slot[i].resume) {
		l->slot[i].paused_events = l->pfd[i].events;
		l->npaused++;
	}
	l->slot[i].resume = loop_now() + ms;
	l->pfd[i].fd = -1;
}

/* The earliest resume, or -1 when nothing is paused. */
static int64_t next_resume(const struct loop *l)
{
	int64_t t = -1;

	for (unsigned i = 0; l->npaused > 0 && i < l->n; i++)
		if (l->slot[i].resume && (t < 0 || l->slot[i].resume < t))
			t = l->slot[i].resume;
	return t;
}

static void resume_paused(struct loop *l)
{
	int64_t now = loop_now();

	for (unsigned i = 0; l->npaused > 0 && i < l->n; i++) {
		struct slot *s = &l->slot[i];
		if (s->resume && s->resume <= now) {
			s->resume = 0;
			l->npaused--;
			l->pfd[i].fd = s->paused_events ? s->fd : -1;
			l->pfd[i].events = s->paused_events;
		}
	}
}

/*
 * Slots are only compacted between passes, so a deletion in the middle of a
 * pass never moves an entry that is still to be dispatched.
 */
void loop_del(struct loop *l, int fd)
{
	if ((unsigned)fd >= l->fd_cap || l->fd_slot[fd] == 0)
		return;
	unsigned i = l->fd_slot[fd] - 1;

	l->fd_slot[fd] = 0;
	l->pfd[i] = (struct pollfd){-1, 0, 0};
	l->slot[i].fd = -1;
	if (l->slot[i].resume) {
		l->slot[i].resume = 0;
		l->npaused--;
	}
	l->dirty = true;
}

static void compact(struct loop *l)
{
	unsigned j = 0;

	for (unsigned i = 0; i < l->n; i++) {
		if (l->slot[i].fd < 0)
			continue;
		l->slot[j] = l->slot[i];
		l->pfd[j] = l->pfd[i];
		l->fd_slot[l->slot[j].fd] = j + 1;
		j++;
	}
	l->n = j;
	l->dirty = false;
}

int64_t loop_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void loop_timer_init(struct loop_timer *t, void (*fn)(struct loop *, struct loop_timer *))
{
	t->fn = fn;
	t->when = 0;
	t->idx = -1u;
}

static void heap_swap(struct loop *l, unsigned a, unsigned b)
{
	struct loop_timer *t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->heap[a]->idx = a;
	l->heap[b]->idx = b;
}

static void heap_fix(struct loop *l, unsigned i)
{
	while (i > 0 && l->heap[(i - 1) / 2]->when > l->heap[i]->when) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
	for (;;) {
		unsigned m = i, c = 2 * i + 1;
		if (c < l->nheap && l->heap[c]->when < l->heap[m]->when)
			m = c;
		if (c + 1 < l->nheap && l->heap[c + 1]->when < l->heap[m]->when)
			m = c + 1;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	unsigned i = t->idx;

	if (i == -1u)
		return;
	t->idx = -1u;
	if (i == --l->nheap)
		return;
	l->heap[i] = l->heap[l->nheap];
	l->heap[i]->idx = i;
	heap_fix(l, i);
}

int loop_timer_set(struct loop *l, struct loop_timer *t, int64_t ms)
{
	t->when = loop_now() + ms;
	if (t->idx != -1u) {
		heap_fix(l, t->idx);
		return 0;
	}
	if (grow((void **)&l->heap, &l->heap_cap, l->nheap + 1, sizeof(*l->heap)) != 0)
		return -1;
	t->idx = l->nheap++;
	l->heap[t->idx] = t;
	heap_fix(l, t->idx);
	return 0;
}

void loop_defer(struct loop *l, struct loop_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = l->deferred;
	l->deferred = d;
}

static void run_deferred(struct loop *l)
{
	while (l->deferred) {
		struct loop_defer *d = l->deferred;
		l->deferred = d->next;
		d->queued = false;
		d->fn(d);
	}
}

int loop_catch_signal(struct loop *l, int sig)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigset_t set;

	(void)l;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigaction(sig, &sa, NULL) != 0)
		return -1;
	return sigprocmask(SIG_BLOCK, &set, NULL);
}

static void run_timers(struct loop *l)
{
	int64_t now = loop_now();

	while (l->nheap > 0 && l->heap[0]->when <= now) {
		struct loop_timer *t = l->heap[0];
		loop_timer_stop(l, t);
		t->fn(l, t);
	}
}

int loop_once(struct loop *l, int max_ms)
{
	struct timespec ts, *tp = NULL;

	if (l->dirty)
		compact(l);
	int64_t ms = max_ms;
	int64_t next = l->nheap > 0 ? l->heap[0]->when : -1, resume = next_resume(l);
	if (resume >= 0 && (next < 0 || resume < next))
		next = resume;
	if (next >= 0) {
		int64_t t = next - loop_now();
		if (ms < 0 || t < ms)
			ms = t < 0 ? 0 : t;
	}
	if (ms >= 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000;
		tp = &ts;
	}
	int r = ppoll(l->pfd, l->n, tp, &l->wait_mask);
	if (r < 0 && errno != EINTR)
		return -1;
	if (caught_signal) {
		int sig = caught_signal;
		caught_signal = 0;
		return sig;
	}
	/* Entries added during the pass have revents 0 and are left for the next one. */
	unsigned n = l->n;
	for (unsigned i = 0; r > 0 && i < n; i++) {
		short rev = l->pfd[i].revents;
		if (rev == 0)
			continue;
		r--;
		l->pfd[i].revents = 0;
		if (l->slot[i].fd >= 0)
			l->slot[i].fn(l, l->slot[i].fd, rev, l->slot[i].arg);
	}
	run_deferred(l);
	run_timers(l);
	run_deferred(l);
	resume_paused(l);
	return 0;
}

int loop_run(struct loop *l)
{
	l->stopping = false;
	while (!l->stopping) {
		int r = loop_once(l, -1);
		if (r != 0)
			return r;
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stopping = true;
}
