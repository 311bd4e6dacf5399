// SPDX-License-Identifier: GPL-2.0

//! The control-plane state of one virtqueue, kept under its mutex.

use crate::iotlb::Iotlb;
use crate::kapi::errno;
use crate::kapi::eventfd::{EventFdCtx, EventFdFile};
use crate::kapi::socket::Socket;
use crate::kapi::uaccess::access_ok;
use crate::mem::GuestMap;
use crate::net::{Scratch, ZcRing};
use crate::vcore::features::has_feature;
use crate::vcore::ring::split::{SplitConfig, SplitRing, UsedLog};
use crate::vcore::uapi::{
    VHOST_F_LOG_ALL, VIRTIO_F_NOTIFY_ON_EMPTY, VIRTIO_F_RING_PACKED, VIRTIO_RING_F_EVENT_IDX,
};
use crate::vcore::validate::{self, log_access_range, vhost_overflow};
use kernel::prelude::*;
use kernel::sync::Arc;

/// One virtqueue's configuration and ring indices, as the C module's
/// `struct vhost_virtqueue` (plus `vhost_net_virtqueue`) holds them.
///
/// Ring addresses are the owner's user addresses; 0 means "not set".
///
/// # Invariants
///
/// Whenever the ring mutex is free, `ring` (when set) has the layout,
/// features and used-ring log that `num`, `desc`, `avail`, `used`,
/// `acked_features`, `log_used`, `log_base` and `log_addr` say: every
/// writer of those fields calls [`Vq::sync_ring`] before it unlocks
/// (`VhostNet::for_each_vq`, `VhostNet::vring_ioctl`, [`Vq::start_ring`]),
/// so the worker's rounds use `ring` as it is.
pub(crate) struct Vq {
    /// Ring size (`VHOST_SET_VRING_NUM`); 1 after reset, as in C.
    pub(crate) num: u32,
    /// Descriptor table.
    pub(crate) desc: u64,
    /// Available ring.
    pub(crate) avail: u64,
    /// Used ring.
    pub(crate) used: u64,
    /// Guest address of the used ring, for the dirty log.
    pub(crate) log_addr: u64,
    /// Whether writes to the used ring are logged.
    pub(crate) log_used: bool,
    /// Next available entry to process.
    pub(crate) last_avail_idx: u16,
    /// Cached `avail->idx`.
    pub(crate) avail_idx: u16,
    /// Next used entry to fill.
    pub(crate) last_used_idx: u16,
    /// Whether `signalled_used` is meaningful (event idx).
    pub(crate) signalled_used_valid: bool,
    /// Negotiated virtio features.
    pub(crate) acked_features: u64,
    /// Negotiated backend features.
    pub(crate) acked_backend_features: u64,
    /// Start of the dirty-log bitmap in the owner's memory.
    pub(crate) log_base: u64,
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
    pub(crate) backend: Option<Socket>,
    /// Virtio-net header bytes vhost adds/strips.
    pub(crate) vhost_hlen: usize,
    /// Virtio-net header bytes the socket adds/strips.
    pub(crate) sock_hlen: usize,
    /// The ring state the worker drives, from the first backend on.
    pub(crate) ring: Option<SplitRing>,
    /// The worker's buffers for this ring, from `VHOST_SET_OWNER` on.
    pub(crate) scratch: Option<KBox<Scratch>>,
    /// TX with `experimental_zcopytx`: zerocopy state, from
    /// `VHOST_SET_OWNER` on.
    pub(crate) zc: Option<KBox<ZcRing>>,
}

impl Vq {
    /// A ring in the state `vhost_vq_reset` leaves it in.
    pub(crate) const fn new() -> Self {
        Self {
            num: 1,
            desc: 0,
            avail: 0,
            used: 0,
            log_addr: u64::MAX,
            log_used: false,
            last_avail_idx: 0,
            avail_idx: 0,
            last_used_idx: 0,
            signalled_used_valid: false,
            acked_features: 0,
            acked_backend_features: 0,
            log_base: 0,
            kick: None,
            call: None,
            err: None,
            log_ctx: None,
            busyloop_timeout: 0,
            umem: None,
            iotlb: None,
            backend: None,
            vhost_hlen: 0,
            sock_hlen: 0,
            ring: None,
            scratch: None,
            zc: None,
        }
    }

    /// Brings the ring state up to date with the configuration, after the
    /// control plane changed it (see the type's invariants).
    pub(crate) fn sync_ring(&mut self) {
        let event_idx = self.has_feature(VIRTIO_RING_F_EVENT_IDX);
        let notify_on_empty = self.has_feature(VIRTIO_F_NOTIFY_ON_EMPTY);
        let log = self.log_used.then_some(UsedLog {
            log_base: self.log_base,
            log_addr: self.log_addr,
        });
        if let Some(ring) = &mut self.ring {
            // The size cannot change while a backend is set, and it was
            // valid when the backend was set.
            let _ = ring.set_layout(self.num, self.desc, self.avail, self.used);
            ring.set_features(event_idx, notify_on_empty);
            ring.set_used_log(log);
        }
    }

    /// Copies the ring indices back for the control plane
    /// (`VHOST_GET_VRING_BASE`).
    pub(crate) fn sync_indices(&mut self) {
        if let Some(ring) = &self.ring {
            self.last_avail_idx = ring.last_avail_idx();
            self.avail_idx = ring.avail_idx();
            self.last_used_idx = ring.last_used_idx();
        }
    }

    /// Starts the ring state at the indices the control plane holds, when a
    /// backend is attached (after `init_access` read `last_used_idx`).
    pub(crate) fn start_ring(&mut self) -> Result {
        if self.ring.is_none() {
            let cfg = SplitConfig {
                num: self.num,
                desc: self.desc,
                avail: self.avail,
                used: self.used,
                event_idx: false,
                notify_on_empty: false,
            };
            self.ring = Some(SplitRing::new(&cfg).map_err(errno)?);
        }
        self.sync_ring();
        if let Some(ring) = &mut self.ring {
            ring.set_indices(self.last_avail_idx, self.last_used_idx);
        }
        Ok(())
    }

    /// Forgets the ring addresses when they change meaning (IOTLB on or
    /// off), as C's `vhost_vq_invalidate_access`.
    pub(crate) fn invalidate_access(&mut self) {
        self.desc = 0;
        self.avail = 0;
        self.used = 0;
        self.log_used = false;
        self.log_addr = u64::MAX;
    }

    /// Reports an error of this ring to userspace (C's `vq_err`).
    pub(crate) fn signal_err(&self) {
        if let Some(err) = &self.err {
            err.signal();
        }
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
        let size = validate::used_size(self.num, self.has_feature(VIRTIO_RING_F_EVENT_IDX));
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
            && self.rings_access_ok(self.num, self.desc, self.avail, self.used)
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
