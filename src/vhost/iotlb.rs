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
    /// Bumped by every [`Msgs::reset`]: a miss dequeued before a reset
    /// and copied out after it does not join the new `pending` list.
    gen: u64,
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
                MsgLists { read: KVec::new(), pending: KVec::new(), gen: 0 },
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
    /// nothing is queued while the ring has a miss outstanding: queued, or
    /// read and not yet resolved by an update (the ring stops at a miss and
    /// runs again when it is resolved, so the first one is enough).
    pub(crate) fn enqueue_miss(&self, node: MsgNode, one_per_ring: bool) -> Result {
        {
            let mut l = self.lists.lock();
            let outstanding = |m: &MsgNode| m.vq == node.vq && m.iotlb.type_ == VHOST_IOTLB_MISS;
            if one_per_ring && (l.read.iter().any(outstanding) || l.pending.iter().any(outstanding))
            {
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
    /// `vq->iotlb_miss`): a miss being read meanwhile belongs to the old
    /// session and is dropped. Waiting in the new `pending` list it would
    /// keep its ring from queueing a miss again (`enqueue_miss`, one per
    /// ring), for a translation the new session never asked for.
    pub(crate) fn reset(&self) {
        self.clear_lists(true);
    }

    fn clear_lists(&self, reset: bool) {
        let (read, pending) = {
            let mut l = self.lists.lock();
            self.readable.store(0, Ordering::Release);
            if reset {
                l.gen = l.gen.wrapping_add(1);
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

    /// Takes the oldest readable message, with the lists' generation.
    fn dequeue(&self) -> Option<(MsgNode, u64)> {
        let mut l = self.lists.lock();
        if l.read.is_empty() {
            return None;
        }
        let node = kvec::remove(&mut l.read, 0);
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
        if copied == MSG_LEN && node.iotlb.type_ == VHOST_IOTLB_MISS {
            let mut l = self.lists.lock();
            // Not after a reset since the dequeue (see `reset`). If this
            // allocation fails the miss is forgotten, as if it had been
            // resolved: the ring retries and misses again.
            if l.gen == gen {
                let _ = l.pending.push(node, GFP_KERNEL);
            }
        }
        Ok(copied as isize)
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
