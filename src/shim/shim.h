/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the C shim exports to the Rust side of vhost_net_rs. The Rust
 * `extern "C"` declarations in src/kapi/ must match these exactly.
 */
#ifndef VHOST_NET_RS_SHIM_H
#define VHOST_NET_RS_SHIM_H

#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/uio.h>

struct mm_struct;
struct socket;

int vhost_net_rs_misc_register(int (*open)(struct inode *, struct file *),
			       int (*release)(struct inode *, struct file *),
			       long (*ioctl)(struct file *, unsigned int,
					     unsigned long),
			       ssize_t (*read_iter)(struct kiocb *,
						    struct iov_iter *),
			       ssize_t (*write_iter)(struct kiocb *,
						     struct iov_iter *),
			       __poll_t (*poll)(struct file *,
						struct poll_table_struct *));
void vhost_net_rs_misc_deregister(void);
extern ushort vhost_net_rs_max_mem_regions;
extern int vhost_net_rs_max_iotlb_entries;
extern bool vhost_net_rs_fork_from_owner_default;
extern int vhost_net_rs_experimental_zcopytx;
struct mm_struct *vhost_net_rs_get_current_mm(void);
bool vhost_net_rs_current_mm_is(const struct mm_struct *mm);
bool vhost_net_rs_access_ok(unsigned long addr, unsigned long size);
__poll_t vhost_net_rs_vfs_poll(struct file *file, poll_table *table);
void vhost_net_rs_init_poll_entry(poll_table *table, poll_queue_proc qproc,
				  struct wait_queue_entry *wait,
				  wait_queue_func_t func);
int vhost_net_rs_sk_peek_len(const struct socket *sock);
int vhost_net_rs_sock_type(const struct socket *sock);
int vhost_net_rs_sock_family(const struct socket *sock);
unsigned long vhost_net_rs_copy_from_user(void *to, const void __user *from,
					  unsigned long n);
unsigned long vhost_net_rs_copy_to_user(void __user *to, const void *from,
					unsigned long n);
u64 vhost_net_rs_busy_clock(void);
bool vhost_net_rs_need_resched(void);
void vhost_net_rs_set_current_running(void);
void vhost_net_rs_set_current_interruptible(void);
int vhost_net_rs_current_pid(void);
void vhost_net_rs_cond_resched(void);
void vhost_net_rs_init_waitqueue_head(struct wait_queue_head *wq);
void vhost_net_rs_poll_wait(struct file *file, wait_queue_head_t *wq,
			    poll_table *table);
size_t vhost_net_rs_iov_iter_count(const struct iov_iter *iter);
unsigned int vhost_net_rs_kiocb_flags(const struct kiocb *iocb);
void *vhost_net_rs_xdp_batch_new(void);
void vhost_net_rs_xdp_batch_free(void *batch);
bool vhost_net_rs_sock_can_batch(const struct socket *sock);
int vhost_net_rs_rx_ring_consume(void *ring, void **queue, int n);
void vhost_net_rs_rx_ring_unconsume(void *ring, void **queue, int n);
int vhost_net_rs_rx_ptr_len(void *ptr);
bool vhost_net_rs_sock_zerocopy(const struct socket *sock);
struct ubuf_info;
struct ubuf_info_ops;
struct tun_msg_ctl;
void vhost_net_rs_ubuf_arm(struct ubuf_info *u, const struct ubuf_info_ops *ops);
bool vhost_net_rs_ubuf_put(struct ubuf_info *u);
void vhost_net_rs_tun_ctl_ubuf(struct tun_msg_ctl *ctl, struct ubuf_info *u);
void vhost_net_rs_rcu_read_lock_bh(void);
void vhost_net_rs_rcu_read_unlock_bh(void);
int vhost_net_rs_cgroup_attach_current(struct task_struct *tsk);
void *vhost_net_rs_xdp_buf(void *batch, struct socket *sock, size_t sock_hlen,
			   size_t len, unsigned int *pad, unsigned int *buflen,
			   int *err);
size_t vhost_net_rs_xdp_hdr_offset(void);
void vhost_net_rs_xdp_commit(void *batch, unsigned int idx, void *buf,
			     unsigned int pad, size_t len, unsigned int buflen);
void vhost_net_rs_xdp_discard(void *buf);
int vhost_net_rs_xdp_send(void *batch, struct socket *sock, unsigned int n);

#endif
