//! The uapi mirror, `vcore::uapi`, against the C headers.

use crate::vcore::uapi::*;

/// Values printed by a C program compiled against this tree's uapi
/// headers (`printf("%08x", VHOST_...)` with gcc on x86_64).
const C_IOCTLS: &[(&str, u32, u32)] = &[
    ("VHOST_GET_FEATURES", VHOST_GET_FEATURES, 0x8008af00),
    ("VHOST_SET_FEATURES", VHOST_SET_FEATURES, 0x4008af00),
    ("VHOST_SET_OWNER", VHOST_SET_OWNER, 0x0000af01),
    ("VHOST_RESET_OWNER", VHOST_RESET_OWNER, 0x0000af02),
    ("VHOST_SET_MEM_TABLE", VHOST_SET_MEM_TABLE, 0x4008af03),
    ("VHOST_SET_LOG_BASE", VHOST_SET_LOG_BASE, 0x4008af04),
    ("VHOST_SET_LOG_FD", VHOST_SET_LOG_FD, 0x4004af07),
    ("VHOST_NEW_WORKER", VHOST_NEW_WORKER, 0x8004af08),
    ("VHOST_FREE_WORKER", VHOST_FREE_WORKER, 0x4004af09),
    ("VHOST_SET_VRING_NUM", VHOST_SET_VRING_NUM, 0x4008af10),
    ("VHOST_SET_VRING_ADDR", VHOST_SET_VRING_ADDR, 0x4028af11),
    ("VHOST_SET_VRING_BASE", VHOST_SET_VRING_BASE, 0x4008af12),
    ("VHOST_GET_VRING_BASE", VHOST_GET_VRING_BASE, 0xc008af12),
    ("VHOST_SET_VRING_ENDIAN", VHOST_SET_VRING_ENDIAN, 0x4008af13),
    ("VHOST_GET_VRING_ENDIAN", VHOST_GET_VRING_ENDIAN, 0x4008af14),
    (
        "VHOST_ATTACH_VRING_WORKER",
        VHOST_ATTACH_VRING_WORKER,
        0x4008af15,
    ),
    ("VHOST_GET_VRING_WORKER", VHOST_GET_VRING_WORKER, 0xc008af16),
    ("VHOST_SET_VRING_KICK", VHOST_SET_VRING_KICK, 0x4008af20),
    ("VHOST_SET_VRING_CALL", VHOST_SET_VRING_CALL, 0x4008af21),
    ("VHOST_SET_VRING_ERR", VHOST_SET_VRING_ERR, 0x4008af22),
    (
        "VHOST_SET_VRING_BUSYLOOP_TIMEOUT",
        VHOST_SET_VRING_BUSYLOOP_TIMEOUT,
        0x4008af23,
    ),
    (
        "VHOST_GET_VRING_BUSYLOOP_TIMEOUT",
        VHOST_GET_VRING_BUSYLOOP_TIMEOUT,
        0x4008af24,
    ),
    (
        "VHOST_SET_BACKEND_FEATURES",
        VHOST_SET_BACKEND_FEATURES,
        0x4008af25,
    ),
    (
        "VHOST_GET_BACKEND_FEATURES",
        VHOST_GET_BACKEND_FEATURES,
        0x8008af26,
    ),
    ("VHOST_NET_SET_BACKEND", VHOST_NET_SET_BACKEND, 0x4008af30),
    (
        "VHOST_SET_FORK_FROM_OWNER",
        VHOST_SET_FORK_FROM_OWNER,
        0x4001af84,
    ),
    (
        "VHOST_GET_FORK_FROM_OWNER",
        VHOST_GET_FORK_FROM_OWNER,
        0x8001af85,
    ),
    (
        "VHOST_SCSI_SET_ENDPOINT",
        VHOST_SCSI_SET_ENDPOINT,
        0x40e8af40,
    ),
    (
        "VHOST_SCSI_CLEAR_ENDPOINT",
        VHOST_SCSI_CLEAR_ENDPOINT,
        0x40e8af41,
    ),
    (
        "VHOST_SCSI_GET_ABI_VERSION",
        VHOST_SCSI_GET_ABI_VERSION,
        0x4004af42,
    ),
    (
        "VHOST_VSOCK_SET_GUEST_CID",
        VHOST_VSOCK_SET_GUEST_CID,
        0x4008af60,
    ),
    (
        "VHOST_VSOCK_SET_RUNNING",
        VHOST_VSOCK_SET_RUNNING,
        0x4004af61,
    ),
    (
        "VHOST_VDPA_GET_DEVICE_ID",
        VHOST_VDPA_GET_DEVICE_ID,
        0x8004af70,
    ),
    ("VHOST_VDPA_GET_STATUS", VHOST_VDPA_GET_STATUS, 0x8001af71),
    ("VHOST_VDPA_SET_STATUS", VHOST_VDPA_SET_STATUS, 0x4001af72),
    ("VHOST_VDPA_GET_CONFIG", VHOST_VDPA_GET_CONFIG, 0x8008af73),
    (
        "VHOST_VDPA_SET_VRING_ENABLE",
        VHOST_VDPA_SET_VRING_ENABLE,
        0x4008af75,
    ),
    (
        "VHOST_VDPA_GET_VRING_NUM",
        VHOST_VDPA_GET_VRING_NUM,
        0x8002af76,
    ),
    (
        "VHOST_VDPA_GET_IOVA_RANGE",
        VHOST_VDPA_GET_IOVA_RANGE,
        0x8010af78,
    ),
    ("VHOST_VDPA_SUSPEND", VHOST_VDPA_SUSPEND, 0x0000af7d),
    (
        "VHOST_VDPA_GET_VRING_SIZE",
        VHOST_VDPA_GET_VRING_SIZE,
        0xc008af82,
    ),
];

#[test]
fn ioctl_numbers_match_c() {
    for &(name, ours, c) in C_IOCTLS {
        assert_eq!(ours, c, "{name}: {ours:#010x} != {c:#010x}");
    }
}

#[test]
fn ioctl_numbers_are_distinct() {
    for (i, a) in C_IOCTLS.iter().enumerate() {
        for b in &C_IOCTLS[i + 1..] {
            assert_ne!(a.1, b.1, "{} and {} collide", a.0, b.0);
        }
    }
}

#[test]
fn feature_masks() {
    assert_eq!(
        VHOST_FEATURES,
        (1 << 24) | (1 << 26) | (1 << 27) | (1 << 28) | (1 << 29) | (1 << 32)
    );
    assert_eq!(VHOST_FEATURES, 0x0000_0001_3d00_0000);
    assert_eq!(VHOST_NET_FEATURES, 0x0000_0103_3d00_8000);
    assert_eq!(VHOST_NET_BACKEND_FEATURES, 0x2);
    // Bit 27 means both ANY_LAYOUT and VIRTIO_NET_HDR.
    assert_eq!(VIRTIO_F_ANY_LAYOUT, VHOST_NET_F_VIRTIO_NET_HDR);
}

#[test]
fn c_sizes() {
    assert_eq!(VIRTIO_NET_HDR_LEN, 10);
    assert_eq!(VIRTIO_NET_HDR_MRG_RXBUF_LEN, 12);
    assert_eq!(VHOST_SCSI_TARGET_SIZE, 232);
}
