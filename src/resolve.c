#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* A worker with nothing to do for this long ends: a burst leaves no threads behind. */
#define IDLE_MS 10000

struct resolve_req {
	struct resolve_req *next, **pprev; /* pprev: in todo only */
	char host[256];
	char port[8];
	int family;
	resolve_fn *fn;
	void *arg;
	struct loop *loop;
	struct loop_timer deadline;
	int64_t timeout_ms;
	/* Under mu: */
	bool queued;	/* in todo, no worker has it yet */
	bool cancelled; /* the loop is done with it: drop the answer and free it */
	struct addrinfo *ai;
	int gai_err, sys_err;
};

/*
 * mu guards everything below but wake[], which the loop thread sets up before
 * the first worker starts.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static struct resolve_req *todo, **todo_tail = &todo;
static unsigned ntodo;
static struct resolve_req *done_list;
static unsigned workers, busy; /* busy: in getaddrinfo() */
static int wake[2] = {-1, -1};

static void todo_push(struct resolve_req *rq)
{
	rq->next = NULL;
	rq->pprev = todo_tail;
	*todo_tail = rq;
	todo_tail = &rq->next;
	rq->queued = true;
	ntodo++;
}

static void todo_remove(struct resolve_req *rq)
{
	*rq->pprev = rq->next;
	if (rq->next)
		rq->next->pprev = rq->pprev;
	else
		todo_tail = rq->pprev;
	rq->queued = false;
	ntodo--;
}

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!todo) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += IDLE_MS / 1000;
			int r = pthread_cond_timedwait(&cv, &mu, &until);
			if (r == ETIMEDOUT && !todo) {
				workers--;
				pthread_mutex_unlock(&mu);
				return NULL;
			}
		}
		struct resolve_req *rq = todo;
		todo_remove(rq);
		busy++;
		pthread_mutex_unlock(&mu);

		struct addrinfo hints = {.ai_family = rq->family, .ai_socktype = SOCK_STREAM};
		struct addrinfo *ai = NULL;
		int gai_err = getaddrinfo(rq->host, rq->port, &hints, &ai);
		int sys_err = errno; /* this thread's: meaningful with EAI_SYSTEM only */

		pthread_mutex_lock(&mu);
		busy--;
		rq->ai = ai;
		rq->gai_err = gai_err;
		rq->sys_err = sys_err;
		rq->next = done_list;
		done_list = rq;
		/* A full pipe already holds a wake-up, so a failed write loses nothing. */
		ssize_t w = write(wake[1], "", 1);
		(void)w;
	}
}

static void req_free(struct resolve_req *rq)
{
	if (rq->ai)
		freeaddrinfo(rq->ai);
	free(rq);
}

/* The loop is done with rq: free it now if no worker has it, else when its worker is done. */
static void req_forget(struct resolve_req *rq)
{
	loop_timer_stop(rq->loop, &rq->deadline);
	pthread_mutex_lock(&mu);
	bool queued = rq->queued;
	if (queued)
		todo_remove(rq);
	else
		rq->cancelled = true;
	pthread_mutex_unlock(&mu);
	if (queued)
		req_free(rq);
}

static void on_deadline(struct loop *l, struct loop_timer *t)
{
	struct resolve_req *rq = container_of(t, struct resolve_req, deadline);
	resolve_fn *fn = rq->fn;
	void *arg = rq->arg;
	char why[64];

	(void)l;
	if (rq->timeout_ms % 1000 == 0)
		snprintf(why, sizeof(why), "no answer within %lld s",
			 (long long)rq->timeout_ms / 1000);
	else
		snprintf(why, sizeof(why), "no answer within %lld ms", (long long)rq->timeout_ms);
	req_forget(rq);
	fn(arg, NULL, why);
}

static void on_wake(struct loop *l, int fd, short rev, void *arg)
{
	char buf[256];

	(void)l, (void)rev, (void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&mu);
	struct resolve_req *list = done_list;
	done_list = NULL;
	pthread_mutex_unlock(&mu);
	/* No lock needed below: a request on the done list is the loop's alone. */
	while (list) {
		struct resolve_req *rq = list;
		list = rq->next;
		if (!rq->cancelled) {
			loop_timer_stop(rq->loop, &rq->deadline);
			const char *err = NULL;
			if (rq->gai_err)
				err = rq->gai_err == EAI_SYSTEM ? strerror(rq->sys_err)
								: gai_strerror(rq->gai_err);
			rq->fn(rq->arg, rq->gai_err ? NULL : rq->ai, err);
			if (!rq->gai_err)
				rq->ai = NULL;
		}
		req_free(rq);
	}
}

static int resolve_init(struct loop *l)
{
	pthread_condattr_t ca;

	if (wake[0] >= 0)
		return 0;
	/* Idle timeouts on the monotonic clock: setting the date must not end or keep workers. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int r = pthread_cond_init(&cv, &ca);
	pthread_condattr_destroy(&ca);
	if (r != 0) {
		errno = r;
		return -1;
	}
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0)
		goto fail;
	if (loop_add(l, wake[0], POLLIN, on_wake, NULL) != 0) {
		int e = errno;
		close(wake[0]);
		close(wake[1]);
		wake[0] = wake[1] = -1;
		errno = e;
		goto fail;
	}
	return 0;
fail:
	pthread_cond_destroy(&cv);
	return -1;
}

/* A worker for each waiting lookup, up to the cap. Under mu. */
static void workers_enough(void)
{
	while (ntodo > workers - busy && workers < RESOLVE_WORKERS_MAX) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int r = pthread_create(&t, &attr, worker, NULL);
		pthread_attr_destroy(&attr);
		if (r != 0)
			return;
		workers++;
	}
}

struct resolve_req *resolve_start(struct loop *l, const char *host, uint16_t port, int family,
				  int64_t timeout_ms, resolve_fn *fn, void *arg)
{
	if (resolve_init(l) != 0)
		return NULL;
	struct resolve_req *rq = calloc(1, sizeof(*rq));
	if (!rq)
		return NULL;
	snprintf(rq->host, sizeof(rq->host), "%s", host);
	snprintf(rq->port, sizeof(rq->port), "%u", port);
	rq->family = family;
	rq->fn = fn;
	rq->arg = arg;
	rq->loop = l;
	rq->timeout_ms = timeout_ms;
	loop_timer_init(&rq->deadline, on_deadline);
	if (loop_timer_set(l, &rq->deadline, timeout_ms) != 0) {
		free(rq);
		return NULL;
	}

	pthread_mutex_lock(&mu);
	todo_push(rq);
	workers_enough();
	pthread_cond_signal(&cv);
	/* With no worker at all the request could never finish: refuse it now. */
	if (workers == 0) {
		todo_remove(rq);
		pthread_mutex_unlock(&mu);
		loop_timer_stop(l, &rq->deadline);
		free(rq);
		errno = EAGAIN;
		return NULL;
	}
	pthread_mutex_unlock(&mu);
	return rq;
}

void resolve_cancel(struct resolve_req *rq)
{
	req_forget(rq);
}
