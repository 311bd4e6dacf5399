// SPDX-License-Identifier: GPL-2.0

//! Error numbers returned by the pure logic of the module.
//!
//! The core cannot depend on the kernel crate, so it reports failures as
//! positive errno values; the kernel glue turns them into `kernel::error::Error`
//! and the host tests compare them with the values the C module returns.

/// A positive errno value, as found in `include/uapi/asm-generic/errno*.h`.
///
/// The value is positive so that it reads like the C constant it stands for;
/// the glue negates it when it hands it to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Errno(pub(crate) i32);

impl Errno {
    /// Operation not permitted.
    pub(crate) const EPERM: Errno = Errno(1);
    /// Argument list too long.
    pub(crate) const E2BIG: Errno = Errno(7);
    /// Try again.
    pub(crate) const EAGAIN: Errno = Errno(11);
    /// Out of memory.
    pub(crate) const ENOMEM: Errno = Errno(12);
    /// Bad address.
    pub(crate) const EFAULT: Errno = Errno(14);
    /// Device or resource busy.
    pub(crate) const EBUSY: Errno = Errno(16);
    /// Invalid argument.
    pub(crate) const EINVAL: Errno = Errno(22);
    /// No space left on device.
    pub(crate) const ENOSPC: Errno = Errno(28);
    /// File descriptor in bad state.
    pub(crate) const EBADFD: Errno = Errno(77);
    /// Socket operation on non-socket.
    pub(crate) const ENOTSOCK: Errno = Errno(88);
    /// Socket type not supported.
    pub(crate) const ESOCKTNOSUPPORT: Errno = Errno(94);
    /// Operation not supported on transport endpoint.
    pub(crate) const EOPNOTSUPP: Errno = Errno(95);
    /// Protocol family not supported.
    pub(crate) const EPFNOSUPPORT: Errno = Errno(96);
    /// No buffer space available.
    pub(crate) const ENOBUFS: Errno = Errno(105);
    /// Kernel-internal "no such ioctl"; the VFS turns it into `ENOTTY`.
    pub(crate) const ENOIOCTLCMD: Errno = Errno(515);
}
