// SPDX-License-Identifier: GPL-2.0

//! The generic virtqueue (C's `struct vhost_virtqueue`), kept under its
//! mutex, and the trait by which a device's own virtqueue embeds it (as
//! C's `struct vhost_net_virtqueue` embeds `vhost_virtqueue`).

use crate::kapi::eventfd::{EventFdCtx, EventFdFile};
use crate::kapi::poll::PollOwner;
use crate::kapi::uaccess::access_ok;
use crate::vcore::features::has_feature;
use crate::vcore::memory::dirtylog::LogEntry;
use crate::vcore::memory::intervalmap::Piece;
use crate::vcore::ring::chain::UIO_MAXIOV;
use crate::vcore::ring::desc::UsedElem;
use crate::vcore::ring::split::{SplitConfig, SplitRing, UsedLog};
use crate::vcore::uapi::{
    VHOST_F_LOG_ALL, VIRTIO_F_IN_ORDER, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_RING_PACKED,
    VIRTIO_RING_F_EVENT_IDX,
};
use crate::vcore::validate::{self, log_access_range, vhost_overflow};
use crate::vhost::iotlb::Iotlb;
use crate::vhost::memmap::GuestMap;
use kernel::prelude::*;
use kernel::sync::Arc;

/// A device's virtqueue: the generic one plus the device's own state (C's
/// `vhost_net_virtqueue` around `vhost_virtqueue`). The generic layer
/// reaches the embedded queue through this trait.
pub(crate) trait DeviceVq: Unpin {
    /// What the device attaches to a ring (C's `private_data`).
    type Backend;

    /// The device's part of the worker's buffers of a ring.
    type Ext;

    /// A ring in the state `vhost_vq_reset` leaves it in.
    fn new() -> Self;

    /// The embedded generic virtqueue.
    fn vq(&self) -> &Vq<Self::Backend, Self::Ext>;

    /// The embedded generic virtqueue, mutably.
    fn vq_mut(&mut self) -> &mut Vq<Self::Backend, Self::Ext>;
}

/// The worker's per-ring buffers (C's `vq->iov`, `indirect`, `heads` and
/// `log`, allocated with the owner, `vhost_dev_alloc_iovecs`), with the
/// device's own part `ext` beside them (one allocation, one pointer for
/// the round to keep).
pub(crate) struct VqBufs<E> {
    /// The pieces of the chains being collected.
    pub(crate) iov: KVec<Piece>,
    /// Room for an indirect table's pieces.
    pub(crate) indirect: KVec<Piece>,
    /// Used entries collected; the first `done` are not yet published.
    pub(crate) heads: KVec<UsedElem>,
    /// How many of `heads` are collected and not yet published (C's
    /// `done_idx`); at most `heads.len()`.
    pub(crate) done: usize,
    /// With `VIRTIO_F_IN_ORDER`, a device that gives several chains back
    /// with one element (RX: one per packet) keeps those elements in
    /// `heads[..ndone]`, `nheads[i]` chains each (C's `vq->nheads`); the
    /// `done` chains' own entries are collected from `heads[ndone..]` on.
    pub(crate) nheads: KVec<u16>,
    /// How many of `heads` and `nheads` are such elements; at most `done`.
    pub(crate) ndone: usize,
    /// Dirty-log entries of the chains being collected.
    pub(crate) log: KVec<LogEntry>,
    /// The device's part.
    pub(crate) ext: E,
}

impl<E> VqBufs<E> {
    /// Buffers for one ring, with room for `heads` used entries.
    pub(crate) fn new(heads: usize, ext: E) -> Result<KBox<Self>> {
        Ok(KBox::new(
            Self {
                iov: KVec::from_elem(Piece::default(), UIO_MAXIOV, GFP_KERNEL)?,
                indirect: KVec::from_elem(Piece::default(), UIO_MAXIOV, GFP_KERNEL)?,
                heads: KVec::from_elem(UsedElem::default(), heads, GFP_KERNEL)?,
                log: KVec::from_elem(LogEntry::default(), heads, GFP_KERNEL)?,
                nheads: KVec::from_elem(0, heads, GFP_KERNEL)?,
                ndone: 0,
                done: 0,
                ext,
            },
            GFP_KERNEL,
        )?)
    }
}

