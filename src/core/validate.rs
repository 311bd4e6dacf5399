// SPDX-License-Identifier: GPL-2.0

//! Argument checks of the vhost and vhost-net ioctls that need no kernel.
//!
//! Each function performs the checks of one C handler in the order C performs
//! them and returns the same errno. Checks that need the kernel (copying from
//! userspace, `access_ok`, looking up files) stay with the caller; where they
//! sit between pure checks in C, the function takes their outcome as a
//! parameter or the documentation says where the caller must do them.
//!
//! Common to every ring ioctl: the device first requires the caller to be the
//! owner (`EPERM`), then reads the ring index and checks it ([`vring_index`],
//! `ENOBUFS`) before any handler-specific check.

use super::errno::Errno;
use super::intervalmap::{IntervalMap, Storage, PERM_RW};
use super::uapi::{
    VhostIotlbMsg, VhostMemory, VhostMemoryRegion, VhostVringAddr, VHOST_ACCESS_RO,
    VHOST_ACCESS_WO, VHOST_BACKEND_F_IOTLB_ASID, VHOST_FORK_OWNER_KTHREAD, VHOST_FORK_OWNER_TASK,
    VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_MSG, VHOST_IOTLB_MSG_V2, VHOST_IOTLB_UPDATE,
    VHOST_PAGE_SIZE, VHOST_VRING_BIG_ENDIAN, VHOST_VRING_F_LOG, VHOST_VRING_LITTLE_ENDIAN,
    VRING_AVAIL_ALIGN_SIZE, VRING_USED_ALIGN_SIZE,
};

/// Default of the `max_mem_regions` module parameter of vhost.ko.
pub(crate) const MAX_MEM_REGIONS: u32 = 64;
/// Default of the `max_iotlb_entries` module parameter of vhost.ko; it is the
/// limit of both the memory table and the device IOTLB, which both retire.
pub(crate) const MAX_IOTLB_ENTRIES: u32 = 2048;
/// Number of virtqueues of a vhost-net device (RX and TX).
pub(crate) const NET_VQ_MAX: u32 = 2;
/// Whether `CONFIG_VHOST_CROSS_ENDIAN_LEGACY` is set in the kernel we replace.
pub(crate) const CROSS_ENDIAN_LEGACY: bool = false;
/// Default worker mode (`fork_from_owner_default`): tasks forked from the owner.
pub(crate) const FORK_FROM_OWNER_DEFAULT: bool = true;

/// Size of a split-ring descriptor.
const DESC_SIZE: u64 = 16;
/// Size of the available ring header (flags, idx).
const AVAIL_HEADER: u64 = 4;
/// Size of an available ring element.
const AVAIL_ELEM: u64 = 2;
/// Size of the used ring header (flags, idx).
const USED_HEADER: u64 = 4;
/// Size of a used ring element (id, len).
const USED_ELEM: u64 = 8;
/// Size of the event index field appended with `VIRTIO_RING_F_EVENT_IDX`.
const EVENT_SIZE: u64 = 2;

/// Checks the ring index every ring ioctl starts with
/// (`vhost_get_vq_from_user`): `ENOBUFS` if there is no such ring.
pub(crate) fn vring_index(index: u32, nvqs: u32) -> Result<usize, Errno> {
    if index >= nvqs {
        return Err(Errno::ENOBUFS);
    }
    usize::try_from(index).map_err(|_| Errno::ENOBUFS)
}

/// `VHOST_SET_VRING_NUM`: returns the new ring size.
///
/// `EBUSY` while a backend is attached (checked before the argument is even
/// copied in), then `EINVAL` unless `num` is a power of two in `1..=0xffff`.
pub(crate) fn set_vring_num(backend_active: bool, num: u32) -> Result<u32, Errno> {
    if backend_active {
        return Err(Errno::EBUSY);
    }
    if num == 0 || num > 0xffff || !num.is_power_of_two() {
        return Err(Errno::EINVAL);
    }
    Ok(num)
}

/// The ring addresses accepted by `VHOST_SET_VRING_ADDR`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RingAddrs {
    /// User address of the descriptor table.
    pub(crate) desc: u64,
    /// User address of the available ring.
    pub(crate) avail: u64,
    /// User address of the used ring.
    pub(crate) used: u64,
    /// Guest address of the used ring for the dirty log.
    pub(crate) log_addr: u64,
    /// Whether writes to the used ring are logged.
    pub(crate) log_used: bool,
}

