//! The fuzz targets `interval_map` and `iotlb_msg`: the interval map under a
//! random sequence of operations, and the IOTLB `write()` path of the device
//! fd under a random sequence of buffers, each checked step by step against
//! the naive model of `model.rs`.
//!
//! This module is compiled outside `cfg(test)` too, because the fuzz targets
//! in `tests/fuzz` call [`fuzz_interval_map`] and [`fuzz_iotlb_msg`]; the
//! replay test in `fuzz_replay.rs` runs the committed corpora through them,
//! and the property tests of `intervalmap_props.rs` share its checks.

use crate::model::Model;
use crate::storage::{ArrayStorage, VecStorage};
use crate::vcore::errno::Errno;
use crate::vcore::iotlb_msg::{self, IotlbOutcome};
use crate::vcore::memory::intervalmap::{
    Entry, IntervalMap, Piece, Slot, Storage, FLAG_RETIRE, PERM_RO, PERM_RW, PERM_WO,
};
use crate::vcore::uapi::{
    VHOST_BACKEND_F_IOTLB_ASID, VHOST_BACKEND_F_IOTLB_BATCH, VHOST_BACKEND_F_IOTLB_MSG_V2,
};
use crate::vcore::validate::MAX_IOTLB_ENTRIES;

/// Most operations or writes one input runs, to bound the time per input.
const MAX_STEPS: usize = 128;
/// Most pieces a translation may be given room for.
const MAX_CAP: usize = 8;
/// Most entries whose neighbourhood is probed after each step.
const PROBED_ENTRIES: usize = 5;

/// Reads a fuzz input. Past the end every read gives zeros, which decode to
/// small values, so a truncated input still means something.
pub(crate) struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
    /// Addresses worth coming back to: the bounds of the map's entries (and,
    /// for the IOTLB, of the inaccessible user range).
    hints: Vec<u64>,
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Bytes {
            data,
            pos: 0,
            hints: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// Up to `n` bytes, fewer at the end of the input.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let from = self.pos.min(self.data.len());
        let to = from.saturating_add(n).min(self.data.len());
        self.pos = to;
        &self.data[from..to]
    }

    /// An `n`-byte little-endian number.
    fn uint(&mut self, n: usize) -> u64 {
        (0..n).fold(0, |v, i| v | u64::from(self.u8()) << (8 * i))
    }

    /// One of the hints, or 0 when there is none.
    fn hint(&mut self) -> u64 {
        let i = usize::from(self.u8());
        match self.hints.len() {
            0 => 0,
            n => self.hints[i % n],
        }
    }

    /// A 64-bit value drawn towards the places where arithmetic breaks: 0,
    /// `u64::MAX` and just below it, the middle (where `[0, u64::MAX]` is
    /// split), powers of two, next to an existing entry, or anything.
    fn addr(&mut self) -> u64 {
        match self.u8() % 10 {
            0 => u64::from(self.u8()),
            1 => u64::MAX - u64::from(self.u8()),
            2 => (u64::MAX / 2)
                .wrapping_add(u64::from(self.u8()))
                .wrapping_sub(128),
            3 => 0,
            4 => u64::MAX,
            5 => self.uint(8),
            6 => {
                let h = self.hint();
                h.wrapping_add(u64::from(self.u8() % 8)).wrapping_sub(4)
            }
            7 => self.uint(2) << 12,
            8 => 1u64 << (self.u8() % 64),
            _ => self.uint(4),
        }
    }

    /// A translation length: small, near `u32::MAX`, or anything.
    fn len32(&mut self) -> u32 {
        match self.u8() % 6 {
            0 | 1 => u32::from(self.u8()),
            2 => u32::MAX - u32::from(self.u8()),
            3 => self.uint(2) as u32,
            4 => self.uint(4) as u32,
            _ => 0,
        }
    }

    /// A range `[start, last]`: short, with unrelated ends (so sometimes
    /// `last < start`), the whole space, `start + size - 1` with C's
    /// wrap-around, or up to the top.
    fn range(&mut self) -> (u64, u64) {
        match self.u8() % 6 {
            0 | 1 => {
                let start = self.addr();
                (start, start.saturating_add(u64::from(self.u8())))
            }
            2 => (self.addr(), self.addr()),
            3 => (0, u64::MAX),
            4 => {
                let start = self.addr();
                let size = self.addr();
                (start, start.wrapping_add(size).wrapping_sub(1))
            }
            _ => (self.addr(), u64::MAX),
        }
    }

    /// Makes the bounds of `entries`, and `extra`, the new hints.
    fn set_hints<'e>(&mut self, entries: impl Iterator<Item = &'e Entry>, extra: &[u64]) {
        self.hints.clear();
        for e in entries {
            self.hints.extend([e.start, e.last, e.last.wrapping_add(1)]);
        }
        self.hints.extend_from_slice(extra);
    }
}

/// Either storage of the tests: unbounded, or a fixed array smaller than
/// some limits so that insertions can fail with `ENOMEM`.
pub(crate) enum AnyStorage {
    Vec(VecStorage),
    Array(Box<ArrayStorage<ARRAY_CAP>>),
}

