//! A simulated guest for the ring: memory, translation, and a reference
//! model of `vhost_get_vq_desc` written a different way from the core.
//!
//! This module is compiled outside `cfg(test)` too, because the fuzz target
//! in `tests/fuzz` drives the same code through [`crate::fuzz_desc_chain`].

use std::cell::RefCell;

use crate::storage::VecStorage;
use crate::vcore::errno::Errno;
use crate::vcore::memory::dirtylog::{DirtyBitmap, LogEntry};
use crate::vcore::memory::intervalmap::{
    Entry, IntervalMap, Piece, TranslateError, PERM_RO, PERM_WO,
};
use crate::vcore::ring::access::{RingMemory, Translate};
use crate::vcore::ring::chain::{ChainBufs, RingError, MAX_PACKET_READS, MAX_ROUND_READS};
use crate::vcore::ring::desc::{
    Desc, UsedElem, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use crate::vcore::ring::split::{SplitConfig, SplitRing};

/// Something the ring did to memory, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    Read(u64, usize),
    /// A read of an address the translation gave (an indirect table).
    ReadTranslated(u64, usize),
    Write(u64, usize),
    Rmb,
    Wmb,
    Mb,
    SetBits(u64, u8),
    LogSignal,
}

/// The owner's memory: one byte image at user address `base`, with ranges
/// that fault.
pub(crate) struct Mem {
    pub(crate) base: u64,
    pub(crate) data: RefCell<Vec<u8>>,
    /// Faulting user ranges `[start, end)`.
    pub(crate) faults: Vec<(u64, u64)>,
    pub(crate) events: RefCell<Vec<Ev>>,
}

