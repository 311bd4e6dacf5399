//! Tests of the dirty-log arithmetic and its three entry points.

use proptest::prelude::*;

use crate::ringsim::{Ev, Mem, Region, Xlate};
use crate::vcore::errno::Errno;
use crate::vcore::memory::dirtylog::*;
use crate::vcore::memory::intervalmap::{Entry, Piece, PERM_RO, PERM_WO};
use crate::vcore::ring::chain::log_write_bufs;

const BASE: u64 = 0x1000_0000;
const SIZE: usize = 0x1000;

fn bitmap() -> Mem {
    Mem::new(BASE, SIZE)
}

/// The pages whose bits are set in the bitmap at `BASE`.
fn pages(m: &Mem) -> Vec<u64> {
    let d = m.data.borrow();
    (0..d.len() as u64 * 8)
        .filter(|p| d[(p / 8) as usize] & (1 << (p % 8)) != 0)
        .collect()
}

#[test]
fn log_write_sets_bits_in_memory() {
    let m = bitmap();
    log_write(&m, BASE, 5 * 4096 + 1, 3 * 4096).unwrap();
    assert_eq!(pages(&m), [5, 6, 7, 8]);
}

#[test]
fn log_write_stops_at_fault() {
    let mut m = bitmap();
    m.fault(BASE + 1, 1);
    assert_eq!(log_write(&m, BASE, 6 * 4096, 4 * 4096), Err(Errno::EFAULT));
    // Byte 0 (pages 6, 7) was set before byte 1 failed.
    assert_eq!(pages(&m), [6, 7]);
}

fn entry(gpa: u64, len: u64, hva: u64) -> Entry {
    Entry {
        start: gpa,
        last: gpa + len - 1,
        addr: hva,
        perm: PERM_RO | PERM_WO,
        seq: 0,
    }
}

#[test]
fn log_write_hva_logs_every_alias() {
    let m = bitmap();
    let umem = [
        entry(0x10_0000, 0x10000, 0x7000_0000),
        entry(0x20_0000, 0x1000, 0x7000_2000),
    ];
    // User 0x7000_2800.. is guest 0x102800 and 0x200800.
    log_write_hva(&m, BASE, |i| umem.get(i).copied(), 0x7000_2800, 0x10).unwrap();
    assert_eq!(pages(&m), [0x102, 0x200]);
}

#[test]
fn log_write_hva_unmapped_is_efault() {
    let m = bitmap();
    let umem = [entry(0x10_0000, 0x1000, 0x7000_0000)];
    assert_eq!(
        log_write_hva(&m, BASE, |i| umem.get(i).copied(), 0x6000_0000, 1),
        Err(Errno::EFAULT)
    );
    assert!(pages(&m).is_empty());
}

#[test]
fn log_write_hva_skips_holes_once_something_matched() {
    // C keeps `hit` across iterations and advances by the overlap length
    // from the current address, so a hole, before or after the mapped part,
    // does not fail the call.
    let m = bitmap();
    let umem = [entry(0x10_0000, 0x1000, 0x7000_1000)];
    let r = |i: usize| umem.get(i).copied();
    log_write_hva(&m, BASE, r, 0x7000_1800, 0x2000).unwrap();
    assert_eq!(pages(&m), [0x100]);
    let m = bitmap();
    log_write_hva(&m, BASE, r, 0x7000_0000, 0x3000).unwrap();
    assert_eq!(pages(&m), [0x100]);
}

#[test]
fn log_write_bufs_without_iotlb() {
    let m = bitmap();
    let xl = Xlate::new(
        &[Region {
            gpa: 0,
            len: 0x10_0000,
            uaddr: 0x5000_0000,
            perm: PERM_RO | PERM_WO,
        }],
        false,
    );
    let log = [
        LogEntry {
            addr: 0x0,
            len: 0x1000,
        },
        LogEntry {
            addr: 0x5000,
            len: 0x3000,
        },
        LogEntry {
            addr: 0x9000,
            len: 0x1000,
        },
    ];
    assert_eq!(log_write_bufs(&m, &xl, BASE, &log, 0x1800, &[]), Ok(true));
    assert_eq!(pages(&m), [0, 5]);
    assert_eq!(m.take_events()[0], Ev::Wmb);
    // More written than the chain holds: C hits BUG().
    assert_eq!(
        log_write_bufs(&m, &xl, BASE, &log, 0x6000, &[]),
        Err(Errno::EINVAL)
    );
    assert_eq!(pages(&m), [0, 5, 6, 7, 9]);
    assert_eq!(log_write_bufs(&m, &xl, BASE, &log, 0, &[]), Ok(true));
    assert_eq!(
        log_write_bufs(&m, &xl, BASE, &[], 0, &[]),
        Err(Errno::EINVAL)
    );
}

