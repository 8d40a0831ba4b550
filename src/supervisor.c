#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "appline.h"
#include "log.h"
#include "util.h"

/* Reads of a dead app's pipes, at most: a grandchild may go on writing forever. */
#define DRAIN_READS 64

struct out_pipe {
	struct supervisor *s;
	int fd; /* -1 when closed */
	int level;
	struct appline line;
};

struct supervisor {
	struct loop *loop;
	struct supervisor_opts o;
	supervisor_fn *changed;
	void *arg;
	char command[MSG_APP_CMD_MAX];

	pid_t pid; /* the app's, and its group's; 0 while it does not run */
	int64_t started;
	uint64_t restarts, exits;
	int status, signal;
	unsigned quick; /* exits in a row, each within SUPERVISOR_STEADY_MS of its start */
	bool stopping;
	uint64_t rnd;

	struct out_pipe out[2]; /* stdout, stderr */
	struct loop_timer kill_timer, restart_timer;
};

static const char *const stream_names[2] = {"stdout", "stderr"};

int64_t supervisor_backoff(unsigned n, uint64_t r)
{
	int64_t d = SUPERVISOR_BACKOFF_MIN_MS;

	for (unsigned i = 1; i < n && d < SUPERVISOR_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > SUPERVISOR_BACKOFF_MAX_MS)
		d = SUPERVISOR_BACKOFF_MAX_MS;
	return d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

int supervisor_restart_parse(const char *name, enum supervisor_restart *out)
{
	static const char *const names[] = {"no", "on-failure", "always"};

	for (int i = 0; i < 3; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum supervisor_restart)i;
			return 0;
		}
	}
	return -1;
}

void supervisor_state(const struct supervisor *s, struct msg_app *app)
{
	memset(app, 0, sizeof(*app));
	snprintf(app->command, sizeof(app->command), "%s", s->command);
	app->pid = (uint32_t)s->pid;
	app->running = s->pid != 0;
	app->uptime_ms = s->pid ? (uint64_t)(loop_now() - s->started) : 0;
	app->restarts = s->restarts;
	app->exits = s->exits;
	app->status = (uint32_t)s->status;
	app->signal = (uint32_t)s->signal;
}

static void notify(struct supervisor *s)
{
	struct msg_app app;

	supervisor_state(s, &app);
	if (s->changed)
		s->changed(s->arg, &app);
}

static void on_line(void *arg, const char *text, size_t len)
{
	struct out_pipe *p = arg;

	(void)len;
	log_app(p->level, text);
}

static void out_close(struct out_pipe *p)
{
	if (p->fd < 0)
		return;
	/* A last line without its newline is a line too. */
	appline_end(&p->line, on_line, p);
	loop_del(p->s->loop, p->fd);
	close(p->fd);
	p->fd = -1;
}

/* One read: false at EOF, on an error, or when there is nothing to read now. */
static bool out_read(struct out_pipe *p)
{
	char buf[16384];
	ssize_t n = read(p->fd, buf, sizeof(buf));

	if (n > 0) {
		appline_feed(&p->line, buf, (size_t)n, on_line, p);
		return true;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n < 0)
		log_warn(0, "app: read its %s: %s", stream_names[p - p->s->out], strerror(errno));
	out_close(p);
	return false;
}

static void on_out(struct loop *l, int fd, short rev, void *arg)
{
	(void)l;
	(void)fd;
	(void)rev;
	out_read(arg);
}

/* In the child, between fork and exec: nothing here may return. */
static void child(struct supervisor *s, int fds[2][2])
{
	sigset_t none;

	setpgid(0, 0);
	/* The loop's blocked signals and our ignored SIGPIPE are not the app's. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	for (int i = 0; i < 2; i++)
		if (dup2(fds[i][1], 1 + i) < 0)
			_exit(127);
	execvp(s->o.argv[0], s->o.argv);
	dprintf(2, "qproxy: cannot run %s: %s\n", s->o.argv[0], strerror(errno));
	_exit(127);
}

static void close_pair(int fds[2])
{
	for (int j = 0; j < 2; j++)
		if (fds[j] >= 0)
			close(fds[j]);
}

int supervisor_start(struct supervisor *s, char *err, size_t errlen)
{
	int fds[2][2] = {{-1, -1}, {-1, -1}};
	const char *what = "pipe";

	for (int i = 0; i < 2; i++)
		if (pipe2(fds[i], O_CLOEXEC) != 0)
			goto fail;
	what = "fork";
	pid_t pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0)
		child(s, fds);
	/* Both sides set the group, so that it exists whichever runs first. */
	setpgid(pid, pid);
	s->pid = pid;
	s->started = loop_now();
	for (int i = 0; i < 2; i++) {
		struct out_pipe *p = &s->out[i];
		close(fds[i][1]);
		p->fd = fds[i][0];
		appline_init(&p->line);
		fcntl(p->fd, F_SETFL, O_NONBLOCK);
		/* Without the loop the pipe is not read, and the app blocks on a full one. */
		if (loop_add(s->loop, p->fd, POLLIN, on_out, p) != 0)
			log_error(0, "app: cannot read its %s: %s", stream_names[i],
				  strerror(errno));
	}
	log_always(LOG_INFO, "app: started %s as pid %d", s->command, (int)pid);
	notify(s);
	return 0;
fail:
	snprintf(err, errlen, "app %s: %s: %s", s->command, what, strerror(errno));
	close_pair(fds[0]);
	close_pair(fds[1]);
	return -1;
}

