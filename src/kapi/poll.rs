// SPDX-License-Identifier: GPL-2.0

//! Polling files from the kernel: the kick eventfds and the backend socket
//! wake the worker through wait-queue callbacks (C's `struct vhost_poll`),
//! and the `poll` file operation's table ([`PollTable`]).

use super::rcu;
use super::shim::{vhost_net_rs_get_file, vhost_net_rs_init_poll_entry};
use super::shim::{vhost_net_rs_poll_wait, vhost_net_rs_vfs_poll};
use super::waitqueue::WaitQueue;
use crate::vcore::diag::Counter;
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_uint, c_void};
use core::marker::{PhantomData, PhantomPinned};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

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
struct PollTableStorage {
    qproc: *const c_void,
    key: u32,
}

/// The poll table the VFS passes to the `poll` file operation of one of
/// our files, for the duration of that call (`'a`): see
/// [`super::miscdev::MiscDevice::poll`].
///
/// # Invariants
///
/// `file` is the file being polled and `table` its poll table (possibly
/// null), both valid during `'a`.
pub(crate) struct PollTable<'a> {
    file: *mut bindings::file,
    table: *mut bindings::poll_table_struct,
    _call: PhantomData<&'a ()>,
}

impl PollTable<'_> {
    /// Wraps the arguments of a `poll` file operation.
    ///
    /// # Safety
    ///
    /// `file` and `table` are what the VFS passed to the running `poll`
    /// file operation, which lasts at least as long as the returned value.
    pub(super) unsafe fn from_raw(
        file: *mut bindings::file,
        table: *mut bindings::poll_table_struct,
    ) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            file,
            table,
            _call: PhantomData,
        }
    }

    /// `poll_wait(file, wq, table)`: the poller is woken through `wq`.
    ///
    /// `wq` must live as long as the polled file: `select`/`poll` keep
    /// their entry on it until the syscall ends (holding a reference to
    /// the file, not to `wq`), and `pollwake` ignores `POLLFREE`. A
    /// [`WaitQueue`] that was registered detaches epoll's entries before
    /// it is freed (`wake_up_pollfree`, then an RCU grace period), as the
    /// kernel requires of a wait queue that may die before the file. The
    /// one caller registers `Msgs::wait`, part of the file's private data.
    /// (Upstream's `PollCondVar::register_wait` has the same requirement,
    /// unchecked: a safe caller could break it by registering a queue that
    /// dies first; ours does not.)
    pub(crate) fn register(&self, wq: &WaitQueue) {
        wq.mark_polled();
        // SAFETY: `file` and `table` are the running poll's (type
        // invariant); the head is initialised and outlives its pollers
        // (see above).
        unsafe { vhost_net_rs_poll_wait(self.file, wq.as_raw(), self.table) };
    }
}

/// A file a [`PollEntry`] can poll.
///
/// # Safety
///
/// [`PollFile::file_ptr`] returns a valid `struct file` that stays valid
/// at least as long as `self` is borrowed.
pub(crate) unsafe trait PollFile {
    /// The file.
    fn file_ptr(&self) -> *mut bindings::file;
}

/// Who a [`PollEntry`] wakes: `wake(token)` runs in the waker's context
/// (atomic, under the polled file's wait-queue lock). The entry is generic
/// over it, so the wait-queue callback calls it directly (inlined), not
/// through a function pointer.
pub(crate) trait Wake: Sync + Send {
    /// The polled file has one of the entry's events.
    fn wake(&self, token: u32);

    /// [`Wake::wake`] from inside an RCU read-side critical section (the
    /// wait-queue callback's), for a target that would open one.
    #[inline]
    fn wake_in_rcu(&self, token: u32, _rcu: &rcu::Reader) {
        self.wake(token);
    }
}

