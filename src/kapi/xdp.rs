// SPDX-License-Identifier: GPL-2.0

//! A TX batch for tun/tap: packets copied into pre-built XDP buffers and
//! handed over in one `sendmsg` with `TUN_MSG_PTR` (C's
//! `vhost_net_build_xdp` and `vhost_tx_batch`). The buffer layout is the
//! shim's (skb and XDP macros); the copy and the decisions are here.

use super::shim::vhost_net_rs_xdp_send;
use super::shim::{vhost_net_rs_xdp_batch, vhost_net_rs_xdp_batch_free};
use super::shim::{vhost_net_rs_xdp_batch_new, vhost_net_rs_xdp_buf};
use super::shim::{vhost_net_rs_xdp_discard, vhost_net_rs_xdp_hdr_offset};
use super::socket::Socket;
use super::uaccess;
use crate::vcore::memory::intervalmap::Piece;
use kernel::prelude::*;

/// Buffers in a batch (C's `VHOST_NET_BATCH`).
pub(crate) const XDP_BATCH: usize = 64;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const NEEDS_CSUM: u8 = 1;

/// Why a packet could not join the batch.
pub(crate) enum BuildError {
    /// Too big for a page: send it on its own (`ENOSPC`).
    TooBig,
    /// Anything else: C flushes, gives the chain back and stops.
    Failed,
    /// The allocator's page has no room left while packets are batched:
    /// send them, then build again (the shim's `-EAGAIN`).
    PageFull,
}

/// Up to [`XDP_BATCH`] packets waiting to be handed to tun/tap.
///
/// # Invariants
///
/// `ptr` is a live batch from `vhost_net_rs_xdp_batch_new`; its first
/// `n <= XDP_BATCH` buffers are made (`vhost_net_rs_xdp_buf`), filled and
/// owned by it until sent. `hdr_off` is `vhost_net_rs_xdp_hdr_offset()`.
pub(crate) struct XdpBatch {
    ptr: *mut vhost_net_rs_xdp_batch,
    n: usize,
    /// Offset of the vnet header in a buffer (a constant of the shim's).
    hdr_off: usize,
}

// SAFETY: The batch is plain memory owned by one ring, used under its mutex.
unsafe impl Send for XdpBatch {}
// SAFETY: Shared references give no access (every method takes `&mut`).
unsafe impl Sync for XdpBatch {}

