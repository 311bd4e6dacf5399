// SPDX-License-Identifier: GPL-2.0

//! The interval map behind both the memory table and the device IOTLB.
//!
//! It reproduces the observable behaviour of C's `struct vhost_iotlb`
//! (drivers/vhost/iotlb.c on top of an augmented rbtree interval tree):
//!
//! - entries may overlap, and lookups return the overlapping entry with the
//!   lowest start, ties going to the entry inserted first (the rbtree inserts
//!   an equal key to the right of the existing ones);
//! - deleting a range removes whole entries that overlap it, never splitting;
//! - a map has an entry limit, and with [`FLAG_RETIRE`] a full map drops its
//!   oldest entry to make room instead of failing.
//!
//! Instead of a tree, entries live in a sorted array with a running maximum
//! of `last`, so a lookup is one binary search while changes cost O(n); maps
//! hold at most a few thousand entries and change far less often than they
//! are read. The array is provided by the caller through [`Storage`], since
//! the core has no allocator.

use super::super::errno::Errno;

/// Permission: the device may read through the entry (`VHOST_MAP_RO`).
pub(crate) const PERM_RO: u32 = 0x1;
/// Permission: the device may write through the entry (`VHOST_MAP_WO`).
pub(crate) const PERM_WO: u32 = 0x2;
/// Permission: read and write (`VHOST_MAP_RW`).
pub(crate) const PERM_RW: u32 = 0x3;

/// Map flag: when full, replace the oldest entry (`VHOST_IOTLB_FLAG_RETIRE`).
pub(crate) const FLAG_RETIRE: u32 = 0x1;

/// One mapping of the guest range `[start, last]` to user address `addr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// First guest address covered.
    pub(crate) start: u64,
    /// Last guest address covered (inclusive).
    pub(crate) last: u64,
    /// User address that `start` maps to.
    pub(crate) addr: u64,
    /// `PERM_*` bits, stored as given.
    pub(crate) perm: u32,
    /// Insertion stamp: larger means inserted later.
    pub(crate) seq: u64,
}

impl Entry {
    /// The entry's length as C stores it (`last - start + 1`).
    ///
    /// The map never holds `[0, u64::MAX]` (it is split in two), so the result
    /// is never the wrapped 0.
    pub(crate) const fn size(&self) -> u64 {
        self.last.wrapping_sub(self.start).wrapping_add(1)
    }

    /// Whether the entry intersects `[start, last]`, with C's two conditions.
    ///
    /// When `start > last` (a wrapped range) this is still what the C
    /// interval tree tests, which is why the two halves are not reordered.
    const fn overlaps(&self, start: u64, last: u64) -> bool {
        self.start <= last && start <= self.last
    }
}

/// An [`Entry`] with the bookkeeping that makes lookups a binary search.
///
/// The kernel glue only stores and moves these; their fields are private.
/// The default value is a filler for fixed-size storage and is never looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The mapping.
    entry: Entry,
    /// The largest `last` among this slot and all slots before it.
    max_last: u64,
}

impl Slot {
    /// The slot's mapping.
    pub(crate) const fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// Growable array of slots, supplied by the user of the map.
///
/// The map only calls `insert` with `index <= len` and `remove` with
/// `index < len`, where `len` is the length of [`Storage::slots`].
pub(crate) trait Storage {
    /// The stored slots, in order.
    fn slots(&self) -> &[Slot];
    /// The stored slots, mutably, so the map can update its bookkeeping.
    fn slots_mut(&mut self) -> &mut [Slot];
    /// Inserts `slot` at `index`, shifting later slots up.
    ///
    /// Fails with `ENOMEM` when there is no room; the storage is then unchanged.
    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno>;
    /// Removes and returns the slot at `index`, shifting later slots down.
    fn remove(&mut self, index: usize) -> Slot;
}

/// One contiguous piece of a translated guest range (an iovec).
///
/// `#[repr(C)]` with the layout of `struct iovec` on 64-bit, so the kernel
/// can hand a slice of pieces to a socket without copying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Piece {
    /// User address of the piece.
    pub(crate) addr: u64,
    /// Length in bytes.
    pub(crate) len: u64,
}

/// Why [`IntervalMap::translate`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TranslateError {
    /// No entry covers guest address `addr`.
    ///
    /// With the memory table C returns `EFAULT`; with a device IOTLB it
    /// returns `EAGAIN` and queues an IOTLB miss for `addr`.
    Miss {
        /// First guest address that has no mapping.
        addr: u64,
    },
    /// The covering entry lacks the requested permission (`EPERM`).
    Perm,
    /// The range needs more pieces than the caller has room for (`ENOBUFS`).
    NoBufs,
}

impl TranslateError {
    /// The errno `translate_desc` returns; `device_iotlb` tells whether the
    /// map is the device IOTLB rather than the memory table.
    pub(crate) const fn errno(self, device_iotlb: bool) -> Errno {
        match self {
            TranslateError::Miss { .. } if device_iotlb => Errno::EAGAIN,
            TranslateError::Miss { .. } => Errno::EFAULT,
            TranslateError::Perm => Errno::EPERM,
            TranslateError::NoBufs => Errno::ENOBUFS,
        }
    }
}

