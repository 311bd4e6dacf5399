//! Extreme values through the core: rings and buffers at the very top of
//! the address space, `u32::MAX` and `u64::MAX` lengths, 16-bit indices and
//! ring positions wrapping.
//!
//! The kernel builds the core with `CONFIG_RUST_OVERFLOW_CHECKS=y`
//! (Debian's default, and our test kernel's), where a `+`, `-` or `*` that
//! overflows is a host panic. These tests run with overflow checks on (see
//! Cargo.toml), so each one fails if an operation on such a value is not
//! the wrapping, saturating or checked one C's arithmetic calls for, or is
//! not bounded the way its comment says.

use std::cell::RefCell;

use crate::ringsim::{Mem, Region, Xlate};
use crate::storage::VecStorage;
use crate::vcore::errno::Errno;
use crate::vcore::iotlb_msg::process_iotlb_msg;
use crate::vcore::memory::dirtylog::{log_write, log_write_bits, log_write_hva, LogEntry};
use crate::vcore::memory::intervalmap::{
    Entry, IntervalMap, Piece, TranslateError, PERM_RO, PERM_RW,
};
use crate::vcore::ring::{chain::*, desc::*, split::*};
use crate::vcore::uapi::{VhostIotlbMsg, VhostMemoryRegion, VHOST_ACCESS_RW, VHOST_IOTLB_UPDATE};
use crate::vcore::validate::{
    avail_size, desc_size, fill_mem_table, get_vring_base, log_access_range, mem_region_range,
    set_vring_base, used_size, vhost_overflow, LogRange,
};

/// The last page of the address space, where [`top_mem`] lives.
const TOP: u64 = u64::MAX - 0xfff;
/// A 4 KiB page, the dirty log's unit.
const PAGE: u64 = 4096;

/// Owner memory in the last page of the address space.
fn top_mem() -> Mem {
    Mem::new(TOP, 0x1000)
}

/// Guest address `g` at user address `g + 0x1000` (wrapping), for the
/// whole 64-bit space: the map holds it as its two halves.
fn whole_space() -> Xlate {
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    map.add_range(0, u64::MAX, 0x1000, PERM_RW).unwrap();
    let umem = map.iter().copied().collect();
    Xlate {
        map,
        regions: Vec::new(),
        iotlb: false,
        umem,
        misses: RefCell::new(Vec::new()),
    }
}

/// The pieces of a chain, checked the way the worker relies on them: none
/// empty, and adding up to the chain's length.
fn pieces(iov: &[Piece], c: &Chain) -> Vec<Piece> {
    let v = iov[..c.out_num + c.in_num].to_vec();
    assert!(v.iter().all(|p| p.len != 0), "empty piece in {v:x?}");
    let sum = v.iter().try_fold(0u64, |s, p| s.checked_add(p.len));
    assert_eq!(sum, Some(c.len), "pieces {v:x?} vs chain length");
    v
}

/// A split ring of `num` entries at the given user addresses.
fn split(num: u32, desc: u64, avail: u64, used: u64, event_idx: bool) -> SplitRing {
    let cfg = SplitConfig {
        num,
        desc,
        avail,
        used,
        event_idx,
        notify_on_empty: false,
    };
    SplitRing::new(&cfg).unwrap()
}

fn poke_desc(mem: &Mem, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
    let d = Desc {
        addr,
        len,
        flags,
        next,
    };
    mem.poke(at, &d.to_bytes());
}

const N: u16 = VRING_DESC_F_NEXT;
const W: u16 = VRING_DESC_F_WRITE;
const I: u16 = VRING_DESC_F_INDIRECT;

