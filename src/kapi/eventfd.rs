// SPDX-License-Identifier: GPL-2.0

//! Eventfd references: the call/err/log contexts and the kick file.

use core::ffi::c_void;
use kernel::bindings;
use kernel::error::from_err_ptr;
use kernel::prelude::*;

extern "C" {
    fn eventfd_ctx_fdget(fd: i32) -> *mut bindings::eventfd_ctx;
    fn eventfd_ctx_put(ctx: *mut bindings::eventfd_ctx);
    fn eventfd_signal_mask(ctx: *mut bindings::eventfd_ctx, mask: u32);
    // `struct file` is opaque here (bindgen's layout is not FFI-safe).
    fn eventfd_fget(fd: i32) -> *mut c_void;
    fn fput(file: *mut c_void);
}

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
    ptr: *mut c_void,
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

    /// The file, for polling.
    pub(crate) fn as_ptr(&self) -> *mut c_void {
        self.ptr
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
