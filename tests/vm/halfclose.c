/*
 * halfclose: the two ends of the VM test's half-close checks, built static with musl
 * because the guest has no libc.
 *
 * Client first:
 *   halfclose serve ADDR PORT        accept forever; on each connection read to EOF,
 *                                    then answer "BYTES HASH\n" and close
 *   halfclose send ADDR PORT BYTES   send BYTES pseudo-random bytes, shut the write
 *                                    side, read the answer to EOF and check it
 * The answer can only come after the server saw EOF, so getting it back proves the
 * proxies carried the half-close through and kept the other direction open.
 *
 * Server first:
 *   halfclose serve-first ADDR PORT BYTES   accept forever; on each connection send
 *                                    BYTES pseudo-random bytes and shut the write side,
 *                                    then read to EOF and print "received BYTES HASH"
 *   halfclose recv-first ADDR PORT BYTES    send a first chunk, read the server's BYTES
 *                                    to EOF and check them, then send the rest of BYTES
 *                                    and shut the write side; print "... sent BYTES HASH"
 * The server can answer nothing once it has shut its write side, so the caller
 * matches the client's "sent BYTES HASH" against the server's "received BYTES HASH":
 * the bytes sent after the server's EOF reached it, so that direction stayed open.
 *
 * Busybox nc can do none of this: it has no way to shut only its write side.
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
/* What recv-first sends before it reads: little enough to sit in socket buffers. */
#define HC_FIRST_CHUNK 65536
#define HC_SEED_CLIENT 2463534242u
#define HC_SEED_SERVER 88675123u

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

/* A pseudo-random byte stream and the FNV-1a hash of what was taken from it. */
struct hc_stream {
	uint32_t x, h;
	unsigned long long n;
};

static void hc_stream_init(struct hc_stream *s, uint32_t seed)
{
	*s = (struct hc_stream){.x = seed, .h = 2166136261u};
}

/* FNV-1a: any change in the bytes or their order changes the answer. */
static void hc_hash(struct hc_stream *s, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		s->h = (s->h ^ p[i]) * 16777619u;
	s->n += n;
}

/* xorshift32: the same seed always gives the same bytes. */
static void hc_generate(struct hc_stream *s, unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		s->x ^= s->x << 13;
		s->x ^= s->x >> 17;
		s->x ^= s->x << 5;
		p[i] = (unsigned char)s->x;
	}
	hc_hash(s, p, n);
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

static int hc_count(const char *count, unsigned long long *n)
{
	char *end;

	*n = strtoull(count, &end, 10);
	if (*count == '\0' || *end != '\0') {
		fprintf(stderr, "halfclose: bad byte count '%s'\n", count);
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

/* Send count more bytes of s. */
static int hc_send_stream(int fd, struct hc_stream *s, unsigned long long count)
{
	unsigned char buf[65536];

	while (count > 0) {
		size_t n = count < sizeof(buf) ? (size_t)count : sizeof(buf);
		hc_generate(s, buf, n);
		if (hc_write_all(fd, buf, n) != 0)
			return -1;
		count -= n;
	}
	return 0;
}

/* Read to EOF, hashing into s. */
static int hc_read_to_eof(int fd, struct hc_stream *s)
{
	unsigned char buf[65536];
	ssize_t r;

	while ((r = read(fd, buf, sizeof(buf))) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		hc_hash(s, buf, (size_t)r);
	}
	return 0;
}

static int hc_listen(const char *addr, const char *port)
{
	struct sockaddr_in sin;
	int one = 1;

	if (hc_addr(addr, port, &sin) != 0)
		return -1;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0) {
		fprintf(stderr, "halfclose: listen %s:%s: %s\n", addr, port, strerror(errno));
		return -1;
	}
	return lfd;
}

static int hc_accept(int lfd)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
			return fd;
	}
}

static int hc_connect(const char *addr, const char *port)
{
	struct sockaddr_in sin;

	if (hc_addr(addr, port, &sin) != 0)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		fprintf(stderr, "halfclose: connect %s:%s: %s\n", addr, port, strerror(errno));
		return -1;
	}
	return fd;
}

/* Client first: read to EOF, then answer what arrived. */
static void hc_answer_after_eof(int fd, unsigned long long count)
{
	struct hc_stream in;

	(void)count;
	hc_stream_init(&in, 0);
	if (hc_read_to_eof(fd, &in) != 0) {
		fprintf(stderr, "halfclose: serve: read: %s\n", strerror(errno));
		return;
	}
	char ans[64];
	int n = snprintf(ans, sizeof(ans), "%llu %08x\n", in.n, (unsigned)in.h);
	if (hc_write_all(fd, (unsigned char *)ans, (size_t)n) != 0)
		fprintf(stderr, "halfclose: serve: write: %s\n", strerror(errno));
}