/// The right to start and stop one [`PollEntry`]: a field of the data
/// that already serialises the entry's users (a ring, under its mutex).
/// The first [`PollEntry::start`] binds the entry to this owner's address;
/// from then on only a `&mut` to that address (which no one else can hold
/// meanwhile) starts or stops it, as the kernel crate's `LockedBy` checks
/// its owner, at the cost of a compare instead of a lock of its own.
///
/// Not zero-sized, so that its address is its own.
pub(crate) struct PollOwner {
    _not_zero_sized: u8,
}

impl PollOwner {
    /// An owner, bound to no entry yet.
    pub(crate) const fn new() -> Self {
        Self { _not_zero_sized: 0 }
    }
}

/// What a [`PollEntry`] is registered on, touched only by the holder of
/// its owner.
struct Registration {
    /// The wait queue `wait` is on; null when it is on none.
    wqh: *mut bindings::wait_queue_head,
    /// The last file polled, on which the entry owns a reference while
    /// it is non-null (it keeps the wait queue alive). A pause keeps it,
    /// so that the next start on the same file takes no new one; a stop
    /// drops it.
    file: *mut bindings::file,
}

/// A wait-queue entry that registers on a file's wait queue and calls
/// `target.wake(token)` when the file reports one of `mask`'s events.
///
/// [`PollEntry::start`], [`PollEntry::pause`] and [`PollEntry::stop`] are
/// safe for any caller: they take the `&mut` [`PollOwner`] the entry is
/// bound to (any other owner is refused), so two of them never run at
/// once; the entry holds a reference on the polled file from `start` to
/// `stop`, so the wait queue cannot go away under it, and owns a counted
/// reference on its target.
///
/// # Invariants
///
/// - `table` and `wait` are initialised with this module's callbacks for
///   `T`, and `table` is the first field (`queue_proc` finds the entry
///   from it).
/// - `owner` is null or the address of the [`PollOwner`] the entry is
///   bound to, and never changes once set.
/// - `reg` is only accessed by a holder of a `&mut` to that owner (in
///   `start`, `pause` and `stop`; `queue_proc` runs inside `vfs_poll`,
///   called by `start`) or with exclusive access to the entry (drop). Two
///   `&mut` to one address cannot be live at once, and handing one to
///   another task synchronises, so these accesses are ordered.
/// - `reg.file` is null or a file on which we own a reference.
/// - `reg.wqh` is non-null exactly while `wait` is on that wait queue, and
///   then `reg.file` is the (non-null) file it belongs to.
#[pin_data(PinnedDrop)]
#[repr(C)]
pub(crate) struct PollEntry<T: Wake> {
    #[pin]
    table: Opaque<PollTableStorage>,
    #[pin]
    wait: Opaque<bindings::wait_queue_entry>,
    owner: AtomicPtr<PollOwner>,
    reg: UnsafeCell<Registration>,
    mask: u32,
    token: u32,
    target: Arc<T>,
    /// Wake-ups with one of `mask`'s events (for a kick eventfd: the
    /// guest's kicks). Written only by `wake_function`, which runs under
    /// the polled wait queue's lock (entries move to another queue only
    /// after leaving this one under its lock), so a load and a store
    /// suffice (src/vcore/diag.rs).
    wakes: Counter,
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: The callbacks only read immutable fields and the `Sync + Send`
// target; `reg` is only touched by the holder of the owner (type
// invariant), and the file reference it holds may be dropped from any
// task.
unsafe impl<T: Wake> Send for PollEntry<T> {}
// SAFETY: As above.
unsafe impl<T: Wake> Sync for PollEntry<T> {}

impl<T: Wake> PollEntry<T> {
    /// An entry that calls `target.wake(token)` on events in `mask`.
    pub(crate) fn new(mask: u32, token: u32, target: Arc<T>) -> impl PinInit<Self> {
        let init = pin_init!(Self {
            table: Opaque::uninit(),
            wait: Opaque::uninit(),
            owner: AtomicPtr::new(core::ptr::null_mut()),
            reg: UnsafeCell::new(Registration {
                wqh: core::ptr::null_mut(),
                file: core::ptr::null_mut(),
            }),
            mask,
            token,
            target,
            wakes: Counter::default(),
            _pin: PhantomPinned,
        });
        init.pin_chain(|this| {
            // SAFETY: Both fields are valid memory of a pinned entry.
            unsafe {
                vhost_net_rs_init_poll_entry(
                    this.table.get().cast(),
                    Some(queue_proc::<T>),
                    this.wait.get(),
                    Some(wake_function::<T>),
                )
            };
            // INVARIANT: initialised with our callbacks.
            Ok(())
        })
    }

