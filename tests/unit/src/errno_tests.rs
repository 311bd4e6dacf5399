//! The error numbers of `vcore::errno` against asm-generic/errno*.h.

use crate::vcore::errno::Errno;

#[test]
fn values_match_asm_generic() {
    assert_eq!(Errno::EPERM.0, 1);
    assert_eq!(Errno::E2BIG.0, 7);
    assert_eq!(Errno::EAGAIN.0, 11);
    assert_eq!(Errno::ENOMEM.0, 12);
    assert_eq!(Errno::EFAULT.0, 14);
    assert_eq!(Errno::EBUSY.0, 16);
    assert_eq!(Errno::EINVAL.0, 22);
    assert_eq!(Errno::ENOSPC.0, 28);
    assert_eq!(Errno::ENOTSOCK.0, 88);
    assert_eq!(Errno::ESOCKTNOSUPPORT.0, 94);
    assert_eq!(Errno::EOPNOTSUPP.0, 95);
    assert_eq!(Errno::EPFNOSUPPORT.0, 96);
    assert_eq!(Errno::ENOBUFS.0, 105);
    assert_eq!(Errno::ENOIOCTLCMD.0, 515);
}
