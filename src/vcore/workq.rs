// SPDX-License-Identifier: GPL-2.0

//! The protocol of the device's work queue: queueing work, taking it for a
//! round, flushing, and the owner being killed (C's `vhost_worker` with its
//! `work_list`, `vhost_dev_flush` and `vhost_worker_killed`).
//!
//! This is the atomics alone. What needs the kernel (waking the worker's
//! thread, the flushers' wait queue) comes from a [`Host`]; the module's
//! `worker.rs` is one, and the host tests check this same file, compiled
//! with `loom`'s atomics, over the interleavings (up to a bound of
//! preemptions) of a kicker, flushers, the worker's rounds and sleeps, and
//! a kill (tests/unit/src/workq_loom.rs).
//!
//! vhost-net has exactly two kinds of work, "run the RX ring" and "run the
//! TX ring" (the kick and the socket poll of a ring both ask for the same
//! handler), so pending work is a bit mask rather than a list: queueing is
//! one atomic `fetch_or` that is safe from wait-queue callbacks, and work
//! queued many times before it runs runs once, as C's `VHOST_WORK_QUEUED`
//! bit also ensures. Flushing is one more bit, [`WORK_FLUSH`], with tickets.
//!
//! # Ordering
//!
//! Every write to `pending` is a read-modify-write, so each reads the
//! latest value and continues the release sequence of the ones before.
//!
//! Waking: `pending |= bits`, then wake the task. The task (its state
//! already `TASK_INTERRUPTIBLE`, a full barrier, when it looks with
//! [`WorkQueue::has_pending`]) reads `pending`, and if it is not 0 swaps it to 0
//! ([`WorkQueue::take_found`]; the two are `take` in the model check) and
//! runs a round, else sleeps: the read sees every bit set before a
//! waker's wake-up found the task still running, and a wake after the read
//! sets the task running, so no work is lost.
//!
//! Flushing: a flusher takes a ticket (`flush_req += 1`), then queues
//! [`WORK_FLUSH`] and sleeps until `flush_done` reaches its ticket. A round
//! reads `flush_req` *before* its swap and, when it took [`WORK_FLUSH`],
//! completes the tickets up to that value:
//!
//! - Safe: every completed ticket was taken, with acquire, before the swap,
//!   so the work its flusher queued before flushing was in `pending` at the
//!   swap and was taken by this round or an earlier one. Reading after the
//!   swap instead, a round that took an older [`WORK_FLUSH`] (left by a
//!   flush with no task, or set by an overlapping flusher) would complete
//!   a ticket whose work a later round takes.
//! - Live: a ticket taken between the read and the swap is not completed
//!   by this round, though its [`WORK_FLUSH`] may have been swapped away.
//!   The swap synchronises with every flusher's `fetch_or` before it, so
//!   reading `flush_req` again after the swap sees that ticket; if it
//!   moved, the round puts [`WORK_FLUSH`] back, and the next round (the
//!   task does not sleep after a round with work), whose read of
//!   `flush_req` comes after this swap, completes it. Without that, the
//!   flusher slept forever, holding the device mutex (issue 22,
//!   Documentation/security.rst).
//!
//! Publishing the task ([`WorkQueue::set_task`]) against [`WorkQueue::queue`]:
//! queueing without a task wakes nobody, so publishing reads `pending`
//! with a read-modify-write after setting [`TASK`]: either it sees the
//! queued bit and wakes the task, or the queuer's `fetch_or` comes later,
//! reads from it, and sees the task.

use super::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Run the RX ring.
pub(crate) const WORK_RX: u32 = 1 << 0;
/// Run the TX ring.
pub(crate) const WORK_TX: u32 = 1 << 1;
/// Complete the flushes requested so far.
pub(crate) const WORK_FLUSH: u32 = 1 << 31;

/// [`WorkQueue`] state: a task runs the rounds.
const TASK: u8 = 1 << 0;
/// [`WorkQueue`] state: the owner was killed.
const KILLED: u8 = 1 << 1;

/// What the protocol needs from its surroundings.
pub(crate) trait Host {
    /// Wakes the task that runs the rounds (`wake_up_process`): from a
    /// queueing that set a bit, or a publication that found bits, while a
    /// task is published.
    fn wake_task(&self);

    /// Sleeps, deaf to signals, until `ready()` holds; [`Host::wake_flushed`]
    /// wakes it to look again (a wait queue: a wake between `ready()` and
    /// the sleep is not lost).
    fn wait_flushed(&self, ready: impl FnMut() -> bool);

    /// Wakes every task in [`Host::wait_flushed`].
    fn wake_flushed(&self);
}

/// Pending work, flush tickets and the task's presence.
pub(crate) struct WorkQueue {
    /// `WORK_*` bits queued and not yet taken by the task.
    pending: AtomicU32,
    /// [`TASK`]: a task runs the rounds; [`KILLED`]: the owner was
    /// killed, the task is gone and queueing does nothing. One byte, so
    /// that a queueing reads both with one load.
    state: AtomicU8,
    /// Flushes requested so far (the last ticket given).
    flush_req: AtomicU64,
    /// Flushes completed so far (every ticket up to it).
    flush_done: AtomicU64,
}