/// Slots of the fixed-array storage.
pub(crate) const ARRAY_CAP: usize = 6;

impl Storage for AnyStorage {
    fn slots(&self) -> &[Slot] {
        match self {
            AnyStorage::Vec(s) => s.slots(),
            AnyStorage::Array(s) => s.slots(),
        }
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        match self {
            AnyStorage::Vec(s) => s.slots_mut(),
            AnyStorage::Array(s) => s.slots_mut(),
        }
    }
    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno> {
        match self {
            AnyStorage::Vec(s) => s.insert(index, slot),
            AnyStorage::Array(s) => s.insert(index, slot),
        }
    }
    fn remove(&mut self, index: usize) -> Slot {
        match self {
            AnyStorage::Vec(s) => s.remove(index),
            AnyStorage::Array(s) => s.remove(index),
        }
    }
}

/// Checks everything that must hold of `map` at any time, and that it holds
/// exactly the model's entries in the model's lookup order.
pub(crate) fn check_state<S: Storage>(map: &IntervalMap<S>, model: &Model, limit: u32, flags: u32) {
    let entries: Vec<Entry> = map.iter().copied().collect();
    assert_eq!(entries, model.sorted(), "the map differs from the model");
    assert_eq!(map.len(), entries.len());
    assert_eq!(map.is_empty(), entries.is_empty());
    assert_eq!((map.limit(), map.flags()), (limit, flags));
    // A limit of 0 refuses every insertion, so it bounds the count too.
    assert!(
        entries.len() <= limit as usize,
        "{} entries, limit {limit}",
        entries.len()
    );
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(map.get(i), Some(e));
        assert!(e.start <= e.last, "entry ends before it starts: {e:?}");
        assert!(
            e.start != 0 || e.last != u64::MAX,
            "the whole space is one entry"
        );
    }
    assert_eq!(map.get(entries.len()), None);
    // Entries may overlap, as in C; the order is (start, insertion).
    for w in entries.windows(2) {
        assert!(
            (w[0].start, w[0].seq) < (w[1].start, w[1].seq),
            "out of order: {:?} before {:?}",
            w[0],
            w[1]
        );
    }
    let mut seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), entries.len(), "two entries share a stamp");
}

/// `first` and the whole `next` chain agree with the model.
pub(crate) fn check_query<S: Storage>(map: &IntervalMap<S>, model: &Model, start: u64, last: u64) {
    let mut got = Vec::new();
    let mut cur = map.first(start, last);
    while let Some((i, e)) = cur {
        assert!(got.len() < map.len(), "next() does not end");
        assert_eq!(map.get(i), Some(e));
        got.push(*e);
        cur = map.next(i, start, last);
    }
    let mut want = Vec::new();
    let mut cur = model.first(start, last);
    while let Some(e) = cur {
        want.push(e);
        cur = model.next(&e, start, last);
    }
    assert_eq!(got, want, "first/next({start:#x}, {last:#x})");
}

/// A translation agrees with the model piece by piece, error included.
pub(crate) fn check_translate<S: Storage>(
    map: &IntervalMap<S>,
    model: &Model,
    addr: u64,
    len: u32,
    access: u32,
    cap: usize,
) {
    let cap = cap.min(MAX_CAP);
    let mut out = [Piece::default(); MAX_CAP];
    let got = map
        .translate(addr, len, access, &mut out[..cap])
        .map(|n| out[..n].to_vec());
    let want = model.translate(addr, len, access, cap);
    assert_eq!(
        got, want,
        "translate({addr:#x}, {len:#x}, access {access}, cap {cap})"
    );
    if let Ok(pieces) = got {
        assert!(pieces.iter().all(|p| p.len > 0), "empty piece");
        let total: u64 = pieces.iter().map(|p| p.len).sum();
        assert_eq!(total, u64::from(len), "pieces do not add up");
    }
}

/// Translations and lookups derived from the map's state: zero-size ones,
/// across the top of the address space, exactly one entry, across an
/// entry's ends, and from one entry to the end of the next.
fn probes<S: Storage>(map: &IntervalMap<S>, model: &Model, salt: u8) {
    let access = [PERM_RO, PERM_WO, PERM_RW][usize::from(salt % 3)];
    check_translate(map, model, 0, 0, access, 0);
    check_translate(map, model, u64::MAX, 1, access, 1);
    check_translate(map, model, u64::MAX, 2, access, MAX_CAP);
    check_translate(map, model, u64::MAX - 7, 16, access, MAX_CAP);
    check_translate(map, model, u64::MAX / 2 - 3, 8, access, MAX_CAP);
    check_query(map, model, 0, u64::MAX);
    check_query(map, model, u64::MAX, 0);
    let entries: Vec<Entry> = map.iter().copied().collect();
    let len32 = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    for (i, e) in entries.iter().enumerate().take(PROBED_ENTRIES) {
        let next_last = entries.get(i + 1).map_or(e.last, |n| n.last);
        let cap = 1 + (i + usize::from(salt)) % MAX_CAP;
        check_translate(map, model, e.start, 0, access, cap);
        check_translate(map, model, e.start, len32(e.size()), access, cap);
        check_translate(map, model, e.last, 2, access, MAX_CAP);
        check_translate(map, model, e.start.wrapping_sub(1), 2, access, MAX_CAP);
        let span = next_last.wrapping_sub(e.start).wrapping_add(1);
        check_translate(map, model, e.start, len32(span), access, cap);
        check_query(map, model, e.start, e.start);
        check_query(map, model, e.last, e.last.wrapping_add(1));
    }
}

