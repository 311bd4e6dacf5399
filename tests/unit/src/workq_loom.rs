//! Model check of the work queue's protocol: src/vcore/workq.rs, compiled
//! here a second time with `loom`'s atomics, run by a model of the kernel
//! around it (the worker task's state, sleep and wake-ups, its stop and
//! SIGKILL, the flushers' wait queue) over every interleaving `loom`
//! explores (up to a bound of preemptions, see `check`).
//!
//! Checked: every flush returns (a flush lost by the worker leaves every
//! thread blocked at the end, which `loom` reports as a deadlock), and when
//! it returns the worker has seen every kick queued before the call (each
//! kick publishes a number before queueing, as a guest its available
//! index, and the worker's round reads it). The same models fail on
//! `take_unfixed`, the ordering before the fix of issue 22 (a lost flush),
//! and on `take_late_read` (a flush that returns early).
//!
//! Two limits of `loom` shape the code: it treats `SeqCst` accesses as
//! `AcqRel` (only `fence(SeqCst)` is sequentially consistent), so the
//! protocol relies on read-modify-writes rather than on `SeqCst` loads;
//! and with the task state written by a plain store it reported a lost
//! wake-up that the `fence(SeqCst)` pair forbids (a waker's swap reading
//! an older state than the task's store), so the model writes the state
//! with swaps only (x86 `set_current_state` is an `xchg` too).

mod sync {
    pub(crate) use loom::sync::atomic;
}

#[allow(dead_code)]
#[path = "../../../src/vcore/workq.rs"]
mod workq;

use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU8, Ordering::*};
use loom::sync::{Condvar, Mutex};
use loom::thread;
use workq::{Host, WorkQueue, WORK_RX, WORK_TX};

/// `TASK_RUNNING`.
const RUNNING: u8 = 0;
/// `TASK_INTERRUPTIBLE`.
const SLEEPING: u8 = 1;

/// The worker's ordering of `take`.
#[derive(Clone, Copy)]
enum Take {
    /// The module's.
    Fixed,
    /// Before the fix of issue 22 (`flush_req` read before the swap, no
    /// second look).
    Unfixed,
    /// `flush_req` read after the swap.
    LateRead,
}

/// The protocol and the kernel around it.
struct Model {
    q: WorkQueue,
    /// Which `take` the worker runs.
    take: Take,
    /// The worker task's state.
    state: AtomicU8,
    /// Where the task sleeps, and its wake-up.
    rq: Mutex<()>,
    rq_cv: Condvar,
    /// The flushers' wait queue.
    wq: Mutex<()>,
    wq_cv: Condvar,
    /// `VHOST_TASK_FLAGS_STOP`.
    stop: AtomicBool,
    /// A SIGKILL is pending.
    sig: AtomicBool,
    /// Per ring (RX, TX): the number a kicker published before queueing.
    posted: [AtomicU32; 2],
    /// Per ring: the number of the last kick whose queueing returned.
    queued: [AtomicU32; 2],
    /// Per ring: the last number a round of the worker read.
    seen: [AtomicU32; 2],
}

impl Host for Model {
    /// `try_to_wake_up`: a full barrier, then the state.
    fn wake_task(&self) {
        fence(SeqCst);
        if self.state.swap(RUNNING, AcqRel) == SLEEPING {
            drop(self.rq.lock().unwrap());
            self.rq_cv.notify_one();
        }
    }

    /// `prepare_to_wait` and `schedule` under the wait queue's lock.
    fn wait_flushed(&self, mut ready: impl FnMut() -> bool) {
        let mut g = self.wq.lock().unwrap();
        while !ready() {
            g = self.wq_cv.wait(g).unwrap();
        }
    }

    /// `wake_up_all` takes the wait queue's lock.
    fn wake_flushed(&self) {
        drop(self.wq.lock().unwrap());
        self.wq_cv.notify_all();
    }
}

