// SPDX-License-Identifier: GPL-2.0

//! The order in which a device's release (or `VHOST_RESET_OWNER`) stops
//! its worker, so that nothing wakes the worker's task once it is freed.
//!
//! A zerocopy completion runs in an RCU read-side section and wakes the
//! task it loads from the work queue; a ring with a backend may arm new
//! zerocopy packets in any round, a flush's included. Hence:
//!
//! 1. [`TeardownHost::detach_rings`]: every ring loses its polls and its
//!    backend (under its mutex, after any round in progress): no packet is
//!    armed from then on;
//! 2. [`TeardownHost::drain_completions`]: every packet in flight has
//!    completed, and the completions have left their read-side sections;
//! 3. [`TeardownHost::flush`]: the worker has run what they queued;
//! 4. [`TeardownHost::unpublish_task`], then
//!    [`TeardownHost::grace_period`]: whoever loaded the task before it
//!    was cleared has returned;
//! 5. [`TeardownHost::stop_task`]: only then is the task stopped and freed;
//!    the work queue forgets that it was killed (`WorkQueue::task_stopped`).
//!
//! Before the fix of issue 22 the backends stayed attached through the
//! flush (whose round could arm a packet that completes later) and the
//! task was freed without a grace period. The host tests check this
//! order with `loom` against a model of the rings, the completions and
//! RCU, and show the old one waking a freed task
//! (tests/unit/src/teardown_loom.rs).

/// The steps of a teardown, provided by the kernel glue (`dev.rs`) or by a
/// model.
pub(crate) trait TeardownHost {
    /// Takes each ring's polls and backend away.
    fn detach_rings(&mut self);
    /// Waits for every zerocopy completion, read-side sections included.
    fn drain_completions(&mut self);
    /// Waits for the worker to run the work queued so far.
    fn flush(&mut self);
    /// Clears the task the work queue wakes.
    fn unpublish_task(&mut self);
    /// Waits for an RCU grace period.
    fn grace_period(&mut self);
    /// Stops and frees the worker's task.
    fn stop_task(&mut self);
}

/// Runs the steps of `h` in the order described in the module docs.
pub(crate) fn teardown<H: TeardownHost>(h: &mut H) {
    h.detach_rings();
    h.drain_completions();
    h.flush();
    h.unpublish_task();
    h.grace_period();
    h.stop_task();
}
