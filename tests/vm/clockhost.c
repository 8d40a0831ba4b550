/*
 * A stand-in for the host half in the VM test's clock run: both halves in one guest
 * read one kernel clock, so a real host half can never show the enclave half a clock
 * that differs from its own. This one answers the enclave half's TIME_REQ with its
 * clock plus OFFSET seconds, through qproxy's own message codec, and echoes heartbeats.
 *
 *   clockhost PORT OFFSET
 *
 * Serves one connection on vsock PORT, prints one line per answer, exits when it ends.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "message.h"

static uint8_t in[4 + MSG_MAX];

static int send_msg(int fd, const struct msg *m)
{
	uint8_t out[4 + 256];
	size_t n = msg_encode(m, out + 4, sizeof(out) - 4);

	if (n == 0)
		return -1;
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	return write(fd, out, 4 + n) == (ssize_t)(4 + n) ? 0 : -1;
}

static void on_msg(int fd, const struct msg *m, long long offset)
{
	struct timespec ts;
	struct msg r = {.type = m->type, .seq = m->seq};

	if (m->type == MSG_TIME_REQ) {
		clock_gettime(CLOCK_REALTIME, &ts);
		r.type = MSG_TIME;
		r.time_ns = (uint64_t)(ts.tv_sec + offset) * 1000000000u + (uint64_t)ts.tv_nsec;
		if (send_msg(fd, &r) == 0)
			printf("clockhost: answered TIME_REQ %llu with our clock %+lld s\n",
			       (unsigned long long)m->seq, offset);
	} else if (m->type == MSG_HEARTBEAT) {
		send_msg(fd, &r);
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY};
	size_t len = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: clockhost PORT OFFSET\n");
		return 2;
	}
	sa.svm_port = (unsigned)atoi(argv[1]);
	long long offset = atoll(argv[2]);
	int lfd = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 1) != 0) {
		fprintf(stderr, "clockhost: vsock port %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	printf("clockhost: listening on vsock port %s\n", argv[1]);
	fflush(stdout);
	int fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		fprintf(stderr, "clockhost: accept: %s\n", strerror(errno));
		return 1;
	}
	for (;;) {
		ssize_t r = read(fd, in + len, sizeof(in) - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		while (len >= 4) {
			size_t n =
			    (size_t)in[0] << 24 | (size_t)in[1] << 16 | (size_t)in[2] << 8 | in[3];
			if (n > MSG_MAX) {
				fprintf(stderr, "clockhost: a frame of %zu bytes\n", n);
				return 1;
			}
			if (len < 4 + n)
				break;
			struct msg m;
			char err[128];
			if (msg_decode(in + 4, n, &m, err, sizeof(err)) == 0)
				on_msg(fd, &m, offset);
			msg_free(&m);
			memmove(in, in + 4 + n, len - 4 - n);
			len -= 4 + n;
		}
	}
	printf("clockhost: the enclave half is gone\n");
	return 0;
}
