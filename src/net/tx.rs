// SPDX-License-Identifier: GPL-2.0

//! The TX handler: sends what the guest posted (C's `handle_tx`,
//! `handle_tx_copy`, `handle_tx_zerocopy`).

use crate::kapi::socket::Socket;
use crate::kapi::version::CONTRACT;
use crate::kapi::xdp::BuildError;
use crate::kapi::zcopy::{self, DONE, FAILED, SLOTS};
use crate::net::vq::{round, NetCtx, NetVq, Round, BATCH, BYTE_WEIGHT};
use crate::vcore::busypoll::BusyPoll;
use crate::vcore::diag::Reason;
use crate::vcore::errno::Errno;
use crate::vcore::ring::chain::{RingError, MAX_PACKET_READS};
use crate::vcore::ring::desc::UsedElem;
use crate::vhost::access::prefetch;
use crate::vhost::worker::WORK_TX;
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// Zerocopy only pays off from this many bytes (C's `VHOST_GOODCOPY_LEN`).
const GOODCOPY_LEN: usize = 256;

impl Round<'_> {
    /// Hands the TX batch to the socket, then publishes the used entries
    /// (C's `vhost_tx_batch`). If the socket refuses the batch, C reports
    /// it and forgets those used entries too; so does this. Inlined: as a
    /// call it cost the latency row about 30 instructions a round trip.
    #[inline(always)]
    fn tx_batch(&mut self, sock: &Socket) {
        if self.tx_send(sock) {
            self.signal_used();
        }
    }

    /// Hands the TX batch to the socket, and leaves the used entries for
    /// later; false if the socket refused it (reported, the entries not
    /// yet published forgotten, as `tx_batch` says).
    #[inline(always)]
    fn tx_send(&mut self, sock: &Socket) -> bool {
        let xdp = &mut self.q.bufs.ext;
        if xdp.len() != 0 && xdp.send(sock).is_err() {
            self.vq_err(Reason::TxBatch, None);
            self.q.bufs.done = 0;
            return false;
        }
        true
    }

    /// Copies one packet, the chain in the first `out_num` pieces, into
    /// the TX batch (`XdpBatch::build`).
    fn xdp_build(
        &mut self,
        sock: &Socket,
        sock_hlen: usize,
        out_num: usize,
        hlen: usize,
        len: usize,
    ) -> Result<(), BuildError> {
        let bufs = &mut *self.q.bufs;
        bufs.ext
            .build(sock, sock_hlen, &bufs.iov[..out_num], hlen, len)
    }
}

/// The next chain the guest posted for TX, checked as C's `get_tx_bufs`:
/// its head, how many pieces it has in the scratch iovecs, and its length
/// without the vhost header (the pieces hold `hlen` bytes more, the
/// whole `Chain::len`). `None` ends the round: nothing posted (kicks
/// re-enabled, after an optional busy poll), an IOTLB miss, or a broken
/// ring (reported).
///
/// With a busy-poll budget, every fetch that finds the ring empty spins
/// once before giving up, as C's `vhost_net_tx_get_vq_desc` does: not
/// once per round, or a ring that keeps running dry for a moment would
/// sleep (and be woken by a kick) after its first spin.
#[inline(always)]
fn tx_chain(
    ctx: NetCtx<'_>,
    r: &mut Round<'_>,
    sock: &Socket,
    hlen: usize,
    busyloop_us: u32,
) -> Option<(u16, usize, usize)> {
    let mut busy_polled = false;
    loop {
        let chain = match r.q.get_desc_chain(0, None, MAX_PACKET_READS) {
            Ok(Some(c)) => c,
            Ok(None) => {
                if busyloop_us != 0 && !busy_polled {
                    // Publish what was sent, then spin briefly for more
                    // before going back to kicks.
                    busy_polled = true;
                    r.tx_batch(sock);
                    match ctx.busy_poll(busyloop_us, || !r.q.avail_empty()) {
                        BusyPoll::Ready => {
                            r.q.stats().busypoll_hits.add(1);
                            continue;
                        }
                        BusyPoll::Interrupted => {
                            ctx.dev.worker.queue(WORK_TX);
                            return None;
                        }
                        BusyPoll::TimedOut => {}
                    }
                }
                if r.enable_notify_raced() {
                    continue;
                }
                return None;
            }
            Err(RingError::IotlbMiss { .. }) => return None,
            Err(RingError::Yield) => {
                ctx.dev.worker.queue(WORK_TX);
                return None;
            }
            Err(RingError::Broken(e, reason)) => {
                r.vq_err(reason, Some(e));
                return None;
            }
        };
        if chain.in_num != 0 {
            // C: "Unexpected descriptor format for TX".
            r.vq_err(Reason::TxFormat, Some(Errno::EFAULT));
            return None;
        }
        let len = (chain.len as usize).saturating_sub(hlen);
        if len == 0 {
            // C: "Unexpected header len for TX".
            r.vq_err(Reason::TxHeaderLen, Some(Errno::EFAULT));
            return None;
        }
        return Some((chain.head, chain.out_num, len));
    }
}

