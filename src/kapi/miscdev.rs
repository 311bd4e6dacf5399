// SPDX-License-Identifier: GPL-2.0

//! A misc character device with a fixed minor and our own file operations.
//!
//! Upstream's `kernel::miscdevice` (6.13+) only registers dynamic minors and
//! has no `poll`/`read_iter`/`write_iter` hooks; `/dev/vhost-net` needs minor
//! 238 (`VHOST_NET_MINOR`, so `char-major-10-238` autoloading works) and all
//! of those hooks. The `struct miscdevice` and `struct file_operations` live
//! in the C shim (they need `THIS_MODULE`); the callbacks are the generic
//! trampolines below, which forward to a [`MiscDevice`] implementation.

use super::iov::IovIter;
use core::ffi::{c_int, c_long, c_uint, c_ulong, c_void};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::to_result;
use kernel::prelude::*;
use kernel::types::ForeignOwnable;

/// The file operations of a misc device.
pub(crate) trait MiscDevice: Sized {
    /// What `open` creates and the file's `private_data` owns.
    type Ptr: ForeignOwnable;

    /// Called when the device node is opened.
    fn open() -> Result<Self::Ptr>;

    /// Called when the last reference to the file is dropped.
    fn release(device: Self::Ptr);

    /// `unlocked_ioctl`; 32-bit callers reach it through `compat_ptr_ioctl`.
    fn ioctl(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        cmd: u32,
        arg: usize,
    ) -> Result<isize>;

    /// `read_iter`; `nonblock` is the file's `O_NONBLOCK`.
    fn read_iter(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        iter: &mut IovIter,
        nonblock: bool,
    ) -> Result<isize>;

    /// `write_iter`.
    fn write_iter(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        iter: &mut IovIter,
    ) -> Result<isize>;

    /// `poll`: registers on the device's wait queue through `poll_wait`
    /// and returns the current event mask.
    fn poll(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        file: *mut c_void,
        table: *mut c_void,
    ) -> u32;
}

extern "C" {
    fn vhost_net_rs_misc_register(
        open: unsafe extern "C" fn(*mut bindings::inode, *mut bindings::file) -> c_int,
        release: unsafe extern "C" fn(*mut bindings::inode, *mut bindings::file) -> c_int,
        ioctl: unsafe extern "C" fn(*mut bindings::file, c_uint, c_ulong) -> c_long,
        read_iter: unsafe extern "C" fn(*mut bindings::kiocb, *mut bindings::iov_iter) -> isize,
        write_iter: unsafe extern "C" fn(*mut bindings::kiocb, *mut bindings::iov_iter) -> isize,
        poll: unsafe extern "C" fn(*mut bindings::file, *mut bindings::poll_table_struct) -> c_uint,
    ) -> c_int;
    fn vhost_net_rs_kiocb_flags(iocb: *const c_void) -> c_uint;
    fn vhost_net_rs_misc_deregister();
}

/// The registration of the `vhost-net` misc device.
///
/// # Invariants
///
/// While a value of this type exists, the shim's `struct miscdevice` is
/// registered with the callbacks of `T`. There is only one such shim object,
/// so at most one `Registration` exists (the module owns it).
pub(crate) struct Registration<T: MiscDevice> {
    _t: PhantomData<T>,
}

impl<T: MiscDevice> Registration<T> {
    /// Registers the device. Fails with `EBUSY` if the minor is taken (for
    /// example by the C `vhost_net`), leaving nothing registered.
    pub(crate) fn register() -> Result<Self> {
        // SAFETY: The callbacks are `extern "C"` functions with exactly the
        // C prototypes the shim declares; they stay valid for the lifetime
        // of the module, and `Drop` deregisters before the module goes away.
        let ret = unsafe {
            vhost_net_rs_misc_register(
                open_callback::<T>,
                release_callback::<T>,
                ioctl_callback::<T>,
                read_iter_callback::<T>,
                write_iter_callback::<T>,
                poll_callback::<T>,
            )
        };
        to_result(ret)?;
        // INVARIANT: `misc_register` succeeded.
        Ok(Self { _t: PhantomData })
    }
}

impl<T: MiscDevice> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, the device is registered.
        unsafe { vhost_net_rs_misc_deregister() };
    }
}

/// # Safety
///
/// Called by the VFS only, with a valid `file` that `misc_open` set up.
unsafe extern "C" fn open_callback<T: MiscDevice>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    match T::open() {
        Ok(ptr) => {
            // SAFETY: `file` is valid (VFS contract) and nobody else uses
            // `private_data` of a file that is being opened.
            unsafe { (*file).private_data = ptr.into_foreign().cast_mut() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by the VFS only, once, after the last user of `file` is gone.
unsafe extern "C" fn release_callback<T: MiscDevice>(
    _inode: *mut bindings::inode,
    file: *mut bindings::file,
) -> c_int {
    // SAFETY: `file` is valid; `private_data` was set by `open_callback`
    // from `into_foreign` and is given back exactly once, here.
    let ptr = unsafe { T::Ptr::from_foreign((*file).private_data) };
    T::release(ptr);
    0
}

/// # Safety
///
/// Called by the VFS only, with a `file` that is open (so `release` has not
/// run and will not run concurrently).
unsafe extern "C" fn ioctl_callback<T: MiscDevice>(
    file: *mut bindings::file,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: `private_data` was set by `open_callback`, and `release` cannot
    // run while an ioctl holds the file, so the borrow is valid throughout.
    let device = unsafe { T::Ptr::borrow((*file).private_data) };
    match T::ioctl(device, cmd, arg as usize) {
        Ok(ret) => ret as c_long,
        Err(e) => c_long::from(e.to_errno()),
    }
}

/// # Safety
///
/// Called by the VFS only, with a valid `iocb` of an open file of ours and
/// an `iter` that is ours for the duration of the call.
unsafe extern "C" fn read_iter_callback<T: MiscDevice>(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: `iocb` is valid, so is its file, whose `private_data` was set
    // by `open_callback`; the file is open for the whole call.
    let device = unsafe { T::Ptr::borrow((*(*iocb).ki_filp).private_data) };
    // SAFETY: As above.
    let nonblock = unsafe { vhost_net_rs_kiocb_flags(iocb.cast()) } & bindings::O_NONBLOCK != 0;
    // SAFETY: The VFS lends us `iter` for this call.
    let mut iter = unsafe { IovIter::from_raw(iter) };
    match T::read_iter(device, &mut iter, nonblock) {
        Ok(n) => n,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// As [`read_iter_callback`].
unsafe extern "C" fn write_iter_callback<T: MiscDevice>(
    iocb: *mut bindings::kiocb,
    iter: *mut bindings::iov_iter,
) -> isize {
    // SAFETY: As in `read_iter_callback`.
    let device = unsafe { T::Ptr::borrow((*(*iocb).ki_filp).private_data) };
    // SAFETY: The VFS lends us `iter` for this call.
    let mut iter = unsafe { IovIter::from_raw(iter) };
    match T::write_iter(device, &mut iter) {
        Ok(n) => n,
        Err(e) => e.to_errno() as isize,
    }
}

/// # Safety
///
/// Called by the VFS only, with an open file of ours and its poll table.
unsafe extern "C" fn poll_callback<T: MiscDevice>(
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
) -> c_uint {
    // SAFETY: `private_data` was set by `open_callback`; the file is open.
    let device = unsafe { T::Ptr::borrow((*file).private_data) };
    T::poll(device, file.cast(), table.cast())
}
