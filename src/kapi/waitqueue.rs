// SPDX-License-Identifier: GPL-2.0

//! A wait queue that can be polled (`poll_wait`, through
//! [`super::poll::PollTable::register`]) and slept on.
//!
//! The 6.12 `CondVar` keeps its `wait_queue_head` private, so it cannot be
//! handed to `poll_wait`; this is the same object with that door open.

use super::shim::{vhost_net_rs_init_waitqueue_head, vhost_net_rs_wake_up_pollfree};
use super::task::synchronize_rcu;
use core::ffi::c_void;
use core::marker::PhantomPinned;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

/// A `struct wait_queue_head`.
///
/// Pollers (`poll_wait` through [`super::poll::PollTable::register`]) may
/// stay on it after their `poll` returned (epoll), until their file is
/// released. Dropping it detaches any that are left (`wake_up_pollfree`)
/// and waits for them to let go (an RCU grace period), as upstream's
/// `PollCondVar` does, so a poller never outlives the queue. The grace
/// period is waited for whenever the queue was ever polled, even if no
/// poller is left on it: one removing itself (epoll's
/// `ep_remove_wait_queue`, an RCU reader) may have left the list and still
/// hold the queue's lock, which is why the kernel asks for an RCU-delayed
/// free after `wake_up_pollfree` in every case. A queue never polled (the
/// flushers') is dropped without either.
#[pin_data(PinnedDrop)]
pub(crate) struct WaitQueue {
    #[pin]
    wq: Opaque<bindings::wait_queue_head>,
    /// Whether [`super::poll::PollTable::register`] was ever given it.
    polled: AtomicBool,
    /// The head is a self-referential list: it must not move.
    #[pin]
    _pin: PhantomPinned,
}

// SAFETY: A wait queue head has its own lock; it may be used from any task.
unsafe impl Send for WaitQueue {}
// SAFETY: As above, concurrent use is what it is for.
unsafe impl Sync for WaitQueue {}

impl WaitQueue {
    /// An initialiser for an empty wait queue. All of ours share one
    /// lockdep class (the shim's `init_waitqueue_head` call site): they are
    /// never nested.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            _pin: PhantomPinned,
            polled: AtomicBool::new(false),
            // SAFETY: `slot` is valid memory for a head while the closure runs.
            wq <- Opaque::ffi_init(|slot| unsafe { vhost_net_rs_init_waitqueue_head(slot) }),
        })
    }

    /// Records that a poller may be on the queue (see the type's docs).
    pub(super) fn mark_polled(&self) {
        self.polled.store(true, Ordering::Relaxed);
    }

    /// `wake_up_interruptible_poll(wq, mask)`.
    pub(crate) fn wake_up_poll(&self, mask: u32) {
        // SAFETY: The head is initialised; the key is the poll mask, as
        // `poll_to_key` encodes it.
        unsafe {
            bindings::__wake_up(
                self.wq.get(),
                bindings::TASK_INTERRUPTIBLE,
                1,
                mask as usize as *mut c_void,
            )
        };
    }

    /// The head, for `poll_wait`.
    pub(super) fn as_raw(&self) -> *mut bindings::wait_queue_head {
        self.wq.get()
    }

    /// Sleeps, deaf to signals, until `ready()` holds (C's
    /// `wait_for_completion`). `ready` must not sleep, as below.
    pub(crate) fn wait_uninterruptible(&self, mut ready: impl FnMut() -> bool) {
        let wait = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `wait` is valid memory for an entry.
        unsafe { bindings::init_wait(wait.get()) };
        loop {
            // SAFETY: Both are initialised; `wait` stays put until
            // `finish_wait` below.
            unsafe {
                bindings::prepare_to_wait(
                    self.wq.get(),
                    wait.get(),
                    bindings::TASK_UNINTERRUPTIBLE as i32,
                )
            };
            if ready() {
                break;
            }
            // SAFETY: Sleeping is allowed in the process context we run in.
            unsafe { bindings::schedule() };
        }
        // SAFETY: `wait` was prepared on this queue.
        unsafe { bindings::finish_wait(self.wq.get(), wait.get()) };
    }

    /// Wakes every sleeper (`wake_up_all`).
    pub(crate) fn wake_up_all(&self) {
        // SAFETY: The head is initialised; no key.
        unsafe {
            bindings::__wake_up(
                self.wq.get(),
                bindings::TASK_NORMAL,
                0,
                core::ptr::null_mut(),
            )
        };
    }

    /// Sleeps until `ready()` holds or a signal arrives (`ERESTARTSYS`).
    ///
    /// `ready` runs with the task state set to `TASK_INTERRUPTIBLE`, so it
    /// must not sleep: atomics or spinlocks only.
    pub(crate) fn wait_interruptible(&self, mut ready: impl FnMut() -> bool) -> Result {
        let wait = Opaque::<bindings::wait_queue_entry>::uninit();
        // SAFETY: `wait` is valid memory for an entry.
        unsafe { bindings::init_wait(wait.get()) };
        let r = loop {
            // SAFETY: Both are initialised; `wait` stays put until
            // `finish_wait` below.
            unsafe {
                bindings::prepare_to_wait(
                    self.wq.get(),
                    wait.get(),
                    bindings::TASK_INTERRUPTIBLE as i32,
                )
            };
            if ready() {
                break Ok(());
            }
            if kernel::current!().signal_pending() {
                break Err(ERESTARTSYS);
            }
            // SAFETY: Sleeping is allowed in the process context we run in.
            unsafe { bindings::schedule() };
        };
        // SAFETY: `wait` was prepared on this queue.
        unsafe { bindings::finish_wait(self.wq.get(), wait.get()) };
        r
    }
}

#[pinned_drop]
impl PinnedDrop for WaitQueue {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The head is initialised; nobody else uses it any more
        // (exclusive access) but pollers, which this detaches.
        let active = unsafe { vhost_net_rs_wake_up_pollfree(self.wq.get()) };
        // Exclusive access: every `register` happened before this load.
        if active || self.polled.load(Ordering::Relaxed) {
            // Pollers free their entries, and leave the queue's lock, in
            // RCU read-side sections.
            synchronize_rcu();
        }
    }
}
