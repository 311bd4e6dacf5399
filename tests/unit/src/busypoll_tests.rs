//! Tests of the busy-poll loop, src/vcore/busypoll.rs, with a scripted
//! host: its exits (budget, `need_resched`, signal, queued work, ready,
//! and their order), and that a release (`stopping`) ends a poll at once
//! even when the clock stands still and no other exit comes true, as the
//! RCU and timer wake-ups of a VM make `need_resched` do sooner or later
//! (issue 22, point 5: release waited for a busy poll). The loop as it was
//! before that fix, `busy_poll_unfixed` below, fails that test.

use crate::vcore::busypoll::{busy_poll, BusyPoll, PollHost};
use std::cell::Cell;

/// How many polls a stopped loop may still make before the host panics.
const SLACK: u32 = 1;

/// A host whose answers are scripted.
#[derive(Default)]
struct Script {
    /// The clock, advanced by `tick` at each reading.
    now: Cell<u64>,
    /// How much each reading of the clock advances it (0: frozen).
    tick: u64,
    /// Passes through the loop's body so far (counted at `has_work`, its
    /// first check).
    polls: Cell<u32>,
    /// At which poll `stopping` is set (during that poll, before its
    /// check), if any.
    stop_at: Option<u32>,
    /// The poll at which `stopping` was set.
    stopped_at: Cell<Option<u32>>,
    /// At which poll each other exit comes true, if any.
    resched_at: Option<u32>,
    signal_at: Option<u32>,
    work_at: Option<u32>,
    ready_at: Option<u32>,
}

/// Whether `at` is set and reached after `polls` polls.
fn reached(at: Option<u32>, polls: u32) -> bool {
    at.is_some_and(|at| polls >= at)
}

impl Script {
    /// `ready()` as the poll's condition.
    fn ready(&self) -> bool {
        reached(self.ready_at, self.polls.get())
    }
}

impl PollHost for Script {
    fn clock(&self) -> u64 {
        let now = self.now.get();
        self.now.set(now + self.tick);
        now
    }

    fn need_resched(&self) -> bool {
        reached(self.resched_at, self.polls.get())
    }

    fn signal_pending(&self) -> bool {
        reached(self.signal_at, self.polls.get())
    }

    fn has_work(&self) -> bool {
        let polls = self.polls.get() + 1;
        self.polls.set(polls);
        if let Some(at) = self.stopped_at.get() {
            assert!(
                polls <= at + SLACK,
                "spun past stop: poll {polls}, stopped at {at}"
            );
        }
        if self.stop_at == Some(polls) {
            self.stopped_at.set(Some(polls));
        }
        reached(self.work_at, polls)
    }

    fn stopping(&self) -> bool {
        self.stopped_at.get().is_some()
    }
}

/// The loop before the fix of issue 22 did not check `stopping`: it is
/// the loop of src/vcore/busypoll.rs with a host that never reports it.
struct Unfixed<'a>(&'a Script);

impl PollHost for Unfixed<'_> {
    fn clock(&self) -> u64 {
        self.0.clock()
    }

    fn need_resched(&self) -> bool {
        self.0.need_resched()
    }

    fn signal_pending(&self) -> bool {
        self.0.signal_pending()
    }

    fn has_work(&self) -> bool {
        self.0.has_work()
    }

    fn stopping(&self) -> bool {
        false
    }
}

/// A frozen clock, no exit ever true, and `stopping` set at poll `k`.
fn stopped_at(k: u32) -> Script {
    Script {
        stop_at: Some(k),
        ..Script::default()
    }
}

#[test]
fn busy_poll_stopping_ends_frozen_poll() {
    for k in [1, 2, 5, 100] {
        let s = stopped_at(k);
        assert_eq!(busy_poll(&s, 50, || s.ready()), BusyPoll::TimedOut);
        assert!(s.polls.get() <= k + SLACK, "k {k}: {} polls", s.polls.get());
    }
}

#[test]
#[should_panic(expected = "spun past stop")]
fn busy_poll_unfixed_spins_past_stop() {
    let s = stopped_at(3);
    busy_poll(&Unfixed(&s), 50, || s.ready());
}

#[test]
fn busy_poll_budget_ends() {
    let s = Script {
        tick: 1,
        ..Script::default()
    };
    assert_eq!(busy_poll(&s, 10, || s.ready()), BusyPoll::TimedOut);
    // The clock reads 0 for the end, then 1..=10 pass and 11 ends it.
    assert_eq!(s.polls.get(), 10);
    // A zero budget, with a clock that moves, does not poll.
    let s = Script {
        tick: 1,
        ..Script::default()
    };
    assert_eq!(busy_poll(&s, 0, || s.ready()), BusyPoll::TimedOut);
    assert_eq!(s.polls.get(), 0);
}

/// Runs a poll of 50 us with `s`; checks how it ends and after how many
/// polls.
fn expect(s: Script, end: BusyPoll, polls: u32) {
    assert_eq!(busy_poll(&s, 50, || s.ready()), end);
    assert_eq!(s.polls.get(), polls);
}

/// A frozen clock and the polls at which `need_resched`, a signal,
/// queued work, `stopping` and the condition come true.
fn exits(at: [Option<u32>; 5]) -> Script {
    let [resched_at, signal_at, work_at, stop_at, ready_at] = at;
    Script {
        resched_at,
        signal_at,
        work_at,
        stop_at,
        ready_at,
        ..Script::default()
    }
}

#[test]
fn busy_poll_other_exits() {
    let (at, no) = (Some(3), None);
    let cases = [
        ([at, no, no, no, no], BusyPoll::TimedOut, 3),
        ([no, at, no, no, no], BusyPoll::TimedOut, 3),
        ([no, no, at, no, no], BusyPoll::Interrupted, 3),
        ([no, no, no, no, at], BusyPoll::Ready, 3),
        // Queued work first, then a release, then the condition.
        ([no, no, at, at, at], BusyPoll::Interrupted, 3),
        ([no, no, no, at, at], BusyPoll::TimedOut, 3),
        // The loop's condition before all of them.
        ([Some(0), no, Some(0), no, Some(0)], BusyPoll::TimedOut, 0),
    ];
    for (at, end, polls) in cases {
        expect(exits(at), end, polls);
    }
}
