// SPDX-License-Identifier: GPL-2.0

//! The device IOTLB message interface (`VIRTIO_F_ACCESS_PLATFORM`): the
//! fd's `read`/`write`/`poll`, with `struct vhost_msg` and
//! `struct vhost_msg_v2`.
//!
//! Userspace writes `VHOST_IOTLB_UPDATE`/`INVALIDATE` messages into the
//! device IOTLB; the device queues `VHOST_IOTLB_MISS` messages for userspace
//! to read when a translation misses. A read miss moves to the pending list
//! until an update covers it, which kicks the ring that missed.

use crate::kapi::iov::IovIter;
use crate::kapi::kvec;
use crate::kapi::poll::PollTable;
use crate::kapi::waitqueue::WaitQueue;
use crate::vcore::errno::Errno;
use crate::vcore::uapi::{
    VhostIotlbMsg, VhostMsg, VHOST_IOTLB_MISS, VHOST_IOTLB_MSG, VHOST_IOTLB_MSG_V2,
};
use crate::vcore::validate::NET_VQ_MAX;
use crate::vhost::memmap::GuestMap;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};

/// `EPOLLIN | EPOLLRDNORM`.
pub(crate) const POLL_READABLE: u32 = 0x1 | 0x40;

/// Size of both message formats (`struct vhost_msg` and `vhost_msg_v2`).
pub(crate) const MSG_LEN: usize = core::mem::size_of::<VhostMsg>();

/// The device IOTLB; its own lock nests inside the virtqueue locks.
pub(crate) type Iotlb = Mutex<GuestMap>;

/// A message queued for userspace.
#[derive(Clone, Copy)]
pub(crate) struct MsgNode {
    /// The ring whose translation missed.
    pub(crate) vq: usize,
    /// `VHOST_IOTLB_MSG_V2` format (the ring acked
    /// `VHOST_BACKEND_F_IOTLB_MSG_V2`) or the original one.
    pub(crate) v2: bool,
    /// The payload.
    pub(crate) iotlb: VhostIotlbMsg,
    /// A miss that counts as its ring's outstanding one (7.x's
    /// `vq->iotlb_miss` points at C's node): every miss, except one read
    /// across a [`Msgs::reset`], which waits in `pending` without counting,
    /// as C's node does once `vhost_vq_reset` cleared `iotlb_miss`.
    pub(crate) counts: bool,
}

impl MsgNode {
    /// The bytes userspace reads: type, hole/asid (0), payload, zeroed
    /// padding, so no kernel memory leaks out (CVE-2018-1118).
    fn to_bytes(self) -> [u8; MSG_LEN] {
        let mut b = [0u8; MSG_LEN];
        let ty = if self.v2 {
            VHOST_IOTLB_MSG_V2
        } else {
            VHOST_IOTLB_MSG
        };
        b[0..4].copy_from_slice(&ty.to_ne_bytes());
        let m = &self.iotlb;
        b[8..16].copy_from_slice(&m.iova.to_ne_bytes());
        b[16..24].copy_from_slice(&m.size.to_ne_bytes());
        b[24..32].copy_from_slice(&m.uaddr.to_ne_bytes());
        b[32] = m.perm;
        b[33] = m.type_;
        b
    }
}

/// The two message lists of C's `struct vhost_dev`.
pub(crate) struct MsgLists {
    /// Messages waiting to be read.
    read: KVec<MsgNode>,
    /// Misses read by userspace, waiting for an update.
    pending: KVec<MsgNode>,
    /// Misses of each ring a reader has dequeued and not yet copied out
    /// (in neither list meanwhile), in this generation. Each still counts
    /// as its ring's outstanding miss, as C's node does while
    /// `vq->iotlb_miss` points at it.
    reading: [u32; NET_VQ_MAX as usize],
    /// Bumped by every [`Msgs::reset`]: a miss dequeued before a reset
    /// and copied out after it leaves no count in `reading` and joins the
    /// new `pending` list without counting as outstanding.
    gen: u64,
}

