// SPDX-License-Identifier: GPL-2.0

//! The owner's memory and the guest's addresses as a worker round reaches
//! them (C's `vhost_get_user`/`vhost_put_user`/`copy_to_user` through the
//! IOTLB, `translate_desc`, `vhost_iotlb_miss`, `vq_meta_prefetch` and the
//! used-flag logging of `vhost_update_used_flags`).
//!
//! Everything here runs in a thread of the owner process (the worker, or
//! the ioctl caller), so the ring and buffer addresses, the owner's user
//! addresses, are reachable with plain user copies.

use crate::kapi::barrier;
use crate::kapi::eventfd::EventFdCtx;
use crate::kapi::uaccess;
use crate::kapi::version::CONTRACT;
use crate::vcore::diag::{Reason, VqStats};
use crate::vcore::errno::Errno;
use crate::vcore::features::has_feature;
use crate::vcore::memory::dirtylog::{log_write, log_write_hva, DirtyBitmap};
use crate::vcore::memory::intervalmap::{Entry, Piece, TranslateError, PERM_RO, PERM_WO};
use crate::vcore::ring::access::{write_used_elems_buffered, RingMemory, Translate, UsedRing};
use crate::vcore::ring::desc::UsedElem;
use crate::vcore::uapi::{
    VhostIotlbMsg, VHOST_BACKEND_F_IOTLB_MSG_V2, VHOST_IOTLB_MISS, VIRTIO_RING_F_EVENT_IDX,
};
use crate::vcore::validate;
use crate::vhost::iotlb::{Iotlb, MsgNode, Msgs};
use crate::vhost::memmap::GuestMap;
use crate::vhost::vq::Vq;
use kernel::sync::Arc;

/// Pieces a ring-metadata access may span through the IOTLB (C's
/// `vq->iotlb_iov`).
pub(crate) const META_PIECES: usize = 64;

/// Views used elements as the bytes of the used ring, or `None` on a
/// big-endian machine, where their `u32`s are not little endian.
fn used_elems_as_le_bytes(heads: &[UsedElem]) -> Option<&[u8]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    Some(crate::kapi::uapi::slice_as_bytes(heads))
}

/// Where a ring's errors go: its counters (and index, for the log) and
/// its error eventfd.
#[derive(Clone, Copy)]
pub(crate) struct RingErrs<'a> {
    pub(crate) stats: &'a VqStats,
    /// The ring's field itself (see `OwnerMem::log_ctx`).
    pub(crate) err: &'a Option<EventFdCtx>,
}

impl RingErrs<'_> {
    /// C's `vq_err`: logs `reason` (dynamic debug, rate-limited) with C's
    /// `errno` if there is one, counts it, and signals the error eventfd
    /// as many times as C reports it ([`Reason::c_reports`]).
    #[cold]
    #[inline(never)]
    pub(crate) fn vq_err(&self, reason: Reason, errno: Option<Errno>) {
        self.note(reason, errno);
        if let Some(err) = self.err {
            for _ in 0..reason.c_reports() {
                err.signal();
            }
        }
    }

    /// Logs and counts as [`RingErrs::vq_err`] does, without signalling
    /// (a condition C stops on without a `vq_err`).
    #[cold]
    #[inline(never)]
    pub(crate) fn note(&self, reason: Reason, errno: Option<Errno>) {
        let now = crate::kapi::diag::boottime_ns();
        self.stats.error(reason, now);
        crate::kapi::diag::vq_err(self.stats.index(), reason, errno, now);
    }
}

/// The owner's memory as the ring code sees it (C's `vhost_get_user`,
/// `vhost_put_user`, `vhost_copy_to_user` and `set_bit_to_user`).
pub(crate) struct OwnerMem<'a> {
    /// The device IOTLB, when ring addresses are IOVAs.
    pub(crate) iotlb: Option<&'a Iotlb>,
    /// Where the ring's errors go: a 2-byte field the IOTLB cannot give
    /// in one piece is C's `vq_err` in `__vhost_get_user_slow`, before
    /// the caller's own.
    pub(crate) errs: RingErrs<'a>,
    /// The dirty-log eventfd: the ring's field itself, read only when a
    /// bit was set (a reference to the `Option` costs a round's set-up one
    /// address, where `as_deref` cost a test and a select).
    pub(crate) log_ctx: &'a Option<Arc<EventFdCtx>>,
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

