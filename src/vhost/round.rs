// SPDX-License-Identifier: GPL-2.0

//! A worker round on one ring: what the round takes from its locked
//! virtqueue and from its device, and the generic steps every device's
//! round uses (C's `vhost_add_used_and_signal_n`, `vhost_enable_notify`,
//! `vhost_disable_notify`, `vq_err`, `vhost_exceeds_weight`).

use crate::kapi::eventfd::EventFdCtx;
use crate::vcore::ring::SplitRing;
use crate::vhost::access::{GuestXlate, OwnerMem};
use crate::vhost::iotlb::Msgs;
use crate::vhost::vq::{Vq, VqBufs};
use crate::vhost::worker::Worker;
use core::sync::atomic::{AtomicBool, Ordering};

/// What a round needs from its device, and nothing more: the IOTLB
/// message queue (for misses), the worker (to requeue a ring) and whether
/// the device is being torn down (a busy poll ends at once).
#[derive(Clone, Copy)]
pub(crate) struct DevCtx<'a> {
    /// IOTLB misses are queued here for userspace.
    pub(crate) msgs: &'a Msgs,
    /// The device's worker.
    pub(crate) worker: &'a Worker,
    /// Set while the device releases its rings.
    pub(crate) stopping: &'a AtomicBool,
}

impl DevCtx<'_> {
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

/// The generic part of a round on a locked ring.
pub(crate) struct VqRound<'a> {
    /// The ring's state.
    pub(crate) ring: &'a mut SplitRing,
    /// The worker's buffers of this ring.
    pub(crate) bufs: &'a mut VqBufs,
    /// The owner's memory, through the IOTLB if there is one.
    pub(crate) mem: OwnerMem<'a>,
    /// Guest-address translation.
    pub(crate) xlate: GuestXlate<'a>,
    call: Option<&'a EventFdCtx>,
    err: Option<&'a EventFdCtx>,
}

/// Splits a locked ring into its backend and a round, if the ring is set
/// up (a worker's buffers exist: the device has an owner).
pub(crate) fn begin<'a, B>(
    vq: &'a mut Vq<B>,
    msgs: &'a Msgs,
    index: usize,
) -> Option<(Option<&'a mut B>, VqRound<'a>)> {
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
    let round = VqRound {
        ring,
        bufs,
        mem: OwnerMem {
            iotlb: iotlb.as_deref(),
            log_ctx: log_ctx.as_deref(),
        },
        xlate: GuestXlate::new(
            msgs,
            index,
            umem.as_deref(),
            iotlb.as_deref(),
            *acked_backend_features,
        ),
        call: call.as_ref(),
        err: err.as_ref(),
    };
    Some((backend.as_mut(), round))
}

impl VqRound<'_> {
    /// Reports a ring error to userspace (C's `vq_err`).
    pub(crate) fn vq_err(&self) {
        if let Some(err) = self.err {
            err.signal();
        }
    }

    /// Publishes the first `n` collected used entries and interrupts the
    /// guest if it wants (C's `vhost_add_used_and_signal_n`). `n` is at
    /// most the room in `bufs.heads`.
    pub(crate) fn add_used_and_signal(&mut self, n: usize) {
        if self
            .ring
            .add_used(&self.mem, &self.xlate, &self.bufs.heads[..n])
            .is_err()
        {
            self.vq_err();
        }
        // C only asks the ring when there is someone to signal.
        if let Some(call) = self.call {
            let r = self.ring.need_notify(&self.mem);
            if r.error.is_some() {
                self.vq_err();
            }
            if r.value {
                call.signal();
            }
        }
    }

    /// Re-enables guest kicks; returns whether buffers arrived meanwhile
    /// (then kicks are disabled again and the caller retries).
    pub(crate) fn enable_notify_raced(&mut self) -> bool {
        let r = self.ring.enable_notify(&self.mem, &self.xlate);
        if r.error.is_some() {
            self.vq_err();
        }
        if r.value {
            self.disable_notify();
        }
        r.value
    }

    /// Disables guest kicks while the ring is being drained.
    pub(crate) fn disable_notify(&mut self) {
        if self
            .ring
            .disable_notify(&self.mem, &self.xlate)
            .error
            .is_some()
        {
            self.vq_err();
        }
    }

    /// Whether the guest has posted nothing new.
    #[inline]
    pub(crate) fn avail_empty(&mut self) -> bool {
        self.ring.avail_empty(&self.mem).value
    }
}
