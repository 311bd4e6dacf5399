//! Unit tests of the split ring: every C behaviour modelled, each error path.

use crate::ringsim::{Ev, Mem, Region, Xlate};
use crate::vcore::errno::Errno;
use crate::vcore::memory::dirtylog::LogEntry;
use crate::vcore::memory::intervalmap::{Piece, PERM_RO, PERM_WO};
use crate::vcore::ring::{chain::*, desc::*, split::*};

const BASE: u64 = 0x10_0000;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
/// User address of the buffer area; guest address 0 maps here.
const BUF: u64 = BASE + 0x4000;
const SIZE: usize = 0x10000;
const N: u16 = VRING_DESC_F_NEXT;
const W: u16 = VRING_DESC_F_WRITE;
const I: u16 = VRING_DESC_F_INDIRECT;

const EINVAL: RingError = RingError::broken(Errno::EINVAL);
const EFAULT: RingError = RingError::broken(Errno::EFAULT);

struct G {
    mem: Mem,
    xl: Xlate,
    ring: SplitRing,
    iov: Vec<Piece>,
    ind: Vec<Piece>,
    log: Option<Vec<LogEntry>>,
    next_avail: u16,
}

/// Guest address 0..0x4000 read-write, 0x4000..0x5000 read-only,
/// 0x5000..0x6000 write-only, then a hole.
fn regions() -> Vec<Region> {
    vec![
        Region {
            gpa: 0,
            len: 0x4000,
            uaddr: BUF,
            perm: PERM_RO | PERM_WO,
        },
        Region {
            gpa: 0x4000,
            len: 0x1000,
            uaddr: BUF + 0x4000,
            perm: PERM_RO,
        },
        Region {
            gpa: 0x5000,
            len: 0x1000,
            uaddr: BUF + 0x5000,
            perm: PERM_WO,
        },
    ]
}

fn cfg(num: u32) -> SplitConfig {
    SplitConfig {
        num,
        desc: DESC,
        avail: AVAIL,
        used: USED,
        event_idx: false,
        notify_on_empty: false,
    }
}

fn guest_with(num: u32, xl: Xlate) -> G {
    G {
        mem: Mem::new(BASE, SIZE),
        xl,
        ring: SplitRing::new(&cfg(num)).unwrap(),
        iov: vec![Piece::default(); 16],
        ind: vec![Piece::default(); UIO_MAXIOV],
        log: Some(vec![LogEntry::default(); 16]),
        next_avail: 0,
    }
}

fn guest(num: u32) -> G {
    guest_with(num, Xlate::new(&regions(), false))
}

impl G {
    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = Desc {
            addr,
            len,
            flags,
            next,
        };
        self.mem.poke(DESC + 16 * i as u64, &d.to_bytes());
    }
    /// Writes an indirect table at guest address `gpa` (read-write area).
    fn table(&self, gpa: u64, descs: &[(u64, u32, u16, u16)]) {
        for (k, &(addr, len, flags, next)) in descs.iter().enumerate() {
            let d = Desc {
                addr,
                len,
                flags,
                next,
            };
            self.mem.poke(BUF + gpa + 16 * k as u64, &d.to_bytes());
        }
    }
    fn push(&mut self, head: u16) {
        let num = self.ring.num() as u16;
        let slot = (self.next_avail & (num - 1)) as u64;
        self.mem.poke_u16(AVAIL + 4 + 2 * slot, head);
        self.next_avail = self.next_avail.wrapping_add(1);
        self.mem.poke_u16(AVAIL + 2, self.next_avail);
    }
    fn get(&mut self) -> Result<Option<Chain>, RingError> {
        self.ring.get_desc_chain(
            &self.mem,
            &self.xl,
            ChainBufs {
                iov: &mut self.iov,
                indirect: &mut self.ind,
                log: self.log.as_deref_mut(),
                reads: MAX_PACKET_READS,
            },
        )
    }
    fn chain(&mut self) -> Chain {
        self.get().unwrap().unwrap()
    }
    fn out(&self, c: &Chain) -> Vec<Piece> {
        self.iov[..c.out_num].to_vec()
    }
    fn inn(&self, c: &Chain) -> Vec<Piece> {
        self.iov[c.out_num..c.out_num + c.in_num].to_vec()
    }
    fn logs(&self, c: &Chain) -> Vec<LogEntry> {
        self.log.as_ref().unwrap()[..c.log_num].to_vec()
    }
}

fn p(gpa: u64, len: u64) -> Piece {
    Piece {
        addr: BUF + gpa,
        len,
    }
}

#[test]
fn new_rejects_bad_sizes() {
    for num in [0, 3, 6, 65536, 1 << 20] {
        assert_eq!(SplitRing::new(&cfg(num)), Err(Errno::EINVAL), "{num}");
    }
    for num in [1, 2, 256, 32768] {
        assert!(SplitRing::new(&cfg(num)).is_ok());
    }
}

#[test]
fn empty_ring_gives_none_without_barrier() {
    let mut g = guest(4);
    assert_eq!(g.get(), Ok(None));
    assert_eq!(g.mem.take_events(), [Ev::Read(AVAIL + 2, 2)]);
    assert_eq!(g.ring.last_avail_idx(), 0);
}

#[test]
fn simple_chain_out_then_in() {
    let mut g = guest(4);
    g.desc(2, 0x100, 10, N, 3);
    g.desc(3, 0x200, 20, N | W, 0);
    g.desc(0, 0x300, 30, W, 1);
    g.push(2);
    let c = g.chain();
    assert_eq!(c.head, 2);
    assert_eq!(c.descs, 3);
    assert_eq!(g.out(&c), [p(0x100, 10)]);
    assert_eq!(g.inn(&c), [p(0x200, 20), p(0x300, 30)]);
    assert_eq!(
        g.logs(&c),
        [
            LogEntry {
                addr: 0x200,
                len: 20
            },
            LogEntry {
                addr: 0x300,
                len: 30
            }
        ]
    );
    assert_eq!(g.ring.last_avail_idx(), 1);
    assert_eq!(g.ring.avail_idx(), 1);
    // The index is read, then the barrier, then the entry and descriptors.
    let ev = g.mem.take_events();
    assert_eq!(
        ev[..3],
        [Ev::Read(AVAIL + 2, 2), Ev::Rmb, Ev::Read(AVAIL + 4, 2)]
    );
    assert_eq!(ev.iter().filter(|e| **e == Ev::Rmb).count(), 1);
    assert_eq!(g.get(), Ok(None));
}

#[test]
fn cached_index_is_not_reread() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    g.push(0);
    g.chain();
    g.mem.take_events();
    g.chain();
    let ev = g.mem.take_events();
    assert!(!ev.contains(&Ev::Read(AVAIL + 2, 2)), "{ev:?}");
    assert!(!ev.contains(&Ev::Rmb));
    // Exhausted now: the next call reads the index again, finds nothing.
    assert_eq!(g.get(), Ok(None));
    assert_eq!(g.mem.take_events(), [Ev::Read(AVAIL + 2, 2)]);
}

