/* The rules of two halves compared: each difference, one line each. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net.h"

/*
 * A rule with its whole route, for the lines that say how two halves differ:
 * config_rule_name() alone would not show which end differs.
 */
static void rule_name(const struct rule *r, char *buf, size_t size)
{
	if (r->dir == RULE_INBOUND) {
		snprintf(buf, size,
			 "inbound rule vsock_port %u (host 0.0.0.0:%u -> enclave 127.0.0.1:%u)",
			 r->vsock_port, r->host_port, r->enclave_port);
	} else {
		char ip[NET_IPV4_LEN];
		net_ipv4_str(r->enclave_address, ip);
		snprintf(buf, size, "outbound rule vsock_port %u (enclave %s:%u -> %s:%u)",
			 r->vsock_port, ip, r->tcp_port, r->hostname, r->tcp_port);
	}
}

static const struct rule *find_rule(const struct rule *rules, size_t n, uint32_t vsock_port)
{
	for (size_t i = 0; i < n; i++)
		if (rules[i].vsock_port == vsock_port)
			return &rules[i];
	return NULL;
}

size_t config_diff(const struct rule *host, size_t nhost, const struct rule *enclave,
		   size_t nenclave, void (*emit)(void *arg, const char *line), void *arg)
{
	char line[CONFIG_STR_MAX * 2 + 256], name[CONFIG_STR_MAX + 128];
	size_t count = 0;

	for (size_t i = 0; i < nhost; i++) {
		const struct rule *h = &host[i], *e = find_rule(enclave, nenclave, h->vsock_port);
		rule_name(h, name, sizeof(name));
		if (!e) {
			snprintf(line, sizeof(line),
				 "config mismatch: the host has %s, the enclave does not", name);
			emit(arg, line), count++;
			continue;
		}
		if (h->dir != e->dir) {
			snprintf(
			    line, sizeof(line),
			    "config mismatch: vsock_port %u is an %s rule in the host's config, "
			    "an %s rule in the enclave's",
			    h->vsock_port, h->dir == RULE_INBOUND ? "inbound" : "outbound",
			    e->dir == RULE_INBOUND ? "inbound" : "outbound");
			emit(arg, line), count++;
			continue;
		}
		struct {
			const char *key;
			unsigned a, b;
		} ports[] = {
		    {"host_port", h->host_port, e->host_port},
		    {"enclave_port", h->enclave_port, e->enclave_port},
		    {"tcp_port", h->tcp_port, e->tcp_port},
		};
		for (size_t k = 0; k < 3; k++) {
			if (ports[k].a == ports[k].b)
				continue;
			snprintf(line, sizeof(line),
				 "config mismatch: %s: %s is %u in the host's config, %u in the "
				 "enclave's",
				 name, ports[k].key, ports[k].a, ports[k].b);
			emit(arg, line), count++;
		}
		if (strcmp(h->hostname, e->hostname) != 0) {
			snprintf(
			    line, sizeof(line),
			    "config mismatch: %s: hostname is \"%s\" in the host's config, \"%s\" "
			    "in the enclave's",
			    name, h->hostname, e->hostname);
			emit(arg, line), count++;
		}
	}
	for (size_t i = 0; i < nenclave; i++) {
		if (find_rule(host, nhost, enclave[i].vsock_port))
			continue;
		rule_name(&enclave[i], name, sizeof(name));
		snprintf(line, sizeof(line),
			 "config mismatch: the enclave has %s, the host does not", name);
		emit(arg, line), count++;
	}
	return count;
}

size_t config_diff_egress(uint32_t host, uint32_t enclave,
			  void (*emit)(void *arg, const char *line), void *arg)
{
	char line[256];

	if (host == enclave)
		return 0;
	if (!host)
		snprintf(line, sizeof(line),
			 "config mismatch: the enclave has [egress] on vsock_port %" PRIu32
			 ", the host does not: the host half refuses the enclave's egress",
			 enclave);
	else if (!enclave)
		snprintf(line, sizeof(line),
			 "config mismatch: the host has [egress] on vsock_port %" PRIu32
			 ", the enclave does not",
			 host);
	else
		snprintf(line, sizeof(line),
			 "config mismatch: [egress]: vsock_port is %" PRIu32
			 " in the host's config, %" PRIu32
			 " in the enclave's: the host half refuses the enclave's egress",
			 host, enclave);
	emit(arg, line);
	return 1;
}