/// A ring whose three parts lie in the last page, the used ring ending on
/// the last byte of the address space, driven across the 16-bit wrap of
/// both indices and the wrap of the used ring's positions, with buffers of
/// `u32::MAX` bytes ending on the last guest byte or crossing the middle
/// of the space, buffers that would wrap past its top (`EFAULT`, as in C),
/// and dirty logging of a used ring whose guest address is at the top too.
#[test]
fn ring_in_the_last_page() {
    const NUM: u32 = 8;
    let desc = TOP;
    let avail = TOP + 0x100;
    // `avail_event`, after `NUM` used elements, is the last two bytes.
    let used = 0u64.wrapping_sub(4 + 8 * u64::from(NUM) + 2);
    let mem = top_mem();
    let xl = whole_space();
    let mut ring = split(NUM, desc, avail, used, true);

    // The used ring's guest address is its last bytes too; the bitmap byte
    // of that page (page 2^52 - 1, byte 2^49 - 1, bit 7) is at TOP + 0x800.
    let log_addr = u64::MAX - (4 + 8 * u64::from(NUM) + 2) + 1;
    let log_base = (TOP + 0x800).wrapping_sub((u64::MAX / PAGE) / 8);
    ring.set_used_log(Some(UsedLog { log_base, log_addr }));

    mem.poke_u16(used + 2, 0xfffe);
    ring.set_indices(0xfffe, 0);
    ring.init_access(&mem, &xl).unwrap();
    assert_eq!(ring.last_used_idx(), 0xfffe);
    assert_eq!(mem.peek(TOP + 0x800, 1).unwrap()[0], 0x80);
    // The first check after attaching always signals; it also notes 0xfffe.
    assert!(ring.need_notify(&mem).value);

    // Chain 0: one writable buffer of u32::MAX bytes ending on the last
    // byte of the guest space.
    let last_4g = 0u64.wrapping_sub(u64::from(u32::MAX));
    poke_desc(&mem, desc, last_4g, u32::MAX, W, 0);
    // Chain 1: readable, 16 bytes below the top, then u32::MAX from 0.
    poke_desc(&mem, desc + 16, u64::MAX - 15, 16, N, 2);
    poke_desc(&mem, desc + 32, 0, u32::MAX, 0, 0);
    // Chain 2: an indirect table (in the last page) of two writable
    // buffers, the last two bytes of the space and u32::MAX bytes across
    // the middle (two pieces: the map holds the space as two halves).
    let table_user = TOP + 0x200;
    let table_guest = table_user.wrapping_sub(0x1000);
    poke_desc(&mem, desc + 48, table_guest, 32, I, 0);
    poke_desc(&mem, table_user, u64::MAX - 1, 2, W | N, 0);
    poke_desc(&mem, table_user + 16, u64::MAX / 2, u32::MAX, W, 0);
    // Chain 3: a table whose length is the largest multiple of 16, ending
    // on the last byte: too many entries (C's E2BIG), after a translation
    // of 4 GiB.
    let table_len = u32::MAX & !0xf;
    let table_at = 0u64.wrapping_sub(u64::from(table_len));
    poke_desc(&mem, desc + 64, table_at, table_len, I, 0);
    // Chain 4: a descriptor that does not fit in the ring.
    poke_desc(&mem, desc + 80, 0, 1, N, 0xffff);
    // Chain 5: a buffer that would wrap past the top of the space: no
    // translation (C asks its interval tree for a range ending before it
    // starts), EFAULT.
    poke_desc(&mem, desc + 96, u64::MAX, 2, W, 0);

    // Six entries from 0xfffe: slots 6, 7, 0, 1, 2, 3; `avail->idx` wraps.
    for (k, head) in [0u16, 1, 3, 4, 5, 6].into_iter().enumerate() {
        let idx = 0xfffeu16.wrapping_add(k as u16);
        let slot = u64::from(u32::from(idx) & (NUM - 1));
        mem.poke_u16(avail + 4 + 2 * slot, head);
    }
    let end = 0xfffeu16.wrapping_add(6);
    mem.poke_u16(avail + 2, end);

    let mut iov = vec![Piece::default(); 16];
    let mut ind = vec![Piece::default(); UIO_MAXIOV];
    let mut get = |ring: &mut SplitRing, iov: &mut [Piece]| {
        ring.get_desc_chain(
            &mem,
            &xl,
            ChainBufs {
                iov,
                indirect: &mut ind,
                log: None,
                reads: MAX_PACKET_READS,
            },
        )
    };
    let c = get(&mut ring, &mut iov).unwrap().unwrap();
    assert_eq!((c.head, c.in_num, c.len), (0, 1, u64::from(u32::MAX)));
    let p = pieces(&iov, &c);
    assert_eq!(p[0].addr, last_4g.wrapping_add(0x1000));
    let c = get(&mut ring, &mut iov).unwrap().unwrap();
    assert_eq!((c.head, c.out_num, c.len), (1, 2, 16 + u64::from(u32::MAX)));
    pieces(&iov, &c);
    let c = get(&mut ring, &mut iov).unwrap().unwrap();
    assert_eq!((c.head, c.in_num, c.len), (3, 3, u64::from(u32::MAX) + 2));
    pieces(&iov, &c);
    let e = |errno| Err(RingError::broken(errno));
    assert_eq!(get(&mut ring, &mut iov), e(Errno::E2BIG));
    // An error consumes nothing: skip the entry as a driver reset would.
    ring.set_base(0xfffeu16.wrapping_add(4));
    assert_eq!(get(&mut ring, &mut iov), e(Errno::EINVAL));
    ring.set_base(0xfffeu16.wrapping_add(5));
    assert_eq!(get(&mut ring, &mut iov), e(Errno::EFAULT));
    ring.set_base(end);
    assert_eq!(get(&mut ring, &mut iov), Ok(None));

    // Four used elements from 0xfffe: split at the ring's end, the index
    // wraps to 2; lengths as large as they come.
    let heads = [
        UsedElem {
            id: 0,
            len: u32::MAX,
        },
        UsedElem { id: 1, len: 0 },
        UsedElem {
            id: 3,
            len: u32::MAX,
        },
        UsedElem { id: 4, len: 1 },
    ];
    ring.add_used(&mem, &xl, &heads).unwrap();
    assert_eq!(ring.last_used_idx(), 2);
    assert_eq!(mem.peek_u16(used + 2), Some(2));
    let elem = |slot: u64| mem.peek(used + 4 + 8 * slot, 8).unwrap();
    assert_eq!(elem(6)[4..], u32::MAX.to_le_bytes());
    assert_eq!(elem(7)[..4], 1u32.to_le_bytes());
    assert_eq!(elem(0)[4..], u32::MAX.to_le_bytes());
    assert_eq!(elem(1)[..4], 4u32.to_le_bytes());
    // The driver asked for an interrupt after entry 0xffff, which the used
    // index passed on its way from 0xfffe to 2.
    let used_event = avail + 4 + 2 * u64::from(NUM);
    mem.poke_u16(used_event, 0xffff);
    assert!(ring.need_notify(&mem).value);
    ring.add_used(&mem, &xl, &heads[..1]).unwrap();
    assert!(!ring.need_notify(&mem).value);

    // Kicks back on: `avail_event` is written on the last two bytes of the
    // address space.
    let _ = ring.disable_notify(&mem, &xl);
    assert_eq!(
        ring.enable_notify(&mem, &xl),
        Reported {
            value: false,
            error: None
        }
    );
    assert_eq!(mem.peek_u16(u64::MAX - 1), Some(end));
}

