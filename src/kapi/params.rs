// SPDX-License-Identifier: GPL-2.0

//! Module parameters (declared in the C shim, which the 6.12 `module!` macro
//! needs; all are read-only after load, mode 0444).

// The shim's parameter variables (C `ushort`, `int`, `bool`, `int`, `bool`).
use super::shim::{vhost_net_rs_experimental_zcopytx, vhost_net_rs_fork_from_owner_default};
use super::shim::{
    vhost_net_rs_in_order, vhost_net_rs_max_iotlb_entries, vhost_net_rs_max_mem_regions,
};

/// `max_mem_regions`: the most regions `VHOST_SET_MEM_TABLE` accepts.
pub(crate) fn max_mem_regions() -> u32 {
    // SAFETY: The parameters are 0444: written only by the module loader,
    // before any code of the module runs, and constant afterwards.
    u32::from(unsafe { vhost_net_rs_max_mem_regions })
}

/// `max_iotlb_entries` as the map limit; 0 when it is not positive (C
/// refuses to build a map then, `valid_max_iotlb_entries` says whether).
pub(crate) fn max_iotlb_entries() -> u32 {
    // SAFETY: As above.
    u32::try_from(unsafe { vhost_net_rs_max_iotlb_entries }).unwrap_or(0)
}

/// `max_iotlb_entries` as given (for the load message).
pub(crate) fn max_iotlb_entries_raw() -> i32 {
    // SAFETY: As above.
    unsafe { vhost_net_rs_max_iotlb_entries }
}

/// Whether `max_iotlb_entries` is positive; C's maps need it to be.
pub(crate) fn valid_max_iotlb_entries() -> bool {
    max_iotlb_entries() > 0
}

/// `fork_from_owner_default`: workers are tasks of the owner (true) or
/// kernel threads (false) unless `VHOST_SET_FORK_FROM_OWNER` says otherwise.
pub(crate) fn fork_from_owner_default() -> bool {
    // SAFETY: As above.
    unsafe { vhost_net_rs_fork_from_owner_default }
}

/// `experimental_zcopytx`: TX rings of tun/tap and macvtap backends send
/// without copying (C's `vhost_net_enable_zcopy` at load).
pub(crate) fn experimental_zcopytx() -> bool {
    // SAFETY: As above.
    unsafe { vhost_net_rs_experimental_zcopytx != 0 }
}

/// `in_order`: whether `VHOST_GET_FEATURES` offers (and
/// `VHOST_SET_FEATURES` accepts) `VIRTIO_F_IN_ORDER` whatever the kernel's
/// C module does (7.3's offers it, 6.12's does not): `Some(true)` (1),
/// `Some(false)` (0), or `None` to follow it (-1, the default; any other
/// value counts as -1).
pub(crate) fn in_order() -> Option<bool> {
    // SAFETY: As above.
    match unsafe { vhost_net_rs_in_order } {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}
