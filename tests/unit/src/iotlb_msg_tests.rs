//! IOTLB messages written to the device fd, `vcore::iotlb_msg`.

use crate::storage::VecStorage;
use crate::vcore::errno::Errno;
use crate::vcore::iotlb_msg::*;
use crate::vcore::memory::intervalmap::{IntervalMap, FLAG_RETIRE};
use crate::vcore::uapi::{
    VhostIotlbMsg, VHOST_ACCESS_RO, VHOST_ACCESS_RW, VHOST_ACCESS_WO, VHOST_BACKEND_F_IOTLB_ASID,
    VHOST_IOTLB_ACCESS_FAIL, VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_MISS, VHOST_IOTLB_UPDATE,
};
use crate::vcore::validate::MAX_IOTLB_ENTRIES;

fn table() -> IntervalMap<VecStorage> {
    IntervalMap::new(VecStorage::default(), MAX_IOTLB_ENTRIES, FLAG_RETIRE)
}

fn msg(type_: u8, iova: u64, size: u64, uaddr: u64, perm: u8) -> VhostIotlbMsg {
    VhostIotlbMsg {
        iova,
        size,
        uaddr,
        perm,
        type_,
        padding: [0; 6],
    }
}

#[test]
fn iotlb_messages() {
    let ok = |_: u64, _: u64| true;
    let mut m = table();
    let upd = msg(VHOST_IOTLB_UPDATE, 0x1000, 0x1000, 0x7000, VHOST_ACCESS_RW);
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 0, &upd, ok),
        Ok(IotlbOutcome::Updated)
    );
    assert_eq!(m.first(0x1fff, 0x1fff).unwrap().1.addr, 0x7000);
    // Size 0 is EINVAL, before the asid and the IOTLB are looked at: by
    // the write itself (before its locks), and by the handler.
    let zero = msg(VHOST_IOTLB_UPDATE, 0, 0, 0, VHOST_ACCESS_RO);
    assert_eq!(write_refuses(&zero), Err(Errno::EINVAL));
    assert_eq!(write_refuses(&upd), Ok(()));
    let inv0 = msg(VHOST_IOTLB_INVALIDATE, 0, 0, 0, 0);
    assert_eq!(write_refuses(&inv0), Ok(()));
    assert_eq!(
        process_iotlb_msg::<VecStorage>(None, 1, &zero, ok),
        Err(Errno::EINVAL)
    );
    // Every handler failure is EFAULT.
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 1, &upd, ok),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        process_iotlb_msg::<VecStorage>(None, 0, &upd, ok),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 0, &upd, |_, _| false),
        Err(Errno::EFAULT)
    );
    let overflow = msg(VHOST_IOTLB_UPDATE, 0, 2, u64::MAX, VHOST_ACCESS_RO);
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 0, &overflow, ok),
        Err(Errno::EFAULT)
    );
    let wrapped = msg(VHOST_IOTLB_UPDATE, u64::MAX, 2, 0, VHOST_ACCESS_RO);
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 0, &wrapped, ok),
        Err(Errno::EFAULT),
        "iova + size - 1 wraps below iova: the map refuses it"
    );
    for t in [VHOST_IOTLB_MISS, VHOST_IOTLB_ACCESS_FAIL, 0, 9] {
        assert_eq!(
            process_iotlb_msg(Some(&mut m), 0, &msg(t, 0, 1, 0, 0), ok),
            Err(Errno::EFAULT)
        );
    }
    // Invalidate removes overlapping entries; size 0 is allowed and wraps
    // to the range [iova, iova - 1].
    let inv = msg(VHOST_IOTLB_INVALIDATE, 0x1800, 0, 0, 0);
    assert_eq!(
        process_iotlb_msg(Some(&mut m), 0, &inv, ok),
        Ok(IotlbOutcome::Invalidated)
    );
    assert!(m.is_empty());
    assert_eq!(
        process_iotlb_msg::<VecStorage>(None, 0, &inv, ok),
        Err(Errno::EFAULT)
    );
}