impl WorkQueue {
    /// A queue without a task.
    pub(crate) fn new() -> Self {
        Self {
            pending: AtomicU32::new(0),
            state: AtomicU8::new(0),
            flush_req: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
        }
    }

    /// A task now runs the rounds (`true`), or none does (`false`). Callers
    /// serialise these (the device mutex) and, before clearing, stop every
    /// waker but the task itself.
    ///
    /// The task runs before it is published (it is started first), and the
    /// owner can be killed in between: the task then calls
    /// [`WorkQueue::kill`] and exits, and publishing keeps [`KILLED`], so
    /// that queueing and flushing see no task (C sets its worker's `killed`
    /// and never clears it). Storing [`TASK`] here instead left flushers
    /// waiting forever for a task that had exited.
    pub(crate) fn set_task(&self, present: bool, host: &impl Host) {
        if !present {
            self.state.fetch_and(!TASK, Ordering::Release);
            return;
        }
        self.publish_task::<true>(host);
    }

    /// [`WorkQueue::set_task`]`(true, ..)`; overwriting [`KILLED`] unless
    /// `KEEP_KILLED`, the publication before the fix, for the model check
    /// that shows the flush it loses.
    fn publish_task<const KEEP_KILLED: bool>(&self, host: &impl Host) {
        if KEEP_KILLED {
            if self.state.fetch_or(TASK, Ordering::AcqRel) & KILLED != 0 {
                // The task has exited: nobody to wake.
                return;
            }
        } else {
            self.state.store(TASK, Ordering::Release);
        }
        // Work queued while there was no task woke nobody (see `queue`).
        // A read-modify-write reads the latest value (module docs). (A
        // `SeqCst` store and load would do too, but `loom` cannot check
        // `SeqCst` accesses; this is a rare path.)
        if self.pending.fetch_or(0, Ordering::AcqRel) != 0 {
            host.wake_task();
        }
    }

    /// The publication before the fix of the kill before it (see
    /// [`WorkQueue::set_task`]), for the model check.
    #[cfg(test)]
    pub(crate) fn set_task_unfixed(&self, host: &impl Host) {
        self.publish_task::<false>(host);
    }

    /// The task unpublished last has stopped (it will not call
    /// [`WorkQueue::kill`] any more): forgets that it was killed, so that the
    /// next owner's task runs the work (C frees the killed worker with the
    /// owner, and the next owner gets a new one). Callers hold the device
    /// mutex, as for [`WorkQueue::set_task`].
    pub(crate) fn task_stopped(&self) {
        self.state.fetch_and(!KILLED, Ordering::Release);
    }

    /// Queues `bits` and wakes the task (C's `vhost_vq_work_queue`).
    /// Returns whether a task will run it.
    ///
    /// Like C (`VHOST_WORK_QUEUED`), only the caller that sets a bit wakes
    /// the task: bits already pending were set by an earlier caller that
    /// woke the task then, and it has not taken them yet; or by one that
    /// found no task, and then `set_task` wakes it when it publishes one;
    /// or by the task itself, which runs another round before it sleeps
    /// (`take`). A worker that is already awake costs `try_to_wake_up` and
    /// a run-queue lock otherwise, for every packet of a busy socket.
    pub(crate) fn queue(&self, bits: u32, host: &impl Host) -> bool {
        match self.enqueue(bits) {
            Queued::NoTask => false,
            Queued::Pending => true,
            Queued::Wake => {
                host.wake_task();
                true
            }
        }
    }

    /// [`WorkQueue::queue`] without the wake-up: sets `bits` and says
    /// whether the caller must wake the task ([`Queued::Wake`]), for a
    /// caller that wakes it its own way.
    #[inline]
    pub(crate) fn enqueue(&self, bits: u32) -> Queued {
        let prev = self.pending.fetch_or(bits, Ordering::SeqCst);
        if self.state.load(Ordering::Acquire) != TASK {
            return Queued::NoTask;
        }
        if prev & bits == bits {
            return Queued::Pending;
        }
        Queued::Wake
    }

    /// Whether work is queued and not yet taken (C's `vhost_vq_has_work`):
    /// a plain load, no atomic swap. Also the task's look before a round,
    /// with which [`WorkQueue::take`] starts: a wake-up with no work costs
    /// no locked instruction.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// The task's look ([`WorkQueue::has_pending`]) and take
    /// ([`WorkQueue::take_found`]) in one call, as the model check runs
    /// them; the module's task makes the two calls itself, the look in its
    /// thread's loop and the take in its round.
    ///
    /// Takes the queued work, for the task's round: empty if none, and
    /// then the task may sleep; otherwise it calls [`WorkQueue::done`]
    /// after the round and takes again before sleeping.
    ///
    /// Called after the task set its sleeping state (a full barrier, see
    /// the module's ordering notes): with nothing queued it answers from a
    /// plain read, without the atomic swap. A wake-up with no work (one
    /// per round, when the task looks once more before sleeping) costs no
    /// locked instruction.
    #[cfg(test)]
    pub(crate) fn take(&self) -> Work {
        self.take_with::<true, false>()
    }

