// SPDX-License-Identifier: GPL-2.0

//! The vhost userspace ABI of the kernel tree this module replaces C code in.
//!
//! Everything here is transcribed from `include/uapi/linux/vhost.h`,
//! `vhost_types.h`, `virtio_config.h`, `virtio_ring.h` and `virtio_net.h` of
//! the Debian 6.12 tree. The file depends on nothing but `core`, so that the
//! userspace test crate can include it as well and both sides of the ABI agree
//! by construction.

use core::mem::size_of;

/// The ioctl "type" byte shared by every vhost ioctl.
pub(crate) const VHOST_VIRTIO: u32 = 0xAF;

/// Number of bits of the ioctl number field.
const IOC_NRBITS: u32 = 8;
/// Number of bits of the ioctl type field.
const IOC_TYPEBITS: u32 = 8;
/// Number of bits of the ioctl size field (x86: 14).
const IOC_SIZEBITS: u32 = 14;
/// Shift of the type field.
const IOC_TYPESHIFT: u32 = IOC_NRBITS;
/// Shift of the size field.
const IOC_SIZESHIFT: u32 = IOC_TYPESHIFT + IOC_TYPEBITS;
/// Shift of the direction field.
const IOC_DIRSHIFT: u32 = IOC_SIZESHIFT + IOC_SIZEBITS;
/// Direction: no data transfer.
const IOC_NONE: u32 = 0;
/// Direction: userspace writes, the kernel reads.
const IOC_WRITE: u32 = 1;
/// Direction: the kernel writes, userspace reads.
const IOC_READ: u32 = 2;

/// Encodes an ioctl number like the generic `_IOC` macro.
///
/// Sizes that do not fit the 14-bit field would be a build error in C; here
/// they are masked, which cannot happen for the structures below (all are far
/// smaller than 16 KiB).
pub(crate) const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
    (dir << IOC_DIRSHIFT)
        | (((size as u32) & ((1 << IOC_SIZEBITS) - 1)) << IOC_SIZESHIFT)
        | (ty << IOC_TYPESHIFT)
        | nr
}

/// `_IO(type, nr)`: an ioctl without argument.
pub(crate) const fn io(ty: u32, nr: u32) -> u32 {
    ioc(IOC_NONE, ty, nr, 0)
}

/// `_IOR(type, nr, T)`: the kernel writes a `size`-byte argument.
pub(crate) const fn ior(ty: u32, nr: u32, size: usize) -> u32 {
    ioc(IOC_READ, ty, nr, size)
}

/// `_IOW(type, nr, T)`: the kernel reads a `size`-byte argument.
pub(crate) const fn iow(ty: u32, nr: u32, size: usize) -> u32 {
    ioc(IOC_WRITE, ty, nr, size)
}

/// `_IOWR(type, nr, T)`: the argument is read and written back.
pub(crate) const fn iowr(ty: u32, nr: u32, size: usize) -> u32 {
    ioc(IOC_READ | IOC_WRITE, ty, nr, size)
}

/// `fd` value that detaches an eventfd or a backend.
pub(crate) const VHOST_FILE_UNBIND: i32 = -1;

/// `struct vhost_vring_state`: a ring index and a number.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostVringState {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// The value being set or returned.
    pub(crate) num: u32,
}

/// `struct vhost_vring_file`: a ring index and a file descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostVringFile {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// File descriptor, or [`VHOST_FILE_UNBIND`].
    pub(crate) fd: i32,
}

/// `vhost_vring_addr.flags` bit: `log_guest_addr` is valid, log used writes.
pub(crate) const VHOST_VRING_F_LOG: u32 = 0;

/// `struct vhost_vring_addr`: where the three parts of a split ring live.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostVringAddr {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Option flags; only `1 << VHOST_VRING_F_LOG` is defined.
    pub(crate) flags: u32,
    /// User address of the descriptor table.
    pub(crate) desc_user_addr: u64,
    /// User address of the used ring; must be 4-byte aligned.
    pub(crate) used_user_addr: u64,
    /// User address of the available ring; must be 2-byte aligned.
    pub(crate) avail_user_addr: u64,
    /// Guest physical address of the used ring, for dirty logging.
    pub(crate) log_guest_addr: u64,
}