/// An interval map with the semantics of C's `struct vhost_iotlb`.
///
/// # Invariants
///
/// - The slots are sorted by `(entry.start, entry.seq)`, and all `seq` values
///   are distinct and smaller than `next_seq`.
/// - `slots[i].max_last` is the maximum of `entry.last` over `slots[..=i]`,
///   so it never decreases along the array.
/// - No entry is `[0, u64::MAX]`.
/// - The number of slots is at most `limit` (when `limit` is not 0).
pub(crate) struct IntervalMap<S: Storage> {
    /// The sorted slots.
    storage: S,
    /// Maximum number of entries (C's `iotlb->limit`); 0 refuses every insertion.
    limit: u32,
    /// `FLAG_*` bits.
    flags: u32,
    /// The stamp the next inserted entry gets.
    next_seq: u64,
}

impl<S: Storage> IntervalMap<S> {
    /// Creates a map over `storage` like `vhost_iotlb_init(limit, flags)`.
    ///
    /// Anything already in `storage` is discarded so the invariants hold.
    pub(crate) fn new(mut storage: S, limit: u32, flags: u32) -> Self {
        while let Some(last) = storage.slots().len().checked_sub(1) {
            storage.remove(last);
        }
        IntervalMap {
            storage,
            limit,
            flags,
            next_seq: 0,
        }
    }

    /// Number of entries (C's `nmaps`).
    pub(crate) fn len(&self) -> usize {
        self.storage.slots().len()
    }

