// SPDX-License-Identifier: GPL-2.0

//! Zerocopy transmission (`experimental_zcopytx`, off by default as in C):
//! tun/tap and macvtap build the skb on the guest's pages instead of
//! copying them, and call us back through a `ubuf_info` when the last
//! reference to those pages is gone (the seed's "TX credits using
//! destructor"). Until then the chain cannot be given back to the guest.
//!
//! [`Zcopy`] is the part the callback shares with the worker: one slot per
//! packet in flight, its completion status, and a count of packets in
//! flight that teardown waits on (C's `ubuf_info` array, `heads[].len`
//! and `vhost_net_ubuf_ref`). The slot indices, which chain each slot
//! carries and when to stop using zerocopy are the TX ring's business
//! (`crate::net`), under its mutex. Completions that may let the ring
//! progress wake it through a [`Wake`] target and token the device passes
//! in (its worker and TX work bit): this module knows neither.
//!
//! # Lifetime
//!
//! The callback may run in any context that frees an skb (softirq too),
//! long after `sendmsg` returned. It reaches the [`Zcopy`] through a raw
//! pointer in the slot, so a [`Zcopy`] is never freed while a packet is in
//! flight: [`Zcopy::drain`] waits for the count to fall to zero and then
//! for an RCU grace period, since the callback still touches the [`Zcopy`]
//! (and wakes the worker) after its decrement, inside an RCU-bh read-side
//! section. Dropping a [`Zcopy`] drains it first. The device drains before
//! it stops its worker thread, so no callback can wake a stopped thread.

use super::poll::Wake;
use super::shim::{vhost_net_rs_rcu_read_lock_bh, vhost_net_rs_rcu_read_unlock_bh};
use super::shim::{vhost_net_rs_tun_ctl_ubuf, vhost_net_rs_ubuf_arm};
use super::socket::{Socket, TunMsgCtl};
use super::waitqueue::WaitQueue;
use crate::vcore::memory::intervalmap::Piece;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::types::Opaque;

/// Slots, so packets in flight at most (C's `UIO_MAXIOV` ubufs).
pub(crate) const SLOTS: usize = 1024;

/// A slot's status (C's `VHOST_DMA_*_LEN`): free, or its packet already
/// given back to the guest.
pub(crate) const CLEAR: u8 = 0;
/// The socket holds the guest's pages.
pub(crate) const IN_PROGRESS: u8 = 1;
/// The pages were released after a successful transmission.
pub(crate) const DONE: u8 = 2;
/// The pages were released, but the skb had to be copied (or was
/// dropped): zerocopy did not pay off.
pub(crate) const FAILED: u8 = 3;

/// What the skb points at: the kernel's `ubuf_info` first, so the
/// callback's pointer is also a pointer to the slot.
#[repr(C)]
struct Slot<W: Wake> {
    ubuf: bindings::ubuf_info,
    zc: *const Zcopy<W>,
    index: usize,
}

/// The callbacks of the slots of a `Zcopy<W>` (a constant, promoted to a
/// static by `&Self::OPS`).
struct Ops<W: Wake>(PhantomData<W>);

impl<W: Wake> Ops<W> {
    const OPS: bindings::ubuf_info_ops = bindings::ubuf_info_ops {
        complete: Some(complete::<W>),
        link_skb: None,
    };
}

/// Packets handed to a socket without copying, and their completions.
///
/// # Invariants
///
/// `refs` is 1 (the ring's own reference, absent only inside
/// [`Zcopy::drain`], which one caller at a time runs: `drain_lock`) plus
/// the number of armed slots whose callback has not run yet. `slots` and
/// `status` have [`SLOTS`] entries and never reallocate. An armed slot (status [`IN_PROGRESS`], armed by
/// [`Zcopy::arm`]) belongs to the socket until its callback runs; the other
/// slots belong to the TX ring's round, which holds the ring mutex.
#[pin_data(PinnedDrop)]
pub(crate) struct Zcopy<W: Wake> {
    refs: AtomicU32,
    /// [`Zcopy::drain`] sleeps here until `refs` is 0.
    #[pin]
    drained: WaitQueue,
    /// Held through [`Zcopy::drain`]: one drain at a time.
    #[pin]
    drain_lock: Mutex<()>,
    status: KVec<AtomicU8>,
    slots: KVec<Opaque<Slot<W>>>,
    /// Woken with `token` when completions may let the TX ring progress.
    waker: Arc<W>,
    token: u32,
}