/// `struct vhost_worker_state`: a worker id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostWorkerState {
    /// Id of the worker created or to be freed.
    pub(crate) worker_id: u32,
}

/// `struct vhost_vring_worker`: a ring index and a worker id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostVringWorker {
    /// Virtqueue index.
    pub(crate) index: u32,
    /// Worker id as returned by `VHOST_NEW_WORKER`.
    pub(crate) worker_id: u32,
}

/// IOTLB permission: the device may read.
pub(crate) const VHOST_ACCESS_RO: u8 = 0x1;
/// IOTLB permission: the device may write.
pub(crate) const VHOST_ACCESS_WO: u8 = 0x2;
/// IOTLB permission: the device may read and write.
pub(crate) const VHOST_ACCESS_RW: u8 = 0x3;

/// IOTLB message type: the device asks userspace for a translation.
pub(crate) const VHOST_IOTLB_MISS: u8 = 1;
/// IOTLB message type: userspace adds a translation.
pub(crate) const VHOST_IOTLB_UPDATE: u8 = 2;
/// IOTLB message type: userspace removes translations.
pub(crate) const VHOST_IOTLB_INVALIDATE: u8 = 3;
/// IOTLB message type: the device reports an access failure.
pub(crate) const VHOST_IOTLB_ACCESS_FAIL: u8 = 4;
/// IOTLB message type: start of a batch of updates.
pub(crate) const VHOST_IOTLB_BATCH_BEGIN: u8 = 5;
/// IOTLB message type: end of a batch of updates.
pub(crate) const VHOST_IOTLB_BATCH_END: u8 = 6;

/// `struct vhost_iotlb_msg`.
///
/// C leaves six bytes of tail padding implicit; they are spelled out here so
/// that a value copied to userspace never carries uninitialised bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostIotlbMsg {
    /// I/O virtual address.
    pub(crate) iova: u64,
    /// Length in bytes.
    pub(crate) size: u64,
    /// User address the range maps to.
    pub(crate) uaddr: u64,
    /// `VHOST_ACCESS_*` permission.
    pub(crate) perm: u8,
    /// `VHOST_IOTLB_*` message type.
    pub(crate) type_: u8,
    /// Explicit tail padding (implicit in C).
    pub(crate) padding: [u8; 6],
}

/// Message format: `struct vhost_msg`.
pub(crate) const VHOST_IOTLB_MSG: u32 = 0x1;
/// Message format: `struct vhost_msg_v2`.
pub(crate) const VHOST_IOTLB_MSG_V2: u32 = 0x2;

/// `struct vhost_msg` (version 1 of the read/write message).
///
/// In C the payload is a union of the IOTLB message and 64 bytes of padding,
/// 8-byte aligned, so it starts at offset 8 after a 4-byte hole. The union is
/// modelled as the IOTLB message followed by the rest of the padding, which
/// has the same layout and needs no `unsafe` to read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostMsg {
    /// [`VHOST_IOTLB_MSG`].
    pub(crate) type_: i32,
    /// The hole C leaves before the 8-byte-aligned union.
    pub(crate) hole: u32,
    /// The IOTLB payload.
    pub(crate) iotlb: VhostIotlbMsg,
    /// The part of the union's 64 bytes not covered by `iotlb`.
    pub(crate) padding: [u8; 32],
}

/// `struct vhost_msg_v2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostMsgV2 {
    /// [`VHOST_IOTLB_MSG_V2`].
    pub(crate) type_: u32,
    /// Address space id; vhost-net only accepts 0.
    pub(crate) asid: u32,
    /// The IOTLB payload.
    pub(crate) iotlb: VhostIotlbMsg,
    /// The part of the union's 64 bytes not covered by `iotlb`.
    pub(crate) padding: [u8; 32],
}

/// `struct vhost_memory_region`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostMemoryRegion {
    /// First guest physical address of the region.
    pub(crate) guest_phys_addr: u64,
    /// Size in bytes.
    pub(crate) memory_size: u64,
    /// User address the region starts at.
    pub(crate) userspace_addr: u64,
    /// No flags are defined; the kernel ignores this field.
    pub(crate) flags_padding: u64,
}

