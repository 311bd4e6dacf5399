// SPDX-License-Identifier: GPL-2.0

//! The RX handler: fills the guest's buffers from the socket (C's
//! `handle_rx`, `get_rx_bufs`).

use crate::kapi::socket::RecvHdr;
use crate::kapi::uaccess;
use crate::kapi::version::CONTRACT;
use crate::net::vq::{round, NetCtx, NetVq, Round, BATCH};
use crate::vcore::busypoll::BusyPoll;
use crate::vcore::diag::Reason;
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::Piece;
use crate::vcore::ring::chain::{RingError, MAX_PACKET_READS, UIO_MAXIOV};
use crate::vcore::ring::desc::UsedElem;
use crate::vcore::uapi::{VHOST_F_LOG_ALL, VIRTIO_F_VERSION_1, VIRTIO_NET_F_MRG_RXBUF};
use crate::vhost::access::prefetch;
use crate::vhost::worker::WORK_RX;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Size of `struct virtio_net_hdr`, the part of the header before
/// `num_buffers`.
const VNET_HDR_LEN: usize = 10;

/// Runs the RX ring: fills the guest's buffers from the socket (C's
/// `handle_rx`).
// Out of line: inlined together into the worker's loop, the two handlers
// share one register allocation, and a change in one costs the other
// (Documentation/performance/notes.inc, issue 23).
#[inline(never)]
pub(crate) fn handle_rx(ctx: NetCtx<'_>, vqm: &Mutex<NetVq>) {
    let mut guard = vqm.lock();
    let nvq = &mut *guard;
    let vhost_hlen = nvq.vhost_hlen;
    let sock_hlen = nvq.sock_hlen;
    let mergeable = nvq.vq.has_feature(VIRTIO_NET_F_MRG_RXBUF);
    // Whether the header gets `num_buffers` (C's `set_num_buffers`): with
    // MRG_RXBUF, and since 6.14 with VERSION_1 too (a constant per kernel).
    let set_num_buffers =
        mergeable || (CONTRACT.rx_num_buffers_v1 && nvq.vq.has_feature(VIRTIO_F_VERSION_1));
    let log_all = nvq.vq.has_feature(VHOST_F_LOG_ALL);
    let log_base = nvq.vq.log_base();
    let busyloop_us = nvq.vq.busyloop_timeout;
    let poll = ctx.sock_poll;
    // The backend first, as C: a ring without one asks the IOTLB for
    // nothing (a kick after `SET_BACKEND -1` queued misses otherwise).
    if nvq.vq.backend.is_none() || !prefetch(&ctx.dev.msgs, &nvq.vq, 0) {
        return;
    }
    let (sock, mut r) = round!(nvq, &ctx, 0);
    r.q.start_round();
    r.disable_notify();
    poll.pause(r.sock_owner);
    let mut bytes = 0usize;
    let mut pkts = 0usize;
    let mut sock_len;
    let mut hdr = RecvHdr::new();
    let in_order = r.q.in_order();
    // Every pass counts toward the weight, the ones that drop a packet or
    // retry included, as in C's `do { ... continue; ... } while
    // (!vhost_exceeds_weight(vq, ++recv_pkts, total_len))`: a peer that
    // only sends frames too big for the guest's buffers still yields the
    // worker every `PKT_WEIGHT` frames.
    'round: loop {
        'pass: {
            sock_len = sock.peek_len();
            if sock_len == 0 && busyloop_us != 0 {
                // As C's `vhost_net_rx_peek_head_len`: each peek that finds
                // the socket empty spins once before the round gives up.
                r.signal_used();
                let ready = || sock.peek_len() != 0 && !r.q.avail_empty();
                match ctx.busy_poll(busyloop_us, ready) {
                    BusyPoll::Ready => {
                        r.q.stats().busypoll_hits.add(1);
                        sock_len = sock.peek_len();
                    }
                    BusyPoll::Interrupted => {
                        ctx.dev.worker.queue(WORK_RX);
                        break 'round;
                    }
                    BusyPoll::TimedOut => {}
                }
            }
            if sock_len == 0 {
                break 'round;
            }
            // A C `int` length plus two headers of at most 12 bytes.
            sock_len += sock_hlen;
            let vhost_len = sock_len + vhost_hlen;
            let quota = if mergeable { UIO_MAXIOV } else { 1 };
            let got = match get_rx_bufs(&mut r, vhost_len, quota, log_all) {
                Ok(g) => g,
                Err(again) => {
                    if again {
                        ctx.dev.worker.queue(WORK_RX);
                    }
                    break 'round;
                }
            };
            let Some(got) = got else {
                if r.enable_notify_raced() {
                    r.rx_skipped += 1;
                    break 'pass;
                }
                break 'round;
            };
            if got.overrun {
                // Too big for the buffers: truncate to nothing and drop it
                // (CVE-2014-0077), the buffers stay with the guest.
                let one = [r.q.bufs.iov[0]];
                // `iov[0]` is a piece of the first chain, and translated
                // pieces are never empty: it holds a byte.
                let _ = sock.recvmsg(&mut hdr, &one, 0, 1);
                r.q.stats().drop_packet(Reason::RxTooBig);
                r.rx_skipped += 1;
                break 'pass;
            }
            let pieces = &r.q.bufs.iov[..got.in_num];
            // Not overrun, the pieces hold at least `vhost_len = vhost_hlen
            // + sock_len` bytes (`RxBufs`), as `recvmsg` checks.
            let r_len = sock
                .recvmsg(&mut hdr, pieces, vhost_hlen, sock_len)
                .unwrap_or_default();
            if r_len != sock_len {
                // The packet went away or changed size meanwhile: give the
                // buffers back and go on.
                discard_packet(&mut r, got.heads);
                r.rx_skipped += 1;
                break 'pass;
            }
            if vhost_hlen != 0 && write_at(pieces, 0, &[0u8; VNET_HDR_LEN]).is_err() {
                r.vq_err(Reason::RxHdrWrite, None);
                break 'round;
            }
            if set_num_buffers
                && write_at(pieces, VNET_HDR_LEN, &(got.heads as u16).to_le_bytes()).is_err()
            {
                r.vq_err(Reason::RxNumBuffers, None);
                discard_packet(&mut r, got.heads);
                break 'round;
            }
            // `get_rx_bufs` found a slot for each head: at most `HEADS`.
            r.q.bufs.done += got.heads;
            if in_order {
                r.push_used_in_order(got.heads);
            }
            if r.q.bufs.done > BATCH {
                r.signal_used();
            }
            if log_all {
                r.q.log_write(log_base, got.log_num, vhost_len as u64, got.in_num);
            }
            bytes += vhost_len;
        }
        pkts += 1;
        if ctx.exceeds_weight(WORK_RX, pkts, bytes) {
            break;
        }
    }
    if sock_len == 0 {
        let _ = poll.start(r.sock_owner, sock);
    }
    r.signal_used();
    // Every pass that did not `break 'pass` received a packet; frame
    // bytes, without the two headers (`vhost_len` includes them).
    let got = pkts.wrapping_sub(r.rx_skipped);
    r.q.stats().count_moved(got, bytes, r.rx_hdrs);
}