/// Whether a send error means "no room now, retry the chain later".
fn tx_retry(e: Error) -> bool {
    e == EAGAIN || e == ENOMEM || e.to_errno() == -Errno::ENOBUFS.0
}

/// Runs the TX ring: sends what the guest posted (C's `handle_tx`), by
/// copying, or without copying when zerocopy is on and the socket can.
// Out of line: inlined together into the worker's loop, the two handlers
// share one register allocation, and a change in one costs the other
// (Documentation/performance/notes.inc, issue 23).
#[inline(never)]
pub(crate) fn handle_tx(ctx: NetCtx<'_>, vqm: &Mutex<NetVq>) {
    let mut guard = vqm.lock();
    let nvq = &mut *guard;
    let hlen = nvq.vhost_hlen;
    let sock_hlen = nvq.sock_hlen;
    let busyloop_us = nvq.vq.busyloop_timeout;
    let num = nvq.vq.num() as usize;
    let poll = ctx.sock_poll;
    // The backend first, as C: a ring without one asks the IOTLB for
    // nothing (a kick after `SET_BACKEND -1` queued misses otherwise).
    if nvq.vq.backend.is_none() || !prefetch(&ctx.dev.msgs, &nvq.vq, 1) {
        return;
    }
    let (sock, mut r) = round!(nvq, &ctx, 1);
    r.q.start_round();
    r.disable_notify();
    poll.pause(r.sock_owner);
    let t = TxCtx {
        ctx,
        hlen,
        sock_hlen,
        busyloop_us,
    };
    if r.zc.is_some() && sock.zerocopy() {
        t.zerocopy(sock, &mut r, num);
    } else {
        t.copy(sock, &mut r, sock_hlen);
    }
}

/// What a TX round needs besides the ring: the device's context (its
/// socket poll is restarted when the socket is full), the header vhost
/// strips and the busy-poll budget.
struct TxCtx<'a> {
    ctx: NetCtx<'a>,
    hlen: usize,
    sock_hlen: usize,
    busyloop_us: u32,
}