impl Model {
    /// A model for one execution. Leaked: after a deadlock `loom` unwinds
    /// the main thread, and dropping its objects then aborts the process
    /// (a `#[should_panic]` test could not pass).
    fn new(take: Take) -> &'static Self {
        Box::leak(Box::new(Self {
            q: WorkQueue::new(),
            take,
            state: AtomicU8::new(RUNNING),
            rq: Mutex::new(()),
            rq_cv: Condvar::new(),
            wq: Mutex::new(()),
            wq_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            sig: AtomicBool::new(false),
            posted: [AtomicU32::new(0), AtomicU32::new(0)],
            queued: [AtomicU32::new(0), AtomicU32::new(0)],
            seen: [AtomicU32::new(0), AtomicU32::new(0)],
        }))
    }

    /// The worker task: `vhost_task_fn` (and `kthread_trampoline`, which
    /// has no SIGKILL) around `VhostNet::run`.
    fn worker(&self) {
        loop {
            // `signal_pending`, `get_signal`: the owner was killed.
            if self.sig.load(Acquire) {
                self.q.kill(self);
                return;
            }
            // `set_current_state(TASK_INTERRUPTIBLE)`: a full barrier.
            self.state.swap(SLEEPING, Relaxed);
            fence(SeqCst);
            if self.stop.load(Acquire) {
                return;
            }
            let work = match self.take {
                Take::Fixed => self.q.take(),
                Take::Unfixed => self.q.take_unfixed(),
                Take::LateRead => self.q.take_late_read(),
            };
            if work.is_empty() {
                // `schedule()`: sleeps while the state is still
                // interruptible and no signal is pending.
                let mut g = self.rq.lock().unwrap();
                while self.state.load(Acquire) == SLEEPING && !self.sig.load(Acquire) {
                    g = self.rq_cv.wait(g).unwrap();
                }
                continue;
            }
            self.state.swap(RUNNING, Relaxed);
            // The handlers read what the guest published.
            for (ring, bit) in [WORK_RX, WORK_TX].into_iter().enumerate() {
                if work.has(bit) {
                    let n = self.posted[ring].load(Acquire);
                    self.seen[ring].store(n, Relaxed);
                }
            }
            self.q.done(&work, self);
        }
    }

    /// A kick of `ring` numbered `n`: publish, queue, then record that
    /// it was queued.
    fn kick(&self, ring: usize, n: u32) {
        self.posted[ring].store(n, Release);
        self.q.queue([WORK_RX, WORK_TX][ring], self);
        self.queued[ring].store(n, Release);
    }

    /// A flush, checked: the rounds have seen every kick queued before it
    /// (unless the owner was killed, which drops work).
    fn flush_checked(&self) {
        let before = [self.queued[0].load(Acquire), self.queued[1].load(Acquire)];
        self.q.flush(self);
        if self.sig.load(Acquire) {
            return;
        }
        for ring in 0..2 {
            let seen = self.seen[ring].load(Relaxed);
            assert!(
                seen >= before[ring],
                "flush returned before ring {ring}'s kick {} was seen (seen {seen})",
                before[ring]
            );
        }
    }

    /// `vhost_task_stop` / `kthread_stop`: set the flag, wake, wait.
    fn stop(&self, worker: thread::JoinHandle<()>) {
        self.stop.store(true, Release);
        self.wake_task();
        worker.join().unwrap();
    }
}

/// Runs `f` under `loom`, with at most `preemptions` preemptions per
/// execution unless `LOOM_MAX_PREEMPTIONS` says otherwise. 2 keeps
/// `make check` short (about 10 s for all); 3 (about 6 minutes) also
/// passes.
fn check(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(preemptions);
    }
    b.check(f);
}

/// The module's case: a kicker on TX beside the owner, which publishes
/// the task (racing the kicker), kicks RX and flushes twice under the
/// device mutex (here: from one thread).
fn kicker_and_flushes(take: Take) {
    let m = Model::new(take);
    let worker = thread::spawn(move || m.worker());
    let kicker = thread::spawn(move || {
        m.kick(1, 1);
        m.kick(1, 2);
    });
    m.q.set_task(true, m);
    m.kick(0, 1);
    m.flush_checked();
    m.flush_checked();
    kicker.join().unwrap();
    m.stop(worker);
}

