#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/*
 * Registered fds live in an epoll set, level-triggered, so the semantics are
 * poll()'s: an fd with nothing wanted is taken out of the set altogether.
 * poll() itself was the first design; with 10,000 idle connections every
 * wake-up walked 20,000 pollfds, and request rates fell tenfold (bench/).
 */
struct slot {
	loop_io_fn *fn; /* NULL: fd not registered */
	void *arg;
	uint32_t gen;        /* which registration of this fd number an event is for */
	short events;        /* what the owner wants: POLLIN | POLLOUT */
	bool in_set;         /* in the epoll set (events, and not paused) */
	int64_t resume;      /* paused until then, 0 when not paused */
};

struct loop {
	int epfd;
	struct slot *slot; /* indexed by fd */
	size_t slot_cap;
	uint32_t gen;
	unsigned npaused;
	struct epoll_event evs[256];

	struct loop_timer **heap;
	unsigned nheap;
	size_t heap_cap;

	struct loop_defer *deferred;
	sigset_t wait_mask;
	bool stopping;
};

/*
 * One flag per signal: SIGCHLD and SIGTERM can land in the same wait, and neither
 * may be lost; loop_once() hands them on one per call, lowest first.
 */
static volatile sig_atomic_t caught[65];

static void on_signal(int sig)
{
	if (sig > 0 && sig < 65)
		caught[sig] = 1;
}

static int take_signal(void)
{
	for (int sig = 1; sig < 65; sig++) {
		if (caught[sig]) {
			caught[sig] = 0;
			return sig;
		}
	}
	return 0;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	sigprocmask(SIG_BLOCK, NULL, &l->wait_mask);
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->slot);
	free(l->heap);
	free(l);
}

static struct slot *slot_of(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->slot_cap || !l->slot[fd].fn)
		return NULL;
	return &l->slot[fd];
}

/* Make the epoll set agree with what the slot wants (nothing while paused). */
static int sync_set(struct loop *l, int fd, struct slot *s)
{
	bool want = s->events && !s->resume;
	struct epoll_event ev = {
		.events = (s->events & POLLIN ? EPOLLIN : 0) | (s->events & POLLOUT ? EPOLLOUT : 0),
		.data.u64 = (uint64_t)s->gen << 32 | (uint32_t)fd,
	};

	if (want == s->in_set && !want)
		return 0;
	int op = !want ? EPOLL_CTL_DEL : s->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) != 0 && op != EPOLL_CTL_DEL)
		return -1;
	s->in_set = want;
	return 0;
}

int loop_add(struct loop *l, int fd, short events, loop_io_fn *fn, void *arg)
{
	size_t old = l->slot_cap;
	struct slot *slots = array_grow(l->slot, &l->slot_cap, (size_t)fd + 1, sizeof(*slots));

	if (!slots)
		return -1;
	l->slot = slots;
	memset(l->slot + old, 0, (l->slot_cap - old) * sizeof(*l->slot));
	struct slot *s = &l->slot[fd];
	*s = (struct slot){.fn = fn, .arg = arg, .gen = ++l->gen, .events = events};
	if (sync_set(l, fd, s) != 0) {
		int e = errno;
		s->fn = NULL;
		errno = e;
		return -1;
	}
	return 0;
}

void loop_set(struct loop *l, int fd, short events)
{
	struct slot *s = slot_of(l, fd);

	if (!s || s->events == events)
		return; /* the common case, and no syscall for it */
	s->events = events;
	if (sync_set(l, fd, s) != 0) {
		/* Cannot happen for an fd the set already holds; ENOMEM on ADD: retry at the next set. */
		s->in_set = false;
	}
}

void loop_pause(struct loop *l, int fd, int64_t ms)
{
	struct slot *s = slot_of(l, fd);

	if (!s)
		return;
	if (!s->resume)
		l->npaused++;
	s->resume = loop_now() + ms;
	sync_set(l, fd, s);
}

/* The earliest resume, or -1 when nothing is paused. */
static int64_t next_resume(const struct loop *l)
{
	int64_t t = -1;

	for (unsigned i = 0; l->npaused > 0 && i < l->slot_cap; i++)
		if (l->slot[i].fn && l->slot[i].resume && (t < 0 || l->slot[i].resume < t))
			t = l->slot[i].resume;
	return t;
}

static void resume_paused(struct loop *l)
{
	int64_t now = loop_now();

	for (unsigned i = 0; l->npaused > 0 && i < l->slot_cap; i++) {
		struct slot *s = &l->slot[i];
		if (s->fn && s->resume && s->resume <= now) {
			s->resume = 0;
			l->npaused--;
			sync_set(l, (int)i, s);
		}
	}
}

void loop_del(struct loop *l, int fd)
{
	struct slot *s = slot_of(l, fd);

	if (!s)
		return;
	if (s->in_set)
		epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	if (s->resume)
		l->npaused--;
	/* Events for this fd already fetched in this pass carry the old gen: they are dropped. */
	s->fn = NULL;
	s->in_set = false;
	s->resume = 0;
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
	struct loop_timer **heap = array_grow(l->heap, &l->heap_cap, l->nheap + 1, sizeof(*heap));
	if (!heap)
		return -1;
	l->heap = heap;
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

void loop_undefer(struct loop *l, struct loop_defer *d)
{
	if (!d->queued)
		return;
	for (struct loop_defer **p = &l->deferred; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	d->queued = false;
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

	sigemptyset(&sa.sa_mask);
	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigaction(sig, &sa, NULL) != 0)
		return -1;
	/* Caught in the wait even when it was blocked already as this loop was made. */
	sigdelset(&l->wait_mask, sig);
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
	int sig = take_signal();
	if (sig)
		return sig; /* one of several caught in the last wait */
	int64_t ms = max_ms;
	int64_t next = l->nheap > 0 ? l->heap[0]->when : -1, resume = next_resume(l);
	if (resume >= 0 && (next < 0 || resume < next))
		next = resume;
	if (next >= 0) {
		int64_t t = next - loop_now();
		if (ms < 0 || t < ms)
			ms = t < 0 ? 0 : t;
	}
	if (ms > INT32_MAX)
		ms = INT32_MAX;
	int n = epoll_pwait(l->epfd, l->evs, (int)(sizeof(l->evs) / sizeof(l->evs[0])), (int)ms,
			    &l->wait_mask);
	if (n < 0 && errno != EINTR)
		return -1;
	if ((sig = take_signal()) != 0)
		return sig;
	for (int i = 0; i < n; i++) {
		uint64_t data = l->evs[i].data.u64;
		int fd = (int)(uint32_t)data;
		struct slot *s = slot_of(l, fd);
		/* Deleted, or deleted and registered anew, earlier in this pass. */
		if (!s || s->gen != (uint32_t)(data >> 32) || !s->in_set)
			continue;
		uint32_t e = l->evs[i].events;
		short rev = (short)((e & EPOLLIN ? POLLIN : 0) | (e & EPOLLOUT ? POLLOUT : 0) |
				    (e & EPOLLERR ? POLLERR : 0) | (e & EPOLLHUP ? POLLHUP : 0));
		s->fn(l, fd, rev, s->arg);
	}
	run_deferred(l);
	run_timers(l);
	run_deferred(l);
	resume_paused(l);
	return 0;
}

int loop_run(struct loop *l)
{
	/* A stop asked for between two runs (after a signal came back) still counts. */
	while (!l->stopping) {
		int r = loop_once(l, -1);
		if (r != 0)
			return r;
	}
	l->stopping = false;
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stopping = true;
}
