// SPDX-License-Identifier: GPL-2.0

//! The backend of a virtqueue: a tun/tap, macvtap or `AF_PACKET` socket.

use super::errno;
use super::poll::PollFile;
use super::shim::vhost_net_rs_iov_iter_ubuf;
use super::shim::{ptr_ring, tap_get_ptr_ring, tap_get_socket, tun_get_socket, tun_get_tx_ring};
use super::shim::{tun_msg_ctl, vhost_net_rs_sock_type, vhost_net_rs_sock_zerocopy};
use super::shim::{vhost_net_rs_rx_ptr_len, vhost_net_rs_rx_ring_consume};
use super::shim::{vhost_net_rs_rx_ring_unconsume, vhost_net_rs_sk_peek_len};
use super::shim::{vhost_net_rs_sock_can_batch, vhost_net_rs_sock_family};
use crate::vcore::errno::Errno;
use crate::vcore::memory::intervalmap::Piece;
use core::ffi::{c_int, c_void};
use kernel::bindings::{self, fput};
use kernel::error::from_err_ptr;
use kernel::prelude::*;

/// A `struct tun_msg_ctl` (`include/linux/if_tun.h`, generated from the
/// shim's header): what `sendmsg` passes to tun/tap in `msg_control`.
#[repr(transparent)]
pub(super) struct TunMsgCtl(pub(super) tun_msg_ctl);

impl TunMsgCtl {
    /// An empty control message, for `Zcopy::arm` to fill.
    pub(super) const fn new() -> Self {
        Self(tun_msg_ctl {
            type_: 0,
            num: 0,
            ptr: core::ptr::null_mut(),
        })
    }
}
// A `Piece` is passed to the socket as a `struct iovec` without copying:
// `#[repr(C)]` { u64 addr, u64 len } against { void *iov_base, size_t
// iov_len }, the same size, alignment and field offsets on 64-bit, and
// every bit pattern is valid for both.
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Piece>() == size_of::<bindings::iovec>());
    assert!(align_of::<Piece>() == align_of::<bindings::iovec>());
    assert!(offset_of!(Piece, addr) == offset_of!(bindings::iovec, iov_base));
    assert!(offset_of!(Piece, len) == offset_of!(bindings::iovec, iov_len));
    assert!(size_of::<u64>() == size_of::<usize>());
};

/// Packets taken off the receive ring at once (C's `VHOST_NET_BATCH`).
const RX_BATCH: usize = 64;

/// Packets taken in batches off the receive ring of a tun/tap or macvtap
/// file (C's `vhost_net_buf`): one ring lock per [`RX_BATCH`] packets
/// instead of one per packet, and no socket lock to peek a length.
///
/// # Invariants
///
/// `ring` is the `ptr_ring` of `file`, which the [`Socket`] owning this
/// batch holds a reference on. `queue[head..tail]` are packets (an `sk_buff`
/// or a tun-tagged `xdp_frame` pointer) taken off `ring` in ring order and
/// owned by this batch; `head <= tail <= RX_BATCH`.
struct RxBatch {
    file: *mut bindings::file,
    ring: *mut ptr_ring,
    head: usize,
    tail: usize,
    queue: [*mut c_void; RX_BATCH],
}

impl RxBatch {
    /// The packet at the head, taking a new batch off the ring if none is
    /// left; `None` if the ring is empty too.
    // Twice per received packet (`peek_len`, `take`): inlined as before
    // `handle_rx` grew by its error reports (make profile).
    #[inline(always)]
    fn peek(&mut self) -> Option<*mut c_void> {
        if self.head == self.tail {
            // SAFETY: By the type invariant `file` and its `ring` are live;
            // `queue` has room for `RX_BATCH` pointers. The shim wakes tun's
            // queue for what it took (7.x, IFF_BACKPRESSURE).
            let n = unsafe {
                vhost_net_rs_rx_ring_consume(
                    self.file,
                    self.ring,
                    self.queue.as_mut_ptr(),
                    RX_BATCH as c_int,
                )
            };
            // INVARIANT: the ring gave us `n <= RX_BATCH` packets.
            self.head = 0;
            self.tail = usize::try_from(n).unwrap_or(0).min(RX_BATCH);
        }
        (self.head < self.tail).then(|| self.queue[self.head])
    }