/// Ring parts that run past the top of the address space (a hostile
/// layout; with a device IOTLB nothing checks ring addresses up front):
/// every address is computed with C's wrap-around, and what lies beyond
/// the top (nothing is mapped at 0 here) faults, whatever the operation.
#[test]
fn ring_parts_wrapping_past_the_top() {
    const NUM: u32 = 4;
    let mem = top_mem();
    let xl = whole_space();
    // avail: flags and idx are the last four bytes, its entries wrap to 0.
    // used: flags and idx just below, its first element straddles the top
    // and the next ones wrap to 0.
    let avail = u64::MAX - 3;
    let used = u64::MAX - 7;
    let mut ring = split(NUM, TOP, avail, used, true);
    ring.set_used_log(Some(UsedLog {
        log_base: u64::MAX,
        log_addr: u64::MAX - 7,
    }));
    // The driver left `used->idx` at 1: the next element is past the top.
    mem.poke_u16(used + 2, 1);
    ring.init_access(&mem, &xl).unwrap();
    mem.poke_u16(avail + 2, 1);
    let (mut iov, mut ind) = ([Piece::default(); 4], [Piece::default(); 4]);
    let mut get = |ring: &mut SplitRing| {
        let bufs = ChainBufs {
            iov: &mut iov,
            indirect: &mut ind,
            log: None,
            reads: MAX_PACKET_READS,
        };
        ring.get_desc_chain(&mem, &xl, bufs)
    };
    let efault = Err(RingError::broken(Errno::EFAULT));
    assert_eq!(get(&mut ring), efault);
    assert_eq!(ring.avail_idx(), 1);
    assert_eq!(
        ring.add_used(&mem, &xl, &[UsedElem { id: 0, len: 1 }]),
        Err(Errno::EFAULT)
    );
    assert!(ring.need_notify(&mem).value);
    let r = ring.need_notify(&mem);
    assert_eq!((r.value, r.error), (true, Some(Errno::EFAULT)));
    let _ = ring.disable_notify(&mem, &xl);
    let r = ring.enable_notify(&mem, &xl);
    assert_eq!((r.value, r.error), (false, Some(Errno::EFAULT)));

    // The descriptor table's last entry is the last 16 bytes; the next one
    // would be at 0.
    let avail = TOP + 0x100;
    let mut ring = split(NUM, u64::MAX - 15, avail, TOP + 0x200, false);
    poke_desc(&mem, u64::MAX - 15, 0x100, 1, N, 1);
    mem.poke_u16(avail + 2, 2);
    mem.poke_u16(avail + 6, 1);
    assert_eq!(get(&mut ring), efault);
    ring.set_base(1);
    assert_eq!(get(&mut ring), efault);
}