impl Mem {
    pub(crate) fn new(base: u64, size: usize) -> Self {
        Mem {
            base,
            data: RefCell::new(vec![0; size]),
            faults: Vec::new(),
            events: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn fault(&mut self, start: u64, len: u64) {
        self.faults.push((start, start + len));
    }

    /// Offset of `[uaddr, uaddr + len)` in the image, if all of it is there.
    fn range(&self, uaddr: u64, len: usize) -> Option<usize> {
        let off = uaddr.checked_sub(self.base)?;
        let end = off.checked_add(len as u64)?;
        if end > self.data.borrow().len() as u64 {
            return None;
        }
        if len != 0
            && self
                .faults
                .iter()
                .any(|&(s, e)| uaddr < e && s < uaddr + len as u64)
        {
            return None;
        }
        Some(off as usize)
    }

    /// Reads without recording, for models and checks.
    pub(crate) fn peek(&self, uaddr: u64, len: usize) -> Option<Vec<u8>> {
        let off = self.range(uaddr, len)?;
        Some(self.data.borrow()[off..off + len].to_vec())
    }

    pub(crate) fn peek_u16(&self, uaddr: u64) -> Option<u16> {
        self.peek(uaddr, 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// Writes ignoring faults, to set the guest up.
    pub(crate) fn poke(&self, uaddr: u64, bytes: &[u8]) {
        let off = (uaddr - self.base) as usize;
        self.data.borrow_mut()[off..off + bytes.len()].copy_from_slice(bytes);
    }

    pub(crate) fn poke_u16(&self, uaddr: u64, v: u16) {
        self.poke(uaddr, &v.to_le_bytes());
    }

    pub(crate) fn take_events(&self) -> Vec<Ev> {
        std::mem::take(&mut *self.events.borrow_mut())
    }
}

impl DirtyBitmap for Mem {
    fn set_log_bits(&self, uaddr: u64, mask: u8) -> Result<(), Errno> {
        self.events.borrow_mut().push(Ev::SetBits(uaddr, mask));
        let off = self.range(uaddr, 1).ok_or(Errno::EFAULT)?;
        self.data.borrow_mut()[off] |= mask;
        Ok(())
    }
}

impl RingMemory for Mem {
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.events.borrow_mut().push(Ev::Read(uaddr, buf.len()));
        let off = self.range(uaddr, buf.len()).ok_or(Errno::EFAULT)?;
        buf.copy_from_slice(&self.data.borrow()[off..off + buf.len()]);
        Ok(())
    }
    fn read_translated(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.events
            .borrow_mut()
            .push(Ev::ReadTranslated(uaddr, buf.len()));
        let off = self.range(uaddr, buf.len()).ok_or(Errno::EFAULT)?;
        buf.copy_from_slice(&self.data.borrow()[off..off + buf.len()]);
        Ok(())
    }
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), Errno> {
        self.events.borrow_mut().push(Ev::Write(uaddr, buf.len()));
        let off = self.range(uaddr, buf.len()).ok_or(Errno::EFAULT)?;
        self.data.borrow_mut()[off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
    fn rmb(&self) {
        self.events.borrow_mut().push(Ev::Rmb);
    }
    fn wmb(&self) {
        self.events.borrow_mut().push(Ev::Wmb);
    }
    fn mb(&self) {
        self.events.borrow_mut().push(Ev::Mb);
    }
    fn log_signal(&self) {
        self.events.borrow_mut().push(Ev::LogSignal);
    }
}

/// One mapping of guest addresses `[gpa, gpa + len)` to user addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub(crate) gpa: u64,
    pub(crate) len: u64,
    pub(crate) uaddr: u64,
    pub(crate) perm: u32,
}

/// The translation hook: the real interval map over `regions`, plus the
/// memory table for reverse lookups, and a record of queued IOTLB misses.
pub(crate) struct Xlate {
    pub(crate) map: IntervalMap<VecStorage>,
    pub(crate) regions: Vec<Region>,
    pub(crate) iotlb: bool,
    pub(crate) umem: Vec<Entry>,
    pub(crate) misses: RefCell<Vec<(u64, u32)>>,
}

impl Xlate {
    /// A memory-table (`iotlb == false`) or IOTLB translation over `regions`.
    /// Without an IOTLB the memory table is `regions` itself.
    pub(crate) fn new(regions: &[Region], iotlb: bool) -> Self {
        let mut map = IntervalMap::new(VecStorage::default(), 4096, 0);
        for r in regions {
            map.add_range(r.gpa, r.gpa + r.len - 1, r.uaddr, r.perm)
                .unwrap();
        }
        let umem = if iotlb {
            Vec::new()
        } else {
            map.iter().copied().collect()
        };
        Xlate {
            map,
            regions: regions.to_vec(),
            iotlb,
            umem,
            misses: RefCell::new(Vec::new()),
        }
    }

    /// Sets the memory table used for reverse lookups with an IOTLB.
    pub(crate) fn with_umem(mut self, umem: &[Region]) -> Self {
        self.umem = umem
            .iter()
            .map(|r| Entry {
                start: r.gpa,
                last: r.gpa + r.len - 1,
                addr: r.uaddr,
                perm: r.perm,
                seq: 0,
            })
            .collect();
        self
    }
}

impl Translate for Xlate {
    fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError> {
        let r = self.map.translate(addr, len, access, out);
        if let Err(TranslateError::Miss { addr }) = r {
            if self.iotlb {
                self.misses.borrow_mut().push((addr, access));
            }
        }
        r
    }
    fn device_iotlb(&self) -> bool {
        self.iotlb
    }
    fn umem_region(&self, index: usize) -> Option<Entry> {
        self.umem.get(index).copied()
    }
}

/// The model's view of the ring's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelRing {
    pub(crate) num: u32,
    pub(crate) desc: u64,
    pub(crate) avail: u64,
    pub(crate) last_avail: u16,
    pub(crate) avail_idx: u16,
    /// Descriptors read besides heads by the chains taken
    /// (`SplitRing::start_round` is never called here).
    pub(crate) walked: u32,
}

/// A chain as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModelChain {
    pub(crate) head: u16,
    pub(crate) out: Vec<Piece>,
    pub(crate) inn: Vec<Piece>,
    pub(crate) log: Vec<LogEntry>,
    pub(crate) descs: u32,
    pub(crate) reads: u32,
}

/// Room the caller gives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    pub(crate) iov: usize,
    pub(crate) indirect: usize,
    pub(crate) log: Option<usize>,
    /// Descriptor reads allowed (`ChainBufs::reads`).
    pub(crate) reads: u32,
}

/// Naive translation: the regions do not overlap, so the one holding an
/// address is unique; pieces end at region ends.
fn mtrans(
    regions: &[Region],
    addr: u64,
    len: u32,
    access: u32,
    cap: usize,
) -> Result<Vec<Piece>, TranslateError> {
    let mut out = Vec::new();
    let mut a = addr;
    let mut left = len as u64;
    while left > 0 {
        if out.len() >= cap {
            return Err(TranslateError::NoBufs);
        }
        let r = regions
            .iter()
            .find(|r| r.gpa <= a && a - r.gpa < r.len)
            .ok_or(TranslateError::Miss { addr: a })?;
        if r.perm & access == 0 {
            return Err(TranslateError::Perm);
        }
        let take = left.min(r.gpa + r.len - a);
        out.push(Piece {
            addr: r.uaddr + (a - r.gpa),
            len: take,
        });
        a += take;
        left -= take;
    }
    Ok(out)
}

