// SPDX-License-Identifier: GPL-2.0

//! The packet handlers the worker runs: TX (guest to socket) and RX
//! (socket to guest), as `handle_tx_copy` and `handle_rx` of the C module,
//! on top of the ring logic of `vcore::ring`.
//!
//! Everything here runs in the worker, a thread of the owner process, so
//! the ring and buffer addresses (the owner's user addresses) are
//! reachable with plain user copies, and the socket's `sendmsg`/`recvmsg`
//! take iovecs of them.

use crate::dev::VhostNet;
use crate::iotlb::{Iotlb, MsgNode, Msgs};
use crate::kapi::eventfd::EventFdCtx;
use crate::kapi::poll::PollEntry;
use crate::kapi::socket::{RecvHdr, Socket};
use crate::kapi::usermem;
use crate::kapi::xdp::{BuildError, XdpBatch};
use crate::kapi::zcopy::{self, TunMsgCtl, Zcopy, DONE, FAILED, IN_PROGRESS, SLOTS};
use crate::mem::GuestMap;
use crate::vcore::busypoll::{self, BusyPoll, PollHost};
use crate::vcore::errno::Errno;
use crate::vcore::features::has_feature;
use crate::vcore::memory::dirtylog::{log_write, log_write_hva, DirtyBitmap, LogEntry};
use crate::vcore::memory::intervalmap::{Entry, Piece, TranslateError, PERM_RO, PERM_WO};
use crate::vcore::ring::access::{write_used_elems_buffered, RingMemory, Translate};
use crate::vcore::ring::chain::{
    log_write_bufs, ChainBufs, RingError, MAX_PACKET_READS, UIO_MAXIOV,
};
use crate::vcore::ring::desc::UsedElem;
use crate::vcore::ring::split::SplitRing;
use crate::vcore::uapi::{
    VhostIotlbMsg, VHOST_BACKEND_F_IOTLB_MSG_V2, VHOST_F_LOG_ALL, VHOST_IOTLB_MISS,
    VIRTIO_NET_F_MRG_RXBUF,
};
use crate::vq::Vq;
use crate::worker::Worker;
use crate::worker::{WORK_RX, WORK_TX};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// Packets per round before the ring yields (C's `VHOST_NET_PKT_WEIGHT`).
const PKT_WEIGHT: usize = 256;
/// Bytes per round before the ring yields (C's `VHOST_NET_WEIGHT`).
const BYTE_WEIGHT: usize = 0x80000;
/// Used entries batched before they are published (`VHOST_NET_BATCH`).
const BATCH: usize = 64;
/// Room for used entries: a batch plus one packet's worth of heads.
const HEADS: usize = UIO_MAXIOV + BATCH;
/// Size of `struct virtio_net_hdr`, the part of the header before
/// `num_buffers`.
const VNET_HDR_LEN: usize = 10;
/// Zerocopy only pays off from this many bytes (C's `VHOST_GOODCOPY_LEN`).
const GOODCOPY_LEN: usize = 256;
/// Most zerocopy packets in flight, also bounded by a quarter of the ring
/// (C's `VHOST_MAX_PEND`).
const MAX_PEND: usize = 128;
/// Pieces a ring-metadata access may span through the IOTLB (C's
/// `vq->iotlb_iov`).
const META_PIECES: usize = 64;

// A `Piece` is passed to the socket as a `struct iovec` without copying.
const _: () = {
    assert!(core::mem::size_of::<Piece>() == core::mem::size_of::<bindings::iovec>());
    assert!(core::mem::align_of::<Piece>() == core::mem::align_of::<bindings::iovec>());
};

/// Views pieces as iovecs.
fn as_iovecs(pieces: &[Piece]) -> &[bindings::iovec] {
    // SAFETY: `Piece` is `#[repr(C)]` { u64 addr, u64 len } and `iovec` is
    // { void *iov_base, size_t iov_len }: same size and alignment (asserted
    // above) and field offsets on 64-bit, and every bit pattern is valid
    // for both.
    unsafe { core::slice::from_raw_parts(pieces.as_ptr().cast(), pieces.len()) }
}

/// Views used elements as the bytes of the used ring, or `None` on a
/// big-endian machine, where their `u32`s are not little endian.
fn used_elems_as_le_bytes(heads: &[UsedElem]) -> Option<&[u8]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: `UsedElem` is `#[repr(C)]` { u32 id, u32 len } of size 8
    // (asserted in vcore::ring), without padding, so `heads` is
    // `heads.len() * 8` initialised bytes, valid for reads as long as the
    // borrow; `u8` has alignment 1.
    Some(unsafe {
        core::slice::from_raw_parts(heads.as_ptr().cast::<u8>(), core::mem::size_of_val(heads))
    })
}

/// Per-ring buffers of the worker (C's `vq->iov`, `indirect`, `heads`,
/// `log`), allocated with the owner.
pub(crate) struct Scratch {
    iov: KVec<Piece>,
    indirect: KVec<Piece>,
    heads: KVec<UsedElem>,
    log: KVec<LogEntry>,
    /// Used entries collected and not yet published (C's `done_idx`).
    done: usize,
    /// TX packets copied for tun/tap and not yet handed over.
    xdp: XdpBatch,
}

impl Scratch {
    /// Buffers for one ring.
    pub(crate) fn new() -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                iov: KVec::from_elem(Piece::default(), UIO_MAXIOV, GFP_KERNEL)?,
                indirect: KVec::from_elem(Piece::default(), UIO_MAXIOV, GFP_KERNEL)?,
                heads: KVec::from_elem(UsedElem::default(), HEADS, GFP_KERNEL)?,
                log: KVec::from_elem(LogEntry::default(), HEADS, GFP_KERNEL)?,
                done: 0,
                xdp: XdpBatch::new()?,
            },
            GFP_KERNEL,
        )?)
    }
}

