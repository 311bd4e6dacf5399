// SPDX-License-Identifier: GPL-2.0

//! What differs between the kernels served (Kbuild sets `vhost_linux` to
//! the kernel's `VERSION.PATCHLEVEL`): the place of kernel-crate items that
//! moved between them. Nothing outside `kapi` names a kernel version; the
//! contract of each kernel's C `vhost_net` is in `vcore::contract`.

#[cfg(not(vhost_linux = "6.12"))]
pub(crate) use kernel::transmute::{AsBytes, FromBytes};
/// The byte-copy marker traits: `kernel::types` in 6.12, moved to
/// `kernel::transmute` by 6.17.
#[cfg(vhost_linux = "6.12")]
pub(crate) use kernel::types::{AsBytes, FromBytes};

/// The contract of this kernel's C `vhost_net` (`vcore::contract`): what
/// the module answers wherever the served kernels differ. A constant, so
/// its fields fold where the data path reads them.
#[cfg(vhost_linux = "6.12")]
pub(crate) const CONTRACT: crate::vcore::contract::Contract = crate::vcore::contract::LINUX_6_12;
#[cfg(vhost_linux = "7.3")]
pub(crate) const CONTRACT: crate::vcore::contract::Contract = crate::vcore::contract::LINUX_7_3;
