/*
 * net.c's helpers, and its listeners and connects over the vsock emulation in
 * a temporary directory. accept4 and loop_pause are wrapped by the linker (see
 * the Makefile) to run a listener out of fds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h"
#include "net.h"

static int accept_errno; /* 0: the real accept4 */

int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	if (accept_errno) {
		errno = accept_errno;
		return -1;
	}
	return __real_accept4(fd, sa, len, flags);
}

static int paused_fd = -1;
static int64_t paused_ms;

void __real_loop_pause(struct loop *l, int fd, int64_t ms);
void __wrap_loop_pause(struct loop *l, int fd, int64_t ms)
{
	paused_fd = fd;
	paused_ms = ms;
	__real_loop_pause(l, fd, ms);
}

static char dir[32];

static int setup(void **state)
{
	char err[NET_ERR_LEN];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/qpnXXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(net_vsock_emulate(dir, 3, err, sizeof(err)), 0);
	accept_errno = 0;
	paused_fd = -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rmdir(dir);
	return 0;
}

static void ip_literals(void **state)
{
	struct sockaddr_storage ss;

	(void)state;
	assert_true(net_is_ip_literal("10.0.0.7"));
	assert_true(net_is_ip_literal("::1"));
	assert_true(net_is_ip_literal("fe80::1:2"));
	assert_false(net_is_ip_literal("localhost"));
	assert_false(net_is_ip_literal("10.0.0"));
	assert_false(net_is_ip_literal("[::1]"));
	assert_false(net_is_ip_literal(""));

	assert_int_equal(net_ip_literal("10.0.0.7", 443, &ss), sizeof(struct sockaddr_in));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 443);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x0a000007);
	assert_int_equal(net_ip_literal("::1", 80, &ss), sizeof(struct sockaddr_in6));
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 80);
	assert_int_equal(sin6->sin6_addr.s6_addr[15], 1);
	assert_int_equal(net_ip_literal("api.example.com", 80, &ss), 0);
}

static void ipv4_strings(void **state)
{
	char buf[NET_IPV4_LEN];

	(void)state;
	assert_string_equal(net_ipv4_str(0x7f000001, buf), "127.0.0.1");
	assert_string_equal(net_ipv4_str(0xffffffff, buf), "255.255.255.255");
	assert_string_equal(net_ipv4_str(0, buf), "0.0.0.0");
	assert_string_equal(net_ipv4_str(0x0a00ff07, buf), "10.0.255.7");
}

static void unix_addresses(void **state)
{
	struct sockaddr_un sun;
	char err[NET_ERR_LEN], path[sizeof(sun.sun_path) + 1];

	(void)state;
	assert_int_equal(
	    net_unix_addr(&sun, "status socket", "/run/qproxy/host.sock", err, sizeof(err)), 0);
	assert_int_equal(sun.sun_family, AF_UNIX);
	assert_string_equal(sun.sun_path, "/run/qproxy/host.sock");

	/* The longest that fits, with its NUL, and one byte more. */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[sizeof(sun.sun_path) - 1] = '\0';
	assert_int_equal(net_unix_addr(&sun, "status socket", path, err, sizeof(err)), 0);
	assert_int_equal(strlen(sun.sun_path), sizeof(sun.sun_path) - 1);
	path[sizeof(sun.sun_path) - 1] = 'a';
	path[sizeof(sun.sun_path)] = '\0';
	assert_int_equal(net_unix_addr(&sun, "status socket", path, err, sizeof(err)), -1);
	char want[NET_ERR_LEN];
	snprintf(want, sizeof(want), "status socket %s: path too long (%zu bytes, at most %zu)",
		 path, sizeof(sun.sun_path), sizeof(sun.sun_path) - 1);
	assert_string_equal(err, want);
}

static void addr_strings(void **state)
{
	struct sockaddr_storage ss;
	char buf[NET_ADDR_LEN];

	(void)state;
	socklen_t len = net_ip_literal("10.0.0.7", 52282, &ss);
	assert_string_equal(net_addr_str((struct sockaddr *)&ss, len, buf, sizeof(buf)),
			    "10.0.0.7:52282");
	len = net_ip_literal("::1", 80, &ss);
	assert_string_equal(net_addr_str((struct sockaddr *)&ss, len, buf, sizeof(buf)),
			    "[::1]:80");
	len = net_vsock_addr(4, 9000, &ss);
	assert_string_equal(net_addr_str((struct sockaddr *)&ss, len, buf, sizeof(buf)),
			    "vsock (emulated)");
}