/// The owner's memory as the ring code sees it (C's `vhost_get_user`,
/// `vhost_put_user`, `vhost_copy_to_user` and `set_bit_to_user`).
struct OwnerMem<'a> {
    iotlb: Option<&'a Iotlb>,
    log_ctx: Option<&'a EventFdCtx>,
}

impl OwnerMem<'_> {
    /// Copies between `buf` and ring memory at `addr` through the IOTLB
    /// (`access` is what C asks the mapping for). Out of line: its
    /// translation scratch would otherwise cost every ring access without
    /// an IOTLB a large stack frame (make profile).
    #[inline(never)]
    fn through_iotlb(
        iotlb: &Iotlb,
        addr: u64,
        len: usize,
        access: u32,
        mut f: impl FnMut(u64, usize, usize) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut pieces = [Piece::default(); META_PIECES];
        let len = u32::try_from(len).map_err(|_| Errno::EFAULT)?;
        let n = iotlb
            .lock()
            .translate(addr, len, access, &mut pieces)
            .map_err(|_| Errno::EFAULT)?;
        // The pieces add up to `len` (`IntervalMap::translate`), so `done`
        // and `done + p.len` stay at most `len`.
        let mut done = 0usize;
        for p in &pieces[..n] {
            f(p.addr, done, p.len as usize)?;
            done += p.len as usize;
        }
        Ok(())
    }
}

impl DirtyBitmap for OwnerMem<'_> {
    fn set_log_bits(&self, uaddr: u64, mask: u8) -> Result<(), Errno> {
        usermem::set_bits_to_user(uaddr, mask).map_err(|_| Errno::EFAULT)
    }
}

impl RingMemory for OwnerMem<'_> {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let Some(iotlb) = self.iotlb else {
            return usermem::copy_from_user(uaddr, buf).map_err(|_| Errno::EFAULT);
        };
        let len = buf.len();
        Self::through_iotlb(iotlb, uaddr, len, PERM_RO, |a, off, n| {
            usermem::copy_from_user(a, &mut buf[off..off + n]).map_err(|_| Errno::EFAULT)
        })
    }

    fn write(&self, uaddr: u64, data: &[u8]) -> Result<(), Errno> {
        let Some(iotlb) = self.iotlb else {
            return usermem::copy_to_user(uaddr, data).map_err(|_| Errno::EFAULT);
        };
        Self::through_iotlb(iotlb, uaddr, data.len(), PERM_WO, |a, off, n| {
            usermem::copy_to_user(a, &data[off..off + n]).map_err(|_| Errno::EFAULT)
        })
    }

    fn read_u16(&self, uaddr: u64) -> Result<u16, Errno> {
        if self.iotlb.is_none() {
            // Ring indices and heads: `get_user`, as C.
            return usermem::get_user_u16(uaddr)
                .map(u16::from_le)
                .map_err(|_| Errno::EFAULT);
        }
        let mut b = [0u8; 2];
        self.read(uaddr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn write_used_elem(&self, uaddr: u64, elem: UsedElem) -> Result<(), Errno> {
        let bytes = elem.to_le_bytes();
        if self.iotlb.is_none() {
            // One `put_user` of the whole element (C: one per field).
            return usermem::put_user_u64(uaddr, u64::from_ne_bytes(bytes))
                .map_err(|_| Errno::EFAULT);
        }
        self.write(uaddr, &bytes)
    }

    fn write_used_elems(&self, uaddr: u64, heads: &[UsedElem]) -> Result<(), Errno> {
        match used_elems_as_le_bytes(heads) {
            // As C: one `copy_to_user` of the elements as they lie, no
            // stack buffer to fill (make profile, RX 64 KiB: 16 elements a
            // packet).
            Some(bytes) if self.iotlb.is_none() => {
                usermem::copy_to_user(uaddr, bytes).map_err(|_| Errno::EFAULT)
            }
            _ => write_used_elems_buffered(self, uaddr, heads),
        }
    }

    fn write_u16(&self, uaddr: u64, value: u16) -> Result<(), Errno> {
        let data = value.to_le_bytes();
        let Some(iotlb) = self.iotlb else {
            return usermem::put_user_u16(uaddr, u16::from_ne_bytes(data))
                .map_err(|_| Errno::EFAULT);
        };
        // C's `vhost_put_user` translates with read permission.
        Self::through_iotlb(iotlb, uaddr, 2, PERM_RO, |a, off, n| {
            usermem::copy_to_user(a, &data[off..off + n]).map_err(|_| Errno::EFAULT)
        })
    }

    fn rmb(&self) {
        usermem::smp_rmb();
    }

    fn wmb(&self) {
        usermem::smp_wmb();
    }

    fn mb(&self) {
        usermem::smp_mb();
    }

    fn log_signal(&self) {
        if let Some(ctx) = self.log_ctx {
            ctx.signal();
        }
    }
}

/// Guest-address translation for one ring (C's `translate_desc`): the
/// device IOTLB if there is one (a miss queues a `VHOST_IOTLB_MISS` for
/// userspace), else the memory table.
struct GuestXlate<'a> {
    umem: Option<&'a GuestMap>,
    iotlb: Option<&'a Iotlb>,
    msgs: &'a Msgs,
    vq: usize,
    v2: bool,
}

impl Translate for GuestXlate<'_> {
    fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError> {
        if let Some(iotlb) = self.iotlb {
            return self.through_iotlb(iotlb, addr, len, access, out);
        }
        match self.umem {
            Some(umem) => umem.translate(addr, len, access, out),
            None => Err(TranslateError::Miss { addr }),
        }
    }

    fn device_iotlb(&self) -> bool {
        self.iotlb.is_some()
    }

    fn umem_region(&self, index: usize) -> Option<Entry> {
        self.umem.and_then(|u| u.get(index).copied())
    }
}

