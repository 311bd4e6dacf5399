// SPDX-License-Identifier: GPL-2.0

//! A borrowed `struct iov_iter`, as `read_iter`/`write_iter` receive it.

use super::shim::vhost_net_rs_iov_iter_count;
use core::ffi::c_void;
use core::marker::PhantomData;
use kernel::bindings;

/// An iterator the VFS lent us for the duration of one call (`'a`).
///
/// # Invariants
///
/// `ptr` is a valid `iov_iter` that nobody else uses during `'a`.
pub(crate) struct IovIter<'a> {
    ptr: *mut bindings::iov_iter,
    _call: PhantomData<&'a mut bindings::iov_iter>,
}

impl IovIter<'_> {
    /// Wraps `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid and exclusively ours for the returned lifetime.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::iov_iter) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            ptr,
            _call: PhantomData,
        }
    }

    /// Bytes left.
    pub(crate) fn count(&self) -> usize {
        // SAFETY: By the type invariant, `ptr` is valid.
        unsafe { vhost_net_rs_iov_iter_count(self.ptr) }
    }

    /// Copies `data` out, returning how many bytes were copied.
    pub(crate) fn copy_to(&mut self, data: &[u8]) -> usize {
        // SAFETY: `data` is valid for reads of its length; `ptr` is valid.
        unsafe { bindings::_copy_to_iter(data.as_ptr().cast::<c_void>(), data.len(), self.ptr) }
    }

    /// Copies into `buf`, returning how many bytes were copied.
    pub(crate) fn copy_from(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for writes of its length; `ptr` is valid.
        unsafe { bindings::_copy_from_iter(buf.as_mut_ptr().cast::<c_void>(), buf.len(), self.ptr) }
    }

    /// Skips `n` bytes.
    pub(crate) fn advance(&mut self, n: usize) {
        // SAFETY: `ptr` is valid; advancing past the end stops at the end.
        unsafe { bindings::iov_iter_advance(self.ptr, n) };
    }
}