fn mtrans_err(e: TranslateError, iotlb: bool, access: u32) -> RingError {
    match e {
        TranslateError::Miss { addr } if iotlb => RingError::IotlbMiss { iova: addr, access },
        TranslateError::Miss { .. } => RingError::broken(Errno::EFAULT),
        TranslateError::Perm => RingError::broken(Errno::EPERM),
        TranslateError::NoBufs => RingError::broken(Errno::ENOBUFS),
    }
}

/// A step of a chain: a buffer descriptor, or the failure that ends it.
enum Step {
    Buf(Desc),
    Fail(RingError),
}

fn broken(e: Errno) -> Step {
    Step::Fail(RingError::broken(e))
}

/// The bytes `[off, off + 16)` of the range made of `pieces`.
fn piece_bytes(mem: &Mem, pieces: &[Piece], off: u64) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    for (k, byte) in out.iter_mut().enumerate() {
        let mut o = off + k as u64;
        let p = pieces.iter().find(|p| {
            if o < p.len {
                true
            } else {
                o -= p.len;
                false
            }
        })?;
        *byte = mem.peek(p.addr + o, 1)?[0];
    }
    Some(out)
}

/// Walks the chain from `head`: every buffer descriptor in order, ending
/// with the structural failure if there is one; and how many descriptors
/// of the table were visited.
fn walk(
    mem: &Mem,
    regions: &[Region],
    iotlb: bool,
    ring: &ModelRing,
    head: u16,
    indirect_cap: usize,
    budget: u32,
) -> (Vec<Step>, u32, u32) {
    let mut steps = Vec::new();
    let mut i = head as u32;
    let mut visited = 0u32;
    // Descriptor reads so far besides the head, against the packet's
    // allowance (the table's further entries and every indirect entry).
    let budget = budget.min(MAX_PACKET_READS);
    let mut reads = 0u32;
    loop {
        if i >= ring.num {
            steps.push(broken(Errno::EINVAL));
            break;
        }
        visited += 1;
        if visited > ring.num {
            steps.push(broken(Errno::EINVAL));
            break;
        }
        // The head is read without counting.
        if visited > 1 {
            if reads == budget {
                steps.push(broken(Errno::EINVAL));
                break;
            }
            reads += 1;
        }
        let Some(b) = mem.peek(ring.desc + 16 * i as u64, 16) else {
            steps.push(broken(Errno::EFAULT));
            break;
        };
        let d = Desc::from_bytes(&b.try_into().unwrap());
        if d.flags & VRING_DESC_F_INDIRECT != 0 {
            if d.len % 16 != 0 {
                steps.push(broken(Errno::EINVAL));
                break;
            }
            let pieces = match mtrans(regions, d.addr, d.len, PERM_RO, indirect_cap) {
                Ok(p) => p,
                Err(e) => {
                    steps.push(Step::Fail(mtrans_err(e, iotlb, PERM_RO)));
                    break;
                }
            };
            let count = d.len / 16;
            if count > 65536 {
                steps.push(broken(Errno::E2BIG));
                break;
            }
            let mut failed = false;
            for k in 0.. {
                if k >= count {
                    steps.push(broken(Errno::EINVAL));
                    failed = true;
                    break;
                }
                if reads == budget {
                    steps.push(broken(Errno::EINVAL));
                    failed = true;
                    break;
                }
                reads += 1;
                let Some(eb) = piece_bytes(mem, &pieces, 16 * k as u64) else {
                    steps.push(broken(Errno::EINVAL));
                    failed = true;
                    break;
                };
                let e = Desc::from_bytes(&eb);
                if e.flags & VRING_DESC_F_INDIRECT != 0 {
                    steps.push(broken(Errno::EINVAL));
                    failed = true;
                    break;
                }
                steps.push(Step::Buf(e));
                if e.flags & VRING_DESC_F_NEXT == 0 {
                    break;
                }
            }
            if failed {
                break;
            }
        } else {
            steps.push(Step::Buf(d));
        }
        if d.flags & VRING_DESC_F_NEXT == 0 {
            break;
        }
        i = d.next as u32;
    }
    (steps, visited, reads)
}