#[test]
fn umem_access() {
    let mut calls = 0;
    assert!(umem_access_ok(0x1000, 0x1000, VHOST_ACCESS_RW, |_, _| {
        calls += 1;
        true
    }));
    assert_eq!(calls, 2);
    assert!(!umem_access_ok(u64::MAX, 2, 0, |_, _| true));
    // No permission bit: nothing is checked.
    assert!(umem_access_ok(0, 1, 0, |_, _| false));
    assert!(!umem_access_ok(0, 1, VHOST_ACCESS_WO, |_, _| false));
}

#[test]
fn write_layout() {
    assert_eq!(
        iotlb_write_layout(1, 0),
        Ok(WriteLayout {
            reads_asid: false,
            skip: 4,
            written: 72
        })
    );
    assert_eq!(
        iotlb_write_layout(2, 0),
        Ok(WriteLayout {
            reads_asid: false,
            skip: 4,
            written: 72
        })
    );
    assert_eq!(
        iotlb_write_layout(2, 1 << VHOST_BACKEND_F_IOTLB_ASID),
        Ok(WriteLayout {
            reads_asid: true,
            skip: 0,
            written: 72
        })
    );
    assert_eq!(iotlb_write_layout(0, 0), Err(Errno::EINVAL));
    assert_eq!(iotlb_write_layout(3, 0), Err(Errno::EINVAL));
    assert_eq!(iotlb_write_layout(-1, 0), Err(Errno::EINVAL));
    assert_eq!(VHOST_IOTLB_MISS, 1);
}

#[test]
fn iotlb_msg_decode() {
    let mut b = [0xeeu8; 32];
    b[0..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
    b[8..16].copy_from_slice(&u64::MAX.to_ne_bytes());
    b[16..24].copy_from_slice(&0x7fff_0000_1000u64.to_ne_bytes());
    b[24] = VHOST_ACCESS_RW;
    b[25] = VHOST_IOTLB_UPDATE;
    // The tail padding (0xee here) is not part of the value.
    assert_eq!(
        parse_iotlb_msg(&b),
        VhostIotlbMsg {
            iova: 0x1122_3344_5566_7788,
            size: u64::MAX,
            uaddr: 0x7fff_0000_1000,
            perm: VHOST_ACCESS_RW,
            type_: VHOST_IOTLB_UPDATE,
            padding: [0; 6],
        }
    );
    // The layout is the C structure's: each field at its offset.
    assert_eq!(core::mem::offset_of!(VhostIotlbMsg, size), 8);
    assert_eq!(core::mem::offset_of!(VhostIotlbMsg, uaddr), 16);
    assert_eq!(core::mem::offset_of!(VhostIotlbMsg, perm), 24);
    assert_eq!(core::mem::offset_of!(VhostIotlbMsg, type_), 25);
}

#[test]
fn empty_invalidate_by_kernel() {
    use crate::vcore::contract::{LINUX_6_12, LINUX_7_3};
    let inv = msg(VHOST_IOTLB_INVALIDATE, 0, 0, 0, 0);
    // 6.12 lets it through (C deletes [iova, iova - 1]); 7.3 refuses it,
    // the write failing with EFAULT as every handler failure.
    assert_eq!(kernel_refuses(&LINUX_6_12, &inv), Ok(()));
    assert_eq!(kernel_refuses(&LINUX_7_3, &inv), Err(Errno::EFAULT));
    let inv1 = msg(VHOST_IOTLB_INVALIDATE, 0, 1, 0, 0);
    assert_eq!(kernel_refuses(&LINUX_7_3, &inv1), Ok(()));
    // An empty update is refused before, by every kernel (EINVAL).
    let upd = msg(VHOST_IOTLB_UPDATE, 0, 0, 0, 0);
    assert_eq!(kernel_refuses(&LINUX_7_3, &upd), Ok(()));
}
