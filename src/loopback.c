#include "loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int set_addr(int fd, unsigned long req, const char *ip, char *err, size_t errlen)
{
	struct ifreq ifr;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	if (ioctl(fd, req, &ifr) != 0) {
		snprintf(err, errlen, "set %s on lo: %s", ip, strerror(errno));
		return -1;
	}
	return 0;
}

int loopback_up(char *err, size_t errlen)
{
	struct ifreq ifr;
	int changed = 0;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket for lo: %s", strerror(errno));
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
		snprintf(err, errlen, "read flags of lo: %s", strerror(errno));
		goto fail;
	}
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
			snprintf(err, errlen, "bring lo up: %s", strerror(errno));
			goto fail;
		}
		changed = 1;
	}
	/* The kernel gives lo 127.0.0.1/8 when it comes up; set it only if that did not happen. */
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFADDR, &ifr) != 0) {
		if (errno != EADDRNOTAVAIL) {
			snprintf(err, errlen, "read address of lo: %s", strerror(errno));
			goto fail;
		}
		if (set_addr(fd, SIOCSIFADDR, "127.0.0.1", err, errlen) != 0 ||
		    set_addr(fd, SIOCSIFNETMASK, "255.0.0.0", err, errlen) != 0)
			goto fail;
		changed = 1;
	}
	close(fd);
	return changed;
fail:
	close(fd);
	return -1;
}