/// Queues an IOTLB miss of ring `index` for userspace (C's
/// `vhost_iotlb_miss`), in the format the ring's backend features ask for.
/// If the message cannot be allocated the ring retries on its next kick.
pub(crate) fn queue_miss(msgs: &Msgs, vq: &Vq, index: usize, iova: u64, access: u32) {
    let v2 = has_feature(vq.acked_backend_features, VHOST_BACKEND_F_IOTLB_MSG_V2);
    enqueue_miss(msgs, index, v2, iova, access);
}

/// Queues a `VHOST_IOTLB_MISS` message.
fn enqueue_miss(msgs: &Msgs, index: usize, v2: bool, iova: u64, access: u32) {
    let _ = msgs.enqueue(MsgNode {
        vq: index,
        v2,
        iotlb: VhostIotlbMsg {
            iova,
            size: 0,
            uaddr: 0,
            perm: access as u8,
            type_: VHOST_IOTLB_MISS,
            padding: [0; 6],
        },
    });
}

/// Logs the write of `used->flags` made when a backend is attached, and
/// signals the log eventfd (C's `vhost_update_used_flags` with `log_used`).
pub(crate) fn log_used_flags(msgs: &Msgs, vq: &Vq, index: usize) {
    let mem = OwnerMem {
        iotlb: vq.iotlb.as_deref(),
        log_ctx: vq.log_ctx.as_deref(),
    };
    let xlate = GuestXlate::new(
        msgs,
        index,
        vq.umem.as_deref(),
        vq.iotlb.as_deref(),
        vq.acked_backend_features,
    );
    // Barrier 5 of vcore::ring: the flags are in memory before the log.
    mem.wmb();
    if vq.iotlb.is_some() {
        // The used ring is an IOVA: log what it maps to (at most the
        // pieces C has room for), by guest address through the table.
        let mut pieces = [Piece::default(); META_PIECES];
        if let Ok(n) = xlate.translate(vq.used, 2, PERM_WO, &mut pieces) {
            for p in &pieces[..n] {
                let _ = log_write_hva(&mem, vq.log_base, |i| xlate.umem_region(i), p.addr, p.len);
            }
        }
    } else {
        let _ = log_write(&mem, vq.log_base, vq.log_addr, 2);
    }
    mem.log_signal();
}

impl<'a> GuestXlate<'a> {
    /// The translation of ring `index`, from the ring's fields.
    fn new(
        msgs: &'a Msgs,
        index: usize,
        umem: Option<&'a GuestMap>,
        iotlb: Option<&'a Iotlb>,
        acked_backend_features: u64,
    ) -> Self {
        GuestXlate {
            umem,
            iotlb,
            msgs,
            vq: index,
            v2: has_feature(acked_backend_features, VHOST_BACKEND_F_IOTLB_MSG_V2),
        }
    }

    /// Translates through the device IOTLB, queueing a miss for userspace.
    /// Out of line, to keep the memory-table path small (make profile).
    #[inline(never)]
    fn through_iotlb(
        &self,
        iotlb: &Iotlb,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError> {
        let r = iotlb.lock().translate(addr, len, access, out);
        if let Err(TranslateError::Miss { addr }) = r {
            self.miss(addr, access);
        }
        r
    }

    /// Queues a miss for userspace (C's `vhost_iotlb_miss`).
    fn miss(&self, iova: u64, access: u32) {
        enqueue_miss(self.msgs, self.vq, self.v2, iova, access);
    }

    /// C's `vq_meta_prefetch`: with a device IOTLB, the three rings must be
    /// mapped before a round starts; a miss is queued and the round skipped.
    fn prefetch_rings(&self, vq: &Vq) -> bool {
        if vq.desc == 0 && vq.avail == 0 && vq.used == 0 {
            return false;
        }
        if self.iotlb.is_none() {
            return true;
        }
        let event = vq.has_feature(crate::vcore::uapi::VIRTIO_RING_F_EVENT_IDX);
        let mut scratch = [Piece::default(); 1];
        let mut covered = |addr: u64, size: u64, access: u32| -> bool {
            let mut at = addr;
            let end = addr.wrapping_add(size);
            while at != end {
                let left = end.wrapping_sub(at).min(u64::from(u32::MAX)) as u32;
                match self.translate(at, left, access, &mut scratch) {
                    Ok(_) | Err(TranslateError::NoBufs) => {}
                    Err(_) => return false,
                }
                at = at.wrapping_add(scratch[0].len.max(1));
            }
            true
        };
        covered(vq.desc, crate::vcore::validate::desc_size(vq.num), PERM_RO)
            && covered(
                vq.avail,
                crate::vcore::validate::avail_size(vq.num, event),
                PERM_RO,
            )
            && covered(
                vq.used,
                crate::vcore::validate::used_size(vq.num, event),
                PERM_WO,
            )
    }
}

/// C's `vq_meta_prefetch` for ring `index`.
fn prefetch(dev: &VhostNet, vq: &Vq, index: usize) -> bool {
    if vq.iotlb.is_none() {
        // Nothing to map: only a ring with addresses runs.
        return !(vq.desc == 0 && vq.avail == 0 && vq.used == 0);
    }
    GuestXlate::new(
        dev.msgs(),
        index,
        vq.umem.as_deref(),
        vq.iotlb.as_deref(),
        vq.acked_backend_features,
    )
    .prefetch_rings(vq)
}

/// The kernel around a ring's busy poll.
struct KernelPoll<'a>(&'a VhostNet);

