// SPDX-License-Identifier: GPL-2.0

//! Polling files from the kernel: the kick eventfds and the backend socket
//! wake the worker through wait-queue callbacks (C's `struct vhost_poll`).

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomPinned;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

extern "C" {
    fn vhost_net_rs_vfs_poll(file: *mut c_void, table: *mut bindings::poll_table_struct) -> u32;
    fn vhost_net_rs_init_poll_entry(
        table: *mut bindings::poll_table_struct,
        qproc: unsafe extern "C" fn(
            *mut bindings::file,
            *mut bindings::wait_queue_head,
            *mut bindings::poll_table_struct,
        ),
        wait: *mut bindings::wait_queue_entry,
        func: unsafe extern "C" fn(
            *mut bindings::wait_queue_entry,
            c_uint,
            c_int,
            *mut c_void,
        ) -> c_int,
    );
}

/// `EPOLLIN`.
pub(crate) const EPOLLIN: u32 = 0x1;
/// `EPOLLOUT`.
pub(crate) const EPOLLOUT: u32 = 0x4;
/// `EPOLLERR`.
pub(crate) const EPOLLERR: u32 = 0x8;

/// Storage for a `poll_table` (`{ poll_queue_proc _qproc; __poll_t _key; }`).
///
/// bindgen only sees a forward declaration of `struct poll_table_struct`
/// and makes it zero-sized, so the entry reserves the bytes itself; the
/// shim checks the size at build time.
#[repr(C)]
struct PollTable {
    qproc: *const c_void,
    key: u32,
}

/// Who a [`PollEntry`] wakes: `wake(token)` runs in the waker's context
/// (atomic, under the polled file's wait-queue lock). The entry is generic
/// over it, so the wait-queue callback calls it directly (inlined), not
/// through a function pointer.
pub(crate) trait Wake: Sync {
    /// The polled file has one of the entry's events.
    fn wake(&self, token: u32);
}

/// A wait-queue entry that registers on a file's wait queue and calls
/// `target.wake(token)` when the file reports one of `mask`'s events.
///
/// # Invariants
///
/// - `table` and `wait` are initialised with this module's callbacks.
/// - `wqh` is non-null exactly while `wait` is on that wait queue; it is
///   only changed by `start`/`stop`, whose callers serialise them.
/// - `target` points to a live `T` while the entry is registered.
#[pin_data(PinnedDrop)]
#[repr(C)]
pub(crate) struct PollEntry<T: Wake> {
    #[pin]
    table: Opaque<PollTable>,
    #[pin]
    wait: Opaque<bindings::wait_queue_entry>,
    wqh: UnsafeCell<*mut bindings::wait_queue_head>,
    mask: u32,
    token: u32,
    target: *const T,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The callbacks only read immutable fields; `wqh` is serialised by
// the caller of `start`/`stop` (the virtqueue mutex).
// The target is `Sync` (`Wake`), so sharing the pointer is sound.
unsafe impl<T: Wake> Send for PollEntry<T> {}
// SAFETY: As above.
unsafe impl<T: Wake> Sync for PollEntry<T> {}

impl<T: Wake> PollEntry<T> {
    /// An entry that calls `target.wake(token)` on events in `mask`.
    ///
    /// # Safety
    ///
    /// `target` must point to a live `T` whenever the entry is started.
    pub(crate) unsafe fn new(mask: u32, token: u32, target: *const T) -> impl PinInit<Self> {
        let init = pin_init!(Self {
            table: Opaque::uninit(),
            wait: Opaque::uninit(),
            wqh: UnsafeCell::new(core::ptr::null_mut()),
            mask,
            token,
            target,
            _pin: PhantomPinned,
        });
        init.pin_chain(|this| {
            // SAFETY: Both fields are valid memory of a pinned entry.
            unsafe {
                vhost_net_rs_init_poll_entry(
                    this.table.get().cast(),
                    queue_proc::<T>,
                    this.wait.get(),
                    wake_function::<T>,
                )
            };
            // INVARIANT: initialised with our callbacks.
            Ok(())
        })
    }

