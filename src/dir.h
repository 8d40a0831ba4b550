#ifndef QPROXY_DIR_H
#define QPROXY_DIR_H

#include <stddef.h>
#include <sys/types.h>

/*
 * mkdir -p: create path and whichever of its parents are missing, the parents
 * with mode 0755 and path itself with mode (both less the umask); an existing
 * directory is fine. 0, or -1 with errno and the directory that could not be
 * made in failed (ENAMETOOLONG: path does not fit in PATH_MAX).
 */
int dir_create(const char *path, mode_t mode, char *failed, size_t size);

#endif
