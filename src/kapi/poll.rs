// SPDX-License-Identifier: GPL-2.0

//! Polling files: the kick eventfds and the backend socket.

use core::ffi::c_void;

extern "C" {
    fn vhost_net_rs_poll_mask(file: *mut c_void) -> u32;
}

/// `EPOLLERR` of `include/uapi/linux/eventpoll.h`.
pub(crate) const EPOLLERR: u32 = 0x8;

/// The events `file` reports now (`vfs_poll` without a poll table).
///
/// # Safety
///
/// `file` must be a valid file for the duration of the call.
pub(crate) unsafe fn poll_mask(file: *mut c_void) -> u32 {
    // SAFETY: The caller guarantees `file` is valid.
    unsafe { vhost_net_rs_poll_mask(file) }
}