/// Gives back the `heads` chains just collected for a packet, whose used
/// entries are at `bufs.heads[done..]` (C's `vhost_discard_vq_desc`).
fn discard_packet(r: &mut Round<'_>, heads: usize) {
    let first = first_head(r, r.q.bufs.done, heads);
    r.q.discard(heads as u16, first);
}

/// The head of the first of `heads` chains whose entries are at
/// `bufs.heads[done..]` (0 when there are none: nothing to give back).
fn first_head(r: &Round<'_>, done: usize, heads: usize) -> u16 {
    match r.q.bufs.heads.get(done) {
        Some(h) if heads != 0 => h.id as u16,
        _ => 0,
    }
}

/// The buffers collected for one received packet.
struct RxBufs {
    /// Chains taken (used entries filled at `done..done + heads`).
    heads: usize,
    /// Writable pieces, from the start of `iov`: the chains' pieces, which
    /// hold the chains' `Chain::len`s, at least `datalen` bytes in all
    /// unless `overrun`.
    in_num: usize,
    /// Log entries, from the start of the scratch log.
    log_num: usize,
    /// The packet is larger than the buffers the guest offered.
    overrun: bool,
}

/// `get_rx_bufs` found more pieces than UIO_MAXIOV before the packet's
/// end: as C, the `heads` chains taken go back and the round stops
/// (`-ENOBUFS`), without a `vq_err`. Out of line: the packet loop's code
/// stays as it was (make profile, RX 64 B: 18 more instructions a packet
/// with this and [`bad_rx_chain`] inline).
#[cold]
#[inline(never)]
fn too_many_pieces(r: &mut Round<'_>, done: usize, heads: usize) {
    let first = first_head(r, done, heads);
    r.q.discard(heads as u16, first);
    r.q.note_err(Reason::RxNoRoom, Some(Errno::ENOBUFS));
}

/// `get_rx_bufs` took a chain of the wrong format (readable pieces, or no
/// writable one) after `heads` good ones: C's "unexpected descriptor
/// format for RX". C gives back only the chains taken before it: the bad
/// chain, with head `bad_head`, stays consumed (without a used entry), so
/// the next kick does not meet it again; in order, the next chain starts
/// after its descriptors (`discard_before_last`).
#[cold]
#[inline(never)]
fn bad_rx_chain(r: &mut Round<'_>, done: usize, heads: usize, bad_head: u16) {
    let first = first_head(r, done, heads);
    r.q.discard_before_last(heads as u16, first, bad_head);
    r.vq_err(Reason::RxFormat, Some(Errno::EINVAL));
}