#[test]
fn avail_index_beyond_num_is_einval() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.mem.poke_u16(AVAIL + 2, 5);
    assert_eq!(g.get(), Err(EINVAL));
    assert_eq!(g.ring.avail_idx(), 0);
    // Exactly num is fine, also across the 16-bit wrap.
    g.ring.set_base(0xfffe);
    g.mem.poke_u16(AVAIL + 2, 2);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.ring.avail_idx(), 2);
    assert_eq!(g.ring.last_avail_idx(), 0xffff);
    // Going backwards looks like a huge move forward.
    g.ring.set_base(10);
    g.mem.poke_u16(AVAIL + 2, 9);
    assert_eq!(g.get(), Err(EINVAL));
}

#[test]
fn avail_index_read_error_is_propagated() {
    let mut g = guest(4);
    g.mem.fault(AVAIL + 2, 2);
    assert_eq!(g.get(), Err(EFAULT));
}

#[test]
fn head_read_error_is_efault() {
    let mut g = guest(4);
    g.push(0);
    g.mem.fault(AVAIL + 4, 2);
    assert_eq!(g.get(), Err(EFAULT));
    assert_eq!(g.ring.last_avail_idx(), 0);
    // The index was cached; the failure does not undo that.
    assert_eq!(g.ring.avail_idx(), 1);
}

#[test]
fn head_out_of_range_is_einval() {
    let mut g = guest(4);
    g.push(4);
    assert_eq!(g.get(), Err(EINVAL));
    assert_eq!(g.ring.last_avail_idx(), 0);
}

#[test]
fn next_out_of_range_is_einval() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, N, 4);
    g.push(0);
    assert_eq!(g.get(), Err(EINVAL));
}

#[test]
fn loop_is_einval_but_num_descriptors_are_fine() {
    let mut g = guest(4);
    for i in 0..4 {
        g.desc(i, 0x100 * i as u64, 1, N, (i + 1) % 4);
    }
    g.push(0);
    assert_eq!(g.get(), Err(EINVAL));
    g.desc(3, 0x300, 1, 0, 0);
    let c = g.chain();
    assert_eq!(c.descs, 4);
    assert_eq!(c.out_num, 4);
    // A self loop.
    g.desc(1, 0x100, 1, N, 1);
    g.push(1);
    assert_eq!(g.get(), Err(EINVAL));
}

#[test]
fn descriptor_read_error_is_efault() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, N, 1);
    g.mem.fault(DESC + 16 + 15, 1);
    g.push(0);
    assert_eq!(g.get(), Err(EFAULT));
}

#[test]
fn out_after_in_is_einval() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, N | W, 1);
    g.desc(1, 0x200, 1, 0, 0);
    g.push(0);
    assert_eq!(g.get(), Err(EINVAL));
}

#[test]
fn empty_writable_descriptor_counts_for_nothing() {
    let mut g = guest(4);
    g.desc(0, 0x100, 0, N | W, 1);
    g.desc(1, 0x200, 5, N, 2);
    g.desc(2, 0x300, 0, 0, 0);
    g.push(0);
    let c = g.chain();
    assert_eq!((c.out_num, c.in_num, c.log_num), (1, 0, 0));
    assert_eq!(g.out(&c), [p(0x200, 5)]);
}

#[test]
fn translation_errors() {
    // No mapping.
    let mut g = guest(4);
    g.desc(0, 0x6000, 1, 0, 0);
    g.push(0);
    assert_eq!(g.get(), Err(EFAULT));
    // Runs off the end of the mapped space.
    g.desc(0, 0x5ff0, 0x20, W, 0);
    assert_eq!(g.get(), Err(EFAULT));
    // Writable buffer in read-only memory and the reverse.
    g.desc(0, 0x4000, 1, W, 0);
    assert_eq!(g.get(), Err(RingError::broken(Errno::EPERM)));
    g.desc(0, 0x5000, 1, 0, 0);
    assert_eq!(g.get(), Err(RingError::broken(Errno::EPERM)));
    // Two pieces (across the 0x4000 boundary), then one more.
    g.desc(0, 0x3ff0, 0x1010, N, 1);
    g.desc(1, 0x0, 0x10, W, 0);
    g.iov.truncate(2);
    assert_eq!(g.get(), Err(RingError::broken(Errno::ENOBUFS)));
    g.iov.truncate(1);
    assert_eq!(g.get(), Err(RingError::broken(Errno::ENOBUFS)));
    assert_eq!(g.ring.last_avail_idx(), 0);
    g.iov = vec![Piece::default(); 3];
    let c = g.chain();
    assert_eq!(g.out(&c), [p(0x3ff0, 0x10), p(0x4000, 0x1000)]);
    assert_eq!(g.inn(&c), [p(0x0, 0x10)]);
    assert!(g.xl.misses.borrow().is_empty());
}

#[test]
fn iotlb_miss_is_retry_later() {
    let mut g = guest_with(4, Xlate::new(&regions(), true));
    g.desc(0, 0x100, 4, N, 1);
    g.desc(1, 0x5ff0, 0x20, W, 0);
    g.push(0);
    assert_eq!(
        g.get(),
        Err(RingError::IotlbMiss {
            iova: 0x6000,
            access: PERM_WO
        })
    );
    assert_eq!(g.get().unwrap_err().errno(), Errno::EAGAIN);
    assert_eq!(g.xl.misses.borrow()[0], (0x6000, PERM_WO));
    assert_eq!(g.ring.last_avail_idx(), 0);
}

#[test]
fn log_slice_too_short_is_enobufs() {
    let mut g = guest(4);
    g.desc(0, 0x100, 4, N | W, 1);
    g.desc(1, 0x200, 4, W, 0);
    g.push(0);
    g.log = Some(vec![LogEntry::default(); 1]);
    assert_eq!(g.get(), Err(RingError::broken(Errno::ENOBUFS)));
    g.log = None;
    let c = g.chain();
    assert_eq!((c.in_num, c.log_num), (2, 0));
}

#[test]
fn indirect_table() {
    let mut g = guest(4);
    g.table(
        0x1000,
        &[
            (0x100, 8, N, 7), // `next` is ignored: entries are read in order.
            (0x200, 16, N | W, 0),
            (0x300, 32, W, 0),
            (0x400, 64, 0, 0), // Never reached.
        ],
    );
    g.desc(1, 0x1000, 64, I | W, 0); // The outer WRITE flag means nothing.
    g.push(1);
    let c = g.chain();
    assert_eq!(c.descs, 1);
    assert_eq!(g.out(&c), [p(0x100, 8)]);
    assert_eq!(g.inn(&c), [p(0x200, 16), p(0x300, 32)]);
    assert_eq!(c.log_num, 2);
}

#[test]
fn indirect_table_behind_an_iotlb_is_read_where_it_was_translated() {
    // With a device IOTLB the table's address is an IOVA: translated once,
    // its entries are then read at the user addresses it maps to (C's
    // `get_indirect`), not through the IOTLB again.
    let mut g = guest_with(4, Xlate::new(&regions(), true));
    g.table(0x1000, &[(0x100, 8, N, 0), (0x200, 16, W, 0)]);
    g.desc(1, 0x1000, 32, I, 0);
    g.push(1);
    g.mem.take_events();
    let c = g.chain();
    assert_eq!(g.out(&c), [p(0x100, 8)]);
    assert_eq!(g.inn(&c), [p(0x200, 16)]);
    let ev = g.mem.take_events();
    assert!(ev.contains(&Ev::ReadTranslated(BUF + 0x1000, 16)), "{ev:?}");
    assert!(ev.contains(&Ev::ReadTranslated(BUF + 0x1010, 16)), "{ev:?}");
    assert!(!ev.contains(&Ev::Read(BUF + 0x1000, 16)), "{ev:?}");
    assert!(g.xl.misses.borrow().is_empty());
}

