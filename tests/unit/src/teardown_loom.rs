//! Model check of the order in which a release stops the worker,
//! src/vcore/teardown.rs (issue 22, point 3: a zerocopy completion could
//! wake a freed task), over every interleaving `loom` explores.
//!
//! The model: one TX ring whose backend, while attached, sends a new
//! zerocopy packet in a round of the worker (a flush runs one); a thread
//! that completes the packets in flight, as the networking core does, each
//! inside an RCU read-side section in which it drops the packet's
//! reference and wakes the task the work queue publishes, if any; RCU as
//! a count of readers (a grace period waits for none to be inside: more
//! than RCU waits for, so a conservative model); the task freed by
//! `stop_task`. One packet is in flight when the release starts.
//!
//! Checked: no completion wakes a freed task, and every packet sent
//! completes. The order before the fix (the backends attached through the
//! flush, the task freed without a grace period) fails.

use crate::vcore::teardown::{teardown, TeardownHost};
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering::*};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// How many packets the ring may send in all (the one in flight at the
/// start included).
const MAX_PACKETS: u32 = 2;

/// The device, its worker's task, the socket's completions and RCU.
struct Shared {
    /// The ring's backend is attached (its mutex is the ring's).
    attached: Mutex<bool>,
    /// Packets sent so far.
    sent: AtomicU32,
    /// Packets completed so far (their references dropped).
    completed: AtomicU32,
    /// The work queue publishes the task.
    published: AtomicBool,
    /// The task has not been freed.
    alive: AtomicBool,
    /// Completions inside an RCU read-side section.
    readers: AtomicU32,
    /// The release has returned: no packet is sent any more.
    done: AtomicBool,
}

impl Shared {
    fn new() -> Self {
        Self {
            attached: Mutex::new(true),
            sent: AtomicU32::new(1),
            completed: AtomicU32::new(0),
            published: AtomicBool::new(true),
            alive: AtomicBool::new(true),
            readers: AtomicU32::new(0),
            done: AtomicBool::new(false),
        }
    }

    /// `synchronize_rcu`. The count is read with a read-modify-write, so
    /// that it orders with a reader's increment (`loom` treats `SeqCst`
    /// loads as acquire loads only).
    fn synchronize_rcu(&self) {
        while self.readers.fetch_add(0, AcqRel) != 0 {
            thread::yield_now();
        }
    }

    /// A completion of one packet (`zcopy::complete`).
    fn complete(&self) {
        self.readers.fetch_add(1, AcqRel);
        self.completed.fetch_add(1, AcqRel);
        // `worker.queue(WORK_TX)`: loads the task and wakes it.
        if self.published.load(Acquire) {
            assert!(self.alive.load(Acquire), "woke a freed task");
        }
        self.readers.fetch_sub(1, AcqRel);
    }

    /// The socket's side: completes every packet sent, until the release
    /// has returned and none is left.
    fn completions(&self) {
        loop {
            let done = self.done.load(Acquire);
            if self.completed.load(Acquire) < self.sent.load(Acquire) {
                self.complete();
            } else if done {
                return;
            } else {
                thread::yield_now();
            }
        }
    }
}

/// The release's steps on the model.
struct Model(Arc<Shared>);

impl TeardownHost for Model {
    fn detach_rings(&mut self) {
        *self.0.attached.lock().unwrap() = false;
    }

    /// `Zcopy::drain`: waits for every packet sent so far, then a grace
    /// period.
    fn drain_completions(&mut self) {
        let sent = self.0.sent.load(Acquire);
        while self.0.completed.load(Acquire) < sent {
            thread::yield_now();
        }
        self.0.synchronize_rcu();
    }

    /// One round of the worker: with its backend, the ring sends a packet.
    fn flush(&mut self) {
        let attached = self.0.attached.lock().unwrap();
        if *attached && self.0.sent.load(Acquire) < MAX_PACKETS {
            self.0.sent.fetch_add(1, AcqRel);
        }
    }

    fn unpublish_task(&mut self) {
        self.0.published.store(false, Release);
    }

    fn grace_period(&mut self) {
        self.0.synchronize_rcu();
    }

    fn stop_task(&mut self) {
        self.0.alive.store(false, Release);
    }
}

/// The release before the fix of issue 22: the polls stopped but the
/// backends left attached until the rings were reset after the task was
/// freed, and no grace period between unpublishing and freeing the task.
fn teardown_unfixed<H: TeardownHost>(h: &mut H) {
    h.drain_completions();
    h.flush();
    h.unpublish_task();
    h.stop_task();
    h.detach_rings();
}

/// Runs a release by `release` against the completions, over every
/// interleaving.
fn check(release: fn(&mut Model)) {
    loom::model(move || {
        let s = Arc::new(Shared::new());
        let c = s.clone();
        let completer = thread::spawn(move || c.completions());
        release(&mut Model(s.clone()));
        s.done.store(true, Release);
        completer.join().unwrap();
        assert_eq!(
            s.completed.load(Acquire),
            s.sent.load(Acquire),
            "a packet never completed"
        );
    });
}

#[test]
fn teardown_loom_no_wake_after_free() {
    check(teardown);
}

#[test]
#[should_panic(expected = "woke a freed task")]
fn teardown_loom_unfixed_wakes_freed_task() {
    check(teardown_unfixed);
}
