/*
 * guestfwd-relay HOST PORT: copy stdin to a TCP connection to HOST:PORT and that connection to stdout.
 *
 * qemu's user networking runs it once per guest connection (guestfwd=tcp:10.0.2.100:80-cmd:guestfwd-relay ...)
 * with the guest's socket on stdin/stdout. A `tcp:` guestfwd target would instead be a single chardev connected
 * once at qemu start, which serves one guest connection and needs the server up before the VM. HOST must be a
 * loopback address: the e2e guest may only reach servers on the test machine itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_all(int fd, const char *buf, ssize_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, buf, (size_t)n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		n -= w;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	int s, in_open = 1, out_open = 1;
	char buf[65536];

	if (argc != 3) {
		fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
		return 2;
	}
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "guestfwd-relay: %s is not a loopback IPv4 address\n", argv[1]);
		return 2;
	}
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) {
		fprintf(stderr, "guestfwd-relay: connect %s:%s: %s\n", argv[1], argv[2], strerror(errno));
		return 1;
	}
	while (in_open || out_open) {
		struct pollfd p[2] = {{in_open ? 0 : -1, POLLIN, 0}, {out_open ? s : -1, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(0, buf, sizeof buf);
			if (n <= 0) {
				in_open = 0;
				shutdown(s, SHUT_WR);
			} else if (write_all(s, buf, n) != 0) {
				return 1;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(s, buf, sizeof buf);
			if (n <= 0) {
				out_open = 0;
				shutdown(1, SHUT_WR);
				/* The server is done: nothing more can flow back, so stop reading the guest too. */
				break;
			} else if (write_all(1, buf, n) != 0) {
				return 1;
			}
		}
	}
	close(s);
	return 0;
}