#[test]
fn indirect_descriptor_with_next_goes_on() {
    let mut g = guest(4);
    g.table(0x1000, &[(0x100, 8, 0, 0)]);
    g.desc(0, 0x1000, 16, I | N, 2);
    g.desc(2, 0x200, 8, W, 0);
    g.push(0);
    let c = g.chain();
    assert_eq!(c.descs, 2);
    assert_eq!(g.out(&c), [p(0x100, 8)]);
    assert_eq!(g.inn(&c), [p(0x200, 8)]);
    // Two indirect tables in one chain, and a direct one before.
    g.desc(3, 0x50, 1, N, 0);
    g.desc(0, 0x1000, 16, I | N, 1);
    g.desc(1, 0x1000, 16, I, 0);
    g.push(3);
    let c = g.chain();
    assert_eq!(g.out(&c), [p(0x50, 1), p(0x100, 8), p(0x100, 8)]);
}

#[test]
fn indirect_errors() {
    let mut g = guest(4);
    g.table(0x1000, &[(0x100, 8, N, 0), (0x200, 8, 0, 0)]);
    g.push(0);
    // Not a multiple of 16.
    g.desc(0, 0x1000, 24, I, 0);
    assert_eq!(g.get(), Err(EINVAL));
    // Zero length: passes the checks, then fails as a "loop".
    g.desc(0, 0x1000, 0, I, 0);
    assert_eq!(g.get(), Err(EINVAL));
    // The chain wants a second entry the table does not have.
    g.desc(0, 0x1000, 16, I, 0);
    assert_eq!(g.get(), Err(EINVAL));
    // Nested.
    g.table(0x1000, &[(0x100, 8, N, 0), (0x2000, 16, I, 0)]);
    g.desc(0, 0x1000, 32, I, 0);
    assert_eq!(g.get(), Err(EINVAL));
    // Out after in inside the table.
    g.table(0x1000, &[(0x100, 8, N | W, 0), (0x200, 8, 0, 0)]);
    assert_eq!(g.get(), Err(EINVAL));
    // Out after in across the table and the outer chain.
    g.table(0x1000, &[(0x100, 8, W, 0)]);
    g.desc(0, 0x1000, 16, I | N, 1);
    g.desc(1, 0x200, 8, 0, 0);
    assert_eq!(g.get(), Err(EINVAL));
    // The table itself is unmapped or write-only.
    g.desc(0, 0x6000, 16, I, 0);
    assert_eq!(g.get(), Err(EFAULT));
    g.desc(0, 0x5000, 16, I, 0);
    assert_eq!(g.get(), Err(RingError::broken(Errno::EPERM)));
    // Too many pieces for the table scratch.
    g.desc(0, 0x3ff0, 32, I, 0);
    g.ind.truncate(1);
    assert_eq!(g.get(), Err(RingError::broken(Errno::ENOBUFS)));
    g.ind = vec![Piece::default(); UIO_MAXIOV];
    // Reading an entry faults: EINVAL, not EFAULT.
    g.table(0x1000, &[(0x100, 8, 0, 0)]);
    g.desc(0, 0x1000, 16, I, 0);
    g.mem.fault(BUF + 0x1008, 1);
    assert_eq!(g.get(), Err(EINVAL));
    assert_eq!(g.ring.last_avail_idx(), 0);
}

#[test]
fn indirect_table_too_big_is_e2big_before_reading() {
    let big = Region {
        gpa: 0x100_0000,
        len: 0x200_0000,
        uaddr: 0xdead_0000_0000,
        perm: PERM_RO,
    };
    let mut rs = regions();
    rs.push(big);
    let mut g = guest_with(4, Xlate::new(&rs, false));
    g.desc(0, 0x100_0000, 16 * 65537, I, 0);
    g.push(0);
    assert_eq!(g.get(), Err(RingError::broken(Errno::E2BIG)));
    // 65536 entries pass that check; reading the unbacked table fails.
    g.desc(0, 0x100_0000, 16 * 65536, I, 0);
    assert_eq!(g.get(), Err(EINVAL));
}

#[test]
fn indirect_table_split_across_regions() {
    let mut g = guest(4);
    // Entry 1 of the table straddles the 0x4000 boundary (RW | RO regions).
    let gpa = 0x4000 - 24;
    let d0 = Desc {
        addr: 0x100,
        len: 8,
        flags: N,
        next: 0,
    };
    let d1 = Desc {
        addr: 0x200,
        len: 8,
        flags: W,
        next: 0,
    };
    g.mem.poke(BUF + gpa, &d0.to_bytes());
    g.mem.poke(BUF + gpa + 16, &d1.to_bytes());
    g.desc(0, gpa, 32, I, 0);
    g.push(0);
    let c = g.chain();
    assert_eq!(g.out(&c), [p(0x100, 8)]);
    assert_eq!(g.inn(&c), [p(0x200, 8)]);
}

#[test]
fn indirect_iotlb_miss() {
    let mut g = guest_with(4, Xlate::new(&regions(), true));
    g.desc(0, 0x6000, 16, I, 0);
    g.push(0);
    assert_eq!(
        g.get(),
        Err(RingError::IotlbMiss {
            iova: 0x6000,
            access: PERM_RO
        })
    );
}

#[test]
fn discard_moves_back_with_wrap() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.ring.set_base(0xffff);
    g.mem.poke_u16(AVAIL + 2, 1);
    g.chain();
    g.chain();
    assert_eq!(g.ring.last_avail_idx(), 1);
    g.ring.discard(2, 0);
    assert_eq!(g.ring.last_avail_idx(), 0xffff);
    // The cache still covers them: no re-read needed.
    g.mem.take_events();
    g.chain();
    assert!(!g.mem.take_events().contains(&Ev::Read(AVAIL + 2, 2)));
}

/// The avail-ring reads of `events`: (address, length).
fn avail_entry_reads(ev: &[Ev]) -> Vec<(u64, usize)> {
    ev.iter()
        .filter_map(|e| match *e {
            Ev::Read(a, n) if (AVAIL + 4..AVAIL + 0x1000).contains(&a) => Some((a, n)),
            _ => None,
        })
        .collect()
}

#[test]
fn heads_are_read_ahead_in_one_copy() {
    let mut g = guest(8);
    for i in 0..5 {
        g.desc(i, 0x100 * u64::from(i), 1, 0, 0);
    }
    for h in [3, 1, 4, 0, 2] {
        g.push(h);
    }
    g.mem.take_events();
    assert_eq!(g.chain().head, 3);
    assert_eq!(avail_entry_reads(&g.mem.take_events()), [(AVAIL + 4, 10)]);
    for h in [1, 4, 0, 2] {
        assert_eq!(g.chain().head, h);
    }
    assert_eq!(avail_entry_reads(&g.mem.take_events()), []);
    assert_eq!(g.get(), Ok(None));
    // One entry available: one read of it, as C.
    g.push(1);
    g.mem.take_events();
    assert_eq!(g.chain().head, 1);
    assert_eq!(
        avail_entry_reads(&g.mem.take_events()),
        [(AVAIL + 4 + 10, 2)]
    );
}