// SAFETY: The slots are only written by the ring round (under the ring
// mutex) or, once armed, by the socket and our callback, which the kernel
// serialises through the `ubuf_info` reference count; everything else is
// atomic or a wait queue.
unsafe impl<W: Wake> Send for Zcopy<W> {}
// SAFETY: As above.
unsafe impl<W: Wake> Sync for Zcopy<W> {}

impl<W: Wake> Zcopy<W> {
    /// Zerocopy state for a TX ring: completions that may let it progress
    /// call `waker.wake(token)`.
    pub(crate) fn new(waker: Arc<W>, token: u32) -> Result<Arc<Self>> {
        let mut status = KVec::with_capacity(SLOTS, GFP_KERNEL)?;
        let mut slots = KVec::with_capacity(SLOTS, GFP_KERNEL)?;
        for _ in 0..SLOTS {
            status.push(AtomicU8::new(CLEAR), GFP_KERNEL)?;
            slots.push(Opaque::uninit(), GFP_KERNEL)?;
        }
        // INVARIANT: no slot is armed; `refs` is the ring's reference.
        Arc::pin_init(
            pin_init!(Self {
                refs: AtomicU32::new(1),
                drained <- WaitQueue::new(),
                drain_lock <- kernel::new_mutex!((), "Zcopy::drain_lock"),
                status,
                slots,
                waker,
                token,
            }),
            GFP_KERNEL,
        )
    }

    /// The status of slot `index` (`CLEAR`, `IN_PROGRESS`, `DONE`,
    /// `FAILED`).
    pub(crate) fn status(&self, index: usize) -> u8 {
        self.status[index].load(Ordering::Acquire)
    }

