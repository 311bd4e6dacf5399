// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of vhost_net_rs: only what Rust cannot reach from the 6.12
 * kernel crate (struct initialisers with THIS_MODULE, static inline
 * functions, macros). No logic and no state beyond the registration object.
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
#include <linux/uaccess.h>
#include <linux/if_tun.h>
#include <linux/ptr_ring.h>
#include <linux/skb_array.h>
#include <linux/if_vlan.h>
#include <linux/skbuff.h>
#include <net/xdp.h>
#include <net/sock.h>

#include "shim.h"

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

/* The callbacks are Rust functions, handed over at registration. */
static struct file_operations vhost_net_rs_fops = {
	.owner = THIS_MODULE,
	.llseek = noop_llseek,
	/* Exactly what the C vhost_net does for 32-bit callers. */
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice vhost_net_rs_misc = {
	.minor = VHOST_NET_MINOR,
	.name = "vhost-net",
	.fops = &vhost_net_rs_fops,
};

int vhost_net_rs_misc_register(int (*open)(struct inode *, struct file *),
			       int (*release)(struct inode *, struct file *),
			       long (*ioctl)(struct file *, unsigned int,
					     unsigned long),
			       ssize_t (*read_iter)(struct kiocb *,
						    struct iov_iter *),
			       ssize_t (*write_iter)(struct kiocb *,
						     struct iov_iter *),
			       __poll_t (*poll)(struct file *,
						struct poll_table_struct *))
{
	vhost_net_rs_fops.open = open;
	vhost_net_rs_fops.release = release;
	vhost_net_rs_fops.unlocked_ioctl = ioctl;
	vhost_net_rs_fops.read_iter = read_iter;
	vhost_net_rs_fops.write_iter = write_iter;
	vhost_net_rs_fops.poll = poll;
	return misc_register(&vhost_net_rs_misc);
}

void vhost_net_rs_misc_deregister(void)
{
	misc_deregister(&vhost_net_rs_misc);
}

/* current->mm with a reference (mmget), or NULL for a kernel thread. */
struct mm_struct *vhost_net_rs_get_current_mm(void)
{
	return get_task_mm(current);
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
__poll_t vhost_net_rs_vfs_poll(struct file *file, poll_table *table)
{
	return vfs_poll(file, table);
}

/* init_poll_funcptr() and init_waitqueue_func_entry() are static inline. */
void vhost_net_rs_init_poll_entry(poll_table *table, poll_queue_proc qproc,
				  struct wait_queue_entry *wait,
				  wait_queue_func_t func)
{
	/* Rust reserves the table itself (kapi/poll.rs: PollTable). */
	BUILD_BUG_ON(sizeof(poll_table) != 2 * sizeof(void *));
	init_poll_funcptr(table, qproc);
	init_waitqueue_func_entry(wait, func);
}

/*
 * Length of the packet at the head of a socket's receive queue, counting a
 * VLAN tag held out of band (skb_peek and skb_vlan_tag_present are
 * inline). C's peek_head_len for sockets without peek_len.
 */
int vhost_net_rs_sk_peek_len(const struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct sk_buff *head;
	unsigned long flags;
	int len = 0;

	spin_lock_irqsave(&sk->sk_receive_queue.lock, flags);
	head = skb_peek(&sk->sk_receive_queue);
	if (head) {
		len = head->len;
		if (skb_vlan_tag_present(head))
			len += VLAN_HLEN;
	}
	spin_unlock_irqrestore(&sk->sk_receive_queue.lock, flags);
	return len;
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

/* poll_wait() is static inline. */
void vhost_net_rs_poll_wait(struct file *file, wait_queue_head_t *wq,
			    poll_table *table)
{
	poll_wait(file, wq, table);
}

/* iov_iter_count() is static inline. */
size_t vhost_net_rs_iov_iter_count(const struct iov_iter *iter)
{
	return iov_iter_count(iter);
}

/* The file's open flags (O_NONBLOCK), for read_iter. */
unsigned int vhost_net_rs_kiocb_flags(const struct kiocb *iocb)
{
	return iocb->ki_filp->f_flags;
}

/*
 * TX batching into tun/tap with pre-built XDP buffers (C's
 * vhost_net_build_xdp and vhost_tx_batch). The buffer layout comes from
 * skb and XDP macros, so the shim owns the allocation and the xdp_buff
 * array; Rust copies the packet in and decides what to do.
 */
#define VHOST_NET_RS_XDP_BATCH 64

struct vhost_net_rs_xdp_batch {
	struct page_frag_cache pf;
	struct xdp_buff xdp[VHOST_NET_RS_XDP_BATCH];
};

void *vhost_net_rs_xdp_batch_new(void)
{
	return kzalloc(sizeof(struct vhost_net_rs_xdp_batch), GFP_KERNEL);
}

void vhost_net_rs_xdp_batch_free(void *batch)
{
	struct vhost_net_rs_xdp_batch *b = batch;

	if (b) {
		page_frag_cache_drain(&b->pf);
		kfree(b);
	}
}

/* ptr_ring_consume_batched and ptr_ring_unconsume are inline. */
int vhost_net_rs_rx_ring_consume(void *ring, void **queue, int n)
{
	return ptr_ring_consume_batched(ring, queue, n);
}

void vhost_net_rs_rx_ring_unconsume(void *ring, void **queue, int n)
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

/* Drops a reference of @u: true for the last one (inline). */
bool vhost_net_rs_ubuf_put(struct ubuf_info *u)
{
	return refcount_dec_and_test(&u->refcnt);
}

/* Fills a tun_msg_ctl carrying @u (TUN_MSG_UBUF is a macro). */
void vhost_net_rs_tun_ctl_ubuf(struct tun_msg_ctl *ctl, struct ubuf_info *u)
{
	/* Rust declares it as { u16 type, u16 num, void *ptr }. */
	BUILD_BUG_ON(sizeof(*ctl) != 8 + sizeof(void *));
	ctl->type = TUN_MSG_UBUF;
	ctl->num = 0;
	ctl->ptr = u;
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
 * A buffer for a packet of @len bytes (header included) whose socket
 * header is @sock_hlen bytes: NULL with *@err = -ENOSPC if it does not fit
 * a page, -ENOMEM if allocation fails. *@pad is where the data goes.
 */
void *vhost_net_rs_xdp_buf(void *batch, struct socket *sock, size_t sock_hlen,
			   size_t len, unsigned int *pad, unsigned int *buflen,
			   int *err)
{
	struct vhost_net_rs_xdp_batch *b = batch;
	int headroom = sock_flag(sock->sk, SOCK_XDP) ? XDP_PACKET_HEADROOM : 0;
	unsigned int p = SKB_DATA_ALIGN(NET_IP_ALIGN + NET_SKB_PAD + headroom +
					sock_hlen);
	unsigned int n = SKB_DATA_ALIGN(sizeof(struct skb_shared_info));
	void *buf;

	if (SKB_DATA_ALIGN(len + p) + n > PAGE_SIZE) {
		*err = -ENOSPC;
		return NULL;
	}
	n += SKB_DATA_ALIGN(len + p);
	buf = page_frag_alloc_align(&b->pf, n, GFP_KERNEL, SMP_CACHE_BYTES);
	if (!buf) {
		*err = -ENOMEM;
		return NULL;
	}
	if (!sock_hlen)
		memset(buf, 0, p);
	*pad = p;
	*buflen = n;
	return buf;
}

/* Offset of the vnet header in a buffer (struct tun_xdp_hdr's gso). */
size_t vhost_net_rs_xdp_hdr_offset(void)
{
	return offsetof(struct tun_xdp_hdr, gso);
}

/* Makes @buf the @idx-th buffer of the batch: @len data bytes at @pad. */
void vhost_net_rs_xdp_commit(void *batch, unsigned int idx, void *buf,
			     unsigned int pad, size_t len, unsigned int buflen)
{
	struct vhost_net_rs_xdp_batch *b = batch;
	struct tun_xdp_hdr *hdr = buf;

	xdp_init_buff(&b->xdp[idx], buflen, NULL);
	xdp_prepare_buff(&b->xdp[idx], buf, pad, len, true);
	hdr->buflen = buflen;
}

/* Gives back a buffer that was not committed. */
void vhost_net_rs_xdp_discard(void *buf)
{
	page_frag_free(buf);
}

/* Sends the first @n buffers with TUN_MSG_PTR; frees them on failure. */
int vhost_net_rs_xdp_send(void *batch, struct socket *sock, unsigned int n)
{
	struct vhost_net_rs_xdp_batch *b = batch;
	struct tun_msg_ctl ctl = {
		.type = TUN_MSG_PTR,
		.num = n,
		.ptr = b->xdp,
	};
	struct msghdr msg = {
		.msg_flags = MSG_DONTWAIT,
		.msg_control = &ctl,
		.msg_controllen = sizeof(ctl),
	};
	unsigned int i;
	int err;

	err = sock->ops->sendmsg(sock, &msg, 0);
	if (err < 0)
		for (i = 0; i < n; i++)
			put_page(virt_to_head_page(b->xdp[i].data));
	return err;
}
