//! Property tests: random rings against the reference model in `ringsim`,
//! and random used-ring batches against a model of the used ring.

use proptest::prelude::*;

use crate::ringsim::{model_get, sut_get, Caps, Ev, Mem, ModelRing, Region, Xlate};
use crate::vcore::memory::intervalmap::{PERM_RO, PERM_WO};
use crate::vcore::ring::{chain::*, desc::*, split::*};

const BASE: u64 = 0x10_0000;
const DESC: u64 = BASE;
const AVAIL: u64 = BASE + 0x1000;
const USED: u64 = BASE + 0x2000;
const BUF: u64 = BASE + 0x4000;
const SIZE: usize = 0x10000;
/// Guest address of indirect table `k`.
const fn table_gpa(k: usize) -> u64 {
    0x2000 + 0x100 * k as u64
}

/// Read-write, read-only and write-only memory, with holes and a stretch of
/// tiny regions so buffers split into many pieces.
fn regions() -> Vec<Region> {
    let r = |gpa: u64, len, perm| Region {
        gpa,
        len,
        uaddr: BUF + gpa,
        perm,
    };
    let rw = PERM_RO | PERM_WO;
    let mut v = vec![
        r(0, 0x4000, rw),
        r(0x4000, 0x1000, PERM_RO),
        r(0x5000, 0x1000, PERM_WO),
    ];
    for k in 0..8 {
        v.push(r(0x6000 + 0x10 * k, 0x10, rw));
    }
    // 0x6080..0x6100 is a hole.
    v.push(r(0x6100, 0xf00, rw));
    v
}

#[derive(Clone, Debug)]
struct RawDesc {
    /// 0: read-write area, 1: read-only, 2: write-only, 3: fragmented,
    /// 4: hole or unmapped, 5: an indirect table.
    kind: u8,
    off: u64,
    len: u32,
    flags: u16,
    next: u16,
    /// For indirect tables: which table, and how its length is perturbed.
    table: usize,
    len_mode: u8,
}

fn raw_desc(num: u16, tables: usize) -> impl Strategy<Value = RawDesc> {
    (
        0u8..6,
        0u64..0x200,
        prop_oneof![Just(0u32), 1u32..0x40, 0x40u32..0x1200],
        prop_oneof![
            4 => Just(0u16),
            4 => Just(VRING_DESC_F_NEXT),
            3 => Just(VRING_DESC_F_WRITE),
            3 => Just(VRING_DESC_F_WRITE | VRING_DESC_F_NEXT),
            1 => any::<u16>(),
        ],
        prop_oneof![6 => 0..num, 1 => num..num + 2, 1 => any::<u16>()],
        0..tables.max(1),
        0u8..8,
    )
        .prop_map(|(kind, off, len, flags, next, table, len_mode)| RawDesc {
            kind,
            off,
            len,
            flags,
            next,
            table,
            len_mode,
        })
}

/// Turns a generated descriptor into the real one.
fn realize(r: &RawDesc, tables: &[Vec<RawDesc>], allow_indirect: bool) -> Desc {
    let (addr, len, mut flags) = match r.kind {
        0 => (r.off * 8, r.len, r.flags),
        1 => (0x4000 + r.off * 4, r.len, r.flags),
        2 => (0x5000 + r.off * 4, r.len, r.flags),
        3 => (0x6000 + r.off / 4, r.len.min(0x300), r.flags),
        4 => (
            [0x6080, 0x8000, u64::MAX - 4, 0xffff_0000][r.off as usize % 4],
            r.len,
            r.flags,
        ),
        _ if allow_indirect && !tables.is_empty() => {
            let t = r.table % tables.len();
            let n = tables[t].len() as u32;
            let len = match r.len_mode {
                0 => 0,
                1 => 16 * n + 8,
                2 => 16 * (n + 1),
                _ => 16 * n,
            };
            (
                table_gpa(t),
                len,
                (r.flags & !VRING_DESC_F_WRITE) | VRING_DESC_F_INDIRECT,
            )
        }
        _ => (table_gpa(0), r.len, r.flags | VRING_DESC_F_INDIRECT),
    };
    if !allow_indirect && r.kind != 5 {
        // Inside tables, nested indirect descriptors come only from kind 5.
        flags &= !VRING_DESC_F_INDIRECT;
    }
    Desc {
        addr,
        len,
        flags,
        next: r.next,
    }
}

