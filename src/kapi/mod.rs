// SPDX-License-Identifier: GPL-2.0

//! Small safe wrappers over kernel APIs that the 6.12 `kernel` crate lacks:
//! the module's only `unsafe` code (the crate root aside), so every other
//! module is safe Rust over these types.
//!
//! Each wrapper is shaped like the upstream abstraction of a newer kernel
//! (`kernel::miscdevice`, `kernel::mm`), so that moving to those later is
//! mostly a deletion.

pub(crate) mod barrier;
pub(crate) mod diag;
pub(crate) mod eventfd;
pub(crate) mod iov;
pub(crate) mod kvec;
pub(crate) mod miscdev;
pub(crate) mod mm;
pub(crate) mod params;
pub(crate) mod poll;
pub(crate) mod rcu;
pub(crate) mod shim;
pub(crate) mod socket;
pub(crate) mod task;
pub(crate) mod uaccess;
pub(crate) mod uapi;
pub(crate) mod version;
pub(crate) mod waitqueue;
pub(crate) mod xdp;
pub(crate) mod zcopy;

use crate::vcore::errno::Errno;
use kernel::error::Error;

/// Converts a positive errno from `vcore` to a kernel [`Error`].
pub(crate) fn errno(e: Errno) -> Error {
    Error::from_errno(-e.0)
}