#[test]
fn read_ahead_stops_at_the_ring_end_and_after_a_discard_reads_again() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.desc(1, 0x200, 1, 0, 0);
    g.ring.set_base(0xfffe);
    g.next_avail = 0xfffe;
    for h in [1, 0, 1, 0] {
        g.push(h);
    }
    g.mem.take_events();
    // Index 0xfffe is slot 2: slots 2 and 3, then 0 and 1.
    assert_eq!(g.chain().head, 1);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 1);
    assert_eq!(g.chain().head, 0);
    assert_eq!(
        avail_entry_reads(&g.mem.take_events()),
        [(AVAIL + 4 + 4, 4), (AVAIL + 4, 4)]
    );
    // Give back three: the first of them (slot 3) is before the entries
    // read last, so it is read again, with the one after it.
    g.ring.discard(3, 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(
        avail_entry_reads(&g.mem.take_events()),
        [(AVAIL + 4 + 6, 2)]
    );
    assert_eq!(g.chain().head, 1);
    assert_eq!(g.chain().head, 0);
    assert_eq!(avail_entry_reads(&g.mem.take_events()), [(AVAIL + 4, 4)]);
}

#[test]
fn failed_read_ahead_falls_back_to_one_entry_as_c() {
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    g.push(0);
    g.mem.fault(AVAIL + 6, 2);
    // The first entry reads alone; the second fails as C's read would.
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.get(), Err(EFAULT));
    assert_eq!(g.ring.last_avail_idx(), 1);
}

#[test]
fn moving_the_ring_or_its_base_forgets_the_entries_read_ahead() {
    let mut g = guest(4);
    for i in 0..4 {
        g.desc(i, 0x100 * u64::from(i), 1, 0, 0);
    }
    g.push(1);
    g.push(2);
    assert_eq!(g.chain().head, 1);
    // Userspace stops the ring, the driver resets it with other entries.
    g.ring.set_base(0);
    g.mem.poke_u16(AVAIL + 4, 3);
    g.mem.poke_u16(AVAIL + 6, 0);
    assert_eq!(g.chain().head, 3);
    assert_eq!(g.chain().head, 0);
    g.ring.set_indices(0, 0);
    g.mem.poke_u16(AVAIL + 4, 2);
    assert_eq!(g.chain().head, 2);
    g.ring.set_layout(4, DESC, AVAIL, USED).unwrap();
    g.mem.poke_u16(AVAIL + 6, 3);
    assert_eq!(g.chain().head, 3);
}

#[test]
fn no_read_ahead_through_a_device_iotlb() {
    let mut g = guest_with(4, Xlate::new(&regions(), true));
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    g.push(0);
    g.mem.take_events();
    let _ = g.get();
    assert_eq!(avail_entry_reads(&g.mem.take_events()), [(AVAIL + 4, 2)]);
}

fn used_elems(g: &G, num: u32) -> Vec<(u32, u32)> {
    (0..num as u64)
        .map(|k| {
            let b = g.mem.peek(USED + 4 + 8 * k, 8).unwrap();
            (
                u32::from_le_bytes(b[..4].try_into().unwrap()),
                u32::from_le_bytes(b[4..].try_into().unwrap()),
            )
        })
        .collect()
}

fn e(id: u32, len: u32) -> UsedElem {
    UsedElem { id, len }
}

#[test]
fn add_used_writes_then_barrier_then_index() {
    let mut g = guest(4);
    g.ring
        .add_used(&g.mem, &g.xl, &[e(1, 10), e(2, 20)])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 2);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(2));
    assert_eq!(used_elems(&g, 4)[..2], [(1, 10), (2, 20)]);
    assert_eq!(
        g.mem.take_events(),
        [Ev::Write(USED + 4, 16), Ev::Wmb, Ev::Write(USED + 2, 2)]
    );
}

#[test]
fn add_used_splits_at_wrap() {
    let mut g = guest(4);
    g.mem.poke_u16(USED + 2, 1);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    assert_eq!(g.ring.last_used_idx(), 1);
    g.mem.take_events();
    g.ring
        .add_used(&g.mem, &g.xl, &[e(1, 1), e(2, 2), e(3, 3), e(0, 4)])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 5);
    assert_eq!(used_elems(&g, 4), [(0, 4), (1, 1), (2, 2), (3, 3)]);
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED + 4 + 8, 24),
            Ev::Write(USED + 4, 8),
            Ev::Wmb,
            Ev::Write(USED + 2, 2)
        ]
    );
}

#[test]
fn add_used_more_than_num_wraps_again() {
    let mut g = guest(2);
    g.ring
        .add_used(
            &g.mem,
            &g.xl,
            &[e(1, 1), e(2, 2), e(3, 3), e(4, 4), e(5, 5)],
        )
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 5);
    assert_eq!(used_elems(&g, 2), [(5, 5), (4, 4)]);
}

#[test]
fn add_used_empty_still_writes_index() {
    let mut g = guest(4);
    g.ring.add_used(&g.mem, &g.xl, &[]).unwrap();
    assert_eq!(g.mem.take_events(), [Ev::Wmb, Ev::Write(USED + 2, 2)]);
}

#[test]
fn add_used_faults() {
    let mut g = guest(4);
    g.mem.fault(USED + 2, 2);
    assert_eq!(
        g.ring.add_used(&g.mem, &g.xl, &[e(0, 1)]),
        Err(Errno::EFAULT)
    );
    // The element was written and counted; the index was not published.
    assert_eq!(g.ring.last_used_idx(), 1);
    assert_eq!(g.mem.peek_u16(USED + 2), None);

    let mut g = guest(4);
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 1); 3]).unwrap();
    g.mem.fault(USED + 4, 8);
    // First part (entry 3) is written, the second (entry 0) faults.
    assert_eq!(
        g.ring.add_used(&g.mem, &g.xl, &[e(7, 7), e(8, 8)]),
        Err(Errno::EFAULT)
    );
    assert_eq!(g.ring.last_used_idx(), 4);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(3));
    let b = g.mem.peek(USED + 4 + 8 * 3, 8).unwrap();
    assert_eq!(b, [7, 0, 0, 0, 7, 0, 0, 0]);
}

/// Bitmap at BUF + 0x3000; the used ring's guest address is 0x10000 * 4
/// pages in, so page p of the used ring is bit p of byte 8.
const LOG_BASE: u64 = BUF + 0x3000;
const USED_GPA: u64 = 0x40000;

#[test]
fn add_used_logs_each_part_and_index() {
    let mut g = guest(1024);
    g.ring.set_used_log(Some(UsedLog {
        log_base: LOG_BASE,
        log_addr: USED_GPA,
    }));
    // Start at entry 1020: the elements are in the used ring's third page
    // (offsets 8164..8196 span pages 1 and 2), then entries 0-1 in page 0.
    g.mem.poke_u16(USED + 2, 1020);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    g.mem.take_events();
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0); 6]).unwrap();
    let byte = LOG_BASE + USED_GPA / 4096 / 8;
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED + 4 + 8 * 1020, 32),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0110),
            Ev::Write(USED + 4, 16),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0001),
            Ev::Wmb,
            Ev::Write(USED + 2, 2),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0001),
            Ev::LogSignal,
        ]
    );
}

