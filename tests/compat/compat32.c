// SPDX-License-Identifier: GPL-2.0
/*
 * A 32-bit vhost-net client for the compat_ioctl tests: built with
 * gcc -m32 -static and run inside the test VM (whose kernel has
 * CONFIG_IA32_EMULATION) against the C vhost_net and against ours. It
 * prints one "key=result" line per call; the in-VM suite compares the two
 * transcripts. Every argument that carries a pointer goes through the
 * kernel's compat_ptr_ioctl.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/vhost.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static int fd;

static void rec(const char *key, long r)
{
	if (r < 0)
		printf("%s=-1 errno=%d\n", key, errno);
	else
		printf("%s=%ld\n", key, r);
}

#define CALL(key, req, arg) rec(key, ioctl(fd, req, arg))

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
	unsigned char *area;
	struct ifreq ifr;
	int kick, call, tap;

	printf("pointer_bits=%zu\n", sizeof(void *) * 8);
	fd = open("/dev/vhost-net", O_RDWR);
	rec("open", fd < 0 ? -1 : 0);
	if (fd < 0)
		return 1;

	CALL("GET_FEATURES", VHOST_GET_FEATURES, &features);
	printf("features=%#llx\n", (unsigned long long)features);
	CALL("SET_MEM_TABLE before owner", VHOST_SET_MEM_TABLE, &mem);
	CALL("SET_OWNER", VHOST_SET_OWNER, NULL);
	CALL("SET_OWNER again", VHOST_SET_OWNER, NULL);
	features = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_NET_F_MRG_RXBUF;
	CALL("SET_FEATURES", VHOST_SET_FEATURES, &features);
	CALL("GET_BACKEND_FEATURES", VHOST_GET_BACKEND_FEATURES, &backend);
	printf("backend_features=%#llx\n", (unsigned long long)backend);
	CALL("GET_FEATURES bad pointer", VHOST_GET_FEATURES, (void *)16);
	CALL("unknown ioctl", _IO(VHOST_VIRTIO, 0x7f), NULL);

	area = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(&mem, 0, sizeof(mem));
	mem.hdr.nregions = 1;
	mem.r.guest_phys_addr = 0x100000;
	mem.r.memory_size = 1 << 20;
	mem.r.userspace_addr = (uintptr_t)area;
	CALL("SET_MEM_TABLE", VHOST_SET_MEM_TABLE, &mem);
	mem.hdr.nregions = 65;
	CALL("SET_MEM_TABLE 65", VHOST_SET_MEM_TABLE, &mem);

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
		f.index = i;
		f.fd = kick;
		snprintf(key, sizeof(key), "SET_VRING_KICK %u", i);
		CALL(key, VHOST_SET_VRING_KICK, &f);
		f.fd = call;
		snprintf(key, sizeof(key), "SET_VRING_CALL %u", i);
		CALL(key, VHOST_SET_VRING_CALL, &f);
	}
	s.index = 2;
	CALL("SET_VRING_NUM bad index", VHOST_SET_VRING_NUM, &s);
	a.index = 0;
	a.avail_user_addr |= 1;
	CALL("SET_VRING_ADDR misaligned", VHOST_SET_VRING_ADDR, &a);

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
	printf("used_flags_rx=%u\n", *(uint16_t *)(area + 0x2000));
	for (unsigned int i = 0; i < 2; i++) {
		f.index = i;
		f.fd = -1;
		CALL("NET_SET_BACKEND off", VHOST_NET_SET_BACKEND, &f);
	}
	CALL("RESET_OWNER", VHOST_RESET_OWNER, NULL);
	close(tap);
	close(fd);
	return 0;
}