    /// Starts polling `file` (C's `vhost_poll_start`): registers on its wait
    /// queue and, if events are already pending, wakes at once. A file that
    /// reports `EPOLLERR` is refused with `EINVAL`. Polling an entry that is
    /// already registered does nothing. The first start binds the entry to
    /// `owner`; another owner gets `EINVAL`.
    pub(crate) fn start(&self, owner: &mut PollOwner, file: &impl PollFile) -> Result {
        if !self.bind(owner) {
            return Err(EINVAL);
        }
        // SAFETY: We hold the owner (type invariant).
        let reg = unsafe { &mut *self.reg.get() };
        if !reg.wqh.is_null() {
            return Ok(());
        }
        let file = file.file_ptr();
        // A paused entry still holds its file: polling that file again
        // takes no reference. Equal addresses are the same file: ours is
        // alive (we hold it) and so is the caller's (`PollFile`).
        if reg.file != file {
            if !reg.file.is_null() {
                // SAFETY: A reference we own (type invariant), no longer
                // needed: `wqh` is null. Never the file's last while its
                // user holds it; if it is, `fput` defers the release.
                unsafe { bindings::fput(reg.file) };
            }
            // SAFETY: `file` is valid while borrowed (`PollFile`); the
            // entry keeps its own reference from here until `stop_locked`
            // or a start on another file.
            unsafe { vhost_net_rs_get_file(file) };
            reg.file = file;
        }
        // SAFETY: `file` is valid; `table` is initialised; `queue_proc`
        // records the queue in `reg.wqh` (we hold the owner it needs).
        let mask = unsafe { vhost_net_rs_vfs_poll(file, self.table.get().cast()) };
        if mask & self.mask != 0 {
            self.target.wake(self.token);
        }
        if mask & EPOLLERR != 0 {
            // SAFETY: We hold the owner.
            unsafe { self.stop_locked() };
            return Err(EINVAL);
        }
        // SAFETY: We hold the owner.
        if unsafe { (*self.reg.get()).wqh }.is_null() {
            // The file did not call `poll_wait`: nothing to keep.
            // SAFETY: We hold the owner.
            unsafe { self.stop_locked() };
        }
        Ok(())
    }

    /// How many times the polled file woke the entry with one of its
    /// events (read racily: a snapshot).
    pub(crate) fn wakes(&self) -> u64 {
        self.wakes.get()
    }

    /// Stops polling (C's `vhost_poll_stop`) and lets go of the file.
    /// After it returns the wake function is not running and will not run
    /// for this entry. Does nothing for an owner the entry is not bound to.
    pub(crate) fn stop(&self, owner: &mut PollOwner) {
        if self.bound_to(owner) {
            // SAFETY: We hold the owner (type invariant).
            unsafe { self.stop_locked() };
        }
    }

    /// Stops polling as [`PollEntry::stop`] does, but keeps the reference
    /// on the file, for a round that starts polling the same file again
    /// when it ends (C's `vhost_net_disable_vq` in `handle_rx`, whose
    /// `vhost_poll_start` takes no reference at all): the pair then costs
    /// no atomic operation on the file. [`PollEntry::stop`] or a start on
    /// another file drops the reference.
    #[inline]
    pub(crate) fn pause(&self, owner: &mut PollOwner) {
        if self.bound_to(owner) {
            // SAFETY: We hold the owner (type invariant).
            unsafe { self.unregister() };
        }
    }