/// Limits of the interval map, chosen by the low three bits of a byte.
const MAP_LIMITS: [u32; 8] = [0, 1, 2, 3, 4, 5, 8, 16];

/// A map and its model as the configuration byte `conf` says: limit in
/// bits 0-2, `FLAG_RETIRE` in bit 3, fixed-array storage in bit 4. The
/// storage starts with `junk` slots in it, which the map must discard.
fn new_map(conf: u8, junk: u8) -> (IntervalMap<AnyStorage>, Model, u32, u32) {
    let limit = MAP_LIMITS[usize::from(conf & 7)];
    let flags = if conf & 8 != 0 { FLAG_RETIRE } else { 0 };
    let junk = usize::from(junk) % (ARRAY_CAP + 1);
    let (storage, capacity) = if conf & 16 != 0 {
        let mut s = ArrayStorage::<ARRAY_CAP>::default();
        for _ in 0..junk {
            s.insert(0, Slot::default()).unwrap();
        }
        (AnyStorage::Array(Box::new(s)), ARRAY_CAP)
    } else {
        (
            AnyStorage::Vec(VecStorage(vec![Slot::default(); junk])),
            usize::MAX,
        )
    };
    let map = IntervalMap::new(storage, limit, flags);
    (map, Model::new(limit, flags, capacity), limit, flags)
}

/// The entry point of the fuzz target `interval_map` (and of the corpus
/// replay test): runs a sequence of operations on an interval map and on
/// the naive model, and panics on any disagreement. After every operation
/// the map's invariants are checked and a set of translations and lookups
/// around its entries must agree with the model. Returns the number of
/// entries at the end and the result of every insertion (0 or the errno).
///
/// Input: a configuration byte (see [`new_map`]), then operations, each an
/// opcode byte followed by its arguments:
///
/// - 0, 1: `add_range(range, addr, perm)`, perm from 0 to 7;
/// - 2: `del_range(range)`; 3: `reset()`;
/// - 4: `first`/`next` over a range;
/// - 5: `translate(addr, len, access, cap)`;
/// - 6: a new map (configuration byte, junk slots in the storage);
/// - 7: `add_range` at a hint (an existing entry's bound): hint index,
///   extra length, addr, perm.
pub fn fuzz_interval_map(data: &[u8]) -> (usize, Vec<i32>) {
    let mut input = Bytes::new(data);
    let (mut map, mut model, mut limit, mut flags) = new_map(input.u8(), 0);
    let mut adds = Vec::new();
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let op = input.u8();
        let add = match op % 8 {
            0 | 1 => {
                let (start, last) = input.range();
                Some((start, last))
            }
            2 => {
                let (start, last) = input.range();
                map.del_range(start, last);
                model.del_range(start, last);
                None
            }
            3 => {
                map.reset();
                model.del_range(0, u64::MAX);
                None
            }
            4 => {
                let (start, last) = input.range();
                check_query(&map, &model, start, last);
                None
            }
            5 => {
                let addr = input.addr();
                let len = input.len32();
                let access = u32::from(input.u8() % 4);
                let cap = usize::from(input.u8()) % (MAX_CAP + 1);
                check_translate(&map, &model, addr, len, access, cap);
                None
            }
            6 => {
                let conf = input.u8();
                let junk = input.u8();
                (map, model, limit, flags) = new_map(conf, junk);
                None
            }
            _ => {
                let start = input.hint();
                Some((start, start.saturating_add(u64::from(input.u8()))))
            }
        };
        if let Some((start, last)) = add {
            let addr = input.addr();
            let perm = u32::from(input.u8() % 8);
            let got = map.add_range(start, last, addr, perm);
            let want = model.add_range(start, last, addr, perm);
            assert_eq!(
                got, want,
                "add_range({start:#x}, {last:#x}, {addr:#x}, {perm})"
            );
            adds.push(got.err().map_or(0, |e| e.0));
        }
        check_state(&map, &model, limit, flags);
        probes(&map, &model, op);
        input.set_hints(map.iter(), &[]);
    }
    (map.len(), adds)
}

/// Size of `struct vhost_msg` and of `struct vhost_msg_v2` in C: what a
/// successful `write` returns, whatever was written.
const C_MSG_LEN: usize = 72;
/// `TASK_SIZE_MAX` of x86_64 with 4-level paging.
const TASK_SIZE_MAX: u64 = (1 << 47) - 4096;
/// Limits of the device IOTLB, chosen by the low three bits of a byte; the
/// module's default, `max_iotlb_entries`, is the last. 0 is not possible:
/// the device then refuses to create the IOTLB at all.
const IOTLB_LIMITS: [u32; 8] = [1, 2, 3, 4, 5, 8, 16, MAX_IOTLB_ENTRIES];

