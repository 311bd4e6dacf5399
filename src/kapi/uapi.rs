// SPDX-License-Identifier: GPL-2.0

//! Marks the plain structures of `vcore` that cross the user boundary as
//! safe to copy from and to user memory (`kernel::types::{FromBytes,
//! AsBytes}`), and views slices of them as bytes.

use super::version::{AsBytes, FromBytes};
use crate::vcore::ring::desc::UsedElem;
use crate::vcore::uapi::{VhostMemory, VhostMemoryRegion, VhostVringAddr};
use crate::vcore::uapi::{VhostVringFile, VhostVringState};

macro_rules! plain_uapi {
    ($($t:ty),*) => {$(
        // SAFETY: `$t` is `#[repr(C)]`, made only of integers, with no
        // padding (its size is asserted in `vcore` to equal the sum of its
        // fields), so every bit pattern is valid and every byte is
        // initialised.
        unsafe impl FromBytes for $t {}
        // SAFETY: See above.
        unsafe impl AsBytes for $t {}
    )*};
}

plain_uapi!(
    VhostVringState,
    VhostVringFile,
    VhostVringAddr,
    VhostMemory,
    VhostMemoryRegion,
    UsedElem
);

/// The bytes of `items`, in memory order (native byte order).
pub(crate) fn slice_as_bytes<T: AsBytes>(items: &[T]) -> &[u8] {
    // SAFETY: `T: AsBytes` has no padding and every byte initialised, so
    // the slice is `size_of_val(items)` initialised bytes, valid for reads
    // as long as the borrow; `u8` has alignment 1.
    unsafe {
        core::slice::from_raw_parts(items.as_ptr().cast::<u8>(), core::mem::size_of_val(items))
    }
}
