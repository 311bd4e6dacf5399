//! Example-based tests of the interval map, one C behaviour each.

use crate::storage::{ArrayStorage, VecStorage};
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{
    IntervalMap, Piece, Slot, TranslateError, FLAG_RETIRE, PERM_RO, PERM_RW, PERM_WO,
};

fn map(limit: u32, flags: u32) -> IntervalMap<VecStorage> {
    IntervalMap::new(VecStorage::default(), limit, flags)
}

/// (start, last, addr) of every entry in lookup order.
fn ranges<S: crate::vcore::memory::intervalmap::Storage>(
    m: &IntervalMap<S>,
) -> Vec<(u64, u64, u64)> {
    m.iter().map(|e| (e.start, e.last, e.addr)).collect()
}

#[test]
fn add_errors_in_c_order() {
    let mut m = map(0, 0);
    // last < start is checked before the limit.
    assert_eq!(m.add_range(5, 4, 0, PERM_RW), Err(Errno::EFAULT));
    assert_eq!(m.add_range(5, 5, 0, PERM_RW), Err(Errno::EINVAL));
    let mut m = map(1, 0);
    assert_eq!(m.add_range(5, 5, 0, PERM_RW), Ok(()));
    assert_eq!(m.add_range(7, 9, 0, PERM_RW), Err(Errno::ENOSPC));
    assert_eq!(m.len(), 1);
    assert_eq!(m.limit(), 1);
    assert_eq!(m.flags(), 0);
}

#[test]
fn single_byte_and_extreme_entries() {
    let mut m = map(8, 0);
    m.add_range(0, 0, 100, PERM_RO).unwrap();
    m.add_range(u64::MAX, u64::MAX, 200, PERM_RO).unwrap();
    m.add_range(1, u64::MAX - 1, 300, PERM_RO).unwrap();
    assert_eq!(m.first(0, 0).unwrap().1.addr, 100);
    assert_eq!(m.first(u64::MAX, u64::MAX).unwrap().1.addr, 200);
    assert_eq!(m.first(2, 2).unwrap().1.addr, 300);
    assert_eq!(m.get(1).unwrap().size(), u64::MAX - 1);
}

#[test]
fn whole_space_is_split_in_two() {
    let mut m = map(8, 0);
    m.add_range(0, u64::MAX, 0x1000, PERM_RW).unwrap();
    assert_eq!(
        ranges(&m),
        vec![
            (0, u64::MAX / 2, 0x1000),
            (
                u64::MAX / 2 + 1,
                u64::MAX,
                0x1000u64.wrapping_add(u64::MAX / 2 + 1)
            ),
        ]
    );
    // The second half's address wraps like C's u64 arithmetic.
    let mut m = map(8, 0);
    m.add_range(0, u64::MAX, u64::MAX, PERM_RW).unwrap();
    assert_eq!(m.get(1).unwrap().addr, u64::MAX / 2);
}

#[test]
fn split_needs_two_free_entries_without_retire() {
    assert_eq!(
        map(1, 0).add_range(0, u64::MAX, 0, PERM_RW),
        Err(Errno::ENOSPC)
    );
    assert_eq!(
        map(1, FLAG_RETIRE).add_range(0, u64::MAX, 0, PERM_RW),
        Err(Errno::ENOSPC)
    );
    let mut m = map(3, 0);
    m.add_range(10, 20, 0, PERM_RW).unwrap();
    m.add_range(30, 40, 0, PERM_RW).unwrap();
    assert_eq!(m.add_range(0, u64::MAX, 0, PERM_RW), Err(Errno::ENOSPC));
    assert_eq!(m.len(), 2);
    // With retire, both halves go in and the two old entries go out.
    let mut m = map(2, FLAG_RETIRE);
    m.add_range(10, 20, 0, PERM_RW).unwrap();
    m.add_range(30, 40, 0, PERM_RW).unwrap();
    m.add_range(0, u64::MAX, 7, PERM_RW).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m.get(0).unwrap().last, u64::MAX / 2);
}

#[test]
fn split_keeps_first_half_when_second_fails() {
    // The allocator can hold one more entry only: the first half stays.
    let mut m = IntervalMap::new(ArrayStorage::<2>::default(), 10, 0);
    m.add_range(100, 200, 0, PERM_RW).unwrap();
    assert_eq!(m.add_range(0, u64::MAX, 0, PERM_RW), Err(Errno::ENOMEM));
    assert_eq!(ranges(&m), vec![(0, u64::MAX / 2, 0), (100, 200, 0)]);
}