#[test]
fn used_log_through_iotlb_miss_logs_nothing() {
    // The used ring's address is an IOVA the IOTLB does not map: the
    // translation for logging misses, a miss is queued, and nothing is
    // logged; C ignores the failure and so does add_used.
    let tlb = [Region {
        gpa: 0x9000_0000,
        len: 0x1000,
        uaddr: USED,
        perm: PERM_RO | PERM_WO,
    }];
    let mut g = guest_with(4, Xlate::new(&tlb, true).with_umem(&regions()));
    g.ring.set_used_log(Some(UsedLog {
        log_base: LOG_BASE,
        log_addr: 0xbad,
    }));
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0)]).unwrap();
    let ev = g.mem.take_events();
    assert!(ev.iter().all(|e| !matches!(e, Ev::SetBits(..))), "{ev:?}");
    assert_eq!(g.xl.misses.borrow()[0], (USED + 4, PERM_WO));
    assert_eq!(g.mem.peek_u16(USED + 2), Some(1));
}

#[test]
fn used_log_through_iotlb_logs_guest_pages() {
    // Map IOVA == user address for the used ring so the mock can write it.
    let tlb = [Region {
        gpa: USED,
        len: 0x1000,
        uaddr: USED,
        perm: PERM_RO | PERM_WO,
    }];
    // USED - BASE = 0x2000, so guest 0x70000 + 0x2000 = page 0x72.
    let umem = [Region {
        gpa: 0x70000,
        len: SIZE as u64,
        uaddr: BASE,
        perm: PERM_RO | PERM_WO,
    }];
    let mut g = guest_with(4, Xlate::new(&tlb, true).with_umem(&umem));
    g.ring.set_used_log(Some(UsedLog {
        log_base: LOG_BASE,
        log_addr: 0xbad,
    }));
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0)]).unwrap();
    let page = 0x72u64;
    let bit = Ev::SetBits(LOG_BASE + page / 8, 1 << (page % 8));
    let ev = g.mem.take_events();
    assert_eq!(ev.iter().filter(|e| **e == bit).count(), 2, "{ev:?}");
    assert!(g.xl.misses.borrow().is_empty());
}

#[test]
fn init_access() {
    let mut g = guest(4);
    g.ring.disable_notify(&g.mem, &g.xl);
    g.mem.poke_u16(USED + 2, 77);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    assert_eq!(g.ring.last_used_idx(), 77);
    assert_eq!(g.mem.peek_u16(USED), Some(VRING_USED_F_NO_NOTIFY));
    let mut g = guest(4);
    g.mem.fault(USED, 2);
    assert_eq!(g.ring.init_access(&g.mem, &g.xl), Err(Errno::EFAULT));
    let mut g = guest(4);
    g.mem.fault(USED + 2, 2);
    assert_eq!(g.ring.init_access(&g.mem, &g.xl), Err(Errno::EFAULT));
}

fn with_features(g: &mut G, event_idx: bool, notify_on_empty: bool) {
    g.ring.set_features(event_idx, notify_on_empty, false);
}

#[test]
fn disable_and_enable_notify_with_flags() {
    let mut g = guest(4);
    assert_eq!(g.ring.enable_notify(&g.mem, &g.xl).value, false);
    assert!(g.mem.take_events().is_empty(), "already enabled: no-op");
    assert_eq!(g.ring.disable_notify(&g.mem, &g.xl).error, None);
    assert_eq!(g.mem.peek_u16(USED), Some(1));
    assert_eq!(g.mem.take_events(), [Ev::Write(USED, 2)]);
    g.ring.disable_notify(&g.mem, &g.xl);
    assert!(g.mem.take_events().is_empty(), "already disabled: no-op");
    // Nothing new.
    let r = g.ring.enable_notify(&g.mem, &g.xl);
    assert_eq!(
        r,
        Reported {
            value: false,
            error: None
        }
    );
    assert_eq!(g.mem.peek_u16(USED), Some(0));
    assert_eq!(
        g.mem.take_events(),
        [Ev::Write(USED, 2), Ev::Mb, Ev::Read(AVAIL + 2, 2)]
    );
    // Something arrived meanwhile.
    g.ring.disable_notify(&g.mem, &g.xl);
    g.push(0);
    assert_eq!(g.ring.enable_notify(&g.mem, &g.xl).value, true);
    assert_eq!(g.ring.avail_idx(), 1);
}

#[test]
fn enable_notify_with_event_idx_writes_avail_event() {
    let mut g = guest(4);
    with_features(&mut g, true, false);
    g.ring.disable_notify(&g.mem, &g.xl);
    assert!(g.mem.take_events().is_empty(), "event idx: nothing written");
    assert_eq!(g.ring.used_flags(), VRING_USED_F_NO_NOTIFY);
    g.ring.set_base(9);
    g.mem.poke_u16(AVAIL + 2, 9);
    let r = g.ring.enable_notify(&g.mem, &g.xl);
    assert_eq!(r.value, false);
    let avail_event = USED + 4 + 8 * 4;
    assert_eq!(g.mem.peek_u16(avail_event), Some(9));
    assert_eq!(
        g.mem.take_events(),
        [Ev::Write(avail_event, 2), Ev::Mb, Ev::Read(AVAIL + 2, 2)]
    );
}

#[test]
fn enable_notify_answers_against_the_cache() {
    // C compares the re-read index with the cached one, not with
    // last_avail_idx: untaken cached entries do not count.
    let mut g = guest(4);
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    g.push(0);
    g.ring.disable_notify(&g.mem, &g.xl);
    g.chain();
    assert_eq!(g.ring.enable_notify(&g.mem, &g.xl).value, false);
}

#[test]
fn enable_notify_errors() {
    let mut g = guest(4);
    g.ring.disable_notify(&g.mem, &g.xl);
    g.mem.fault(USED, 2);
    let r = g.ring.enable_notify(&g.mem, &g.xl);
    assert_eq!(
        r,
        Reported {
            value: false,
            error: Some(Errno::EFAULT)
        }
    );
    // The flag is cleared anyway; a second call does nothing.
    assert_eq!(g.ring.used_flags(), 0);
    assert_eq!(g.ring.enable_notify(&g.mem, &g.xl).error, None);

    let mut g = guest(4);
    g.ring.disable_notify(&g.mem, &g.xl);
    g.mem.poke_u16(AVAIL + 2, 5);
    let r = g.ring.enable_notify(&g.mem, &g.xl);
    assert_eq!(
        r,
        Reported {
            value: false,
            error: Some(Errno::EINVAL)
        }
    );

    let mut g = guest(4);
    with_features(&mut g, true, false);
    g.ring.disable_notify(&g.mem, &g.xl);
    g.mem.fault(USED + 4 + 32, 2);
    let r = g.ring.enable_notify(&g.mem, &g.xl);
    assert_eq!(
        r,
        Reported {
            value: false,
            error: Some(Errno::EFAULT)
        }
    );

    let mut g = guest(4);
    g.mem.fault(USED, 2);
    assert_eq!(
        g.ring.disable_notify(&g.mem, &g.xl).error,
        Some(Errno::EFAULT)
    );
    assert_eq!(g.ring.used_flags(), VRING_USED_F_NO_NOTIFY);
}

