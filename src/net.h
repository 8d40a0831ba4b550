#ifndef QPROXY_NET_H
#define QPROXY_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loop.h"

#define NET_ERR_LEN 256
#define NET_ADDR_LEN 128
/* Out of fds or memory, a listener stops accepting this long instead of spinning. */
#define NET_ACCEPT_PAUSE_MS 100
/* "255.255.255.255" and its NUL. */
#define NET_IPV4_LEN 16

/*
 * Sockets, all SOCK_NONBLOCK|SOCK_CLOEXEC. A vsock endpoint is real AF_VSOCK
 * unless net_vsock_emulate() was called: then (cid, port) is the Unix stream
 * socket DIR/CID.PORT, and this process listens as cid self.
 */
int net_vsock_emulate(const char *dir, uint32_t self, char *err, size_t errlen);
bool net_vsock_emulated(void);

int net_listen_tcp(const char *ip, uint16_t port, char *err, size_t errlen);
/* A bound UDP socket at ip:port; errors as for TCP ("bind udp 127.0.0.1:53: ..."). */
int net_listen_udp(const char *ip, uint16_t port, char *err, size_t errlen);
int net_listen_vsock(uint32_t port, char *err, size_t errlen);
/*
 * A TCP listener at exactly sa (IPv4, or IPv6 only: IPV6_V6ONLY). -1 with err:
 * "bind tcp 127.0.0.1:9464: Address already in use".
 */
int net_listen_ip(const struct sockaddr *sa, socklen_t len, char *err, size_t errlen);
/* Before binding a Unix socket: remove a stale file, or -1 when a live listener answers there. */
struct sockaddr_un;
int net_unix_claim(const struct sockaddr_un *sun);
/*
 * The address of the Unix socket at path. -1 when path does not fit in
 * sun_path, with err saying so: "WHAT PATH: path too long (N bytes, at most M)".
 */
int net_unix_addr(struct sockaddr_un *sun, const char *what, const char *path, char *err,
		  size_t errlen);

/* Remove the socket file of an emulated vsock listener; no-op for real vsock. */
void net_unlisten_vsock(uint32_t port);

/*
 * Start a connect. Returns the fd with *pending set when the connect goes on
 * in the background (wait for POLLOUT, then net_connect_result()), or -1 with
 * errno. EAGAIN means an emulated listener's backlog is full: try again soon.
 */
int net_connect(const struct sockaddr *sa, socklen_t len, bool *pending);
/* The address of vsock (cid, port): AF_VSOCK, or the emulation's Unix socket. */
socklen_t net_vsock_addr(uint32_t cid, uint32_t port, struct sockaddr_storage *ss);
/* 0 when the background connect succeeded, else the errno it failed with. */
int net_connect_result(int fd);

/* Accept one connection, or -1 with errno (EAGAIN when none is waiting). */
int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *len);
/*
 * The same for a listener registered in l; peer and len may be NULL. -1 with
 * errno: EAGAIN when none is waiting; ECONNABORTED or EPROTO when one left
 * before it was taken (another may wait); anything else (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) has paused lfd for NET_ACCEPT_PAUSE_MS, since a listener
 * that stays ready would make the loop spin. Those waiting stay queued.
 */
int net_accept_or_pause(struct loop *l, int lfd, struct sockaddr_storage *peer, socklen_t *len);

/* A vsock peer address may come from cid only; other families are not vsock and pass. */
bool net_vsock_peer_ok(const struct sockaddr *sa, uint32_t cid);

/*
 * Is s an IPv4 or IPv6 literal? Such a name goes straight to connect, never to
 * a resolver. net_ip_literal() also fills ss with it and port, and returns its
 * length; 0 when s is not one.
 */
bool net_is_ip_literal(const char *s);
socklen_t net_ip_literal(const char *s, uint16_t port, struct sockaddr_storage *ss);

/*
 * "1.2.3.4:PORT" or "[v6]:PORT", PORT in 1..65535, into ss: its length, or 0 with err
 * naming s and what is wrong. Names are refused: a listener binds where it is told.
 */
socklen_t net_parse_ip_port(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen);

/* An IPv4 address in host byte order as "1.2.3.4"; returns buf. */
const char *net_ipv4_str(uint32_t addr, char buf[NET_IPV4_LEN]);

/* "1.2.3.4:80", "[::1]:80", "vsock 4:9000", "vsock (emulated)" */
const char *net_addr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Low-latency options for a connected socket: TCP_NODELAY where it applies. */
void net_tune(int fd);

#endif
