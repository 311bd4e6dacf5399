//! The descriptor-read budget of a packet (`MAX_PACKET_READS`): a guest
//! cannot make one `get_desc_chain` read more descriptors than that, however
//! its tables are built (Documentation/security.rst, "One descriptor chain
//! held a host CPU for minutes").

use crate::ringsim::{Mem, Region, Xlate};
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{Piece, PERM_RO, PERM_WO};
use crate::vcore::ring::{chain::*, desc::*, split::*};

const BASE: u64 = 0x100_0000;
/// The largest ring: 32768 entries.
const NUM: u32 = 32768;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x8_0000;
const USED: u64 = BASE + 0x9_1000;
/// Guest address 0 (an indirect table of 65536 entries, 1 MiB) maps here.
const TABLE: u64 = BASE + 0x10_0000;
const SIZE: usize = 0x20_1000;
const N: u16 = VRING_DESC_F_NEXT;
const I: u16 = VRING_DESC_F_INDIRECT;

struct G {
    mem: Mem,
    xl: Xlate,
    ring: SplitRing,
    iov: Vec<Piece>,
    ind: Vec<Piece>,
}

fn guest(num: u32) -> G {
    let regions = [Region {
        gpa: 0,
        len: 0x10_1000,
        uaddr: TABLE,
        perm: PERM_RO | PERM_WO,
    }];
    G {
        mem: Mem::new(BASE, SIZE),
        xl: Xlate::new(&regions, false),
        ring: SplitRing::new(&SplitConfig {
            num,
            desc: DESC,
            avail: AVAIL,
            used: USED,
            event_idx: false,
            notify_on_empty: false,
        })
        .unwrap(),
        iov: vec![Piece::default(); UIO_MAXIOV],
        ind: vec![Piece::default(); UIO_MAXIOV],
    }
}

impl G {
    fn desc(&self, i: u32, addr: u64, len: u32, flags: u16, next: u16) {
        let d = Desc {
            addr,
            len,
            flags,
            next,
        };
        self.mem.poke(DESC + 16 * u64::from(i), &d.to_bytes());
    }
    /// Entry `k` of the indirect table at guest address 0.
    fn entry(&self, k: u32, addr: u64, len: u32, flags: u16) {
        let d = Desc {
            addr,
            len,
            flags,
            next: 0,
        };
        self.mem.poke(TABLE + 16 * u64::from(k), &d.to_bytes());
    }
    fn push_head(&mut self, head: u16) {
        self.mem.poke_u16(AVAIL + 4, head);
        self.mem.poke_u16(AVAIL + 2, 1);
    }
    fn get(&mut self, reads: u32) -> Result<Option<Chain>, RingError> {
        self.ring.get_desc_chain(
            &self.mem,
            &self.xl,
            ChainBufs {
                iov: &mut self.iov,
                indirect: &mut self.ind,
                log: None,
                reads,
            },
        )
    }
}