#[test]
fn retire_drops_the_oldest_inserted() {
    let mut m = map(3, FLAG_RETIRE);
    m.add_range(50, 59, 1, PERM_RW).unwrap();
    m.add_range(10, 19, 2, PERM_RW).unwrap();
    m.add_range(30, 39, 3, PERM_RW).unwrap();
    m.add_range(0, 5, 4, PERM_RW).unwrap();
    // [50,59] was inserted first although it sorts last.
    assert_eq!(ranges(&m), vec![(0, 5, 4), (10, 19, 2), (30, 39, 3)]);
    m.add_range(40, 45, 5, PERM_RW).unwrap();
    assert_eq!(ranges(&m), vec![(0, 5, 4), (30, 39, 3), (40, 45, 5)]);
    // The lookup structure follows the removal.
    assert!(m.first(55, 55).is_none());
    assert!(m.first(12, 12).is_none());
    assert_eq!(m.first(31, 100).unwrap().1.addr, 3);
}

#[test]
fn allocation_failure_is_enomem_and_changes_nothing() {
    let mut m = IntervalMap::new(ArrayStorage::<2>::default(), 100, FLAG_RETIRE);
    m.add_range(1, 1, 0, PERM_RW).unwrap();
    m.add_range(2, 2, 0, PERM_RW).unwrap();
    assert_eq!(m.add_range(3, 3, 0, PERM_RW), Err(Errno::ENOMEM));
    assert_eq!(m.len(), 2);
}

#[test]
fn overlaps_are_kept_and_first_prefers_lowest_start_then_oldest() {
    let mut m = map(16, 0);
    m.add_range(10, 100, 1, PERM_RW).unwrap();
    m.add_range(5, 20, 2, PERM_RW).unwrap();
    m.add_range(10, 15, 3, PERM_RW).unwrap();
    m.add_range(5, 6, 4, PERM_RW).unwrap();
    assert_eq!(m.len(), 4);
    // Overlapping [12, 12]: [5,20], [10,100], [10,15]; [5,6] does not overlap.
    let (i, e) = m.first(12, 12).unwrap();
    assert_eq!(e.addr, 2);
    let (i, e) = m.next(i, 12, 12).unwrap();
    assert_eq!(e.addr, 1, "equal starts: the earlier insertion first");
    let (i, e) = m.next(i, 12, 12).unwrap();
    assert_eq!(e.addr, 3);
    assert!(m.next(i, 12, 12).is_none());
    // Among equal starts the first inserted wins.
    assert_eq!(m.first(5, 5).unwrap().1.addr, 2);
    assert!(m.first(101, u64::MAX).is_none());
    assert!(m.first(0, 4).is_none());
}

#[test]
fn first_skips_long_entries_that_end_early() {
    // The running maximum must not be fooled by a later short entry.
    let mut m = map(16, 0);
    m.add_range(0, 1000, 1, PERM_RW).unwrap();
    m.add_range(10, 20, 2, PERM_RW).unwrap();
    m.add_range(30, 40, 3, PERM_RW).unwrap();
    assert_eq!(m.first(500, 600).unwrap().1.addr, 1);
    assert_eq!(m.first(1001, 2000), None);
    m.del_range(0, 0);
    assert_eq!(m.first(500, 600), None);
    assert_eq!(m.first(35, 600).unwrap().1.addr, 3);
}

#[test]
fn first_with_wrapped_range_behaves_like_the_tree() {
    // start > last: an entry matches when it starts by `last` and ends at or
    // after `start`.
    let mut m = map(16, 0);
    m.add_range(0, 100, 1, PERM_RW).unwrap();
    assert!(m.first(50, 10).is_some());
    assert!(m.first(200, 10).is_none());
}

#[test]
fn del_range_removes_whole_overlapping_entries() {
    let mut m = map(16, 0);
    m.add_range(0, 9, 1, PERM_RW).unwrap();
    m.add_range(10, 19, 2, PERM_RW).unwrap();
    m.add_range(20, 29, 3, PERM_RW).unwrap();
    m.add_range(5, 25, 4, PERM_RW).unwrap();
    m.del_range(19, 19);
    assert_eq!(ranges(&m), vec![(0, 9, 1), (20, 29, 3)]);
    m.del_range(30, u64::MAX);
    assert_eq!(m.len(), 2);
    m.reset();
    assert!(m.is_empty());
}

#[test]
fn new_discards_existing_content() {
    let storage = VecStorage(vec![Slot::default(); 3]);
    let m = IntervalMap::new(storage, 4, 0);
    assert!(m.is_empty());
    assert!(m.first(0, u64::MAX).is_none());
}