    /// Hands the head packet over to the caller (who passes it to
    /// `recvmsg`, which consumes or frees it).
    // Once per received packet, in `recvmsg`: as `peek`.
    #[inline(always)]
    fn take(&mut self) -> *mut c_void {
        match self.peek() {
            Some(p) => {
                // `head < tail <= RX_BATCH`: `peek` found a packet.
                self.head += 1;
                p
            }
            None => core::ptr::null_mut(),
        }
    }
}

impl Drop for RxBatch {
    /// Gives what was not received back to the ring, in order, freeing
    /// what no longer fits (C's `vhost_net_buf_unproduce`).
    fn drop(&mut self) {
        // `head <= tail` (type invariant).
        let n = self.tail - self.head;
        if n != 0 {
            // SAFETY: By the type invariant `ring` is live (the owning
            // `Socket` drops us before its file reference) and we own
            // `queue[head..tail]`, whose ownership passes to the ring.
            unsafe {
                vhost_net_rs_rx_ring_unconsume(
                    self.ring,
                    self.queue.as_mut_ptr().add(self.head),
                    n as c_int,
                )
            };
        }
    }
}

/// `SOCK_RAW` of `include/linux/net.h`.
const SOCK_RAW: c_int = 3;

/// A socket the device sends to and receives from.
///
/// # Invariants
///
/// `sock` is a valid socket and we own one reference on its `file`, which
/// keeps the socket alive (`sockfd_lookup`/`fget`, released by `fput`, the
/// C module's `sockfd_put`).
pub(crate) struct Socket {
    sock: *mut bindings::socket,
    /// Receive batching, for the RX ring of a tun/tap or macvtap backend.
    rx: Option<KBox<RxBatch>>,
}

// SAFETY: A file reference may be moved to and dropped from any task,
// socket operations lock internally, and the packets of a receive batch are
// plain owned buffers that any task may hand over or give back.
unsafe impl Send for Socket {}
// SAFETY: See `Send`; shared use only calls thread-safe socket operations
// (the receive batch needs `&mut`).
unsafe impl Sync for Socket {}

impl Socket {
    /// The backend behind `fd`, as the C module's `get_socket` finds it: an
    /// `AF_PACKET` raw socket, or a tun/tap or macvtap file. Every failure
    /// is `ENOTSOCK`, as in C (which drops the specific reasons).
    pub(crate) fn lookup(fd: i32) -> Result<Self> {
        Self::raw(fd)
            .or_else(|_| Self::tap(fd))
            .map_err(|_| errno(Errno::ENOTSOCK))
    }

    /// An `AF_PACKET` socket of type `SOCK_RAW` (CVE-2020-10942: nothing
    /// else may pass, whatever its family).
    fn raw(fd: i32) -> Result<Self> {
        let mut err: c_int = 0;
        // SAFETY: `err` is a valid out-pointer; any `fd` is acceptable.
        let sock = unsafe { bindings::sockfd_lookup(fd, &mut err) };
        if sock.is_null() {
            return Err(errno(Errno::ENOTSOCK));
        }
        // INVARIANT: `sockfd_lookup` took a reference on the socket's file.
        let this = Self { sock, rx: None };
        // SAFETY: `sock` is a valid socket with its `sk` set.
        if unsafe { vhost_net_rs_sock_type(sock) } != SOCK_RAW {
            return Err(errno(Errno::ESOCKTNOSUPPORT));
        }
        // SAFETY: As above.
        if unsafe { vhost_net_rs_sock_family(sock) } != bindings::AF_PACKET as c_int {
            return Err(errno(Errno::EPFNOSUPPORT));
        }
        Ok(this)
    }

