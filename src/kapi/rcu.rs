// SPDX-License-Identifier: GPL-2.0

//! RCU read-side critical sections as a type. [`Reader`] is the proof a
//! function takes that it runs inside one, so that it may read a pointer
//! published under RCU (C's `rcu_dereference`) without opening a section
//! of its own: [`read`] opens one, and the kernel's own contexts that are
//! already readers make one where they begin (a wait-queue callback:
//! `kapi/poll.rs`).
//!
//! What counts as a reader: since Linux 4.20 RCU has one flavour, and
//! `synchronize_rcu` waits for every region with preemption, softirqs or
//! interrupts disabled as for `rcu_read_lock` (Documentation/RCU/
//! whatisRCU.rst); a `spinlock_t` held with `spin_lock_irqsave` is such a
//! region, and on `PREEMPT_RT`, where it sleeps, `rt_spin_lock` takes
//! `rcu_read_lock` itself.

use super::shim::{vhost_net_rs_rcu_read_lock, vhost_net_rs_rcu_read_unlock};
use core::marker::PhantomData;

/// Proof that the caller runs inside an RCU read-side critical section
/// for as long as the value is borrowed.
///
/// # Invariants
///
/// A `Reader` exists only inside a read-side critical section that lasts
/// at least until it is dropped, on the task that made it (it is neither
/// `Send` nor `Sync`, and not `Clone`).
pub(crate) struct Reader {
    _not_send: PhantomData<*mut ()>,
}

impl Reader {
    /// A reader for the current context.
    ///
    /// # Safety
    ///
    /// The caller is inside an RCU read-side critical section (see the
    /// module documentation) that lasts until the returned value is
    /// dropped.
    #[inline(always)]
    pub(super) unsafe fn assume() -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            _not_send: PhantomData,
        }
    }
}

/// Runs `f` inside `rcu_read_lock()`/`rcu_read_unlock()`. `f` gets the
/// reader by reference and cannot keep it.
#[inline]
pub(crate) fn read<R>(f: impl FnOnce(&Reader) -> R) -> R {
    // SAFETY: Opens a read-side critical section, closed below.
    unsafe { vhost_net_rs_rcu_read_lock() };
    let r = {
        // SAFETY: Inside the section opened above; the reader is dropped
        // at the end of this block, before the unlock.
        let reader = unsafe { Reader::assume() };
        f(&reader)
    };
    // SAFETY: Closes the section opened above.
    unsafe { vhost_net_rs_rcu_read_unlock() };
    r
}