/// Returns `v` as an `unsigned long`, or `EFAULT` if it does not fit (only
/// possible on 32-bit kernels).
pub(crate) fn user_ulong(v: u64) -> Result<u64, Errno> {
    match usize::try_from(v) {
        Ok(_) => Ok(v),
        Err(_) => Err(Errno::EFAULT),
    }
}

/// `VHOST_SET_VRING_ADDR`, the checks before any access check.
///
/// Order: unknown flags `EOPNOTSUPP`; an address that is not an `unsigned
/// long` `EFAULT`; misaligned avail (2), used (4) or log address (4)
/// `EINVAL`. C does not check the alignment of the descriptor table. If a
/// backend is attached the caller must then check `access_ok` on the three
/// rings with [`desc_size`], [`avail_size`] and [`used_size`] of the current
/// ring size, and, with logging, the used-ring log with [`log_access_range`];
/// any failure there is `EINVAL`.
pub(crate) fn set_vring_addr(a: &VhostVringAddr) -> Result<RingAddrs, Errno> {
    let log_flag = 1u32 << VHOST_VRING_F_LOG;
    if a.flags & !log_flag != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let desc = user_ulong(a.desc_user_addr)?;
    let used = user_ulong(a.used_user_addr)?;
    let avail = user_ulong(a.avail_user_addr)?;
    if avail & (VRING_AVAIL_ALIGN_SIZE - 1) != 0
        || used & (VRING_USED_ALIGN_SIZE - 1) != 0
        || a.log_guest_addr & (VRING_USED_ALIGN_SIZE - 1) != 0
    {
        return Err(Errno::EINVAL);
    }
    Ok(RingAddrs {
        desc,
        avail,
        used,
        log_addr: a.log_guest_addr,
        log_used: a.flags & log_flag != 0,
    })
}

/// Bytes of the descriptor table of a ring of `num` entries.
pub(crate) const fn desc_size(num: u32) -> u64 {
    DESC_SIZE * num as u64
}

/// Bytes of the available ring, with `used_event` if `event_idx`.
pub(crate) const fn avail_size(num: u32, event_idx: bool) -> u64 {
    AVAIL_HEADER + AVAIL_ELEM * num as u64 + if event_idx { EVENT_SIZE } else { 0 }
}

/// Bytes of the used ring, with `avail_event` if `event_idx`.
pub(crate) const fn used_size(num: u32, event_idx: bool) -> u64 {
    USED_HEADER + USED_ELEM * num as u64 + if event_idx { EVENT_SIZE } else { 0 }
}

/// Ring indices set by `VHOST_SET_VRING_BASE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VringBase {
    /// New `last_avail_idx` (for packed rings bit 15 is the wrap counter).
    pub(crate) last_avail_idx: u16,
    /// New `last_used_idx`, only set for packed rings.
    pub(crate) last_used_idx: Option<u16>,
}

/// `VHOST_SET_VRING_BASE`.
///
/// `EBUSY` while a backend is attached (before the argument is copied in).
/// A split ring takes `num` as the avail index and rejects values above
/// 0xffff with `EINVAL`; a packed ring takes the low half as avail index and
/// the high half as used index, each with its wrap counter in bit 15.
pub(crate) fn set_vring_base(
    backend_active: bool,
    packed: bool,
    num: u32,
) -> Result<VringBase, Errno> {
    if backend_active {
        return Err(Errno::EBUSY);
    }
    if packed {
        return Ok(VringBase {
            last_avail_idx: (num & 0xffff) as u16,
            last_used_idx: Some((num >> 16) as u16),
        });
    }
    match u16::try_from(num) {
        Ok(idx) => Ok(VringBase {
            last_avail_idx: idx,
            last_used_idx: None,
        }),
        Err(_) => Err(Errno::EINVAL),
    }
}

/// `VHOST_GET_VRING_BASE`: the value returned in `num`.
pub(crate) const fn get_vring_base(packed: bool, last_avail_idx: u16, last_used_idx: u16) -> u32 {
    if packed {
        last_avail_idx as u32 | (last_used_idx as u32) << 16
    } else {
        last_avail_idx as u32
    }
}

