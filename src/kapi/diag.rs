// SPDX-License-Identifier: GPL-2.0

//! Diagnostics: the rate-limited dynamic-debug log of ring errors (C's
//! `vq_err`), the boot clock their times are taken from, `seq_file`
//! output for fdinfo, the module's version, and which C `vhost_net` holds
//! the misc minor.
//!
//! The kernel crate's `pr_debug!` is compiled out unless the kernel is
//! built with debug assertions, and is not a dynamic-debug call site; the
//! shim's one `pr_debug` call is (src/shim/shim.c), so
//! `echo 'module vhost_net_rs +p' > /sys/kernel/debug/dynamic_debug/control`
//! turns the messages on, as for C's `vhost` module. Formatting and the
//! rate limit are here, in Rust.

use super::shim::vhost_net_rs_version_str;
use super::shim::{vhost_net_rs_boottime_ns, vhost_net_rs_pr_debug, vhost_net_rs_seq_write};
use crate::vcore::diag::{RateLimit, Reason};
use crate::vcore::errno::Errno;
use core::ffi::CStr;
use core::fmt::{self, Write};
use core::marker::PhantomData;
use kernel::bindings;

/// Nanoseconds since boot (`CLOCK_BOOTTIME`).
pub(crate) fn boottime_ns() -> u64 {
    // SAFETY: Reading the clock has no preconditions.
    unsafe { vhost_net_rs_boottime_ns() }
}

/// The limit shared by every message of the module.
static LIMIT: RateLimit = RateLimit::new();

/// A message being formatted, NUL-terminated, cut at its room.
struct LineBuf {
    buf: [u8; 192],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Leave room for the NUL; drop what does not fit.
        let room = self.buf.len() - 1 - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Logs, through dynamic debug and rate-limited, why ring `index` failed
/// (C's `vq_err` message for `reason`), with the errno when there is one.
#[cold]
#[inline(never)]
pub(crate) fn vq_err(index: usize, reason: Reason, errno: Option<Errno>, now_ns: u64) {
    let Some(missed) = LIMIT.allow(now_ns) else {
        return;
    };
    let mut line = LineBuf {
        buf: [0; 192],
        len: 0,
    };
    if missed != 0 {
        let _ = write!(line, "{missed} messages suppressed; ");
    }
    let _ = write!(line, "vq{index}: {}", reason.message());
    if let Some(e) = errno {
        let _ = write!(line, " (error -{})", e.0);
    }
    let _ = write!(line, " [{}]", reason.name());
    // Interior NULs cannot come from these strings; the buffer ends in
    // one (`write_str` keeps its last byte 0).
    // SAFETY: `line.buf` is NUL-terminated and lives across the call.
    unsafe { vhost_net_rs_pr_debug(line.buf.as_ptr().cast()) };
}

/// The `seq_file` of a `show_fdinfo` call, as a `fmt::Write` sink.
///
/// # Invariants
///
/// `m` is the `seq_file` the VFS passed to the running `show_fdinfo`,
/// which outlasts `'a`.
pub(crate) struct SeqFile<'a> {
    m: *mut bindings::seq_file,
    _call: PhantomData<&'a mut ()>,
}

impl SeqFile<'_> {
    /// Wraps the argument of a `show_fdinfo` file operation.
    ///
    /// # Safety
    ///
    /// `m` is what the VFS passed to the running `show_fdinfo`, which
    /// lasts at least as long as the returned value.
    pub(super) unsafe fn from_raw(m: *mut bindings::seq_file) -> Self {
        // INVARIANT: Guaranteed by the caller.
        Self {
            m,
            _call: PhantomData,
        }
    }
}

impl Write for SeqFile<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: `m` is the running call's `seq_file` (type invariant);
        // `s` is valid for its length. An overflow is the `seq_file`'s to
        // handle (it retries with a larger buffer).
        unsafe { vhost_net_rs_seq_write(self.m, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// The module's version (modinfo's `version`: Kbuild's
/// `VHOST_NET_RS_VERSION`, the `VERSION` file or `git describe`).
pub(crate) fn version() -> &'static str {
    // SAFETY: The shim returns its constant, NUL-terminated version
    // array, which lives as long as the module.
    let v = unsafe { CStr::from_ptr(vhost_net_rs_version_str().cast()) };
    v.to_str().unwrap_or("(not UTF-8)")
}

/// What the kernel has of the C `vhost_net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CModule {
    /// Loaded as a module (`/sys/module/vhost_net/refcnt` exists).
    Loaded,
    /// Built into the kernel (`/sys/module/vhost_net` exists, without
    /// `refcnt`).
    BuiltIn,
    /// Neither.
    Absent,
}

/// `O_RDONLY`.
const O_RDONLY: i32 = 0;

/// Whether `path` (NUL-terminated) can be opened for reading.
fn path_exists(path: &CStr) -> bool {
    // SAFETY: `path` is a NUL-terminated string; `filp_open` has no other
    // precondition.
    let f = unsafe { bindings::filp_open(path.as_ptr().cast(), O_RDONLY, 0) };
    match kernel::error::from_err_ptr(f) {
        Ok(f) if !f.is_null() => {
            // SAFETY: `f` was opened above and is closed once.
            unsafe { bindings::filp_close(f, core::ptr::null_mut()) };
            true
        }
        _ => false,
    }
}

/// What the kernel has of the C `vhost_net`, from sysfs.
pub(crate) fn c_vhost_net() -> CModule {
    if path_exists(c"/sys/module/vhost_net/refcnt") {
        CModule::Loaded
    } else if path_exists(c"/sys/module/vhost_net") {
        CModule::BuiltIn
    } else {
        CModule::Absent
    }
}