impl TxCtx<'_> {
    /// The socket is full: give the chain back and wait for room.
    fn socket_full(&self, r: &mut Round<'_>, sock: &Socket, head: u16) {
        r.q.discard(1, head);
        let _ = self.ctx.sock_poll.start(r.sock_owner, sock);
    }

    /// C's `handle_tx_copy`.
    fn copy(&self, sock: &Socket, r: &mut Round<'_>, sock_hlen: usize) {
        let (ctx, hlen) = (self.ctx, self.hlen);
        let mut bytes = 0usize;
        let mut pkts = 0usize;
        // C batches into tun/tap only when their send buffer is unlimited.
        let can_batch = sock.can_batch();
        loop {
            if r.q.bufs.done == BATCH {
                r.tx_batch(sock);
            }
            let Some((head, out_num, len)) = tx_chain(ctx, r, sock, hlen, self.busyloop_us) else {
                break;
            };
            // `bytes` counts the packets handed to the socket (C adds
            // `len` before it tries, but only reads the sum once the
            // packet went: the same weights, and the statistics need no
            // correction for a packet given back).
            let mut more = 0;
            if can_batch {
                let built = loop {
                    match r.xdp_build(sock, sock_hlen, out_num, hlen, len) {
                        // The packets batched go first, and this one is
                        // built again into an empty batch, which is never
                        // `PageFull`. Where the socket frees what it takes
                        // at once (tun dropping or delivering it on the
                        // spot), the allocator carves its block again
                        // instead of taking a new one, which a kernel with
                        // init_on_alloc (Debian's) zeroes: 32 KiB every 64
                        // packets of 64 bytes. Their used entries wait for
                        // the batch's end, as in C: the guest sees C's.
                        Err(BuildError::PageFull) => {
                            r.tx_send(sock);
                        }
                        b => break b,
                    }
                };
                match built {
                    Ok(()) => {
                        bytes += len;
                        r.push_used(head);
                        pkts += 1;
                        if ctx.exceeds_weight(WORK_TX, pkts, bytes) {
                            break;
                        }
                        continue;
                    }
                    Err(BuildError::TooBig) => {
                        // Sent on its own, after what is batched; 7.3's C
                        // leaves an empty batch, and the chains used so
                        // far, for later (`vcore::contract`). An early
                        // send (`PageFull`) never empties the batch C
                        // would still hold: the packet that caused it
                        // joins the emptied batch at once (the shim answers
                        // `TooBig` before `PageFull`), so `len() != 0` is
                        // C's `batched_xdp != 0` here (`in_order_tx_blocks`).
                        if !CONTRACT.tx_flush_only_batched || r.q.bufs.ext.len() != 0 {
                            r.tx_batch(sock);
                        }
                    }
                    // `PageFull` only while packets are batched, and the
                    // batch was just sent.
                    Err(BuildError::Failed | BuildError::PageFull) => {
                        r.tx_batch(sock);
                        self.socket_full(r, sock, head);
                        break;
                    }
                }
            } else if bytes + len < BYTE_WEIGHT && !r.q.avail_empty() {
                more = bindings::MSG_MORE;
            }
            let pieces = &r.q.bufs.iov[..out_num];
            // The chain's pieces hold `hlen + len` bytes (`tx_chain`), as
            // `sendmsg` checks.
            match sock.sendmsg(pieces, hlen, len, more) {
                Err(e) if tx_retry(e) => {
                    self.socket_full(r, sock, head);
                    break;
                }
                // Other errors and short sends drop the packet, as in C.
                Err(_) => r.q.stats().drop_packet(Reason::TxSend),
                Ok(_) => {}
            }
            bytes += len;
            r.push_used(head);
            pkts += 1;
            if ctx.exceeds_weight(WORK_TX, pkts, bytes) {
                break;
            }
        }
        r.tx_batch(sock);
        r.q.stats().count_moved(pkts, bytes, sock_hlen);
    }

    /// C's `handle_tx_zerocopy`: packets of at least `GOODCOPY_LEN` bytes
    /// go to the socket on the guest's pages while few are in flight; their
    /// chains reach the used ring when the socket releases the pages, in
    /// the order they were sent. Shorter ones are copied and used at once.
    fn zerocopy(&self, sock: &Socket, r: &mut Round<'_>, num: usize) {
        let (ctx, hlen) = (self.ctx, self.hlen);
        let mut bytes = 0usize;
        let mut pkts = 0usize;
        loop {
            // Give back what the socket released first.
            r.zc_signal_used();
            let Some((head, out_num, len)) = tx_chain(ctx, r, sock, hlen, self.busyloop_us) else {
                break;
            };
            let Some(z) = r.zc.as_deref_mut() else {
                break;
            };
            let use_zc = len >= GOODCOPY_LEN && !z.exceeds_maxpend(num) && z.select();
            let slot = z.upend;
            if use_zc {
                // `slot` is not armed: the slots from `done` to `upend` are
                // the armed ones and `exceeds_maxpend` keeps `upend` from
                // reaching `done` (`Zcopy::send` refuses an armed slot).
                z.ids[slot] = head;
                z.upend = (slot + 1) % SLOTS;
            }
            // `bytes` counts the packets handed to the socket, as in `copy`.
            let more = if bytes + len < BYTE_WEIGHT && !r.q.avail_empty() && !z.exceeds_maxpend(num)
            {
                bindings::MSG_MORE
            } else {
                0
            };
            let pieces = &r.q.bufs.iov[..out_num];
            // The chain's pieces hold `hlen + len` bytes (`tx_chain`), as
            // `sendmsg` checks.
            let sent = if use_zc {
                z.zc.send(slot, sock, pieces, hlen, len, more)
            } else {
                sock.sendmsg(pieces, hlen, len, more)
            };
            if let Err(e) = sent {
                let retry = tx_retry(e);
                if use_zc {
                    // The socket took no pages (`send` gave the slot back
                    // and dropped its reference), or released them already
                    // (then the callback has run and dropped it).
                    if retry {
                        z.upend = slot;
                    } else {
                        z.zc.set_status(slot, DONE);
                    }
                }
                if retry {
                    self.socket_full(r, sock, head);
                    break;
                }
                // Other errors drop the packet, as in C.
                r.q.stats().drop_packet(Reason::TxSend);
            }
            bytes += len;
            z.tx_packet();
            if use_zc {
                r.zc_signal_used();
            } else {
                r.push_used(head);
                r.signal_used_each();
            }
            pkts += 1;
            if ctx.exceeds_weight(WORK_TX, pkts, bytes) {
                break;
            }
        }
        r.q.stats().count_moved(pkts, bytes, self.sock_hlen);
    }
}

