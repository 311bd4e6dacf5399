// SPDX-License-Identifier: GPL-2.0

//! Argument checks of the vhost and vhost-net ioctls that need no kernel
//! (the IOTLB messages written to the device fd are [`super::iotlb_msg`]).
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
use super::memory::intervalmap::{IntervalMap, Storage, PERM_RW};
use super::uapi::{
    VhostMemory, VhostMemoryRegion, VhostVringAddr, VHOST_FORK_OWNER_KTHREAD,
    VHOST_FORK_OWNER_TASK, VHOST_PAGE_SIZE, VHOST_VRING_BIG_ENDIAN, VHOST_VRING_F_LOG,
    VHOST_VRING_LITTLE_ENDIAN, VRING_AVAIL_ALIGN_SIZE, VRING_USED_ALIGN_SIZE,
};

/// Default of the `max_mem_regions` module parameter of vhost.ko.
#[allow(
    dead_code,
    reason = "the kernel reads the module parameter, whose default the C shim sets; the host tests use this value"
)]
pub(crate) const MAX_MEM_REGIONS: u32 = 64;
/// Default of the `max_iotlb_entries` module parameter of vhost.ko; it is the
/// limit of both the memory table and the device IOTLB, which both retire.
#[allow(
    dead_code,
    reason = "the kernel reads the module parameter, whose default the C shim sets; the host tests and fuzzers use this value"
)]
pub(crate) const MAX_IOTLB_ENTRIES: u32 = 2048;
/// Number of virtqueues of a vhost-net device (RX and TX).
pub(crate) const NET_VQ_MAX: u32 = 2;
/// Whether `CONFIG_VHOST_CROSS_ENDIAN_LEGACY` is set in the kernel we replace.
pub(crate) const CROSS_ENDIAN_LEGACY: bool = false;
/// Default worker mode (`fork_from_owner_default`): tasks forked from the owner.
#[allow(
    dead_code,
    reason = "the kernel reads the module parameter, whose default the C shim sets; the host tests and Kbuild refer to this value"
)]
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