    /// Whether the map has no entry.
    #[allow(
        dead_code,
        reason = "the host tests check the map against a model with it"
    )]
    pub(crate) fn is_empty(&self) -> bool {
        self.storage.slots().is_empty()
    }

    /// The entry limit given at creation.
    #[allow(
        dead_code,
        reason = "the host tests check the map against a model with it"
    )]
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// The flags given at creation.
    #[allow(
        dead_code,
        reason = "the host tests check the map against a model with it"
    )]
    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// The entry at `index` in lookup order, if any.
    pub(crate) fn get(&self, index: usize) -> Option<&Entry> {
        self.storage.slots().get(index).map(Slot::entry)
    }

    /// All entries in lookup order (by start, then insertion).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.storage.slots().iter().map(Slot::entry)
    }

    /// Adds a mapping of `[start, last]` to `addr`, like `vhost_iotlb_add_range`.
    ///
    /// Errors, in C's order: `EFAULT` if `last < start`, `EINVAL` if the limit
    /// is 0, `ENOSPC` if the map is full and does not retire, `ENOMEM` if the
    /// storage cannot grow. The range `[0, u64::MAX]` is stored as two halves
    /// (its size would not fit in 64 bits); the halves need two free entries
    /// unless the map retires, and if the second half fails the first one
    /// stays, as in C.
    pub(crate) fn add_range(
        &mut self,
        start: u64,
        last: u64,
        addr: u64,
        perm: u32,
    ) -> Result<(), Errno> {
        if last < start {
            return Err(Errno::EFAULT);
        }
        if self.limit == 0 {
            return Err(Errno::EINVAL);
        }
        let (mut start, mut addr) = (start, addr);
        if start == 0 && last == u64::MAX {
            let mid = last / 2;
            if self.limit < 2 {
                return Err(Errno::ENOSPC);
            }
            if self.flags & FLAG_RETIRE == 0 && self.len() as u64 > u64::from(self.limit - 2) {
                return Err(Errno::ENOSPC);
            }
            self.add_one(0, mid, addr, perm)?;
            addr = addr.wrapping_add(mid + 1);
            start = mid + 1;
        }
        self.add_one(start, last, addr, perm)
    }

    /// Inserts one entry that is known to be valid, retiring if needed.
    fn add_one(&mut self, start: u64, last: u64, addr: u64, perm: u32) -> Result<(), Errno> {
        let mut dirty_from = usize::MAX;
        if self.len() as u64 >= u64::from(self.limit) {
            if self.flags & FLAG_RETIRE == 0 {
                return Err(Errno::ENOSPC);
            }
            // The list in C is in insertion order; its head is the oldest entry.
            if let Some(oldest) = self.oldest_index() {
                self.storage.remove(oldest);
                dirty_from = oldest;
            }
        }
        let entry = Entry {
            start,
            last,
            addr,
            perm,
            seq: self.next_seq,
        };
        // An equal start goes after the existing ones: it was inserted later.
        let at = self
            .storage
            .slots()
            .partition_point(|s| s.entry.start <= start);
        let inserted = self.storage.insert(
            at,
            Slot {
                entry,
                max_last: last,
            },
        );
        if inserted.is_ok() {
            // A u64 stamp cannot wrap within the life of a device.
            self.next_seq = self.next_seq.wrapping_add(1);
            dirty_from = dirty_from.min(at);
        }
        self.refresh_from(dirty_from);
        inserted.map_err(|_| Errno::ENOMEM)
    }

    /// Index of the entry inserted first.
    fn oldest_index(&self) -> Option<usize> {
        self.storage
            .slots()
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.entry.seq)
            .map(|(i, _)| i)
    }

    /// Recomputes the running maximum of `last` from `index` on.
    fn refresh_from(&mut self, index: usize) {
        let slots = self.storage.slots_mut();
        if index >= slots.len() {
            return;
        }
        let mut max = match index.checked_sub(1) {
            Some(prev) => slots[prev].max_last,
            None => 0,
        };
        for slot in &mut slots[index..] {
            max = max.max(slot.entry.last);
            slot.max_last = max;
        }
    }

    /// Removes every entry overlapping `[start, last]`, like
    /// `vhost_iotlb_del_range` (whole entries; nothing is split).
    pub(crate) fn del_range(&mut self, start: u64, last: u64) {
        let Some(first) = self.first(start, last).map(|(i, _)| i) else {
            return;
        };
        // Compact the survivors forward, then drop the tail from the end so
        // that every removal is cheap whatever the storage.
        let slots = self.storage.slots_mut();
        let mut kept = first;
        for i in first..slots.len() {
            if !slots[i].entry.overlaps(start, last) {
                slots[kept] = slots[i];
                kept += 1;
            }
        }
        while self.storage.slots().len() > kept {
            let tail = self.storage.slots().len() - 1;
            self.storage.remove(tail);
        }
        self.refresh_from(first);
    }

    /// Removes every entry, like `vhost_iotlb_reset`.
    #[allow(
        dead_code,
        reason = "the host tests check the map against a model with it; the kernel drops a map instead"
    )]
    pub(crate) fn reset(&mut self) {
        self.del_range(0, u64::MAX);
    }

    /// The entry `vhost_iotlb_itree_first(start, last)` returns: the first
    /// overlapping entry in lookup order, with its index.
    ///
    /// This is one binary search: the running maximum of `last` finds the
    /// first entry that ends at or after `start`; every earlier entry ends
    /// before it, and every later one starts no earlier, so if that entry does
    /// not start by `last` no entry overlaps.
    pub(crate) fn first(&self, start: u64, last: u64) -> Option<(usize, &Entry)> {
        let slots = self.storage.slots();
        let i = slots.partition_point(|s| s.max_last < start);
        let slot = slots.get(i)?;
        if slot.entry.start <= last {
            Some((i, &slot.entry))
        } else {
            None
        }
    }

    /// The entry `vhost_iotlb_itree_next` returns after the one at `index`:
    /// the next overlapping entry in lookup order.
    ///
    /// This scans forward, stopping at the first entry starting after `last`.
    #[allow(
        dead_code,
        reason = "C's vhost_iotlb_itree_next, which the host tests check against a model; the kernel only translates"
    )]
    pub(crate) fn next(&self, index: usize, start: u64, last: u64) -> Option<(usize, &Entry)> {
        let slots = self.storage.slots();
        let from = index.checked_add(1)?;
        for (i, slot) in slots.iter().enumerate().skip(from) {
            if slot.entry.start > last {
                return None;
            }
            if start <= slot.entry.last {
                return Some((i, &slot.entry));
            }
        }
        None
    }

    /// Translates the guest range of `len` bytes at `addr` into user pieces
    /// stored in `out`, like `translate_desc`; returns how many were stored.
    ///
    /// Every piece needs an entry with a `access` bit in its permission.
    /// Checks, in C's order for each piece: no room left in `out`, no entry
    /// covering the current address, missing permission. A `len` of 0 gives
    /// no piece and no error. Arithmetic wraps like C's u64 arithmetic, so a
    /// range running past `u64::MAX` behaves as it does in C.
    // Inline: the ring's translations inline it (`GuestXlate::translate`).
    #[inline]
    pub(crate) fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError> {
        let total = u64::from(len);
        let last = addr.wrapping_add(total).wrapping_sub(1);
        let mut addr = addr;
        let mut done: u64 = 0;
        let mut count = 0;
        while total > done {
            let Some(piece) = out.get_mut(count) else {
                return Err(TranslateError::NoBufs);
            };
            let entry = match self.first(addr, last) {
                Some((_, e)) if e.start <= addr => e,
                _ => return Err(TranslateError::Miss { addr }),
            };
            if entry.perm & access == 0 {
                return Err(TranslateError::Perm);
            }
            let size = entry.size().wrapping_sub(addr).wrapping_add(entry.start);
            *piece = Piece {
                addr: entry.addr.wrapping_add(addr).wrapping_sub(entry.start),
                len: (total - done).min(size),
            };
            done = done.wrapping_add(size);
            addr = addr.wrapping_add(size);
            count += 1;
        }
        Ok(count)
    }
}