impl PollHost for KernelPoll<'_> {
    #[inline]
    fn clock(&self) -> u64 {
        usermem::busy_clock()
    }

    #[inline]
    fn need_resched(&self) -> bool {
        usermem::need_resched()
    }

    #[inline]
    fn signal_pending(&self) -> bool {
        kernel::current!().signal_pending()
    }

    #[inline]
    fn has_work(&self) -> bool {
        self.0.worker().has_pending()
    }

    #[inline]
    fn stopping(&self) -> bool {
        self.0.stopping()
    }
}

/// Spins up to `budget_us` microseconds (C's `vhost_net_busy_poll`, with
/// its clock and exit conditions) until `ready()` holds; a release of the
/// device ends it too (src/core/busypoll.rs).
///
/// C also polls the paired ring, taking its mutex with a trylock; the 6.12
/// kernel crate has no `try_lock`, so each ring polls its own sources (TX:
/// its available ring; RX: the socket and its available ring). See
/// Documentation/differences.rst.
#[inline]
fn busy_poll(dev: &VhostNet, budget_us: u32, ready: impl FnMut() -> bool) -> BusyPoll {
    busypoll::busy_poll(&KernelPoll(dev), budget_us, ready)
}

/// Whether a round has done enough (C's `vhost_exceeds_weight`); if so the
/// ring is queued again so other work gets the worker first. (A round
/// also ends after `MAX_ROUND_READS` descriptor reads: the ring answers
/// `RingError::Yield`.)
///
/// A round stops once this holds, so its counters grow by plain additions
/// from below the weights, by one packet (under 2^42 bytes, see
/// `Chain::len`) at a time: they cannot overflow.
fn exceeds_weight(dev: &VhostNet, bit: u32, pkts: usize, bytes: usize) -> bool {
    if bytes >= BYTE_WEIGHT || pkts >= PKT_WEIGHT {
        dev.worker().queue(bit);
        return true;
    }
    false
}

/// Everything a round needs from a locked ring.
struct Round<'a> {
    ring: &'a mut SplitRing,
    scratch: &'a mut Scratch,
    mem: OwnerMem<'a>,
    xlate: GuestXlate<'a>,
    call: Option<&'a EventFdCtx>,
    err: Option<&'a EventFdCtx>,
    /// The TX ring's zerocopy state, with `experimental_zcopytx`.
    zc: Option<&'a mut ZcRing>,
}

impl Round<'_> {
    /// Records a sent TX chain for the used ring (length 0, as in C).
    /// TX rounds publish at `BATCH` entries (or at once), so `done` is
    /// below `BATCH < HEADS` here.
    fn push_used(&mut self, head: u16) {
        let done = self.scratch.done;
        self.scratch.heads[done] = UsedElem {
            id: u32::from(head),
            len: 0,
        };
        self.scratch.done += 1;
    }

    /// Reports a ring error to userspace (C's `vq_err`).
    fn vq_err(&self) {
        if let Some(err) = self.err {
            err.signal();
        }
    }

    /// Publishes the collected used entries and interrupts the guest if it
    /// wants (C's `vhost_add_used_and_signal_n`).
    fn signal_used(&mut self) {
        let n = self.scratch.done;
        if n == 0 {
            return;
        }
        self.scratch.done = 0;
        if self
            .ring
            .add_used(&self.mem, &self.xlate, &self.scratch.heads[..n])
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

    /// Publishes, in order, the zerocopy chains whose pages the socket
    /// released, up to the first still in flight (C's
    /// `vhost_zerocopy_signal_used`).
    fn zc_signal_used(&mut self) {
        loop {
            let Some(z) = self.zc.as_deref_mut() else {
                return;
            };
            // `done <= heads.len()` always; `added < room` below keeps
            // `done + added` an index of `heads`. `errs` is bounded by the
            // packets since `tx_packet` cleared it plus those in flight.
            let room = self.scratch.heads.len() - self.scratch.done;
            let mut added = 0;
            while z.done != z.upend && added < room {
                match z.zc.status(z.done) {
                    FAILED => z.errs += 1,
                    DONE => {}
                    _ => break,
                }
                z.zc.set_status(z.done, zcopy::CLEAR);
                self.scratch.heads[self.scratch.done + added] = UsedElem {
                    id: u32::from(z.ids[z.done]),
                    len: 0,
                };
                added += 1;
                z.done = (z.done + 1) % SLOTS;
            }
            self.scratch.done += added;
            self.signal_used();
            if added < room {
                return;
            }
        }
    }

    /// Hands the TX batch to the socket, then publishes the used entries
    /// (C's `vhost_tx_batch`). If the socket refuses the batch, C reports
    /// it and forgets those used entries too; so does this.
    fn tx_batch(&mut self, sock: &Socket) {
        if self.scratch.xdp.len() != 0 && self.scratch.xdp.send(sock).is_err() {
            self.vq_err();
            self.scratch.done = 0;
            return;
        }
        self.signal_used();
    }

    /// Re-enables guest kicks; returns whether buffers arrived meanwhile
    /// (then kicks are disabled again and the caller retries).
    fn enable_notify_raced(&mut self) -> bool {
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
    fn disable_notify(&mut self) {
        if self
            .ring
            .disable_notify(&self.mem, &self.xlate)
            .error
            .is_some()
        {
            self.vq_err();
        }
    }
}

/// Splits a locked ring into its socket and a round, if the ring is set up
/// (addresses valid and a worker to run it).
fn split<'a>(
    dev: &'a VhostNet,
    vq: &'a mut Vq,
    index: usize,
) -> Option<(Option<&'a mut Socket>, Round<'a>)> {
    let Vq {
        acked_backend_features,
        backend,
        ring,
        scratch,
        iotlb,
        log_ctx,
        umem,
        call,
        err,
        zc,
        ..
    } = vq;
    let (Some(ring), Some(scratch)) = (ring.as_mut(), scratch.as_deref_mut()) else {
        return None;
    };
    let round = Round {
        ring,
        scratch,
        mem: OwnerMem {
            iotlb: iotlb.as_deref(),
            log_ctx: log_ctx.as_deref(),
        },
        xlate: GuestXlate::new(
            dev.msgs(),
            index,
            umem.as_deref(),
            iotlb.as_deref(),
            *acked_backend_features,
        ),
        call: call.as_ref(),
        err: err.as_ref(),
        zc: zc.as_deref_mut(),
    };
    Some((backend.as_mut(), round))
}