#[derive(Clone, Debug)]
struct Scenario {
    num_log2: u32,
    last_avail: u16,
    pending: u16,
    heads: Vec<u16>,
    descs: Vec<RawDesc>,
    tables: Vec<Vec<RawDesc>>,
    iotlb: bool,
    caps: (usize, usize, Option<usize>),
    fault: Option<(u64, u64)>,
    calls: usize,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (0u32..5).prop_flat_map(|num_log2| {
        let num = 1u16 << num_log2;
        (
            Just(num_log2),
            any::<u16>(),
            prop_oneof![8 => 0..=num, 1 => num + 1..num + 3, 1 => any::<u16>()],
            prop::collection::vec(prop_oneof![8 => 0..num, 1 => num..num + 2], num as usize),
            prop::collection::vec(raw_desc(num, 3), num as usize),
            prop::collection::vec(prop::collection::vec(raw_desc(num, 3), 0..6), 0..3),
            any::<bool>(),
            (1usize..12, 1usize..4, prop::option::of(0usize..6)),
            prop::option::weighted(
                0.2,
                (
                    prop_oneof![Just(DESC), Just(AVAIL), Just(BUF + 0x2000), Just(BUF)],
                    0u64..0x100,
                    1u64..0x20,
                )
                    .prop_map(|(b, o, l)| (b + o, l)),
            ),
            1usize..6,
        )
            .prop_map(
                |(
                    num_log2,
                    last_avail,
                    pending,
                    heads,
                    descs,
                    tables,
                    iotlb,
                    caps,
                    fault,
                    calls,
                )| {
                    Scenario {
                        num_log2,
                        last_avail,
                        pending,
                        heads,
                        descs,
                        tables,
                        iotlb,
                        caps,
                        fault,
                        calls,
                    }
                },
            )
    })
}

fn build(s: &Scenario) -> Mem {
    let mut mem = Mem::new(BASE, SIZE);
    for (i, r) in s.descs.iter().enumerate() {
        let d = realize(r, &s.tables, true);
        mem.poke(DESC + 16 * i as u64, &d.to_bytes());
    }
    for (k, t) in s.tables.iter().enumerate() {
        for (j, r) in t.iter().enumerate() {
            let d = realize(r, &s.tables, false);
            mem.poke(BUF + table_gpa(k) + 16 * j as u64, &d.to_bytes());
        }
    }
    let num = 1u16 << s.num_log2;
    for (j, &h) in s.heads.iter().enumerate() {
        mem.poke_u16(AVAIL + 4 + 2 * j as u64, h);
    }
    let _ = num;
    mem.poke_u16(AVAIL + 2, s.last_avail.wrapping_add(s.pending));
    if let Some((a, l)) = s.fault {
        mem.fault(a, l);
    }
    mem
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Chains, errors and ring state agree with the model, call after call.
    #[test]
    fn chains_match_model(s in scenario()) {
        let mem = build(&s);
        let num = 1u32 << s.num_log2;
        let rs = regions();
        let xl = Xlate::new(&rs, s.iotlb);
        let mut ring = SplitRing::new(&SplitConfig {
            num,
            desc: DESC,
            avail: AVAIL,
            used: USED,
            event_idx: false,
            notify_on_empty: false,
        })
        .unwrap();
        ring.set_base(s.last_avail);
        let mut model = ModelRing {
            num,
            desc: DESC,
            avail: AVAIL,
            last_avail: s.last_avail,
            avail_idx: s.last_avail,
            walked: 0,
        };
        let caps = Caps {
            iov: s.caps.0,
            indirect: s.caps.1,
            log: s.caps.2,
            reads: MAX_PACKET_READS,
        };
        for _ in 0..s.calls {
            let want = model_get(&mem, &rs, s.iotlb, &mut model, caps);
            let got = sut_get(&mut ring, &mem, &xl, caps);
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(ring.last_avail_idx(), model.last_avail);
            prop_assert_eq!(ring.avail_idx(), model.avail_idx);
            if let Err(e) = got {
                prop_assert_eq!(
                    matches!(e, RingError::IotlbMiss { .. }),
                    !xl.misses.borrow().is_empty()
                );
                break;
            }
        }
    }
}

