#ifndef QPROXY_LOG_H
#define QPROXY_LOG_H

#include <stddef.h>

enum log_level { LOG_OFF, LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* Case-insensitive "off".."trace"; -1 when the name is unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

void log_set_level(int level);

/*
 * Send the log to DIR/FILE (FILE alone when it is absolute), creating DIR.
 * Until this is called, the log goes to stderr. On failure fills err and
 * returns -1; the log keeps its previous destination.
 */
int log_open(const char *dir, const char *file, char *err, size_t errlen);

/* One line, one write(): time, level, connection id (0 = none), message. */
void log_msg(int level, unsigned long conn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A line written whatever the level, unless the log is off, and handed to the sink
 * like any: the app's start, end and restarts, which are news at any level.
 */
void log_always(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line of the app's output (supervisor.h): "[app] text", as log_always() writes it. */
void log_app(int level, const char *text);

/*
 * Also hand every line written (without its newline) to fn: the enclave half
 * sends its log to the host this way. fn may log; those lines are not handed on.
 */
void log_set_sink(void (*fn)(int level, const char *line, size_t len));

/* Write a line made elsewhere (the enclave's, on the host) as is, unless the level is off. */
void log_write_line(const char *line, size_t len);

extern int log_level_current;
#define log_on(level) ((level) <= log_level_current)

#define log_error(conn, ...) log_msg(LOG_ERROR, conn, __VA_ARGS__)
#define log_warn(conn, ...)                                                                        \
	do {                                                                                       \
		if (log_on(LOG_WARN))                                                              \
			log_msg(LOG_WARN, conn, __VA_ARGS__);                                      \
	} while (0)
#define log_info(conn, ...)                                                                        \
	do {                                                                                       \
		if (log_on(LOG_INFO))                                                              \
			log_msg(LOG_INFO, conn, __VA_ARGS__);                                      \
	} while (0)
#define log_debug(conn, ...)                                                                       \
	do {                                                                                       \
		if (log_on(LOG_DEBUG))                                                             \
			log_msg(LOG_DEBUG, conn, __VA_ARGS__);                                     \
	} while (0)

#endif