/* Server first: send count bytes and shut the write side, then read to EOF. */
static void hc_send_then_read(int fd, unsigned long long count)
{
	struct hc_stream out, in;

	hc_stream_init(&out, HC_SEED_SERVER);
	hc_stream_init(&in, 0);
	if (hc_send_stream(fd, &out, count) != 0 || shutdown(fd, SHUT_WR) != 0)
		fprintf(stderr, "halfclose: serve-first: send: %s\n", strerror(errno));
	else if (hc_read_to_eof(fd, &in) != 0)
		fprintf(stderr, "halfclose: serve-first: read: %s\n", strerror(errno));
	else
		printf("received %llu %08x\n", in.n, (unsigned)in.h);
	fflush(stdout);
}

/* Accept forever, one connection at a time. */
static int hc_serve(const char *addr, const char *port,
		    void (*handle)(int fd, unsigned long long count), unsigned long long count)
{
	int lfd = hc_listen(addr, port);
	if (lfd < 0)
		return 1;
	for (;;) {
		int fd = hc_accept(lfd);
		if (fd < 0) {
			fprintf(stderr, "halfclose: accept: %s\n", strerror(errno));
			return 1;
		}
		handle(fd, count);
		close(fd);
	}
}

static int hc_send(const char *addr, const char *port, unsigned long long want)
{
	int fd = hc_connect(addr, port);
	if (fd < 0)
		return 1;

	hc_stage = "sending";
	struct hc_stream out;
	hc_stream_init(&out, HC_SEED_CLIENT);
	if (hc_send_stream(fd, &out, want) != 0) {
		fprintf(stderr, "halfclose: send: write: %s\n", strerror(errno));
		return 1;
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
	snprintf(expect, sizeof(expect), "%llu %08x\n", want, (unsigned)out.h);
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

static int hc_recv_first(const char *addr, const char *port, unsigned long long count)
{
	int fd = hc_connect(addr, port);
	if (fd < 0)
		return 1;

	hc_stage = "sending the first chunk";
	struct hc_stream out, in, expect;
	unsigned long long first = count < HC_FIRST_CHUNK ? count : HC_FIRST_CHUNK;
	hc_stream_init(&out, HC_SEED_CLIENT);
	if (hc_send_stream(fd, &out, first) != 0) {
		fprintf(stderr, "halfclose: recv-first: write: %s\n", strerror(errno));
		return 1;
	}

	hc_stage = "reading the server's bytes to its EOF";
	hc_stream_init(&in, 0);
	if (hc_read_to_eof(fd, &in) != 0) {
		fprintf(stderr, "halfclose: recv-first: read: %s\n", strerror(errno));
		return 1;
	}
	unsigned char buf[65536];
	hc_stream_init(&expect, HC_SEED_SERVER);
	for (unsigned long long left = count; left > 0;) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		hc_generate(&expect, buf, n);
		left -= n;
	}
	if (in.n != expect.n || in.h != expect.h) {
		fprintf(stderr, "halfclose: the server sent %llu %08x before its EOF, expected %llu %08x\n",
			in.n, (unsigned)in.h, expect.n, (unsigned)expect.h);
		return 1;
	}

	hc_stage = "sending after the server's EOF";
	if (hc_send_stream(fd, &out, count - first) != 0 || shutdown(fd, SHUT_WR) != 0) {
		fprintf(stderr, "halfclose: recv-first: write after the server's EOF: %s\n",
			strerror(errno));
		return 1;
	}
	printf("server sent %llu bytes and shut write first; %llu of ours went after its EOF; "
	       "sent %llu %08x\n",
	       in.n, count - first, out.n, (unsigned)out.h);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long long n = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "serve") == 0)
		return hc_serve(argv[2], argv[3], hc_answer_after_eof, 0);
	if (argc == 5 && strcmp(argv[1], "serve-first") == 0)
		return hc_count(argv[4], &n) != 0 ? 2 : hc_serve(argv[2], argv[3], hc_send_then_read, n);
	if (argc == 5 && (strcmp(argv[1], "send") == 0 || strcmp(argv[1], "recv-first") == 0)) {
		if (hc_count(argv[4], &n) != 0)
			return 2;
		signal(SIGALRM, hc_on_alarm);
		alarm(HC_TIMEOUT_S);
		return argv[1][0] == 's' ? hc_send(argv[2], argv[3], n)
					 : hc_recv_first(argv[2], argv[3], n);
	}
	fputs("usage: halfclose serve ADDR PORT | halfclose send ADDR PORT BYTES\n"
	      "       halfclose serve-first ADDR PORT BYTES | halfclose recv-first ADDR PORT BYTES\n",
	      stderr);
	return 2;
}