    /// Marks slot `index` free again (its chain went to the used ring) or
    /// done (the socket refused the packet). A slot the socket holds
    /// (`IN_PROGRESS`) is left alone, and no slot is made `IN_PROGRESS`:
    /// only [`Self::send`] arms slots, and only the callback or a refused
    /// send disarms them.
    pub(crate) fn set_status(&self, index: usize, status: u8) {
        if status == IN_PROGRESS {
            return;
        }
        let _ = self.status[index].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
            (s != IN_PROGRESS).then_some(status)
        });
    }

    /// Sends one packet on the guest's pages (`Socket::sendmsg` of `len`
    /// bytes of `iov` after `skip`, with `flags`) through slot `index`: the
    /// socket takes the pages and releases them through our callback,
    /// which marks the slot `DONE` or `FAILED`.
    ///
    /// If the send fails, the socket took no pages or has released them
    /// already (tun/tap complete the `ubuf_info` of a packet they drop
    /// before `sendmsg` returns): a slot still `IN_PROGRESS` is given back
    /// (`CLEAR`, its reference dropped). A slot that is armed already is
    /// refused with `EBUSY`, nothing sent.
    pub(crate) fn send(
        &self,
        index: usize,
        sock: &Socket,
        iov: &[Piece],
        skip: usize,
        len: usize,
        flags: u32,
    ) -> Result<usize> {
        let mut ctl = self.arm(index).ok_or(EBUSY)?;
        let sent = sock.sendmsg_ctl(iov, skip, len, flags, Some(&mut ctl));
        if sent.is_err()
            && self.status[index]
                .compare_exchange(IN_PROGRESS, CLEAR, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            // The socket did not take the slot: its reference is ours.
            self.put();
        }
        sent
    }

    /// Arms slot `index` for one packet and returns the control message
    /// for `sendmsg`'s `msg_control`; `None` if the slot is armed already.
    fn arm(&self, index: usize) -> Option<TunMsgCtl> {
        let slot = self.slots[index].get();
        // Acquire: a callback that released the slot before (it stores its
        // status with release) is done with the slot's fields.
        self.status[index]
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| {
                (s != IN_PROGRESS).then_some(IN_PROGRESS)
            })
            .ok()?;
        self.refs.fetch_add(1, Ordering::Relaxed);
        let mut ctl = TunMsgCtl::new();
        // SAFETY: The slot is ours until the socket has it: it was not
        // armed (its callback, if any, has run) and we just marked it
        // armed, so no other `arm` writes it; `ubuf` is its first field.
        unsafe {
            (*slot).zc = self;
            (*slot).index = index;
            vhost_net_rs_ubuf_arm(&raw mut (*slot).ubuf, &Ops::<W>::OPS);
            vhost_net_rs_tun_ctl_ubuf(&mut ctl.0, &raw mut (*slot).ubuf);
        }
        Some(ctl)
    }

    /// Drops one reference (C's `vhost_net_ubuf_put`); wakes [`Self::drain`]
    /// at zero. Returns what is left.
    fn put(&self) -> u32 {
        // Callers drop a reference they hold (the ring's, in `drain`; an
        // armed slot's, in `complete` or after a refused send): `refs` is
        // at least 1.
        let left = self.refs.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 {
            self.drained.wake_up_all();
        }
        left
    }

    /// Waits until no packet is in flight, then for every callback to have
    /// finished with us, and takes the ring's reference back (C's
    /// `vhost_net_ubuf_put_and_wait` and the `synchronize_rcu` of its
    /// callers). Process context. Drains run one at a time
    /// (`drain_lock`); a packet armed meanwhile keeps its reference (it is
    /// added to, not overwritten) and is waited for by the next drain, the
    /// drop's at the latest. The device keeps new packets from being armed
    /// during its drains (the ring's `flushing` flag), so that they end.
    /// Callbacks take no lock of ours, so any may be held.
    pub(crate) fn drain(&self) {
        let _one_at_a_time = self.drain_lock.lock();
        self.put();
        self.drained
            .wait_uninterruptible(|| self.refs.load(Ordering::Acquire) == 0);
        // SAFETY: Called from process context without spinlocks.
        unsafe { bindings::synchronize_rcu() };
        self.refs.fetch_add(1, Ordering::Release);
    }
}

#[pinned_drop]
impl<W: Wake> PinnedDrop for Zcopy<W> {
    fn drop(self: Pin<&mut Self>) {
        // No callback may reach us once we are gone.
        self.drain();
    }
}

/// `ubuf_info_ops.complete`: the socket is done with a packet's pages
/// (C's `vhost_zerocopy_complete`).
///
/// # Safety
///
/// Called by the networking core with a `ubuf_info` we armed in
/// [`Zcopy::arm`].
unsafe extern "C" fn complete<W: Wake>(
    _skb: *mut bindings::sk_buff,
    ubuf: *mut bindings::ubuf_info,
    success: bool,
) {
    // SAFETY: `ubuf` is live; only the final reference (of the skb and
    // its clones) completes the packet (the kernel's refcount helper).
    if !unsafe { bindings::refcount_dec_and_test(&raw mut (*ubuf).refcnt) } {
        return;
    }
    let slot = ubuf.cast::<Slot<W>>();
    // SAFETY: `ubuf` is the first field of a `Slot` (`repr(C)`) we armed;
    // its `zc` outlives every armed slot (module docs, `Zcopy::drain`).
    let (zc, index) = unsafe { (&*(*slot).zc, (*slot).index) };
    // SAFETY: Plain read-side critical section, closed below.
    unsafe { vhost_net_rs_rcu_read_lock_bh() };
    zc.status[index].store(if success { DONE } else { FAILED }, Ordering::Release);
    let left = zc.put();
    // Run the ring when the guest may be waiting for these buffers (the
    // last one in flight), and every 16 completions otherwise (C's
    // heuristic).
    if left <= 1 || left % 16 == 0 {
        zc.waker.wake(zc.token);
    }
    // SAFETY: Closes the section opened above.
    unsafe { vhost_net_rs_rcu_read_unlock_bh() };
}