/// Gives the chains the socket released back to the guest, on the TX
/// ring whether or not it has a backend (C's `vhost_zerocopy_signal_used`
/// after a backend change).
pub(crate) fn zerocopy_signal_used(ctx: &NetCtx<'_>, nvq: &mut NetVq) {
    if nvq.zc.is_none() {
        return;
    }
    if let Some((_, mut r)) = Round::begin(nvq, ctx, 1) {
        r.zc_signal_used();
    }
}

impl Round<'_> {
    /// Publishes, in order, the zerocopy chains whose pages the socket
    /// released, up to the first still in flight (C's
    /// `vhost_zerocopy_signal_used`). As C, chains that wrap from the last
    /// slot to the first are published (and signalled) in two steps: C's
    /// slots are its used elements, which it hands over up to the end of
    /// the array, then from its start.
    pub(crate) fn zc_signal_used(&mut self) {
        loop {
            let Some(z) = self.zc.as_deref_mut() else {
                return;
            };
            // `done <= heads.len()` always; `added < room` below keeps
            // `done + added` an index of `heads`. `errs` is bounded by the
            // packets since `tx_packet` cleared it plus those in flight.
            let room = self.q.bufs.heads.len() - self.q.bufs.done;
            let mut added = 0;
            let mut wrapped = false;
            while z.done != z.upend && added < room && !wrapped {
                match z.zc.status(z.done) {
                    FAILED => z.errs += 1,
                    DONE => {}
                    _ => break,
                }
                z.zc.set_status(z.done, zcopy::CLEAR);
                self.q.bufs.heads[self.q.bufs.done + added] = UsedElem {
                    id: u32::from(z.ids[z.done]),
                    len: 0,
                };
                added += 1;
                z.done = (z.done + 1) % SLOTS;
                wrapped = z.done == 0;
            }
            self.q.bufs.done += added;
            // One entry each even in order, as C (its zerocopy path passes
            // no `nheads`): packets copied meanwhile were used at once.
            self.signal_used_each();
            if added < room && !wrapped {
                return;
            }
        }
    }
}
