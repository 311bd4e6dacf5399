// SPDX-License-Identifier: GPL-2.0
/*
 * nettool: the small static helper of the nested-QEMU scenarios
 * (scripts/vm/guestcheck.sh, `make demo`). It runs in the outer test VM and in
 * the inner guests, where busybox lacks what these need:
 *
 *   nettool tcp-recv PORT SEED [TIMEOUT]
 *   nettool tcp-send HOST PORT BYTES SEED [TIMEOUT]
 *       a bulk TCP transfer of BYTES pseudo-random bytes (a stream seeded by
 *       SEED): both ends print one line with the byte count, the time, the
 *       throughput and an FNV-1a 64 checksum of what went over the wire; the
 *       receiver also checks every byte against the expected stream
 *       ("verify=ok" or "verify=BAD@offset"). SIGUSR1 ends the sender's
 *       stream early, after the chunk being written: BYTES is then a bound,
 *       and the lines give what was sent.
 *   nettool udp-recv PORT COUNT [TIMEOUT]
 *   nettool udp-send HOST PORT COUNT SIZE [PPS]
 *       COUNT datagrams of SIZE bytes (sequence number + pattern), paced at
 *       PPS per second (default 2000); the receiver counts good, corrupt and
 *       duplicate datagrams and stops after COUNT or 3 s of silence.
 *   nettool channels IFACE [COMBINED]
 *       ETHTOOL_GCHANNELS (and ETHTOOL_SCHANNELS combined=COMBINED).
 *   nettool hmp SOCKET COMMAND...
 *       one command on QEMU's human monitor over a unix socket; prints its
 *       output.
 *   nettool mark start|stop
 *       sets off a mark of bench/tbprof.c (the QEMU plugin of
 *       `make profile-qemu`): start zeroes the outer VM's instruction
 *       counts, stop writes them out. It executes a `ret` at the plugin's
 *       address; without the plugin it does nothing.
 *
 * Exit status 0 on success, 1 on failure, 2 on usage errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF (256 * 1024)

/* bench/tbprof.c's marks (as in bench/vbench/src/main.rs). */
#define MARK_START 0x7e5700000000ULL
#define MARK_STOP 0x7e5700000040ULL

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "nettool: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* xorshift64*: the byte stream of a seed, 8 bytes per step. */
static void fill(uint64_t *state, unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t x = *state;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		*state = x;
		x *= 0x2545F4914F6CDD1DULL;
		memcpy(p + i, &x, 8);
	}
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ULL

static uint64_t seed_state(const char *s)
{
	uint64_t x = strtoull(s, NULL, 0);

	return x ? x * 0x9E3779B97F4A7C15ULL : 0x9E3779B97F4A7C15ULL;
}

/* Numeric addresses only (a static binary has no resolver). */
static void sockaddr_of(const char *host, const char *port,
			struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in *a4 = (void *)ss;
	struct sockaddr_in6 *a6 = (void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(atoi(port));
		*len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(atoi(port));
		*len = sizeof(*a6);
	} else {
		fprintf(stderr, "nettool: %s: not a numeric address\n", host);
		exit(1);
	}
}

static int listener(const char *port, int type)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6,
				  .sin6_port = htons(atoi(port)),
				  .sin6_addr = IN6ADDR_ANY_INIT };
	int fd = socket(AF_INET6, type, 0), one = 1, zero = 0;

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (void *)&a, sizeof(a)))
		die("bind");
	if (type == SOCK_STREAM && listen(fd, 1))
		die("listen");
	return fd;
}

static void report(const char *who, uint64_t bytes, double secs, uint64_t h,
		   const char *extra)
{
	printf("%s: bytes=%llu secs=%.2f MB/s=%.2f fnv=%016llx%s\n", who,
	       (unsigned long long)bytes, secs,
	       secs > 0 ? bytes / secs / 1e6 : 0.0, (unsigned long long)h,
	       extra);
	fflush(stdout);
}

static int tcp_recv(int argc, char **argv)
{
	static unsigned char buf[BUF], exp[BUF + 8];
	uint64_t st, total = 0, h = FNV0, bad = UINT64_MAX;
	size_t have = 0; /* expected bytes generated, not yet compared */
	size_t off = 0;
	int lfd, fd, big = 4 << 20;
	double t0;
	char extra[64];

	if (argc < 2)
		return 2;
	st = seed_state(argv[1]);
	alarm(argc > 2 ? atoi(argv[2]) : 300);
	lfd = listener(argv[0], SOCK_STREAM);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		die("accept");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	t0 = now();
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf)), i;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0)
			break;
		h = fnv(h, buf, n);
		for (i = 0; i < n; i++) {
			if (off == have) {
				fill(&st, exp, BUF);
				have = BUF;
				off = 0;
			}
			if (bad == UINT64_MAX && buf[i] != exp[off])
				bad = total + i;
			off++;
		}
		total += n;
	}
	if (bad == UINT64_MAX)
		snprintf(extra, sizeof(extra), " verify=ok");
	else
		snprintf(extra, sizeof(extra), " verify=BAD@%llu",
			 (unsigned long long)bad);
	report("tcp-recv", total, now() - t0, h, extra);
	close(fd);
	return bad == UINT64_MAX ? 0 : 1;
}

