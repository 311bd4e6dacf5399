// SPDX-License-Identifier: GPL-2.0

//! The device's work queue: which rings need a round, who runs them, and
//! flushing (C's `vhost_worker` with its `work_list`).
//!
//! vhost-net has exactly two kinds of work, "run the RX ring" and "run the
//! TX ring" (the kick and the socket poll of a ring both ask for the same
//! handler), so pending work is a bit mask rather than a list: queueing is
//! one atomic `fetch_or` that is safe from wait-queue callbacks, and work
//! queued many times before it runs runs once, as C's `VHOST_WORK_QUEUED`
//! bit also ensures.
//!
//! # Ordering
//!
//! Wakers: `pending |= bit`, then wake the task. The task (state already
//! `TASK_INTERRUPTIBLE` when its body runs, see `vhost_task_fn`): reads
//! `pending`, and if it is not 0 swaps it to 0 and runs the handlers, else
//! sleeps. Setting the state is a full barrier (`set_current_state`), so
//! the plain read sees every bit set before a waker's wake-up found the task
//! still running; a wake after the read sets the task running, so no work
//! is lost.
//!
//! The task handle is only used under these rules: it is published after
//! the task starts and cleared before the task stops, both under the device
//! mutex; every waker outside that mutex is a poll callback or a zerocopy
//! completion, and all polls are stopped (which waits for running
//! callbacks) and all zerocopy packets drained (which waits for running
//! completions, `kapi::zcopy`) before the handle is cleared.

use crate::kapi::poll::Wake;
use crate::kapi::task::set_running;
use crate::kapi::waitqueue::WaitQueue;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;

/// Run the RX ring.
pub(crate) const WORK_RX: u32 = 1 << 0;
/// Run the TX ring.
pub(crate) const WORK_TX: u32 = 1 << 1;
/// Complete the flushes requested so far.
const WORK_FLUSH: u32 = 1 << 31;

/// Pending work and the means to wake whoever runs it.
#[pin_data]
pub(crate) struct Worker {
    /// `WORK_*` bits queued and not yet taken by the task.
    pending: AtomicU32,
    /// The running thread (see `WorkerThread::raw`), null when none.
    task: AtomicPtr<c_void>,
    /// Whether `task` is a kthread rather than a vhost_task.
    kthread: AtomicBool,
    /// The owner was killed: the task is gone, queueing does nothing.
    killed: AtomicBool,
    /// Flushes requested so far.
    flush_req: AtomicU64,
    /// Flushes completed so far.
    flush_done: AtomicU64,
    /// Flushers sleep here.
    #[pin]
    flushed: WaitQueue,
}

impl Worker {
    /// A worker without a task.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            pending: AtomicU32::new(0),
            task: AtomicPtr::new(core::ptr::null_mut()),
            kthread: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            flush_req: AtomicU64::new(0),
            flush_done: AtomicU64::new(0),
            flushed <- WaitQueue::new(),
        })
    }

    /// Publishes the task that runs the work (null: none). Callers hold the
    /// device mutex and, when clearing, have stopped every poll first.
    pub(crate) fn set_task(&self, raw: *mut c_void, kthread: bool) {
        self.killed.store(false, Ordering::Relaxed);
        self.kthread.store(kthread, Ordering::Relaxed);
        self.task.store(raw, Ordering::SeqCst);
        // Work queued while there was no task woke nobody (see `queue`).
        if !raw.is_null() && self.pending.load(Ordering::SeqCst) != 0 {
            // SAFETY: Just published; the caller keeps it live.
            unsafe { crate::kapi::task::wake_raw(raw, kthread) };
        }
    }

    /// Queues `bits` and wakes the task (C's `vhost_vq_work_queue`).
    /// Returns whether a task will run it.
    ///
    /// Like C (`VHOST_WORK_QUEUED`), only the caller that sets a bit wakes
    /// the task: bits already pending were set by an earlier caller that
    /// woke the task then, and it has not taken them yet; or by one that
    /// found no task, and then `set_task` wakes it when it publishes one
    /// (sequentially consistent: either the setter sees the task or
    /// `set_task` sees the bit). A worker that is already awake costs
    /// `try_to_wake_up` and a run-queue lock otherwise, for every packet
    /// of a busy socket.
    pub(crate) fn queue(&self, bits: u32) -> bool {
        let prev = self.pending.fetch_or(bits, Ordering::SeqCst);
        let task = self.task.load(Ordering::SeqCst);
        if task.is_null() || self.killed.load(Ordering::Acquire) {
            return false;
        }
        if prev & bits == bits {
            return true;
        }
        // SAFETY: The handle is live while published (module docs), and
        // its kind was published before it.
        unsafe { crate::kapi::task::wake_raw(task, self.kthread.load(Ordering::Relaxed)) };
        true
    }

    /// Whether work is queued and not yet taken (C's `vhost_vq_has_work`).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Takes the queued work, for the task's round. Returns 0 if none.
    ///
    /// Called after the task set its sleeping state (a full barrier, see
    /// the module's ordering notes): with nothing queued it answers from a
    /// plain read, without the atomic swap. A wake-up with no work (one
    /// per round, when the task looks once more before sleeping) costs no
    /// locked instruction.
    #[inline]
    pub(crate) fn take(&self) -> Work {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return Work {
                bits: 0,
                flush_req: 0,
            };
        }
        let flush_req = self.flush_req.load(Ordering::Acquire);
        let bits = self.pending.swap(0, Ordering::AcqRel);
        if bits != 0 {
            set_running();
        }
        Work { bits, flush_req }
    }

    /// Completes the flushes a round's work carried.
    pub(crate) fn done(&self, work: &Work) {
        if work.bits & WORK_FLUSH != 0 {
            self.flush_done.fetch_max(work.flush_req, Ordering::AcqRel);
            self.flushed.wake_up_all();
        }
    }

    /// The owner was killed: no more rounds will run. Releases flushers.
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.flush_done
            .fetch_max(self.flush_req.load(Ordering::Acquire), Ordering::AcqRel);
        self.flushed.wake_up_all();
    }

    /// Waits until all work queued before the call has run (C's
    /// `vhost_dev_flush`). Returns at once when no task runs work.
    ///
    /// Callers hold the device mutex, so flushes never overlap: when one
    /// queues `WORK_FLUSH` the previous flush's bit has been taken (its
    /// round completed the ticket), so `queue` finds the bit clear and
    /// wakes the task. Overlapping flushes could lose a ticket: a round
    /// that read `flush_req` before a second flusher's increment would
    /// take that flusher's bit too.
    pub(crate) fn flush(&self) {
        let ticket = self.flush_req.fetch_add(1, Ordering::AcqRel) + 1;
        if !self.queue(WORK_FLUSH) {
            return;
        }
        self.flushed.wait_uninterruptible(|| {
            self.flush_done.load(Ordering::Acquire) >= ticket || self.killed.load(Ordering::Acquire)
        });
    }
}

/// The device's poll entries wake the worker: `token` is the work bit
/// (C's `vhost_poll_wakeup` queueing the poll's work).
impl Wake for Worker {
    #[inline]
    fn wake(&self, token: u32) {
        self.queue(token);
    }
}

/// The work of one round.
pub(crate) struct Work {
    bits: u32,
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