/// The socket and round of a ring with a backend; returns from the caller
/// otherwise.
macro_rules! round {
    ($dev:expr, $vq:expr, $index:expr) => {{
        match split($dev, $vq, $index) {
            Some((Some(sock), round)) => (sock, round),
            _ => return,
        }
    }};
}

/// The next chain the guest posted for TX, checked as C's `get_tx_bufs`:
/// its head, how many pieces it has in the scratch iovecs, and its length
/// without the vhost header (the pieces hold `hlen` bytes more, the
/// whole `Chain::len`). `None` ends the round: nothing posted (kicks
/// re-enabled, after an optional busy poll), an IOTLB miss, or a broken
/// ring (reported).
///
/// With a busy-poll budget, every fetch that finds the ring empty spins
/// once before giving up, as C's `vhost_net_tx_get_vq_desc` does: not
/// once per round, or a ring that keeps running dry for a moment would
/// sleep (and be woken by a kick) after its first spin.
#[inline(always)]
fn tx_chain(
    dev: &VhostNet,
    r: &mut Round<'_>,
    sock: &Socket,
    hlen: usize,
    busyloop_us: u32,
) -> Option<(u16, usize, usize)> {
    let mut busy_polled = false;
    loop {
        let Scratch { iov, indirect, .. } = &mut *r.scratch;
        let bufs = ChainBufs {
            iov: iov.as_mut_slice(),
            indirect: indirect.as_mut_slice(),
            log: None,
            reads: MAX_PACKET_READS,
        };
        let chain = match r.ring.get_desc_chain(&r.mem, &r.xlate, bufs) {
            Ok(Some(c)) => c,
            Ok(None) => {
                if busyloop_us != 0 && !busy_polled {
                    // Publish what was sent, then spin briefly for more
                    // before going back to kicks.
                    busy_polled = true;
                    r.tx_batch(sock);
                    match busy_poll(dev, busyloop_us, || !r.ring.avail_empty(&r.mem).value) {
                        BusyPoll::Ready => continue,
                        BusyPoll::Interrupted => {
                            dev.worker().queue(WORK_TX);
                            return None;
                        }
                        BusyPoll::TimedOut => {}
                    }
                }
                if r.enable_notify_raced() {
                    continue;
                }
                return None;
            }
            Err(RingError::IotlbMiss { .. }) => return None,
            Err(RingError::Yield) => {
                dev.worker().queue(WORK_TX);
                return None;
            }
            Err(RingError::Broken(_)) => {
                r.vq_err();
                return None;
            }
        };
        if chain.in_num != 0 {
            // C: "Unexpected descriptor format for TX".
            r.vq_err();
            return None;
        }
        let len = (chain.len as usize).saturating_sub(hlen);
        if len == 0 {
            // C: "Unexpected header len for TX".
            r.vq_err();
            return None;
        }
        return Some((chain.head, chain.out_num, len));
    }
}

/// Whether a send error means "no room now, retry the chain later".
fn tx_retry(e: Error) -> bool {
    e == EAGAIN || e == ENOMEM || e.to_errno() == -Errno::ENOBUFS.0
}

/// Runs the TX ring: sends what the guest posted (C's `handle_tx`), by
/// copying, or without copying when zerocopy is on and the socket can.
pub(crate) fn handle_tx(dev: &VhostNet, vqm: &Mutex<Vq>) {
    let mut guard = vqm.lock();
    let vq = &mut *guard;
    let hlen = vq.vhost_hlen;
    let sock_hlen = vq.sock_hlen;
    let busyloop_us = vq.busyloop_timeout;
    let num = vq.num as usize;
    let poll = dev.sock_poll(1);
    if !prefetch(dev, vq, 1) {
        return;
    }
    let (sock, mut r) = round!(dev, vq, 1);
    r.ring.start_round();
    r.disable_notify();
    // SAFETY: Serialised by the ring mutex we hold.
    unsafe { poll.stop() };
    let t = TxRound {
        dev,
        poll,
        hlen,
        busyloop_us,
    };
    if r.zc.is_some() && sock.zerocopy() {
        t.zerocopy(sock, &mut r, num);
    } else {
        t.copy(sock, &mut r, sock_hlen);
    }
    vq.sync_indices();
}

/// What a TX round needs besides the ring.
struct TxRound<'a> {
    dev: &'a VhostNet,
    /// The socket poll, restarted when the socket is full.
    poll: &'a PollEntry<Worker>,
    hlen: usize,
    busyloop_us: u32,
}