#[test]
fn flush_with_concurrent_kicks() {
    check(2, || kicker_and_flushes(Take::Fixed));
}

#[test]
#[should_panic(expected = "deadlock")]
fn unfixed_take_loses_a_flush() {
    check(2, || kicker_and_flushes(Take::Unfixed));
}

/// The owner alone: a flush with no task (a device ioctl before
/// `VHOST_SET_OWNER`) returns at once and leaves its bit queued; then the
/// task is published and the owner kicks RX and flushes.
fn stale_flush_bit(take: Take) {
    let m = Model::new(take);
    let worker = thread::spawn(move || m.worker());
    m.q.flush(m);
    m.q.set_task(true, m);
    m.kick(0, 1);
    m.flush_checked();
    m.stop(worker);
}

#[test]
fn flush_after_stale_flush_bit() {
    check(3, || stale_flush_bit(Take::Fixed));
}

/// Reading `flush_req` after the swap is no fix: a round that takes a
/// stale flush bit before the owner's kick completes the owner's ticket.
#[test]
#[should_panic(expected = "flush returned before")]
fn late_read_completes_early() {
    check(3, || stale_flush_bit(Take::LateRead));
}

/// Two flushers that do not exclude each other, each after its own kick,
/// and a kicker.
#[test]
fn overlapping_flushes() {
    check(2, || {
        let m = Model::new(Take::Fixed);
        m.q.set_task(true, m);
        let worker = thread::spawn(move || m.worker());
        let flusher = thread::spawn(move || {
            m.kick(1, 1);
            m.flush_checked();
        });
        m.kick(0, 1);
        m.flush_checked();
        flusher.join().unwrap();
        m.stop(worker);
    });
}

/// SIGKILL of the owner (vhost_task mode) while a kicker kicks and the
/// owner flushes: every flush returns, and the worker exits.
#[test]
fn kill_releases_flushers() {
    check(2, || {
        let m = Model::new(Take::Fixed);
        m.q.set_task(true, m);
        let worker = thread::spawn(move || m.worker());
        let killer = thread::spawn(move || {
            m.kick(1, 1);
            m.sig.store(true, Release);
            m.wake_task();
        });
        m.kick(0, 1);
        m.flush_checked();
        m.flush_checked();
        killer.join().unwrap();
        m.stop(worker);
    });
}

/// SIGKILL of the owner before `VHOST_SET_OWNER` publishes the task it
/// started (`vhost_task_start` runs the task, which finds the signal and
/// calls `kill`, racing the publication), then a flush; then the device's
/// teardown and a second owner (a process the fd was passed to), whose
/// task must run the work. `publish` is the module's publication or the
/// one before the fix.
fn kill_before_publish(publish: fn(&Model)) {
    let m = Model::new(Take::Fixed);
    m.sig.store(true, Release);
    let worker = thread::spawn(move || m.worker());
    publish(m);
    m.kick(0, 1);
    m.flush_checked();
    // Teardown: unpublish, stop (the task has exited), forget the kill.
    m.q.set_task(false, m);
    m.stop(worker);
    m.q.task_stopped();
    // The next owner.
    m.sig.store(false, Release);
    m.stop.store(false, Release);
    let worker = thread::spawn(move || m.worker());
    m.q.set_task(true, m);
    m.kick(0, 2);
    m.flush_checked();
    m.stop(worker);
}

#[test]
fn kill_before_publish_releases_flushers() {
    check(2, || kill_before_publish(|m| m.q.set_task(true, m)));
}

/// Publishing by a store of `TASK` forgot the kill: the flush after it
/// waited for a task that had exited (found by review, 2026-12-07).
#[test]
#[should_panic(expected = "deadlock")]
fn kill_overwritten_by_publish_hangs_a_flush() {
    check(2, || kill_before_publish(|m| m.q.set_task_unfixed(m)));
}
