// SPDX-License-Identifier: GPL-2.0

//! What differs between the kernels served (Kbuild sets `vhost_linux` to
//! the kernel's `VERSION.PATCHLEVEL`): the place of kernel-crate items that
//! moved between them. Nothing outside `kapi` names a kernel version; the
//! contract of each kernel's C `vhost_net` is in `vcore::contract`.

use kernel::types::ForeignOwnable;
use kernel::uaccess::UserPtr;

// The byte-copy marker traits: `kernel::types` in 6.12, moved to
// `kernel::transmute` by 6.17.
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) use kernel::transmute::{AsBytes, FromBytes};
#[cfg(vhost_linux = "6.12")]
pub(crate) use kernel::types::{AsBytes, FromBytes};

/// A user address as `UserSlice::new` takes it: a plain `usize` in 6.12, a
/// `UserPtr` wrapper by 6.17.
#[cfg(vhost_linux = "6.12")]
pub(crate) fn user_ptr(addr: usize) -> UserPtr {
    addr
}
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) fn user_ptr(addr: usize) -> UserPtr {
    UserPtr::from_addr(addr)
}

/// `ForeignOwnable::into_foreign` as a `private_data` pointer: 6.12 gives a
/// `*const`, later kernels a `*mut`.
#[cfg(vhost_linux = "6.12")]
pub(crate) fn into_foreign<P: ForeignOwnable>(p: P) -> *mut core::ffi::c_void {
    p.into_foreign().cast_mut()
}
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) fn into_foreign<P: ForeignOwnable>(p: P) -> *mut core::ffi::c_void {
    p.into_foreign()
}

/// `compat_ptr_ioctl` as a `file_operations` field: a function in 6.12, an
/// `Option` (`None` without `CONFIG_COMPAT`) in the kernel crate by 6.17.
#[cfg(vhost_linux = "6.12")]
pub(crate) const COMPAT_PTR_IOCTL: Option<
    unsafe extern "C" fn(*mut kernel::bindings::file, u32, usize) -> isize,
> = Some(kernel::bindings::compat_ptr_ioctl);
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) const COMPAT_PTR_IOCTL: Option<
    unsafe extern "C" fn(*mut kernel::bindings::file, u32, usize) -> isize,
> = kernel::bindings::compat_ptr_ioctl;

/// The contract of this kernel's C `vhost_net` (`vcore::contract`): what
/// the module answers wherever the served kernels differ. A constant, so
/// its fields fold where the data path reads them.
#[cfg(vhost_linux = "6.12")]
pub(crate) const CONTRACT: crate::vcore::contract::Contract = crate::vcore::contract::LINUX_6_12;
#[cfg(vhost_linux = "7.3")]
pub(crate) const CONTRACT: crate::vcore::contract::Contract = crate::vcore::contract::LINUX_7_3;
