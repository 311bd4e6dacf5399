//! Storages for the interval map: an unbounded `Vec` and a fixed array.

use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::{Slot, Storage};

/// Unbounded storage, like a `KVec` that never fails to grow.
#[derive(Default)]
pub(crate) struct VecStorage(pub(crate) Vec<Slot>);

impl Storage for VecStorage {
    fn slots(&self) -> &[Slot] {
        &self.0
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.0
    }
    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno> {
        self.0.insert(index, slot);
        Ok(())
    }
    fn remove(&mut self, index: usize) -> Slot {
        self.0.remove(index)
    }
}

/// Storage in a fixed array of `N` slots; inserting into a full array fails
/// with `ENOMEM`, which stands in for a failed allocation.
pub(crate) struct ArrayStorage<const N: usize> {
    buf: [Slot; N],
    len: usize,
}

impl<const N: usize> Default for ArrayStorage<N> {
    fn default() -> Self {
        ArrayStorage {
            buf: [Slot::default(); N],
            len: 0,
        }
    }
}

impl<const N: usize> Storage for ArrayStorage<N> {
    fn slots(&self) -> &[Slot] {
        &self.buf[..self.len]
    }
    fn slots_mut(&mut self) -> &mut [Slot] {
        &mut self.buf[..self.len]
    }
    fn insert(&mut self, index: usize, slot: Slot) -> Result<(), Errno> {
        if self.len == N {
            return Err(Errno::ENOMEM);
        }
        assert!(index <= self.len, "map inserted past the end");
        self.buf.copy_within(index..self.len, index + 1);
        self.buf[index] = slot;
        self.len += 1;
        Ok(())
    }
    fn remove(&mut self, index: usize) -> Slot {
        assert!(index < self.len, "map removed past the end");
        let slot = self.buf[index];
        self.buf.copy_within(index + 1..self.len, index);
        self.len -= 1;
        slot
    }
}
