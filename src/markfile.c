#include "markfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define END "# END qproxy\n"
#define MARKFILE_MAX (1 << 20)

/* The file without an earlier block of ours. */
static size_t strip_block(char *text, size_t len, const char *begin)
{
	char *b = strstr(text, begin);
	if (!b)
		return len;
	char *e = strstr(b, END);
	char *after = e ? e + strlen(END) : text + len;
	memmove(b, after, (size_t)(text + len - after) + 1);
	return len - (size_t)(after - b);
}

int markfile_write(const char *path, const char *what, const char *begin, const char *block,
		   char *err, size_t errlen)
{
	size_t cap = MARKFILE_MAX + strlen(begin) + strlen(block) + strlen(END) + 1;
	char *buf = malloc(cap);
	int rc = -1;

	if (!buf) {
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "open %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	/* The new block first, so that our lines win over older ones further down. */
	size_t n = (size_t)snprintf(buf, cap, "%s%s%s", begin, block, END);
	size_t old = 0;
	ssize_t got = 0;
	while (old < MARKFILE_MAX &&
	       (got = pread(fd, buf + n + old, MARKFILE_MAX - old, (off_t)old)) > 0)
		old += (size_t)got;
	if (got < 0) {
		snprintf(err, errlen, "read %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (old >= MARKFILE_MAX) {
		snprintf(err, errlen, "%s %s: larger than %d bytes", what, path, MARKFILE_MAX);
		goto out;
	}
	buf[n + old] = '\0';
	old = strip_block(buf + n, old, begin);
	size_t total = n + old;
	for (size_t w = 0; w < total;) {
		ssize_t k = pwrite(fd, buf + w, total - w, (off_t)w);
		if (k < 0) {
			snprintf(err, errlen, "write %s %s: %s", what, path, strerror(errno));
			goto out;
		}
		w += (size_t)k;
	}
	if (ftruncate(fd, (off_t)total) != 0) {
		snprintf(err, errlen, "truncate %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
