// SPDX-License-Identifier: GPL-2.0

//! Marks the uapi structures of `vcore::uapi` as safe to copy from and to
//! userspace.

use crate::vcore::uapi::{VhostMemory, VhostMemoryRegion, VhostVringAddr};
use crate::vcore::uapi::{VhostVringFile, VhostVringState};
use kernel::types::{AsBytes, FromBytes};

macro_rules! plain_uapi {
    ($($t:ty),*) => {$(
        // SAFETY: `$t` is `#[repr(C)]`, made only of integers, with no
        // padding (its size is asserted in `vcore::uapi` to equal the sum of
        // its fields), so every bit pattern is valid and every byte is
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
    VhostMemoryRegion
);
