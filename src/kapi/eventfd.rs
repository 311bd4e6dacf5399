// SPDX-License-Identifier: GPL-2.0

//! Eventfd references: the call/err/log contexts and the kick file.

use super::poll::PollFile;
use kernel::bindings::eventfd_signal_mask;
use kernel::bindings::{self, eventfd_ctx_fdget, eventfd_ctx_put, eventfd_fget, fput};
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A counted reference to an eventfd context: what `VHOST_SET_VRING_CALL`,
/// `VHOST_SET_VRING_ERR` and `VHOST_SET_LOG_FD` install.
///
/// # Invariants
///
/// `ptr` is a valid eventfd context on which we own one reference.
pub(crate) struct EventFdCtx {
    ptr: *mut bindings::eventfd_ctx,
}

// SAFETY: eventfd contexts are reference counted and may be signalled and
// released from any task.
unsafe impl Send for EventFdCtx {}
// SAFETY: `signal` may be called concurrently (eventfd locks internally).
unsafe impl Sync for EventFdCtx {}

impl EventFdCtx {
    /// Adds one to the counter and wakes its waiters.
    pub(crate) fn signal(&self) {
        // SAFETY: By the type invariant, `ptr` is valid.
        unsafe { eventfd_signal_mask(self.ptr, 0) };
    }

    /// The context behind file descriptor `fd` of the calling process:
    /// `EBADF` if `fd` is not open, `EINVAL` if it is not an eventfd.
    pub(crate) fn fdget(fd: i32) -> Result<Self> {
        // SAFETY: Any value of `fd` is acceptable.
        let ptr = from_err_ptr(unsafe { eventfd_ctx_fdget(fd) })?;
        // INVARIANT: `eventfd_ctx_fdget` returned a counted reference.
        Ok(Self { ptr })
    }
}

impl Drop for EventFdCtx {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { eventfd_ctx_put(self.ptr) };
    }
}

/// A counted reference to an eventfd's `struct file`: the kick, which the
/// device polls (`VHOST_SET_VRING_KICK`).
///
/// # Invariants
///
/// `ptr` is a valid eventfd file on which we own one reference.
pub(crate) struct EventFdFile {
    ptr: *mut bindings::file,
}

// SAFETY: File references may be moved and dropped from any task.
unsafe impl Send for EventFdFile {}
// SAFETY: Shared access only compares or polls, which is thread safe.
unsafe impl Sync for EventFdFile {}

impl EventFdFile {
    /// The eventfd file behind `fd`: `EBADF` or `EINVAL` like the C module.
    pub(crate) fn fget(fd: i32) -> Result<Self> {
        // SAFETY: Any value of `fd` is acceptable.
        let ptr = from_err_ptr(unsafe { eventfd_fget(fd) })?;
        // INVARIANT: `eventfd_fget` returned a counted reference.
        Ok(Self { ptr })
    }

    /// Whether both refer to the same open file.
    pub(crate) fn same_file(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl Drop for EventFdFile {
    fn drop(&mut self) {
        // SAFETY: By the type invariant we own one reference.
        unsafe { fput(self.ptr) };
    }
}

// SAFETY: `ptr` is a valid file on which we own a reference (type
// invariant), so it is valid for as long as `self` is borrowed.
unsafe impl PollFile for EventFdFile {
    fn file_ptr(&self) -> *mut bindings::file {
        self.ptr
    }
}
