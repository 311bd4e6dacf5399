//! Feature negotiation, `vcore::features`.

use crate::vcore::errno::Errno;
use crate::vcore::features::*;
use crate::vcore::uapi::*;

#[test]
fn unknown_bits_rejected() {
    assert_eq!(
        set_net_features(1 << 0, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(1 << 63, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(1 << VIRTIO_F_RING_PACKED, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(1 << VIRTIO_F_IN_ORDER, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        set_net_features(VHOST_NET_FEATURES | 1 << 41, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(set_net_features(VHOST_NET_FEATURES, VHOST_NET_FEATURES).is_ok());
    assert!(set_net_features(0, VHOST_NET_FEATURES).is_ok());
}

#[test]
fn every_offered_bit_alone_is_accepted() {
    for bit in 0..64 {
        let r = set_net_features(1 << bit, VHOST_NET_FEATURES);
        assert_eq!(r.is_ok(), has_feature(VHOST_NET_FEATURES, bit), "bit {bit}");
    }
}

#[test]
fn header_lengths() {
    let f = |v: u64| {
        let n = set_net_features(v, VHOST_NET_FEATURES).unwrap();
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
    let n = set_net_features(1 << VHOST_F_LOG_ALL, VHOST_NET_FEATURES).unwrap();
    assert!(n.needs_log_check);
    assert_eq!(n.iotlb, IotlbAction::Clear);
    let n = set_net_features(1 << VIRTIO_F_ACCESS_PLATFORM, VHOST_NET_FEATURES).unwrap();
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
fn in_order_only_when_offered() {
    let with = VHOST_NET_FEATURES | 1 << VIRTIO_F_IN_ORDER;
    assert_eq!(
        set_net_features(1 << VIRTIO_F_IN_ORDER, VHOST_NET_FEATURES),
        Err(Errno::EOPNOTSUPP)
    );
    let n = set_net_features(with, with).unwrap();
    assert_eq!(n.features, with);
    // Offering it changes nothing else that is refused.
    assert_eq!(
        set_net_features(1 << VIRTIO_F_RING_PACKED, with),
        Err(Errno::EOPNOTSUPP)
    );
}