/// `VHOST_SET_VRING_ENDIAN`: returns whether the ring is big endian.
///
/// Without `CONFIG_VHOST_CROSS_ENDIAN_LEGACY` C answers `ENOIOCTLCMD` (seen
/// as `ENOTTY`) whatever the state. With it: `EBUSY` while a backend is
/// attached, `EINVAL` for values other than 0 and 1.
pub(crate) fn set_vring_endian(
    cross_endian_legacy: bool,
    backend_active: bool,
    num: u32,
) -> Result<bool, Errno> {
    if !cross_endian_legacy {
        return Err(Errno::ENOIOCTLCMD);
    }
    if backend_active {
        return Err(Errno::EBUSY);
    }
    match num {
        VHOST_VRING_LITTLE_ENDIAN => Ok(false),
        VHOST_VRING_BIG_ENDIAN => Ok(true),
        _ => Err(Errno::EINVAL),
    }
}

/// `VHOST_GET_VRING_ENDIAN`: the value returned in `num`, or `ENOIOCTLCMD`
/// without `CONFIG_VHOST_CROSS_ENDIAN_LEGACY`.
pub(crate) fn get_vring_endian(cross_endian_legacy: bool, user_be: bool) -> Result<u32, Errno> {
    if !cross_endian_legacy {
        return Err(Errno::ENOIOCTLCMD);
    }
    Ok(u32::from(user_be))
}

/// `VHOST_SET_MEM_TABLE`, the header checks: returns the number of regions
/// to copy in.
///
/// `EOPNOTSUPP` if `padding` is not 0, then `E2BIG` above `max_regions`.
pub(crate) fn mem_table_header(hdr: &VhostMemory, max_regions: u32) -> Result<u32, Errno> {
    if hdr.padding != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if hdr.nregions > max_regions {
        return Err(Errno::E2BIG);
    }
    Ok(hdr.nregions)
}

/// The guest range `[start, last]` of a memory region, computed with C's
/// wrapping arithmetic.
///
/// A region of size 0 therefore ends before it starts and is refused, except
/// at guest address 0, where it covers the whole address space.
pub(crate) const fn mem_region_range(r: &VhostMemoryRegion) -> (u64, u64) {
    let last = r
        .guest_phys_addr
        .wrapping_add(r.memory_size)
        .wrapping_sub(1);
    (r.guest_phys_addr, last)
}

/// `VHOST_SET_MEM_TABLE`: fills a new, empty memory table with `regions`.
///
/// Any refusal of the interval map becomes `EFAULT`, as in C. On success the
/// caller must still check the table against the active rings
/// (`memory_access_ok`, again `EFAULT`) before switching to it.
pub(crate) fn fill_mem_table<S: Storage>(
    map: &mut IntervalMap<S>,
    regions: &[VhostMemoryRegion],
) -> Result<(), Errno> {
    for r in regions {
        let (start, last) = mem_region_range(r);
        map.add_range(start, last, r.userspace_addr, PERM_RW)
            .map_err(|_| Errno::EFAULT)?;
    }
    Ok(())
}

