//! Feature negotiation, `vcore::features`.

use crate::vcore::contract::{Contract, FEATURE_WORDS, KNOWN, LINUX_6_12, LINUX_7_3};
use crate::vcore::errno::Errno;
use crate::vcore::features::{self, *};
use crate::vcore::uapi::*;

/// `VHOST_SET_FEATURES` of `v` against 6.12's offer.
fn set_net_features(v: u64) -> Result<NetFeatures, Errno> {
    set_on(&LINUX_6_12, v)
}

/// `VHOST_SET_FEATURES` of `v` against a kernel's offer.
fn set_on(c: &Contract, v: u64) -> Result<NetFeatures, Errno> {
    features::set_net_features(&[v, 0], &c.features)
}

#[test]
fn unknown_bits_rejected() {
    assert_eq!(set_net_features(1 << 0), Err(Errno::EOPNOTSUPP));
    assert_eq!(set_net_features(1 << 63), Err(Errno::EOPNOTSUPP));
    assert_eq!(
        set_net_features(1 << VIRTIO_F_RING_PACKED),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(1 << VIRTIO_F_IN_ORDER),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(VHOST_NET_FEATURES | 1 << 41),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(set_net_features(VHOST_NET_FEATURES).is_ok());
    assert!(set_net_features(0).is_ok());
}

#[test]
fn every_offered_bit_alone_is_accepted() {
    for bit in 0..64 {
        let r = set_net_features(1 << bit);
        assert_eq!(r.is_ok(), has_feature(VHOST_NET_FEATURES, bit), "bit {bit}");
    }
}

#[test]
fn header_lengths() {
    let f = |v: u64| {
        let n = set_net_features(v).unwrap();
        (n.vhost_hlen, n.sock_hlen)
    };
    assert_eq!(f(0), (0, 10));
    assert_eq!(f(1 << VIRTIO_NET_F_MRG_RXBUF), (0, 12));
    assert_eq!(f(1 << VIRTIO_F_VERSION_1), (0, 12));
    assert_eq!(f(1 << VHOST_NET_F_VIRTIO_NET_HDR), (10, 0));
    assert_eq!(
        f(1 << VHOST_NET_F_VIRTIO_NET_HDR | 1 << VIRTIO_NET_F_MRG_RXBUF),
        (12, 0)
    );
    assert_eq!(
        f(1 << VHOST_NET_F_VIRTIO_NET_HDR | 1 << VIRTIO_F_VERSION_1),
        (12, 0)
    );
    // ANY_LAYOUT is the same bit as VIRTIO_NET_HDR.
    assert_eq!(f(1 << VIRTIO_F_ANY_LAYOUT), (10, 0));
}

#[test]
fn log_and_iotlb_decisions() {
    let n = set_net_features(1 << VHOST_F_LOG_ALL).unwrap();
    assert!(n.needs_log_check);
    assert_eq!(n.iotlb, IotlbAction::Clear);
    let n = set_net_features(1 << VIRTIO_F_ACCESS_PLATFORM).unwrap();
    assert!(!n.needs_log_check);
    assert_eq!(n.iotlb, IotlbAction::Init);
    assert_eq!(n.features, 1 << VIRTIO_F_ACCESS_PLATFORM);
    assert_eq!(SET_FEATURES_FAILED, Errno::EFAULT);
}

#[test]
fn backend_features() {
    assert_eq!(set_net_backend_features(0), Ok(0));
    assert_eq!(
        set_net_backend_features(1 << VHOST_BACKEND_F_IOTLB_MSG_V2),
        Ok(2)
    );
    assert_eq!(
        set_net_backend_features(1 << VHOST_BACKEND_F_IOTLB_BATCH),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_backend_features(1 << VHOST_BACKEND_F_IOTLB_ASID),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(set_net_backend_features(1), Err(Errno::EOPNOTSUPP));
}

#[test]
fn has_feature_bounds() {
    assert!(has_feature(1 << 63, 63));
    assert!(!has_feature(u64::MAX, 64));
    assert!(!has_feature(u64::MAX, u32::MAX));
}

#[test]
fn in_order_is_offered_by_7_3_only() {
    assert_eq!(
        set_on(&LINUX_6_12, 1 << VIRTIO_F_IN_ORDER),
        Err(Errno::EOPNOTSUPP)
    );
    let n = set_on(&LINUX_7_3, 1 << VIRTIO_F_IN_ORDER).unwrap();
    assert_eq!(n.features, 1 << VIRTIO_F_IN_ORDER);
    assert_eq!((n.vhost_hlen, n.sock_hlen), (0, 10));
}

#[test]
fn word_one_bits() {
    let g = 1u64 << (VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64);
    let h = 1u64 << (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64);
    let arr = |c: &Contract, w0: u64, w1: u64| features::set_net_features(&[w0, w1], &c.features);
    // 6.12 offers nothing in word 1.
    assert_eq!(arr(&LINUX_6_12, 0, g), Err(Errno::EOPNOTSUPP));
    // 7.3: either tunnel bit makes the header the hash-tunnel one (24).
    for w1 in [g, h, g | h] {
        let n = arr(&LINUX_7_3, 0, w1).unwrap();
        assert_eq!((n.vhost_hlen, n.sock_hlen), (0, 24), "{w1:#x}");
        let n = arr(&LINUX_7_3, 1 << VHOST_NET_F_VIRTIO_NET_HDR, w1).unwrap();
        assert_eq!((n.vhost_hlen, n.sock_hlen), (24, 0), "{w1:#x}");
        let v1 = 1 << VIRTIO_F_VERSION_1 | 1 << VIRTIO_NET_F_MRG_RXBUF;
        let n = arr(&LINUX_7_3, v1, w1).unwrap();
        assert_eq!((n.sock_hlen, n.features), (24, v1), "{w1:#x}");
    }
    // The CSUM variants and every other bit of word 1 are not offered.
    for bit in 64..128u32 {
        let w1 = 1u64 << (bit - 64);
        let ok =
            bit == VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO || bit == VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO;
        assert_eq!(arr(&LINUX_7_3, 0, w1).is_ok(), ok, "bit {bit}");
    }
    assert_eq!(
        arr(
            &LINUX_7_3,
            0,
            1 << (VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM - 64)
        ),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        arr(
            &LINUX_7_3,
            0,
            1 << (VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM - 64)
        ),
        Err(Errno::EOPNOTSUPP)
    );
    // Word 0 is checked as VHOST_SET_FEATURES checks it.
    assert_eq!(arr(&LINUX_7_3, 1, g), Err(Errno::EOPNOTSUPP));
}

#[test]
fn every_kernel_accepts_its_whole_offer() {
    for c in KNOWN {
        let n = features::set_net_features(&c.features, &c.features).unwrap();
        assert_eq!(n.features, c.features[0], "{}", c.linux);
        let mut more = c.features;
        more[FEATURE_WORDS - 1] |= 1 << 63;
        assert_eq!(
            features::set_net_features(&more, &c.features),
            Err(Errno::EOPNOTSUPP)
        );
    }
}

#[test]
fn has_feature_bit_words() {
    let w = [1u64 << 3, 1u64 << 1];
    assert!(has_feature_bit(&w, 3));
    assert!(has_feature_bit(&w, 65));
    assert!(!has_feature_bit(&w, 64));
    assert!(!has_feature_bit(&w, 128));
    assert!(!has_feature_bit(&w, u32::MAX));
}