    /// The socket of a tun/tap or macvtap file.
    fn tap(fd: i32) -> Result<Self> {
        // SAFETY: Any descriptor value is acceptable; `fget` returns a
        // counted reference or null.
        let file = unsafe { bindings::fget(fd as u32) };
        if file.is_null() {
            return Err(EBADF);
        }
        // SAFETY: `file` is a valid file; both calls only compare its
        // `f_op` before returning its socket or an error pointer.
        let sock = from_err_ptr(unsafe { tun_get_socket(file) })
            // SAFETY: As above.
            .or_else(|_| from_err_ptr(unsafe { tap_get_socket(file) }));
        match sock {
            // INVARIANT: the reference from `fget` is the one on
            // `sock->file` (tun and tap sockets point at their own file).
            Ok(sock) => Ok(Self { sock, rx: None }),
            Err(e) => {
                // SAFETY: We own the reference `fget` returned.
                unsafe { fput(file) };
                Err(e)
            }
        }
    }

    /// Sends one packet gathered from `iov`: `len` bytes after its first
    /// `skip`, with `MSG_DONTWAIT` and `flags`. Returns the bytes sent;
    /// `EINVAL` if `skip + len` overflows or `iov` holds fewer bytes.
    ///
    /// `iov` holds user addresses of the calling task's address space (the
    /// worker runs in the owner's).
    pub(crate) fn sendmsg(
        &self,
        iov: &[Piece],
        skip: usize,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        self.sendmsg_ctl(iov, skip, len, flags, None)
    }

    /// [`Self::sendmsg`] with a tun/tap control message: with a
    /// `TUN_MSG_UBUF` one (zerocopy, [`super::zcopy::Zcopy::send`]), the
    /// socket builds the skb on the pages of `iov` and releases them
    /// through the `ubuf_info` in `ctl`.
    pub(super) fn sendmsg_ctl(
        &self,
        iov: &[Piece],
        skip: usize,
        len: usize,
        flags: u32,
        ctl: Option<&mut TunMsgCtl>,
    ) -> Result<usize> {
        let mut msg = bindings::msghdr {
            msg_flags: bindings::MSG_DONTWAIT | flags,
            ..Default::default()
        };
        if let Some(ctl) = ctl {
            // tun_sendmsg and tap_sendmsg read a kernel `tun_msg_ctl`.
            msg.__bindgen_anon_1.msg_control = core::ptr::from_mut::<TunMsgCtl>(ctl).cast();
            msg.msg_controllen = core::mem::size_of::<TunMsgCtl>();
        }
        // `iov` outlives `msg`, a local.
        set_iter(&mut msg, bindings::ITER_SOURCE, iov, skip, len)?;
        // SAFETY: By the type invariant `sock` is valid; its `ops` are set
        // for a live socket and every socket family we accept has sendmsg.
        let r = unsafe {
            let ops = (*self.sock).ops;
            match (*ops).sendmsg {
                Some(f) => f(self.sock, &mut msg, len),
                None => return Err(errno(Errno::EOPNOTSUPP)),
            }
        };
        kernel::error::to_result(r)?;
        Ok(r as usize)
    }