impl XdpBatch {
    /// An empty batch.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: Allocation without preconditions.
        let ptr = unsafe { vhost_net_rs_xdp_batch_new() };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: Returns a constant.
        let hdr_off = unsafe { vhost_net_rs_xdp_hdr_offset() };
        // INVARIANT: A new, empty batch, and the shim's offset.
        Ok(Self { ptr, n: 0, hdr_off })
    }

    /// Packets waiting.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Copies one packet into the batch: `len` bytes of `pieces` after the
    /// first `skip` (the header vhost strips), of which the first
    /// `sock_hlen` are the socket's vnet header. A packet longer than a
    /// page is [`BuildError::TooBig`], as the shim would answer.
    pub(crate) fn build(
        &mut self,
        sock: &Socket,
        sock_hlen: usize,
        pieces: &[Piece],
        skip: usize,
        len: usize,
    ) -> core::result::Result<(), BuildError> {
        if len < sock_hlen || self.n >= XDP_BATCH {
            return Err(BuildError::Failed);
        }
        // The shim sizes the buffer with `size_t`/`unsigned int` sums of
        // `len` and `sock_hlen`: bounding both by a page here keeps them
        // from wrapping there into a buffer smaller than the slices below.
        if len > kernel::bindings::PAGE_SIZE {
            return Err(BuildError::TooBig);
        }
        let mut pad = 0u32;
        // SAFETY: `ptr` is live (invariant) and `n < XDP_BATCH` (above) is
        // a slot no buffer of the batch uses; `sock_hlen <= len` (above); the
        // socket is referenced by the ring; `pad` is a valid local.
        let buf = unsafe {
            vhost_net_rs_xdp_buf(
                self.ptr,
                sock.as_raw(),
                sock_hlen,
                len,
                self.n as u32,
                &mut pad,
            )
        };
        // The shim's `ERR_PTR`s are the last page of the address space,
        // which holds no buffer (nor does 0, which it never returns).
        let err = (buf as isize).wrapping_neg();
        if buf.is_null() || (1..=4095).contains(&err) {
            return Err(match crate::vcore::errno::Errno(err as i32) {
                crate::vcore::errno::Errno::ENOSPC => BuildError::TooBig,
                crate::vcore::errno::Errno::EAGAIN => BuildError::PageFull,
                _ => BuildError::Failed,
            });
        }
        let hdr_off = self.hdr_off;
        let pad = pad as usize;
        // SAFETY: With `sock_hlen <= len <= PAGE_SIZE` (checked above) the
        // shim's sums do not wrap: it sized `buf` for `pad + len -
        // sock_hlen` data bytes plus its tail, and the header slot lies
        // within the pad (`pad >= hdr_off + sock_hlen`); nobody else uses
        // the buffer yet.
        let frame =
            unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), pad + (len - sock_hlen)) };
        // The whole packet in one copy, its header just before the data,
        // then the header, fixed, to its slot (C's `vhost_net_build_xdp`):
        // a copy from the guest costs more than this `memmove`, on a
        // hardened kernel (`check_object_size`) several times more.
        // `hdr_off + sock_hlen <= pad` (above), so the ranges are in `frame`.
        let at = pad - sock_hlen;
        let ok = copy_pieces(pieces, skip, &mut frame[at..]).is_ok()
            && fix_csum_hdr_len(&mut frame[at..pad], len);
        if !ok {
            // SAFETY: `buf` came from the batch's allocator and is not
            // counted (`n` unchanged).
            unsafe { vhost_net_rs_xdp_discard(buf) };
            return Err(BuildError::Failed);
        }
        frame.copy_within(at..pad, hdr_off);
        // INVARIANT: Buffer `n` is made and filled: the batch owns it.
        self.n += 1;
        Ok(())
    }

    /// Hands the batch to the socket. On failure tun does not take the
    /// buffers and they are freed; the batch is empty either way.
    pub(crate) fn send(&mut self, sock: &Socket) -> Result {
        if self.n == 0 {
            return Ok(());
        }
        let n = self.n as u32;
        // INVARIANT: Sent or freed, the buffers are no longer ours.
        self.n = 0;
        // SAFETY: `ptr` is live with `n` buffers made and filled; the socket is
        // a tun/tap socket referenced by the ring.
        let r = unsafe { vhost_net_rs_xdp_send(self.ptr, sock.as_raw(), n) };
        kernel::error::to_result(r)
    }
}

impl Drop for XdpBatch {
    fn drop(&mut self) {
        // Batches are always sent before the ring lets go of them, so no
        // buffer of theirs is left to free here.
        // SAFETY: By the type invariant `ptr` is live; nothing uses it after.
        unsafe { vhost_net_rs_xdp_batch_free(self.ptr) };
    }
}

/// Copies `out.len()` bytes from the buffer made of `pieces`, starting
/// `offset` bytes in.
fn copy_pieces(pieces: &[Piece], offset: usize, out: &mut [u8]) -> Result {
    let mut skip = offset as u64;
    let mut done = 0usize;
    for p in pieces {
        if done == out.len() {
            break;
        }
        if skip >= p.len {
            skip -= p.len;
            continue;
        }
        // `skip < p.len` and `done < out.len()`, so neither subtraction
        // wraps and `done + n <= out.len()`. The address wraps as C's
        // `iov_base + skip` would; the copy checks it (`access_ok`).
        let n = ((p.len - skip) as usize).min(out.len() - done);
        uaccess::copy_from_user(p.addr.wrapping_add(skip), &mut out[done..done + n])?;
        done += n;
        skip = 0;
    }
    if done == out.len() {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// C's check of a checksum-offload header: `hdr_len` must cover the
/// checksum field, raised if needed; a packet shorter than that is refused.
fn fix_csum_hdr_len(hdr: &mut [u8], len: usize) -> bool {
    if hdr.len() < 10 || hdr[0] & NEEDS_CSUM == 0 {
        return true;
    }
    let le = |o: usize| u16::from_le_bytes([hdr[o], hdr[o + 1]]);
    let (hdr_len, csum_start, csum_offset) = (le(2), le(6), le(8));
    // At most 2 * 0xffff + 2: no `u32` overflow.
    let need = u32::from(csum_start) + u32::from(csum_offset) + 2;
    if need > u32::from(hdr_len) {
        // Truncated to 16 bits as C's `__virtio16` store of the sum.
        let need16 = need as u16;
        hdr[2..4].copy_from_slice(&need16.to_le_bytes());
        if usize::from(need16) > len {
            return false;
        }
    }
    true
}