#[test]
fn flag_writes_are_logged() {
    let mut g = guest(4);
    g.ring.set_used_log(Some(UsedLog {
        log_base: LOG_BASE,
        log_addr: USED_GPA,
    }));
    g.ring.disable_notify(&g.mem, &g.xl);
    let byte = LOG_BASE + USED_GPA / 4096 / 8;
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED, 2),
            Ev::Wmb,
            Ev::SetBits(byte, 1),
            Ev::LogSignal
        ]
    );
    with_features(&mut g, true, false);
    g.ring.enable_notify(&g.mem, &g.xl);
    let ev = g.mem.take_events();
    assert_eq!(
        ev[..4],
        [
            Ev::Write(USED + 36, 2),
            Ev::Wmb,
            Ev::SetBits(byte, 1),
            Ev::LogSignal
        ]
    );
}

#[test]
fn need_notify_flags() {
    let mut g = guest(4);
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    assert_eq!(g.mem.take_events(), [Ev::Mb, Ev::Read(AVAIL, 2)]);
    g.mem.poke_u16(AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
    assert_eq!(g.ring.need_notify(&g.mem).value, false);
    g.mem.fault(AVAIL, 2);
    assert_eq!(
        g.ring.need_notify(&g.mem),
        Reported {
            value: true,
            error: Some(Errno::EFAULT)
        }
    );
}

#[test]
fn need_notify_on_empty() {
    let mut g = guest(4);
    with_features(&mut g, false, true);
    g.mem.poke_u16(AVAIL, VRING_AVAIL_F_NO_INTERRUPT);
    // Every cached entry taken: notify, without reading anything.
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    assert_eq!(g.mem.take_events(), [Ev::Mb]);
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    g.push(0);
    g.chain();
    assert_eq!(g.ring.need_notify(&g.mem).value, false);
}

#[test]
fn need_notify_event_idx() {
    let mut g = guest(4);
    with_features(&mut g, true, false);
    let used_event = AVAIL + 4 + 2 * 4;
    g.mem.poke_u16(used_event, 100);
    // First time: signalled_used is not valid yet.
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    assert_eq!(g.mem.take_events(), [Ev::Mb]);
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0); 2]).unwrap();
    g.mem.poke_u16(used_event, 1);
    // used went 0 -> 2, the driver wants an interrupt after entry 1.
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0); 2]).unwrap();
    // 2 -> 4, event 1 is behind: no.
    assert_eq!(g.ring.need_notify(&g.mem).value, false);
    // Nothing added, event 4: not in [4, 4).
    g.mem.poke_u16(used_event, 4);
    assert_eq!(g.ring.need_notify(&g.mem).value, false);
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0)]).unwrap();
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    g.ring.add_used(&g.mem, &g.xl, &[e(0, 0)]).unwrap();
    g.mem.fault(used_event, 2);
    assert_eq!(
        g.ring.need_notify(&g.mem),
        Reported {
            value: true,
            error: Some(Errno::EFAULT)
        }
    );
}

#[test]
fn signalled_used_forgotten_after_full_wrap() {
    let mut g = guest(32768);
    g.mem = Mem::new(BASE, 0x50000);
    let used_event = AVAIL + 4 + 2 * 32768;
    g.ring.set_features(true, false, false);
    g.mem.poke_u16(used_event, 0xffff);
    assert!(g.ring.need_notify(&g.mem).value);
    // Far away from the event, but the used index ran 2^16 entries past the
    // last signal, so the driver might have missed it: signal.
    let heads = vec![e(0, 0); 32768];
    g.ring.add_used(&g.mem, &g.xl, &heads).unwrap();
    g.ring.add_used(&g.mem, &g.xl, &heads).unwrap();
    assert_eq!(g.ring.last_used_idx(), 0);
    g.mem.poke_u16(used_event, 0x8000);
    assert_eq!(g.ring.need_notify(&g.mem).value, true);
    // And now it is valid again.
    assert_eq!(g.ring.need_notify(&g.mem).value, false);
}

#[test]
fn avail_empty() {
    let mut g = guest(4);
    assert_eq!(
        g.ring.avail_empty(&g.mem),
        Reported {
            value: true,
            error: None
        }
    );
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    assert_eq!(g.ring.avail_empty(&g.mem).value, false);
    assert_eq!(g.ring.avail_idx(), 1);
    g.mem.take_events();
    // Cached entries remain: no read.
    assert_eq!(g.ring.avail_empty(&g.mem).value, false);
    assert!(g.mem.take_events().is_empty());
    g.chain();
    assert_eq!(g.ring.avail_empty(&g.mem).value, true);
    g.mem.poke_u16(AVAIL + 2, 9);
    assert_eq!(
        g.ring.avail_empty(&g.mem),
        Reported {
            value: false,
            error: Some(Errno::EINVAL)
        }
    );
}

