// SPDX-License-Identifier: GPL-2.0
/*
 * A 32-bit vhost-net client for the compat_ioctl tests: built with
 * gcc -m32 -static and run inside the test VM (whose kernel has
 * CONFIG_IA32_EMULATION) against the C vhost_net and against ours. It
 * prints one "key=result" line per call; the in-VM suite compares the two
 * transcripts. Every argument that carries a pointer goes through the
 * kernel's compat_ptr_ioctl. Failures print the errno's number and name;
 * no fd number or address is printed (addresses only as offsets), so the
 * transcript is the same from run to run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* A user pointer that faults, and one at the top of the 32-bit space. */
#define BAD ((void *)1)
#define HIGH ((void *)0xfffffffcUL)
/* A u64 no 32-bit (nor 64-bit) user address reaches. */
#define FAR 0xdead000000000000ULL
/* An fd number this process never opens. */
#define NOFD 1000

static int fd;

static void rec(const char *key, long r)
{
	if (r < 0) {
		const char *name = strerrorname_np(errno);

		printf("%s=-1 errno=%d %s\n", key, errno, name ? name : "?");
	} else {
		printf("%s=%ld\n", key, r);
	}
}

#define CALL(key, req, arg) rec(key, ioctl(fd, req, arg))

/* The u64-argument ioctls (through a pointer to a u64, as 32-bit callers do). */
static void call64(const char *key, unsigned long req, uint64_t v)
{
	rec(key, ioctl(fd, req, &v));
}

/* A ring-state ioctl; prints what the kernel wrote back on success. */
static void vring_state(const char *key, unsigned long req, unsigned int index,
			unsigned int num)
{
	struct vhost_vring_state s = { .index = index, .num = num };
	long r = ioctl(fd, req, &s);

	rec(key, r);
	if (r == 0)
		printf("%s read back=%u,%u\n", key, s.index, s.num);
}

static void vring_file(const char *key, unsigned long req, unsigned int index,
		       int efd)
{
	struct vhost_vring_file f = { .index = index, .fd = efd };

	rec(key, ioctl(fd, req, &f));
}

static void fork_owner(const char *key, unsigned long req, uint8_t v)
{
	long r = ioctl(fd, req, &v);

	rec(key, r);
	if (r == 0)
		printf("%s value=%u\n", key, v);
}

/* One write() of a struct vhost_msg_v2 (the same layout on i386 and x86-64). */
static void write_v2(const char *key, uint8_t type, uint64_t iova,
		     uint64_t size, uint64_t uaddr, size_t len)
{
	struct vhost_msg_v2 m;

	memset(&m, 0, sizeof(m));
	m.type = VHOST_IOTLB_MSG_V2;
	m.iotlb.iova = iova;
	m.iotlb.size = size;
	m.iotlb.uaddr = uaddr;
	m.iotlb.perm = VHOST_ACCESS_RW;
	m.iotlb.type = type;
	rec(key, write(fd, &m, len));
}

/* Waits (at most 5 s) for a message to read. */
static void poll_msg(const char *key)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, 5000);

	rec(key, r);
	printf("%s revents=%#x\n", key, r > 0 ? p.revents : 0);
}

/* Reads one IOTLB message in the kernel's layout (type, then the payload
 * 8 bytes in, for v1 and v2 alike) and prints it, the IOVA relative to
 * base.
 */
static void read_miss(const char *key, const unsigned char *base)
{
	unsigned char buf[128];
	struct vhost_iotlb_msg m;
	int type;
	long r;

	memset(buf, 0, sizeof(buf));
	r = read(fd, buf, sizeof(buf));
	rec(key, r);
	if (r < 8 + 26)
		return;
	memcpy(&type, buf, sizeof(type));
	memcpy(&m, buf + 8, sizeof(m));
	printf("%s msg=type %d iotlb.type %u perm %u iova base%+lld size %llu\n",
	       key, type, m.type, m.perm,
	       (long long)(m.iova - (uintptr_t)base),
	       (unsigned long long)m.size);
}