/// The model of `vhost_get_vq_desc`.
pub(crate) fn model_get(
    mem: &Mem,
    regions: &[Region],
    iotlb: bool,
    ring: &mut ModelRing,
    caps: Caps,
) -> Result<Option<ModelChain>, RingError> {
    if ring.avail_idx == ring.last_avail {
        let idx = mem
            .peek_u16(ring.avail + 2)
            .ok_or(RingError::broken(Errno::EFAULT))?;
        let pending = idx.wrapping_sub(ring.last_avail) as u32;
        if pending > ring.num {
            return Err(RingError::broken(Errno::EINVAL));
        }
        if pending == 0 {
            return Ok(None);
        }
        ring.avail_idx = idx;
    }
    let slot = (ring.last_avail as u32 % ring.num) as u64;
    let head = mem
        .peek_u16(ring.avail + 4 + 2 * slot)
        .ok_or(RingError::broken(Errno::EFAULT))?;
    if head as u32 >= ring.num {
        return Err(RingError::broken(Errno::EINVAL));
    }
    // A chain that goes beyond its head yields once the round has read
    // `MAX_ROUND_READS` descriptors besides heads, before anything else.
    if let Some(b) = mem.peek(ring.desc + 16 * head as u64, 16) {
        let d = Desc::from_bytes(&b.try_into().unwrap());
        if d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT) != 0
            && ring.walked >= MAX_ROUND_READS
        {
            return Err(RingError::Yield);
        }
    }
    let (steps, descs, reads) = walk(mem, regions, iotlb, ring, head, caps.indirect, caps.reads);
    let mut c = ModelChain {
        head,
        out: vec![],
        inn: vec![],
        log: vec![],
        descs,
        reads,
    };
    for s in steps {
        let d = match s {
            Step::Fail(e) => return Err(e),
            Step::Buf(d) => d,
        };
        let write = d.flags & VRING_DESC_F_WRITE != 0;
        let access = if write { PERM_WO } else { PERM_RO };
        let room = caps.iov - c.out.len() - c.inn.len();
        let p = mtrans(regions, d.addr, d.len, access, room)
            .map_err(|e| mtrans_err(e, iotlb, access))?;
        if write {
            if !p.is_empty() {
                if let Some(cap) = caps.log {
                    if c.log.len() >= cap {
                        return Err(RingError::broken(Errno::ENOBUFS));
                    }
                    c.log.push(LogEntry {
                        addr: d.addr,
                        len: d.len as u64,
                    });
                }
            }
            c.inn.extend(p);
        } else {
            if !c.inn.is_empty() {
                return Err(RingError::broken(Errno::EINVAL));
            }
            c.out.extend(p);
        }
    }
    ring.last_avail = ring.last_avail.wrapping_add(1);
    ring.walked += reads;
    Ok(Some(c))
}

/// Runs the ring under test once with the given room; returns the chain
/// as a [`ModelChain`] for comparison.
pub(crate) fn sut_get(
    ring: &mut SplitRing,
    mem: &Mem,
    xlate: &Xlate,
    caps: Caps,
) -> Result<Option<ModelChain>, RingError> {
    let mut iov = vec![Piece::default(); caps.iov];
    let mut ind = vec![Piece::default(); caps.indirect];
    let mut log = caps.log.map(|n| vec![LogEntry::default(); n]);
    let r = ring.get_desc_chain(
        mem,
        xlate,
        ChainBufs {
            iov: &mut iov,
            indirect: &mut ind,
            log: log.as_deref_mut(),
            reads: caps.reads,
        },
    )?;
    Ok(r.map(|c| {
        assert!(c.out_num + c.in_num <= caps.iov);
        let bytes: u64 = iov[..c.out_num + c.in_num].iter().map(|p| p.len).sum();
        assert_eq!(c.len, bytes, "the chain's length is its pieces'");
        ModelChain {
            head: c.head,
            out: iov[..c.out_num].to_vec(),
            inn: iov[c.out_num..c.out_num + c.in_num].to_vec(),
            log: log.map(|l| l[..c.log_num].to_vec()).unwrap_or_default(),
            descs: c.descs,
            reads: c.reads,
        }
    }))
}

/// Layout of the fuzzed guest.
pub(crate) const FZ_BASE: u64 = 0x7000_0000;
pub(crate) const FZ_DESC: u64 = FZ_BASE;
pub(crate) const FZ_AVAIL: u64 = FZ_BASE + 0x800;
pub(crate) const FZ_USED: u64 = FZ_BASE + 0xc00;
pub(crate) const FZ_BUF: u64 = FZ_BASE + 0x1000;
pub(crate) const FZ_SIZE: usize = 0x3000;
/// Header bytes before the image in a fuzz input.
pub(crate) const FZ_HDR: usize = 8;

