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
    /// Not a typewriter: what userspace sees for an unknown ioctl.
    pub(crate) const ENOTTY: Errno = Errno(25);
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

    /// The negative value the kernel returns to userspace for this error.
    pub(crate) const fn to_neg(self) -> i32 {
        -self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Errno;

    #[test]
    fn values_match_asm_generic() {
        assert_eq!(Errno::EPERM.0, 1);
        assert_eq!(Errno::E2BIG.0, 7);
        assert_eq!(Errno::EAGAIN.0, 11);
        assert_eq!(Errno::ENOMEM.0, 12);
        assert_eq!(Errno::EFAULT.0, 14);
        assert_eq!(Errno::EBUSY.0, 16);
        assert_eq!(Errno::EINVAL.0, 22);
        assert_eq!(Errno::ENOTTY.0, 25);
        assert_eq!(Errno::ENOSPC.0, 28);
        assert_eq!(Errno::ENOTSOCK.0, 88);
        assert_eq!(Errno::ESOCKTNOSUPPORT.0, 94);
        assert_eq!(Errno::EOPNOTSUPP.0, 95);
        assert_eq!(Errno::EPFNOSUPPORT.0, 96);
        assert_eq!(Errno::ENOBUFS.0, 105);
        assert_eq!(Errno::ENOIOCTLCMD.0, 515);
        assert_eq!(Errno::EINVAL.to_neg(), -22);
    }
}