/// The worker's sequence of calls, on a copy of the ring (this was the
/// test of the `Ring` enum's forwarding, which is gone: the worker holds
/// a `SplitRing`).
#[test]
fn worker_sequence_on_a_copy() {
    let mut g = guest(4);
    let mut r = g.ring.clone();
    g.desc(0, 0x100, 1, 0, 0);
    g.push(0);
    assert_eq!(r.avail_empty(&g.mem).value, false);
    r.disable_notify(&g.mem, &g.xl);
    let c = r
        .get_desc_chain(
            &g.mem,
            &g.xl,
            ChainBufs {
                iov: &mut g.iov,
                indirect: &mut g.ind,
                log: None,
                reads: MAX_PACKET_READS,
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(c.head, 0);
    r.discard(1, 0);
    r.add_used(&g.mem, &g.xl, &[e(0, 1)]).unwrap();
    assert!(r.need_notify(&g.mem).value);
    g.push(0);
    assert!(r.enable_notify(&g.mem, &g.xl).value);
}

#[test]
fn need_event_matches_the_header() {
    // vring_need_event(event, new, old): event in [old, new).
    assert!(vring_need_event(5, 6, 5));
    assert!(!vring_need_event(6, 6, 5));
    assert!(!vring_need_event(4, 6, 5));
    assert!(vring_need_event(0xffff, 1, 0xfffe));
    assert!(!vring_need_event(0, 0, 0));
}

// VIRTIO_F_IN_ORDER (C's `vhost_get_vq_desc_n` with `next_avail_head`,
// `vhost_discard_vq_desc`, `vhost_add_used_n_in_order`).

fn in_order(num: u32) -> G {
    let mut g = guest(num);
    g.ring.set_features(false, false, true);
    g
}

/// Makes `n` more entries available, with `head` in every one (in order,
/// the device does not read them).
fn post(g: &mut G, n: u16, head: u16) {
    for _ in 0..n {
        g.push(head);
    }
}

#[test]
fn in_order_takes_chains_in_table_order_not_from_the_avail_ring() {
    let mut g = in_order(8);
    g.desc(0, 0x100, 10, N, 1);
    g.desc(1, 0x200, 20, 0, 0);
    g.desc(2, 0x300, 30, W, 0);
    g.desc(3, 0x400, 40, N | W, 4);
    g.desc(4, 0x500, 50, N | W, 5);
    g.desc(5, 0x600, 60, W, 0);
    // The avail ring says 7 every time: ignored.
    post(&mut g, 3, 7);
    g.mem.take_events();
    let c = g.chain();
    assert_eq!((c.head, c.descs), (0, 2));
    assert_eq!(g.out(&c), [p(0x100, 10), p(0x200, 20)]);
    let c = g.chain();
    assert_eq!((c.head, c.descs), (2, 1));
    let c = g.chain();
    assert_eq!((c.head, c.descs), (3, 3));
    assert_eq!(c.len, 150);
    assert_eq!(g.get(), Ok(None));
    // No available-ring entry was read (only the index).
    assert!(avail_entry_reads(&g.mem.take_events())
        .iter()
        .all(|&(a, _)| a == AVAIL + 2));
    // Out of order the same ring takes what the avail ring says.
    let mut g = guest(8);
    g.desc(7, 0x100, 10, 0, 0);
    post(&mut g, 1, 7);
    assert_eq!(g.chain().head, 7);
}

#[test]
fn in_order_head_wraps_with_the_table_and_the_u16_index() {
    let mut g = in_order(4);
    for i in 0..4 {
        g.desc(i, 0x100 * (u64::from(i) + 1), 8, 0, 0);
    }
    // Base near the end of the u16 range: the next head is 65534 & 3.
    g.ring.set_base(65534);
    g.next_avail = 65534;
    post(&mut g, 4, 0);
    let mut heads: Vec<u16> = (0..4).map(|_| g.chain().head).collect();
    post(&mut g, 2, 0);
    heads.extend((0..2).map(|_| g.chain().head));
    assert_eq!(heads, [2, 3, 0, 1, 2, 3]);
    assert_eq!(g.ring.last_avail_idx(), 4);
    assert_eq!(g.get(), Ok(None));
}

#[test]
fn in_order_chain_may_wrap_through_the_table_end() {
    // A chain that starts at the last descriptor and goes on at 0, as C
    // follows `next`: the next chain starts after it.
    let mut g = in_order(4);
    g.desc(3, 0x100, 8, N, 0);
    g.desc(0, 0x200, 8, 0, 0);
    g.desc(1, 0x300, 8, 0, 0);
    g.ring.set_base(3);
    g.next_avail = 3;
    post(&mut g, 2, 0);
    let c = g.chain();
    assert_eq!((c.head, c.descs), (3, 2));
    assert_eq!(g.chain().head, 1);
}

#[test]
fn in_order_discard_restarts_at_the_first_chain_given_back() {
    let mut g = in_order(4);
    g.desc(0, 0x100, 8, N, 1);
    g.desc(1, 0x200, 8, 0, 0);
    g.desc(2, 0x300, 8, 0, 0);
    g.desc(3, 0x400, 8, 0, 0);
    post(&mut g, 3, 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 2);
    // Both given back (3 descriptors): the next is head 0 again.
    g.ring.discard(2, 0);
    assert_eq!(g.ring.last_avail_idx(), 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 2);
    // One given back: head 2 again.
    g.ring.discard(1, 2);
    assert_eq!(g.chain().head, 2);
    assert_eq!(g.chain().head, 3);
    // Nothing given back: nothing moves.
    g.ring.discard(0, 1);
    assert_eq!(g.ring.last_avail_idx(), 3);
    assert_eq!(g.get(), Ok(None));
}

#[test]
fn in_order_discard_before_a_bad_chain_skips_its_descriptors() {
    // C's `get_rx_bufs` after a chain of the wrong format: the good chains
    // before it (heads 0 and 2, 3 descriptors) are given back, the bad one
    // (head 3, 2 descriptors) stays consumed. `last_avail_idx` moves back
    // by 2 (one entry stays consumed) and `next_avail_head` by the good
    // chains' 3 descriptors, from 5 to 2 (the first head plus the bad
    // chain's length): the next chain starts at 2, not 0.
    let mut g = in_order(8);
    g.desc(0, 0x100, 8, N | W, 1);
    g.desc(1, 0x200, 8, W, 0);
    g.desc(2, 0x300, 8, W, 0);
    g.desc(3, 0x400, 8, N, 4);
    g.desc(4, 0x500, 8, W, 0);
    g.desc(5, 0x600, 8, W, 0);
    post(&mut g, 4, 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 2);
    let bad = g.chain();
    assert_eq!((bad.head, bad.descs), (3, 2));
    g.ring.discard_before_last(2, 0, bad.head);
    assert_eq!(g.ring.last_avail_idx(), 1);
    assert_eq!(g.chain().head, 2);
    assert_eq!(g.chain().head, 3);
    // Nothing taken before the bad chain: nothing moves.
    let mut g = in_order(8);
    g.desc(0, 0x100, 8, N, 1);
    g.desc(1, 0x200, 8, W, 0);
    g.desc(2, 0x300, 8, W, 0);
    post(&mut g, 2, 0);
    let bad = g.chain();
    g.ring.discard_before_last(0, 0, bad.head);
    assert_eq!(g.ring.last_avail_idx(), 1);
    assert_eq!(g.chain().head, 2);
    // Out of order only the index moves, as `discard`.
    let mut g = guest(8);
    g.desc(1, 0x100, 8, W, 0);
    g.desc(6, 0x200, 8, 0, 0);
    g.push(1);
    g.push(6);
    assert_eq!(g.chain().head, 1);
    let bad = g.chain();
    g.ring.discard_before_last(1, 1, bad.head);
    assert_eq!(g.ring.last_avail_idx(), 1);
    assert_eq!(g.chain().head, 6);
}

#[test]
fn in_order_discard_before_a_bad_chain_that_wraps() {
    // A ring of 4 whose bad chain (head 3, then 0) wraps: after the good
    // chain at 2 is given back, the next chain starts at 2 plus the bad
    // chain's 2 descriptors, descriptor 0 again (modulo the ring size).
    let mut g = in_order(4);
    g.desc(0, 0x100, 8, W, 0);
    g.desc(1, 0x200, 8, W, 0);
    post(&mut g, 2, 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 1);
    g.desc(2, 0x300, 8, W, 0);
    g.desc(3, 0x400, 8, N, 0);
    g.desc(0, 0x500, 8, 0, 0);
    post(&mut g, 2, 0);
    assert_eq!(g.chain().head, 2);
    let bad = g.chain();
    assert_eq!((bad.head, bad.descs), (3, 2));
    g.ring.discard_before_last(1, 2, bad.head);
    assert_eq!(g.ring.last_avail_idx(), 3);
    post(&mut g, 1, 0);
    assert_eq!(g.chain().head, 0);
}

#[test]
fn in_order_discard_of_a_whole_ring() {
    // Chains covering every descriptor (ndesc == num): C moves back by
    // num, which is the same position.
    let mut g = in_order(2);
    g.desc(0, 0x100, 8, 0, 0);
    g.desc(1, 0x200, 8, 0, 0);
    post(&mut g, 2, 0);
    assert_eq!(g.chain().head, 0);
    assert_eq!(g.chain().head, 1);
    g.ring.discard(2, 0);
    assert_eq!(g.chain().head, 0);
}

#[test]
fn in_order_discard_out_of_order_only_moves_the_index() {
    let mut g = guest(4);
    g.desc(1, 0x100, 8, 0, 0);
    post(&mut g, 2, 1);
    assert_eq!(g.chain().head, 1);
    g.ring.discard(1, 3);
    assert_eq!(g.chain().head, 1);
}

#[test]
fn in_order_used_one_element_per_batch() {
    let mut g = in_order(8);
    // A TX batch of 3 chains: one element, the last head, at the first
    // chain's position; the index moves by 3; positions 1 and 2 untouched.
    g.ring
        .add_used_in_order(&g.mem, &g.xl, &[e(2, 0)], &[3])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 3);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(3));
    assert_eq!(
        g.mem.take_events(),
        [Ev::Write(USED + 4, 8), Ev::Wmb, Ev::Write(USED + 2, 2)]
    );
    assert_eq!(used_elems(&g, 8)[..3], [(2, 0), (0, 0), (0, 0)]);
    // RX: one element per packet (1 buffer, then 3 merged ones).
    g.ring
        .add_used_in_order(&g.mem, &g.xl, &[e(3, 100), e(6, 50)], &[1, 3])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 7);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(7));
    assert_eq!(used_elems(&g, 8)[3..5], [(3, 100), (6, 50)]);
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED + 4 + 8 * 3, 8),
            Ev::Write(USED + 4 + 8 * 4, 8),
            Ev::Wmb,
            Ev::Write(USED + 2, 2)
        ]
    );
}

