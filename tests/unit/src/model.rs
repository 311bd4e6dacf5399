//! A naive model of C's `struct vhost_iotlb`, written the most obvious way.
//!
//! Entries are kept in insertion order in a `Vec` (C's `iotlb->list`) and
//! every lookup scans all of them; the order of the interval tree is
//! recomputed on each query as "lowest start, then earliest inserted".

use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{Entry, Piece, TranslateError, FLAG_RETIRE};

/// The model map.
pub(crate) struct Model {
    /// Entries in insertion order.
    pub(crate) list: Vec<Entry>,
    limit: u32,
    flags: u32,
    /// How many entries the allocator can hold before `kmalloc` "fails".
    capacity: usize,
    seq: u64,
}

fn overlaps(e: &Entry, start: u64, last: u64) -> bool {
    e.start <= last && start <= e.last
}

impl Model {
    pub(crate) fn new(limit: u32, flags: u32, capacity: usize) -> Self {
        Model {
            list: Vec::new(),
            limit,
            flags,
            capacity,
            seq: 0,
        }
    }

    /// `vhost_iotlb_add_range_ctx`, line by line.
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
        let mut start = start;
        let mut addr = addr;
        if start == 0 && last == u64::MAX {
            let mid = last / 2;
            if self.limit < 2 {
                return Err(Errno::ENOSPC);
            }
            if self.flags & FLAG_RETIRE == 0 && self.list.len() as u64 > self.limit as u64 - 2 {
                return Err(Errno::ENOSPC);
            }
            self.add_range(start, mid, addr, perm)?;
            addr = addr.wrapping_add(mid + 1);
            start = mid + 1;
        }
        if self.list.len() as u64 >= self.limit as u64 {
            if self.flags & FLAG_RETIRE != 0 {
                self.list.remove(0);
            } else {
                return Err(Errno::ENOSPC);
            }
        } else if self.list.len() >= self.capacity {
            return Err(Errno::ENOMEM);
        }
        self.list.push(Entry {
            start,
            last,
            addr,
            perm,
            seq: self.seq,
        });
        self.seq += 1;
        Ok(())
    }

    /// `vhost_iotlb_del_range`: remove `first()` until there is none.
    pub(crate) fn del_range(&mut self, start: u64, last: u64) {
        while let Some(e) = self.first(start, last) {
            self.list.retain(|x| x.seq != e.seq);
        }
    }

    /// All entries in the interval tree's in-order.
    pub(crate) fn sorted(&self) -> Vec<Entry> {
        let mut v = self.list.clone();
        v.sort_by_key(|e| (e.start, e.seq));
        v
    }

    /// `vhost_iotlb_itree_first`.
    pub(crate) fn first(&self, start: u64, last: u64) -> Option<Entry> {
        self.list
            .iter()
            .filter(|e| overlaps(e, start, last))
            .min_by_key(|e| (e.start, e.seq))
            .copied()
    }

    /// `vhost_iotlb_itree_next` after `prev`.
    pub(crate) fn next(&self, prev: &Entry, start: u64, last: u64) -> Option<Entry> {
        self.list
            .iter()
            .filter(|e| overlaps(e, start, last) && (e.start, e.seq) > (prev.start, prev.seq))
            .min_by_key(|e| (e.start, e.seq))
            .copied()
    }

    /// `translate_desc`, with the same u64 wrap-around.
    pub(crate) fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        cap: usize,
    ) -> Result<Vec<Piece>, TranslateError> {
        let mut out = Vec::new();
        let last = addr.wrapping_add(len as u64).wrapping_sub(1);
        let mut addr = addr;
        let mut s: u64 = 0;
        while (len as u64) > s {
            if out.len() >= cap {
                return Err(TranslateError::NoBufs);
            }
            let map = match self.first(addr, last) {
                None => return Err(TranslateError::Miss { addr }),
                Some(m) if m.start > addr => return Err(TranslateError::Miss { addr }),
                Some(m) => m,
            };
            if map.perm & access == 0 {
                return Err(TranslateError::Perm);
            }
            let map_size = map.last.wrapping_sub(map.start).wrapping_add(1);
            let size = map_size.wrapping_sub(addr).wrapping_add(map.start);
            out.push(Piece {
                addr: map.addr.wrapping_add(addr).wrapping_sub(map.start),
                len: std::cmp::min(len as u64 - s, size),
            });
            s = s.wrapping_add(size);
            addr = addr.wrapping_add(size);
        }
        Ok(out)
    }
}