impl TxRound<'_> {
    /// The socket is full: give the chain back and wait for room.
    fn socket_full(&self, r: &mut Round<'_>, sock: &Socket) {
        r.ring.discard(1);
        // SAFETY: Serialised by the ring mutex; the ring holds the socket
        // until the poll is stopped.
        let _ = unsafe { self.poll.start(sock.file()) };
    }

    /// C's `handle_tx_copy`.
    fn copy(&self, sock: &Socket, r: &mut Round<'_>, sock_hlen: usize) {
        let (dev, hlen) = (self.dev, self.hlen);
        let mut bytes = 0usize;
        let mut pkts = 0usize;
        // C batches into tun/tap only when their send buffer is unlimited.
        let can_batch = sock.can_batch();
        loop {
            if r.scratch.done == BATCH {
                r.tx_batch(sock);
            }
            let Some((head, out_num, len)) = tx_chain(dev, r, sock, hlen, self.busyloop_us) else {
                break;
            };
            let pieces = &r.scratch.iov[..out_num];
            bytes += len;
            let mut more = 0;
            if can_batch {
                match r.scratch.xdp.build(sock, sock_hlen, pieces, hlen, len) {
                    Ok(()) => {
                        r.push_used(head);
                        pkts += 1;
                        if exceeds_weight(dev, WORK_TX, pkts, bytes) {
                            break;
                        }
                        continue;
                    }
                    Err(BuildError::TooBig) => {
                        // Sent on its own, after what is batched.
                        r.tx_batch(sock);
                    }
                    Err(BuildError::Failed) => {
                        r.tx_batch(sock);
                        self.socket_full(r, sock);
                        break;
                    }
                }
            } else if bytes < BYTE_WEIGHT && !r.ring.avail_empty(&r.mem).value {
                more = bindings::MSG_MORE;
            }
            let pieces = &r.scratch.iov[..out_num];
            // SAFETY: The chain's pieces hold `hlen + len` bytes (`tx_chain`).
            match unsafe { sock.sendmsg(as_iovecs(pieces), hlen, len, more, None) } {
                Err(e) if tx_retry(e) => {
                    self.socket_full(r, sock);
                    break;
                }
                // Other errors and short sends drop the packet, as in C.
                _ => {}
            }
            r.push_used(head);
            pkts += 1;
            if exceeds_weight(dev, WORK_TX, pkts, bytes) {
                break;
            }
        }
        r.tx_batch(sock);
    }

    /// C's `handle_tx_zerocopy`: packets of at least `GOODCOPY_LEN` bytes
    /// go to the socket on the guest's pages while few are in flight; their
    /// chains reach the used ring when the socket releases the pages, in
    /// the order they were sent. Shorter ones are copied and used at once.
    fn zerocopy(&self, sock: &Socket, r: &mut Round<'_>, num: usize) {
        let (dev, hlen) = (self.dev, self.hlen);
        let mut bytes = 0usize;
        let mut pkts = 0usize;
        loop {
            // Give back what the socket released first.
            r.zc_signal_used();
            let Some((head, out_num, len)) = tx_chain(dev, r, sock, hlen, self.busyloop_us) else {
                break;
            };
            let Some(z) = r.zc.as_deref_mut() else {
                break;
            };
            let use_zc = len >= GOODCOPY_LEN && !z.exceeds_maxpend(num) && z.select();
            let mut ctl = TunMsgCtl::new();
            let slot = z.upend;
            if use_zc {
                z.ids[slot] = head;
                // SAFETY: We hold the ring mutex; `slot` is not armed: the
                // slots from `done` to `upend` are the armed ones and
                // `exceeds_maxpend` keeps `upend` from reaching `done`.
                unsafe { z.zc.arm(slot, &mut ctl) };
                z.upend = (slot + 1) % SLOTS;
            }
            bytes += len;
            let more = if bytes < BYTE_WEIGHT
                && !r.ring.avail_empty(&r.mem).value
                && !z.exceeds_maxpend(num)
            {
                bindings::MSG_MORE
            } else {
                0
            };
            let pieces = &r.scratch.iov[..out_num];
            // SAFETY: The chain's pieces hold `hlen + len` bytes (`tx_chain`).
            let sent = unsafe {
                sock.sendmsg(
                    as_iovecs(pieces),
                    hlen,
                    len,
                    more,
                    use_zc.then_some(&mut ctl),
                )
            };
            if let Err(e) = sent {
                let retry = tx_retry(e);
                if use_zc {
                    // The socket took no pages, or released them already
                    // (then the callback has run and dropped the
                    // reference).
                    if z.zc.status(slot) == IN_PROGRESS {
                        z.zc.put();
                    }
                    if retry {
                        z.upend = slot;
                    } else {
                        z.zc.set_status(slot, DONE);
                    }
                }
                if retry {
                    self.socket_full(r, sock);
                    break;
                }
                // Other errors drop the packet, as in C.
            }
            z.tx_packet();
            if use_zc {
                r.zc_signal_used();
            } else {
                r.push_used(head);
                r.signal_used();
            }
            pkts += 1;
            if exceeds_weight(dev, WORK_TX, pkts, bytes) {
                break;
            }
        }
    }
}

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
    pub(crate) zc: Arc<Zcopy>,
    ids: KVec<u16>,
    upend: usize,
    done: usize,
    /// A flush waits for the packets in flight: arm no new ones.
    pub(crate) flushing: bool,
    /// Packets sent since the error count was last cleared.
    packets: u32,
    /// Zerocopy packets the socket had to copy after all.
    errs: u32,
}

