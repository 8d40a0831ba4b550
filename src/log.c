#include "log.h"

#include "dir.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int log_level_current = LOG_WARN;
static int log_fd = 2;
static void (*log_sink)(int level, const char *line, size_t len);
static bool in_sink;

static const char *const level_names[] = {"off", "error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(int level)
{
	if (level < LOG_OFF || level > LOG_TRACE)
		return "?";
	return level_names[level];
}

void log_set_level(int level)
{
	log_level_current = level;
}

/* The guide's default dir, /var/log/qproxy, usually does not exist yet. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
	char failed[PATH_MAX];

	if (dir[0] == '\0' || dir_create(dir, 0755, failed, sizeof(failed)) == 0)
		return 0;
	if (errno == ENAMETOOLONG)
		snprintf(err, errlen, "log dir %s: name too long", dir);
	else
		snprintf(err, errlen, "create log dir %s: %s", failed, strerror(errno));
	return -1;
}

int log_open(const char *dir, const char *file, char *err, size_t errlen)
{
	char path[4096];
	int n;

	if (file[0] == '/') {
		n = snprintf(path, sizeof(path), "%s", file);
	} else {
		if (make_dir(dir, err, errlen) != 0)
			return -1;
		n = snprintf(path, sizeof(path), "%s/%s", dir, file);
	}
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "log file %s/%s: name too long", dir, file);
		return -1;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "open log file %s: %s", path, strerror(errno));
		return -1;
	}
	if (log_fd > 2)
		close(log_fd);
	log_fd = fd;
	return 0;
}

static void vlog(int level, unsigned long conn, const char *fmt, va_list ap)
{
	static const char *const tags[] = {"OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
	char line[1024];
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
			      tags[level > LOG_TRACE ? LOG_TRACE : level]);
	if (conn)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "c%lu ", conn);
	int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* A message cut short still ends in a newline: one event, one line. */
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* O_APPEND and one write(): lines from both halves sharing a file never interleave. */
	ssize_t w = write(log_fd, line, n);
	(void)w;
	if (log_sink && !in_sink) {
		in_sink = true;
		log_sink(level, line, n - 1);
		in_sink = false;
	}
}

void log_msg(int level, unsigned long conn, const char *fmt, ...)
{
	va_list ap;

	if (!log_on(level) || level <= LOG_OFF)
		return;
	va_start(ap, fmt);
	vlog(level, conn, fmt, ap);
	va_end(ap);
}

void log_always(int level, const char *fmt, ...)
{
	va_list ap;

	if (log_level_current <= LOG_OFF)
		return;
	va_start(ap, fmt);
	vlog(level, 0, fmt, ap);
	va_end(ap);
}

void log_app(int level, const char *text)
{
	log_always(level, "[app] %s", text);
}

void log_set_sink(void (*fn)(int level, const char *line, size_t len))
{
	log_sink = fn;
}

void log_write_line(const char *line, size_t len)
{
	char buf[1100];

	if (log_level_current <= LOG_OFF)
		return;
	if (len > sizeof(buf) - 1)
		len = sizeof(buf) - 1;
	memcpy(buf, line, len);
	buf[len] = '\n';
	ssize_t w = write(log_fd, buf, len + 1);
	(void)w;
}
