/*
 * The sockmap experiment (bench/sockmap/README.md): one proxy half of one rule whose
 * bytes move from socket to socket inside the kernel, by a BPF verdict program, never
 * through user space. A measuring tool, not qproxy: no half-close, no limits, no checks
 * beyond what the measurement needs.
 *
 *   redirect host TCP_PORT UNIX_PATH BPF_OBJECT      (127.0.0.1:TCP_PORT -> UNIX_PATH)
 *   redirect enclave UNIX_PATH TCP_PORT BPF_OBJECT   (UNIX_PATH -> 127.0.0.1:TCP_PORT)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FDS 65536

static int socks_fd, partner_fd;
static int pair_of[FDS];
static uint64_t owner_of[FDS]; /* the cookie the partner map holds for this fd */

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int tcp_socket(int port, bool listening)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (listening ? bind(fd, (void *)&a, sizeof(a)) || listen(fd, 1024)
		      : connect(fd, (void *)&a, sizeof(a)))
		die("tcp");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int unix_socket(const char *path, bool listening)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (listening)
		unlink(path);
	if (listening ? bind(fd, (void *)&a, sizeof(a)) || listen(fd, 1024)
		      : connect(fd, (void *)&a, sizeof(a)))
		die("unix");
	return fd;
}

static uint64_t cookie(int fd)
{
	uint64_t c = 0;
	socklen_t l = sizeof(c);

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &l);
	return c;
}

/* Into the maps: skbs owned by tcp go out of unx, those owned by far (the Unix peer) out of tcp. */
static void join(int tcp, int unx, uint64_t far)
{
	uint32_t kt = (uint32_t)tcp, ku = (uint32_t)unx;

	owner_of[tcp] = cookie(tcp);
	owner_of[unx] = far;
	if (bpf_map_update_elem(partner_fd, &owner_of[tcp], &ku, BPF_ANY) ||
	    bpf_map_update_elem(partner_fd, &owner_of[unx], &kt, BPF_ANY) ||
	    bpf_map_update_elem(socks_fd, &kt, &kt, BPF_ANY) ||
	    bpf_map_update_elem(socks_fd, &ku, &ku, BPF_ANY))
		die("bpf_map_update_elem");
	/* Bytes that came before the sockets joined the map: by hand. */
	for (int i = 0; i < 2; i++) {
		int from = i ? unx : tcp, to = i ? tcp : unx;
		char buf[65536];
		ssize_t n;
		while ((n = recv(from, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
				break;
	}
}

static void leave(int fd)
{
	for (int i = 0; i < 2; i++, fd = pair_of[fd]) {
		uint32_t k = (uint32_t)fd;
		bpf_map_delete_elem(partner_fd, &owner_of[fd]);
		bpf_map_delete_elem(socks_fd, &k);
	}
	close(pair_of[fd]);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc != 5 || (strcmp(argv[1], "host") != 0 && strcmp(argv[1], "enclave") != 0)) {
		fprintf(stderr, "usage: redirect host|enclave LISTEN CONNECT BPF_OBJECT\n");
		return 2;
	}
	bool host = strcmp(argv[1], "host") == 0;
	struct bpf_object *obj = bpf_object__open_file(argv[4], NULL);
	if (!obj || bpf_object__load(obj))
		die(argv[4]);
	socks_fd = bpf_object__find_map_fd_by_name(obj, "socks");
	partner_fd = bpf_object__find_map_fd_by_name(obj, "partner");
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "verdict"));
	if (bpf_prog_attach(prog, socks_fd, BPF_SK_SKB_STREAM_VERDICT, 0))
		die("bpf_prog_attach");

	int lfd = host ? tcp_socket(atoi(argv[2]), true) : unix_socket(argv[2], true);
	int ep = epoll_create1(0);
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd != lfd) { /* only an end reaches user space */
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				epoll_ctl(ep, EPOLL_CTL_DEL, pair_of[fd], NULL);
				leave(fd);
				continue;
			}
			int c = accept(lfd, NULL, NULL);
			if (c < 0 || c >= FDS)
				die("accept");
			int s = host ? unix_socket(argv[3], false) : tcp_socket(atoi(argv[3]), false);
			if (s >= FDS)
				die("socket");
			if (host) {
				int one = 1;
				setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			}
			/* The Unix ends trade cookies: each one's skbs are owned by the other. */
			int unx = host ? s : c, tcp = host ? c : s;
			uint64_t mine = cookie(unx), far = 0;
			if (send(unx, &mine, 8, 0) != 8 || recv(unx, &far, 8, MSG_WAITALL) != 8)
				die("cookie exchange");
			pair_of[c] = s;
			pair_of[s] = c;
			join(tcp, unx, far);
			struct epoll_event end = {.events = EPOLLRDHUP, .data.fd = c};
			epoll_ctl(ep, EPOLL_CTL_ADD, c, &end);
			end.data.fd = s;
			epoll_ctl(ep, EPOLL_CTL_ADD, s, &end);
		}
	}
}
