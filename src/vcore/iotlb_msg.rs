// SPDX-License-Identifier: GPL-2.0

//! IOTLB messages written to the device fd (`vhost_chr_write_iter`): the
//! layout of a write, the decoding of `struct vhost_iotlb_msg`, and the
//! update or invalidation of the device IOTLB it asks for
//! (`vhost_process_iotlb_msg`), with C's checks in C's order and C's errno.

use super::contract::Contract;
use super::errno::Errno;
use super::memory::intervalmap::{IntervalMap, Storage};
use super::uapi::{
    VhostIotlbMsg, VhostMsg, VhostMsgV2, VHOST_ACCESS_RO, VHOST_ACCESS_WO,
    VHOST_BACKEND_F_IOTLB_ASID, VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_MSG, VHOST_IOTLB_MSG_V2,
    VHOST_IOTLB_UPDATE,
};
use super::validate::vhost_overflow;

/// `umem_access_ok` for an IOTLB update: the range must not overflow and
/// `access_ok` (given by the caller) must accept it once for each of the
/// read and write bits in `perm`.
pub(crate) fn umem_access_ok(
    uaddr: u64,
    size: u64,
    perm: u8,
    mut access_ok: impl FnMut(u64, u64) -> bool,
) -> bool {
    if vhost_overflow(uaddr, size) {
        return false;
    }
    if perm & VHOST_ACCESS_RO != 0 && !access_ok(uaddr, size) {
        return false;
    }
    if perm & VHOST_ACCESS_WO != 0 && !access_ok(uaddr, size) {
        return false;
    }
    true
}

/// How to read the rest of an IOTLB message written to the device fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteLayout {
    /// Whether a 4-byte asid follows the type.
    pub(crate) reads_asid: bool,
    /// Bytes to skip before the `vhost_iotlb_msg`.
    pub(crate) skip: usize,
    /// Value `write` returns on success.
    pub(crate) written: usize,
}

/// `vhost_chr_write_iter`: the layout for the 4-byte message type `ty`.
///
/// Unknown types (and a write shorter than the type) are `EINVAL`. A V2
/// message carries an asid only with `VHOST_BACKEND_F_IOTLB_ASID`, which
/// vhost-net never offers; otherwise the asid field is skipped and taken as 0.
/// A write shorter than the layout requires is `EINVAL` too.
pub(crate) fn iotlb_write_layout(ty: i32, backend_features: u64) -> Result<WriteLayout, Errno> {
    const MSG_LEN: usize = core::mem::size_of::<VhostMsg>();
    const MSG_V2_LEN: usize = core::mem::size_of::<VhostMsgV2>();
    match u32::try_from(ty) {
        Ok(VHOST_IOTLB_MSG) => Ok(WriteLayout {
            reads_asid: false,
            skip: 4,
            written: MSG_LEN,
        }),
        Ok(VHOST_IOTLB_MSG_V2) => {
            let asid = backend_features & (1 << VHOST_BACKEND_F_IOTLB_ASID) != 0;
            Ok(WriteLayout {
                reads_asid: asid,
                skip: if asid { 0 } else { 4 },
                written: MSG_V2_LEN,
            })
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Decodes the `struct vhost_iotlb_msg` that follows the layout's header in
/// a `write`, as C's `copy_from_iter` into the structure does: fields in
/// native byte order at their C offsets; the 6 bytes of tail padding are
/// not looked at.
pub(crate) fn parse_iotlb_msg(b: &[u8; 32]) -> VhostIotlbMsg {
    let u64_at = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[o..o + 8]);
        u64::from_ne_bytes(w)
    };
    VhostIotlbMsg {
        iova: u64_at(0),
        size: u64_at(8),
        uaddr: u64_at(16),
        perm: b[24],
        type_: b[25],
        padding: [0; 6],
    }
}

/// What an accepted IOTLB message did, so the caller can follow up (reset
/// the rings' metadata cache; after an update, wake rings waiting on a miss
/// inside the new range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IotlbOutcome {
    /// A mapping was added.
    Updated,
    /// Overlapping mappings were removed.
    Invalidated,
}

/// What a kernel's `vhost_process_iotlb_msg` refuses beyond
/// [`process_iotlb_msg`], checked just before it: since 7.x an
/// `VHOST_IOTLB_INVALIDATE` of size 0 (`EINVAL`, which the write reports
/// as `EFAULT` as every failure of the handler; the checks C makes before
/// it, asid and device IOTLB, give `EFAULT` too, so the order is not
/// observable). Before, C deleted `[iova, iova - 1]`.
pub(crate) fn kernel_refuses(c: &Contract, msg: &VhostIotlbMsg) -> Result<(), Errno> {
    if c.iotlb_invalidate_empty_einval && msg.type_ == VHOST_IOTLB_INVALIDATE && msg.size == 0 {
        return Err(Errno::EFAULT);
    }
    Ok(())
}

/// `vhost_chr_write_iter`'s own check of a parsed message, made before
/// the handler takes any lock: an update of size 0 is `EINVAL`.
pub(crate) fn write_refuses(msg: &VhostIotlbMsg) -> Result<(), Errno> {
    if msg.type_ == VHOST_IOTLB_UPDATE && msg.size == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `vhost_chr_write_iter` after parsing, with `vhost_process_iotlb_msg`.
///
/// `iotlb` is the device IOTLB, `None` when `VIRTIO_F_ACCESS_PLATFORM` is not
/// acked. An update of size 0 is `EINVAL` ([`write_refuses`], which the
/// kernel checks before its locks, and again here); every later failure
/// (asid not 0, no device IOTLB, inaccessible user range, map refusal,
/// unknown message type) is reported to userspace as `EFAULT`, because C
/// overwrites the handler's errno.
pub(crate) fn process_iotlb_msg<S: Storage>(
    iotlb: Option<&mut IntervalMap<S>>,
    asid: u32,
    msg: &VhostIotlbMsg,
    access_ok: impl FnMut(u64, u64) -> bool,
) -> Result<IotlbOutcome, Errno> {
    write_refuses(msg)?;
    if asid != 0 {
        return Err(Errno::EFAULT);
    }
    let last = msg.iova.wrapping_add(msg.size).wrapping_sub(1);
    match msg.type_ {
        VHOST_IOTLB_UPDATE => {
            let map = iotlb.ok_or(Errno::EFAULT)?;
            if !umem_access_ok(msg.uaddr, msg.size, msg.perm, access_ok) {
                return Err(Errno::EFAULT);
            }
            map.add_range(msg.iova, last, msg.uaddr, u32::from(msg.perm))
                .map_err(|_| Errno::EFAULT)?;
            Ok(IotlbOutcome::Updated)
        }
        VHOST_IOTLB_INVALIDATE => {
            let map = iotlb.ok_or(Errno::EFAULT)?;
            map.del_range(msg.iova, last);
            Ok(IotlbOutcome::Invalidated)
        }
        _ => Err(Errno::EFAULT),
    }
}