/* No listener there yet reads as "refused", as with real vsock, not as a missing file. */
static void connect_to_nobody(void **state)
{
	struct sockaddr_storage ss;
	bool pending;

	(void)state;
	socklen_t len = net_vsock_addr(4, 9000, &ss);
	assert_int_equal(net_connect((struct sockaddr *)&ss, len, &pending), -1);
	assert_int_equal(errno, ECONNREFUSED);
}

/* A socket file left by a killed process is taken over; a live listener's is not. */
static void vsock_listeners(void **state)
{
	struct sockaddr_storage ss;
	char err[NET_ERR_LEN], path[128];

	(void)state;
	int fd = net_listen_vsock(9000, err, sizeof(err));
	assert_true(fd >= 0);
	assert_int_equal(net_listen_vsock(9000, err, sizeof(err)), -1);
	snprintf(path, sizeof(path), "bind vsock port 9000 (emulated at %s/3.9000): Address in use",
		 dir);
	assert_non_null(strstr(err, path));

	bool pending;
	socklen_t len = net_vsock_addr(3, 9000, &ss);
	int c = net_connect((struct sockaddr *)&ss, len, &pending);
	assert_true(c >= 0);
	assert_false(pending);
	close(c);

	close(fd); /* as a killed process would: the file stays */
	fd = net_listen_vsock(9000, err, sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	net_unlisten_vsock(9000);
	snprintf(path, sizeof(path), "%s/3.9000", dir);
	assert_int_equal(access(path, F_OK), -1);
}

static int accepted;

static void on_accept(struct loop *l, int fd, short rev, void *arg)
{
	(void)rev, (void)arg;
	int c = net_accept_or_pause(l, fd, NULL, NULL);
	if (c >= 0) {
		accepted++;
		close(c);
	}
}

/*
 * Out of fds, a listener stays readable: accept pauses it instead of letting
 * the loop spin, keeps the reason in errno, and leaves the client queued.
 */
static void accept_out_of_fds(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_storage peer;
	socklen_t plen;
	char err[NET_ERR_LEN];
	bool pending;

	(void)state;
	struct loop *l = loop_new();
	int lfd = net_listen_vsock(9001, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(loop_add(l, lfd, POLLIN, on_accept, NULL), 0);

	/* Nothing waiting: EAGAIN, no pause. */
	assert_int_equal(net_accept_or_pause(l, lfd, &peer, &plen), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(paused_fd, -1);

	socklen_t len = net_vsock_addr(3, 9001, &ss);
	int c = net_connect((struct sockaddr *)&ss, len, &pending);
	assert_true(c >= 0);

	/* A client gone before it was taken: another may wait, no pause. */
	accept_errno = ECONNABORTED;
	assert_int_equal(net_accept_or_pause(l, lfd, &peer, &plen), -1);
	assert_int_equal(errno, ECONNABORTED);
	assert_int_equal(paused_fd, -1);

	accept_errno = EMFILE;
	assert_int_equal(net_accept_or_pause(l, lfd, &peer, &plen), -1);
	assert_int_equal(errno, EMFILE);
	assert_int_equal(paused_fd, lfd);
	assert_int_equal(paused_ms, NET_ACCEPT_PAUSE_MS);

	/* Once fds are back and the pause is over, the client still waiting is taken. */
	accept_errno = 0;
	for (int i = 0; i < 5000 && accepted == 0; i++)
		assert_true(loop_once(l, 10) >= 0);
	assert_int_equal(accepted, 1);

	close(c);
	loop_del(l, lfd);
	close(lfd);
	net_unlisten_vsock(9001);
	loop_free(l);
}

static void emulation_dir_checked(void **state)
{
	char err[NET_ERR_LEN], file[64], longdir[200];

	(void)state;
	assert_int_equal(net_vsock_emulate("/nonexistent-qproxy-dir", 3, err, sizeof(err)), -1);
	assert_string_equal(err, "vsock dir /nonexistent-qproxy-dir: No such file or directory");
	snprintf(file, sizeof(file), "%s/f", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(net_vsock_emulate(file, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": not a directory"));
	unlink(file);
	memset(longdir, 'd', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	assert_int_equal(net_vsock_emulate(longdir, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ": path too long for a Unix socket"));
	/* The emulation in place is kept. */
	assert_int_equal(net_vsock_emulate(dir, 3, err, sizeof(err)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ip_literals),
	    cmocka_unit_test(ipv4_strings),
	    cmocka_unit_test(unix_addresses),
	    cmocka_unit_test_setup_teardown(addr_strings, setup, teardown),
	    cmocka_unit_test_setup_teardown(connect_to_nobody, setup, teardown),
	    cmocka_unit_test_setup_teardown(vsock_listeners, setup, teardown),
	    cmocka_unit_test_setup_teardown(accept_out_of_fds, setup, teardown),
	    cmocka_unit_test_setup_teardown(emulation_dir_checked, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
