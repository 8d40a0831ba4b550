#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORKERS_MAX 4

struct resolve_req {
	struct resolve_req *next;
	char host[256];
	char port[8];
	int family;
	resolve_fn *fn;
	void *arg;
	bool cancelled; /* touched only by the loop thread */
	struct addrinfo *ai;
	int gai_err;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct resolve_req *todo, **todo_tail = &todo;
static struct resolve_req *done_list;
static unsigned workers, idle;
static int wake[2] = {-1, -1};

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!todo) {
			idle++;
			pthread_cond_wait(&cv, &mu);
			idle--;
		}
		struct resolve_req *rq = todo;
		todo = rq->next;
		if (!todo)
			todo_tail = &todo;
		pthread_mutex_unlock(&mu);

		struct addrinfo hints = {.ai_family = rq->family, .ai_socktype = SOCK_STREAM};
		rq->gai_err = getaddrinfo(rq->host, rq->port, &hints, &rq->ai);

		pthread_mutex_lock(&mu);
		rq->next = done_list;
		done_list = rq;
		/* A full pipe already holds a wake-up, so a failed write loses nothing. */
		ssize_t w = write(wake[1], "", 1);
		(void)w;
	}
	return NULL;
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
	while (list) {
		struct resolve_req *rq = list;
		list = rq->next;
		if (rq->cancelled) {
			if (rq->ai)
				freeaddrinfo(rq->ai);
		} else {
			rq->fn(rq->arg, rq->ai, rq->gai_err);
		}
		free(rq);
	}
}

static int resolve_init(struct loop *l)
{
	if (wake[0] >= 0)
		return 0;
	if (pipe2(wake, O_NONBLOCK | O_CLOEXEC) != 0)
		return -1;
	if (loop_add(l, wake[0], POLLIN, on_wake, NULL) != 0) {
		close(wake[0]);
		close(wake[1]);
		wake[0] = wake[1] = -1;
		return -1;
	}
	return 0;
}

struct resolve_req *resolve_start(struct loop *l, const char *host, uint16_t port, int family,
				  resolve_fn *fn, void *arg)
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

	pthread_mutex_lock(&mu);
	*todo_tail = rq;
	todo_tail = &rq->next;
	if (idle == 0 && workers < WORKERS_MAX) {
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, worker, NULL) == 0)
			workers++;
		pthread_attr_destroy(&attr);
	}
	pthread_cond_signal(&cv);
	/* With no worker at all the request could never finish: refuse it now. */
	if (workers == 0) {
		todo = NULL;
		todo_tail = &todo;
		pthread_mutex_unlock(&mu);
		free(rq);
		errno = EAGAIN;
		return NULL;
	}
	pthread_mutex_unlock(&mu);
	return rq;
}

void resolve_cancel(struct resolve_req *rq)
{
	rq->cancelled = true;
}
