#ifndef QPROXY_HOSTS_H
#define QPROXY_HOSTS_H

#include <stddef.h>

#include "config.h"

/*
 * Point each outbound rule's hostname at its enclave_address in the hosts file
 * at path, so an unmodified application reaching api.example.com:443 reaches the
 * enclave half (and TLS still sees the real name). Our lines sit in a marked
 * block at the top, replacing any block an earlier run wrote; every other line
 * is kept. The file is rewritten in place, since /etc/hosts is often a bind
 * mount that rename() cannot replace. 0, or -1 with err filled.
 */
int hosts_write(const char *path, const struct config *c, char *err, size_t errlen);

#endif