static void on_restart(struct loop *l, struct loop_timer *t)
{
	struct supervisor *s = container_of(t, struct supervisor, restart_timer);
	char err[256];

	s->restarts++;
	if (supervisor_start(s, err, sizeof(err)) == 0)
		return;
	log_error(0, "%s", err);
	s->quick++;
	loop_timer_set(l, t, supervisor_backoff(s->quick, s->rnd++ * 2654435761u));
}

static void on_kill(struct loop *l, struct loop_timer *t)
{
	struct supervisor *s = container_of(t, struct supervisor, kill_timer);

	(void)l;
	if (!s->pid)
		return;
	log_warn(0, "app: pid %d still running %lld ms after it was told to stop: SIGKILL",
		 (int)s->pid, (long long)s->o.stop_timeout_ms);
	if (kill(-s->pid, SIGKILL) != 0)
		kill(s->pid, SIGKILL);
}

/* The app is over for good: what is left of its group goes too, and so does the loop. */
static void finish(struct supervisor *s, pid_t group)
{
	loop_timer_stop(s->loop, &s->kill_timer);
	loop_timer_stop(s->loop, &s->restart_timer);
	if (group)
		kill(-group, SIGKILL);
	loop_stop(s->loop);
}

static void app_ended(struct supervisor *s, int wstatus)
{
	pid_t pid = s->pid;
	int64_t ran = loop_now() - s->started;

	/* What it wrote before it died comes before the news of its death. */
	for (int i = 0; i < 2; i++) {
		for (int n = 0; n < DRAIN_READS && s->out[i].fd >= 0 && out_read(&s->out[i]); n++)
			;
		out_close(&s->out[i]);
	}
	s->pid = 0;
	s->exits++;
	s->signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
	s->status = s->signal ? 128 + s->signal : WEXITSTATUS(wstatus);
	if (s->signal)
		log_always(LOG_WARN, "app: pid %d ended by signal %d (%s), after %lld ms", (int)pid,
			   s->signal, strsignal(s->signal), (long long)ran);
	else
		log_always(s->status ? LOG_WARN : LOG_INFO,
			   "app: pid %d exited with status %d, after %lld ms", (int)pid, s->status,
			   (long long)ran);
	bool again = !s->stopping && (s->o.restart == RESTART_ALWAYS ||
				      (s->o.restart == RESTART_ON_FAILURE && s->status != 0));
	if (!again) {
		notify(s);
		finish(s, pid);
		return;
	}
	s->quick = ran >= SUPERVISOR_STEADY_MS ? 1 : s->quick + 1;
	int64_t wait = supervisor_backoff(s->quick, s->rnd++ * 2654435761u);
	log_always(LOG_WARN, "app: restart %llu in %lld ms (--restart=%s)",
		   (unsigned long long)s->restarts + 1, (long long)wait,
		   s->o.restart == RESTART_ALWAYS ? "always" : "on-failure");
	loop_timer_set(s->loop, &s->restart_timer, wait);
	notify(s);
}

void supervisor_reap(struct supervisor *s)
{
	int wstatus;
	pid_t pid;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
		if (pid == s->pid)
			app_ended(s, wstatus);
		else
			log_debug(0, "app: reaped pid %d, an orphan", (int)pid);
	}
}

void supervisor_stop(struct supervisor *s, int sig)
{
	s->stopping = true;
	loop_timer_stop(s->loop, &s->restart_timer);
	if (!s->pid) {
		finish(s, 0);
		return;
	}
	log_info(0, "app: passing signal %d (%s) on to pid %d and its group; SIGKILL in %lld ms",
		 sig, strsignal(sig), (int)s->pid, (long long)s->o.stop_timeout_ms);
	if (kill(-s->pid, sig) != 0)
		kill(s->pid, sig);
	if (s->kill_timer.idx == -1u)
		loop_timer_set(s->loop, &s->kill_timer, s->o.stop_timeout_ms);
}

int supervisor_status(const struct supervisor *s)
{
	return s->status;
}

struct supervisor *supervisor_new(struct loop *l, const struct supervisor_opts *o,
				  supervisor_fn *changed, void *arg)
{
	struct supervisor *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->loop = l;
	s->o = *o;
	s->changed = changed;
	s->arg = arg;
	s->rnd = (uint64_t)loop_now() ^ (uint64_t)getpid() << 20;
	size_t n = 0;
	for (char *const *a = o->argv; *a && n < sizeof(s->command) - 1; a++)
		n += (size_t)snprintf(s->command + n, sizeof(s->command) - n, "%s%s",
				      a == o->argv ? "" : " ", *a);
	for (int i = 0; i < 2; i++)
		s->out[i] = (struct out_pipe){.s = s, .fd = -1, .level = i ? LOG_WARN : LOG_INFO};
	loop_timer_init(&s->kill_timer, on_kill);
	loop_timer_init(&s->restart_timer, on_restart);
	/*
	 * The app's stdout and stderr are pipes made now: were 1 or 2 closed, a pipe
	 * could take its number, and dup2() onto itself would leave it close-on-exec.
	 */
	int fd;
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
	return s;
}

void supervisor_free(struct supervisor *s)
{
	if (!s)
		return;
	for (int i = 0; i < 2; i++)
		out_close(&s->out[i]);
	loop_timer_stop(s->loop, &s->kill_timer);
	loop_timer_stop(s->loop, &s->restart_timer);
	free(s);
}
