// SPDX-License-Identifier: GPL-2.0

//! The formats the driver and the device exchange through a split
//! virtqueue (virtio 1.x sections 2.7.5 and 2.7.8): the descriptor the
//! driver writes (also the entry of an indirect table) and the used element
//! the device writes back, little endian.

/// Descriptor flag: the chain continues with the `next` field.
pub(crate) const VRING_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is write-only for the device.
pub(crate) const VRING_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds a table of indirect descriptors.
pub(crate) const VRING_DESC_F_INDIRECT: u16 = 4;

/// Size of a descriptor (`struct vring_desc`).
pub(crate) const DESC_SIZE: u64 = 16;
/// Size of a used element (`struct vring_used_elem`).
pub(crate) const USED_ELEM_SIZE: u64 = 8;

/// A descriptor (`struct vring_desc`), decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Desc {
    /// Guest address of the buffer.
    pub(crate) addr: u64,
    /// Length of the buffer.
    pub(crate) len: u32,
    /// `VRING_DESC_F_*` bits.
    pub(crate) flags: u16,
    /// Index of the next descriptor when `VRING_DESC_F_NEXT` is set.
    pub(crate) next: u16,
}

impl Desc {
    /// Decodes the 16 bytes of a descriptor.
    pub(crate) fn from_bytes(b: &[u8; 16]) -> Desc {
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&b[0..8]);
        Desc {
            addr: u64::from_le_bytes(addr),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }

    /// Encodes the descriptor as the 16 bytes the driver writes.
    #[allow(
        dead_code,
        reason = "the driver's half of the format, beside the decoding it must match: the host tests' simulated driver writes descriptors with it"
    )]
    pub(crate) fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..16].copy_from_slice(&self.next.to_le_bytes());
        b
    }
}

/// An entry of the used ring (`struct vring_used_elem`).
///
/// `#[repr(C)]`, two `u32`s and no padding: on a little-endian machine a
/// slice of these has the used ring's layout (see
/// [`super::access::RingMemory::write_used_elems`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct UsedElem {
    /// Head of the chain given back.
    pub(crate) id: u32,
    /// Bytes the device wrote into the chain.
    pub(crate) len: u32,
}

const _: () = assert!(core::mem::size_of::<UsedElem>() == USED_ELEM_SIZE as usize);

impl UsedElem {
    /// The element as it lies in the used ring: `id`, then `len`, little
    /// endian.
    pub(crate) fn to_le_bytes(self) -> [u8; USED_ELEM_SIZE as usize] {
        let mut b = [0u8; USED_ELEM_SIZE as usize];
        b[..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..].copy_from_slice(&self.len.to_le_bytes());
        b
    }
}