/// One virtqueue's configuration, with the ring state the worker drives.
///
/// The ring's layout and indices have one owner, `ring`: the vring ioctls
/// set and read them there. The log configuration and the negotiated
/// features are kept here and handed to the ring by the setters that change
/// them ([`Vq::set_used_log`], [`Vq::set_features`]), so the worker's
/// rounds use the ring as it is.
///
/// Ring addresses are the owner's user addresses (IOVAs with a device
/// IOTLB); 0 means "not set".
pub(crate) struct Vq<B, E> {
    /// Layout, indices and the worker's ring state.
    pub(crate) ring: SplitRing,
    /// Guest address of the used ring, for the dirty log.
    log_addr: u64,
    /// Whether writes to the used ring are logged.
    log_used: bool,
    /// Start of the dirty-log bitmap in the owner's memory.
    log_base: u64,
    /// Negotiated virtio features.
    acked_features: u64,
    /// Negotiated backend features.
    pub(crate) acked_backend_features: u64,
    /// The guest kicks us through this eventfd.
    pub(crate) kick: Option<EventFdFile>,
    /// We interrupt the guest through this eventfd.
    pub(crate) call: Option<EventFdCtx>,
    /// Errors on this ring are signalled here.
    pub(crate) err: Option<EventFdCtx>,
    /// The device's log eventfd (shared with the device state).
    pub(crate) log_ctx: Option<Arc<EventFdCtx>>,
    /// Busy-poll budget in microseconds.
    pub(crate) busyloop_timeout: u32,
    /// The memory table this ring translates through.
    pub(crate) umem: Option<Arc<GuestMap>>,
    /// The device IOTLB, when in use (then ring addresses are IOVAs).
    pub(crate) iotlb: Option<Arc<Iotlb>>,
    /// The backend; the ring is "active" while it is set (C's
    /// `private_data`).
    pub(crate) backend: Option<B>,
    /// The worker's buffers, from `VHOST_SET_OWNER` on.
    pub(crate) bufs: Option<KBox<VqBufs<E>>>,
    /// Starts and stops the ring's kick poll.
    pub(crate) kick_owner: PollOwner,
}

/// The ring of a reset virtqueue: one entry, no addresses.
const RESET_RING: SplitConfig = SplitConfig {
    num: 1,
    desc: 0,
    avail: 0,
    used: 0,
    event_idx: false,
    notify_on_empty: false,
};

impl<B, E> Vq<B, E> {
    /// A ring in the state `vhost_vq_reset` leaves it in.
    pub(crate) fn new() -> Self {
        Self {
            // One entry is a valid size.
            ring: SplitRing::new(&RESET_RING).unwrap_or_else(|_| unreachable!()),
            log_addr: u64::MAX,
            log_used: false,
            log_base: 0,
            acked_features: 0,
            acked_backend_features: 0,
            kick: None,
            call: None,
            err: None,
            log_ctx: None,
            busyloop_timeout: 0,
            umem: None,
            iotlb: None,
            backend: None,
            bufs: None,
            kick_owner: PollOwner::new(),
        }
    }

    /// Ring size (`VHOST_SET_VRING_NUM`); 1 after reset, as in C.
    pub(crate) fn num(&self) -> u32 {
        self.ring.num()
    }

    /// Descriptor table address.
    pub(crate) fn desc(&self) -> u64 {
        self.ring.desc()
    }

    /// Available ring address.
    pub(crate) fn avail(&self) -> u64 {
        self.ring.avail()
    }

    /// Used ring address.
    pub(crate) fn used(&self) -> u64 {
        self.ring.used()
    }

    /// Guest address of the used ring, for the dirty log.
    pub(crate) fn log_addr(&self) -> u64 {
        self.log_addr
    }

    /// Whether writes to the used ring are logged.
    pub(crate) fn log_used(&self) -> bool {
        self.log_used
    }

    /// Start of the dirty-log bitmap.
    pub(crate) fn log_base(&self) -> u64 {
        self.log_base
    }

    /// Whether the ring has addresses (C's `vq_meta_prefetch` runs only
    /// then).
    pub(crate) fn has_addresses(&self) -> bool {
        !(self.desc() == 0 && self.avail() == 0 && self.used() == 0)
    }

    /// `VHOST_SET_VRING_NUM`: `num` was checked (a power of two from 1 to
    /// 32768, `validate::set_vring_num`).
    pub(crate) fn set_num(&mut self, num: u32) {
        let (desc, avail, used) = (self.desc(), self.avail(), self.used());
        // The size was checked; a refused one leaves the ring as it was.
        let _ = self.ring.set_layout(num, desc, avail, used);
    }

