// SPDX-License-Identifier: GPL-2.0

//! A worker round on one ring: what the round takes from its locked
//! virtqueue and from its device, and the generic steps every device's
//! round uses (C's `vhost_add_used_and_signal_n`, `vhost_enable_notify`,
//! `vhost_disable_notify`, `vq_err`, `vhost_exceeds_weight`).

use crate::kapi::eventfd::EventFdCtx;
use crate::vcore::diag::{Reason, VqStats};
use crate::vcore::errno::Errno;
use crate::vcore::ring::access::RingMemory;
use crate::vcore::ring::chain::{log_write_bufs, Chain, ChainBufs, RingError};
use crate::vcore::ring::split::SplitRing;
use crate::vhost::access::{GuestXlate, OwnerMem, RingErrs};
use crate::vhost::iotlb::Msgs;
use crate::vhost::vq::{Vq, VqBufs};
use crate::vhost::worker::Worker;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

/// What a round needs from its device, and nothing more: the IOTLB
/// message queue (for misses), the worker (to requeue a ring) and whether
/// the device is being torn down (a busy poll ends at once). A part of the
/// device ([`super::dev::Dev::ctx`]), so that a round holds one pointer to
/// it, in a register (a struct of pointers passed by value was stored to
/// the stack on every packet, make profile).
#[pin_data]
pub(crate) struct DevCtx {
    /// IOTLB misses are queued here for userspace (`read`/`poll` on the
    /// fd).
    #[pin]
    pub(crate) msgs: Msgs,
    /// Pending work and flushing; the poll entries point at it.
    pub(crate) worker: Arc<Worker>,
    /// Set while the device releases its rings: a round in a busy poll
    /// stops spinning, so release waits for no busy-loop timeout (C's
    /// does).
    pub(crate) stopping: AtomicBool,
    /// Each ring's counters (fdinfo; src/vcore/diag.rs): outside the
    /// rings' mutexes, so that fdinfo reads them without taking one.
    pub(crate) stats: [VqStats; 2],
    /// The rings' acked backend features (the same in every ring: they
    /// are only ever set all at once), for the fd's `write`, which reads
    /// them without a ring's mutex as C reads ring 0's: a round holding
    /// that mutex (a busy poll) does not delay the refusal of a bad
    /// message. Written under the device mutex.
    pub(crate) backend_features: AtomicU64,
}

impl DevCtx {
    /// The context of a device served by `worker`.
    pub(crate) fn new(worker: Arc<Worker>) -> impl PinInit<Self> {
        pin_init!(Self {
            msgs <- Msgs::new(),
            worker,
            stopping: AtomicBool::new(false),
            stats: [VqStats::new(0), VqStats::new(1)],
            backend_features: AtomicU64::new(0),
        })
    }

    /// Whether the device is being torn down.
    #[inline]
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Whether a round has done enough (C's `vhost_exceeds_weight`); if so
    /// ring `bit` is queued again so other work gets the worker first.
    ///
    /// A round stops once this holds, so its counters grow by plain
    /// additions from below the weights, by one packet (under 2^42 bytes,
    /// see `Chain::len`) at a time: they cannot overflow.
    #[inline]
    pub(crate) fn exceeds_weight(
        &self,
        bit: u32,
        pkts: usize,
        bytes: usize,
        pkt_weight: usize,
        byte_weight: usize,
    ) -> bool {
        if bytes >= byte_weight || pkts >= pkt_weight {
            self.worker.queue(bit);
            return true;
        }
        false
    }
}

/// The generic part of a round on a locked ring. The ring format is
/// behind it: a device's data path asks for chains and gives used entries
/// back through these methods, never through the format's own type.
pub(crate) struct VqRound<'a, E> {
    /// The ring's state.
    ring: &'a mut SplitRing,
    /// The worker's buffers of this ring.
    pub(crate) bufs: &'a mut VqBufs<E>,
    /// The owner's memory, through the IOTLB if there is one.
    pub(crate) mem: OwnerMem<'a>,
    /// Guest-address translation.
    pub(crate) xlate: GuestXlate<'a>,
    /// The ring's call eventfd: the field itself (see
    /// `OwnerMem::log_ctx`). Its counters and error eventfd are the
    /// memory's (`mem.errs`), which reports some errors itself.
    call: &'a Option<EventFdCtx>,
}

