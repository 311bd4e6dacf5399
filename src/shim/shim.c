// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of vhost_net_rs: only what Rust cannot reach from the 6.12
 * kernel crate (struct initialisers with THIS_MODULE, static inline
 * functions, macros). No logic and no state beyond the registration object.
 */
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>

#include "shim.h"

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