    /// `VHOST_SET_VRING_ADDR`: the ring's addresses and its used-ring log.
    pub(crate) fn set_addrs(&mut self, a: &validate::RingAddrs) {
        let num = self.num();
        // The size is the ring's own, already valid.
        let _ = self.ring.set_layout(num, a.desc, a.avail, a.used);
        self.log_used = a.log_used;
        self.log_addr = a.log_addr;
        self.update_used_log();
    }

    /// `VHOST_SET_LOG_BASE` for this ring.
    pub(crate) fn set_log_base(&mut self, log_base: u64) {
        self.log_base = log_base;
        self.update_used_log();
    }

    /// `VHOST_SET_FEATURES` for this ring.
    pub(crate) fn set_features(&mut self, features: u64) {
        self.acked_features = features;
        let event_idx = self.has_feature(VIRTIO_RING_F_EVENT_IDX);
        let notify_on_empty = self.has_feature(VIRTIO_F_NOTIFY_ON_EMPTY);
        let in_order = self.has_feature(VIRTIO_F_IN_ORDER);
        self.ring.set_features(event_idx, notify_on_empty, in_order);
    }

    /// Hands the log configuration to the ring.
    fn update_used_log(&mut self) {
        let log = self.log_used.then_some(UsedLog {
            log_base: self.log_base,
            log_addr: self.log_addr,
        });
        self.ring.set_used_log(log);
    }

    /// Forgets the ring addresses when they change meaning (IOTLB on or
    /// off), as C's `vhost_vq_invalidate_access`.
    pub(crate) fn invalidate_access(&mut self) {
        let num = self.num();
        // The size is the ring's own, already valid.
        let _ = self.ring.set_layout(num, 0, 0, 0);
        self.log_used = false;
        self.log_addr = u64::MAX;
        self.update_used_log();
    }

    /// Whether a feature bit was negotiated.
    pub(crate) fn has_feature(&self, bit: u32) -> bool {
        has_feature(self.acked_features, bit)
    }

    /// Whether the ring uses the packed layout.
    pub(crate) fn packed(&self) -> bool {
        self.has_feature(VIRTIO_F_RING_PACKED)
    }

    /// `vq_access_ok`: the three rings of `num` entries at the given
    /// addresses are user memory (IOVAs are checked at translation time).
    pub(crate) fn rings_access_ok(&self, num: u32, desc: u64, avail: u64, used: u64) -> bool {
        if self.iotlb.is_some() {
            return true;
        }
        let event = self.has_feature(VIRTIO_RING_F_EVENT_IDX);
        access_ok(desc, validate::desc_size(num))
            && access_ok(avail, validate::avail_size(num, event))
            && access_ok(used, validate::used_size(num, event))
    }

    /// `vq_log_used_access_ok`: the log bits of the used ring are writable.
    pub(crate) fn log_used_access_ok(&self, log_base: u64, log_used: bool, log_addr: u64) -> bool {
        if self.iotlb.is_some() || !log_used {
            return true;
        }
        let size = validate::used_size(self.num(), self.has_feature(VIRTIO_RING_F_EVENT_IDX));
        log_range_ok(log_base, log_addr, size)
    }

    /// `vq_log_access_ok`: memory and used ring can be logged at `log_base`.
    pub(crate) fn log_access_ok(&self, log_base: u64) -> bool {
        memory_access_ok(
            log_base,
            self.umem.as_deref(),
            self.has_feature(VHOST_F_LOG_ALL),
        ) && self.log_used_access_ok(log_base, self.log_used, self.log_addr)
    }

    /// `vhost_vq_access_ok`: everything the ring will touch is accessible.
    pub(crate) fn access_ok(&self) -> bool {
        self.log_access_ok(self.log_base)
            && self.rings_access_ok(self.num(), self.desc(), self.avail(), self.used())
    }
}

/// `log_access_ok`: the bitmap bytes that cover `[addr, addr + size)` are
/// user memory.
pub(crate) fn log_range_ok(log_base: u64, addr: u64, size: u64) -> bool {
    match log_access_range(log_base, addr, size) {
        Some(r) => access_ok(r.start, r.len),
        None => false,
    }
}

/// `vq_memory_access_ok`: every region of `umem` is user memory and, with
/// `log_all`, can be logged at `log_base`. No table at all is not OK.
pub(crate) fn memory_access_ok(log_base: u64, umem: Option<&GuestMap>, log_all: bool) -> bool {
    let Some(umem) = umem else {
        return false;
    };
    umem.iter().all(|e| {
        !vhost_overflow(e.addr, e.size())
            && access_ok(e.addr, e.size())
            && (!log_all || log_range_ok(log_base, e.start, e.size()))
    })
}
