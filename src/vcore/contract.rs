// SPDX-License-Identifier: GPL-2.0

//! The contract of each kernel's C `vhost_net`: what a process on
//! `/dev/vhost-net` (QEMU) or a guest can observe of it that differs
//! between the kernels served, as plain data.
//!
//! The module answers on each kernel as that kernel's C module does:
//! `kapi::version::CONTRACT` picks one of the consts below by the kernel
//! the module is built for (the only place that tests the version), and
//! the rest of the module reads its fields. They are constants, so a data
//! path difference (`rx_num_buffers_v1`) folds away at build time.
//!
//! Both consts are compiled into the host tests (`tests/unit`), which check
//! them against the C sources' values, and into `tests/vmtest`.
//! Documentation/differences.rst ("By kernel") lists the same changes for
//! people.

use super::uapi::{
    VHOST_NET_FEATURES, VIRTIO_F_IN_ORDER, VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO,
    VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO,
};

/// Words of feature bits the kernel's vhost knows (`VIRTIO_FEATURES_U64S`
/// of include/linux/virtio_features.h, 6.17+; one word before): bit `b` is
/// in word `b / 64`. Every served kernel's contract has this many words,
/// the ones it does not know are 0.
pub(crate) const FEATURE_WORDS: usize = 2;

/// What one kernel's C `vhost_net` answers, where kernels differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Contract {
    /// The kernel, `VERSION.PATCHLEVEL` (Kbuild's `vhost_linux`).
    pub(crate) linux: &'static str,
    /// `VHOST_NET_FEATURES` by word: word 0 is what `VHOST_GET_FEATURES`
    /// returns and `VHOST_SET_FEATURES` accepts; all words are what
    /// `VHOST_GET_FEATURES_ARRAY` returns and `VHOST_SET_FEATURES_ARRAY`
    /// accepts. What the module offers is
    /// `net::device::offered_features()`, this plus opt-in parameters.
    pub(crate) features: [u64; FEATURE_WORDS],
    /// `VHOST_GET_FEATURES_ARRAY` / `VHOST_SET_FEATURES_ARRAY` exist
    /// (6.17). Without them the numbers are unknown ioctls (`EPERM`
    /// without an owner, then `ENOTTY`, as any other).
    pub(crate) features_array: bool,
    /// RX writes `num_buffers` (1) into the header when `VERSION_1` is
    /// acked without `MRG_RXBUF` (6.14, C's `set_num_buffers`); before, it
    /// wrote it only with `MRG_RXBUF` and left the guest's two bytes as
    /// they were.
    pub(crate) rx_num_buffers_v1: bool,
    /// A `VHOST_IOTLB_INVALIDATE` of size 0 is refused (7.x: `EINVAL` in
    /// `vhost_process_iotlb_msg`, which the write reports as `EFAULT`);
    /// before, C deleted the range `[iova, iova - 1]`, everything when
    /// `iova` is 0.
    pub(crate) iotlb_invalidate_empty_einval: bool,
    /// At most one `VHOST_IOTLB_MISS` per ring is outstanding (queued or
    /// read and not yet resolved by an update) (7.x, `vq->iotlb_miss`);
    /// a ring that misses again meanwhile queues nothing. Before, every
    /// miss was queued.
    pub(crate) iotlb_one_miss_per_ring: bool,
    /// TX copy: a packet too big for the XDP batch flushes the batch
    /// before it is sent on its own only when the batch holds buffers
    /// (7.x, `handle_tx_copy`'s `if (nvq->batched_xdp)`); before, it
    /// always did, which also gave back the chains used so far and
    /// signalled the guest, once per packet for a run of large ones.
    pub(crate) tx_flush_only_batched: bool,
}

/// Debian 12's 6.12 (6.12.118-1~deb12u1, the test kernel).
pub(crate) const LINUX_6_12: Contract = Contract {
    linux: "6.12",
    features: [VHOST_NET_FEATURES, 0],
    features_array: false,
    rx_num_buffers_v1: false,
    iotlb_invalidate_empty_einval: false,
    iotlb_one_miss_per_ring: false,
    tx_flush_only_batched: false,
};

/// Debian 13's trixie-backports 7.3 (7.3.4+deb13).
pub(crate) const LINUX_7_3: Contract = Contract {
    linux: "7.3",
    // drivers/vhost/net.c `vhost_net_bits`: 6.12's, VIRTIO_F_IN_ORDER
    // (6.17) and the UDP tunnel GSO bits of word 1 (6.17).
    features: [
        VHOST_NET_FEATURES | 1 << VIRTIO_F_IN_ORDER,
        1 << (VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64)
            | 1 << (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64),
    ],
    features_array: true,
    rx_num_buffers_v1: true,
    iotlb_invalidate_empty_einval: true,
    iotlb_one_miss_per_ring: true,
    tx_flush_only_batched: true,
};

/// Every kernel served, oldest first.
pub(crate) const KNOWN: [Contract; 2] = [LINUX_6_12, LINUX_7_3];

/// `VHOST_GET_FEATURES_ARRAY` and `VHOST_SET_FEATURES_ARRAY` with `count`
/// words given: how many of the kernel's words are copied (C's
/// `min(count, VIRTIO_FEATURES_U64S)`); the user's words after them are
/// zeroed (GET) or must be zero (SET).
pub(crate) const fn array_words(count: u64) -> usize {
    if count < FEATURE_WORDS as u64 {
        count as usize
    } else {
        FEATURE_WORDS
    }
}

/// `VHOST_GET_FEATURES_ARRAY`: bytes of the user's array after the copied
/// words that C zeroes (`size_mul(count - copied, 8)`, saturating as
/// `size_mul` does; a saturated length fails `access_ok`).
pub(crate) const fn array_tail_bytes(count: u64) -> u64 {
    (count - array_words(count) as u64).saturating_mul(8)
}