/// The fixed guest-physical map of the fuzzed guest: the buffer area in
/// regions of every permission with a hole, and the descriptor table again
/// at GPA 0x8000 so indirect tables can point into it.
pub(crate) fn fuzz_regions() -> Vec<Region> {
    let r = |gpa, len, off: u64, perm| Region {
        gpa,
        len,
        uaddr: FZ_BUF + off,
        perm,
    };
    vec![
        r(0x0, 0x800, 0x0, PERM_RO | PERM_WO),
        r(0x800, 0x400, 0x800, PERM_RO),
        r(0xc00, 0x400, 0xc00, PERM_WO),
        r(0x1000, 0x10, 0x1000, PERM_RO | PERM_WO),
        r(0x1010, 0x7f0, 0x1010, PERM_RO | PERM_WO),
        // 0x1800..0x1900 is a hole.
        r(0x1900, 0x700, 0x1900, PERM_RO | PERM_WO),
        Region {
            gpa: 0x8000,
            len: 0x800,
            uaddr: FZ_DESC,
            perm: PERM_RO,
        },
    ]
}

/// The entry point of the fuzz target `desc_chain` (and of the corpus
/// replay test): builds a guest from `data`, takes chains with the ring and
/// with the model and insists they agree, then gives the chains back and
/// exercises the notification calls; panics on any disagreement. Returns
/// the number of chains taken, and the error that ended the walk if any.
///
/// Input: `[num_log2, flags, last_avail lo, hi, iov cap, indirect cap,
/// log cap, calls]` followed by the guest image (desc table at 0, avail
/// ring at 0x800, used ring at 0xc00, buffers from 0x1000).
pub fn fuzz_desc_chain(data: &[u8]) -> (usize, Option<i32>) {
    if data.len() < FZ_HDR {
        return (0, None);
    }
    let num = 1u32 << (data[0] % 6);
    let flags = data[1];
    let iotlb = flags & 1 != 0;
    let last_avail = u16::from_le_bytes([data[2], data[3]]);
    let caps = Caps {
        iov: 1 + data[4] as usize % 64,
        indirect: 1 + data[5] as usize % 16,
        log: if flags & 2 != 0 {
            Some(data[6] as usize % 64)
        } else {
            None
        },
        // Mostly the real allowance; sometimes a small one, so that the
        // budget's failure is compared with the model too.
        reads: if flags & 16 != 0 {
            1 + u32::from(data[6] % 32)
        } else {
            MAX_PACKET_READS
        },
    };
    let calls = 1 + data[7] % 8;

    let mem = Mem::new(FZ_BASE, FZ_SIZE);
    let image = &data[FZ_HDR..];
    let n = image.len().min(FZ_SIZE);
    mem.poke(FZ_BASE, &image[..n]);

    let regions = fuzz_regions();
    let xlate = Xlate::new(&regions, iotlb).with_umem(&regions);
    let cfg = SplitConfig {
        num,
        desc: FZ_DESC,
        avail: FZ_AVAIL,
        used: FZ_USED,
        event_idx: flags & 4 != 0,
        notify_on_empty: flags & 8 != 0,
    };
    let mut ring = SplitRing::new(&cfg).unwrap();
    ring.set_base(last_avail);
    let mut model = ModelRing {
        num,
        desc: FZ_DESC,
        avail: FZ_AVAIL,
        last_avail,
        avail_idx: last_avail,
        walked: 0,
    };
    let _ = ring.disable_notify(&mem, &xlate);

    let mut used = Vec::new();
    let mut failure = None;
    for _ in 0..calls {
        let want = model_get(&mem, &regions, iotlb, &mut model, caps);
        let got = sut_get(&mut ring, &mem, &xlate, caps);
        assert_eq!(got, want, "chain differs from the model");
        assert_eq!(ring.last_avail_idx(), model.last_avail);
        assert_eq!(ring.avail_idx(), model.avail_idx);
        match got {
            Ok(Some(c)) => used.push(UsedElem {
                id: c.head as u32,
                len: c.inn.iter().map(|p| p.len as u32).sum(),
            }),
            Ok(None) => break,
            Err(e) => {
                failure = Some(e.errno().0);
                break;
            }
        }
    }
    let taken = used.len();
    if flags & 16 != 0 && !used.is_empty() {
        ring.discard(1, 0);
        used.pop();
    }
    if flags & 32 != 0 {
        ring.set_used_log(Some(crate::vcore::ring::split::UsedLog {
            log_base: FZ_BUF + 0x1f00,
            log_addr: 0x1000,
        }));
    }
    let before = ring.last_used_idx();
    let _ = ring.add_used(&mem, &xlate, &used);
    assert_eq!(
        ring.last_used_idx(),
        before.wrapping_add(used.len() as u16),
        "the used ring is in writable memory"
    );
    let _ = ring.need_notify(&mem);
    let _ = ring.enable_notify(&mem, &xlate);
    let _ = ring.avail_empty(&mem);
    let _ = ring.need_notify(&mem);
    (taken, failure)
}

