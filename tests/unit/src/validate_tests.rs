//! The ioctl argument checks, `vcore::validate`.

use crate::storage::VecStorage;
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{IntervalMap, FLAG_RETIRE, PERM_RW};
use crate::vcore::uapi::{VhostMemory, VhostMemoryRegion, VhostVringAddr};
use crate::vcore::validate::*;

fn table() -> IntervalMap<VecStorage> {
    IntervalMap::new(VecStorage::default(), MAX_IOTLB_ENTRIES, FLAG_RETIRE)
}

fn region(gpa: u64, size: u64, ua: u64) -> VhostMemoryRegion {
    VhostMemoryRegion {
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: ua,
        flags_padding: 0,
    }
}

#[test]
fn mem_table_regions() {
    let mut m = table();
    fill_mem_table(
        &mut m,
        &[
            region(0, 0x10000, 0x7f00_0000),
            region(0x10000, 0x1000, 0x5000),
        ],
    )
    .unwrap();
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|e| e.perm == PERM_RW));
    // A zero-sized region elsewhere than 0 is refused, and the error is EFAULT.
    let mut m = table();
    assert_eq!(
        fill_mem_table(&mut m, &[region(0x1000, 0x1000, 0), region(0x5000, 0, 0)]),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        m.len(),
        1,
        "regions before the bad one stay in the new table"
    );
    // A zero-sized region at 0 maps the whole space, as two entries.
    let mut m = table();
    fill_mem_table(&mut m, &[region(0, 0, 0x1000)]).unwrap();
    assert_eq!(m.len(), 2);
    // Overlapping regions are accepted.
    let mut m = table();
    fill_mem_table(&mut m, &[region(0, 0x2000, 0), region(0x1000, 0x2000, 0)]).unwrap();
    assert_eq!(m.len(), 2);
}

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
