#ifndef QPROXY_SUPERVISOR_H
#define QPROXY_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "message.h"

/*
 * The app the enclave half runs (`qproxy enclave ... -- COMMAND [ARGS...]`): its
 * own process group, its stdout and stderr read by the loop through pipes and
 * logged line by line as [app] (stdout at info, stderr at warn; appline.h), its
 * exit reaped on SIGCHLD, restarted by policy with a capped, jittered backoff,
 * stopped by a signal passed on to its group and SIGKILL after a timeout.
 *
 * The caller owns the signals: it catches SIGCHLD (and SIGTERM, SIGINT) with
 * loop_catch_signal() and calls supervisor_reap() or supervisor_stop(). When
 * the app is done for good (it ended and the policy does not restart it, or it
 * was stopped), the supervisor calls loop_stop(): supervisor_status() then says
 * how it ended.
 */

enum supervisor_restart { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

/* Backoff before restart n (1, 2, ...) after quick exits: 200 ms doubling, at most 30 s. */
#define SUPERVISOR_BACKOFF_MIN_MS 200
#define SUPERVISOR_BACKOFF_MAX_MS 30000
/* A run at least this long was not a crash loop: the backoff starts again from the least. */
#define SUPERVISOR_STEADY_MS 10000

struct supervisor_opts {
	char *const *argv; /* COMMAND and ARGS, NULL-terminated; looked up in PATH */
	enum supervisor_restart restart;
	int64_t stop_timeout_ms; /* from the signal passed on to SIGKILL */
};

struct supervisor;

/* Called on every change of the app's state (started, exited, stopping). */
typedef void supervisor_fn(void *arg, const struct msg_app *app);

struct supervisor *supervisor_new(struct loop *l, const struct supervisor_opts *o,
				  supervisor_fn *changed, void *arg);
void supervisor_free(struct supervisor *s);

/* Start the app: -1 with a reason in err when it cannot (no pipe, no fork). */
int supervisor_start(struct supervisor *s, char *err, size_t errlen);

/*
 * SIGCHLD: reap every child that has ended, the app and any orphan left to us (as
 * PID 1 they all are); only the app's end drives the rest.
 */
void supervisor_reap(struct supervisor *s);

/*
 * Stop: sig to the app's group, SIGKILL after stop_timeout_ms; no restart after.
 * loop_stop() once it has ended (at once when it is not running).
 */
void supervisor_stop(struct supervisor *s, int sig);

/* The exit status qproxy passes on: the app's code, or 128 + the signal that ended it. */
int supervisor_status(const struct supervisor *s);

/* The state reported to the host half. */
void supervisor_state(const struct supervisor *s, struct msg_app *app);

/* The wait before restart n (from 1) with r a random number: jittered into [d/2, d]. */
int64_t supervisor_backoff(unsigned n, uint64_t r);

/* "restart" values: 0 and the policy, or -1 for a name that is none. */
int supervisor_restart_parse(const char *name, enum supervisor_restart *out);

#endif