static volatile sig_atomic_t stop_sending;

static void on_usr1(int sig)
{
	(void)sig;
	stop_sending = 1;
}

static int tcp_send(int argc, char **argv)
{
	static unsigned char buf[BUF];
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t st, total, left, h = FNV0;
	double t0, deadline;
	int fd = -1, big = 4 << 20;
	struct sigaction sa = { .sa_handler = on_usr1 };
	ssize_t r;
	char c;

	if (argc < 4)
		return 2;
	total = left = strtoull(argv[2], NULL, 0);
	st = seed_state(argv[3]);
	/* Without SA_RESTART: a write in progress returns early, and the loop
	 * below finishes its chunk before it looks at the flag. */
	sigaction(SIGUSR1, &sa, NULL);
	alarm(argc > 4 ? atoi(argv[4]) : 300);
	sockaddr_of(argv[0], argv[1], &ss, &len);
	/* The listener may not be up yet: retry for 60 s (a starved nested
	 * guest has taken over 20 s to start its receivers). */
	deadline = now() + 60;
	for (;;) {
		fd = socket(ss.ss_family, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket");
		if (!connect(fd, (void *)&ss, len))
			break;
		if (now() > deadline)
			die("connect");
		close(fd);
		usleep(200000);
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	t0 = now();
	while (left && !stop_sending) {
		size_t chunk = left < BUF ? left : BUF, done = 0;

		fill(&st, buf, BUF);
		h = fnv(h, buf, chunk);
		while (done < chunk) {
			ssize_t n = write(fd, buf + done, chunk - done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("write");
			done += n;
		}
		left -= chunk;
	}
	shutdown(fd, SHUT_WR);
	/* The peer closes after it has read everything. */
	while ((r = read(fd, &c, 1)) > 0 || (r < 0 && errno == EINTR))
		;
	report("tcp-send", total - left, now() - t0, h, "");
	close(fd);
	return 0;
}

static void udp_fill(unsigned char *p, size_t n, uint32_t seq)
{
	size_t i;

	memcpy(p, &seq, 4);
	for (i = 4; i < n; i++)
		p[i] = (unsigned char)(seq * 31 + i * 7);
}

static int udp_recv(int argc, char **argv)
{
	static unsigned char buf[65536], exp[65536];
	unsigned char *seen;
	unsigned long count, good = 0, bad = 0, dup = 0;
	uint64_t bytes = 0;
	int fd, big = 8 << 20;
	double t0 = 0, t1 = 0;
	struct timeval tv = { .tv_sec = 3 };

	if (argc < 2)
		return 2;
	count = strtoul(argv[1], NULL, 0);
	seen = calloc(count, 1);
	alarm(argc > 2 ? atoi(argv[2]) : 120);
	fd = listener(argv[0], SOCK_DGRAM);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	/* Wait for the first datagram as long as the alarm allows, then stop
	 * after 3 s of silence. */
	while (good + bad + dup < count) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		uint32_t seq;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			die("recv");
		if (!t0) {
			t0 = now();
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		}
		t1 = now();
		bytes += n;
		if (n < 4) {
			bad++;
			continue;
		}
		memcpy(&seq, buf, 4);
		udp_fill(exp, n, seq);
		if (seq >= count || memcmp(buf, exp, n)) {
			bad++;
		} else if (seen[seq]) {
			dup++;
		} else {
			seen[seq] = 1;
			good++;
		}
	}
	printf("udp-recv: good=%lu lost=%lu corrupt=%lu dup=%lu bytes=%llu secs=%.2f MB/s=%.2f\n",
	       good, count - good, bad, dup, (unsigned long long)bytes,
	       t1 - t0, t1 > t0 ? bytes / (t1 - t0) / 1e6 : 0.0);
	return bad || dup ? 1 : 0;
}

static int udp_send(int argc, char **argv)
{
	static unsigned char buf[65536];
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned long count, i, pps;
	size_t size;
	int fd;
	double t0;

	if (argc < 4)
		return 2;
	count = strtoul(argv[2], NULL, 0);
	size = strtoul(argv[3], NULL, 0);
	pps = argc > 4 ? strtoul(argv[4], NULL, 0) : 2000;
	if (size < 4 || size > sizeof(buf) || !pps)
		return 2;
	sockaddr_of(argv[0], argv[1], &ss, &len);
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (void *)&ss, len))
		die("connect");
	t0 = now();
	for (i = 0; i < count; i++) {
		double due = t0 + (double)i / pps, d = due - now();

		if (d > 0)
			usleep(d * 1e6);
		udp_fill(buf, size, i);
		/* ECONNREFUSED from an earlier ICMP: keep going. */
		if (send(fd, buf, size, 0) < 0 && errno != ECONNREFUSED &&
		    errno != ENOBUFS)
			die("send");
	}
	printf("udp-send: sent=%lu size=%zu secs=%.2f\n", count, size,
	       now() - t0);
	return 0;
}

