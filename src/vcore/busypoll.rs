// SPDX-License-Identifier: GPL-2.0

//! The busy-poll loop of a ring (C's `vhost_net_busy_poll`): spin, for up
//! to a budget of microseconds, until a condition holds or something else
//! needs the worker.
//!
//! What needs the kernel (the clock, `need_resched`, a pending signal,
//! queued work, the device being released) comes from a [`PollHost`]; the
//! module's `net.rs` is one, and the host tests run this same loop with a
//! scripted host (tests/unit/src/busypoll_tests.rs): among them, that a
//! release (`stopping`) ends the poll at the next check even when no other
//! exit ever comes true, which the loop before the fix of issue 22 fails.

/// How a busy poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BusyPoll {
    /// The condition came true.
    Ready,
    /// Other work is queued for the worker: yield to it.
    Interrupted,
    /// The budget ran out, the thread should reschedule or handle a
    /// signal, or the device is being released.
    TimedOut,
}

/// What a busy poll asks of its surroundings.
pub(crate) trait PollHost {
    /// The busy-poll clock, in about microseconds.
    fn clock(&self) -> u64;
    /// Whether the current thread should yield the CPU.
    fn need_resched(&self) -> bool;
    /// Whether the current thread has a signal to handle.
    fn signal_pending(&self) -> bool;
    /// Whether other work is queued for the worker.
    fn has_work(&self) -> bool;
    /// Whether the device is being released or reset (its owner waits for
    /// the round in progress).
    fn stopping(&self) -> bool;
}

/// Spins up to `budget_us` microseconds of `h`'s clock until `ready()`
/// holds.
///
/// The checks come in a fixed order: the clock, `need_resched` and a
/// signal end the loop (timed out); then queued work interrupts it, a
/// release times it out (C instead waits out the budget), and `ready()`
/// ends it.
#[inline]
pub(crate) fn busy_poll<H: PollHost>(
    h: &H,
    budget_us: u32,
    mut ready: impl FnMut() -> bool,
) -> BusyPoll {
    let end = h.clock().saturating_add(u64::from(budget_us));
    while h.clock() <= end && !h.need_resched() && !h.signal_pending() {
        if h.has_work() {
            return BusyPoll::Interrupted;
        }
        if h.stopping() {
            // Release waits for this round.
            return BusyPoll::TimedOut;
        }
        if ready() {
            return BusyPoll::Ready;
        }
        core::hint::spin_loop();
    }
    BusyPoll::TimedOut
}