    /// Receives one packet into `iov` after its first `skip` bytes (`len`
    /// bytes of room there) with `MSG_DONTWAIT | MSG_TRUNC`: returns the
    /// packet's full length, which may exceed `len` (then the packet was
    /// truncated). `EINVAL`, before any packet is taken, if `skip + len`
    /// overflows or `iov` holds fewer bytes.
    ///
    /// With receive batching the packet is the one [`Self::peek_len`]
    /// measured, handed to the socket through `msg_control` as in C.
    ///
    /// `hdr` is the round's message header, reused for every packet as in
    /// C's `handle_rx`: only the iterator and `msg_control` are set here.
    // Inlined into the RX loop, like C's call in `handle_rx` (make profile).
    #[inline(always)]
    pub(crate) fn recvmsg(
        &mut self,
        hdr: &mut RecvHdr,
        iov: &[Piece],
        skip: usize,
        len: usize,
    ) -> Result<usize> {
        let msg = &mut hdr.0;
        // `iov` outlives the iterator's use: `recvmsg` below is its only
        // user, and the next packet's call sets it again before the socket
        // sees it.
        set_iter(msg, bindings::ITER_DEST, iov, skip, len)?;
        if let Some(rx) = self.rx.as_deref_mut() {
            // tun_recvmsg and tap_recvmsg take the packet from `msg_control`
            // and consume or free it, whatever the outcome.
            msg.__bindgen_anon_1.msg_control = rx.take();
        }
        // SAFETY: As in `sendmsg`.
        let r = unsafe {
            let ops = (*self.sock).ops;
            match (*ops).recvmsg {
                Some(f) => f(
                    self.sock,
                    msg,
                    len,
                    (bindings::MSG_DONTWAIT | bindings::MSG_TRUNC) as c_int,
                ),
                None => return Err(errno(Errno::EOPNOTSUPP)),
            }
        };
        if r < 0 {
            return Err(Error::from_errno(r));
        }
        Ok(r as usize)
    }

    /// Length of the next packet waiting to be received, 0 if none (C's
    /// `peek_head_len`): tun/tap and macvtap answer through their
    /// `peek_len`, a packet socket by its receive queue.
    ///
    /// With receive batching, the length of the batch's head packet.
    #[inline(always)]
    pub(crate) fn peek_len(&mut self) -> usize {
        if let Some(rx) = self.rx.as_deref_mut() {
            return match rx.peek() {
                // SAFETY: `p` is a packet the batch owns.
                Some(p) => usize::try_from(unsafe { vhost_net_rs_rx_ptr_len(p) }).unwrap_or(0),
                None => 0,
            };
        }
        // SAFETY: By the type invariant `sock` is valid.
        let len = unsafe {
            match (*(*self.sock).ops).peek_len {
                Some(f) => f(self.sock),
                None => vhost_net_rs_sk_peek_len(self.sock),
            }
        };
        usize::try_from(len).unwrap_or(0)
    }

    /// The raw socket, for the shim.
    pub(super) fn as_raw(&self) -> *mut bindings::socket {
        self.sock
    }

    /// Whether tun/tap batching applies: C batches only when the socket's
    /// send buffer is unlimited (tun and tap set it so).
    pub(crate) fn can_batch(&self) -> bool {
        // SAFETY: By the type invariant `sock` is valid.
        unsafe { vhost_net_rs_sock_can_batch(self.sock) }
    }

    /// Receives in batches from the file's ring if it has one (tun/tap and
    /// macvtap; C's `get_tap_ptr_ring` for the RX ring). A packet socket
    /// keeps receiving one packet at a time.
    pub(crate) fn batch_rx(&mut self) -> Result {
        let file = self.file();
        // SAFETY: By the type invariant the file is valid; both calls only
        // compare its `f_op` before returning its ring or an error pointer
        // (C's `get_tap_ptr_ring`).
        let ring = from_err_ptr(unsafe { tun_get_tx_ring(file) })
            // SAFETY: As above.
            .or_else(|_| from_err_ptr(unsafe { tap_get_ptr_ring(file) }));
        let Ok(ring) = ring else {
            return Ok(());
        };
        // INVARIANT: `ring` belongs to our file; the batch starts empty.
        self.rx = Some(KBox::new(
            RxBatch {
                file,
                ring,
                head: 0,
                tail: 0,
                queue: [core::ptr::null_mut(); RX_BATCH],
            },
            GFP_KERNEL,
        )?);
        Ok(())
    }

    /// Whether the socket can send without copying (tun/tap and macvtap
    /// set `SOCK_ZEROCOPY`).
    pub(crate) fn zerocopy(&self) -> bool {
        // SAFETY: By the type invariant `sock` is valid.
        unsafe { vhost_net_rs_sock_zerocopy(self.sock) }
    }

    /// Whether both are the same socket.
    pub(crate) fn same(&self, other: &Self) -> bool {
        self.sock == other.sock
    }

