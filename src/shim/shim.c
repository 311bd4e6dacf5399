// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of vhost_net_rs that has no logic: one wrapper per static
 * inline function or macro Rust cannot reach from the 6.12 kernel crate,
 * and the module parameters (the 6.12 module! macro declares none). The
 * file operations and the misc device are Rust's (src/kapi/miscdev.rs);
 * the packet logic made of skb/XDP macros is in net.c.
 */
#include <linux/cgroup.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/sched/clock.h>
#include <linux/sched/mm.h>
#include <linux/seq_file.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>
#include <linux/if_tun.h>
#include <linux/ptr_ring.h>
#include <linux/version.h>
#include <linux/skb_array.h>
#include <linux/skbuff.h>
#include <net/sock.h>
#include <net/xdp.h>

#include "shim.h"

/*
 * The module's version (modinfo -F version), set by Kbuild:
 * VHOST_NET_RS_VERSION, the VERSION file of a package's sources, or git
 * describe of the checkout. The 6.12 Rust module! macro has no version
 * field.
 */
#ifndef VHOST_NET_RS_VERSION
#define VHOST_NET_RS_VERSION "unknown"
#endif
MODULE_VERSION(VHOST_NET_RS_VERSION);
const char vhost_net_rs_version[] = VHOST_NET_RS_VERSION;

/*
 * Module parameters: the same names, types, defaults and meaning as the C
 * modules' (vhost.ko: max_mem_regions, max_iotlb_entries,
 * fork_from_owner_default; vhost_net.ko: experimental_zcopytx). The 6.12
 * Rust module! macro cannot declare parameters. Read-only after load.
 */
/* Rust reads the variables directly (src/params.rs). */
ushort vhost_net_rs_max_mem_regions = 64;
module_param_named(max_mem_regions, vhost_net_rs_max_mem_regions, ushort, 0444);
MODULE_PARM_DESC(max_mem_regions,
	"Maximum number of memory regions in memory map. (default: 64)");
int vhost_net_rs_max_iotlb_entries = 2048;
module_param_named(max_iotlb_entries, vhost_net_rs_max_iotlb_entries, int, 0444);
MODULE_PARM_DESC(max_iotlb_entries,
	"Maximum number of iotlb entries. (default: 2048)");
bool vhost_net_rs_fork_from_owner_default = true;
module_param_named(fork_from_owner_default, vhost_net_rs_fork_from_owner_default,
		   bool, 0444);
MODULE_PARM_DESC(fork_from_owner_default,
	"Set task mode as the default(default: Y)");
int vhost_net_rs_experimental_zcopytx;
module_param_named(experimental_zcopytx, vhost_net_rs_experimental_zcopytx, int, 0444);
MODULE_PARM_DESC(experimental_zcopytx, "Enable Zero Copy TX;"
		 " 1 -Enable; 0 - Disable");
/* Not a C parameter: 7.3's vhost_net offers VIRTIO_F_IN_ORDER, 6.12's
 * does not; -1 follows this kernel's C module, 1 offers it (6.12 opt-in),
 * 0 does not (src/net/device.rs, offered_features). */
int vhost_net_rs_in_order = -1;
module_param_named(in_order, vhost_net_rs_in_order, int, 0444);
MODULE_PARM_DESC(in_order, "Offer VIRTIO_F_IN_ORDER: 1 yes, 0 no,"
		 " -1 as this kernel's vhost_net (default: -1)");

/* current->mm with a reference (mmget), or NULL for a kernel thread. */
struct mm_struct *vhost_net_rs_get_current_mm(void)
{
	return get_task_mm(current);
}

/* mmget() is inline: another user reference on @mm. */
void vhost_net_rs_mmget(struct mm_struct *mm)
{
	mmget(mm);
}

/* Whether the calling task's address space is @mm (no reference taken). */
bool vhost_net_rs_current_mm_is(const struct mm_struct *mm)
{
	return current->mm == mm;
}

/* access_ok() is a macro. */
bool vhost_net_rs_access_ok(unsigned long addr, unsigned long size)
{
	return access_ok((const void __user *)addr, size);
}

/* vfs_poll() is static inline; a NULL table only asks for the mask. */
__poll_t vhost_net_rs_vfs_poll(struct file *file, struct poll_table_struct *table)
{
	return vfs_poll(file, table);
}