#[test]
fn log_write_bufs_with_iotlb_logs_the_bytes_written() {
    let umem = [Region {
        gpa: 0x40_0000,
        len: 0x10_0000,
        uaddr: 0x5000_0000,
        perm: PERM_RO | PERM_WO,
    }];
    let xl = Xlate::new(&[], true).with_umem(&umem);
    let iov = [
        Piece {
            addr: 0x5000_1000,
            len: 0x2000,
        },
        Piece {
            addr: 0x5000_8000,
            len: 1,
        },
    ];
    // The log entries are not used; the pieces are logged up to `len`
    // bytes (C logs them whole: 0x401, 0x402 and 0x408 for any `len`).
    let m = bitmap();
    assert_eq!(log_write_bufs(&m, &xl, BASE, &[], 1, &iov), Ok(false));
    assert_eq!(pages(&m), [0x401]);
    let m = bitmap();
    assert_eq!(log_write_bufs(&m, &xl, BASE, &[], 0x1001, &iov), Ok(false));
    assert_eq!(pages(&m), [0x401, 0x402]);
    let m = bitmap();
    assert_eq!(log_write_bufs(&m, &xl, BASE, &[], 0x2001, &iov), Ok(false));
    assert_eq!(pages(&m), [0x401, 0x402, 0x408]);
    let m = bitmap();
    assert_eq!(log_write_bufs(&m, &xl, BASE, &[], 0, &iov), Ok(false));
    assert_eq!(pages(&m), [0u64; 0]);
    let bad = [Piece {
        addr: 0x1000,
        len: 1,
    }];
    assert_eq!(
        log_write_bufs(&m, &xl, BASE, &[], 1, &bad),
        Err(Errno::EFAULT)
    );
}

/// A guest's worst case: `UIO_MAXIOV` pieces of 4 GiB each, mapped by the
/// memory table, for a packet of 64 KiB: C sets a bit per page of all
/// 4 TiB; this logs the 17 pages written.
#[test]
fn log_write_bufs_with_iotlb_huge_pieces_log_only_the_packet() {
    let m = bitmap();
    let umem = [Region {
        gpa: 0,
        len: 1 << 32,
        uaddr: 0x1_0000_0000,
        perm: PERM_RO | PERM_WO,
    }];
    let xl = Xlate::new(&[], true).with_umem(&umem);
    let iov = vec![
        Piece {
            addr: 0x1_0000_0000,
            len: 1 << 32,
        };
        crate::vcore::ring::chain::UIO_MAXIOV
    ];
    assert_eq!(
        log_write_bufs(&m, &xl, BASE, &[], 0x10000 + 12, &iov),
        Ok(false)
    );
    assert_eq!(pages(&m), (0..17).collect::<Vec<u64>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The updates set exactly the pages the range touches, each byte once,
    /// in increasing order.
    #[test]
    fn log_bits_match_pages(base in 0u64..1 << 40, addr in 0u64..1 << 40, len in 0u64..1 << 18) {
        let mut seen = std::collections::BTreeSet::new();
        let mut last = None;
        for u in log_write_bits(base, addr, len) {
            prop_assert!(u.mask != 0);
            prop_assert!(last.is_none_or(|l| l < u.uaddr));
            last = Some(u.uaddr);
            for b in 0..8 {
                if u.mask & (1 << b) != 0 {
                    seen.insert((u.uaddr - base) * 8 + b);
                }
            }
        }
        let want: std::collections::BTreeSet<u64> = if len == 0 {
            Default::default()
        } else {
            (addr / 4096..=(addr + len - 1) / 4096).collect()
        };
        prop_assert_eq!(seen, want);
    }
}

fn bits(base: u64, addr: u64, len: u64) -> ([u8; 8], usize) {
    let mut out = [0u8; 8];
    let mut n = 0;
    for u in log_write_bits(base, addr, len) {
        let i = (u.uaddr - base) as usize;
        assert_eq!(out[i] & u.mask, 0, "bit reported twice");
        out[i] |= u.mask;
        n += 1;
    }
    (out, n)
}

#[test]
fn zero_length_logs_nothing() {
    assert_eq!(log_write_bits(0x1000, 0x5000, 0).count(), 0);
}

#[test]
fn one_byte_sets_its_page() {
    let (b, n) = bits(0x100, 3 * 4096 + 7, 1);
    assert_eq!(n, 1);
    assert_eq!(b[0], 1 << 3);
}

#[test]
fn range_crossing_pages_and_bytes() {
    // Pages 6..=9: bits 6,7 of byte 0 and bits 0,1 of byte 1.
    let (b, n) = bits(0, 6 * 4096 + 100, 3 * 4096);
    assert_eq!(n, 2);
    assert_eq!(b[0], 0xc0);
    assert_eq!(b[1], 0x03);
}

#[test]
fn range_ending_on_page_boundary() {
    let (b, _) = bits(0, 4096, 4096);
    assert_eq!(b[0], 0x02);
    let (b, _) = bits(0, 4095, 2);
    assert_eq!(b[0], 0x03);
}

#[test]
fn wrapping_length_logs_one_page_like_c() {
    // len + offset wraps to 0: C sets one bit and stops.
    let v: Vec<_> = log_write_bits(0, 4096 + 8, u64::MAX - 7).collect();
    assert_eq!(
        v,
        [LogUpdate {
            uaddr: 0,
            mask: 0x02
        }]
    );
}