/// The acked backend features from the low three bits of `bits`:
/// `IOTLB_MSG_V2`, `IOTLB_BATCH`, `IOTLB_ASID`. vhost-net only lets
/// userspace ack the first, but the layout code takes any value.
fn backend_features(bits: u8) -> u64 {
    let mut f = 0;
    for (bit, feature) in [
        VHOST_BACKEND_F_IOTLB_MSG_V2,
        VHOST_BACKEND_F_IOTLB_BATCH,
        VHOST_BACKEND_F_IOTLB_ASID,
    ]
    .into_iter()
    .enumerate()
    {
        if bits & (1 << bit) != 0 {
            f |= 1u64 << feature;
        }
    }
    f
}

/// The owner's address space as `access_ok` sees it: one inaccessible
/// range, and optionally the end of user space.
struct UserSpace {
    forbid_start: u64,
    forbid_len: u64,
    task_size: Option<u64>,
}

impl UserSpace {
    fn access_ok(&self, addr: u64, size: u64) -> bool {
        let (start, end) = (u128::from(addr), u128::from(addr) + u128::from(size));
        if let Some(t) = self.task_size {
            if end > u128::from(t) {
                return false;
            }
        }
        let fs = u128::from(self.forbid_start);
        let fe = fs + u128::from(self.forbid_len);
        !(start < fe && fs < end)
    }
}

/// A user buffer consumed like an `iov_iter`: copies stop at the end and
/// say how much they copied; advancing stops at the end.
struct Iter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Iter<'_> {
    fn copy_from(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }
    fn advance(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
    }
}

/// A `write` of `buf` to the device fd, step by step as `write_msg` in
/// `src/vhost/dev.rs` does it, with the core's functions.
fn sut_write<S: Storage>(
    buf: &[u8],
    backend_features: u64,
    iotlb: Option<&mut IntervalMap<S>>,
    access_ok: impl FnMut(u64, u64) -> bool,
) -> Result<(usize, IotlbOutcome), Errno> {
    let mut iter = Iter { buf, pos: 0 };
    let mut ty = [0u8; 4];
    if iter.copy_from(&mut ty) != ty.len() {
        return Err(Errno::EINVAL);
    }
    let layout = iotlb_msg::iotlb_write_layout(i32::from_ne_bytes(ty), backend_features)?;
    let mut asid = 0u32;
    if layout.reads_asid {
        let mut b = [0u8; 4];
        if iter.copy_from(&mut b) != b.len() {
            return Err(Errno::EINVAL);
        }
        asid = u32::from_ne_bytes(b);
    }
    iter.advance(layout.skip);
    let mut raw = [0u8; 32];
    if iter.copy_from(&mut raw) != raw.len() {
        return Err(Errno::EINVAL);
    }
    let msg = iotlb_msg::parse_iotlb_msg(&raw);
    let outcome = iotlb_msg::process_iotlb_msg(iotlb, asid, &msg, access_ok)?;
    Ok((layout.written, outcome))
}

/// `vhost_chr_write_iter` with `vhost_process_iotlb_msg` (drivers/vhost/
/// vhost.c), transcribed over a flat buffer and the naive model, with C's
/// numbers rather than the core's constants. Returns the bytes written and
/// the message type.
fn c_write(
    buf: &[u8],
    backend_features: u64,
    iotlb: Option<&mut Model>,
    mut access_ok: impl FnMut(u64, u64) -> bool,
) -> Result<(usize, u8), Errno> {
    let ne32 = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    // copy_from_iter(&type, sizeof(type), from)
    let Some(t) = buf.get(0..4) else {
        return Err(Errno::EINVAL);
    };
    let mut asid = 0u32;
    let mut pos = 4;
    let offset = match ne32(t) as i32 {
        // VHOST_IOTLB_MSG: offsetof(struct vhost_msg, iotlb) - sizeof(int).
        1 => 8 - 4,
        // VHOST_IOTLB_MSG_V2, with VHOST_BACKEND_F_IOTLB_ASID (bit 3) acked.
        2 if backend_features & (1 << 3) != 0 => {
            let Some(a) = buf.get(4..8) else {
                return Err(Errno::EINVAL);
            };
            asid = ne32(a);
            pos = 8;
            0
        }
        2 => 4,
        _ => return Err(Errno::EINVAL),
    };
    // iov_iter_advance stops at the end.
    let pos = (pos + offset).min(buf.len());
    let Some(m) = buf.get(pos..pos + 32) else {
        return Err(Errno::EINVAL);
    };
    let field = |o: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&m[o..o + 8]);
        u64::from_ne_bytes(w)
    };
    let (iova, size, uaddr, perm, ty) = (field(0), field(8), field(16), m[24], m[25]);
    // VHOST_IOTLB_UPDATE of size 0.
    if ty == 2 && size == 0 {
        return Err(Errno::EINVAL);
    }
    let last = iova.wrapping_add(size).wrapping_sub(1);
    // Every failure of vhost_process_iotlb_msg becomes -EFAULT.
    let processed = if asid != 0 {
        Err(())
    } else {
        match (ty, iotlb) {
            (2, Some(map)) => {
                if c_umem_access_ok(uaddr, size, perm, &mut access_ok) {
                    map.add_range(iova, last, uaddr, u32::from(perm))
                        .map_err(|_| ())
                } else {
                    Err(())
                }
            }
            (3, Some(map)) => {
                map.del_range(iova, last);
                Ok(())
            }
            _ => Err(()),
        }
    };
    match processed {
        Ok(()) => Ok((C_MSG_LEN, ty)),
        Err(()) => Err(Errno::EFAULT),
    }
}

