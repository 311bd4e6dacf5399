// SPDX-License-Identifier: GPL-2.0

//! Guest memory maps: the memory table (`VHOST_SET_MEM_TABLE`) and the
//! device IOTLB, both [`IntervalMap`]s over a kernel vector.

use crate::kapi::{errno, kvec};
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{IntervalMap, Slot, Storage, FLAG_RETIRE};
use kernel::prelude::*;

/// The kernel storage of an interval map.
pub(crate) struct KStorage {
    slots: KVec<Slot>,
}

impl Storage for KStorage {
    fn slots(&self) -> &[Slot] {
        self.slots.as_slice()
    }

    fn slots_mut(&mut self) -> &mut [Slot] {
        self.slots.as_mut_slice()
    }

    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno> {
        self.slots
            .push(slot, GFP_KERNEL)
            .map_err(|_| Errno::ENOMEM)?;
        self.slots.as_mut_slice()[index..].rotate_right(1);
        Ok(())
    }

    fn remove(&mut self, index: usize) -> Slot {
        kvec::remove(&mut self.slots, index)
    }
}

/// A guest memory map as C's `vhost_iotlb_alloc(max_iotlb_entries,
/// VHOST_IOTLB_FLAG_RETIRE)` creates it.
pub(crate) type GuestMap = IntervalMap<KStorage>;

/// A new, empty map with room for `reserve` entries.
pub(crate) fn new_map(reserve: usize) -> Result<GuestMap> {
    let slots = KVec::with_capacity(reserve, GFP_KERNEL).map_err(|_| errno(Errno::ENOMEM))?;
    Ok(IntervalMap::new(
        KStorage { slots },
        crate::params::max_iotlb_entries(),
        FLAG_RETIRE,
    ))
}