static int channels(int argc, char **argv)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (argc < 1)
		return 2;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", argv[0]);
	ifr.ifr_data = (void *)&ch;
	if (argc > 1) {
		if (ioctl(fd, SIOCETHTOOL, &ifr))
			die("ETHTOOL_GCHANNELS");
		ch.cmd = ETHTOOL_SCHANNELS;
		ch.combined_count = atoi(argv[1]);
		if (ioctl(fd, SIOCETHTOOL, &ifr))
			die("ETHTOOL_SCHANNELS");
		ch.cmd = ETHTOOL_GCHANNELS;
	}
	if (ioctl(fd, SIOCETHTOOL, &ifr))
		die("ETHTOOL_GCHANNELS");
	printf("%s: combined=%u max_combined=%u\n", argv[0], ch.combined_count,
	       ch.max_combined);
	return 0;
}

/* Read from fd until the buffer ends with "(qemu) "; print if asked. */
static int hmp_until_prompt(int fd, int print)
{
	static char buf[1 << 16];
	size_t n = 0;

	for (;;) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);

		if (r <= 0)
			return -1;
		n += r;
		buf[n] = 0;
		if (n >= 7 && !strcmp(buf + n - 7, "(qemu) ")) {
			if (print) {
				char *p = buf, *q;

				buf[n - 7] = 0;
				/* Drop the echoed command line and \r. */
				q = strchr(p, '\n');
				p = q ? q + 1 : p + strlen(p);
				for (q = p; *q; q++)
					if (*q != '\r')
						putchar(*q);
			}
			return 0;
		}
		if (n == sizeof(buf) - 1)
			n = 0;
	}
}

static int hmp(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char cmd[1024] = "";
	int fd, i;

	if (argc < 2)
		return 2;
	alarm(60);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", argv[0]);
	for (i = 1; i < argc; i++) {
		strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 2);
		strcat(cmd, i + 1 < argc ? " " : "\n");
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (void *)&a, sizeof(a)))
		die(argv[0]);
	if (hmp_until_prompt(fd, 0))
		die("monitor greeting");
	if (write(fd, cmd, strlen(cmd)) < 0)
		die("write");
	if (hmp_until_prompt(fd, 1))
		die("monitor reply");
	close(fd);
	return 0;
}

static int mark(int argc, char **argv)
{
	unsigned long long at;
	unsigned char *page;

	if (argc != 1)
		return 2;
	if (!strcmp(argv[0], "start"))
		at = MARK_START;
	else if (!strcmp(argv[0], "stop"))
		at = MARK_STOP;
	else
		return 2;
	page = mmap((void *)MARK_START, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (page != (void *)MARK_START)
		die("mmap marks");
	page[0] = 0xc3;
	page[MARK_STOP - MARK_START] = 0xc3;
	((void (*)(void))(uintptr_t)at)();
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2) {
		const char *c = argv[1];

		if (!strcmp(c, "tcp-recv"))
			rc = tcp_recv(argc - 2, argv + 2);
		else if (!strcmp(c, "tcp-send"))
			rc = tcp_send(argc - 2, argv + 2);
		else if (!strcmp(c, "udp-recv"))
			rc = udp_recv(argc - 2, argv + 2);
		else if (!strcmp(c, "udp-send"))
			rc = udp_send(argc - 2, argv + 2);
		else if (!strcmp(c, "channels"))
			rc = channels(argc - 2, argv + 2);
		else if (!strcmp(c, "hmp"))
			rc = hmp(argc - 2, argv + 2);
		else if (!strcmp(c, "mark"))
			rc = mark(argc - 2, argv + 2);
	}
	if (rc == 2)
		fprintf(stderr, "usage: see the comment at the top of tests/guest/nettool.c\n");
	return rc;
}