/// Splits a locked ring into its backend and a round, if the ring is set
/// up (a worker's buffers exist: the device has an owner).
pub(crate) fn begin<'a, B, E>(
    vq: &'a mut Vq<B, E>,
    dev: &'a DevCtx,
    index: usize,
) -> Option<(Option<&'a mut B>, VqRound<'a, E>)> {
    let msgs = &dev.msgs;
    let Vq {
        acked_backend_features,
        backend,
        ring,
        bufs,
        iotlb,
        log_ctx,
        umem,
        call,
        err,
        ..
    } = vq;
    let bufs = bufs.as_deref_mut()?;
    // Ring indices are 0 and 1 (the mask spares a bounds check).
    let stats = &dev.stats[index & 1];
    let round = VqRound {
        ring,
        bufs,
        mem: OwnerMem {
            iotlb: iotlb.as_deref(),
            errs: RingErrs { stats, err },
            log_ctx,
        },
        xlate: GuestXlate::new(
            msgs,
            index,
            umem.as_deref(),
            iotlb.as_deref(),
            *acked_backend_features,
        ),
        call,
    };
    Some((backend.as_mut(), round))
}

impl<E> VqRound<'_, E> {
    /// Starts a round: the descriptor budget of a round starts over
    /// (`MAX_ROUND_READS`).
    #[inline]
    pub(crate) fn start_round(&mut self) {
        self.stats().rounds.add(1);
        self.ring.start_round();
    }

    /// The next chain the guest posted (C's `vhost_get_vq_desc`): its
    /// pieces go to `bufs.iov` from `iov_from` on and, with `log_from`,
    /// its dirty-log entries to `bufs.log` from there; it may read at most
    /// `reads` descriptors besides its head. `Ok(None)`: nothing posted.
    /// Panics if `iov_from` or `log_from` is past the end of its buffer.
    #[inline(always)]
    pub(crate) fn get_desc_chain(
        &mut self,
        iov_from: usize,
        log_from: Option<usize>,
        reads: u32,
    ) -> Result<Option<Chain>, RingError> {
        let VqBufs {
            iov, indirect, log, ..
        } = &mut *self.bufs;
        let bufs = ChainBufs {
            iov: &mut iov[iov_from..],
            indirect: indirect.as_mut_slice(),
            log: match log_from {
                Some(from) => Some(&mut log[from..]),
                None => None,
            },
            reads,
        };
        self.ring.get_desc_chain(&self.mem, &self.xlate, bufs)
    }

    /// Logs the first `len` bytes written to the chains collected in
    /// `bufs.iov[..in_num]`, whose log entries are `bufs.log[..log_num]`,
    /// in the bitmap at `log_base`, and signals the log eventfd if a bit
    /// was set (C's `vhost_log_write` after `handle_rx`'s copy). Panics if
    /// `log_num` or `in_num` is past the end of its buffer.
    pub(crate) fn log_write(&mut self, log_base: u64, log_num: usize, len: u64, in_num: usize) {
        let log = &self.bufs.log[..log_num];
        let pieces = &self.bufs.iov[..in_num];
        if let Ok(true) = log_write_bufs(&self.mem, &self.xlate, log_base, log, len, pieces) {
            self.mem.log_signal();
        }
    }

    /// Gives the last `n` chains taken back to the guest, the first of
    /// them with head `first_head` (C's `vhost_discard_vq_desc`).
    #[inline]
    pub(crate) fn discard(&mut self, n: u16, first_head: u16) {
        self.ring.discard(n, first_head);
    }

    /// Gives back the `n` chains taken before the last one, which stays
    /// consumed, with head `last_head` (`SplitRing::discard_before_last`).
    #[inline]
    pub(crate) fn discard_before_last(&mut self, n: u16, first_head: u16, last_head: u16) {
        self.ring.discard_before_last(n, first_head, last_head);
    }

    /// Whether `VIRTIO_F_IN_ORDER` was negotiated (constant in a round:
    /// features change under the ring's lock).
    #[inline]
    pub(crate) fn in_order(&self) -> bool {
        self.ring.in_order()
    }

    /// Reports a ring error (C's `vq_err`): logs `reason` (dynamic debug,
    /// rate-limited), with C's `errno` when there is one, counts it and
    /// signals the error eventfd as many times as C does
    /// ([`Reason::c_reports`]: twice for a broken indirect table).
    #[cold]
    #[inline(never)]
    pub(crate) fn vq_err(&self, reason: Reason, errno: Option<Errno>) {
        self.errs().vq_err(reason, errno);
    }

    /// Where the ring's errors go.
    #[inline]
    fn errs(&self) -> &RingErrs<'_> {
        &self.mem.errs
    }

    /// The ring's counters (and its index, for the log); the round is
    /// their writer (it holds the ring's mutex).
    #[inline]
    pub(crate) fn stats(&self) -> &VqStats {
        self.mem.errs.stats
    }

    /// A condition C stops the round on without a `vq_err`: logged and
    /// counted as [`VqRound::vq_err`] does, but the error eventfd is not
    /// signalled, as C's is not.
    #[cold]
    #[inline(never)]
    pub(crate) fn note_err(&self, reason: Reason, errno: Option<Errno>) {
        self.errs().note(reason, errno);
    }

    /// Reports the error of a ring operation that returned only C's errno
    /// (`SplitRing::fault` says which message it is).
    #[cold]
    #[inline(never)]
    fn ring_err(&self, errno: Errno) {
        self.vq_err(self.ring.fault(), Some(errno));
    }

    /// Signals the call eventfd, counting the notification.
    #[inline]
    fn call(&self, call: &EventFdCtx) {
        self.stats().calls.add(1);
        call.signal();
    }

    /// Publishes the first `n` collected used entries and interrupts the
    /// guest if it wants (C's `vhost_add_used_and_signal_n`). `n` is at
    /// most the room in `bufs.heads`.
    pub(crate) fn add_used_and_signal(&mut self, n: usize) {
        if let Err(e) = self
            .ring
            .add_used(&self.mem, &self.xlate, &self.bufs.heads[..n])
        {
            self.ring_err(e);
        }
        self.signal();
    }

    /// Publishes the first `n` in-order elements collected in
    /// `bufs.heads` and `bufs.nheads` (each for `nheads[i]` chains) and
    /// interrupts the guest if it wants (C's `vhost_add_used_and_signal_n`
    /// with `nheads`, under `VIRTIO_F_IN_ORDER`). `n` is at most the room
    /// in both.
    pub(crate) fn add_used_in_order_and_signal(&mut self, n: usize) {
        let bufs = &*self.bufs;
        if let Err(e) =
            self.ring
                .add_used_in_order(&self.mem, &self.xlate, &bufs.heads[..n], &bufs.nheads[..n])
        {
            self.ring_err(e);
        }
        self.signal();
    }

    /// Interrupts the guest if it wants (C's `vhost_signal`). C only asks
    /// the ring when there is someone to signal. Inlined into both
    /// publishers: a call here cost the latency row's round trip about 30
    /// instructions (`make profile`).
    #[inline(always)]
    fn signal(&mut self) {
        if let Some(call) = self.call {
            let r = self.ring.need_notify(&self.mem);
            if let Some(e) = r.error {
                self.ring_err(e);
            }
            if r.value {
                self.call(call);
            }
        }
    }

    /// Re-enables guest kicks; returns whether buffers arrived meanwhile
    /// (then kicks are disabled again and the caller retries).
    pub(crate) fn enable_notify_raced(&mut self) -> bool {
        let r = self.ring.enable_notify(&self.mem, &self.xlate);
        if let Some(e) = r.error {
            self.ring_err(e);
        }
        if r.value {
            self.disable_notify();
        }
        r.value
    }

    /// Disables guest kicks while the ring is being drained.
    pub(crate) fn disable_notify(&mut self) {
        if let Some(e) = self.ring.disable_notify(&self.mem, &self.xlate).error {
            self.ring_err(e);
        }
    }

    /// Whether the guest has posted nothing new (C's
    /// `vhost_vq_avail_empty`, which reports a bad `avail->idx`).
    #[inline]
    pub(crate) fn avail_empty(&mut self) -> bool {
        let r = self.ring.avail_empty(&self.mem);
        if let Some(e) = r.error {
            self.ring_err(e);
        }
        r.value
    }
}