/// Collects chains for a packet of `datalen` bytes (C's `get_rx_bufs`).
/// `Ok(None)`: the ring ran out of buffers (nothing consumed). `Err`: the
/// ring is broken (reported) or missed in the IOTLB, or (`Err(true)`) the
/// round read `MAX_ROUND_READS` descriptors and the ring must run again
/// in a later round; nothing consumed.
///
/// Arithmetic: `datalen` (a packet, nonzero and under 2^32) less at most
/// `quota <= UIO_MAXIOV` chain lengths (each under 2^42) stays far inside
/// `i64`; `heads` and `seg` are bounded by the slots and pieces found; the
/// loop runs at least once (`quota >= 1`), so `heads >= 1` after it.
fn get_rx_bufs(
    r: &mut Round<'_>,
    datalen: usize,
    quota: usize,
    log_all: bool,
) -> Result<Option<RxBufs>, bool> {
    let mut left = datalen as i64;
    let mut heads = 0usize;
    let mut seg = 0usize;
    let mut nlogs = 0usize;
    let mut last_len = 0u32;
    // The packet's descriptor reads, over all its chains.
    let mut reads_left = MAX_PACKET_READS;
    let done = r.q.bufs.done;
    let fail = |r: &mut Round<'_>, heads: usize, e: Option<RingError>| {
        let first = first_head(r, done, heads);
        r.q.discard(heads as u16, first);
        if let Some(RingError::Broken(errno, reason)) = e {
            r.vq_err(reason, Some(errno));
        }
    };
    while left > 0 && heads < quota {
        if seg >= UIO_MAXIOV {
            too_many_pieces(r, done, heads);
            return Err(false);
        }
        let log_from = if log_all { Some(nlogs) } else { None };
        let chain = match r.q.get_desc_chain(seg, log_from, reads_left) {
            Ok(Some(c)) => c,
            Ok(None) => {
                fail(r, heads, None);
                return Ok(None);
            }
            Err(e) => {
                fail(r, heads, Some(e));
                return Err(matches!(e, RingError::Yield));
            }
        };
        if chain.out_num != 0 || chain.in_num == 0 {
            bad_rx_chain(r, done, heads, chain.head);
            return Err(false);
        }
        // `chain.reads` is at most the `reads_left` given.
        reads_left -= chain.reads;
        nlogs += chain.log_num;
        let len = chain.len;
        last_len = len as u32;
        let Some(slot) = r.q.bufs.heads.get_mut(done + heads) else {
            // The first chain given back is this one if it is the only one.
            let first = if heads == 0 {
                chain.head
            } else {
                first_head(r, done, heads)
            };
            r.q.discard(heads as u16 + 1, first);
            r.q.note_err(Reason::RxNoRoom, Some(Errno::ENOBUFS));
            return Err(false);
        };
        *slot = UsedElem {
            id: u32::from(chain.head),
            len: last_len,
        };
        left -= len as i64;
        heads += 1;
        seg += chain.in_num;
    }
    // The last buffer holds what is left of the packet.
    r.q.bufs.heads[done + heads - 1].len = (i64::from(last_len) + left) as u32;
    if left > 0 {
        let first = first_head(r, done, heads);
        r.q.discard(heads as u16, first);
        return Ok(Some(RxBufs {
            heads,
            in_num: seg,
            log_num: nlogs,
            overrun: true,
        }));
    }
    Ok(Some(RxBufs {
        heads,
        in_num: seg,
        log_num: nlogs,
        overrun: false,
    }))
}

/// Writes `data` at byte `offset` of the buffer made of `pieces`.
fn write_at(pieces: &[Piece], offset: usize, data: &[u8]) -> Result {
    // The merged-buffer count: two bytes in the first piece, `put_user`
    // (C's `copy_to_iter` of it is a call too; the generic copy is longer).
    if let (Ok(v), Some(first)) = (<[u8; 2]>::try_from(data), pieces.first()) {
        if (offset as u64).saturating_add(2) <= first.len {
            let at = first.addr.wrapping_add(offset as u64);
            return uaccess::put_user_u16(at, u16::from_ne_bytes(v));
        }
    }
    let mut skip = offset as u64;
    let mut written = 0usize;
    for p in pieces {
        if written == data.len() {
            break;
        }
        if skip >= p.len {
            skip -= p.len;
            continue;
        }
        // `skip < p.len` and `written < data.len()`: no subtraction wraps
        // and `written + n <= data.len()`. The address wraps as C's
        // `iov_base + skip`; the copy checks it (`access_ok`).
        let n = ((p.len - skip) as usize).min(data.len() - written);
        uaccess::copy_to_user(p.addr.wrapping_add(skip), &data[written..written + n])?;
        written += n;
        skip = 0;
    }
    if written == data.len() {
        Ok(())
    } else {
        Err(EFAULT)
    }
}