/// `struct vhost_memory` without its flexible array of regions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct VhostMemory {
    /// Number of [`VhostMemoryRegion`] that follow.
    pub(crate) nregions: u32,
    /// Must be zero.
    pub(crate) padding: u32,
}

/// Page size of the dirty log and of memory regions.
pub(crate) const VHOST_PAGE_SIZE: u64 = 0x1000;

/// `VHOST_SET_VRING_ENDIAN` value: little endian.
pub(crate) const VHOST_VRING_LITTLE_ENDIAN: u32 = 0;
/// `VHOST_SET_VRING_ENDIAN` value: big endian.
pub(crate) const VHOST_VRING_BIG_ENDIAN: u32 = 1;

/// Fork-owner mode: workers are kernel threads.
pub(crate) const VHOST_FORK_OWNER_KTHREAD: u8 = 0;
/// Fork-owner mode: workers are tasks forked from the owner.
pub(crate) const VHOST_FORK_OWNER_TASK: u8 = 1;

/// Size of `struct vhost_scsi_target` (int, char[224], two shorts).
pub(crate) const VHOST_SCSI_TARGET_SIZE: usize = 232;
/// Size of the header of `struct vhost_vdpa_config` (two u32 and a flexible array).
const VHOST_VDPA_CONFIG_SIZE: usize = 8;
/// Size of `struct vhost_vdpa_iova_range` (two u64).
const VHOST_VDPA_IOVA_RANGE_SIZE: usize = 16;

/// Returns the feature bits the device offers.
pub(crate) const VHOST_GET_FEATURES: u32 = ior(VHOST_VIRTIO, 0x00, size_of::<u64>());
/// Acknowledges feature bits.
pub(crate) const VHOST_SET_FEATURES: u32 = iow(VHOST_VIRTIO, 0x00, size_of::<u64>());
/// Makes the caller's process the owner of the device.
pub(crate) const VHOST_SET_OWNER: u32 = io(VHOST_VIRTIO, 0x01);
/// Gives up ownership and resets the device.
pub(crate) const VHOST_RESET_OWNER: u32 = io(VHOST_VIRTIO, 0x02);
/// Sets the guest memory table.
pub(crate) const VHOST_SET_MEM_TABLE: u32 = iow(VHOST_VIRTIO, 0x03, size_of::<VhostMemory>());
/// Sets the user address of the dirty log.
pub(crate) const VHOST_SET_LOG_BASE: u32 = iow(VHOST_VIRTIO, 0x04, size_of::<u64>());
/// Sets the eventfd signalled on dirty-log writes.
pub(crate) const VHOST_SET_LOG_FD: u32 = iow(VHOST_VIRTIO, 0x07, size_of::<i32>());
/// Creates a worker.
pub(crate) const VHOST_NEW_WORKER: u32 = ior(VHOST_VIRTIO, 0x8, size_of::<VhostWorkerState>());
/// Frees a worker.
pub(crate) const VHOST_FREE_WORKER: u32 = iow(VHOST_VIRTIO, 0x9, size_of::<VhostWorkerState>());
/// Sets the ring size.
pub(crate) const VHOST_SET_VRING_NUM: u32 = iow(VHOST_VIRTIO, 0x10, size_of::<VhostVringState>());
/// Sets the ring addresses.
pub(crate) const VHOST_SET_VRING_ADDR: u32 = iow(VHOST_VIRTIO, 0x11, size_of::<VhostVringAddr>());
/// Sets the index where the device resumes reading the available ring.
pub(crate) const VHOST_SET_VRING_BASE: u32 = iow(VHOST_VIRTIO, 0x12, size_of::<VhostVringState>());
/// Returns the ring base.
pub(crate) const VHOST_GET_VRING_BASE: u32 = iowr(VHOST_VIRTIO, 0x12, size_of::<VhostVringState>());
/// Sets the byte order of a legacy ring.
pub(crate) const VHOST_SET_VRING_ENDIAN: u32 =
    iow(VHOST_VIRTIO, 0x13, size_of::<VhostVringState>());
