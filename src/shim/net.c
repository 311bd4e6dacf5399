// SPDX-License-Identifier: GPL-2.0
/*
 * The packet logic of vhost_net_rs that stays in C, and why:
 *
 * - vhost_net_rs_sk_peek_len: the length of the packet at the head of a
 *   packet socket's receive queue (C's peek_head_len for sockets without
 *   ->peek_len). It walks struct sock and struct sk_buff, which the 6.12
 *   kernel crate does not bind usably, under the queue's irq-safe spinlock,
 *   with skb_peek and skb_vlan_tag_present (inline).
 *
 * - The TX batch into tun/tap (C's vhost_net_build_xdp and
 *   vhost_tx_batch): the buffer layout is made of SKB_DATA_ALIGN,
 *   XDP_PACKET_HEADROOM, NET_SKB_PAD, struct skb_shared_info and
 *   xdp_init_buff/xdp_prepare_buff (macros and inlines), so the allocation,
 *   the layout and the xdp_buff array are here. So is the one fact about
 *   the allocator Rust needs, whether a buffer still fits the block being
 *   carved (-EAGAIN): page_frag_cache's fields and their encoding (the
 *   order in the low bits of encoded_page since 6.13, an offset counting
 *   down before) are kernel internals reached by macros and inlines, and
 *   the buffer's size is the layout's. What goes in a buffer, and when a
 *   batch is sent (early on -EAGAIN included), is decided in Rust
 *   (src/kapi/xdp.rs, src/net/tx.rs), which also bounds the lengths it
 *   passes (a page) so the sums here cannot wrap.
 *
 * Everything else in C is a one-line wrapper (shim.c).
 */
#include <linux/if_tun.h>
#include <linux/if_vlan.h>
#include <linux/net.h>
#include <linux/skbuff.h>
#include <linux/version.h>
#include <net/sock.h>
#include <net/xdp.h>

#include "shim.h"

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

struct vhost_net_rs_xdp_batch *vhost_net_rs_xdp_batch_new(void)
{
	return kzalloc(sizeof(struct vhost_net_rs_xdp_batch), GFP_KERNEL);
}

void vhost_net_rs_xdp_batch_free(struct vhost_net_rs_xdp_batch *b)
{
	if (b) {
		page_frag_cache_drain(&b->pf);
		kfree(b);
	}
}

/*
 * Whether the page the cache is carving has room for @n more bytes aligned
 * to SMP_CACHE_BYTES (as __page_frag_alloc_align would carve them), or there
 * is no page yet. The cache's fields changed in 6.13: its offset counted
 * down before, aligned down after the subtraction.
 */
static bool vhost_net_rs_frag_room(const struct page_frag_cache *pf,
				   unsigned int n)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	unsigned long size = PAGE_SIZE << (pf->encoded_page &
					   PAGE_FRAG_CACHE_ORDER_MASK);

	return !pf->encoded_page ||
	       ALIGN(pf->offset, SMP_CACHE_BYTES) + n <= size;
#else
	return !pf->va || pf->offset >= n;
#endif
}

/*
 * Where tun reads the vnet header of a buffer. Until 6.17 the buffer began
 * with struct tun_xdp_hdr (the buffer length, then the header); since
 * (commit "tun: remove unnecessary tun_xdp_hdr structure") the header is at
 * the start and tun takes the length from the xdp_buff's frame size.
 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
#define VHOST_NET_RS_XDP_HDR_OFFSET offsetof(struct tun_xdp_hdr, gso)
#else
#define VHOST_NET_RS_XDP_HDR_OFFSET 0
#endif

/* Offset of the vnet header in a buffer. */
size_t vhost_net_rs_xdp_hdr_offset(void)
{
	return VHOST_NET_RS_XDP_HDR_OFFSET;
}

/*
 * The @idx-th buffer of the batch (@idx < VHOST_NET_RS_XDP_BATCH), for a
 * packet of @len bytes (header included, @len >= @sock_hlen) whose socket
 * header is @sock_hlen bytes: its data go at *@pad, its header at
 * vhost_net_rs_xdp_hdr_offset(), and the batch's xdp_buff @idx describes
 * it from now on. It joins the batch when the caller counts it, or goes
 * back with vhost_net_rs_xdp_discard. ERR_PTR(-ENOSPC) if it does not fit
 * a page, -ENOMEM if allocation fails, and -EAGAIN if @idx > 0 (buffers
 * are batched) and it does not fit the rest of the cache's block: the block
 * can be carved again from its start once they are sent and freed, where a
 * new one would be taken (and zeroed, with init_on_alloc) while they wait.
 */
void *vhost_net_rs_xdp_buf(struct vhost_net_rs_xdp_batch *b,
			   struct socket *sock, size_t sock_hlen, size_t len,
			   unsigned int idx, unsigned int *pad)
{
	int headroom = sock_flag(sock->sk, SOCK_XDP) ? XDP_PACKET_HEADROOM : 0;
	unsigned int p = SKB_DATA_ALIGN(NET_IP_ALIGN + NET_SKB_PAD + headroom +
					sock_hlen);
	unsigned int n = SKB_DATA_ALIGN(sizeof(struct skb_shared_info));
	void *buf;

	if (SKB_DATA_ALIGN(len + p) + n > PAGE_SIZE)
		return ERR_PTR(-ENOSPC);
	n += SKB_DATA_ALIGN(len + p);
	if (idx && !vhost_net_rs_frag_room(&b->pf, n))
		return ERR_PTR(-EAGAIN);
	buf = page_frag_alloc_align(&b->pf, n, GFP_KERNEL, SMP_CACHE_BYTES);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	if (!sock_hlen)
		memset(buf, 0, p);
	xdp_init_buff(&b->xdp[idx], n, NULL);
	xdp_prepare_buff(&b->xdp[idx], buf, p, len - sock_hlen, true);
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 17, 0)
	((struct tun_xdp_hdr *)buf)->buflen = n;
#endif
	*pad = p;
	return buf;
}

/* Gives back a buffer that was not counted into the batch. */
void vhost_net_rs_xdp_discard(void *buf)
{
	page_frag_free(buf);
}

/* Sends the first @n buffers with TUN_MSG_PTR; frees them on failure. */
int vhost_net_rs_xdp_send(struct vhost_net_rs_xdp_batch *b,
			  struct socket *sock, unsigned int n)
{
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