/* init_poll_funcptr() and init_waitqueue_func_entry() are static inline. */
void vhost_net_rs_init_poll_entry(struct poll_table_struct *table, poll_queue_proc qproc,
				  struct wait_queue_entry *wait,
				  wait_queue_func_t func)
{
	/* Rust reserves the table itself (kapi/poll.rs: PollTable). */
	BUILD_BUG_ON(sizeof(poll_table) != 2 * sizeof(void *));
	init_poll_funcptr(table, qproc);
	init_waitqueue_func_entry(wait, func);
}

/* get_file() is inline: another reference on @file, which is returned. */
struct file *vhost_net_rs_get_file(struct file *file)
{
	return get_file(file);
}

/* struct sock is opaque to Rust's bindings: its type and family. */
int vhost_net_rs_sock_type(const struct socket *sock)
{
	return sock->sk->sk_type;
}

int vhost_net_rs_sock_family(const struct socket *sock)
{
	return sock->sk->sk_family;
}

/*
 * The data path's user copies: access_ok (inline) and the inline
 * __copy_{from,to}_user, as C's vhost does (vhost_copy_from_user and
 * friends). The kernel crate only reaches the out-of-line
 * _copy_{from,to}_user, through its own wrappers; a few small copies per
 * packet make the difference measurable (make profile). Returns the bytes
 * not copied, as copy_{from,to}_user do.
 */
unsigned long vhost_net_rs_copy_from_user(void *to, const void __user *from,
					  unsigned long n)
{
	if (!access_ok(from, n))
		return n;
	return __copy_from_user(to, from, n);
}

/*
 * A 16-byte descriptor, as C's vhost_get_desc: of a constant size, so a
 * hardened kernel's check_object_size (a call, for run-time sizes) has
 * nothing to check, as in C.
 */
unsigned long vhost_net_rs_copy_desc_from_user(void *to, const void __user *from)
{
	if (!access_ok(from, 16))
		return 16;
	return __copy_from_user(to, from, 16);
}

unsigned long vhost_net_rs_copy_to_user(void __user *to, const void *from,
					unsigned long n)
{
	if (!access_ok(to, n))
		return n;
	return __copy_to_user(to, from, n);
}

/* The busy-poll clock of C's vhost_net (local_clock is inline). */
u64 vhost_net_rs_busy_clock(void)
{
	return local_clock() >> 10;
}

/* need_resched() is inline. */
bool vhost_net_rs_need_resched(void)
{
	return need_resched();
}

/* __set_current_state() is a macro: a worker round that has work runs. */
void vhost_net_rs_set_current_running(void)
{
	__set_current_state(TASK_RUNNING);
}

/*
 * A kthread worker joins the caller's cgroups (C's
 * vhost_attach_task_to_cgroups); an inline stub without CONFIG_CGROUPS.
 */
int vhost_net_rs_cgroup_attach_current(struct task_struct *tsk)
{
	return cgroup_attach_task_all(current, tsk);
}

/* set_current_state() is a macro (with the barrier kthread_stop pairs with). */
void vhost_net_rs_set_current_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

/* cond_resched() is a macro. */
void vhost_net_rs_cond_resched(void)
{
	cond_resched();
}

/* task_pid_nr() is inline: the worker is named vhost-<owner pid>. */
int vhost_net_rs_current_pid(void)
{
	return task_pid_nr(current);
}

/* init_waitqueue_head() is a macro (it defines the lockdep class). */
void vhost_net_rs_init_waitqueue_head(struct wait_queue_head *wq)
{
	init_waitqueue_head(wq);
}

/*
 * wake_up_pollfree() is inline: detaches every poller (epoll) from @wq
 * before it is freed. Returns whether there was any, so the caller waits
 * for an RCU grace period only then (the pollers free their entries after
 * one).
 */
bool vhost_net_rs_wake_up_pollfree(struct wait_queue_head *wq)
{
	if (!waitqueue_active(wq))
		return false;
	__wake_up_pollfree(wq);
	return true;
}

/* poll_wait() is static inline. */
void vhost_net_rs_poll_wait(struct file *file, wait_queue_head_t *wq,
			    struct poll_table_struct *table)
{
	poll_wait(file, wq, table);
}

/* iov_iter_count() is static inline. */
size_t vhost_net_rs_iov_iter_count(const struct iov_iter *iter)
{
	return iov_iter_count(iter);
}

/* iov_iter_ubuf() is static inline. */
void vhost_net_rs_iov_iter_ubuf(struct iov_iter *iter, unsigned int dir,
				void __user *buf, size_t count)
{
	iov_iter_ubuf(iter, dir, buf, count);
}

