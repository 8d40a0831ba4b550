#ifndef QPROXY_LOOPBACK_H
#define QPROXY_LOOPBACK_H

#include <stddef.h>

/*
 * An enclave booted by a tiny init has its loopback interface down and no `ip`
 * to raise it. Bring lo up, with 127.0.0.1/8 on it: 1 when something was
 * changed, 0 when it was already so, -1 with err filled.
 */
int loopback_up(char *err, size_t errlen);

#endif
