// SPDX-License-Identifier: GPL-2.0

//! Zerocopy TX (`experimental_zcopytx`): the TX ring's record of the
//! packets sent on the guest's pages (C's `upend_idx`, `done_idx`,
//! `heads[].id` and the heuristics); the completions run in `kapi::zcopy`,
//! and `tx` sends the packets and gives their chains back.

use crate::kapi::zcopy::{Zcopy, SLOTS};
use crate::vhost::worker::{Worker, WORK_TX};
use kernel::prelude::*;
use kernel::sync::Arc;

/// Most zerocopy packets in flight, also bounded by a quarter of the ring
/// (C's `VHOST_MAX_PEND`).
const MAX_PEND: usize = 128;

/// The TX ring's side of zerocopy, under its mutex (C's `upend_idx`,
/// `done_idx`, `heads[].id`, `tx_flush`, `tx_packets`, `tx_zcopy_err`).
///
/// # Invariants
///
/// `done` and `upend` are below [`SLOTS`]; the slots from `done` up to
/// (not including) `upend`, in ring order, were armed for the chains
/// `ids[done..upend]`, in the order they were sent.
pub(crate) struct ZcRing {
    /// Shared with the completion callback.
    pub(crate) zc: Arc<Zcopy<Worker>>,
    pub(crate) ids: KVec<u16>,
    pub(crate) upend: usize,
    pub(crate) done: usize,
    /// A flush waits for the packets in flight: arm no new ones.
    pub(crate) flushing: bool,
    /// Packets sent since the error count was last cleared.
    packets: u32,
    /// Zerocopy packets the socket had to copy after all.
    pub(crate) errs: u32,
}

impl ZcRing {
    /// Zerocopy state for the TX ring served by `worker`.
    pub(crate) fn new(worker: Arc<Worker>) -> Result<KBox<Self>> {
        let zc = Zcopy::new(worker, WORK_TX)?;
        // INVARIANT: nothing armed, `done == upend`.
        Ok(KBox::new(
            Self {
                zc,
                ids: KVec::from_elem(0u16, SLOTS, GFP_KERNEL)?,
                upend: 0,
                done: 0,
                flushing: false,
                packets: 0,
                errs: 0,
            },
            GFP_KERNEL,
        )?)
    }

    /// Too many packets in flight to send more without copying, or to
    /// hold back with `MSG_MORE` (C's `vhost_exceeds_maxpend`).
    pub(crate) fn exceeds_maxpend(&self, num: usize) -> bool {
        // Both indices are below `SLOTS` (type invariant): no wrap.
        (self.upend + SLOTS - self.done) % SLOTS > MAX_PEND.min(num >> 2)
    }

    /// Whether zerocopy is worth trying: not while flushing, and not while
    /// more than one packet in 64 ended up copied anyway (C's
    /// `vhost_net_tx_select_zcopy`).
    pub(crate) fn select(&self) -> bool {
        !self.flushing && self.packets / 64 >= self.errs
    }

    /// Counts a sent packet; every 1024 the error count starts over (C's
    /// `vhost_net_tx_packet`).
    pub(crate) fn tx_packet(&mut self) {
        // Below 1024 before the increment.
        self.packets += 1;
        if self.packets >= 1024 {
            self.packets = 0;
            self.errs = 0;
        }
    }

    /// A new backend: the heuristics start over (C's `set_backend`).
    pub(crate) fn restart(&mut self) {
        self.packets = 0;
        self.errs = 0;
        self.flushing = false;
    }
}
