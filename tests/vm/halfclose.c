/*
 * halfclose: the two ends of the VM test's half-close check, built static with musl
 * because the guest has no libc.
 *
 *   halfclose serve ADDR PORT       accept forever; on each connection read to EOF,
 *                                   then answer "BYTES HASH\n" and close
 *   halfclose send ADDR PORT BYTES  send BYTES pseudo-random bytes, shut the write
 *                                   side, read the answer to EOF and check it
 *
 * The answer can only come after the server saw EOF, so getting it back proves the
 * proxies carried the half-close through and kept the other direction open.
 * Busybox nc can do neither: it has no way to shut only its write side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Long enough for a slow TCG guest, short enough to fail well inside run.sh's timeout. */
#define HC_TIMEOUT_S 30

static const char *hc_stage = "connecting";

static void hc_on_alarm(int sig)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "halfclose: timeout after %d s while %s\n", HC_TIMEOUT_S,
			 hc_stage);
	(void)sig;
	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(3);
}

/* FNV-1a: any change in the bytes or their order changes the answer. */
static uint32_t hc_hash(uint32_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static int hc_addr(const char *addr, const char *port, struct sockaddr_in *sin)
{
	char *end;
	unsigned long p = strtoul(port, &end, 10);

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)p);
	if (*port == '\0' || *end != '\0' || p == 0 || p > 65535 ||
	    inet_pton(AF_INET, addr, &sin->sin_addr) != 1) {
		fprintf(stderr, "halfclose: bad address %s:%s\n", addr, port);
		return -1;
	}
	return 0;
}

static int hc_write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int hc_serve(const char *addr, const char *port)
{
	struct sockaddr_in sin;
	int one = 1;

	if (hc_addr(addr, port, &sin) != 0)
		return 2;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0) {
		fprintf(stderr, "halfclose: listen %s:%s: %s\n", addr, port, strerror(errno));
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "halfclose: accept: %s\n", strerror(errno));
			return 1;
		}
		unsigned char buf[65536];
		unsigned long long total = 0;
		uint32_t h = 2166136261u;
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) != 0) {
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				break;
			h = hc_hash(h, buf, (size_t)r);
			total += (unsigned long long)r;
		}
		if (r < 0) {
			fprintf(stderr, "halfclose: serve: read: %s\n", strerror(errno));
		} else {
			char ans[64];
			int n = snprintf(ans, sizeof(ans), "%llu %08x\n", total, (unsigned)h);
			if (hc_write_all(fd, (unsigned char *)ans, (size_t)n) != 0)
				fprintf(stderr, "halfclose: serve: write: %s\n", strerror(errno));
		}
		close(fd);
	}
}

static int hc_send(const char *addr, const char *port, const char *count)
{
	struct sockaddr_in sin;
	char *end;
	unsigned long long want = strtoull(count, &end, 10);

	if (hc_addr(addr, port, &sin) != 0)
		return 2;
	if (*count == '\0' || *end != '\0') {
		fprintf(stderr, "halfclose: bad byte count '%s'\n", count);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		fprintf(stderr, "halfclose: connect %s:%s: %s\n", addr, port, strerror(errno));
		return 1;
	}

	hc_stage = "sending";
	unsigned char buf[65536];
	uint32_t x = 2463534242u, h = 2166136261u;
	for (unsigned long long left = want; left > 0;) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			buf[i] = (unsigned char)x;
		}
		h = hc_hash(h, buf, n);
		if (hc_write_all(fd, buf, n) != 0) {
			fprintf(stderr, "halfclose: send: write: %s\n", strerror(errno));
			return 1;
		}
		left -= n;
	}
	if (shutdown(fd, SHUT_WR) != 0) {
		fprintf(stderr, "halfclose: shutdown: %s\n", strerror(errno));
		return 1;
	}

	hc_stage = "waiting for the answer after shutting the write side (EOF not carried?)";
	char ans[64];
	size_t got = 0;
	ssize_t r;
	while ((r = read(fd, ans + got, sizeof(ans) - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "halfclose: read answer: %s\n", strerror(errno));
			return 1;
		}
		got += (size_t)r;
		if (got == sizeof(ans) - 1)
			break;
	}
	ans[got] = '\0';

	char expect[64];
	snprintf(expect, sizeof(expect), "%llu %08x\n", want, (unsigned)h);
	if (got == 0) {
		fprintf(stderr, "halfclose: no answer: the connection closed after our EOF\n");
		return 1;
	}
	if (strcmp(ans, expect) != 0) {
		ans[strcspn(ans, "\n")] = '\0';
		expect[strcspn(expect, "\n")] = '\0';
		fprintf(stderr, "halfclose: answer '%s', expected '%s'\n", ans, expect);
		return 1;
	}
	printf("sent %llu bytes, shut write, server answered after EOF: %s", want, ans);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return hc_serve(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "send") == 0) {
		signal(SIGALRM, hc_on_alarm);
		alarm(HC_TIMEOUT_S);
		return hc_send(argv[2], argv[3], argv[4]);
	}
	fputs("usage: halfclose serve ADDR PORT | halfclose send ADDR PORT BYTES\n", stderr);
	return 2;
}
