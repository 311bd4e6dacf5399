// SPDX-License-Identifier: GPL-2.0

//! What the ring needs from the kernel: the owner's memory the ring lives
//! in, with its barriers ([`RingMemory`]), and the translation of the guest
//! addresses in descriptors ([`Translate`]). The kernel glue implements
//! both; the host tests implement them over a plain byte image.

use super::super::errno::Errno;
use super::super::memory::dirtylog::DirtyBitmap;
use super::super::memory::intervalmap::{Entry, Piece, TranslateError};
use super::desc::{UsedElem, USED_ELEM_SIZE};

/// The owner's memory that the ring lives in, as the kernel provides it.
///
/// Addresses are user addresses of the owner (the kernel resolves ring
/// addresses through the device IOTLB when there is one). The dirty bitmap
/// lives in the same memory.
pub(crate) trait RingMemory: DirtyBitmap {
    /// Copies `buf.len()` bytes from user address `uaddr` (`copy_from_user`).
    fn read(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Reads one 16-byte descriptor ([`RingMemory::read`] of a constant
    /// size, which the kernel copies without a run-time object check).
    fn read_desc(&self, uaddr: u64, buf: &mut [u8; 16]) -> Result<(), Errno> {
        self.read(uaddr, buf)
    }
    /// Copies `buf.len()` bytes from `uaddr`, an address the ring's
    /// [`Translate`] already gave (a piece of an indirect table): a plain
    /// `copy_from_user`, never through the device IOTLB again (C's
    /// `get_indirect` copies from `translate_desc`'s iovec).
    fn read_translated(&self, uaddr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.read(uaddr, buf)
    }
    /// Copies `buf` to user address `uaddr` (`copy_to_user`).
    fn write(&self, uaddr: u64, buf: &[u8]) -> Result<(), Errno>;
    /// Reads a little-endian `u16` (`get_user`).
    fn read_u16(&self, uaddr: u64) -> Result<u16, Errno> {
        let mut b = [0u8; 2];
        self.read(uaddr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }
    /// Writes a little-endian `u16` field at `uaddr` of the used ring
    /// `ring` (`put_user`; the ring is given for the device IOTLB's rule,
    /// see [`UsedRing`]).
    fn write_used_u16(&self, _ring: UsedRing, uaddr: u64, value: u16) -> Result<(), Errno> {
        self.write(uaddr, &value.to_le_bytes())
    }
    /// Writes one used-ring element, little endian (C's two `put_user`s of
    /// `__vhost_add_used_n` for a single element).
    fn write_used_elem(&self, uaddr: u64, elem: UsedElem) -> Result<(), Errno> {
        self.write(uaddr, &elem.to_le_bytes())
    }
    /// Writes consecutive used-ring elements, little endian (C's one
    /// `vhost_copy_to_user` of `__vhost_add_used_n`).
    fn write_used_elems(&self, uaddr: u64, heads: &[UsedElem]) -> Result<(), Errno> {
        write_used_elems_buffered(self, uaddr, heads)
    }
    /// Orders earlier loads before later loads (`smp_rmb`).
    fn rmb(&self);
    /// Orders earlier stores before later stores (`smp_wmb`).
    fn wmb(&self);
    /// Orders earlier loads and stores before later ones (`smp_mb`).
    fn mb(&self);
    /// Signals the log eventfd (`vq->log_ctx`), if one is set, after the
    /// used ring was written and logged.
    fn log_signal(&self);
}

/// Where the used ring lies: its address and its size in bytes (with
/// `avail_event` when `VIRTIO_RING_F_EVENT_IDX` was negotiated). Given with
/// each write of one of its 2-byte fields: with a device IOTLB, C serves
/// those from the ring's metadata cache when one mapping, checked for
/// write permission, covers the whole ring (`vhost_vq_meta_fetch`), and
/// translates them with read permission otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsedRing {
    /// User address (an IOVA with a device IOTLB).
    pub(crate) addr: u64,
    /// Size in bytes.
    pub(crate) len: u32,
}

/// Translation of guest buffer addresses, as the kernel provides it.
pub(crate) trait Translate {
    /// Translates `len` bytes at guest address `addr` into user pieces, like
    /// [`super::super::memory::intervalmap::IntervalMap::translate`] on the device IOTLB if
    /// there is one, else on the memory table: returns how many pieces it
    /// stored at the start of `out` (at most `out.len()`), none of them
    /// empty, adding up to exactly `len` bytes. [`super::chain::Chain::len`] counts on
    /// it, and so does the worker, which hands the pieces to a socket as
    /// iovecs of that many bytes.
    ///
    /// On a miss in the device IOTLB the implementation must also queue a
    /// `VHOST_IOTLB_MISS` message for the address in the error and `access`,
    /// as C's `translate_desc` does; the ring then reports
    /// [`super::chain::RingError::IotlbMiss`] so the worker stops and retries once
    /// userspace has answered.
    fn translate(
        &self,
        addr: u64,
        len: u32,
        access: u32,
        out: &mut [Piece],
    ) -> Result<usize, TranslateError>;
    /// Whether [`Translate::translate`] goes through a device IOTLB.
    fn device_iotlb(&self) -> bool;
    /// The `index`-th entry of the memory table, or `None` past the end;
    /// used to map user addresses back to guest addresses for the dirty log
    /// when a device IOTLB is in use.
    fn umem_region(&self, index: usize) -> Option<Entry>;
}

/// Writes used-ring elements at user address `at`, little endian, through
/// a stack buffer: [`RingMemory::write_used_elems`] for memory that cannot
/// take the elements as they lie. C writes them with one copy; the buffer
/// does it in a few, with the same result unless it faults half-way (when
/// C may also have written a part). A few elements only zero a few bytes
/// of buffer: zeroing 512 bytes costs more than the rest of `add_used`
/// (Documentation/performance.rst).
pub(crate) fn write_used_elems_buffered<M: RingMemory + ?Sized>(
    mem: &M,
    mut at: u64,
    heads: &[UsedElem],
) -> Result<(), Errno> {
    let mut small = [0u8; 8 * USED_ELEM_SIZE as usize];
    let mut big;
    let buf: &mut [u8] = if heads.len() <= 8 {
        &mut small
    } else {
        big = [0u8; 64 * USED_ELEM_SIZE as usize];
        &mut big
    };
    let per = buf.len() / USED_ELEM_SIZE as usize;
    for chunk in heads.chunks(per) {
        let bytes = chunk.len() * USED_ELEM_SIZE as usize;
        for (e, out) in chunk.iter().zip(buf.chunks_exact_mut(8)) {
            out.copy_from_slice(&e.to_le_bytes());
        }
        mem.write(at, &buf[..bytes]).map_err(|_| Errno::EFAULT)?;
        at = at.wrapping_add(bytes as u64);
    }
    Ok(())
}
