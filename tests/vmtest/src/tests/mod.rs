//! The registry of in-VM tests. Add a test to a module and list it in `all`.

mod basic;
mod datapath;
mod ioctl_backend;
mod ioctl_features;
mod ioctl_iotlb;
mod ioctl_mem;
mod ioctl_owner;
mod ioctl_util;
mod ioctl_vring;
mod modules;
mod upstream;

use crate::harness::{Allowed, Test};

/// Every test, in the order it runs (special tests first, then the
/// differential ones, once per implementation).
pub fn all() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(modules::tests());
    v.extend(basic::tests());
    // The ioctl contract. compat_ioctl (32-bit callers) is not covered:
    // the test kernel has no CONFIG_IA32_EMULATION/CONFIG_COMPAT.
    v.extend(ioctl_owner::tests());
    v.extend(ioctl_features::tests());
    v.extend(ioctl_vring::tests());
    v.extend(ioctl_mem::tests());
    v.extend(ioctl_backend::tests());
    v.extend(ioctl_iotlb::tests());
    v.extend(datapath::tests());
    // Upstream's tools/virtio/vhost_net_test, once per option set.
    v.extend(upstream::tests());
    v
}

/// Deliberate, documented differences between the C module and ours:
/// `(test, observation key, reason)`. Every entry needs a reason a reviewer
/// can check against Documentation/.
pub const ALLOWED: &[Allowed] = &[];