#[test]
fn translate_contiguous_pieces() {
    let mut m = map(16, 0);
    m.add_range(0x1000, 0x1fff, 0xa000, PERM_RW).unwrap();
    m.add_range(0x2000, 0x2fff, 0x5000, PERM_RO).unwrap();
    let mut out = [Piece::default(); 4];
    assert_eq!(m.translate(0x1ff0, 0x20, PERM_RO, &mut out), Ok(2));
    assert_eq!(
        &out[..2],
        &[
            Piece {
                addr: 0xaff0,
                len: 0x10
            },
            Piece {
                addr: 0x5000,
                len: 0x10
            }
        ]
    );
    // A write needs WO on every piece.
    assert_eq!(
        m.translate(0x1ff0, 0x20, PERM_WO, &mut out),
        Err(TranslateError::Perm)
    );
    // The first piece is fine, then a hole at 0x3000.
    assert_eq!(
        m.translate(0x2ff0, 0x20, PERM_RO, &mut out),
        Err(TranslateError::Miss { addr: 0x3000 })
    );
    // A hole before the first entry reports the start address.
    assert_eq!(
        m.translate(0x0ff0, 0x20, PERM_RO, &mut out),
        Err(TranslateError::Miss { addr: 0x0ff0 })
    );
}

#[test]
fn translate_len_zero_and_capacity() {
    let mut m = map(16, 0);
    m.add_range(0, 9, 0, PERM_RW).unwrap();
    m.add_range(10, 19, 100, PERM_RW).unwrap();
    let mut none: [Piece; 0] = [];
    // len 0: no piece and no check at all, even of unmapped addresses.
    assert_eq!(m.translate(1000, 0, PERM_RW, &mut none), Ok(0));
    // The room check comes before the lookup.
    assert_eq!(
        m.translate(1000, 1, PERM_RW, &mut none),
        Err(TranslateError::NoBufs)
    );
    let mut one = [Piece::default(); 1];
    assert_eq!(
        m.translate(5, 10, PERM_RW, &mut one),
        Err(TranslateError::NoBufs)
    );
    assert_eq!(m.translate(5, 5, PERM_RW, &mut one), Ok(1));
    assert_eq!(one[0], Piece { addr: 5, len: 5 });
}

#[test]
fn translate_uses_the_first_entry_even_when_a_later_one_covers_more() {
    let mut m = map(16, 0);
    m.add_range(0, 15, 1000, PERM_RW).unwrap();
    m.add_range(0, 100, 2000, PERM_RW).unwrap();
    let mut out = [Piece::default(); 4];
    assert_eq!(m.translate(10, 20, PERM_RO, &mut out), Ok(2));
    assert_eq!(out[0], Piece { addr: 1010, len: 6 });
    assert_eq!(
        out[1],
        Piece {
            addr: 2016,
            len: 14
        }
    );
}

#[test]
fn translate_across_the_top_of_the_address_space_misses() {
    // C computes last = addr + len - 1 with wrap-around, so the lookup range
    // is [u64::MAX - 1, 1], which no entry satisfies: the translation fails
    // at its first byte although both ends are mapped.
    let mut m = map(16, 0);
    m.add_range(u64::MAX - 3, u64::MAX, 0x100, PERM_RW).unwrap();
    m.add_range(0, 0xfff, 0x200, PERM_RW).unwrap();
    let mut out = [Piece::default(); 4];
    assert_eq!(
        m.translate(u64::MAX - 1, 4, PERM_RW, &mut out),
        Err(TranslateError::Miss { addr: u64::MAX - 1 })
    );
    // Ending exactly at u64::MAX does not wrap and works.
    assert_eq!(m.translate(u64::MAX - 1, 2, PERM_RW, &mut out), Ok(1));
    assert_eq!(
        out[0],
        Piece {
            addr: 0x102,
            len: 2
        }
    );
    // An entry starting at 1 matches the wrapped lookup; the walk then wraps
    // to address 0, which that entry does not cover.
    let mut m = map(16, 0);
    m.add_range(1, u64::MAX, 0x100, PERM_RW).unwrap();
    assert_eq!(
        m.translate(u64::MAX - 1, 4, PERM_RW, &mut out),
        Err(TranslateError::Miss { addr: 0 })
    );
}

#[test]
fn translate_errno_mapping() {
    assert_eq!(TranslateError::Miss { addr: 0 }.errno(false), Errno::EFAULT);
    assert_eq!(TranslateError::Miss { addr: 0 }.errno(true), Errno::EAGAIN);
    assert_eq!(TranslateError::Perm.errno(true), Errno::EPERM);
    assert_eq!(TranslateError::NoBufs.errno(false), Errno::ENOBUFS);
}

#[test]
fn array_storage_behaves_like_vec_storage() {
    let mut a = IntervalMap::new(ArrayStorage::<8>::default(), 8, FLAG_RETIRE);
    let mut v = map(8, FLAG_RETIRE);
    for i in 0..20u64 {
        let s = (i * 7919) % 97;
        a.add_range(s, s + i % 5, i, PERM_RW).unwrap();
        v.add_range(s, s + i % 5, i, PERM_RW).unwrap();
        if i % 6 == 5 {
            a.del_range(s, s + 10);
            v.del_range(s, s + 10);
        }
        assert_eq!(ranges(&a), ranges(&v));
    }
}