/// `VHOST_SET_FORK_FROM_OWNER`: returns whether workers become forked tasks.
///
/// `EBUSY` once the device has an owner (before the byte is read), then
/// `EINVAL` for values other than 0 and 1. This ioctl and its getter are
/// handled before the ownership check, so anyone holding the fd may use them.
pub(crate) fn set_fork_from_owner(has_owner: bool, value: u8) -> Result<bool, Errno> {
    if has_owner {
        return Err(Errno::EBUSY);
    }
    match value {
        VHOST_FORK_OWNER_TASK => Ok(true),
        VHOST_FORK_OWNER_KTHREAD => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

/// `VHOST_GET_FORK_FROM_OWNER`: the byte returned.
pub(crate) const fn get_fork_from_owner(task: bool) -> u8 {
    if task {
        VHOST_FORK_OWNER_TASK
    } else {
        VHOST_FORK_OWNER_KTHREAD
    }
}

/// `vhost_overflow`: whether `[uaddr, uaddr + size)` does not fit in 64 bits.
pub(crate) const fn vhost_overflow(uaddr: u64, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    uaddr > u64::MAX - size + 1
}

/// The part of the dirty-log bitmap that covers a guest range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogRange {
    /// User address of the first bitmap byte.
    pub(crate) start: u64,
    /// Number of bytes to check with `access_ok`.
    pub(crate) len: u64,
}

/// `log_access_ok`, the arithmetic: which bitmap bytes at `log_base` must be
/// accessible to log writes to `sz` bytes of guest memory at `addr`.
///
/// Returns `None` when C fails before calling `access_ok` (the byte address
/// overflows). One bit covers one 4 KiB page. The length is computed from
/// `sz` alone, as in C: it ignores where `addr` falls within a bitmap byte
/// and wraps for sizes near `u64::MAX`.
pub(crate) const fn log_access_range(log_base: u64, addr: u64, sz: u64) -> Option<LogRange> {
    let per_byte = VHOST_PAGE_SIZE * 8;
    let a = addr / per_byte;
    if a > u64::MAX - log_base {
        return None;
    }
    Some(LogRange {
        start: log_base + a,
        len: sz.wrapping_add(per_byte - 1) / per_byte,
    })
}

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
    const MSG_LEN: usize = core::mem::size_of::<super::uapi::VhostMsg>();
    const MSG_V2_LEN: usize = core::mem::size_of::<super::uapi::VhostMsgV2>();
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

/// `vhost_chr_write_iter` after parsing, with `vhost_process_iotlb_msg`.
///
/// `iotlb` is the device IOTLB, `None` when `VIRTIO_F_ACCESS_PLATFORM` is not
/// acked. An update of size 0 is `EINVAL`; every later failure (asid not 0,
/// no device IOTLB, inaccessible user range, map refusal, unknown message
/// type) is reported to userspace as `EFAULT`, because C overwrites the
/// handler's errno.
pub(crate) fn process_iotlb_msg<S: Storage>(
    iotlb: Option<&mut IntervalMap<S>>,
    asid: u32,
    msg: &VhostIotlbMsg,
    access_ok: impl FnMut(u64, u64) -> bool,
) -> Result<IotlbOutcome, Errno> {
    if msg.type_ == VHOST_IOTLB_UPDATE && msg.size == 0 {
        return Err(Errno::EINVAL);
    }
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

#[cfg(test)]
mod tests {
    use super::super::uapi::{VHOST_ACCESS_RW, VHOST_IOTLB_MISS};
    use super::*;

    #[test]
    fn ring_index() {
        assert_eq!(vring_index(0, NET_VQ_MAX), Ok(0));
        assert_eq!(vring_index(1, NET_VQ_MAX), Ok(1));
        assert_eq!(vring_index(2, NET_VQ_MAX), Err(Errno::ENOBUFS));
        assert_eq!(vring_index(u32::MAX, NET_VQ_MAX), Err(Errno::ENOBUFS));
    }

    #[test]
    fn vring_num() {
        assert_eq!(set_vring_num(true, 256), Err(Errno::EBUSY));
        // EBUSY comes first even for an invalid value.
        assert_eq!(set_vring_num(true, 3), Err(Errno::EBUSY));
        assert_eq!(set_vring_num(false, 0), Err(Errno::EINVAL));
        assert_eq!(set_vring_num(false, 3), Err(Errno::EINVAL));
        assert_eq!(set_vring_num(false, 0x10000), Err(Errno::EINVAL));
        assert_eq!(set_vring_num(false, 0x0010_0000), Err(Errno::EINVAL));
        assert_eq!(set_vring_num(false, 1), Ok(1));
        assert_eq!(set_vring_num(false, 0x8000), Ok(0x8000));
    }

    fn addr(flags: u32, desc: u64, used: u64, avail: u64, log: u64) -> VhostVringAddr {
        VhostVringAddr {
            index: 0,
            flags,
            desc_user_addr: desc,
            used_user_addr: used,
            avail_user_addr: avail,
            log_guest_addr: log,
        }
    }

    #[test]
    fn vring_addr() {
        assert_eq!(set_vring_addr(&addr(2, 0, 0, 0, 0)), Err(Errno::EOPNOTSUPP));
        // Flags are checked before alignment.
        assert_eq!(
            set_vring_addr(&addr(0x80, 1, 1, 1, 1)),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(set_vring_addr(&addr(0, 0, 0, 1, 0)), Err(Errno::EINVAL));
        assert_eq!(set_vring_addr(&addr(0, 0, 2, 0, 0)), Err(Errno::EINVAL));
        assert_eq!(set_vring_addr(&addr(0, 0, 0, 0, 2)), Err(Errno::EINVAL));
        // The log address is checked even without the log flag.
        assert_eq!(set_vring_addr(&addr(0, 0, 0, 0, 1)), Err(Errno::EINVAL));
        // The descriptor table's alignment is not checked.
        let r = set_vring_addr(&addr(1, 0x1001, 0x2004, 0x3002, 0x4008)).unwrap();
        assert_eq!(
            r,
            RingAddrs {
                desc: 0x1001,
                avail: 0x3002,
                used: 0x2004,
                log_addr: 0x4008,
                log_used: true
            }
        );
        assert!(
            !set_vring_addr(&addr(0, u64::MAX, 0, 0, 0))
                .unwrap()
                .log_used
        );
        // On a 64-bit kernel every u64 is an unsigned long.
        assert_eq!(user_ulong(u64::MAX), Ok(u64::MAX));
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(desc_size(256), 4096);
        assert_eq!(avail_size(256, false), 4 + 512);
        assert_eq!(avail_size(256, true), 4 + 512 + 2);
        assert_eq!(used_size(256, false), 4 + 2048);
        assert_eq!(used_size(256, true), 4 + 2048 + 2);
        assert_eq!(desc_size(0x8000), 0x80000);
        assert_eq!(used_size(u32::MAX, true), 6 + 8 * u32::MAX as u64);
    }

    #[test]
    fn vring_base() {
        assert_eq!(set_vring_base(true, false, 0), Err(Errno::EBUSY));
        assert_eq!(set_vring_base(false, false, 0x10000), Err(Errno::EINVAL));
        assert_eq!(
            set_vring_base(false, false, 0xffff),
            Ok(VringBase {
                last_avail_idx: 0xffff,
                last_used_idx: None
            })
        );
        assert_eq!(
            set_vring_base(false, true, 0x8001_8002),
            Ok(VringBase {
                last_avail_idx: 0x8002,
                last_used_idx: Some(0x8001)
            })
        );
        assert_eq!(get_vring_base(false, 7, 9), 7);
        assert_eq!(get_vring_base(true, 0x8002, 0x8001), 0x8001_8002);
    }

    #[test]
    fn vring_endian() {
        const { assert!(!CROSS_ENDIAN_LEGACY) };
        assert_eq!(set_vring_endian(false, true, 5), Err(Errno::ENOIOCTLCMD));
        assert_eq!(set_vring_endian(false, false, 0), Err(Errno::ENOIOCTLCMD));
        assert_eq!(get_vring_endian(false, false), Err(Errno::ENOIOCTLCMD));
        assert_eq!(set_vring_endian(true, true, 5), Err(Errno::EBUSY));
        assert_eq!(set_vring_endian(true, false, 2), Err(Errno::EINVAL));
        assert_eq!(set_vring_endian(true, false, 0), Ok(false));
        assert_eq!(set_vring_endian(true, false, 1), Ok(true));
        assert_eq!(get_vring_endian(true, true), Ok(1));
    }

    #[test]
    fn mem_table() {
        let h = |nregions, padding| VhostMemory { nregions, padding };
        assert_eq!(
            mem_table_header(&h(u32::MAX, 1), MAX_MEM_REGIONS),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            mem_table_header(&h(65, 0), MAX_MEM_REGIONS),
            Err(Errno::E2BIG)
        );
        assert_eq!(mem_table_header(&h(64, 0), MAX_MEM_REGIONS), Ok(64));
        assert_eq!(mem_table_header(&h(0, 0), MAX_MEM_REGIONS), Ok(0));
        let r = |gpa, size| VhostMemoryRegion {
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: 0,
            flags_padding: 0,
        };
        assert_eq!(mem_region_range(&r(0x1000, 0x1000)), (0x1000, 0x1fff));
        assert_eq!(mem_region_range(&r(0, 0)), (0, u64::MAX));
        assert_eq!(mem_region_range(&r(5, 0)), (5, 4));
        assert_eq!(mem_region_range(&r(u64::MAX, 2)), (u64::MAX, 0));
    }

    #[test]
    fn fork_from_owner() {
        const { assert!(FORK_FROM_OWNER_DEFAULT) };
        assert_eq!(set_fork_from_owner(true, 7), Err(Errno::EBUSY));
        assert_eq!(set_fork_from_owner(false, 2), Err(Errno::EINVAL));
        assert_eq!(set_fork_from_owner(false, 0), Ok(false));
        assert_eq!(set_fork_from_owner(false, 1), Ok(true));
        assert_eq!(get_fork_from_owner(true), 1);
        assert_eq!(get_fork_from_owner(false), 0);
    }

    #[test]
    fn overflow() {
        assert!(!vhost_overflow(u64::MAX, 0));
        assert!(!vhost_overflow(u64::MAX, 1));
        assert!(vhost_overflow(u64::MAX, 2));
        assert!(!vhost_overflow(0, u64::MAX));
        assert!(vhost_overflow(2, u64::MAX));
        assert!(!vhost_overflow(1, u64::MAX));
    }

    #[test]
    fn log_range() {
        // One bitmap byte covers 8 pages (32 KiB).
        assert_eq!(
            log_access_range(0x1000, 0, 1),
            Some(LogRange {
                start: 0x1000,
                len: 1
            })
        );
        assert_eq!(
            log_access_range(0x1000, 0x8000, 0x8000),
            Some(LogRange {
                start: 0x1001,
                len: 1
            })
        );
        assert_eq!(
            log_access_range(0x1000, 0x8000, 0x8001),
            Some(LogRange {
                start: 0x1001,
                len: 2
            })
        );
        // C ignores the offset of addr within its byte: pages 7 and 8 live in
        // two bitmap bytes, yet one byte is checked.
        assert_eq!(
            log_access_range(0, 7 * 0x1000, 0x2000),
            Some(LogRange { start: 0, len: 1 })
        );
        assert_eq!(
            log_access_range(0, 0, 0),
            Some(LogRange { start: 0, len: 0 })
        );
        // The byte address overflows.
        assert_eq!(log_access_range(u64::MAX, 0x8000, 1), None);
        assert_eq!(
            log_access_range(u64::MAX, 0x7fff, 1),
            Some(LogRange {
                start: u64::MAX,
                len: 1
            })
        );
        // The length wraps for huge sizes.
        assert_eq!(
            log_access_range(0, 0, u64::MAX),
            Some(LogRange { start: 0, len: 0 })
        );
    }

    #[test]
    fn umem_access() {
        let mut calls = 0;
        assert!(umem_access_ok(0x1000, 0x1000, VHOST_ACCESS_RW, |_, _| {
            calls += 1;
            true
        }));
        assert_eq!(calls, 2);
        assert!(!umem_access_ok(u64::MAX, 2, 0, |_, _| true));
        // No permission bit: nothing is checked.
        assert!(umem_access_ok(0, 1, 0, |_, _| false));
        assert!(!umem_access_ok(0, 1, VHOST_ACCESS_WO, |_, _| false));
    }

    #[test]
    fn write_layout() {
        assert_eq!(
            iotlb_write_layout(1, 0),
            Ok(WriteLayout {
                reads_asid: false,
                skip: 4,
                written: 72
            })
        );
        assert_eq!(
            iotlb_write_layout(2, 0),
            Ok(WriteLayout {
                reads_asid: false,
                skip: 4,
                written: 72
            })
        );
        assert_eq!(
            iotlb_write_layout(2, 1 << VHOST_BACKEND_F_IOTLB_ASID),
            Ok(WriteLayout {
                reads_asid: true,
                skip: 0,
                written: 72
            })
        );
        assert_eq!(iotlb_write_layout(0, 0), Err(Errno::EINVAL));
        assert_eq!(iotlb_write_layout(3, 0), Err(Errno::EINVAL));
        assert_eq!(iotlb_write_layout(-1, 0), Err(Errno::EINVAL));
        assert_eq!(VHOST_IOTLB_MISS, 1);
    }

    #[test]
    fn iotlb_msg_decode() {
        let mut b = [0xeeu8; 32];
        b[0..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        b[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
        b[16..24].copy_from_slice(&0x7fff_0000_1000u64.to_ne_bytes());
        b[24] = VHOST_ACCESS_RW;
        b[25] = VHOST_IOTLB_UPDATE;
        // The tail padding (0xee here) is not part of the value.
        assert_eq!(
            parse_iotlb_msg(&b),
            VhostIotlbMsg {
                iova: 0x1122_3344_5566_7788,
                size: u64::MAX,
                uaddr: 0x7fff_0000_1000,
                perm: VHOST_ACCESS_RW,
                type_: VHOST_IOTLB_UPDATE,
                padding: [0; 6],
            }
        );
        // The layout is the C structure's: each field at its offset.
        assert_eq!(core::mem::offset_of!(VhostIotlbMsg, size), 8);
        assert_eq!(core::mem::offset_of!(VhostIotlbMsg, uaddr), 16);
        assert_eq!(core::mem::offset_of!(VhostIotlbMsg, perm), 24);
        assert_eq!(core::mem::offset_of!(VhostIotlbMsg, type_), 25);
    }
}