static void read_msg(const char *key, size_t len)
{
	unsigned char buf[128];

	memset(buf, 0, sizeof(buf));
	rec(key, read(fd, buf, len));
}

int main(void)
{
	uint64_t features = 0, backend = 0;
	struct vhost_vring_state s;
	struct vhost_vring_file f;
	struct vhost_vring_addr a;
	struct {
		struct vhost_memory hdr;
		struct vhost_memory_region r;
	} mem;
	unsigned char *area, *log;
	struct ifreq ifr;
	int kick, call, err, logfd, pipefd[2], tap, flags;

	/* Nothing may block for good (a hung client would keep the module
	 * busy): a blocking call that never returns ends the run, and what it
	 * printed so far is not lost.
	 */
	setvbuf(stdout, NULL, _IOLBF, 0);
	alarm(30);
	printf("pointer_bits=%zu\n", sizeof(void *) * 8);
	/* i386 aligns u64 to 4: struct vhost_msg is 68 bytes here, 72 in the
	 * kernel, which skips 4 bytes after the type of a v1 message.
	 */
	printf("sizeof vhost_msg=%zu\n", sizeof(struct vhost_msg));
	printf("offsetof vhost_msg.iotlb=%zu\n",
	       offsetof(struct vhost_msg, iotlb));
	printf("sizeof vhost_msg_v2=%zu\n", sizeof(struct vhost_msg_v2));
	printf("sizeof vhost_iotlb_msg=%zu\n", sizeof(struct vhost_iotlb_msg));
	fd = open("/dev/vhost-net", O_RDWR);
	rec("open", fd < 0 ? -1 : 0);
	if (fd < 0)
		return 1;
	area = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	log = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || log == MAP_FAILED || pipe(pipefd))
		return 1;

	CALL("GET_FEATURES", VHOST_GET_FEATURES, &features);
	printf("features=%#llx\n", (unsigned long long)features);
	CALL("SET_MEM_TABLE before owner", VHOST_SET_MEM_TABLE, &mem);
	call64("SET_LOG_BASE before owner", VHOST_SET_LOG_BASE,
	       (uintptr_t)log);
	vring_file("SET_VRING_ERR before owner", VHOST_SET_VRING_ERR, 0, -1);
	vring_state("GET_VRING_BUSYLOOP_TIMEOUT before owner",
		    VHOST_GET_VRING_BUSYLOOP_TIMEOUT, 0, 0);
	call64("SET_BACKEND_FEATURES before owner", VHOST_SET_BACKEND_FEATURES,
	       0);

	/* The message interface before any IOTLB exists. */
	read_msg("read blocking no iotlb", sizeof(struct vhost_msg_v2));
	read_msg("read 32-bit sizeof vhost_msg", sizeof(struct vhost_msg));
	flags = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	read_msg("read nonblock no iotlb", sizeof(struct vhost_msg_v2));
	fcntl(fd, F_SETFL, flags);
	write_v2("write v2 UPDATE no iotlb", VHOST_IOTLB_UPDATE, 0x1000,
		 0x1000, (uintptr_t)area, sizeof(struct vhost_msg_v2));

	/* Worker kind: only before SET_OWNER. */
	fork_owner("GET_FORK_FROM_OWNER", VHOST_GET_FORK_FROM_OWNER, 0xff);
	CALL("GET_FORK_FROM_OWNER bad pointer", VHOST_GET_FORK_FROM_OWNER, BAD);
	fork_owner("SET_FORK_FROM_OWNER 2", VHOST_SET_FORK_FROM_OWNER, 2);
	CALL("SET_FORK_FROM_OWNER bad pointer", VHOST_SET_FORK_FROM_OWNER, BAD);
	fork_owner("SET_FORK_FROM_OWNER kthread", VHOST_SET_FORK_FROM_OWNER,
		   VHOST_FORK_OWNER_KTHREAD);
	fork_owner("GET_FORK_FROM_OWNER kthread", VHOST_GET_FORK_FROM_OWNER,
		   0xff);
	fork_owner("SET_FORK_FROM_OWNER task", VHOST_SET_FORK_FROM_OWNER,
		   VHOST_FORK_OWNER_TASK);
	fork_owner("GET_FORK_FROM_OWNER task", VHOST_GET_FORK_FROM_OWNER, 0xff);

	CALL("SET_OWNER", VHOST_SET_OWNER, NULL);
	CALL("SET_OWNER again", VHOST_SET_OWNER, NULL);
	fork_owner("SET_FORK_FROM_OWNER after owner",
		   VHOST_SET_FORK_FROM_OWNER, VHOST_FORK_OWNER_KTHREAD);
	fork_owner("GET_FORK_FROM_OWNER after owner",
		   VHOST_GET_FORK_FROM_OWNER, 0xff);
	features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	CALL("SET_FEATURES", VHOST_SET_FEATURES, &features);
	CALL("SET_FEATURES bad pointer", VHOST_SET_FEATURES, BAD);
	call64("SET_FEATURES bit 63", VHOST_SET_FEATURES, 1ULL << 63);

	/* Backend features. */
	CALL("GET_BACKEND_FEATURES", VHOST_GET_BACKEND_FEATURES, &backend);
	printf("backend_features=%#llx\n", (unsigned long long)backend);
	CALL("GET_BACKEND_FEATURES bad pointer", VHOST_GET_BACKEND_FEATURES,
	     BAD);
	call64("SET_BACKEND_FEATURES MSG_V2", VHOST_SET_BACKEND_FEATURES,
	       1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2);
	call64("SET_BACKEND_FEATURES IOTLB_BATCH", VHOST_SET_BACKEND_FEATURES,
	       1ULL << VHOST_BACKEND_F_IOTLB_BATCH);
	call64("SET_BACKEND_FEATURES bit 63", VHOST_SET_BACKEND_FEATURES,
	       1ULL << 63);
	CALL("SET_BACKEND_FEATURES bad pointer", VHOST_SET_BACKEND_FEATURES,
	     BAD);
	backend = 0;
	CALL("GET_BACKEND_FEATURES again", VHOST_GET_BACKEND_FEATURES,
	     &backend);
	printf("backend_features again=%#llx\n", (unsigned long long)backend);
	call64("SET_BACKEND_FEATURES 0", VHOST_SET_BACKEND_FEATURES, 0);

	CALL("GET_FEATURES bad pointer", VHOST_GET_FEATURES, (void *)16);
	CALL("GET_FEATURES high pointer", VHOST_GET_FEATURES, HIGH);

	/* Numbers vhost-net does not handle: each is read as a ring index. */
	CALL("unknown ioctl", _IO(VHOST_VIRTIO, 0x7f), NULL);
	vring_state("unknown ioctl pointer index 0",
		    _IOWR(VHOST_VIRTIO, 0x5f, struct vhost_vring_state), 0, 0);
	vring_state("unknown ioctl pointer index 5",
		    _IOWR(VHOST_VIRTIO, 0x5f, struct vhost_vring_state), 5, 0);
	CALL("unknown ioctl bad pointer",
	     _IOWR(VHOST_VIRTIO, 0x5f, struct vhost_vring_state), BAD);
	vring_state("foreign type ioctl", _IOR('z', 0x42, uint32_t), 0, 0);
	vring_state("VDPA_GET_DEVICE_ID", VHOST_VDPA_GET_DEVICE_ID, 0, 0);
	CALL("VDPA_SUSPEND", VHOST_VDPA_SUSPEND, NULL);
	call64("VSOCK_SET_GUEST_CID 1", VHOST_VSOCK_SET_GUEST_CID, 1);
	call64("VSOCK_SET_GUEST_CID 3", VHOST_VSOCK_SET_GUEST_CID, 3);
	vring_state("SCSI_GET_ABI_VERSION", VHOST_SCSI_GET_ABI_VERSION, 0, 0);
	vring_state("NEW_WORKER", VHOST_NEW_WORKER, 0, 0);
	vring_state("GET_VRING_WORKER", VHOST_GET_VRING_WORKER, 0, 0);

	memset(&mem, 0, sizeof(mem));
	mem.hdr.nregions = 1;
	mem.r.guest_phys_addr = 0x100000;
	mem.r.memory_size = 1 << 20;
	mem.r.userspace_addr = (uintptr_t)area;
	CALL("SET_MEM_TABLE", VHOST_SET_MEM_TABLE, &mem);
	mem.hdr.nregions = 65;
	CALL("SET_MEM_TABLE 65", VHOST_SET_MEM_TABLE, &mem);
	CALL("SET_MEM_TABLE bad pointer", VHOST_SET_MEM_TABLE, BAD);

	/* The dirty log: a u64 base and an int fd, through pointers. */
	call64("SET_LOG_BASE", VHOST_SET_LOG_BASE, (uintptr_t)log);
	call64("SET_LOG_BASE far", VHOST_SET_LOG_BASE, FAR);
	CALL("SET_LOG_BASE bad pointer", VHOST_SET_LOG_BASE, BAD);
	CALL("SET_LOG_BASE high pointer", VHOST_SET_LOG_BASE, HIGH);
	call64("SET_LOG_BASE again", VHOST_SET_LOG_BASE, (uintptr_t)log);
	logfd = eventfd(0, 0);
	CALL("SET_LOG_FD eventfd", VHOST_SET_LOG_FD, &logfd);
	CALL("SET_LOG_FD -1", VHOST_SET_LOG_FD, &(int){ -1 });
	CALL("SET_LOG_FD bad fd", VHOST_SET_LOG_FD, &(int){ NOFD });
	CALL("SET_LOG_FD -2", VHOST_SET_LOG_FD, &(int){ -2 });
	CALL("SET_LOG_FD pipe", VHOST_SET_LOG_FD, &pipefd[0]);
	CALL("SET_LOG_FD bad pointer", VHOST_SET_LOG_FD, BAD);
	CALL("SET_LOG_FD eventfd again", VHOST_SET_LOG_FD, &logfd);

	for (unsigned int i = 0; i < 2; i++) {
		char key[64];

		s.index = i;
		s.num = 256;
		snprintf(key, sizeof(key), "SET_VRING_NUM %u", i);
		CALL(key, VHOST_SET_VRING_NUM, &s);
		s.num = 7;
		snprintf(key, sizeof(key), "SET_VRING_BASE %u", i);
		CALL(key, VHOST_SET_VRING_BASE, &s);
		s.num = 0;
		snprintf(key, sizeof(key), "GET_VRING_BASE %u", i);
		CALL(key, VHOST_GET_VRING_BASE, &s);
		printf("base %u=%u\n", i, s.num);
		s.num = 0;
		snprintf(key, sizeof(key), "SET_VRING_BASE %u to 0", i);
		CALL(key, VHOST_SET_VRING_BASE, &s);
		memset(&a, 0, sizeof(a));
		a.index = i;
		a.desc_user_addr = (uintptr_t)area + i * 0x10000;
		a.avail_user_addr = a.desc_user_addr + 0x1000;
		a.used_user_addr = a.desc_user_addr + 0x2000;
		snprintf(key, sizeof(key), "SET_VRING_ADDR %u", i);
		CALL(key, VHOST_SET_VRING_ADDR, &a);
		kick = eventfd(0, 0);
		call = eventfd(0, 0);
		err = eventfd(0, 0);
		f.index = i;
		f.fd = kick;
		snprintf(key, sizeof(key), "SET_VRING_KICK %u", i);
		CALL(key, VHOST_SET_VRING_KICK, &f);
		f.fd = call;
		snprintf(key, sizeof(key), "SET_VRING_CALL %u", i);
		CALL(key, VHOST_SET_VRING_CALL, &f);
		snprintf(key, sizeof(key), "SET_VRING_ERR %u", i);
		vring_file(key, VHOST_SET_VRING_ERR, i, err);
		snprintf(key, sizeof(key), "SET_VRING_BUSYLOOP_TIMEOUT %u", i);
		vring_state(key, VHOST_SET_VRING_BUSYLOOP_TIMEOUT, i, 50 + i);
		snprintf(key, sizeof(key), "GET_VRING_BUSYLOOP_TIMEOUT %u", i);
		vring_state(key, VHOST_GET_VRING_BUSYLOOP_TIMEOUT, i, 0);
	}
	s.index = 2;
	CALL("SET_VRING_NUM bad index", VHOST_SET_VRING_NUM, &s);
	a.index = 0;
	a.avail_user_addr |= 1;
	CALL("SET_VRING_ADDR misaligned", VHOST_SET_VRING_ADDR, &a);

	/* Invalid arguments of the ring ioctls. */
	CALL("SET_VRING_NUM bad pointer", VHOST_SET_VRING_NUM, BAD);
	CALL("SET_VRING_ADDR bad pointer", VHOST_SET_VRING_ADDR, BAD);
	CALL("GET_VRING_BASE bad pointer", VHOST_GET_VRING_BASE, BAD);
	CALL("GET_VRING_BASE high pointer", VHOST_GET_VRING_BASE, HIGH);
	CALL("SET_VRING_KICK bad pointer", VHOST_SET_VRING_KICK, BAD);
	CALL("SET_VRING_CALL bad pointer", VHOST_SET_VRING_CALL, BAD);
	vring_file("SET_VRING_ERR -1", VHOST_SET_VRING_ERR, 0, -1);
	vring_file("SET_VRING_ERR bad fd", VHOST_SET_VRING_ERR, 0, NOFD);
	vring_file("SET_VRING_ERR pipe", VHOST_SET_VRING_ERR, 0, pipefd[0]);
	vring_file("SET_VRING_ERR bad index", VHOST_SET_VRING_ERR, 2, err);
	vring_file("SET_VRING_ERR huge index", VHOST_SET_VRING_ERR, 0x80000000u,
		   err);
	CALL("SET_VRING_ERR bad pointer", VHOST_SET_VRING_ERR, BAD);
	vring_file("SET_VRING_ERR again", VHOST_SET_VRING_ERR, 0, err);
	vring_state("SET_VRING_BUSYLOOP_TIMEOUT bad index",
		    VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 2, 1);
	vring_state("GET_VRING_BUSYLOOP_TIMEOUT bad index",
		    VHOST_GET_VRING_BUSYLOOP_TIMEOUT, 2, 0);
	CALL("SET_VRING_BUSYLOOP_TIMEOUT bad pointer",
	     VHOST_SET_VRING_BUSYLOOP_TIMEOUT, BAD);
	CALL("GET_VRING_BUSYLOOP_TIMEOUT bad pointer",
	     VHOST_GET_VRING_BUSYLOOP_TIMEOUT, BAD);
	vring_state("SET_VRING_BUSYLOOP_TIMEOUT max",
		    VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 1, 0xffffffffu);
	vring_state("GET_VRING_BUSYLOOP_TIMEOUT max",
		    VHOST_GET_VRING_BUSYLOOP_TIMEOUT, 1, 0);
	vring_state("SET_VRING_ENDIAN little", VHOST_SET_VRING_ENDIAN, 0,
		    VHOST_VRING_LITTLE_ENDIAN);
	vring_state("SET_VRING_ENDIAN big", VHOST_SET_VRING_ENDIAN, 1,
		    VHOST_VRING_BIG_ENDIAN);
	vring_state("SET_VRING_ENDIAN 5", VHOST_SET_VRING_ENDIAN, 0, 5);
	vring_state("GET_VRING_ENDIAN", VHOST_GET_VRING_ENDIAN, 0, 0);
	vring_state("SET_VRING_ENDIAN bad index", VHOST_SET_VRING_ENDIAN, 2, 0);
	vring_state("GET_VRING_ENDIAN bad index", VHOST_GET_VRING_ENDIAN, 2, 0);
	CALL("SET_VRING_ENDIAN bad pointer", VHOST_SET_VRING_ENDIAN, BAD);
	CALL("GET_VRING_ENDIAN bad pointer", VHOST_GET_VRING_ENDIAN, BAD);

	tap = open("/dev/net/tun", O_RDWR);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	strcpy(ifr.ifr_name, "compat0");
	rec("TUNSETIFF", ioctl(tap, TUNSETIFF, &ifr));
	for (unsigned int i = 0; i < 2; i++) {
		char key[64];

		f.index = i;
		f.fd = tap;
		snprintf(key, sizeof(key), "NET_SET_BACKEND %u", i);
		CALL(key, VHOST_NET_SET_BACKEND, &f);
	}
	CALL("NET_SET_BACKEND bad pointer", VHOST_NET_SET_BACKEND, BAD);
	printf("used_flags_rx=%u\n", *(uint16_t *)(area + 0x2000));

	/* With active rings the log base is checked against the memory table
	 * once VHOST_F_LOG_ALL is acked: a far u64 base fails.
	 */
	vring_state("SET_VRING_NUM active", VHOST_SET_VRING_NUM, 0, 256);
	vring_state("SET_VRING_ENDIAN active", VHOST_SET_VRING_ENDIAN, 0, 0);
	call64("SET_LOG_BASE far active", VHOST_SET_LOG_BASE, FAR);
	call64("SET_FEATURES LOG_ALL far base", VHOST_SET_FEATURES,
	       features | 1ULL << VHOST_F_LOG_ALL);
	call64("SET_LOG_BASE active", VHOST_SET_LOG_BASE, (uintptr_t)log);
	call64("SET_FEATURES LOG_ALL", VHOST_SET_FEATURES,
	       features | 1ULL << VHOST_F_LOG_ALL);
	call64("SET_LOG_BASE far LOG_ALL", VHOST_SET_LOG_BASE, FAR);
	call64("SET_LOG_BASE LOG_ALL", VHOST_SET_LOG_BASE, (uintptr_t)log);
	call64("SET_FEATURES no LOG_ALL", VHOST_SET_FEATURES, features);

	/* An IOTLB miss of the TX ring, polled and read by a 32-bit reader:
	 * the kernel's message is 72 bytes, more than this struct vhost_msg.
	 * The first IOTLB forgets the ring addresses: set them again, now
	 * IOVAs (equal to the user addresses).
	 */
	call64("SET_FEATURES ACCESS_PLATFORM active", VHOST_SET_FEATURES,
	       1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_ACCESS_PLATFORM);
	memset(&a, 0, sizeof(a));
	a.index = 1;
	a.desc_user_addr = (uintptr_t)area + 0x10000;
	a.avail_user_addr = a.desc_user_addr + 0x1000;
	a.used_user_addr = a.desc_user_addr + 0x2000;
	CALL("SET_VRING_ADDR 1 IOVA active", VHOST_SET_VRING_ADDR, &a);
	rec("kick TX", write(kick, &(uint64_t){ 1 }, sizeof(uint64_t)));
	poll_msg("poll miss");
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	read_msg("read miss 32-bit sizeof vhost_msg", sizeof(struct vhost_msg));
	read_miss("read miss", area + 0x10000);
	/* The next miss comes in the v2 format. */
	call64("SET_BACKEND_FEATURES MSG_V2 active", VHOST_SET_BACKEND_FEATURES,
	       1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2);
	write_v2("write v2 UPDATE desc", VHOST_IOTLB_UPDATE,
		 (uintptr_t)area + 0x10000, 0x1000, (uintptr_t)area + 0x10000,
		 sizeof(struct vhost_msg_v2));
	poll_msg("poll next miss");
	read_miss("read next miss", area + 0x10000);
	fcntl(fd, F_SETFL, flags);

	for (unsigned int i = 0; i < 2; i++) {
		f.index = i;
		f.fd = -1;
		CALL("NET_SET_BACKEND off", VHOST_NET_SET_BACKEND, &f);
	}

	/* The device IOTLB: write() of messages, read() of none. */
	call64("SET_FEATURES ACCESS_PLATFORM", VHOST_SET_FEATURES,
	       1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_ACCESS_PLATFORM);
	call64("SET_BACKEND_FEATURES MSG_V2 again", VHOST_SET_BACKEND_FEATURES,
	       1ULL << VHOST_BACKEND_F_IOTLB_MSG_V2);
	write_v2("write v2 UPDATE", VHOST_IOTLB_UPDATE, 0x1000, 0x1000,
		 (uintptr_t)area, sizeof(struct vhost_msg_v2));
	write_v2("write v2 UPDATE size 0", VHOST_IOTLB_UPDATE, 0x1000, 0,
		 (uintptr_t)area, sizeof(struct vhost_msg_v2));
	write_v2("write v2 UPDATE far uaddr", VHOST_IOTLB_UPDATE, 0x1000,
		 0x1000, FAR, sizeof(struct vhost_msg_v2));
	write_v2("write v2 INVALIDATE", VHOST_IOTLB_INVALIDATE, 0x1000, 0x1000,
		 0, sizeof(struct vhost_msg_v2));
	write_v2("write v2 MISS", VHOST_IOTLB_MISS, 0x1000, 0x1000, 0,
		 sizeof(struct vhost_msg_v2));
	write_v2("write v2 type 9", 9, 0x1000, 0x1000, 0,
		 sizeof(struct vhost_msg_v2));
	write_v2("write v2 32-bit iotlb length", VHOST_IOTLB_UPDATE, 0x1000,
		 0x1000, (uintptr_t)area,
		 offsetof(struct vhost_msg_v2, iotlb) +
			 sizeof(struct vhost_iotlb_msg));
	write_v2("write v2 type only", VHOST_IOTLB_UPDATE, 0, 0, 0, 2);
	{
		/* Hidden from the compiler, which knows BAD is no buffer. */
		volatile uintptr_t bad = (uintptr_t)BAD;

		rec("write bad pointer",
		    write(fd, (void *)bad, sizeof(struct vhost_msg_v2)));
	}
	{
		struct vhost_msg m1;
		unsigned char raw[72];

		memset(&m1, 0, sizeof(m1));
		m1.type = VHOST_IOTLB_MSG;
		m1.iotlb.iova = 0x2000;
		m1.iotlb.size = 0x1000;
		m1.iotlb.uaddr = (uintptr_t)area;
		m1.iotlb.perm = VHOST_ACCESS_RO;
		m1.iotlb.type = VHOST_IOTLB_UPDATE;
		/* The i386 layout, as a 32-bit program writes it. */
		rec("write v1 UPDATE i386 layout", write(fd, &m1, sizeof(m1)));
		/* The x86-64 layout: the payload 8 bytes in. */
		memset(raw, 0, sizeof(raw));
		memcpy(raw, &m1.type, sizeof(m1.type));
		memcpy(raw + 8, &m1.iotlb, sizeof(m1.iotlb));
		rec("write v1 UPDATE 64-bit layout", write(fd, raw, sizeof(raw)));
		m1.type = 7;
		rec("write type 7", write(fd, &m1, sizeof(m1)));
	}
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	read_msg("read nonblock", sizeof(struct vhost_msg_v2));
	read_msg("read nonblock 32-bit sizeof vhost_msg",
		 sizeof(struct vhost_msg));
	read_msg("read nonblock short", 8);
	fcntl(fd, F_SETFL, flags);
	call64("SET_FEATURES no ACCESS_PLATFORM", VHOST_SET_FEATURES, features);
	write_v2("write v2 UPDATE iotlb gone", VHOST_IOTLB_UPDATE, 0x1000,
		 0x1000, (uintptr_t)area, sizeof(struct vhost_msg_v2));

	CALL("RESET_OWNER", VHOST_RESET_OWNER, NULL);
	fork_owner("GET_FORK_FROM_OWNER after reset",
		   VHOST_GET_FORK_FROM_OWNER, 0xff);
	fork_owner("SET_FORK_FROM_OWNER after reset",
		   VHOST_SET_FORK_FROM_OWNER, VHOST_FORK_OWNER_TASK);
	call64("SET_LOG_BASE after reset", VHOST_SET_LOG_BASE, (uintptr_t)log);
	CALL("SET_LOG_FD after reset", VHOST_SET_LOG_FD, &logfd);
	close(tap);
	close(fd);
	return 0;
}
