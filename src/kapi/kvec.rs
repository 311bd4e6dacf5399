// SPDX-License-Identifier: GPL-2.0

//! What the 6.12 `KVec` lacks.

use kernel::prelude::*;

/// Removes and returns `v[index]`, shifting the rest down. Panics unless
/// `index < v.len()`.
#[cfg(vhost_linux = "6.12")]
pub(crate) fn remove<T: Copy>(v: &mut KVec<T>, index: usize) -> T {
    // The 6.12 `KVec` has no `remove`.
    let len = v.len();
    // Panics unless `index < len` (slice and rotation bounds), so `len >= 1`
    // below.
    v.as_mut_slice()[index..].rotate_left(1);
    let item = v.as_slice()[len - 1];
    // SAFETY: `len - 1 < len`, and `T: Copy` has no destructor, so the
    // element left past the new length needs no drop.
    unsafe { v.set_len(len - 1) };
    item
}

/// Removes and returns `v[index]`, shifting the rest down. Panics unless
/// `index < v.len()`.
#[cfg(not(vhost_linux = "6.12"))]
pub(crate) fn remove<T: Copy>(v: &mut KVec<T>, index: usize) -> T {
    match v.remove(index) {
        Ok(item) => item,
        Err(_) => panic!("kvec::remove: index out of bounds"),
    }
}