/// `umem_access_ok` with `vhost_overflow` of a 64-bit kernel.
fn c_umem_access_ok(
    uaddr: u64,
    size: u64,
    access: u8,
    access_ok: &mut impl FnMut(u64, u64) -> bool,
) -> bool {
    if size != 0 && u128::from(uaddr) + u128::from(size) > 1u128 << 64 {
        return false;
    }
    if access & 1 != 0 && !access_ok(uaddr, size) {
        return false;
    }
    if access & 2 != 0 && !access_ok(uaddr, size) {
        return false;
    }
    true
}

/// A well-formed C message of `C_MSG_LEN` bytes: the format `ty`, the asid
/// (or the hole of the first format), the IOTLB message, the union's rest.
pub(crate) fn c_msg(
    ty: u32,
    asid: u32,
    iova: u64,
    size: u64,
    uaddr: u64,
    perm: u8,
    mtype: u8,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(C_MSG_LEN);
    b.extend_from_slice(&ty.to_ne_bytes());
    b.extend_from_slice(&asid.to_ne_bytes());
    b.extend_from_slice(&iova.to_ne_bytes());
    b.extend_from_slice(&size.to_ne_bytes());
    b.extend_from_slice(&uaddr.to_ne_bytes());
    b.extend_from_slice(&[perm, mtype]);
    b.resize(C_MSG_LEN, 0);
    b
}

/// A message built from decoded fields, so that boundary values reach the
/// parser more often than in raw bytes: a form byte (bits 0-1 the format:
/// first, second twice, or any 4 bytes; bit 2 a non-zero asid byte follows;
/// bit 3 any permission byte instead of 0 to 3; bit 4 cut to a length that
/// follows), then iova, size, uaddr, permission, message type byte.
fn structured_write(input: &mut Bytes<'_>) -> Vec<u8> {
    let form = input.u8();
    let ty = match form % 4 {
        0 => 1,
        1 | 2 => 2,
        _ => input.uint(4) as u32,
    };
    let asid = if form & 4 != 0 {
        u32::from(input.u8())
    } else {
        0
    };
    let iova = input.addr();
    let size = input.addr();
    let uaddr = input.addr();
    let perm = match input.u8() {
        p if form & 8 != 0 => p,
        p => p % 4,
    };
    let mtype = match input.u8() {
        t @ 0..=3 => [2, 2, 3, 1][usize::from(t)],
        4..=0x7f => 2,
        0x80..=0xbf => 3,
        t => t & 7,
    };
    let mut b = c_msg(ty, asid, iova, size, uaddr, perm, mtype);
    if form & 16 != 0 {
        b.truncate(usize::from(input.u8()) % (C_MSG_LEN + 1));
    }
    b
}

/// Frame bytes of `fuzz_iotlb_msg` that are not a write length.
pub(crate) const FRAME_NEW_IOTLB: u8 = 0xfb;
pub(crate) const FRAME_NO_IOTLB: u8 = 0xfc;
pub(crate) const FRAME_FEATURES: u8 = 0xfd;
pub(crate) const FRAME_STRUCTURED: u8 = 0xfe;
/// The largest raw write a frame can hold.
pub(crate) const MAX_RAW_WRITE: u8 = 0xfa;