/// A chain of `UIO_MAXIOV` descriptors of `u32::MAX` bytes each, direct and
/// in an indirect table: the longest a chain gets, just under 2^42 bytes,
/// which the worker's byte counts and `get_rx_bufs` rely on.
#[test]
fn longest_chain() {
    const BASE: u64 = 0x10_0000;
    const NUM: u32 = 1024;
    let desc = BASE;
    let avail = BASE + 0x4000;
    let used = BASE + 0x5000;
    let table = BASE + 0x8000;
    let mem = Mem::new(BASE, 0x10000);
    // Guest [0, 2^42) anywhere (never read), and the indirect table.
    let xl = Xlate::new(
        &[
            Region {
                gpa: 0,
                len: 1 << 42,
                uaddr: 0x1_0000_0000,
                perm: PERM_RW,
            },
            Region {
                gpa: 1 << 42,
                len: 0x4000,
                uaddr: table,
                perm: PERM_RO,
            },
        ],
        false,
    );
    let mut ring = split(NUM, desc, avail, used, false);
    let max = u32::MAX;
    for k in 0..NUM as u16 {
        let last = k + 1 == NUM as u16;
        let flags = if last { W } else { W | N };
        let gpa = u64::from(k) << 32;
        poke_desc(&mem, desc + 16 * u64::from(k), gpa, max, flags, k + 1);
        poke_desc(&mem, table + 16 * u64::from(k), gpa, max, flags, 0);
    }
    // The second chain is one descriptor: the whole table. Both heads
    // from 0xffff, so `avail->idx` wraps.
    ring.set_base(0xffff);
    mem.poke_u16(avail + 4 + 2 * 1023, 0);
    mem.poke_u16(avail + 4, 1);
    mem.poke_u16(avail + 2, 1);
    let mut iov = vec![Piece::default(); UIO_MAXIOV];
    let mut ind = vec![Piece::default(); UIO_MAXIOV];
    let mut log = vec![LogEntry::default(); UIO_MAXIOV];
    let want = u64::from(NUM) * u64::from(max);
    assert!(want < 1 << 42);
    let mut get = |ring: &mut SplitRing, iov: &mut [Piece], log: &mut [LogEntry]| {
        let bufs = ChainBufs {
            iov,
            indirect: &mut ind,
            log: Some(log),
            reads: MAX_PACKET_READS,
        };
        ring.get_desc_chain(&mem, &xl, bufs).unwrap().unwrap()
    };
    // Descriptor 1 is overwritten by chain 2's head: write it after chain 1.
    let c = get(&mut ring, &mut iov, &mut log);
    assert_eq!(
        (c.in_num, c.log_num, c.descs, c.len),
        (1024, 1024, NUM, want)
    );
    pieces(&iov, &c);
    assert!(log.iter().all(|e| e.len == u64::from(max)));
    poke_desc(&mem, desc + 16, 1 << 42, 16 * NUM, I, 0);
    let c = get(&mut ring, &mut iov, &mut log);
    assert_eq!((c.head, c.in_num, c.descs, c.len), (1, 1024, 1, want));
    pieces(&iov, &c);
    assert_eq!(ring.last_avail_idx(), 1);
}