/// Builds a fuzz input from a header and a guest.
pub(crate) struct SeedBuilder {
    pub(crate) hdr: [u8; FZ_HDR],
    pub(crate) image: Vec<u8>,
}

impl SeedBuilder {
    pub(crate) fn new(num_log2: u8, flags: u8, last_avail: u16) -> Self {
        let la = last_avail.to_le_bytes();
        SeedBuilder {
            hdr: [num_log2, flags, la[0], la[1], 63, 15, 63, 3],
            image: vec![0; 0x1000],
        }
    }
    fn put(&mut self, off: usize, b: &[u8]) {
        if self.image.len() < off + b.len() {
            self.image.resize(off + b.len(), 0);
        }
        self.image[off..off + b.len()].copy_from_slice(b);
    }
    pub(crate) fn desc(&mut self, i: usize, d: Desc) -> &mut Self {
        self.put(16 * i, &d.to_bytes());
        self
    }
    pub(crate) fn avail(&mut self, idx: u16, heads: &[(u16, u16)]) -> &mut Self {
        self.put(0x802, &idx.to_le_bytes());
        for &(slot, h) in heads {
            self.put(0x804 + 2 * slot as usize, &h.to_le_bytes());
        }
        self
    }
    pub(crate) fn bytes(&self) -> Vec<u8> {
        let mut v = self.hdr.to_vec();
        v.extend_from_slice(&self.image);
        v
    }
}

/// Hand-made inputs covering each path; the committed corpus starts from
/// these.
pub(crate) fn seed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let d = |addr, len, flags, next| Desc {
        addr,
        len,
        flags,
        next,
    };
    let (n, w, ind) = (VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT);
    let mut out = Vec::new();
    let mut s = SeedBuilder::new(3, 0, 0);
    s.desc(0, d(0x0, 100, n, 1))
        .desc(1, d(0x100, 200, w, 0))
        .avail(1, &[(0, 0)]);
    out.push(("simple", s.bytes()));

    let mut s = SeedBuilder::new(3, 2 | 32, 0xfffe);
    s.desc(2, d(0x8000 + 16 * 4, 48, ind, 0))
        .desc(4, d(0x0, 10, n, 0))
        .desc(5, d(0xff8, 0x20, n | w, 0))
        .desc(6, d(0xc00, 0x10, w, 0))
        .avail(0, &[(6, 2), (7, 2)]);
    out.push(("indirect_wrap", s.bytes()));

    let mut s = SeedBuilder::new(2, 1, 0);
    s.desc(0, d(0x1800, 8, 0, 0)).avail(1, &[(0, 0)]);
    out.push(("iotlb_miss", s.bytes()));

    let mut s = SeedBuilder::new(2, 4 | 8, 0);
    s.desc(0, d(0x0, 8, n, 1))
        .desc(1, d(0x0, 8, n, 0))
        .avail(2, &[(0, 0), (1, 1)]);
    out.push(("loop", s.bytes()));

    let mut s = SeedBuilder::new(5, 16, 0);
    for i in 0..32u16 {
        s.desc(i as usize, d(0x1000 + 0x10 * i as u64, 0x20, w, 0));
    }
    let heads: Vec<(u16, u16)> = (0..32).map(|i| (i, 31 - i)).collect();
    s.avail(32, &heads);
    s.hdr[7] = 7;
    out.push(("many_fragmented", s.bytes()));

    let mut s = SeedBuilder::new(3, 0, 0);
    s.desc(0, d(0x0, 0x10, n | w, 1))
        .desc(1, d(0x20, 0x10, 0, 0))
        .avail(1, &[(0, 0)]);
    out.push(("out_after_in", s.bytes()));
    out
}