impl ZcRing {
    /// Zerocopy state for the TX ring served by `worker`.
    pub(crate) fn new(worker: Arc<Worker>) -> Result<KBox<Self>> {
        let zc = Zcopy::new(worker)?;
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
    fn exceeds_maxpend(&self, num: usize) -> bool {
        // Both indices are below `SLOTS` (type invariant): no wrap.
        (self.upend + SLOTS - self.done) % SLOTS > MAX_PEND.min(num >> 2)
    }

    /// Whether zerocopy is worth trying: not while flushing, and not while
    /// more than one packet in 64 ended up copied anyway (C's
    /// `vhost_net_tx_select_zcopy`).
    fn select(&self) -> bool {
        !self.flushing && self.packets / 64 >= self.errs
    }

    /// Counts a sent packet; every 1024 the error count starts over (C's
    /// `vhost_net_tx_packet`).
    fn tx_packet(&mut self) {
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

/// Gives the chains the socket released back to the guest, on ring
/// `vq` (the TX ring) whether or not it has a backend (C's
/// `vhost_zerocopy_signal_used` after a backend change).
pub(crate) fn zerocopy_signal_used(dev: &VhostNet, vq: &mut Vq) {
    if vq.zc.is_none() {
        return;
    }
    if let Some((_, mut r)) = split(dev, vq, 1) {
        r.zc_signal_used();
    }
    vq.sync_indices();
}

/// Runs the RX ring: fills the guest's buffers from the socket (C's
/// `handle_rx`).
pub(crate) fn handle_rx(dev: &VhostNet, vqm: &Mutex<Vq>) {
    let mut guard = vqm.lock();
    let vq = &mut *guard;
    let vhost_hlen = vq.vhost_hlen;
    let sock_hlen = vq.sock_hlen;
    let mergeable = vq.has_feature(VIRTIO_NET_F_MRG_RXBUF);
    let log_all = vq.has_feature(VHOST_F_LOG_ALL);
    let log_base = vq.log_base;
    let busyloop_us = vq.busyloop_timeout;
    let poll = dev.sock_poll(0);
    if !prefetch(dev, vq, 0) {
        return;
    }
    let (sock, mut r) = round!(dev, vq, 0);
    r.ring.start_round();
    r.disable_notify();
    // SAFETY: Serialised by the ring mutex we hold.
    unsafe { poll.stop() };
    let mut bytes = 0usize;
    let mut pkts = 0usize;
    let mut sock_len;
    let mut hdr = RecvHdr::new();
    // Every pass counts toward the weight, the ones that drop a packet or
    // retry included, as in C's `do { ... continue; ... } while
    // (!vhost_exceeds_weight(vq, ++recv_pkts, total_len))`: a peer that
    // only sends frames too big for the guest's buffers still yields the
    // worker every `PKT_WEIGHT` frames.
    'round: loop {
        'pass: {
            sock_len = sock.peek_len();
            if sock_len == 0 && busyloop_us != 0 {
                // As C's `vhost_net_rx_peek_head_len`: each peek that finds
                // the socket empty spins once before the round gives up.
                r.signal_used();
                let ready = || sock.peek_len() != 0 && !r.ring.avail_empty(&r.mem).value;
                match busy_poll(dev, busyloop_us, ready) {
                    BusyPoll::Ready => sock_len = sock.peek_len(),
                    BusyPoll::Interrupted => {
                        dev.worker().queue(WORK_RX);
                        break 'round;
                    }
                    BusyPoll::TimedOut => {}
                }
            }
            if sock_len == 0 {
                break 'round;
            }
            // A C `int` length plus two headers of at most 12 bytes.
            sock_len += sock_hlen;
            let vhost_len = sock_len + vhost_hlen;
            let quota = if mergeable { UIO_MAXIOV } else { 1 };
            let got = match get_rx_bufs(&mut r, vhost_len, quota, log_all) {
                Ok(g) => g,
                Err(again) => {
                    if again {
                        dev.worker().queue(WORK_RX);
                    }
                    break 'round;
                }
            };
            let Some(got) = got else {
                if r.enable_notify_raced() {
                    break 'pass;
                }
                break 'round;
            };
            if got.overrun {
                // Too big for the buffers: truncate to nothing and drop it
                // (CVE-2014-0077), the buffers stay with the guest.
                let one = [r.scratch.iov[0]];
                // SAFETY: `iov[0]` is a piece of the first chain, and
                // translated pieces are never empty: it holds a byte.
                let _ = unsafe { sock.recvmsg(&mut hdr, as_iovecs(&one), 0, 1) };
                break 'pass;
            }
            let pieces = &r.scratch.iov[..got.in_num];
            // SAFETY: Not overrun, the pieces hold at least `vhost_len =
            // vhost_hlen + sock_len` bytes (`RxBufs`).
            let r_len = unsafe { sock.recvmsg(&mut hdr, as_iovecs(pieces), vhost_hlen, sock_len) }
                .unwrap_or_default();
            if r_len != sock_len {
                // The packet went away or changed size meanwhile: give the
                // buffers back and go on.
                r.ring.discard(got.heads as u16);
                break 'pass;
            }
            if vhost_hlen != 0 && write_at(pieces, 0, &[0u8; VNET_HDR_LEN]).is_err() {
                r.vq_err();
                break 'round;
            }
            if mergeable
                && write_at(pieces, VNET_HDR_LEN, &(got.heads as u16).to_le_bytes()).is_err()
            {
                r.vq_err();
                r.ring.discard(got.heads as u16);
                break 'round;
            }
            // `get_rx_bufs` found a slot for each head: at most `HEADS`.
            r.scratch.done += got.heads;
            if r.scratch.done > BATCH {
                r.signal_used();
            }
            if log_all {
                let pieces = &r.scratch.iov[..got.in_num];
                let log = &r.scratch.log[..got.log_num];
                if let Ok(true) =
                    log_write_bufs(&r.mem, &r.xlate, log_base, log, vhost_len as u64, pieces)
                {
                    r.mem.log_signal();
                }
            }
            bytes += vhost_len;
        }
        pkts += 1;
        if exceeds_weight(dev, WORK_RX, pkts, bytes) {
            break;
        }
    }
    if sock_len == 0 {
        // SAFETY: Serialised by the ring mutex; the ring holds the socket.
        let _ = unsafe { poll.start(sock.file()) };
    }
    r.signal_used();
    vq.sync_indices();
}

/// The buffers collected for one received packet.
struct RxBufs {
    /// Chains taken (used entries filled at `done..done + heads`).
    heads: usize,
    /// Writable pieces, from the start of `iov`: the chains' pieces, which
    /// hold the chains' `Chain::len`s, at least `datalen` bytes in all
    /// unless `overrun`.
    in_num: usize,
    /// Log entries, from the start of the scratch log.
    log_num: usize,
    /// The packet is larger than the buffers the guest offered.
    overrun: bool,
}

/// Collects chains for a packet of `datalen` bytes (C's `get_rx_bufs`).
/// `Ok(None)`: the ring ran out of buffers (nothing consumed). `Err`: the
/// ring is broken (reported) or missed in the IOTLB, or (`Err(true)`) the
/// round read `MAX_ROUND_READS` descriptors and the ring must run again
/// in a later round; nothing consumed.
///
/// Arithmetic: `datalen` (a packet, nonzero and under 2^32) less at most
/// `quota <= UIO_MAXIOV` chain lengths (each under 2^42) stays far inside
/// `i64`; `heads` and `seg` are bounded by the slots and pieces found; the
/// loop runs at least once (`quota >= 1`), so `heads >= 1` after it.
fn get_rx_bufs(
    r: &mut Round<'_>,
    datalen: usize,
    quota: usize,
    log_all: bool,
) -> Result<Option<RxBufs>, bool> {
    let mut left = datalen as i64;
    let mut heads = 0usize;
    let mut seg = 0usize;
    let mut nlogs = 0usize;
    let mut last_len = 0u32;
    // The packet's descriptor reads, over all its chains.
    let mut reads_left = MAX_PACKET_READS;
    let done = r.scratch.done;
    let fail = |r: &mut Round<'_>, heads: usize, e: Option<RingError>| {
        r.ring.discard(heads as u16);
        if let Some(RingError::Broken(_)) = e {
            r.vq_err();
        }
    };
    while left > 0 && heads < quota {
        if seg >= UIO_MAXIOV {
            fail(r, heads, Some(RingError::Broken(Errno::ENOBUFS)));
            return Err(false);
        }
        let Scratch {
            iov, indirect, log, ..
        } = &mut *r.scratch;
        let bufs = ChainBufs {
            iov: &mut iov[seg..],
            indirect: indirect.as_mut_slice(),
            log: if log_all {
                Some(&mut log[nlogs..])
            } else {
                None
            },
            reads: reads_left,
        };
        let chain = match r.ring.get_desc_chain(&r.mem, &r.xlate, bufs) {
            Ok(Some(c)) => c,
            Ok(None) => {
                fail(r, heads, None);
                return Ok(None);
            }
            Err(e) => {
                fail(r, heads, Some(e));
                return Err(e == RingError::Yield);
            }
        };
        if chain.out_num != 0 || chain.in_num == 0 {
            // C: "unexpected descriptor format for RX". C gives back only
            // the chains taken before this one: the bad chain stays
            // consumed (without a used entry), so the next kick does not
            // meet it again.
            fail(r, heads, Some(RingError::Broken(Errno::EINVAL)));
            return Err(false);
        }
        // `chain.reads` is at most the `reads_left` given.
        reads_left -= chain.reads;
        nlogs += chain.log_num;
        let len = chain.len;
        last_len = len as u32;
        let Some(slot) = r.scratch.heads.get_mut(done + heads) else {
            fail(r, heads + 1, Some(RingError::Broken(Errno::ENOBUFS)));
            return Err(false);
        };
        *slot = UsedElem {
            id: u32::from(chain.head),
            len: last_len,
        };
        left -= len as i64;
        heads += 1;
        seg += chain.in_num;
    }
    // The last buffer holds what is left of the packet.
    r.scratch.heads[done + heads - 1].len = (i64::from(last_len) + left) as u32;
    if left > 0 {
        r.ring.discard(heads as u16);
        return Ok(Some(RxBufs {
            heads,
            in_num: seg,
            log_num: nlogs,
            overrun: true,
        }));
    }
    Ok(Some(RxBufs {
        heads,
        in_num: seg,
        log_num: nlogs,
        overrun: false,
    }))
}

