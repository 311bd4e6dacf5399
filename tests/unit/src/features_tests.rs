//! Feature negotiation, `vcore::features`.

use crate::vcore::errno::Errno;
use crate::vcore::features::*;
use crate::vcore::uapi::*;

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
