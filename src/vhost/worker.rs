// SPDX-License-Identifier: GPL-2.0

//! The device's work queue in the kernel: the protocol of
//! `vcore::workq` (which rings need a round, taking them, flushing, the
//! owner being killed; its module docs give the ordering) with the task
//! that runs the rounds and the flushers' wait queue (C's `vhost_worker`).
//!
//! The task is published to wakers through a [`TaskSlot`], which owns it:
//! it is published after the task starts and unpublished before the task
//! stops, both under the device mutex, and the slot stops it only after an
//! RCU grace period (its waker loads it under RCU), so waking is safe from
//! any context. The device's teardown (`vcore::teardown`) still orders its
//! steps so that no poll or zerocopy completion has work for the task once
//! it is unpublished: every poll is stopped, every ring's backend detached
//! and every zerocopy packet drained first (`VhostNet::cleanup`).
//!
//! The task looks for work ([`Worker::has_pending`]) with its state
//! `TASK_INTERRUPTIBLE` (`vhost_task_fn`, `kthread_trampoline`:
//! `set_current_state`, a full barrier), and sleeps only when it found
//! none; otherwise it takes the work ([`Worker::take_found`]), runs the
//! round and calls [`Worker::done`]. The look and the take together are
//! `vcore::workq`'s `take`, which the model check runs.
//!
//! The poll entries wake the task from their wait-queue callbacks, which
//! are RCU readers already (`kapi/rcu.rs`); every other waker opens a
//! read-side section for the wake-up.

use crate::kapi::poll::Wake;
use crate::kapi::rcu;
use crate::kapi::task::{set_running, TaskSlot, Unpublished, WorkerThread};
use crate::kapi::waitqueue::WaitQueue;
use crate::vcore::workq::Queued;
use crate::vcore::workq::{Host, WorkQueue};
pub(crate) use crate::vcore::workq::{Work, WORK_RX, WORK_TX};
use kernel::prelude::*;

/// Pending work and the means to wake whoever runs it.
#[pin_data]
pub(crate) struct Worker {
    /// The protocol's atomics.
    q: WorkQueue,
    /// The running thread, for wakers.
    #[pin]
    task: TaskSlot,
    /// Flushers sleep here.
    #[pin]
    flushed: WaitQueue,
}

impl Worker {
    /// A worker without a task.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            q: WorkQueue::new(),
            task <- TaskSlot::new(),
            flushed <- WaitQueue::new(),
        })
    }

    /// Publishes the task that runs the work. Callers hold the device
    /// mutex.
    pub(crate) fn publish(&self, task: WorkerThread) {
        // Before the queue publishes it (release), so every waker that
        // sees a task finds this one.
        self.task.publish(task);
        self.q.set_task(true, self);
    }

    /// Unpublishes the task: the work queue wakes none from now on. The
    /// task stops when the result is dropped, after an RCU grace period.
    /// Callers hold the device mutex and have stopped every poll first.
    pub(crate) fn unpublish(&self) -> Option<Unpublished> {
        self.q.set_task(false, self);
        self.task.unpublish()
    }

    /// The task unpublished last has stopped (dropped its `Unpublished`):
    /// the next task starts as if its owner was never killed. Callers hold
    /// the device mutex.
    pub(crate) fn task_stopped(&self) {
        self.q.task_stopped();
    }

    /// Queues `bits` and wakes the task if it set one (C's
    /// `vhost_vq_work_queue`). Returns whether a task will run it.
    pub(crate) fn queue(&self, bits: u32) -> bool {
        self.q.queue(bits, self)
    }

    /// Whether work is queued and not yet taken (C's `vhost_vq_has_work`):
    /// a plain load. Also the task's look for work, with its state
    /// `TASK_INTERRUPTIBLE` set (a full barrier): see `vcore::workq`.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.q.has_pending()
    }

    /// Takes the work the task's look ([`Worker::has_pending`]) found, for its
    /// round, which runs with the task state `TASK_RUNNING`.
    #[inline]
    pub(crate) fn take_found(&self) -> Work {
        let work = self.q.take_found();
        set_running();
        work
    }

    /// Completes the flushes a round's work carried.
    pub(crate) fn done(&self, work: &Work) {
        self.q.done(work, self);
    }

    /// The owner was killed: no more rounds will run. Releases flushers.
    pub(crate) fn kill(&self) {
        self.q.kill(self);
    }

    /// Waits until all work queued before the call has run (C's
    /// `vhost_dev_flush`). Returns at once when no task runs work.
    pub(crate) fn flush(&self) {
        self.q.flush(self);
    }
}

impl Host for Worker {
    fn wake_task(&self) {
        rcu::read(|rcu| self.task.wake(rcu));
    }

    fn wait_flushed(&self, ready: impl FnMut() -> bool) {
        self.flushed.wait_uninterruptible(ready);
    }

    fn wake_flushed(&self) {
        self.flushed.wake_up_all();
    }
}

/// The device's poll entries wake the worker: `token` is the work bit
/// (C's `vhost_poll_wakeup` queueing the poll's work).
impl Wake for Worker {
    #[inline]
    fn wake(&self, token: u32) {
        self.queue(token);
    }

    /// As C's `vhost_poll_wakeup`, whose `rcu_read_lock` is inline (here
    /// it would be a call): the wait-queue callback is a reader already.
    #[inline]
    fn wake_in_rcu(&self, token: u32, rcu: &rcu::Reader) {
        if let Queued::Wake = self.q.enqueue(token) {
            self.task.wake(rcu);
        }
    }
}