/// Returns the byte order of a legacy ring (declared `_IOW` in C).
pub(crate) const VHOST_GET_VRING_ENDIAN: u32 =
    iow(VHOST_VIRTIO, 0x14, size_of::<VhostVringState>());
/// Attaches a worker to a ring.
pub(crate) const VHOST_ATTACH_VRING_WORKER: u32 =
    iow(VHOST_VIRTIO, 0x15, size_of::<VhostVringWorker>());
/// Returns the worker of a ring.
pub(crate) const VHOST_GET_VRING_WORKER: u32 =
    iowr(VHOST_VIRTIO, 0x16, size_of::<VhostVringWorker>());
/// Sets the eventfd the device polls for guest kicks.
pub(crate) const VHOST_SET_VRING_KICK: u32 = iow(VHOST_VIRTIO, 0x20, size_of::<VhostVringFile>());
/// Sets the eventfd the device signals when it used buffers.
pub(crate) const VHOST_SET_VRING_CALL: u32 = iow(VHOST_VIRTIO, 0x21, size_of::<VhostVringFile>());
/// Sets the eventfd the device signals on ring errors.
pub(crate) const VHOST_SET_VRING_ERR: u32 = iow(VHOST_VIRTIO, 0x22, size_of::<VhostVringFile>());
/// Sets the busy-poll timeout in microseconds.
pub(crate) const VHOST_SET_VRING_BUSYLOOP_TIMEOUT: u32 =
    iow(VHOST_VIRTIO, 0x23, size_of::<VhostVringState>());
/// Returns the busy-poll timeout (declared `_IOW` in C).
pub(crate) const VHOST_GET_VRING_BUSYLOOP_TIMEOUT: u32 =
    iow(VHOST_VIRTIO, 0x24, size_of::<VhostVringState>());
/// Acknowledges backend feature bits.
pub(crate) const VHOST_SET_BACKEND_FEATURES: u32 = iow(VHOST_VIRTIO, 0x25, size_of::<u64>());
/// Returns the backend feature bits the device offers.
pub(crate) const VHOST_GET_BACKEND_FEATURES: u32 = ior(VHOST_VIRTIO, 0x26, size_of::<u64>());
/// Attaches a ring to a tap or packet socket.
pub(crate) const VHOST_NET_SET_BACKEND: u32 = iow(VHOST_VIRTIO, 0x30, size_of::<VhostVringFile>());
/// Selects how workers are created (6.12 stable and 7.x, with
/// `CONFIG_VHOST_ENABLE_FORK_OWNER_CONTROL`).
pub(crate) const VHOST_SET_FORK_FROM_OWNER: u32 = iow(VHOST_VIRTIO, 0x84, size_of::<u8>());
/// Returns how workers are created (as `VHOST_SET_FORK_FROM_OWNER`).
pub(crate) const VHOST_GET_FORK_FROM_OWNER: u32 = ior(VHOST_VIRTIO, 0x85, size_of::<u8>());

/// Returns the offered feature words (Linux 6.17+; 6.12 has no such
/// ioctl). The argument is `struct vhost_features_array`: a `u64` count,
/// then that many `u64` words (bit `b` in word `b / 64`).
pub(crate) const VHOST_GET_FEATURES_ARRAY: u32 = ior(VHOST_VIRTIO, 0x83, size_of::<u64>());
/// Acknowledges feature words (Linux 6.17+), same argument.
pub(crate) const VHOST_SET_FEATURES_ARRAY: u32 = iow(VHOST_VIRTIO, 0x83, size_of::<u64>());

