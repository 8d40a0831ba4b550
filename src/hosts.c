#include "hosts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net.h"

#define BEGIN "# BEGIN qproxy: outbound names, rewritten by qproxy enclave at each start\n"
#define END "# END qproxy\n"
#define HOSTS_MAX (1 << 20)

/* The file without an earlier block of ours. */
static size_t strip_block(char *text, size_t len)
{
	char *b = strstr(text, BEGIN);
	if (!b)
		return len;
	char *e = strstr(b, END);
	char *after = e ? e + strlen(END) : text + len;
	memmove(b, after, (size_t)(text + len - after) + 1);
	return len - (size_t)(after - b);
}

int hosts_write(const char *path, const struct config *c, char *err, size_t errlen)
{
	size_t cap = HOSTS_MAX + c->nrules * (CONFIG_STR_MAX + 24) + 256;
	char *buf = malloc(cap);
	int rc = -1;

	if (!buf) {
		snprintf(err, errlen, "hosts file %s: out of memory", path);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "open hosts file %s: %s", path, strerror(errno));
		goto out;
	}
	/* The new block first, so that our names win over older lines further down. */
	size_t n = 0;
	n += (size_t)snprintf(buf + n, cap - n, "%s", BEGIN);
	for (size_t i = 0; i < c->nrules; i++) {
		const struct rule *r = &c->rules[i];
		if (r->dir != RULE_OUTBOUND || net_is_ip_literal(r->hostname))
			continue;
		char ip[NET_IPV4_LEN];
		n += (size_t)snprintf(buf + n, cap - n, "%s\t%s\n",
				      net_ipv4_str(r->enclave_address, ip), r->hostname);
	}
	n += (size_t)snprintf(buf + n, cap - n, "%s", END);

	size_t old = 0;
	ssize_t got = 0;
	while (old < HOSTS_MAX && (got = pread(fd, buf + n + old, HOSTS_MAX - old, (off_t)old)) > 0)
		old += (size_t)got;
	if (got < 0) {
		snprintf(err, errlen, "read hosts file %s: %s", path, strerror(errno));
		goto out;
	}
	if (old >= HOSTS_MAX) {
		snprintf(err, errlen, "hosts file %s: larger than %d bytes", path, HOSTS_MAX);
		goto out;
	}
	buf[n + old] = '\0';
	old = strip_block(buf + n, old);
	size_t total = n + old;
	/* Write the whole, then cut: a reader never sees an empty file. */
	for (size_t w = 0; w < total;) {
		ssize_t k = pwrite(fd, buf + w, total - w, (off_t)w);
		if (k < 0) {
			snprintf(err, errlen, "write hosts file %s: %s", path, strerror(errno));
			goto out;
		}
		w += (size_t)k;
	}
	if (ftruncate(fd, (off_t)total) != 0) {
		snprintf(err, errlen, "truncate hosts file %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
