// SPDX-License-Identifier: GPL-2.0

//! One open `/dev/vhost-net`: the device state machine and the ioctl
//! dispatcher.
//!
//! # Lock order
//!
//! `VhostNet::dev` (the C module's `dev->mutex`) is taken first; virtqueue
//! locks (added with the virtqueues) nest inside it, in index order.

use crate::kapi::miscdev::{errno, MiscDevice};
use crate::kapi::mm::MmRef;
use crate::vcore::uapi;
use crate::vcore::errno::Errno;
use kernel::prelude::*;
use kernel::sync::{Arc, ArcBorrow, Mutex};
use kernel::uaccess::{UserPtr, UserSlice};

/// Number of virtqueues of a vhost-net device: RX (0) and TX (1).
pub(crate) const VHOST_NET_VQ_MAX: u32 = 2;

/// The state under the device mutex.
struct DevState {
    /// The owner's address space, set by `VHOST_SET_OWNER`.
    owner: Option<MmRef>,
}

/// One open file of `/dev/vhost-net`.
#[pin_data]
pub(crate) struct VhostNet {
    /// The device mutex: serialises the control plane, as `dev->mutex` does
    /// in the C module.
    #[pin]
    dev: Mutex<DevState>,
}

/// The `_IOC_SIZE` field of an ioctl number.
fn ioc_size(cmd: u32) -> usize {
    ((cmd >> 16) & 0x3fff) as usize
}

/// Reads a `T` from the user pointer `arg`.
fn read_user<T: kernel::types::FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(arg as UserPtr, core::mem::size_of::<T>())
        .reader()
        .read::<T>()
}

/// Writes `value` to the user pointer `arg`.
fn write_user<T: kernel::types::AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(arg as UserPtr, core::mem::size_of::<T>())
        .writer()
        .write(value)
}

impl VhostNet {
    /// `VHOST_SET_OWNER`: the caller's address space becomes the owner.
    fn set_owner(&self) -> Result<isize> {
        let mut dev = self.dev.lock();
        if dev.owner.is_some() {
            return Err(EBUSY);
        }
        // A kernel thread has no mm to own the device with; C would oops
        // later, we refuse.
        dev.owner = Some(MmRef::current().ok_or(EINVAL)?);
        Ok(0)
    }

    /// `VHOST_RESET_OWNER`: back to the state right after `open`.
    fn reset_owner(&self) -> Result<isize> {
        let mut dev = self.dev.lock();
        Self::check_owner(&dev)?;
        dev.owner = None;
        Ok(0)
    }

    /// The C module's `vhost_dev_check_owner`: only the owner's address
    /// space may configure the device.
    fn check_owner(dev: &DevState) -> Result {
        match &dev.owner {
            Some(mm) if mm.is_current() => Ok(()),
            _ => Err(EPERM),
        }
    }

    /// The ioctls that need the device mutex and an owner, in the C
    /// module's order: device-wide ones first, then per-virtqueue ones.
    fn locked_ioctl(&self, cmd: u32, arg: usize) -> Result<isize> {
        let dev = self.dev.lock();
        Self::check_owner(&dev)?;
        // Per-virtqueue ioctls start by reading the queue index.
        let index: u32 = read_user(arg)?;
        if index >= VHOST_NET_VQ_MAX {
            return Err(errno(Errno::ENOBUFS));
        }
        let _ = ioc_size(cmd);
        Err(ENOTTY)
    }
}

impl MiscDevice for VhostNet {
    type Ptr = Arc<VhostNet>;

    fn open() -> Result<Arc<VhostNet>> {
        Arc::pin_init(
            pin_init!(VhostNet {
                dev <- kernel::new_mutex!(DevState { owner: None }, "VhostNet::dev"),
            }),
            GFP_KERNEL,
        )
    }

    fn release(_device: Arc<VhostNet>) {}

    fn ioctl(this: ArcBorrow<'_, VhostNet>, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            uapi::VHOST_GET_FEATURES => {
                write_user(arg, &uapi::VHOST_NET_FEATURES).map(|()| 0)
            }
            uapi::VHOST_SET_FEATURES => {
                let features: u64 = read_user(arg)?;
                if features & !uapi::VHOST_NET_FEATURES != 0 {
                    return Err(errno(Errno::EOPNOTSUPP));
                }
                Ok(0)
            }
            uapi::VHOST_GET_BACKEND_FEATURES => {
                write_user(arg, &uapi::VHOST_NET_BACKEND_FEATURES).map(|()| 0)
            }
            uapi::VHOST_RESET_OWNER => this.reset_owner(),
            uapi::VHOST_SET_OWNER => this.set_owner(),
            _ => this.locked_ioctl(cmd, arg),
        }
    }
}
