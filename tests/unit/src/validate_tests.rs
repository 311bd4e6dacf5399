//! Tests of `validate.rs` that need an interval map storage.

use crate::storage::VecStorage;
use crate::vcore::errno::Errno;
use crate::vcore::intervalmap::{IntervalMap, FLAG_RETIRE, PERM_RW};
use crate::vcore::uapi::{
    VhostIotlbMsg, VhostMemoryRegion, VHOST_ACCESS_RO, VHOST_ACCESS_RW, VHOST_IOTLB_ACCESS_FAIL,
    VHOST_IOTLB_INVALIDATE, VHOST_IOTLB_MISS, VHOST_IOTLB_UPDATE,
};
use crate::vcore::validate::{fill_mem_table, process_iotlb_msg, IotlbOutcome, MAX_IOTLB_ENTRIES};

fn table() -> IntervalMap<VecStorage> {
    IntervalMap::new(VecStorage::default(), MAX_IOTLB_ENTRIES, FLAG_RETIRE)
}

fn region(gpa: u64, size: u64, ua: u64) -> VhostMemoryRegion {
    VhostMemoryRegion {
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: ua,
        flags_padding: 0,
    }
}

#[test]
fn mem_table_regions() {
    let mut m = table();
    fill_mem_table(
        &mut m,
        &[
            region(0, 0x10000, 0x7f00_0000),
            region(0x10000, 0x1000, 0x5000),
        ],
    )
    .unwrap();
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|e| e.perm == PERM_RW));
    // A zero-sized region elsewhere than 0 is refused, and the error is EFAULT.
    let mut m = table();
    assert_eq!(
        fill_mem_table(&mut m, &[region(0x1000, 0x1000, 0), region(0x5000, 0, 0)]),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        m.len(),
        1,
        "regions before the bad one stay in the new table"
    );
    // A zero-sized region at 0 maps the whole space, as two entries.
    let mut m = table();
    fill_mem_table(&mut m, &[region(0, 0, 0x1000)]).unwrap();
    assert_eq!(m.len(), 2);
    // Overlapping regions are accepted.
    let mut m = table();
    fill_mem_table(&mut m, &[region(0, 0x2000, 0), region(0x1000, 0x2000, 0)]).unwrap();
    assert_eq!(m.len(), 2);
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
    // Size 0 is EINVAL, before the asid and the IOTLB are looked at.
    let zero = msg(VHOST_IOTLB_UPDATE, 0, 0, 0, VHOST_ACCESS_RO);
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