impl OwnerMem<'_> {
    /// The owner's address of a 2-byte ring field at IOVA `uaddr`, as C's
    /// `vhost_get_user`/`vhost_put_user` find it: from the ring's metadata
    /// cache (`vhost_vq_meta_fetch`), else translated with read permission
    /// into one piece (`__vhost_get_user_slow`), else `EFAULT` after C's
    /// `vq_err` there ("IOTLB translation failure", "Non atomic userspace
    /// memory access"; the caller reports its own after it).
    ///
    /// `used`: the used ring, when the field is one of its. C fills its
    /// cache in `vq_meta_prefetch` when one mapping covers the whole used
    /// ring and allows writes, and empties it whenever the IOTLB or the
    /// ring's addresses change; the IOTLB cannot change during a round
    /// (its messages take the ring's lock), so "one mapping with write
    /// permission covers the ring now" is that cache. The descriptor table
    /// and the available ring are cached under the same checks as the
    /// slow path's (read permission), so for their fields only a field in
    /// two pieces can tell: C's cache serves a ring in one mapping, where
    /// no field is in two pieces.
    ///
    /// Out of line, as [`OwnerMem::through_iotlb`], and returning the
    /// address only: the callers' one `get_user`/`put_user` serves both
    /// paths (make profile: an access of its own here cost a latency round
    /// trip 42 module instructions of the common path's code, and this
    /// inline 86, `refresh_avail_idx` going out of line).
    #[inline(never)]
    fn ring_field(
        iotlb: &Iotlb,
        errs: RingErrs<'_>,
        uaddr: u64,
        used: Option<UsedRing>,
    ) -> Result<u64, Errno> {
        let map = iotlb.lock();
        // A miss cannot be: the round's `prefetch` found all three rings
        // mapped, so C's `translate_desc` queues none here either.
        let reason = match field_in_one_piece(&map, uaddr) {
            Ok(at) => return Ok(at),
            Err(e) => e.reason,
        };
        if let Some(ring) = used {
            let offset = uaddr.wrapping_sub(ring.addr);
            let mut whole = [Piece::default(); 1];
            // One piece of `ring.len` bytes: the field, inside the ring,
            // is at `offset` in it.
            if map
                .translate(ring.addr, ring.len, PERM_WO, &mut whole)
                .is_ok()
                && offset.saturating_add(2) <= u64::from(ring.len)
            {
                return Ok(whole[0].addr.wrapping_add(offset));
            }
        }
        drop(map);
        errs.vq_err(reason, Some(Errno::EFAULT));
        Err(Errno::EFAULT)
    }
}

/// Why a 2-byte ring field has no owner's address through the IOTLB.
#[derive(Clone, Copy)]
pub(crate) struct FieldFault {
    /// What C's `__vhost_get_user_slow` reports: `NonAtomicAccess` when
    /// two mappings hold the bytes, else `IotlbTranslation`.
    pub(crate) reason: Reason,
    /// The IOVA no mapping covers, for which C's `translate_desc` queues
    /// a miss.
    pub(crate) miss: Option<u64>,
}

/// The owner's address of the 2-byte ring field at IOVA `uaddr` when one
/// mapping with read permission holds both bytes, as C's
/// `__vhost_get_user_slow` asks (read permission even for writes), else
/// why not. Shared by the round's accesses ([`OwnerMem`]) and
/// `vhost_vq_init_access`'s, which C both route through that function.
pub(crate) fn field_in_one_piece(map: &GuestMap, uaddr: u64) -> Result<u64, FieldFault> {
    // Room for every piece two bytes can span: a field whose second byte
    // has no translation is a miss, not a lack of room (C has 64).
    let mut pieces = [Piece::default(); 2];
    match map.translate(uaddr, 2, PERM_RO, &mut pieces) {
        Ok(1) => Ok(pieces[0].addr),
        Ok(_) | Err(TranslateError::NoBufs) => Err(FieldFault {
            reason: Reason::NonAtomicAccess,
            miss: None,
        }),
        Err(TranslateError::Miss { addr }) => Err(FieldFault {
            reason: Reason::IotlbTranslation,
            miss: Some(addr),
        }),
        Err(TranslateError::Perm) => Err(FieldFault {
            reason: Reason::IotlbTranslation,
            miss: None,
        }),
    }
}