    /// Takes `wait` off the wait queue it is on, if any.
    ///
    /// # Safety
    ///
    /// The caller holds the owner (or has exclusive access to the entry).
    #[inline]
    unsafe fn unregister(&self) {
        // SAFETY: Guaranteed by the caller.
        let reg = unsafe { &mut *self.reg.get() };
        if !reg.wqh.is_null() {
            // SAFETY: `wait` is on `*wqh` (type invariant), which our file
            // reference keeps alive; removal takes the queue's lock, so a
            // running wake function finishes first.
            unsafe { bindings::remove_wait_queue(reg.wqh, self.wait.get()) };
            reg.wqh = core::ptr::null_mut();
        }
    }

    /// Whether the entry is bound to `owner`.
    #[inline]
    fn bound_to(&self, owner: &PollOwner) -> bool {
        core::ptr::eq(self.owner.load(Ordering::Relaxed), owner)
    }

    /// Binds the entry to `owner` if it has none; whether `owner` is its
    /// owner now.
    #[inline]
    fn bind(&self, owner: &mut PollOwner) -> bool {
        let p: *mut PollOwner = owner;
        let cur = self.owner.load(Ordering::Relaxed);
        if core::ptr::eq(cur, p) {
            return true;
        }
        // INVARIANT: set once, from null.
        cur.is_null()
            && self
                .owner
                .compare_exchange(cur, p, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// # Safety
    ///
    /// The caller holds the owner (or has exclusive access to the entry).
    unsafe fn stop_locked(&self) {
        // SAFETY: Guaranteed by the caller.
        unsafe { self.unregister() };
        // SAFETY: Guaranteed by the caller.
        let reg = unsafe { &mut *self.reg.get() };
        if !reg.file.is_null() {
            // SAFETY: We own this reference (taken in `start`). It is
            // never the file's last while a caller still holds the file it
            // passed to `start`; if it is, `fput` defers the release.
            unsafe { bindings::fput(reg.file) };
            reg.file = core::ptr::null_mut();
        }
    }
}

#[pinned_drop]
impl<T: Wake> PinnedDrop for PollEntry<T> {
    fn drop(self: Pin<&mut Self>) {
        // Owners stop their entries before dropping them; this only guards
        // against a forgotten stop leaving a dangling wait-queue entry.
        // SAFETY: `self` is exclusive here.
        unsafe { self.stop_locked() };
    }
}

/// `poll_queue_proc`: `vfs_poll` hands us the file's wait queue.
///
/// # Safety
///
/// Called by `vfs_poll` with the table of a [`PollEntry`], from `start`,
/// which holds the entry's owner.
unsafe extern "C" fn queue_proc<T: Wake>(
    _file: *mut bindings::file,
    wqh: *mut bindings::wait_queue_head,
    table: *mut bindings::poll_table_struct,
) {
    // SAFETY: `table` is the first field of a `#[repr(C)]` `PollEntry`.
    let entry = unsafe { &*table.cast::<PollEntry<T>>() };
    // SAFETY: `start` holds the entry's owner while `vfs_poll` runs.
    let reg = unsafe { &mut *entry.reg.get() };
    if !reg.wqh.is_null() {
        // A file with a second queue: C's vhost_poll keeps the first.
        return;
    }
    reg.wqh = wqh;
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
    // the entry was initialised with this function for its `T`, and it is
    // alive while registered (its drop unregisters).
    let entry = unsafe { &*wait.cast::<u8>().sub(offset).cast::<PollEntry<T>>() };
    let events = key as usize as u32;
    if events & entry.mask != 0 {
        entry.wakes.add(1);
        // SAFETY: The wait-queue code calls us with the queue's lock held
        // by `spin_lock_irqsave` (`__wake_up_common`), until we return: a
        // read-side critical section (`kapi/rcu.rs`).
        let rcu = unsafe { rcu::Reader::assume() };
        entry.target.wake_in_rcu(entry.token, &rcu);
    }
    0
}