impl MsgLists {
    /// Whether ring `vq` has a miss outstanding: queued, being read, or
    /// read and waiting for an update.
    fn miss_outstanding(&self, vq: usize) -> bool {
        let of_vq = |m: &MsgNode| m.vq == vq && m.iotlb.type_ == VHOST_IOTLB_MISS && m.counts;
        self.reading.get(vq).is_some_and(|&n| n != 0)
            || self.read.iter().any(of_vq)
            || self.pending.iter().any(of_vq)
    }
}

/// The message queues, their wait queue, and what a sleeping reader may
/// look at without sleeping locks.
#[pin_data]
pub(crate) struct Msgs {
    #[pin]
    lists: Mutex<MsgLists>,
    /// Readers and pollers wait here (C's `dev->wait`).
    #[pin]
    wait: WaitQueue,
    /// Length of the read list, readable from a wait condition.
    readable: AtomicUsize,
    /// Whether the device has an IOTLB (a reader without one gets
    /// `EBADFD` instead of sleeping forever).
    iotlb_on: AtomicBool,
}

impl Msgs {
    /// Empty queues.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            lists <- kernel::new_mutex!(
                MsgLists {
                    read: KVec::new(),
                    pending: KVec::new(),
                    reading: [0; NET_VQ_MAX as usize],
                    gen: 0,
                },
                "Msgs::lists"
            ),
            wait <- WaitQueue::new(),
            readable: AtomicUsize::new(0),
            iotlb_on: AtomicBool::new(false),
        })
    }

    /// Records whether the device has an IOTLB; losing it wakes readers.
    pub(crate) fn set_iotlb_on(&self, on: bool) {
        self.iotlb_on.store(on, Ordering::Release);
    }

    /// Queues the `VHOST_IOTLB_MISS` `node` for userspace (C's
    /// `vhost_iotlb_miss`). With `one_per_ring` (7.x's `vq->iotlb_miss`),
    /// nothing is queued while the ring has a miss outstanding: queued,
    /// being read, or read and not yet resolved by an update (the ring
    /// stops at a miss and runs again when it is resolved, so the first one
    /// is enough).
    pub(crate) fn enqueue_miss(&self, node: MsgNode, one_per_ring: bool) -> Result {
        {
            let mut l = self.lists.lock();
            if one_per_ring && l.miss_outstanding(node.vq) {
                return Ok(());
            }
            l.read.push(node, GFP_KERNEL)?;
            self.readable.store(l.read.len(), Ordering::Release);
        }
        self.wait.wake_up_poll(POLL_READABLE);
        Ok(())
    }

    /// Drops every queued message (C's `vhost_clear_msg`). A miss a
    /// reader has dequeued and not yet copied out joins the new `pending`
    /// list, as in C, where it still counts as its ring's outstanding miss
    /// (7.x's `vq->iotlb_miss` is cleared only when its node is freed)
    /// until an update resolves it.
    pub(crate) fn clear(&self) {
        self.clear_lists(false);
    }

    /// [`Msgs::clear`] when the rings are reset too (`VHOST_RESET_OWNER`,
    /// release: C's `vhost_dev_cleanup`, whose `vhost_vq_reset` clears
    /// `vq->iotlb_miss`): a miss being read meanwhile no longer counts as
    /// its ring's outstanding one (`reading`, and `counts` when it joins
    /// `pending`), so the ring queues a miss again at once. It still joins
    /// `pending`, as C's node does, and an update covering it kicks its
    /// ring.
    pub(crate) fn reset(&self) {
        self.clear_lists(true);
    }

    fn clear_lists(&self, reset: bool) {
        let (read, pending) = {
            let mut l = self.lists.lock();
            self.readable.store(0, Ordering::Release);
            if reset {
                l.gen = l.gen.wrapping_add(1);
                l.reading = [0; NET_VQ_MAX as usize];
            }
            (
                core::mem::replace(&mut l.read, KVec::new()),
                core::mem::replace(&mut l.pending, KVec::new()),
            )
        };
        drop((read, pending));
    }

    /// Wakes readers and pollers.
    pub(crate) fn wake(&self) {
        self.wait.wake_up_poll(POLL_READABLE);
    }

    /// Takes the oldest readable message, with the lists' generation; a
    /// miss counts in `reading` until [`Msgs::read_done`], and `pending`
    /// gets room for it (C's list insertion cannot fail; if this
    /// allocation does, `read_done`'s push tries again).
    fn dequeue(&self) -> Option<(MsgNode, u64)> {
        let mut l = self.lists.lock();
        if l.read.is_empty() {
            return None;
        }
        let node = kvec::remove(&mut l.read, 0);
        if node.iotlb.type_ == VHOST_IOTLB_MISS {
            if let Some(n) = l.reading.get_mut(node.vq) {
                *n = n.saturating_add(1);
            }
            let being_read: usize = l.reading.iter().map(|&n| n as usize).sum();
            let _ = l.pending.reserve(being_read, GFP_KERNEL);
        }
        self.readable.store(l.read.len(), Ordering::Release);
        Some((node, l.gen))
    }

    /// Removes the pending misses that an update of `[iova, iova + size)`
    /// resolves, calling `kick` with the ring of each (C's
    /// `vhost_iotlb_notify_vq`, including its wrapping arithmetic).
    pub(crate) fn resolve(&self, iova: u64, size: u64, mut kick: impl FnMut(usize)) {
        let last = iova.wrapping_add(size).wrapping_sub(1);
        let mut l = self.lists.lock();
        let mut i = 0;
        while i < l.pending.len() {
            let m = &l.pending.as_slice()[i];
            if iova <= m.iotlb.iova && last >= m.iotlb.iova && m.iotlb.type_ == VHOST_IOTLB_MISS {
                kick(m.vq);
                kvec::remove(&mut l.pending, i);
            } else {
                i += 1;
            }
        }
    }

    /// `read_iter`: one message, blocking unless `nonblock`.
    pub(crate) fn read(&self, iter: &mut IovIter<'_>, nonblock: bool) -> Result<isize> {
        if iter.count() < MSG_LEN {
            return Ok(0);
        }
        let (node, gen) = loop {
            if let Some(taken) = self.dequeue() {
                break taken;
            }
            if nonblock {
                return Err(EAGAIN);
            }
            if kernel::current!().signal_pending() {
                return Err(ERESTARTSYS);
            }
            if !self.iotlb_on.load(Ordering::Acquire) {
                return Err(crate::kapi::errno(Errno::EBADFD));
            }
            self.wait.wait_interruptible(|| {
                self.readable.load(Ordering::Acquire) > 0 || !self.iotlb_on.load(Ordering::Acquire)
            })?;
        };
        let bytes = node.to_bytes();
        let copied = iter.copy_to(&bytes);
        if node.iotlb.type_ == VHOST_IOTLB_MISS {
            self.read_done(node, gen, copied == MSG_LEN);
        }
        Ok(copied as isize)
    }

    /// The miss `node`, dequeued in generation `gen`, has been copied out
    /// (`whole`: all of it; C frees it otherwise). In one critical section,
    /// so the ring's miss stays outstanding until it waits in `pending`:
    /// it leaves `reading` and, whole, joins `pending` (not counting if a
    /// reset came since the dequeue, see `reset`), which wakes readers and
    /// pollers as C's `vhost_enqueue_msg` does. If the push fails (no room
    /// reserved, no memory) the miss is forgotten, as if it had been
    /// resolved: the ring retries and misses again.
    fn read_done(&self, mut node: MsgNode, gen: u64, whole: bool) {
        {
            let mut l = self.lists.lock();
            if l.gen == gen {
                if let Some(n) = l.reading.get_mut(node.vq) {
                    *n = n.saturating_sub(1);
                }
            } else {
                node.counts = false;
            }
            if !whole {
                return;
            }
            let _ = l.pending.push(node, GFP_KERNEL);
        }
        self.wake();
    }

    /// `poll` on the device's file: readable while a message waits.
    pub(crate) fn poll(&self, table: &PollTable<'_>) -> u32 {
        table.register(&self.wait);
        if self.readable.load(Ordering::Acquire) > 0 {
            POLL_READABLE
        } else {
            0
        }
    }
}

/// A new, empty device IOTLB.
pub(crate) fn new_iotlb() -> Result<Arc<Iotlb>> {
    Arc::pin_init(
        kernel::new_mutex!(crate::vhost::memmap::new_map(0)?, "VhostNet::iotlb"),
        GFP_KERNEL,
    )
}