impl DirtyBitmap for OwnerMem<'_> {
    fn set_log_bits(&self, uaddr: u64, mask: u8) -> Result<(), Errno> {
        uaccess::set_bits_to_user(uaddr, mask).map_err(|_| Errno::EFAULT)
    }
}

impl RingMemory for OwnerMem<'_> {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let Some(iotlb) = self.iotlb else {
            return uaccess::copy_from_user(uaddr, buf).map_err(|_| Errno::EFAULT);
        };
        let len = buf.len();
        Self::through_iotlb(iotlb, uaddr, len, PERM_RO, |a, off, n| {
            uaccess::copy_from_user(a, &mut buf[off..off + n]).map_err(|_| Errno::EFAULT)
        })
    }

    fn read_translated(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        uaccess::copy_from_user(uaddr, buf).map_err(|_| Errno::EFAULT)
    }

    fn read_desc(&self, uaddr: u64, buf: &mut [u8; 16]) -> Result<(), Errno> {
        if self.iotlb.is_some() {
            return self.read(uaddr, buf);
        }
        uaccess::copy_desc_from_user(uaddr, buf).map_err(|_| Errno::EFAULT)
    }

    fn write(&self, uaddr: u64, data: &[u8]) -> Result<(), Errno> {
        let Some(iotlb) = self.iotlb else {
            return uaccess::copy_to_user(uaddr, data).map_err(|_| Errno::EFAULT);
        };
        Self::through_iotlb(iotlb, uaddr, data.len(), PERM_WO, |a, off, n| {
            uaccess::copy_to_user(a, &data[off..off + n]).map_err(|_| Errno::EFAULT)
        })
    }

    fn read_u16(&self, uaddr: u64) -> Result<u16, Errno> {
        let at = match self.iotlb {
            None => uaddr,
            Some(iotlb) => Self::ring_field(iotlb, self.errs, uaddr, None)?,
        };
        // Ring indices and heads: `get_user`, as C.
        uaccess::get_user_u16(at)
            .map(u16::from_le)
            .map_err(|_| Errno::EFAULT)
    }

    fn write_used_elem(&self, uaddr: u64, elem: UsedElem) -> Result<(), Errno> {
        let bytes = elem.to_le_bytes();
        if self.iotlb.is_none() {
            // One `put_user` of the whole element (C: one per field).
            return uaccess::put_user_u64(uaddr, u64::from_ne_bytes(bytes))
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
                uaccess::copy_to_user(uaddr, bytes).map_err(|_| Errno::EFAULT)
            }
            _ => write_used_elems_buffered(self, uaddr, heads),
        }
    }

    fn write_used_u16(&self, ring: UsedRing, uaddr: u64, value: u16) -> Result<(), Errno> {
        let at = match self.iotlb {
            None => uaddr,
            Some(iotlb) => Self::ring_field(iotlb, self.errs, uaddr, Some(ring))?,
        };
        uaccess::put_user_u16(at, u16::from_ne_bytes(value.to_le_bytes()))
            .map_err(|_| Errno::EFAULT)
    }

    fn rmb(&self) {
        barrier::smp_rmb();
    }

    fn wmb(&self) {
        barrier::smp_wmb();
    }

    fn mb(&self) {
        barrier::smp_mb();
    }

    fn log_signal(&self) {
        if let Some(ctx) = self.log_ctx.as_deref() {
            ctx.signal();
        }
    }
}

/// Guest-address translation for one ring (C's `translate_desc`): the
/// device IOTLB if there is one (a miss queues a `VHOST_IOTLB_MISS` for
/// userspace), else the memory table.
pub(crate) struct GuestXlate<'a> {
    umem: Option<&'a GuestMap>,
    iotlb: Option<&'a Iotlb>,
    msgs: &'a Msgs,
    vq: usize,
    /// The ring's negotiated backend features (a miss's message format),
    /// looked at only on a miss.
    backend_features: u64,
}

