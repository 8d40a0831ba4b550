#include "hosts.h"

#include <stdio.h>
#include <stdlib.h>

#include "markfile.h"
#include "net.h"

#define BEGIN "# BEGIN qproxy: outbound names, rewritten by qproxy enclave at each start\n"

int hosts_write(const char *path, const struct config *c, char *err, size_t errlen)
{
	size_t cap = c->nrules * (CONFIG_STR_MAX + 24) + 1;
	char *block = malloc(cap);

	if (!block) {
		snprintf(err, errlen, "hosts file %s: out of memory", path);
		return -1;
	}
	size_t n = 0;
	block[0] = '\0';
	for (size_t i = 0; i < c->nrules; i++) {
		const struct rule *r = &c->rules[i];
		if (r->dir != RULE_OUTBOUND || net_is_ip_literal(r->hostname))
			continue;
		char ip[NET_IPV4_LEN];
		n += (size_t)snprintf(block + n, cap - n, "%s\t%s\n",
				      net_ipv4_str(r->enclave_address, ip), r->hostname);
	}
	int rc = markfile_write(path, "hosts file", BEGIN, block, err, errlen);
	free(block);
	return rc;
}