/// vhost-scsi: set endpoint (foreign to vhost-net).
pub(crate) const VHOST_SCSI_SET_ENDPOINT: u32 = iow(VHOST_VIRTIO, 0x40, VHOST_SCSI_TARGET_SIZE);
/// vhost-scsi: clear endpoint (foreign to vhost-net).
pub(crate) const VHOST_SCSI_CLEAR_ENDPOINT: u32 = iow(VHOST_VIRTIO, 0x41, VHOST_SCSI_TARGET_SIZE);
/// vhost-scsi: ABI version (foreign to vhost-net).
pub(crate) const VHOST_SCSI_GET_ABI_VERSION: u32 = iow(VHOST_VIRTIO, 0x42, size_of::<i32>());
/// vhost-vsock: set the guest context id (foreign to vhost-net).
pub(crate) const VHOST_VSOCK_SET_GUEST_CID: u32 = iow(VHOST_VIRTIO, 0x60, size_of::<u64>());
/// vhost-vsock: start or stop (foreign to vhost-net).
pub(crate) const VHOST_VSOCK_SET_RUNNING: u32 = iow(VHOST_VIRTIO, 0x61, size_of::<i32>());
/// vhost-vdpa: device id (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_DEVICE_ID: u32 = ior(VHOST_VIRTIO, 0x70, size_of::<u32>());
/// vhost-vdpa: get status (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_STATUS: u32 = ior(VHOST_VIRTIO, 0x71, size_of::<u8>());
/// vhost-vdpa: set status (foreign to vhost-net).
pub(crate) const VHOST_VDPA_SET_STATUS: u32 = iow(VHOST_VIRTIO, 0x72, size_of::<u8>());
/// vhost-vdpa: get config (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_CONFIG: u32 = ior(VHOST_VIRTIO, 0x73, VHOST_VDPA_CONFIG_SIZE);
/// vhost-vdpa: enable a ring (foreign to vhost-net).
pub(crate) const VHOST_VDPA_SET_VRING_ENABLE: u32 =
    iow(VHOST_VIRTIO, 0x75, size_of::<VhostVringState>());
/// vhost-vdpa: maximum ring size (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_VRING_NUM: u32 = ior(VHOST_VIRTIO, 0x76, size_of::<u16>());
/// vhost-vdpa: usable IOVA range (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_IOVA_RANGE: u32 =
    ior(VHOST_VIRTIO, 0x78, VHOST_VDPA_IOVA_RANGE_SIZE);
/// vhost-vdpa: suspend (foreign to vhost-net).
pub(crate) const VHOST_VDPA_SUSPEND: u32 = io(VHOST_VIRTIO, 0x7D);
/// vhost-vdpa: ring size of one queue (foreign to vhost-net).
pub(crate) const VHOST_VDPA_GET_VRING_SIZE: u32 =
    iowr(VHOST_VIRTIO, 0x82, size_of::<VhostVringState>());

/// Feature bit: notify when the available ring runs empty.
pub(crate) const VIRTIO_F_NOTIFY_ON_EMPTY: u32 = 24;
/// Feature bit: log all write descriptors.
pub(crate) const VHOST_F_LOG_ALL: u32 = 26;
/// Feature bit: descriptors may be laid out freely.
pub(crate) const VIRTIO_F_ANY_LAYOUT: u32 = 27;
/// Feature bit: vhost-net adds and strips the virtio-net header itself.
///
/// It shares bit 27 with [`VIRTIO_F_ANY_LAYOUT`].
pub(crate) const VHOST_NET_F_VIRTIO_NET_HDR: u32 = 27;
/// Feature bit: indirect descriptors.
pub(crate) const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// Feature bit: used_event / avail_event fields.
pub(crate) const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
/// Feature bit: virtio 1.0.
pub(crate) const VIRTIO_F_VERSION_1: u32 = 32;
/// Feature bit: addresses go through the device IOTLB.
pub(crate) const VIRTIO_F_ACCESS_PLATFORM: u32 = 33;
/// Feature bit: packed ring layout.
pub(crate) const VIRTIO_F_RING_PACKED: u32 = 34;
/// Feature bit: buffers are used in order.
pub(crate) const VIRTIO_F_IN_ORDER: u32 = 35;
/// Feature bit: individual rings can be reset.
pub(crate) const VIRTIO_F_RING_RESET: u32 = 40;
/// virtio-net feature bit: mergeable receive buffers.
pub(crate) const VIRTIO_NET_F_MRG_RXBUF: u32 = 15;
/// virtio-net feature bit (word 1, Linux 6.17+): the driver can receive
/// GSO-over-UDP-tunnel packets.
pub(crate) const VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO: u32 = 65;
/// virtio-net feature bit (word 1): ... with partial outer checksum.
pub(crate) const VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO_CSUM: u32 = 66;
/// virtio-net feature bit (word 1, Linux 6.17+): the device can receive
/// GSO-over-UDP-tunnel packets.
pub(crate) const VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO: u32 = 67;
/// virtio-net feature bit (word 1): ... with partial outer checksum.
pub(crate) const VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO_CSUM: u32 = 68;

