// SPDX-License-Identifier: GPL-2.0

//! The net virtqueue (C's `struct vhost_net_virtqueue`): the generic
//! virtqueue plus the socket's header sizes, the TX batch and zerocopy
//! state; and a round of the worker on it.

use crate::kapi::poll::{PollEntry, PollOwner};
use crate::kapi::socket::Socket;
use crate::kapi::task;
use crate::kapi::xdp::XdpBatch;
use crate::net::zerocopy::ZcRing;
use crate::vcore::busypoll::{self, BusyPoll, PollHost};
use crate::vcore::diag::Reason;
use crate::vcore::errno::Errno;
use crate::vcore::ring::chain::UIO_MAXIOV;
use crate::vhost::round::{self as vround, DevCtx, VqRound};
use crate::vhost::vq::{DeviceVq, Vq};
use crate::vhost::worker::Worker;
use kernel::prelude::*;

/// Packets per round before the ring yields (C's `VHOST_NET_PKT_WEIGHT`).
pub(crate) const PKT_WEIGHT: usize = 256;
/// Bytes per round before the ring yields (C's `VHOST_NET_WEIGHT`).
pub(crate) const BYTE_WEIGHT: usize = 0x80000;
/// Used entries batched before they are published (`VHOST_NET_BATCH`).
pub(crate) const BATCH: usize = 64;
/// Room for used entries: a batch plus one packet's worth of heads.
pub(crate) const HEADS: usize = UIO_MAXIOV + BATCH;

/// One virtqueue of a vhost-net device.
pub(crate) struct NetVq {
    /// The generic virtqueue; its backend is the tap/macvtap/packet socket.
    pub(crate) vq: Vq<Socket, XdpBatch>,
    /// Virtio-net header bytes vhost adds/strips.
    pub(crate) vhost_hlen: usize,
    /// Virtio-net header bytes the socket adds/strips.
    pub(crate) sock_hlen: usize,
    /// TX with `experimental_zcopytx`: zerocopy state, from
    /// `VHOST_SET_OWNER` on.
    pub(crate) zc: Option<KBox<ZcRing>>,
    /// Starts and stops the ring's socket poll (`NetCtx::sock_poll`).
    pub(crate) sock_owner: PollOwner,
}

impl DeviceVq for NetVq {
    type Backend = Socket;
    /// Packets copied for tun/tap and not yet handed over (TX fills it).
    type Ext = XdpBatch;

    fn new() -> Self {
        Self {
            vq: Vq::new(),
            vhost_hlen: 0,
            sock_hlen: 0,
            zc: None,
            sock_owner: PollOwner::new(),
        }
    }

    fn vq(&self) -> &Vq<Socket, XdpBatch> {
        &self.vq
    }

    fn vq_mut(&mut self) -> &mut Vq<Socket, XdpBatch> {
        &mut self.vq
    }
}

/// What the packet handlers need from the device: the generic context and
/// the ring's socket poll.
#[derive(Clone, Copy)]
pub(crate) struct NetCtx<'a> {
    /// The device's generic context.
    pub(crate) dev: &'a DevCtx,
    /// Polls the ring's socket (readable for RX, writable for TX).
    pub(crate) sock_poll: &'a PollEntry<Worker>,
}

impl NetCtx<'_> {
    /// Whether a round has done enough (C's `vhost_exceeds_weight` with
    /// vhost-net's weights); if so ring `bit` is queued again. (A round
    /// also ends after `MAX_ROUND_READS` descriptor reads: the ring answers
    /// `RingError::Yield`.)
    #[inline]
    pub(crate) fn exceeds_weight(&self, bit: u32, pkts: usize, bytes: usize) -> bool {
        self.dev
            .exceeds_weight(bit, pkts, bytes, PKT_WEIGHT, BYTE_WEIGHT)
    }

    /// Spins up to `budget_us` microseconds (C's `vhost_net_busy_poll`,
    /// with its clock and exit conditions) until `ready()` holds; a
    /// release of the device ends it too (src/vcore/busypoll.rs).
    ///
    /// C also polls the paired ring, taking its mutex with a trylock; the
    /// 6.12 kernel crate has no `try_lock`, so each ring polls its own
    /// sources (TX: its available ring; RX: the socket and its available
    /// ring). See Documentation/differences.rst.
    #[inline]
    pub(crate) fn busy_poll(&self, budget_us: u32, ready: impl FnMut() -> bool) -> BusyPoll {
        busypoll::busy_poll(&KernelPoll(self.dev), budget_us, ready)
    }
}

/// The kernel around a ring's busy poll.
struct KernelPoll<'a>(&'a DevCtx);

impl PollHost for KernelPoll<'_> {
    #[inline]
    fn clock(&self) -> u64 {
        task::busy_clock()
    }

    #[inline]
    fn need_resched(&self) -> bool {
        task::need_resched()
    }

    #[inline]
    fn signal_pending(&self) -> bool {
        kernel::current!().signal_pending()
    }

    #[inline]
    fn has_work(&self) -> bool {
        self.0.worker.has_pending()
    }

    #[inline]
    fn stopping(&self) -> bool {
        self.0.stopping()
    }
}

/// Everything a round needs from a locked net ring.
pub(crate) struct Round<'a> {
    /// The generic part: ring, buffers (with the TX batch, `bufs.ext`),
    /// memory, translation, eventfds.
    pub(crate) q: VqRound<'a, XdpBatch>,
    /// The TX ring's zerocopy state, with `experimental_zcopytx`.
    pub(crate) zc: Option<&'a mut ZcRing>,
    /// Starts and stops the ring's socket poll.
    pub(crate) sock_owner: &'a mut PollOwner,
    /// RX: passes of the round that received no packet, and the two
    /// headers' bytes (`vhost_hlen + sock_hlen`), for the statistics at
    /// the end of the round. Kept here, in memory, not in locals: values
    /// live across the packet loop cost every packet (make profile).
    pub(crate) rx_skipped: usize,
    /// See `rx_skipped`.
    pub(crate) rx_hdrs: usize,
}