    /// The socket's file.
    fn file(&self) -> *mut bindings::file {
        // SAFETY: By the type invariant, `sock` is valid.
        unsafe { (*self.sock).file }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Packets go back to the ring while the file still holds it.
        drop(self.rx.take());
        // SAFETY: By the type invariant we own one reference on the file.
        unsafe { fput((*self.sock).file) };
    }
}

/// Points `msg`'s iterator at the buffer made of `iov` (in direction
/// `dir`), past its first `skip` bytes, with `len` bytes left; `EINVAL` if
/// `skip + len` overflows or the entries of `iov` hold fewer bytes (the
/// kernel's iterator trusts its byte count and steps from entry to entry
/// until it has counted that many bytes, `iterate_iovec`, `iov_npages`,
/// past the end of `iov` if they hold fewer).
///
/// `iov` must stay valid as long as the socket may use `msg`'s iterator:
/// the callers use the iterator only while they borrow `iov`.
// Inlined: the per-packet path of `sendmsg` and `recvmsg`. The bound is a
// pass over the entries, a handful per packet.
#[inline(always)]
fn set_iter(
    msg: &mut bindings::msghdr,
    dir: core::ffi::c_uint,
    iov: &[Piece],
    skip: usize,
    len: usize,
) -> Result {
    let count = skip.checked_add(len).ok_or(EINVAL)?;
    let want = count as u64;
    // Most packets fit their first piece: one compare, and a one-segment
    // iterator (`ITER_UBUF`, as a `read` or `write` of one buffer makes),
    // which every copy steps through without walking segments: for the
    // socket the same bytes as a one-entry `ITER_IOVEC`.
    if let Some(p) = iov.first().filter(|p| p.len >= want) {
        // SAFETY: `msg_iter` is ours to set; `p.addr + skip` starts `len`
        // bytes within the piece (`skip + len <= p.len`), a user address
        // that the iterator's copies check (`access_ok`) and fault on
        // safely; the iterator refers to no memory of `iov`.
        unsafe {
            vhost_net_rs_iov_iter_ubuf(
                &mut msg.msg_iter,
                dir,
                p.addr.wrapping_add(skip as u64) as usize as *mut core::ffi::c_void,
                len,
            )
        };
        return Ok(());
    }
    let mut held = 0u64;
    for p in iov {
        if held >= want {
            break;
        }
        held = held.saturating_add(p.len);
    }
    if held < want {
        return Err(EINVAL);
    }
    // SAFETY: `iov` is `iov.len()` entries laid out as `struct iovec` (the
    // assertions at the top of this file), valid for as long as the
    // iterator is used (see above), and holds at least `count` bytes
    // (checked above). The addresses are user addresses, which the
    // iterator's copies check (`access_ok`) and fault on safely.
    unsafe {
        bindings::iov_iter_init(
            &mut msg.msg_iter,
            dir,
            iov.as_ptr().cast::<bindings::iovec>(),
            iov.len(),
            count,
        );
    }
    if skip != 0 {
        // SAFETY: `msg_iter` was initialised just above; advancing stops
        // at its count.
        unsafe { bindings::iov_iter_advance(&mut msg.msg_iter, skip) };
    }
    Ok(())
}

/// The message header of a round of receives (C's `msg` in `handle_rx`):
/// zeroed once, then reused for each packet, so the per-packet work is the
/// iterator and the batched packet in `msg_control`. A socket may leave
/// flags in it between packets, as it may in C's.
pub(crate) struct RecvHdr(bindings::msghdr);

impl RecvHdr {
    /// A zeroed header (no name, no control buffer, no flags).
    pub(crate) fn new() -> Self {
        Self(bindings::msghdr::default())
    }
}

// SAFETY: By the type invariant we hold a reference on the socket's file,
// valid while `self` is borrowed.
unsafe impl PollFile for Socket {
    fn file_ptr(&self) -> *mut bindings::file {
        self.file()
    }
}