/// Read-ahead of available entries across the 16-bit wrap of the index and
/// the end of the ring, with the largest ring.
#[test]
fn heads_read_ahead_across_the_wrap() {
    const BASE: u64 = 0x10_0000;
    const NUM: u32 = 32768;
    let desc = BASE;
    let avail = BASE + 0x8_0000;
    let used = BASE + 0x9_1000;
    let mem = Mem::new(BASE, 0x9_1000 + 8 * 32768 + 8);
    let xl = Xlate::new(
        &[Region {
            gpa: 0,
            len: 0x1000,
            uaddr: 0x1_0000_0000,
            perm: PERM_RW,
        }],
        false,
    );
    let mut ring = split(NUM, desc, avail, used, false);
    let start = 0xffe0u16;
    ring.set_base(start);
    let n = 64u16;
    for k in 0..n {
        let idx = start.wrapping_add(k);
        let head = 32767 - k;
        let slot = u64::from(u32::from(idx) & (NUM - 1));
        mem.poke_u16(avail + 4 + 2 * slot, head);
        poke_desc(&mem, desc + 16 * u64::from(head), u64::from(k), 1, 0, 0);
    }
    mem.poke_u16(avail + 2, start.wrapping_add(n));
    let mut iov = [Piece::default(); 4];
    let mut ind = vec![Piece::default(); UIO_MAXIOV];
    for k in 0..n {
        let bufs = ChainBufs {
            iov: &mut iov,
            indirect: &mut ind,
            log: None,
            reads: MAX_PACKET_READS,
        };
        let c = ring.get_desc_chain(&mem, &xl, bufs).unwrap().unwrap();
        assert_eq!(
            (c.head, iov[0].addr),
            (32767 - k, 0x1_0000_0000 + u64::from(k))
        );
    }
    assert_eq!(ring.last_avail_idx(), start.wrapping_add(n));
    // Giving back across the wrap.
    ring.discard(n, 0);
    assert_eq!(ring.last_avail_idx(), start);
}

/// Translation at the top of the address space and of the largest
/// lengths: pieces never empty, adding up to the length asked for.
#[test]
fn translate_at_the_top() {
    let check = |map: &IntervalMap<VecStorage>, addr: u64, len: u32| {
        let mut out = [Piece::default(); 4];
        let r = map.translate(addr, len, PERM_RO, &mut out);
        if let Ok(n) = r {
            assert!(out[..n].iter().all(|p| p.len != 0));
            let sum: u64 = out[..n].iter().map(|p| p.len).sum();
            assert_eq!(sum, u64::from(len));
        }
        r.map(|n| out[..n].to_vec())
    };
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    map.add_range(0, u64::MAX, u64::MAX - 0xff, PERM_RW)
        .unwrap();
    assert_eq!(map.len(), 2);
    let half = u64::MAX / 2;
    let p = |addr: u64, len: u64| Piece { addr, len };
    // The largest length ending on the last byte: one piece.
    let at = 0u64.wrapping_sub(u64::from(u32::MAX));
    assert_eq!(
        check(&map, at, u32::MAX),
        Ok(vec![p(
            at.wrapping_add(u64::MAX - 0xff),
            u64::from(u32::MAX)
        )])
    );
    // One byte further it would wrap past the top: a miss at its start, as
    // in C, whose interval tree finds nothing in a range that ends before
    // it starts.
    assert_eq!(
        check(&map, at + 1, u32::MAX),
        Err(TranslateError::Miss { addr: at + 1 })
    );
    assert_eq!(
        check(&map, u64::MAX, 2),
        Err(TranslateError::Miss { addr: u64::MAX })
    );
    // Across the two halves, contiguous in user memory.
    assert_eq!(
        check(&map, half, 2),
        Ok(vec![p(half - 0x100, 1), p(half - 0xff, 1)])
    );
    assert_eq!(check(&map, u64::MAX, 0), Ok(vec![]));
    // A wrapped query range overlaps nothing, as in C's interval tree.
    assert_eq!(map.first(u64::MAX, 0), None);
    // Only the last byte of the space is mapped.
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    map.add_range(u64::MAX, u64::MAX, 7, PERM_RW).unwrap();
    assert_eq!(map.get(0).unwrap().size(), 1);
    assert_eq!(check(&map, u64::MAX, 1), Ok(vec![p(7, 1)]));
    assert_eq!(
        check(&map, u64::MAX - 1, 2),
        Err(TranslateError::Miss { addr: u64::MAX - 1 })
    );
    map.del_range(u64::MAX, 0);
    assert_eq!(map.len(), 1);
    map.del_range(u64::MAX, u64::MAX);
    assert!(map.is_empty());
}