impl<'a> Round<'a> {
    /// Splits a locked ring into its socket and a round, if the ring is
    /// set up (a worker to run it: its buffers exist).
    pub(crate) fn begin(
        nvq: &'a mut NetVq,
        ctx: &NetCtx<'a>,
        index: usize,
    ) -> Option<(Option<&'a mut Socket>, Round<'a>)> {
        let NetVq {
            vq,
            zc,
            sock_owner,
            vhost_hlen,
            sock_hlen,
        } = nvq;
        let (sock, q) = vround::begin(vq, ctx.dev, index)?;
        Some((
            sock,
            Round {
                q,
                zc: zc.as_deref_mut(),
                sock_owner,
                rx_skipped: 0,
                rx_hdrs: *vhost_hlen + *sock_hlen,
            },
        ))
    }

    /// Records a sent TX chain for the used ring (length 0, as in C).
    /// TX rounds publish at `BATCH` entries (or at once), so `done` is
    /// below `BATCH < HEADS` here.
    pub(crate) fn push_used(&mut self, head: u16) {
        let bufs = &mut *self.q.bufs;
        bufs.heads[bufs.done] = crate::vcore::ring::desc::UsedElem {
            id: u32::from(head),
            len: 0,
        };
        bufs.done += 1;
    }

    /// Under `VIRTIO_F_IN_ORDER`, makes the `heads` chains of the packet
    /// just received, the last `heads` of the `done` collected, one element
    /// for `signal_used`: the last chain's entry (its head and the bytes
    /// written to it), for `heads` chains (C's `get_rx_bufs` in order:
    /// `heads[0]` is the last buffer's id and length, `nheads[0]` the
    /// count). `heads` is at least 1 and at most `UIO_MAXIOV`; elements are
    /// fewer than chains, so `ndone < done` and the element goes below the
    /// entries it is made from.
    #[inline(never)]
    pub(crate) fn push_used_in_order(&mut self, heads: usize) {
        let bufs = &mut *self.q.bufs;
        let k = bufs.ndone;
        bufs.heads[k] = bufs.heads[bufs.done - 1];
        bufs.nheads[k] = heads as u16;
        bufs.ndone = k + 1;
    }

    /// Reports a ring error (C's `vq_err`): see [`VqRound::vq_err`].
    pub(crate) fn vq_err(&self, reason: Reason, errno: Option<Errno>) {
        self.q.vq_err(reason, errno);
    }

    /// Publishes the collected used entries and interrupts the guest if it
    /// wants (C's `vhost_add_used_and_signal_n`).
    ///
    /// With `VIRTIO_F_IN_ORDER`, one element per batch of chains
    /// ([`Round::signal_used_in_order`]).
    pub(crate) fn signal_used(&mut self) {
        let n = self.q.bufs.done;
        if n == 0 {
            return;
        }
        self.q.bufs.done = 0;
        if self.q.in_order() {
            self.signal_used_in_order(n);
            return;
        }
        self.q.add_used_and_signal(n);
    }

    /// Publishes the collected used entries one for one, in or out of
    /// order (C's zerocopy TX, whose `vhost_zerocopy_signal_used` passes
    /// no `nheads` and `vhost_add_used_and_signal` one head).
    pub(crate) fn signal_used_each(&mut self) {
        let n = self.q.bufs.done;
        if n == 0 {
            return;
        }
        self.q.bufs.done = 0;
        self.q.add_used_and_signal(n);
    }

    /// [`Round::signal_used`] of `n` chains under `VIRTIO_F_IN_ORDER`.
    ///
    /// RX gathered one element per packet in `heads[..ndone]`, for
    /// `nheads[i]` chains each (`handle_rx`); those are published. TX
    /// gathered none: its `n` chains, one entry each in `heads[..n]` in
    /// the order taken, become one element, the last chain's head with
    /// length 0, for all `n` (C's `vhost_tx_batch`: `heads[0].id` is the
    /// last head, `nheads[0] = done_idx`). A TX round publishes at most
    /// `BATCH` chains at a time, so `n` fits the `u16`.
    #[inline(never)]
    fn signal_used_in_order(&mut self, n: usize) {
        let bufs = &mut *self.q.bufs;
        let m = if bufs.ndone == 0 {
            bufs.heads[0] = crate::vcore::ring::desc::UsedElem {
                id: bufs.heads[n - 1].id,
                len: 0,
            };
            bufs.nheads[0] = n as u16;
            1
        } else {
            bufs.ndone
        };
        bufs.ndone = 0;
        self.q.add_used_in_order_and_signal(m);
    }

    /// Re-enables guest kicks; returns whether buffers arrived meanwhile.
    pub(crate) fn enable_notify_raced(&mut self) -> bool {
        self.q.enable_notify_raced()
    }

    /// Disables guest kicks while the ring is being drained.
    pub(crate) fn disable_notify(&mut self) {
        self.q.disable_notify();
    }
}

/// The socket and round of a ring with a backend; returns from the caller
/// otherwise.
macro_rules! round {
    ($nvq:expr, $ctx:expr, $index:expr) => {{
        match crate::net::vq::Round::begin($nvq, $ctx, $index) {
            Some((Some(sock), round)) => (sock, round),
            _ => return,
        }
    }};
}
pub(crate) use round;