/// The entry point of the fuzz target `iotlb_msg` (and of the corpus replay
/// test): a sequence of `write`s to the device fd, each done as the module
/// does it (`iotlb_write_layout`, the decode, `process_iotlb_msg`) and as
/// C's `vhost_chr_write_iter` does it over the naive model; the results,
/// the `access_ok` calls and the IOTLBs must agree, the errno must be one a
/// C write can give (`EINVAL`, `EFAULT`), and after each write the IOTLB's
/// invariants and translations around its entries are checked. Returns the
/// result of every write (bytes written, or the errno).
///
/// Input: a header byte (bits 0-2 the backend features, see
/// [`backend_features`]; bit 3 no IOTLB at first, as without
/// `VIRTIO_F_ACCESS_PLATFORM`; bit 4 `access_ok` also refuses past
/// `TASK_SIZE_MAX`), the IOTLB limit byte (see [`IOTLB_LIMITS`]), the start
/// and length of an inaccessible user range, then frames: a length byte up
/// to [`MAX_RAW_WRITE`] and that many bytes written as they are,
/// [`FRAME_STRUCTURED`] and a message to build (see [`structured_write`]),
/// [`FRAME_NEW_IOTLB`] (`ACCESS_PLATFORM` acked again: a new, empty IOTLB),
/// [`FRAME_NO_IOTLB`] (features without it: no IOTLB) or
/// [`FRAME_FEATURES`] and new backend feature bits.
pub fn fuzz_iotlb_msg(data: &[u8]) -> Vec<Result<usize, i32>> {
    let mut input = Bytes::new(data);
    let head = input.u8();
    let mut features = backend_features(head);
    let limit = IOTLB_LIMITS[usize::from(input.u8() % 8)];
    let user = UserSpace {
        forbid_start: input.addr(),
        forbid_len: input.addr(),
        task_size: (head & 16 != 0).then_some(TASK_SIZE_MAX),
    };
    let user_hints = [
        user.forbid_start,
        user.forbid_start.wrapping_add(user.forbid_len),
        TASK_SIZE_MAX,
    ];
    // Both the memory table and the device IOTLB are created with
    // VHOST_IOTLB_FLAG_RETIRE (src/vhost/memmap.rs new_map); the IOTLB starts empty.
    let new_iotlb = || {
        (
            IntervalMap::new(VecStorage::default(), limit, FLAG_RETIRE),
            Model::new(limit, FLAG_RETIRE, usize::MAX),
        )
    };
    let mut dev = if head & 8 != 0 {
        None
    } else {
        Some(new_iotlb())
    };
    input.set_hints(core::iter::empty(), &user_hints);
    let mut results = Vec::new();
    let mut steps = 0;
    while !input.is_empty() && steps < MAX_STEPS {
        steps += 1;
        let frame = input.u8();
        let buf = match frame {
            FRAME_NEW_IOTLB => {
                dev = Some(new_iotlb());
                continue;
            }
            FRAME_NO_IOTLB => {
                dev = None;
                continue;
            }
            FRAME_FEATURES => {
                features = backend_features(input.u8());
                continue;
            }
            FRAME_STRUCTURED => structured_write(&mut input),
            n => input.take(usize::from(n)).to_vec(),
        };
        let (map, model) = match &mut dev {
            Some((map, model)) => (Some(map), Some(model)),
            None => (None, None),
        };
        let mut sut_calls = Vec::new();
        let got = sut_write(&buf, features, map, |a, s| {
            sut_calls.push((a, s));
            user.access_ok(a, s)
        });
        let mut c_calls = Vec::new();
        let want = c_write(&buf, features, model, |a, s| {
            c_calls.push((a, s));
            user.access_ok(a, s)
        });
        match (got, want) {
            (Ok((n, outcome)), Ok((c_n, ty))) => {
                assert_eq!(n, c_n, "bytes written");
                let c_outcome = if ty == 2 {
                    IotlbOutcome::Updated
                } else {
                    IotlbOutcome::Invalidated
                };
                assert_eq!(outcome, c_outcome, "write {buf:02x?}");
                results.push(Ok(n));
            }
            (Err(e), Err(c_e)) => {
                assert_eq!(e, c_e, "write {buf:02x?}");
                assert!(
                    e == Errno::EINVAL || e == Errno::EFAULT,
                    "a write cannot fail with {e:?}"
                );
                results.push(Err(e.0));
            }
            (got, want) => panic!("write {buf:02x?}: {got:?}, C gives {want:?}"),
        }
        assert_eq!(sut_calls, c_calls, "access_ok calls of write {buf:02x?}");
        if let Some((map, model)) = &dev {
            check_state(map, model, limit, FLAG_RETIRE);
            probes(map, model, frame);
            input.set_hints(map.iter(), &user_hints);
        }
    }
    results
}

/// Builds inputs for both targets in the format their decoders read,
/// always with the exact encodings.
pub(crate) struct Seed(pub(crate) Vec<u8>);