/// Dirty-log arithmetic at the top of the address space and with lengths
/// that wrap, as C computes them.
#[test]
fn dirty_log_at_the_top() {
    // The last page: byte 2^49 - 1 of the bitmap, bit 7; the byte address
    // wraps around a base at the top, as C's `log_base + page / 8` does.
    let v: Vec<_> = log_write_bits(u64::MAX, u64::MAX, 1).collect();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].uaddr, u64::MAX.wrapping_add((1 << 49) - 1));
    assert_eq!(v[0].mask, 0x80);
    // A length that wraps with the page offset: one page, as in C.
    assert_eq!(log_write_bits(0, u64::MAX, u64::MAX).count(), 1);
    // Page numbers run on past the last page rather than wrap.
    let v: Vec<_> = log_write_bits(0, u64::MAX - PAGE + 1, 3 * PAGE).collect();
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].uaddr, v[0].mask), ((1 << 49) - 1, 0x80));
    assert_eq!((v[1].uaddr, v[1].mask), (1 << 49, 0x03));
    assert_eq!(log_write_bits(u64::MAX, u64::MAX, 0).count(), 0);

    // The bitmap in the last page: byte `b` of it at TOP + b.
    let mem = top_mem();
    let bit = |page: u64| {
        let b = mem.peek(TOP + page / 8, 1).unwrap()[0];
        b & (1 << (page % 8)) != 0
    };
    // A user range ending on the last byte of the space, guest 0x5000..
    let umem = [Entry {
        start: 0x5000,
        last: 0x5fff,
        addr: TOP,
        perm: PERM_RW,
        seq: 0,
    }];
    let region = |i: usize| umem.get(i).copied();
    log_write_hva(&mem, TOP, region, u64::MAX - 0x7ff, 0x800).unwrap();
    assert!(bit(5));
    // Past the end of the space: nothing overlaps, as in C.
    assert_eq!(
        log_write_hva(&mem, TOP, region, u64::MAX, 2),
        Err(Errno::EFAULT)
    );
    // The largest length from 0: the one region, then the hit flag carries
    // over the rest, as in C.
    let low = [Entry {
        start: 0x8000,
        last: 0x8fff,
        addr: 0,
        perm: PERM_RW,
        seq: 0,
    }];
    log_write_hva(&mem, TOP, |i| low.get(i).copied(), 0, u64::MAX).unwrap();
    assert!(bit(8));

    assert_eq!(log_write(&mem, TOP, u64::MAX, 0), Ok(()));

    // `vhost_log_write` with the largest written length: entries that
    // cannot cover it (C's BUG, our EINVAL), of the largest length, and
    // one whose bits run off the end of the bitmap's memory (EFAULT).
    let xl = whole_space();
    let logged = |entries: &[LogEntry], len: u64, page: u64| {
        let mem = top_mem();
        let r = log_write_bufs(&mem, &xl, TOP, entries, len, &[]);
        let b = mem.peek(TOP + page / 8, 1).unwrap()[0];
        assert!(b & (1 << (page % 8)) != 0, "page {page:#x} not logged");
        r
    };
    let e = |addr: u64, len: u64| LogEntry { addr, len };
    assert_eq!(
        logged(&[e(0x3_0000, 10)], u64::MAX, 0x30),
        Err(Errno::EINVAL)
    );
    assert_eq!(logged(&[e(0x4_0000, u64::MAX)], 1, 0x40), Ok(true));
    let entries = [e(0x1_0000, 10), e(0x2_0000, u64::MAX)];
    assert_eq!(logged(&entries, u64::MAX, 0x20), Err(Errno::EFAULT));
}

/// The used ring at the top of the IOVA space, logged through the device
/// IOTLB and the memory table (C's `log_used` with `vq->iotlb`).
#[test]
fn used_ring_logged_through_iotlb_at_the_top() {
    const NUM: u32 = 4;
    let mem = top_mem();
    // IOVA = user address in the top half.
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    map.add_range(u64::MAX / 2 + 1, u64::MAX, u64::MAX / 2 + 1, PERM_RW)
        .unwrap();
    // The last page is guest 0x4000_0000.. in the memory table.
    let umem = vec![Entry {
        start: 0x4000_0000,
        last: 0x4000_0fff,
        addr: TOP,
        perm: PERM_RW,
        seq: 0,
    }];
    let xl = Xlate {
        map,
        regions: Vec::new(),
        iotlb: true,
        umem,
        misses: RefCell::new(Vec::new()),
    };
    let used = 0u64.wrapping_sub(4 + 8 * u64::from(NUM) + 2);
    let mut ring = split(NUM, TOP, TOP + 0x100, used, true);
    // Guest page 0x40000 is bitmap byte 0x8000, put at TOP + 0x600.
    let log_base = (TOP + 0x600).wrapping_sub(0x8000);
    ring.set_used_log(Some(UsedLog {
        log_base,
        log_addr: 0,
    }));
    ring.set_indices(0, 0xffff);
    let heads = [UsedElem {
        id: 1,
        len: u32::MAX,
    }; 2];
    ring.add_used(&mem, &xl, &heads).unwrap();
    assert_eq!(ring.last_used_idx(), 1);
    assert_eq!(mem.peek(TOP + 0x600, 1).unwrap()[0], 0x01);
    let _ = ring.disable_notify(&mem, &xl);
    assert!(!ring.enable_notify(&mem, &xl).value);
    assert_eq!(mem.peek_u16(u64::MAX - 1), Some(0));
    assert!(xl.misses.borrow().is_empty());
}

