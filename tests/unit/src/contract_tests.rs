//! The contracts of the served kernels' C `vhost_net`, `vcore::contract`,
//! against the values read in their sources (and measured on Debian's 7.3
//! kernel: its C module offers `0x10b3d008000`).

use crate::vcore::contract::*;
use crate::vcore::uapi::*;

#[test]
fn linux_6_12() {
    assert_eq!(LINUX_6_12.linux, "6.12");
    // drivers/vhost/net.c VHOST_NET_FEATURES (6.12.118-1~deb12u1).
    assert_eq!(LINUX_6_12.features, [0x0000_0103_3d00_8000, 0]);
    assert!(!LINUX_6_12.features_array);
    assert!(!LINUX_6_12.rx_num_buffers_v1);
    assert!(!LINUX_6_12.iotlb_invalidate_empty_einval);
    assert!(!LINUX_6_12.iotlb_one_miss_per_ring);
    // net.c handle_tx_copy: vhost_tx_batch on every ENOSPC.
    assert!(!LINUX_6_12.tx_flush_only_batched);
}

#[test]
fn linux_7_3() {
    assert_eq!(LINUX_7_3.linux, "7.3");
    // net.c vhost_net_bits: 6.12's plus IN_ORDER (35) in word 0, and
    // GUEST_UDP_TUNNEL_GSO (65), HOST_UDP_TUNNEL_GSO (67) in word 1.
    assert_eq!(LINUX_7_3.features, [0x0000_010b_3d00_8000, 0xa]);
    assert_eq!(LINUX_7_3.features[0] & !LINUX_6_12.features[0], 1 << 35);
    assert!(LINUX_7_3.features_array);
    assert!(LINUX_7_3.rx_num_buffers_v1);
    assert!(LINUX_7_3.iotlb_invalidate_empty_einval);
    assert!(LINUX_7_3.iotlb_one_miss_per_ring);
    // net.c:834-840: `if (nvq->batched_xdp) vhost_tx_batch(...)`.
    assert!(LINUX_7_3.tx_flush_only_batched);
}

#[test]
fn known_in_order_and_growing() {
    assert_eq!(KNOWN.map(|c| c.linux), ["6.12", "7.3"]);
    // Each kernel offers at least what the one before it did.
    for pair in KNOWN.windows(2) {
        for w in 0..FEATURE_WORDS {
            assert_eq!(pair[0].features[w] & !pair[1].features[w], 0);
        }
    }
    // Word 0 of the oldest is the uapi mirror's VHOST_NET_FEATURES.
    assert_eq!(KNOWN[0].features[0], VHOST_NET_FEATURES);
}

#[test]
fn feature_array_ioctls() {
    // _IOR/_IOW(VHOST_VIRTIO, 0x83, struct vhost_features_array), whose
    // size is 8 (a u64 count and a flexible array).
    assert_eq!(VHOST_GET_FEATURES_ARRAY, 0x8008_af83);
    assert_eq!(VHOST_SET_FEATURES_ARRAY, 0x4008_af83);
    assert_eq!(FEATURE_WORDS, 2);
    assert_eq!(VIRTIO_NET_HDR_V1_HASH_TUNNEL_LEN, 24);
}

#[test]
fn array_word_counts() {
    assert_eq!(array_words(0), 0);
    assert_eq!(array_words(1), 1);
    assert_eq!(array_words(2), 2);
    assert_eq!(array_words(3), 2);
    assert_eq!(array_words(u64::MAX), 2);
    assert_eq!(array_tail_bytes(0), 0);
    assert_eq!(array_tail_bytes(2), 0);
    assert_eq!(array_tail_bytes(3), 8);
    assert_eq!(array_tail_bytes(10), 64);
    // size_mul saturates.
    assert_eq!(array_tail_bytes(u64::MAX), u64::MAX);
    assert_eq!(array_tail_bytes(1 << 61), u64::MAX - 15);
    assert_eq!(array_tail_bytes(1 << 62), u64::MAX);
}
