// SPDX-License-Identifier: GPL-2.0
/*
 * tbprof: a QEMU TCG plugin that counts the guest kernel instructions the
 * emulated CPUs execute, per translation block, between two marks the guest
 * sets off itself. `perf` has no hardware counters under TCG; this gives an
 * exact instruction profile instead (`make profile`, `make profile-qemu`).
 *
 * Marks: a guest process that executes the instruction at user address
 * MARK_START zeroes every count; one at MARK_STOP writes the counts since
 * the last start to PREFIX.N (N = 0, 1, ... in order) as lines
 * "vaddr insns executions" (hex, dec, dec) for every block run at least
 * once, then zeroes them. bench/vbench/src/main.rs (--profile) maps
 * a page with two `ret`s there and calls them around each measured window.
 *
 * With user=on, user-space blocks count too, all of them in one bucket at
 * vaddr 0 (a line per block length): what the guest's processes executed,
 * as a total. The nested QEMU rows need it (`make profile-qemu`), where the
 * inner guest runs in the outer guest's user space.
 *
 * Usage: qemu-system-x86_64 ... -plugin tbprof.so,out=PREFIX[,user=on]
 *
 * Only the plugin API's stable C functions are used; they are declared here
 * (QEMU 7.2 ships no header for plugins), as QEMU's API version 1 defines
 * them. Counts are plain adds from several vCPU threads (QEMU's inline op is
 * not atomic): a profile, not an audit.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct {
	const char *target_name;
	struct {
		int min;
		int cur;
	} version;
	bool system_emulation;
	struct {
		int smp_vcpus;
		int max_vcpus;
	} system;
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb cb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
					  vcpu_udata_cb cb,
					  enum qemu_plugin_cb_flags flags,
					  void *userdata);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb,
					      enum qemu_plugin_op op,
					      void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MARK_START 0x7e5700000000ULL
#define MARK_STOP 0x7e5700000040ULL
/* The x86-64 kernel half of the address space. */
#define KERNEL_MIN 0xffff800000000000ULL

/* One translated block: its address, length and executions. */
struct block {
	uint64_t vaddr;
	uint64_t insns;
	uint64_t count;
	struct block *next_hash;
	struct block *next_all;
};

#define HASH_BITS 16
static struct block *hash[1 << HASH_BITS];
static struct block *all;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *prefix = "tbprof";
static unsigned int seq;
static bool count_user;

static unsigned int hash_of(uint64_t vaddr, uint64_t insns)
{
	uint64_t h = (vaddr ^ (insns << 48)) * 0x9e3779b97f4a7c15ULL;

	return (unsigned int)(h >> (64 - HASH_BITS));
}

/* The block for (vaddr, insns), created on first sight. Caller holds lock. */
static struct block *block_of(uint64_t vaddr, uint64_t insns)
{
	unsigned int h = hash_of(vaddr, insns);
	struct block *b;

	for (b = hash[h]; b; b = b->next_hash)
		if (b->vaddr == vaddr && b->insns == insns)
			return b;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->vaddr = vaddr;
	b->insns = insns;
	b->next_hash = hash[h];
	hash[h] = b;
	b->next_all = all;
	all = b;
	return b;
}

static void zero_counts(void)
{
	struct block *b;

	for (b = all; b; b = b->next_all)
		b->count = 0;
}

static void dump(void)
{
	char path[4096];
	struct block *b;
	FILE *f;

	snprintf(path, sizeof(path), "%s.%u", prefix, seq++);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		return;
	}
	for (b = all; b; b = b->next_all)
		if (b->count)
			fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n",
				b->vaddr, b->insns, b->count);
	fclose(f);
	zero_counts();
}

static void on_mark(unsigned int vcpu, void *stop)
{
	(void)vcpu;
	pthread_mutex_lock(&lock);
	if (stop)
		dump();
	else
		zero_counts();
	pthread_mutex_unlock(&lock);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t vaddr = qemu_plugin_tb_vaddr(tb);
	struct block *b;

	(void)id;
	if (vaddr == MARK_START || vaddr == MARK_STOP) {
		qemu_plugin_register_vcpu_tb_exec_cb(
			tb, on_mark, QEMU_PLUGIN_CB_NO_REGS,
			vaddr == MARK_STOP ? (void *)1 : NULL);
		return;
	}
	if (vaddr < KERNEL_MIN) {
		if (!count_user)
			return;
		vaddr = 0;
	}
	pthread_mutex_lock(&lock);
	b = block_of(vaddr, qemu_plugin_tb_n_insns(tb));
	pthread_mutex_unlock(&lock);
	if (b)
		qemu_plugin_register_vcpu_tb_exec_inline(
			tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

__attribute__((visibility("default"))) int
qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc,
		    char **argv)
{
	int i;

	if (!info->system_emulation) {
		fprintf(stderr, "tbprof: system emulation only\n");
		return -1;
	}
	for (i = 0; i < argc; i++) {
		if (strncmp(argv[i], "out=", 4) == 0) {
			prefix = argv[i] + 4;
		} else if (strcmp(argv[i], "user=on") == 0) {
			count_user = true;
		} else {
			fprintf(stderr, "tbprof: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
	return 0;
}