/// The chain of the report: every descriptor of a 32768-entry ring is
/// `INDIRECT | NEXT` (a cycle through the whole ring) and points at one
/// table of 65536 zero-length entries, each `NEXT` but the last. C reads
/// 2^31 descriptors for it; this reads `MAX_PACKET_READS`, then fails the
/// chain with `EINVAL` without consuming it.
#[test]
fn the_two_to_the_31_chain_stops_at_the_budget() {
    let mut g = guest(NUM);
    for i in 0..NUM {
        g.desc(i, 0, 16 * 65536, I | N, ((i + 1) % NUM) as u16);
    }
    for k in 0..65536 {
        g.entry(k, 0x10_0000, 0, if k == 65535 { 0 } else { N });
    }
    g.push_head(0);
    let t = std::time::Instant::now();
    assert_eq!(
        g.get(MAX_PACKET_READS),
        Err(RingError::broken(Errno::EINVAL))
    );
    assert_eq!(g.ring.last_avail_idx(), 0, "a failed chain is not consumed");
    // A budget of 4096 reads on a host: far below a second (2^31 reads
    // take minutes).
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

/// Exactly `MAX_PACKET_READS` reads besides the head pass; one more
/// fails. The table's further entries and the indirect entries count
/// alike; a smaller allowance (what an RX packet has left after its
/// earlier chains) is honoured, and a larger one is capped. A chain of one
/// descriptor reads nothing beyond its head.
#[test]
fn budget_is_exact() {
    let mut g = guest(256);
    // Head (not counted) + 4096 entries.
    g.desc(0, 0, 16 * 4096, I, 0);
    for k in 0..4096 {
        let last = k == 4095;
        g.entry(k, 0x10_0000, u32::from(last), if last { 0 } else { N });
    }
    g.push_head(0);
    let c = g.get(MAX_PACKET_READS).unwrap().unwrap();
    assert_eq!(c.reads, MAX_PACKET_READS);
    assert_eq!((c.out_num, c.len), (1, 1));
    g.ring.discard(1, 0);
    assert_eq!(g.get(u32::MAX).unwrap().unwrap().reads, MAX_PACKET_READS);
    g.ring.discard(1, 0);
    assert_eq!(
        g.get(MAX_PACKET_READS - 1),
        Err(RingError::broken(Errno::EINVAL))
    );
    assert_eq!(g.get(0), Err(RingError::broken(Errno::EINVAL)));
    // One more entry: 4097 reads.
    g.desc(0, 0, 16 * 4097, I, 0);
    g.entry(4095, 0x10_0000, 0, N);
    g.entry(4096, 0x10_0000, 1, 0);
    assert_eq!(
        g.get(MAX_PACKET_READS),
        Err(RingError::broken(Errno::EINVAL))
    );
    assert_eq!(g.ring.last_avail_idx(), 0);
    // One descriptor: no allowance needed.
    g.desc(0, 0x10_0000, 1, 0, 0);
    let c = g.get(0).unwrap().unwrap();
    assert_eq!((c.reads, c.descs, c.len), (0, 1, 1));
}

/// A direct chain through the whole largest ring (32768 descriptors, C's
/// loop limit) is within C's rules but beyond the budget; the usual chains
/// count one read per descriptor.
#[test]
fn direct_chains_count_one_read_per_descriptor() {
    let mut g = guest(NUM);
    for i in 0..NUM {
        g.desc(i, 0x10_0000, 0, N, ((i + 1) % NUM) as u16);
    }
    g.desc(NUM - 1, 0x10_0000, 1, 0, 0);
    g.push_head(0);
    assert_eq!(
        g.get(MAX_PACKET_READS),
        Err(RingError::broken(Errno::EINVAL))
    );
    g.push_head((NUM - 3) as u16);
    let c = g.get(MAX_PACKET_READS).unwrap().unwrap();
    assert_eq!((c.reads, c.descs, c.len), (2, 3, 1));
}

/// A round yields after `MAX_ROUND_READS` descriptor reads besides heads:
/// the chain that would walk further is not taken (`Yield`), a chain of
/// one descriptor still is, and the next round takes the chain.
#[test]
fn round_yields_after_its_reads() {
    let mut g = guest(256);
    // Chain k (head 2k): an indirect table of 4096 entries, the last with
    // one byte.
    for k in 0..4096 {
        let last = k == 4095;
        g.entry(k, 0x10_0000, u32::from(last), if last { 0 } else { N });
    }
    for h in 0..8u32 {
        g.desc(2 * h, 0, 16 * 4096, I, 0);
        g.desc(2 * h + 1, 0x10_0000, 1, 0, 0);
    }
    let mut idx = 0u16;
    let mut push = |g: &mut G, head: u16| {
        g.mem.poke_u16(AVAIL + 4 + 2 * u64::from(idx % 256), head);
        idx += 1;
        g.mem.poke_u16(AVAIL + 2, idx);
    };
    for h in 0..5u16 {
        push(&mut g, 2 * h);
    }
    push(&mut g, 1);
    for _ in 0..MAX_ROUND_READS / MAX_PACKET_READS {
        assert_eq!(g.get(MAX_PACKET_READS).unwrap().unwrap().reads, 4096);
    }
    assert_eq!(g.get(MAX_PACKET_READS), Err(RingError::Yield));
    assert_eq!(g.get(MAX_PACKET_READS), Err(RingError::Yield));
    assert_eq!(g.ring.last_avail_idx(), 4, "the fifth chain is not taken");
    g.ring.start_round();
    assert_eq!(g.get(MAX_PACKET_READS).unwrap().unwrap().head, 8);
    let c = g.get(MAX_PACKET_READS).unwrap().unwrap();
    assert_eq!((c.head, c.reads), (1, 0));
}
