#ifndef QPROXY_INIT_H
#define QPROXY_INIT_H

#include <stdbool.h>

/*
 * What qproxy does as process 1 (an enclave image whose init is qproxy): the
 * kernel panics when init exits, so it powers the machine off instead; and no
 * one else mounts the filesystems every program expects.
 */

/* Is this process 1 (of the machine, or of a PID namespace)? */
bool init_is_pid1(void);

/*
 * Mount /proc, /sys, /dev (devtmpfs), /run and /tmp (tmpfs) where nothing is
 * mounted yet; /run and /tmp only when empty, so as to hide nothing the image
 * put there. Each mount made or failed is logged; none is fatal.
 */
void init_mount(void);

/*
 * sync() and power off: reboot(RB_POWER_OFF). In a PID namespace that ends the
 * namespace (its init is killed by SIGINT), not the machine. Returns only when
 * that fails (errno set).
 */
void init_poweroff(void);

#endif
