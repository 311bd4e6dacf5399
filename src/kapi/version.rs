// SPDX-License-Identifier: GPL-2.0

//! What differs between the kernels served (Kbuild sets `vhost_linux` to
//! the kernel's `VERSION.PATCHLEVEL`): the place of kernel-crate items that
//! moved between them. Nothing outside `kapi` names a kernel version; the
//! contract of each kernel's C `vhost_net` is in `vcore::contract`.

/// The byte-copy marker traits: `kernel::types` in 6.12, moved to
/// `kernel::transmute` by 6.17.
#[cfg(vhost_linux = "6.12")]
pub(crate) use kernel::types::{AsBytes, FromBytes};
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) use kernel::transmute::{AsBytes, FromBytes};