/// Writes `data` at byte `offset` of the buffer made of `pieces`.
fn write_at(pieces: &[Piece], offset: usize, data: &[u8]) -> Result {
    // The merged-buffer count: two bytes in the first piece, `put_user`
    // (C's `copy_to_iter` of it is a call too; the generic copy is longer).
    if let (Ok(v), Some(first)) = (<[u8; 2]>::try_from(data), pieces.first()) {
        if (offset as u64).saturating_add(2) <= first.len {
            let at = first.addr.wrapping_add(offset as u64);
            return usermem::put_user_u16(at, u16::from_ne_bytes(v));
        }
    }
    let mut skip = offset as u64;
    let mut written = 0usize;
    for p in pieces {
        if written == data.len() {
            break;
        }
        if skip >= p.len {
            skip -= p.len;
            continue;
        }
        // `skip < p.len` and `written < data.len()`: no subtraction wraps
        // and `written + n <= data.len()`. The address wraps as C's
        // `iov_base + skip`; the copy checks it (`access_ok`).
        let n = ((p.len - skip) as usize).min(data.len() - written);
        usermem::copy_to_user(p.addr.wrapping_add(skip), &data[written..written + n])?;
        written += n;
        skip = 0;
    }
    if written == data.len() {
        Ok(())
    } else {
        Err(EFAULT)
    }
}
