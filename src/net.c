#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

/* Room left in sun_path for "/CID.PORT" with both at 10 digits. */
static char emu_dir[sizeof(((struct sockaddr_un *)0)->sun_path) - 22];
static uint32_t emu_self;

int net_vsock_emulate(const char *dir, uint32_t self, char *err, size_t errlen)
{
	struct stat st;

	/* Room for "/4294967295.4294967295" after the dir. */
	if (strlen(dir) >= sizeof(emu_dir)) {
		snprintf(err, errlen, "vsock dir %s: path too long for a Unix socket", dir);
		return -1;
	}
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "vsock dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "vsock dir %s: not a directory", dir);
		return -1;
	}
	snprintf(emu_dir, sizeof(emu_dir), "%s", dir);
	emu_self = self;
	return 0;
}

bool net_vsock_emulated(void)
{
	return emu_dir[0] != '\0';
}

static void emu_path(struct sockaddr_un *sun, uint32_t cid, uint32_t port)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%u.%u", emu_dir, cid, port);
}

static int listen_on(int fd, const struct sockaddr *sa, socklen_t len, const char *what, char *err,
		     size_t errlen)
{
	if (bind(fd, sa, len) != 0) {
		snprintf(err, errlen, "bind %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	/* Not SOMAXCONN: musl says 128, which drops bursts; the kernel caps this at
	 * net.core.somaxconn. */
	if (listen(fd, 4096) != 0) {
		snprintf(err, errlen, "listen %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* A socket of type bound to ip:port, and listening when it is a stream. */
static int bind_ip(int type, const char *ip, uint16_t port, char *err, size_t errlen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	char what[64];
	int one = 1;

	snprintf(what, sizeof(what), "%s %s:%u", type == SOCK_DGRAM ? "udp" : "tcp", ip, port);
	if (inet_pton(AF_INET, ip, &sin.sin_addr) != 1) {
		snprintf(err, errlen, "bind %s: not an IPv4 address", what);
		return -1;
	}
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket for %s: %s", what, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (type == SOCK_STREAM)
		return listen_on(fd, (struct sockaddr *)&sin, sizeof(sin), what, err, errlen);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		snprintf(err, errlen, "bind %s: %s", what, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int net_listen_tcp(const char *ip, uint16_t port, char *err, size_t errlen)
{
	return bind_ip(SOCK_STREAM, ip, port, err, errlen);
}

int net_listen_udp(const char *ip, uint16_t port, char *err, size_t errlen)
{
	return bind_ip(SOCK_DGRAM, ip, port, err, errlen);
}

int net_listen_ip(const struct sockaddr *sa, socklen_t len, char *err, size_t errlen)
{
	char what[NET_ADDR_LEN + 4];
	int one = 1;

	snprintf(what, sizeof(what), "tcp ");
	net_addr_str(sa, len, what + 4, sizeof(what) - 4);
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket for %s: %s", what, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* [::]:PORT means IPv6 only: where it is told, never IPv4 as well behind its back. */
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	return listen_on(fd, sa, len, what, err, errlen);
}

/*
 * A socket file left by a killed process refuses connections: take its place.
 * One that accepts belongs to a live listener, which we must not steal from.
 */
int net_unix_claim(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = errno;
	close(fd);
	if (r == 0)
		return -1;
	if (e == ECONNREFUSED)
		unlink(sun->sun_path);
	return 0;
}

int net_unix_addr(struct sockaddr_un *sun, const char *what, const char *path, char *err,
		  size_t errlen)
{
	size_t len = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (len >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s %s: path too long (%zu bytes, at most %zu)", what, path,
			 len, sizeof(sun->sun_path) - 1);
		return -1;
	}
	memcpy(sun->sun_path, path, len + 1);
	return 0;
}

int net_listen_vsock(uint32_t port, char *err, size_t errlen)
{
	char what[160];

	if (net_vsock_emulated()) {
		struct sockaddr_un sun;
		emu_path(&sun, emu_self, port);
		snprintf(what, sizeof(what), "vsock port %u (emulated at %s)", port, sun.sun_path);
		if (net_unix_claim(&sun) != 0) {
			snprintf(err, errlen,
				 "bind %s: Address in use (another process listens there)", what);
			return -1;
		}
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(err, errlen, "socket for %s: %s", what, strerror(errno));
			return -1;
		}
		return listen_on(fd, (struct sockaddr *)&sun, sizeof(sun), what, err, errlen);
	}
	struct sockaddr_vm svm = {
	    .svm_family = AF_VSOCK, .svm_port = port, .svm_cid = VMADDR_CID_ANY};
	snprintf(what, sizeof(what), "vsock port %u", port);
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket for %s: %s%s", what, strerror(errno),
			 errno == EAFNOSUPPORT ? " (no vsock in this kernel: load vsock modules, "
						 "or use --vsock-dir)"
					       : "");
		return -1;
	}
	return listen_on(fd, (struct sockaddr *)&svm, sizeof(svm), what, err, errlen);
}

void net_unlisten_vsock(uint32_t port)
{
	struct sockaddr_un sun;

	if (!net_vsock_emulated())
		return;
	emu_path(&sun, emu_self, port);
	unlink(sun.sun_path);
}

int net_connect(const struct sockaddr *sa, socklen_t len, bool *pending)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	*pending = false;
	if (connect(fd, sa, len) == 0)
		return fd;
	if (errno == EINPROGRESS) {
		*pending = true;
		return fd;
	}
	/* An emulated vsock listener that is not there yet reads as "refused", as with real vsock.
	 */
	int e = errno == ENOENT && sa->sa_family == AF_UNIX ? ECONNREFUSED : errno;
	close(fd);
	errno = e;
	return -1;
}

socklen_t net_vsock_addr(uint32_t cid, uint32_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (net_vsock_emulated()) {
		emu_path((struct sockaddr_un *)ss, cid, port);
		return sizeof(struct sockaddr_un);
	}
	struct sockaddr_vm *svm = (struct sockaddr_vm *)ss;
	svm->svm_family = AF_VSOCK;
	svm->svm_cid = cid;
	svm->svm_port = port;
	return sizeof(*svm);
}

int net_connect_result(int fd)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
		return errno;
	return e;
}

int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *len)
{
	*len = sizeof(*peer);
	int fd;
	do
		fd = accept4(lfd, (struct sockaddr *)peer, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

int net_accept_or_pause(struct loop *l, int lfd, struct sockaddr_storage *peer, socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd = net_accept(lfd, peer ? peer : &ss, len ? len : &sslen);

	if (fd >= 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED ||
	    errno == EPROTO)
		return fd;
	int e = errno;
	loop_pause(l, lfd, NET_ACCEPT_PAUSE_MS);
	errno = e;
	return -1;
}

bool net_vsock_peer_ok(const struct sockaddr *sa, uint32_t cid)
{
	if (sa->sa_family != AF_VSOCK)
		return true;
	return ((const struct sockaddr_vm *)sa)->svm_cid == cid;
}

socklen_t net_ip_literal(const char *s, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	if (inet_pton(AF_INET6, s, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		return sizeof(*sin6);
	}
	return 0;
}

socklen_t net_parse_ip_port(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char ip[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : 0;
	bool bracket = n >= 2 && s[0] == '[' && s[n - 1] == ']';
	uint32_t port = 0;

	/* "[::1]" has colons, but no port. */
	if (!colon || n == 0 || n >= sizeof(ip) || s[strlen(s) - 1] == ']') {
		snprintf(err, errlen, "%s is not IP:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)", s);
		return 0;
	}
	memcpy(ip, s + bracket, n - 2 * bracket);
	ip[n - 2 * bracket] = '\0';
	for (const char *p = colon + 1; *p && port <= 65535; p++)
		port = *p >= '0' && *p <= '9' ? port * 10 + (uint32_t)(*p - '0') : 65536;
	if (colon[1] == '\0' || port < 1 || port > 65535) {
		snprintf(err, errlen, "%s: port %s is not a number in 1..65535", s, colon + 1);
		return 0;
	}
	socklen_t len = net_ip_literal(ip, (uint16_t)port, ss);
	/* An IPv6 address goes in brackets, so that its own colons cannot be read as the port's. */
	if (len == 0 || (ss->ss_family == AF_INET6) != bracket) {
		snprintf(err, errlen,
			 "%s: %s is not an IPv4 address or an IPv6 address in brackets", s, ip);
		return 0;
	}
	return len;
}

bool net_is_ip_literal(const char *s)
{
	struct sockaddr_storage ss;

	return net_ip_literal(s, 0, &ss) != 0;
}

const char *net_ipv4_str(uint32_t addr, char buf[NET_IPV4_LEN])
{
	snprintf(buf, NET_IPV4_LEN, "%u.%u.%u.%u", (unsigned)(addr >> 24),
		 (unsigned)(addr >> 16 & 0xff), (unsigned)(addr >> 8 & 0xff),
		 (unsigned)(addr & 0xff));
	return buf;
}

const char *net_addr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	switch (len >= sizeof(sa_family_t) ? sa->sa_family : AF_UNSPEC) {
	case AF_INET: {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(s->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(s->sin6_port));
		break;
	}
	case AF_VSOCK: {
		const struct sockaddr_vm *s = (const struct sockaddr_vm *)sa;
		snprintf(buf, size, "vsock %u:%u", s->svm_cid, s->svm_port);
		break;
	}
	case AF_UNIX:
		snprintf(buf, size, "vsock (emulated)");
		break;
	default:
		snprintf(buf, size, "unknown address");
	}
	return buf;
}

void net_tune(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int one = 1;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}
