// SPDX-License-Identifier: GPL-2.0

//! Copies to and from the owner's address space at numeric addresses.
//!
//! The ioctl arguments and the rings live in the address space of the
//! calling task (the owner, for everything but the owner-free ioctls), so
//! `copy_{from,to}_user` through `kernel::uaccess` is all that is needed.

use super::shim::vhost_net_rs_access_ok;
use kernel::prelude::*;
use kernel::types::{AsBytes, FromBytes};
use kernel::uaccess::{UserPtr, UserSlice};

/// Reads a `T` from user address `addr` (`EFAULT` if it cannot).
pub(crate) fn read<T: FromBytes>(addr: usize) -> Result<T> {
    UserSlice::new(addr as UserPtr, core::mem::size_of::<T>())
        .reader()
        .read::<T>()
}

/// Writes `value` to user address `addr` (`EFAULT` if it cannot).
pub(crate) fn write<T: AsBytes>(addr: usize, value: &T) -> Result {
    UserSlice::new(addr as UserPtr, core::mem::size_of::<T>())
        .writer()
        .write(value)
}

/// `access_ok`: whether `[addr, addr + size)` is a user range at all (it
/// does not check that it is mapped).
pub(crate) fn access_ok(addr: u64, size: u64) -> bool {
    match (usize::try_from(addr), usize::try_from(size)) {
        // SAFETY: `access_ok` only does arithmetic on its arguments.
        (Ok(a), Ok(s)) => unsafe { vhost_net_rs_access_ok(a as _, s as _) },
        _ => false,
    }
}
