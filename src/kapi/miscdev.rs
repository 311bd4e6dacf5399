// SPDX-License-Identifier: GPL-2.0

//! A misc character device with a fixed minor and our own file operations.
//!
//! Upstream's `kernel::miscdevice` (6.13+) only registers dynamic minors and
//! has no `poll`/`read_iter`/`write_iter` hooks; `/dev/vhost-net` needs minor
//! 238 (`VHOST_NET_MINOR`, so `char-major-10-238` autoloading works) and all
//! of those hooks. As upstream's, the `struct file_operations` is a constant
//! built here from generic `extern "C"` trampolines that forward to a
//! [`MiscDevice`] implementation, and the `struct miscdevice` is ours too;
//! only `owner` (`THIS_MODULE`, a static the module's constant cannot
//! name) is filled in at registration.

use super::diag::SeqFile;
use super::iov::IovIter;
use super::poll::PollTable;
use super::shim::VHOST_NET_MINOR;
use super::shim::{misc_deregister, misc_register, miscdevice, vhost_net_rs_kiocb_flags};
use core::marker::PhantomData;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::{c_int, c_long, c_uint, c_ulong};
use kernel::prelude::*;
use kernel::types::{ForeignOwnable, Opaque};
use kernel::ThisModule;

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
        iter: &mut IovIter<'_>,
        nonblock: bool,
    ) -> Result<isize>;

    /// `write_iter`.
    fn write_iter(
        device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>,
        iter: &mut IovIter<'_>,
    ) -> Result<isize>;

    /// `poll`: registers on the device's wait queues through `table` and
    /// returns the current event mask.
    fn poll(device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>, table: &PollTable<'_>) -> u32;

    /// `show_fdinfo`: what `/proc/<pid>/fdinfo/<fd>` shows after the
    /// VFS's own lines.
    fn show_fdinfo(device: <Self::Ptr as ForeignOwnable>::Borrowed<'_>, m: &mut SeqFile<'_>);
}

/// The file operations of `T`, a constant (as upstream's `MiscdeviceVTable`).
struct FileOps<T: MiscDevice>(PhantomData<T>);

impl<T: MiscDevice> FileOps<T> {
    const FOPS: bindings::file_operations = bindings::file_operations {
        // Filled in by `Registration::register` (THIS_MODULE).
        owner: core::ptr::null_mut(),
        llseek: Some(bindings::noop_llseek),
        open: Some(open_callback::<T>),
        release: Some(release_callback::<T>),
        unlocked_ioctl: Some(ioctl_callback::<T>),
        // Exactly what the C vhost_net does for 32-bit callers.
        compat_ioctl: super::version::COMPAT_PTR_IOCTL,
        read_iter: Some(read_iter_callback::<T>),
        write_iter: Some(write_iter_callback::<T>),
        poll: Some(poll_callback::<T>),
        show_fdinfo: Some(show_fdinfo_callback::<T>),
        // SAFETY: All zeroes is a valid `file_operations` (no operation).
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}

/// What the misc core keeps pointers to while the device is registered.
struct Objects {
    fops: bindings::file_operations,
    misc: Opaque<miscdevice>,
}

/// The registration of the `vhost-net` misc device.
///
/// # Invariants
///
/// `objects.misc` is registered (`misc_register` succeeded) with
/// `objects.fops`, the file operations of `T` with `owner` set; the box
/// does not move or change until `Drop` deregisters it.
pub(crate) struct Registration<T: MiscDevice> {
    objects: KBox<Objects>,
    _t: PhantomData<T>,
}

// SAFETY: The registration is only deregistered (from any task) in `Drop`;
// the misc core synchronises its own use of the objects.
unsafe impl<T: MiscDevice> Send for Registration<T> {}
// SAFETY: Shared references give no access to the objects.
unsafe impl<T: MiscDevice> Sync for Registration<T> {}

impl<T: MiscDevice> Registration<T> {
    /// Registers `/dev/vhost-net` (minor `VHOST_NET_MINOR`) for `module`.
    /// Fails with `EBUSY` if the minor is taken (for example by the C
    /// `vhost_net`), leaving nothing registered.
    pub(crate) fn register(module: &'static ThisModule) -> Result<Self> {
        let mut fops = FileOps::<T>::FOPS;
        fops.owner = module.as_ptr();
        let objects = KBox::new(
            Objects {
                fops,
                misc: Opaque::uninit(),
            },
            GFP_KERNEL,
        )?;
        let misc = objects.misc.get();
        // SAFETY: `misc` is valid memory for a `miscdevice`, ours until
        // registered; all zeroes is its "nothing set" value, and the name
        // and file operations live as long as the registration (a static
        // string; the box, which does not move).
        unsafe {
            misc.write(core::mem::MaybeUninit::zeroed().assume_init());
            (*misc).minor = VHOST_NET_MINOR as c_int;
            (*misc).name = c"vhost-net".as_ptr().cast();
            (*misc).fops = &objects.fops;
        }
        // SAFETY: `misc` is initialised above and stays put until `Drop`.
        to_result(unsafe { misc_register(misc) })?;
        // INVARIANT: `misc_register` succeeded; the box is kept unchanged.
        Ok(Self {
            objects,
            _t: PhantomData,
        })
    }
}

impl<T: MiscDevice> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, the device is registered.
        unsafe { misc_deregister(self.objects.misc.get()) };
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
            unsafe { (*file).private_data = super::version::into_foreign(ptr) };
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
    match T::ioctl(device, cmd, arg) {
        Ok(ret) => ret as c_long,
        Err(e) => e.to_errno() as c_long,
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
    let nonblock = unsafe { vhost_net_rs_kiocb_flags(iocb) } & bindings::O_NONBLOCK != 0;
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
    // SAFETY: The VFS's arguments to the running `poll`, which outlasts
    // the table (a local of this call).
    let table = unsafe { PollTable::from_raw(file, table) };
    T::poll(device, &table)
}

/// # Safety
///
/// Called by the VFS only (`seq_show` of fdinfo), with an open file of
/// ours, whose reference the reader holds, and its `seq_file`.
unsafe extern "C" fn show_fdinfo_callback<T: MiscDevice>(
    m: *mut bindings::seq_file,
    file: *mut bindings::file,
) {
    // SAFETY: `private_data` was set by `open_callback`; the fdinfo reader
    // holds a reference on the file, so `release` has not run.
    let device = unsafe { T::Ptr::borrow((*file).private_data) };
    // SAFETY: The VFS's argument to the running `show_fdinfo`, which
    // outlasts `m` (a local of this call).
    let mut m = unsafe { SeqFile::from_raw(m) };
    T::show_fdinfo(device, &mut m);
}