impl Seed {
    pub(crate) fn new(header: &[u8]) -> Self {
        Seed(header.to_vec())
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// An exact 64-bit value for [`Bytes::addr`].
    pub(crate) fn addr(&mut self, v: u64) -> &mut Self {
        self.bytes(&[5]).bytes(&v.to_le_bytes())
    }
    /// An exact range for [`Bytes::range`].
    pub(crate) fn range(&mut self, start: u64, last: u64) -> &mut Self {
        self.bytes(&[2]).addr(start).addr(last)
    }
    pub(crate) fn add(&mut self, start: u64, last: u64, addr: u64, perm: u8) -> &mut Self {
        self.bytes(&[0])
            .range(start, last)
            .addr(addr)
            .bytes(&[perm])
    }
    pub(crate) fn add_at_hint(&mut self, hint: u8, extra: u8, addr: u64, perm: u8) -> &mut Self {
        self.bytes(&[7, hint, extra]).addr(addr).bytes(&[perm])
    }
    pub(crate) fn del(&mut self, start: u64, last: u64) -> &mut Self {
        self.bytes(&[2]).range(start, last)
    }
    pub(crate) fn reset(&mut self) -> &mut Self {
        self.bytes(&[3])
    }
    pub(crate) fn query(&mut self, start: u64, last: u64) -> &mut Self {
        self.bytes(&[4]).range(start, last)
    }
    pub(crate) fn translate(&mut self, addr: u64, len: u32, access: u8, cap: u8) -> &mut Self {
        self.bytes(&[5])
            .addr(addr)
            .bytes(&[4])
            .bytes(&len.to_le_bytes())
            .bytes(&[access, cap])
    }
    pub(crate) fn new_map(&mut self, conf: u8, junk: u8) -> &mut Self {
        self.bytes(&[6, conf, junk])
    }
    /// A raw write of `buf` for [`fuzz_iotlb_msg`].
    pub(crate) fn write(&mut self, buf: &[u8]) -> &mut Self {
        let n = u8::try_from(buf.len()).unwrap();
        assert!(n <= MAX_RAW_WRITE);
        self.bytes(&[n]).bytes(buf)
    }
    pub(crate) fn build(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// The header of a [`fuzz_iotlb_msg`] input.
fn iotlb_header(head: u8, limit_index: u8, forbid_start: u64, forbid_len: u64) -> Seed {
    let mut s = Seed::new(&[head, limit_index]);
    s.addr(forbid_start).addr(forbid_len);
    s
}

/// Hand-made inputs of `interval_map`, one path each; the committed corpus
/// starts from these.
pub(crate) fn map_seed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let (ro, wo, rw) = (PERM_RO as u8, PERM_WO as u8, PERM_RW as u8);
    let max = u64::MAX;
    let mut out = Vec::new();

    // Limit 4: two neighbours, a translation across both, then one that
    // lacks write permission in the second, a deletion, a miss.
    let mut s = Seed::new(&[4]);
    s.add(0x1000, 0x1fff, 0x10_0000, rw)
        .add(0x2000, 0x2fff, 0x20_0000, ro)
        .translate(0x1800, 0x1000, ro, 8)
        .translate(0x1800, 0x1000, wo, 8)
        .query(0x1fff, 0x2000)
        .del(0x1000, 0x1000)
        .translate(0x1800, 4, ro, 8);
    out.push(("basic", s.build()));

    // Limit 2 with FLAG_RETIRE: the oldest entries make room.
    let mut s = Seed::new(&[2 | 8]);
    for i in 0..4u64 {
        s.add(i << 12, (i << 12) + 0xfff, 0x40_0000 + (i << 12), rw);
    }
    s.translate(0x2800, 0x1000, rw, 8);
    out.push(("retire", s.build()));

    // [0, u64::MAX] is split in two: ENOSPC with limit 1, two entries with
    // limit 2, then translations across the top and across the split.
    let mut s = Seed::new(&[1]);
    s.add(0, max, 0x1000, rw)
        .new_map(2, 0)
        .add(0, max, 0x1000, rw)
        .add(5, 5, 0, rw)
        .translate(max - 7, 16, rw, 8)
        .translate(max / 2 - 3, 8, ro, 8)
        .translate(max / 2 - 3, 8, ro, 1);
    out.push(("whole_space", s.build()));

    // Overlapping entries and equal starts: lookups prefer the lowest start,
    // then the oldest; deletion removes whole entries.
    let mut s = Seed::new(&[6]);
    s.add(0x100, 0x1ff, 0xa000, rw)
        .add(0x100, 0x17f, 0xb000, ro)
        .add(0x80, 0x400, 0xc000, wo)
        .add_at_hint(0, 0x10, 0xd000, rw)
        .query(0x150, 0x150)
        .query(max, 0x100)
        .translate(0x150, 0x200, rw, 8)
        .del(0x180, 0x180)
        .query(0, max);
    out.push(("overlap_ties", s.build()));

    // Fixed-array storage of 6 under limit 16: the seventh insertion is
    // ENOMEM; then the same with FLAG_RETIRE and junk in the storage.
    let mut s = Seed::new(&[7 | 16]);
    for i in 0..8u64 {
        s.add(i * 0x100, i * 0x100 + 0x7f, i, rw);
    }
    s.new_map(7 | 8 | 16, 5);
    for i in 0..8u64 {
        s.add(i * 0x100, i * 0x100 + 0x7f, i, rw);
    }
    out.push(("array_enomem", s.build()));

    // Limit 0 refuses with EINVAL, an inverted range with EFAULT first;
    // zero-length and zero-room translations.
    let mut s = Seed::new(&[0]);
    s.add(5, 5, 0, rw)
        .add(5, 4, 0, rw)
        .new_map(3 | 8, 3)
        .add(0x10, 0x1f, 0x100, rw)
        .translate(0x10, 0, rw, 0)
        .translate(0x10, 1, rw, 0)
        .translate(0x10, 1, 0, 8)
        .reset();
    out.push(("errors", s.build()));

    // Entries at both ends of the address space: a translation that wraps
    // past u64::MAX misses, as in C, since the wrapped range's end is
    // below its start.
    let mut s = Seed::new(&[5]);
    s.add(max - 15, max, 0x5000, rw)
        .add(0, 15, 0x6000, rw)
        .translate(max - 7, 16, rw, 8)
        .translate(max - 7, 8, rw, 8)
        .translate(max, u32::MAX, rw, 8)
        .query(max - 7, 7);
    out.push(("wrap_top", s.build()));
    out
}

/// Hand-made inputs of `iotlb_msg`, one path each; the committed corpus
/// starts from these.
pub(crate) fn iotlb_seed_inputs() -> Vec<(&'static str, Vec<u8>)> {
    const UPDATE: u8 = 2;
    const INVALIDATE: u8 = 3;
    let max = u64::MAX;
    let v1_update = |iova, size, uaddr, perm| c_msg(1, 0, iova, size, uaddr, perm, UPDATE);
    let mut out = Vec::new();

    // First format: two updates, a translation-visible invalidation.
    let mut s = iotlb_header(0, 3, 0x7000_0000, 0x1000);
    s.write(&c_msg(1, 0, 0x1000, 0x1000, 0x40_0000, 3, UPDATE))
        .write(&c_msg(1, 0, 0x2000, 0x1000, 0x50_0000, 1, UPDATE))
        .write(&c_msg(1, 0, 0x1800, 1, 0, 0, INVALIDATE));
    out.push(("v1_update_invalidate", s.build()));

    // Second format acked: an update, then an invalidation of size 0,
    // which wraps to the whole space and empties the IOTLB.
    let mut s = iotlb_header(1, 4, 0x7000_0000, 0x1000);
    s.write(&c_msg(2, 0, 0x1_0000, 0x1_0000, 0x60_0000, 3, UPDATE))
        .write(&c_msg(2, 0, 0x8000, 0x10, 0x70_0000, 2, UPDATE))
        .write(&c_msg(2, 0, 0, 0, 0, 0, INVALIDATE));
    out.push(("v2_invalidate_all", s.build()));

    // EINVAL: nothing, a short type, a first-format message one byte
    // short, an unknown format, an update of size 0. EFAULT: a miss and
    // batch messages, which vhost-net does not handle.
    let mut s = iotlb_header(0, 3, 0x7000_0000, 0x1000);
    let full = c_msg(1, 0, 0x1000, 0x1000, 0x40_0000, 3, UPDATE);
    s.write(&[])
        .write(&full[..3])
        .write(&full[..39])
        .write(&full[..40])
        .write(&c_msg(3, 0, 0x1000, 0x1000, 0x40_0000, 3, UPDATE))
        .write(&c_msg(1, 0, 0x1000, 0, 0x40_0000, 3, UPDATE))
        .write(&c_msg(1, 0, 0x1000, 0x1000, 0x40_0000, 3, 1))
        .write(&c_msg(2, 0, 0, 0, 0, 0, 5))
        .write(&c_msg(2, 0, 0, 0, 0, 0, 6));
    out.push(("short_and_bad", s.build()));

    // No IOTLB (ACCESS_PLATFORM not acked): EFAULT; then acked, then not.
    let mut s = iotlb_header(8, 2, 0, 0);
    let upd = c_msg(1, 0, 0x3000, 0x1000, 0x80_0000, 3, UPDATE);
    s.write(&upd)
        .write(&c_msg(1, 0, 0x3000, 0x1000, 0, 0, INVALIDATE))
        .bytes(&[FRAME_NEW_IOTLB])
        .write(&upd)
        .bytes(&[FRAME_NO_IOTLB])
        .write(&upd);
    out.push(("no_iotlb", s.build()));

    // The asid is read only with VHOST_BACKEND_F_IOTLB_ASID: then a
    // non-zero one is EFAULT and a write cut inside it EINVAL.
    let mut s = iotlb_header(1 | 4, 3, 0x7000_0000, 0x1000);
    let v2 = c_msg(2, 0, 0x4000, 0x1000, 0x90_0000, 3, UPDATE);
    s.write(&c_msg(2, 1, 0x4000, 0x1000, 0x90_0000, 3, UPDATE))
        .write(&v2)
        .write(&v2[..6])
        .bytes(&[FRAME_FEATURES, 1])
        .write(&c_msg(2, 1, 0x5000, 0x1000, 0x90_0000, 3, UPDATE));
    out.push(("asid", s.build()));

    // access_ok: the inaccessible range, the end of user space, a range
    // that overflows, and no permission (nothing checked).
    let mut s = iotlb_header(16, 5, 0x10_0000, 0x1000);
    s.write(&v1_update(0x1000, 0x100, 0x10_0800, 1))
        .write(&v1_update(0x1000, 0x100, 0x10_0800, 0))
        .write(&v1_update(0x2000, 0x200, max - 0xff, 2))
        .write(&v1_update(0x3000, 0x1_0000, TASK_SIZE_MAX - 0x8000, 3))
        .write(&v1_update(0x4000, 0x1000, 0x20_0000, 2));
    out.push(("access_ok", s.build()));

    // Limit 2: updates retire the oldest; an update that wraps the IOVA
    // space is refused by the map (EFAULT); structured messages with
    // boundary values.
    let mut s = iotlb_header(0, 1, 0x7000_0000, 0x1000);
    for i in 0..5u64 {
        s.write(&v1_update(i << 12, 0x1000, 0x100_0000 + (i << 12), 3));
    }
    s.write(&v1_update(max, 2, 0x100_0000, 3))
        .write(&v1_update(max, 1, 0x100_0000, 3))
        .bytes(&[FRAME_STRUCTURED, 1])
        .bytes(&[1, 0x10, 0, 0x20, 2, 0x40, 3, 0])
        .bytes(&[FRAME_STRUCTURED, 0])
        .bytes(&[6, 0, 4, 0, 0x10, 7, 0x20, 3, 3, 0]);
    out.push(("retire_and_bounds", s.build()));
    out
}
