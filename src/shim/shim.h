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
struct mm_struct *vhost_net_rs_get_current_mm(void);
bool vhost_net_rs_current_mm_is(const struct mm_struct *mm);
bool vhost_net_rs_access_ok(unsigned long addr, unsigned long size);

#endif
