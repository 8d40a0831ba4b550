#ifndef QPROXY_MARKFILE_H
#define QPROXY_MARKFILE_H

#include <stddef.h>

/*
 * A system file qproxy adds its lines to (/etc/hosts, /etc/resolv.conf): block,
 * between the line begin and "# END qproxy", goes at the top of the file at path,
 * replacing any block an earlier run wrote there; every other line is kept. The
 * file is rewritten in place, since it is often a bind mount that rename() cannot
 * replace: the whole is written, then the rest cut, so a reader never sees it
 * empty. The file is made (0644) when missing, and must be under 1 MiB. what
 * names the file in errors ("hosts file"). 0, or -1 with err filled.
 */
int markfile_write(const char *path, const char *what, const char *begin, const char *block,
		   char *err, size_t errlen);

#endif
