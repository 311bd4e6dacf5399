/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the C side of vhost_net_rs exports to Rust, and the kernel headers
 * whose exported functions Rust calls beyond the kernel crate's bindings.
 *
 * The Rust declarations are generated from this file at build time by the
 * kernel's bindgen (Kbuild: shim_bindgen; src/kapi/shim.rs includes the
 * output), so they cannot drift from these prototypes.
 *
 * shim.c: inline functions and macros Rust cannot reach, one line each,
 *         and the module parameters (the 6.12 module! macro has none).
 * net.c:  the two pieces of packet logic that stay in C because they are
 *         made of skb/XDP macros (see its header comment).
 */
#ifndef VHOST_NET_RS_SHIM_H
#define VHOST_NET_RS_SHIM_H

#include <linux/fs.h>
#include <linux/if_tap.h>
#include <linux/if_tun.h>
#include <linux/miscdevice.h>
#include <linux/poll.h>
#include <linux/sched/vhost_task.h>
#include <linux/uio.h>

struct mm_struct;
struct socket;
struct ubuf_info;
struct ubuf_info_ops;

/* The module's version string, as modinfo shows it (shim.c). */
extern const char vhost_net_rs_version[];

/* Module parameters (shim.c). */
extern ushort vhost_net_rs_max_mem_regions;
extern int vhost_net_rs_max_iotlb_entries;
extern bool vhost_net_rs_fork_from_owner_default;
extern int vhost_net_rs_experimental_zcopytx;
extern int vhost_net_rs_in_order;

/* Inline functions and macros (shim.c). */
struct mm_struct *vhost_net_rs_get_current_mm(void);
bool vhost_net_rs_current_mm_is(const struct mm_struct *mm);
void vhost_net_rs_mmget(struct mm_struct *mm);
bool vhost_net_rs_access_ok(unsigned long addr, unsigned long size);
__poll_t vhost_net_rs_vfs_poll(struct file *file, struct poll_table_struct *table);
void vhost_net_rs_init_poll_entry(struct poll_table_struct *table, poll_queue_proc qproc,
				  struct wait_queue_entry *wait,
				  wait_queue_func_t func);
struct file *vhost_net_rs_get_file(struct file *file);
int vhost_net_rs_sock_type(const struct socket *sock);
int vhost_net_rs_sock_family(const struct socket *sock);
unsigned long vhost_net_rs_copy_from_user(void *to, const void __user *from,
					  unsigned long n);
unsigned long vhost_net_rs_copy_to_user(void __user *to, const void *from,
					unsigned long n);
unsigned long vhost_net_rs_copy_desc_from_user(void *to, const void __user *from);
u64 vhost_net_rs_busy_clock(void);
bool vhost_net_rs_need_resched(void);
void vhost_net_rs_set_current_running(void);
void vhost_net_rs_set_current_interruptible(void);
int vhost_net_rs_current_pid(void);
void vhost_net_rs_cond_resched(void);
void vhost_net_rs_init_waitqueue_head(struct wait_queue_head *wq);
bool vhost_net_rs_wake_up_pollfree(struct wait_queue_head *wq);
void vhost_net_rs_poll_wait(struct file *file, wait_queue_head_t *wq,
			    struct poll_table_struct *table);
size_t vhost_net_rs_iov_iter_count(const struct iov_iter *iter);
void vhost_net_rs_iov_iter_ubuf(struct iov_iter *iter, unsigned int dir,
				void __user *buf, size_t count);
unsigned int vhost_net_rs_kiocb_flags(const struct kiocb *iocb);
bool vhost_net_rs_sock_can_batch(const struct socket *sock);
int vhost_net_rs_rx_ring_consume(struct file *file, struct ptr_ring *ring,
				 void **queue, int n);
void vhost_net_rs_rx_ring_unconsume(struct ptr_ring *ring, void **queue, int n);
int vhost_net_rs_rx_ptr_len(void *ptr);
bool vhost_net_rs_sock_zerocopy(const struct socket *sock);
void vhost_net_rs_ubuf_arm(struct ubuf_info *u, const struct ubuf_info_ops *ops);
void vhost_net_rs_tun_ctl_ubuf(struct tun_msg_ctl *ctl, struct ubuf_info *u);
void vhost_net_rs_rcu_read_lock(void);
void vhost_net_rs_rcu_read_unlock(void);
void vhost_net_rs_rcu_read_lock_bh(void);
void vhost_net_rs_rcu_read_unlock_bh(void);
int vhost_net_rs_cgroup_attach_current(struct task_struct *tsk);

/* Diagnostics (shim.c): dynamic debug, the boot clock, fdinfo, version. */
struct seq_file;
void vhost_net_rs_pr_debug(const char *msg);
u64 vhost_net_rs_boottime_ns(void);
int vhost_net_rs_seq_write(struct seq_file *m, const void *data, size_t len);
const char *vhost_net_rs_version_str(void);

/* Packet logic made of skb and XDP macros (net.c). */
struct vhost_net_rs_xdp_batch;
int vhost_net_rs_sk_peek_len(const struct socket *sock);
struct vhost_net_rs_xdp_batch *vhost_net_rs_xdp_batch_new(void);
void vhost_net_rs_xdp_batch_free(struct vhost_net_rs_xdp_batch *batch);
void *vhost_net_rs_xdp_buf(struct vhost_net_rs_xdp_batch *batch,
			   struct socket *sock, size_t sock_hlen, size_t len,
			   unsigned int idx, unsigned int *pad);
size_t vhost_net_rs_xdp_hdr_offset(void);
void vhost_net_rs_xdp_discard(void *buf);
int vhost_net_rs_xdp_send(struct vhost_net_rs_xdp_batch *batch,
			  struct socket *sock, unsigned int n);

#endif