/// C's `vring_need_event`, spelled out: `event` is one of the indices the
/// used index went through, `old` included, `new` excluded.
fn passed(event: u16, new: u16, old: u16) -> bool {
    let n = new.wrapping_sub(old);
    (0..n).any(|k| old.wrapping_add(k) == event)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn need_event_is_a_window(event: u16, new: u16, old: u16) {
        prop_assert_eq!(vring_need_event(event, new, old), passed(event, new, old));
    }

    /// Batches of used elements land where the model says, `used->idx`
    /// follows, the barrier precedes each index write, the log covers what
    /// was written, and interrupts are decided as C decides them.
    #[test]
    fn add_used_matches_model(
        num_log2 in 0u32..6,
        start in any::<u16>(),
        batches in prop::collection::vec(
            (prop::collection::vec((any::<u32>(), any::<u32>()), 0..80), any::<u16>()),
            1..8,
        ),
        logging in any::<bool>(),
    ) {
        let num = 1u32 << num_log2;
        let mem = Mem::new(BASE, SIZE);
        let xl = Xlate::new(&regions(), false);
        let mut ring = SplitRing::new(&SplitConfig {
            num,
            desc: DESC,
            avail: AVAIL,
            used: USED,
            event_idx: true,
            notify_on_empty: false,
        })
        .unwrap();
        let log_base = BUF + 0x3000;
        // The used ring is at guest address 0x7_ff80, so it straddles pages
        // 0x7f and 0x80 (bits 7 of byte 0xf and 0 of byte 0x10).
        let log_addr = 0x7_ff80;
        if logging {
            ring.set_used_log(Some(UsedLog { log_base, log_addr }));
        }
        mem.poke_u16(USED + 2, start);
        ring.init_access(&mem, &xl).unwrap();
        let mut model = vec![(0u32, 0u32); num as usize];
        let mut idx = start;
        let (mut signalled, mut valid) = (0u16, false);
        let mut logged_pages = std::collections::BTreeSet::new();
        let used_event = AVAIL + 4 + 2 * num as u64;
        for (batch, event) in &batches {
            // Callers never give more than num at once; keep most batches
            // that way, but let a few exceed it.
            let batch = if batch.len() > 2 * num as usize + 1 { &batch[..num as usize] } else { &batch[..] };
            mem.take_events();
            let elems: Vec<UsedElem> = batch.iter().map(|&(id, len)| UsedElem { id, len }).collect();
            ring.add_used(&mem, &xl, &elems).unwrap();
            // Model: element k goes to slot (idx + k) % num; the parts are
            // cut where the ring wraps.
            let mut parts = 0;
            let mut k = 0;
            loop {
                let pos = idx as u32 % num;
                let n = ((num - pos) as usize).min(batch.len() - k);
                for j in 0..n {
                    model[(pos as usize) + j] = batch[k + j];
                }
                let (old, new) = (idx, idx.wrapping_add(n as u16));
                if new.wrapping_sub(signalled) < new.wrapping_sub(old) {
                    valid = false;
                }
                if n > 0 {
                    let off = 4 + 8 * pos as u64;
                    let first = (log_addr + off) / 4096;
                    let last = (log_addr + off + 8 * n as u64 - 1) / 4096;
                    logged_pages.extend(first..=last);
                }
                idx = new;
                k += n;
                parts += 1;
                if k >= batch.len() {
                    break;
                }
            }
            logged_pages.insert((log_addr + 2) / 4096);
            prop_assert_eq!(ring.last_used_idx(), idx);
            prop_assert_eq!(mem.peek_u16(USED + 2), Some(idx));
            for (j, &(id, len)) in model.iter().enumerate() {
                let b = mem.peek(USED + 4 + 8 * j as u64, 8).unwrap();
                prop_assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()), id);
                prop_assert_eq!(u32::from_le_bytes(b[4..].try_into().unwrap()), len);
            }
            let ev = mem.take_events();
            let idx_write = ev.iter().position(|e| *e == Ev::Write(USED + 2, 2)).unwrap();
            prop_assert_eq!(&ev[idx_write - 1], &Ev::Wmb);
            let ring_writes = ev[..idx_write].iter().filter(|e| matches!(e, Ev::Write(..))).count();
            if batch.len() <= 32 {
                // At most 32 elements fit one write of the stack buffer, so
                // every part is one write.
                prop_assert_eq!(ring_writes, if batch.is_empty() { 0 } else { parts });
            }
            if logging {
                prop_assert_eq!(ev.last(), Some(&Ev::LogSignal));
                // Every log bit comes after a barrier that follows the
                // write it logs.
                for (i, e) in ev.iter().enumerate() {
                    if matches!(e, Ev::SetBits(..)) {
                        let w = ev[..i].iter().rposition(|e| matches!(e, Ev::Write(..))).unwrap();
                        prop_assert!(ev[w..i].contains(&Ev::Wmb));
                    }
                }
            }

            mem.poke_u16(used_event, *event);
            let want = {
                let (old, v) = (signalled, valid);
                signalled = idx;
                valid = true;
                !v || passed(*event, idx, old)
            };
            prop_assert_eq!(ring.need_notify(&mem).value, want);
        }
        if logging {
            let d = mem.peek(log_base, 0x100).unwrap();
            let set: std::collections::BTreeSet<u64> = (0..0x800u64)
                .filter(|p| d[(p / 8) as usize] & (1 << (p % 8)) != 0)
                .collect();
            // init_access also logged the flags (page of offset 0).
            logged_pages.insert(log_addr / 4096);
            prop_assert_eq!(set, logged_pages);
        }
    }
}