#[test]
fn in_order_used_batch_spanning_the_ring_end() {
    let mut g = in_order(4);
    g.mem.poke_u16(USED + 2, 3);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    g.mem.take_events();
    // 3 chains from position 3: written at 3, the next element at 6 & 3.
    g.ring
        .add_used_in_order(&g.mem, &g.xl, &[e(1, 0), e(9, 9)], &[3, 2])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 8);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(8));
    let u = used_elems(&g, 4);
    assert_eq!((u[3], u[2]), ((1, 0), (9, 9)));
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED + 4 + 8 * 3, 8),
            Ev::Write(USED + 4 + 8 * 2, 8),
            Ev::Wmb,
            Ev::Write(USED + 2, 2)
        ]
    );
}

#[test]
fn in_order_used_index_wraps_at_2_16() {
    let mut g = in_order(4);
    g.mem.poke_u16(USED + 2, 65534);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    g.ring
        .add_used_in_order(&g.mem, &g.xl, &[e(3, 0)], &[4])
        .unwrap();
    assert_eq!(g.ring.last_used_idx(), 2);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(2));
    assert_eq!(used_elems(&g, 4)[2], (3, 0));
    // Many batches through a small ring: the index counts chains.
    let mut idx = 2u16;
    for k in 0..100u32 {
        let n = (k % 4 + 1) as u16;
        g.ring
            .add_used_in_order(&g.mem, &g.xl, &[e(k, k)], &[n])
            .unwrap();
        let slot = u64::from(idx & 3);
        assert_eq!(used_elems(&g, 4)[slot as usize], (k, k));
        idx = idx.wrapping_add(n);
        assert_eq!(g.mem.peek_u16(USED + 2), Some(idx));
    }
}

#[test]
fn in_order_used_logs_each_element_written() {
    let mut g = in_order(1024);
    g.ring.set_used_log(Some(UsedLog {
        log_base: LOG_BASE,
        log_addr: USED_GPA,
    }));
    g.mem.poke_u16(USED + 2, 1020);
    g.ring.init_access(&g.mem, &g.xl).unwrap();
    g.mem.take_events();
    // Elements at 1020 (offset 8164, page 1) and 1026 & 1023 = 2 (page 0).
    g.ring
        .add_used_in_order(&g.mem, &g.xl, &[e(5, 0), e(2, 7)], &[6, 1])
        .unwrap();
    let byte = LOG_BASE + USED_GPA / 4096 / 8;
    assert_eq!(
        g.mem.take_events(),
        [
            Ev::Write(USED + 4 + 8 * 1020, 8),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0010),
            Ev::Write(USED + 4 + 8 * 2, 8),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0001),
            Ev::Wmb,
            Ev::Write(USED + 2, 2),
            Ev::Wmb,
            Ev::SetBits(byte, 0b0001),
            Ev::LogSignal,
        ]
    );
    assert_eq!(g.ring.last_used_idx(), 1027);
}

#[test]
fn in_order_used_fault_publishes_nothing() {
    let mut g = in_order(4);
    g.mem.fault(USED + 4 + 8, 8);
    assert_eq!(
        g.ring
            .add_used_in_order(&g.mem, &g.xl, &[e(0, 1), e(1, 1)], &[1, 1]),
        Err(Errno::EFAULT)
    );
    assert_eq!(g.ring.last_used_idx(), 0);
    assert_eq!(g.mem.peek_u16(USED + 2), Some(0));
    // The index itself faulting: counted, not published, as `add_used`.
    let mut g = in_order(4);
    g.mem.fault(USED + 2, 2);
    assert_eq!(
        g.ring.add_used_in_order(&g.mem, &g.xl, &[e(0, 1)], &[2]),
        Err(Errno::EFAULT)
    );
    assert_eq!(g.ring.last_used_idx(), 2);
}

#[test]
fn in_order_switched_on_forgets_the_entries_read_ahead() {
    let mut g = guest(8);
    for i in 0..4 {
        g.desc(i, 0x100 * (u64::from(i) + 1), 8, 0, 0);
    }
    // Out of order, entries 3, 2, 1, 0: the first take reads all ahead.
    for h in [3, 2, 1, 0] {
        g.push(h);
    }
    assert_eq!(g.chain().head, 3);
    // In order from here: the next chain is the one after base 0 plus the
    // one chain taken, not the cached entry 2.
    g.ring.set_features(false, false, true);
    assert_eq!(g.chain().head, 1);
}

/// The reason a broken ring's error carries (what the module logs, and
/// shows in fdinfo): C's `vq_err` message for the check that failed.
fn reason(r: Result<Option<Chain>, RingError>) -> crate::vcore::diag::Reason {
    match r {
        Err(RingError::Broken(_, reason)) => reason,
        other => panic!("not a broken ring: {other:?}"),
    }
}

#[test]
fn broken_chains_name_c_reason() {
    use crate::vcore::diag::Reason;
    // Head out of range: "Guest says index %u > %u is available".
    let mut g = guest(4);
    g.push(4);
    assert_eq!(reason(g.get()), Reason::HeadRange);
    // `next` out of range: "Desc index is %u > %u, head = %u".
    let mut g = guest(4);
    g.desc(0, 0x100, 1, N, 4);
    g.push(0);
    assert_eq!(reason(g.get()), Reason::DescRange);
    // A loop: "Loop detected: last one at %u vq size %u head %u".
    let mut g = guest(4);
    g.desc(1, 0x100, 1, N, 1);
    g.push(1);
    assert_eq!(reason(g.get()), Reason::DescLoop);
    // An unmapped buffer: "Translation failure %d descriptor idx %d".
    let mut g = guest(4);
    g.desc(0, 0x10_0000, 1, 0, 0);
    g.push(0);
    assert_eq!(reason(g.get()), Reason::DescXlate);
    // Indirect: bad length, nested table.
    let mut g = guest(4);
    g.push(0);
    g.desc(0, 0x1000, 24, I, 0);
    assert_eq!(reason(g.get()), Reason::IndirectLen);
    g.table(0x1000, &[(0x100, 8, N, 0), (0x2000, 16, I, 0)]);
    g.desc(0, 0x1000, 32, I, 0);
    assert_eq!(reason(g.get()), Reason::IndirectNested);
    // The available index running more than `num` ahead.
    let mut g = guest(4);
    g.mem.poke_u16(AVAIL + 2, 5);
    assert_eq!(reason(g.get()), Reason::AvailIdxInvalid);
}