/* The file's open flags (O_NONBLOCK), for read_iter. */
unsigned int vhost_net_rs_kiocb_flags(const struct kiocb *iocb)
{
	return iocb->ki_filp->f_flags;
}

/*
 * ptr_ring_consume_batched and ptr_ring_unconsume are inline. Since 7.x
 * tun can stop its queue when the ring is full (IFF_BACKPRESSURE) and
 * vhost must wake it for what it consumed, under the consumer lock (C's
 * vhost_net_buf_produce); 6.12 has no tun_wake_queue. tun_wake_queue
 * ignores files that are not tun's (macvtap).
 */
int vhost_net_rs_rx_ring_consume(struct file *file, struct ptr_ring *ring,
				 void **queue, int n)
{
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
	return ptr_ring_consume_batched(ring, queue, n);
#else
	int got;

	spin_lock(&ring->consumer_lock);
	got = __ptr_ring_consume_batched(ring, queue, n);
	if (got)
		tun_wake_queue(file, got);
	spin_unlock(&ring->consumer_lock);
	return got;
#endif
}

void vhost_net_rs_rx_ring_unconsume(struct ptr_ring *ring, void **queue, int n)
{
	ptr_ring_unconsume(ring, queue, n, tun_ptr_free);
}

/*
 * Length of a packet taken off a tun/tap ring: an xdp_frame (tagged
 * pointer) or an skb with its out-of-band VLAN tag (C's
 * vhost_net_buf_peek_len; the helpers are inline).
 */
int vhost_net_rs_rx_ptr_len(void *ptr)
{
	if (tun_is_xdp_frame(ptr))
		return tun_ptr_to_xdp(ptr)->len;
	return __skb_array_len_with_tag(ptr);
}

/*
 * Zerocopy TX (experimental_zcopytx). Whether the socket builds skbs on
 * the sender's pages (tun and macvtap set SOCK_ZEROCOPY).
 */
bool vhost_net_rs_sock_zerocopy(const struct socket *sock)
{
	return sock_flag(sock->sk, SOCK_ZEROCOPY);
}

/* Arms @u for one packet: its @ops, one reference, C's flags (macros). */
void vhost_net_rs_ubuf_arm(struct ubuf_info *u, const struct ubuf_info_ops *ops)
{
	u->ops = ops;
	u->flags = SKBFL_ZEROCOPY_FRAG;
	refcount_set(&u->refcnt, 1);
}

/* Fills a tun_msg_ctl carrying @u (TUN_MSG_UBUF is a macro). */
void vhost_net_rs_tun_ctl_ubuf(struct tun_msg_ctl *ctl, struct ubuf_info *u)
{
	ctl->type = TUN_MSG_UBUF;
	ctl->num = 0;
	ctl->ptr = u;
}

/* rcu_read_lock and its unlock are inline. */
void vhost_net_rs_rcu_read_lock(void)
{
	rcu_read_lock();
}

void vhost_net_rs_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

/* rcu_read_lock_bh and its unlock are inline. */
void vhost_net_rs_rcu_read_lock_bh(void)
{
	rcu_read_lock_bh();
}

void vhost_net_rs_rcu_read_unlock_bh(void)
{
	rcu_read_unlock_bh();
}

/* Whether tun/tap may take batches: C batches only with unlimited sndbuf. */
bool vhost_net_rs_sock_can_batch(const struct socket *sock)
{
	return sock->sk->sk_sndbuf == INT_MAX;
}

/*
 * Diagnostics. pr_debug() is a macro that makes a dynamic-debug call site
 * (enabled with `module vhost_net_rs +p` in
 * /sys/kernel/debug/dynamic_debug/control); Rust formats and rate-limits
 * the message (src/kapi/diag.rs), this only prints it.
 */
void vhost_net_rs_pr_debug(const char *msg)
{
	pr_debug(KBUILD_MODNAME ": %s\n", msg);
}

/* ktime_get_boottime_ns() is static inline. */
u64 vhost_net_rs_boottime_ns(void)
{
	return ktime_get_boottime_ns();
}

/* seq_write() is exported, but not bound by every kernel crate. */
int vhost_net_rs_seq_write(struct seq_file *m, const void *data, size_t len)
{
	return seq_write(m, data, len);
}

/*
 * vhost_net_rs_version as a pointer to the whole string: Rust sees the
 * array as one of length 0 (its length is the build's).
 */
const char *vhost_net_rs_version_str(void)
{
	return vhost_net_rs_version;
}