/// Backend feature bit: IOTLB messages use `struct vhost_msg_v2`.
pub(crate) const VHOST_BACKEND_F_IOTLB_MSG_V2: u32 = 0x1;
/// Backend feature bit: IOTLB batching hints.
pub(crate) const VHOST_BACKEND_F_IOTLB_BATCH: u32 = 0x2;
/// Backend feature bit: address space ids in IOTLB messages.
pub(crate) const VHOST_BACKEND_F_IOTLB_ASID: u32 = 0x3;

/// Features every vhost device offers (`VHOST_FEATURES` in vhost.h).
pub(crate) const VHOST_FEATURES: u64 = (1 << VIRTIO_F_NOTIFY_ON_EMPTY)
    | (1 << VIRTIO_RING_F_INDIRECT_DESC)
    | (1 << VIRTIO_RING_F_EVENT_IDX)
    | (1 << VHOST_F_LOG_ALL)
    | (1 << VIRTIO_F_ANY_LAYOUT)
    | (1 << VIRTIO_F_VERSION_1);

/// Features vhost-net offers in Linux 6.12 (`VHOST_NET_FEATURES` in its
/// net.c). What each served kernel offers is `vcore::contract`; this is
/// 6.12's word 0, a subset of every later kernel's.
pub(crate) const VHOST_NET_FEATURES: u64 = VHOST_FEATURES
    | (1 << VHOST_NET_F_VIRTIO_NET_HDR)
    | (1 << VIRTIO_NET_F_MRG_RXBUF)
    | (1 << VIRTIO_F_ACCESS_PLATFORM)
    | (1 << VIRTIO_F_RING_RESET);

/// Backend features vhost-net offers (`VHOST_NET_BACKEND_FEATURES` in net.c).
pub(crate) const VHOST_NET_BACKEND_FEATURES: u64 = 1 << VHOST_BACKEND_F_IOTLB_MSG_V2;

/// Size of `struct virtio_net_hdr`.
pub(crate) const VIRTIO_NET_HDR_LEN: usize = 10;
/// Size of `struct virtio_net_hdr_mrg_rxbuf` (also of `virtio_net_hdr_v1`).
pub(crate) const VIRTIO_NET_HDR_MRG_RXBUF_LEN: usize = 12;
/// Size of `struct virtio_net_hdr_v1_hash_tunnel` (Linux 6.17+): the
/// v1 header (12), hash value (4), hash report and padding (2 + 2), outer
/// transport and inner network header offsets (2 + 2).
pub(crate) const VIRTIO_NET_HDR_V1_HASH_TUNNEL_LEN: usize = 24;

/// Required alignment of the descriptor table.
pub(crate) const VRING_DESC_ALIGN_SIZE: u64 = 16;
/// Required alignment of the available ring.
pub(crate) const VRING_AVAIL_ALIGN_SIZE: u64 = 2;
/// Required alignment of the used ring.
pub(crate) const VRING_USED_ALIGN_SIZE: u64 = 4;

// The layouts must match the C structures byte for byte, since the glue
// copies them to and from userspace as they are.
const _: () = assert!(size_of::<VhostVringState>() == 8);
const _: () = assert!(size_of::<VhostVringFile>() == 8);
const _: () = assert!(size_of::<VhostVringAddr>() == 40);
const _: () = assert!(size_of::<VhostWorkerState>() == 4);
const _: () = assert!(size_of::<VhostVringWorker>() == 8);
const _: () = assert!(size_of::<VhostIotlbMsg>() == 32);
const _: () = assert!(size_of::<VhostMsg>() == 72);
const _: () = assert!(core::mem::offset_of!(VhostMsg, iotlb) == 8);
const _: () = assert!(size_of::<VhostMsgV2>() == 72);
const _: () = assert!(core::mem::offset_of!(VhostMsgV2, iotlb) == 8);
const _: () = assert!(size_of::<VhostMemoryRegion>() == 32);
const _: () = assert!(size_of::<VhostMemory>() == 8);
