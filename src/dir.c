#include "dir.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int dir_create(const char *path, mode_t mode, char *failed, size_t size)
{
	char p[PATH_MAX];
	size_t n = strlen(path);

	snprintf(failed, size, "%s", path);
	if (n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, n + 1);
	/* Each prefix up to a '/', then the whole; "a//b" and a trailing '/' make no harm. */
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, c ? 0755 : mode) != 0 && errno != EEXIST) {
			snprintf(failed, size, "%s", p);
			return -1;
		}
		*s = c;
		if (c == '\0')
			return 0;
	}
}