    /// Starts polling `file` (C's `vhost_poll_start`): registers on its wait
    /// queue and, if events are already pending, wakes at once. A file that
    /// reports `EPOLLERR` is refused with `EINVAL`. Polling an entry that is
    /// already registered does nothing.
    ///
    /// # Safety
    ///
    /// `file` must stay valid while the entry is registered (until `stop`),
    /// and calls of `start`/`stop` on one entry must be serialised.
    pub(crate) unsafe fn start(&self, file: *mut c_void) -> Result {
        // SAFETY: Serialised by the caller.
        if !unsafe { *self.wqh.get() }.is_null() {
            return Ok(());
        }
        // SAFETY: `file` is valid; `table` is initialised; `queue_proc`
        // records the queue in `wqh`.
        let mask = unsafe { vhost_net_rs_vfs_poll(file, self.table.get().cast()) };
        if mask & self.mask != 0 {
            // SAFETY: `target` is live while started (constructor contract).
            unsafe { &*self.target }.wake(self.token);
        }
        if mask & EPOLLERR != 0 {
            // SAFETY: Serialised by the caller.
            unsafe { self.stop() };
            return Err(EINVAL);
        }
        Ok(())
    }

    /// Stops polling (C's `vhost_poll_stop`). After it returns the wake
    /// function is not running and will not run for this entry.
    ///
    /// # Safety
    ///
    /// Calls of `start`/`stop` on one entry must be serialised, and the
    /// file passed to `start` must still be valid.
    pub(crate) unsafe fn stop(&self) {
        // SAFETY: Serialised by the caller.
        let wqh = unsafe { &mut *self.wqh.get() };
        if !wqh.is_null() {
            // SAFETY: `wait` is on `*wqh` (type invariant); removal takes
            // the queue's lock, so a running wake function finishes first.
            unsafe { bindings::remove_wait_queue(*wqh, self.wait.get()) };
            *wqh = core::ptr::null_mut();
        }
    }
}

#[pinned_drop]
impl<T: Wake> PinnedDrop for PollEntry<T> {
    fn drop(self: Pin<&mut Self>) {
        // Owners stop their entries before dropping them; this only guards
        // against a forgotten stop leaving a dangling wait-queue entry.
        // SAFETY: Exclusive access; the file outlives the registration by
        // the `start` contract.
        unsafe { self.stop() };
    }
}

/// `poll_queue_proc`: `vfs_poll` hands us the file's wait queue.
///
/// # Safety
///
/// Called by `vfs_poll` with the table of a [`PollEntry`].
unsafe extern "C" fn queue_proc<T: Wake>(
    _file: *mut bindings::file,
    wqh: *mut bindings::wait_queue_head,
    table: *mut bindings::poll_table_struct,
) {
    // SAFETY: `table` is the first field of a `#[repr(C)]` `PollEntry`.
    let entry = unsafe { &*table.cast::<PollEntry<T>>() };
    // SAFETY: `start` holds the serialising lock while `vfs_poll` runs.
    unsafe { *entry.wqh.get() = wqh };
    // SAFETY: `wqh` is the file's live wait queue; `wait` is initialised.
    unsafe { bindings::add_wait_queue(wqh, entry.wait.get()) };
}

/// `wait_queue_func_t`: the polled file has events.
///
/// # Safety
///
/// Called by the wait-queue code with the `wait` of a registered entry.
unsafe extern "C" fn wake_function<T: Wake>(
    wait: *mut bindings::wait_queue_entry,
    _mode: c_uint,
    _sync: c_int,
    key: *mut c_void,
) -> c_int {
    let offset = core::mem::offset_of!(PollEntry<T>, wait);
    // SAFETY: `wait` is the `wait` field of a `PollEntry<T>` (container_of):
    // the entry was initialised with this function for its `T`.
    let entry = unsafe { &*wait.cast::<u8>().sub(offset).cast::<PollEntry<T>>() };
    let events = key as usize as u32;
    if events & entry.mask != 0 {
        // SAFETY: `target` is live while the entry is registered.
        unsafe { &*entry.target }.wake(entry.token);
    }
    0
}