impl Translate for GuestXlate<'_> {
    // Always inline, with the memory table's `translate` (inline there): on
    // Debian 13's rustc 1.85 (LLVM 19) the handlers otherwise call both out
    // of line, a frame and a `Result` through memory per descriptor (7.3,
    // make profile, module instructions a packet: TX 64 B 501 -> 473, RX
    // 64 B 540 -> 508, RX 64 KiB 4844 -> 4285); the test kernel's newer
    // LLVM already inlined them (6.12: unchanged).
    #[inline(always)]
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
pub(crate) fn queue_miss<B, E>(msgs: &Msgs, vq: &Vq<B, E>, index: usize, iova: u64, access: u32) {
    let v2 = has_feature(vq.acked_backend_features, VHOST_BACKEND_F_IOTLB_MSG_V2);
    enqueue_miss(msgs, index, v2, iova, access);
}

/// Queues a `VHOST_IOTLB_MISS` message.
fn enqueue_miss(msgs: &Msgs, index: usize, v2: bool, iova: u64, access: u32) {
    let _ = msgs.enqueue_miss(
        MsgNode {
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
            counts: true,
        },
        CONTRACT.iotlb_one_miss_per_ring,
    );
}

/// Logs the write of `used->flags` made when a backend is attached, and
/// signals the log eventfd (C's `vhost_update_used_flags` with `log_used`).
pub(crate) fn log_used_flags<B, E>(msgs: &Msgs, vq: &Vq<B, E>, index: usize, stats: &VqStats) {
    let mem = OwnerMem {
        iotlb: vq.iotlb.as_deref(),
        errs: RingErrs {
            stats,
            err: &vq.err,
        },
        log_ctx: &vq.log_ctx,
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
        if let Ok(n) = xlate.translate(vq.used(), 2, PERM_WO, &mut pieces) {
            for p in &pieces[..n] {
                let _ = log_write_hva(&mem, vq.log_base(), |i| xlate.umem_region(i), p.addr, p.len);
            }
        }
    } else {
        let _ = log_write(&mem, vq.log_base(), vq.log_addr(), 2);
    }
    mem.log_signal();
}

impl<'a> GuestXlate<'a> {
    /// The translation of ring `index`, from the ring's fields.
    pub(crate) fn new(
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
            backend_features: acked_backend_features,
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
        let v2 = has_feature(self.backend_features, VHOST_BACKEND_F_IOTLB_MSG_V2);
        enqueue_miss(self.msgs, self.vq, v2, iova, access);
    }

    /// C's `vq_meta_prefetch`: with a device IOTLB, the three rings must be
    /// mapped before a round starts; a miss is queued and the round skipped.
    fn prefetch_rings<B, E>(&self, vq: &Vq<B, E>) -> bool {
        if !vq.has_addresses() {
            return false;
        }
        if self.iotlb.is_none() {
            return true;
        }
        let event = vq.has_feature(VIRTIO_RING_F_EVENT_IDX);
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
        let num = vq.num();
        covered(vq.desc(), validate::desc_size(num), PERM_RO)
            && covered(vq.avail(), validate::avail_size(num, event), PERM_RO)
            && covered(vq.used(), validate::used_size(num, event), PERM_WO)
    }
}

/// C's `vq_meta_prefetch` for ring `index`: whether a round may run. Inline,
/// as the check without an IOTLB is two loads (a call cost as much again,
/// make profile); the IOTLB's walk stays out of line.
#[inline]
pub(crate) fn prefetch<B, E>(msgs: &Msgs, vq: &Vq<B, E>, index: usize) -> bool {
    if vq.iotlb.is_none() {
        // Nothing to map: only a ring with addresses runs.
        return vq.has_addresses();
    }
    prefetch_iotlb(msgs, vq, index)
}

/// [`prefetch`] with a device IOTLB: the three rings must be mapped.
#[inline(never)]
fn prefetch_iotlb<B, E>(msgs: &Msgs, vq: &Vq<B, E>, index: usize) -> bool {
    GuestXlate::new(
        msgs,
        index,
        vq.umem.as_deref(),
        vq.iotlb.as_deref(),
        vq.acked_backend_features,
    )
    .prefetch_rings(vq)
}