    /// The ordering before the fix of issue 22: a ticket taken between the
    /// read of `flush_req` and the swap is lost. For the model check that
    /// shows it.
    #[cfg(test)]
    pub(crate) fn take_unfixed(&self) -> Work {
        self.take_with::<false, false>()
    }

    /// `flush_req` read after the swap: completes tickets whose work a
    /// later round takes. For the model check that shows it.
    #[cfg(test)]
    pub(crate) fn take_late_read(&self) -> Work {
        self.take_with::<false, true>()
    }

    /// [`WorkQueue::take`]; the variants for the model check put a
    /// [`WORK_FLUSH`] that may belong to a later ticket back only if
    /// `REQUEUE`, and read `flush_req` after the swap if `LATE`.
    #[cfg(test)]
    fn take_with<const REQUEUE: bool, const LATE: bool>(&self) -> Work {
        if !self.has_pending() {
            return Work {
                bits: 0,
                flush_req: 0,
            };
        }
        self.take_swap::<REQUEUE, LATE>()
    }

    /// [`WorkQueue::take`] by the task once its look found work:
    /// the task is the only one that takes work (everyone else only adds
    /// bits), so the work it saw is still there, and this takes it without
    /// looking first. Same calling context as `take`.
    #[inline]
    pub(crate) fn take_found(&self) -> Work {
        self.take_swap::<true, false>()
    }

    /// The swap of [`WorkQueue::take_with`], after its look.
    #[inline]
    fn take_swap<const REQUEUE: bool, const LATE: bool>(&self) -> Work {
        if LATE {
            let bits = self.pending.swap(0, Ordering::AcqRel);
            let flush_req = self.flush_req.load(Ordering::Acquire);
            return Work { bits, flush_req };
        }
        // Before the swap (module docs): the tickets this round completes.
        let flush_req = self.flush_req.load(Ordering::Acquire);
        let bits = self.pending.swap(0, Ordering::AcqRel);
        if REQUEUE && bits & WORK_FLUSH != 0 && self.flush_req.load(Ordering::Acquire) != flush_req
        {
            // A ticket taken since the read, whose bit the swap may have
            // taken: the next round completes it. The task reads this
            // itself, so no wake-up is needed.
            self.pending.fetch_or(WORK_FLUSH, Ordering::Relaxed);
        }
        Work { bits, flush_req }
    }

    /// Completes the flushes a round's work carried, after the round.
    pub(crate) fn done(&self, work: &Work, host: &impl Host) {
        if work.bits & WORK_FLUSH != 0 {
            self.flush_done.fetch_max(work.flush_req, Ordering::AcqRel);
            host.wake_flushed();
        }
    }

    /// The owner was killed: no more rounds will run (called by the task,
    /// instead of a round). Releases flushers.
    pub(crate) fn kill(&self, host: &impl Host) {
        self.state.fetch_or(KILLED, Ordering::Release);
        self.flush_done
            .fetch_max(self.flush_req.load(Ordering::Acquire), Ordering::AcqRel);
        host.wake_flushed();
    }

    /// Waits until all work queued before the call has been taken by rounds
    /// that completed (C's `vhost_dev_flush`). Returns at once when no task
    /// runs work, and once the owner is killed.
    ///
    /// The module's callers hold the device mutex, as C's do, but
    /// overlapping flushes are correct too (checked by the model): a
    /// flusher whose `fetch_or` found the bit already set relies on the
    /// round that takes it, which puts it back if the ticket is later than
    /// the ones it completes.
    pub(crate) fn flush(&self, host: &impl Host) {
        let ticket = self.flush_req.fetch_add(1, Ordering::AcqRel) + 1;
        if !self.queue(WORK_FLUSH, host) {
            return;
        }
        host.wait_flushed(|| {
            self.flush_done.load(Ordering::Acquire) >= ticket
                || self.state.load(Ordering::Acquire) & KILLED != 0
        });
    }
}

/// What [`WorkQueue::enqueue`] found.
pub(crate) enum Queued {
    /// No task runs the work (none published, or the owner was killed).
    NoTask,
    /// The bits were already pending: whoever set them woke the task, or
    /// the task will take them before it sleeps.
    Pending,
    /// This caller set a bit: it must wake the task.
    Wake,
}

/// The work of one round.
pub(crate) struct Work {
    /// The `WORK_*` bits taken.
    bits: u32,
    /// The tickets the round completes if it took [`WORK_FLUSH`].
    flush_req: u64,
}

impl Work {
    /// Whether there is anything to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// Whether the ring work `bit` is part of this round.
    pub(crate) fn has(&self, bit: u32) -> bool {
        self.bits & bit != 0
    }
}