/// The ioctl checks' arithmetic with the largest arguments.
#[test]
fn validate_extremes() {
    assert!(!vhost_overflow(0, u64::MAX));
    assert!(!vhost_overflow(1, u64::MAX));
    assert!(vhost_overflow(2, u64::MAX));
    assert!(vhost_overflow(u64::MAX, u64::MAX));
    assert!(!vhost_overflow(u64::MAX, 1));
    assert!(vhost_overflow(u64::MAX, 2));
    assert!(!vhost_overflow(u64::MAX, 0));
    assert_eq!(log_access_range(u64::MAX, u64::MAX, u64::MAX), None);
    // The bitmap byte of the last page is the last byte of the space, or
    // one past it.
    let last_byte = u64::MAX / (PAGE * 8);
    assert_eq!(
        log_access_range(u64::MAX - last_byte, u64::MAX, 1),
        Some(LogRange {
            start: u64::MAX,
            len: 1
        })
    );
    assert_eq!(
        log_access_range(u64::MAX - last_byte + 1, u64::MAX, 1),
        None
    );
    assert_eq!(
        log_access_range(0, u64::MAX, u64::MAX),
        Some(LogRange {
            start: u64::MAX / (PAGE * 8),
            len: (PAGE * 8 - 2) / (PAGE * 8),
        })
    );
    assert_eq!(desc_size(u32::MAX), 16 * u64::from(u32::MAX));
    assert_eq!(avail_size(u32::MAX, true), 6 + 2 * u64::from(u32::MAX));
    assert_eq!(used_size(u32::MAX, true), 6 + 8 * u64::from(u32::MAX));
    assert_eq!(get_vring_base(true, 0xffff, 0xffff), u32::MAX);
    assert_eq!(set_vring_base(false, false, u32::MAX), Err(Errno::EINVAL));
    let b = set_vring_base(false, true, u32::MAX).unwrap();
    assert_eq!((b.last_avail_idx, b.last_used_idx), (0xffff, Some(0xffff)));

    let region = |gpa: u64, size: u64| VhostMemoryRegion {
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: u64::MAX,
        flags_padding: 0,
    };
    assert_eq!(
        mem_region_range(&region(u64::MAX, u64::MAX)),
        (u64::MAX, u64::MAX - 2)
    );
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    // [1, u64::MAX]; [u64::MAX, u64::MAX - 2] ends before it starts.
    fill_mem_table(&mut map, &[region(1, u64::MAX)]).unwrap();
    assert_eq!(
        fill_mem_table(&mut map, &[region(u64::MAX, u64::MAX)]),
        Err(Errno::EFAULT)
    );
    // An IOTLB update of the whole space, and one that wraps.
    let msg = |iova: u64, size: u64, uaddr: u64| VhostIotlbMsg {
        iova,
        size,
        uaddr,
        perm: VHOST_ACCESS_RW,
        type_: VHOST_IOTLB_UPDATE,
        padding: [0; 6],
    };
    let ok = |_: u64, _: u64| true;
    let mut map = IntervalMap::new(VecStorage::default(), 16, 0);
    assert!(process_iotlb_msg(Some(&mut map), 0, &msg(0, u64::MAX, 0), ok).is_ok());
    assert_eq!(
        process_iotlb_msg(Some(&mut map), 0, &msg(u64::MAX, u64::MAX, 0), ok),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        process_iotlb_msg(Some(&mut map), 0, &msg(0, 2, u64::MAX), ok),
        Err(Errno::EFAULT)
    );
}
