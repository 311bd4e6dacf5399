// SPDX-License-Identifier: GPL-2.0

//! Feature negotiation of vhost-net (`VHOST_SET_FEATURES`,
//! `VHOST_SET_BACKEND_FEATURES`).
//!
//! The C module splits the work between `vhost_net_ioctl`, which rejects bits
//! it does not offer, and `vhost_net_set_features`, which derives the header
//! lengths and then performs two checks that need the kernel (dirty-log access
//! and device IOTLB allocation). This module does the pure part and tells the
//! caller which of the kernel-side steps to take, in the order C takes them.

use super::errno::Errno;
use super::uapi::{
    VHOST_F_LOG_ALL, VHOST_NET_BACKEND_FEATURES, VHOST_NET_F_VIRTIO_NET_HDR,
    VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_HDR_LEN,
    VIRTIO_NET_HDR_MRG_RXBUF_LEN,
};

/// The error `VHOST_SET_FEATURES` returns when the dirty-log check or the
/// device IOTLB allocation fails: C maps both to `EFAULT`.
pub(crate) const SET_FEATURES_FAILED: Errno = Errno::EFAULT;

/// Whether bit number `bit` is set in `features`.
///
/// Bit numbers of 64 and above are never set, rather than overflowing the shift.
pub(crate) const fn has_feature(features: u64, bit: u32) -> bool {
    bit < 64 && features & (1u64 << bit) != 0
}

/// What the device must do with its IOTLB once the features are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IotlbAction {
    /// `VIRTIO_F_ACCESS_PLATFORM` was acked: (re)allocate an empty device IOTLB.
    Init,
    /// It was not: drop the device IOTLB if there is one.
    Clear,
}

/// The outcome of accepting a `VHOST_SET_FEATURES` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NetFeatures {
    /// The acked features, to store in every virtqueue.
    pub(crate) features: u64,
    /// Bytes of virtio-net header that vhost itself adds on RX and strips on TX.
    pub(crate) vhost_hlen: usize,
    /// Bytes of virtio-net header that the socket (tap) provides.
    pub(crate) sock_hlen: usize,
    /// `VHOST_F_LOG_ALL` was acked: the caller must check that every active
    /// ring's memory can be logged (`vhost_log_access_ok`) before anything
    /// else, and fail with [`SET_FEATURES_FAILED`] if not.
    pub(crate) needs_log_check: bool,
    /// What to do with the device IOTLB, after the log check; a failed
    /// allocation also yields [`SET_FEATURES_FAILED`].
    pub(crate) iotlb: IotlbAction,
}

/// Validates and interprets a `VHOST_SET_FEATURES` value for vhost-net.
///
/// Bits vhost-net does not offer give `EOPNOTSUPP`, checked in
/// `vhost_net_ioctl` before anything else happens.
///
/// `offered` is what `VHOST_GET_FEATURES` returns: C's `VHOST_NET_FEATURES`
/// (6.12's), with `VIRTIO_F_IN_ORDER` when the module's `in_order`
/// parameter is set.
pub(crate) fn set_net_features(features: u64, offered: u64) -> Result<NetFeatures, Errno> {
    if features & !offered != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // The merged-buffer header is used as soon as either MRG_RXBUF or
    // VERSION_1 is acked: virtio 1.0 always carries num_buffers.
    let hdr_len = if has_feature(features, VIRTIO_NET_F_MRG_RXBUF)
        || has_feature(features, VIRTIO_F_VERSION_1)
    {
        VIRTIO_NET_HDR_MRG_RXBUF_LEN
    } else {
        VIRTIO_NET_HDR_LEN
    };
    let (vhost_hlen, sock_hlen) = if has_feature(features, VHOST_NET_F_VIRTIO_NET_HDR) {
        (hdr_len, 0)
    } else {
        (0, hdr_len)
    };
    Ok(NetFeatures {
        features,
        vhost_hlen,
        sock_hlen,
        needs_log_check: has_feature(features, VHOST_F_LOG_ALL),
        iotlb: if has_feature(features, VIRTIO_F_ACCESS_PLATFORM) {
            IotlbAction::Init
        } else {
            IotlbAction::Clear
        },
    })
}

/// Validates a `VHOST_SET_BACKEND_FEATURES` value for vhost-net.
///
/// Unknown bits give `EOPNOTSUPP`; otherwise the value is stored as it is in
/// every virtqueue.
pub(crate) fn set_net_backend_features(features: u64) -> Result<u64, Errno> {
    if features & !VHOST_NET_BACKEND_FEATURES != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(features)
}
