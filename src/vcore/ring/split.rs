// SPDX-License-Identifier: GPL-2.0

//! The split virtqueue (virtio 1.x section 2.7), as the device side sees it.
//!
//! This mirrors the ring half of drivers/vhost/vhost.c: taking descriptor
//! chains from the available ring (`vhost_get_vq_desc`, `get_indirect`),
//! giving them back through the used ring (`vhost_add_used_n`), and the
//! notification protocol in both directions (`vhost_enable_notify`,
//! `vhost_disable_notify`, `vhost_notify`, `vhost_vq_avail_empty`), with the
//! same results and error codes. The kernel worker drives it; it provides
//! the guest-visible memory ([`RingMemory`]) and address translation
//! ([`Translate`]), and nothing here touches the kernel.
//!
//! Layout of a split ring of `num` entries (all little endian; only
//! little-endian rings exist, since cross-endian legacy support is off):
//!
//! ```text
//! desc:  num * { addr: u64, len: u32, flags: u16, next: u16 }
//! avail: flags: u16, idx: u16, ring: [u16; num], used_event: u16
//! used:  flags: u16, idx: u16, ring: [{ id: u32, len: u32 }; num], avail_event: u16
//! ```
//!
//! Ring addresses (`desc`, `avail`, `used`) are user addresses of the owner
//! (or IOVAs with a device IOTLB, which [`RingMemory`] resolves); buffer
//! addresses in descriptors are guest addresses that go through
//! [`Translate`].
//!
//! # Memory ordering
//!
//! The driver (guest) and the device (this code, on another CPU) share the
//! ring without locks; the virtio specification (2.7.13 "Supplying Buffers
//! to The Device", 2.7.14 "Receiving Used Buffers From The Device", 2.7.10
//! "Used Buffer Notification Suppression") pairs barriers on each side. The
//! barriers here are calls to [`RingMemory::rmb`], [`RingMemory::wmb`] and
//! [`RingMemory::mb`], which the kernel implements with `smp_rmb`,
//! `smp_wmb` and `smp_mb`:
//!
//! 1. `refresh_avail_idx`: `rmb` after reading a new `avail->idx` and before
//!    reading the ring entries and descriptors it covers. The driver writes
//!    descriptors and the ring entry, then a write barrier, then `idx`; the
//!    read barrier keeps us from reading entries older than the index.
//! 2. `add_used`: `wmb` after writing the used elements and before writing
//!    `used->idx`. The driver reads `idx`, then (after its read barrier) the
//!    elements; they must be there by the time it sees the index.
//! 3. `enable_notify`: `mb` between publishing "notify me" (clearing
//!    `VRING_USED_F_NO_NOTIFY` in `used->flags`, or writing `avail_event`)
//!    and re-reading `avail->idx`. This is a store followed by a load, which
//!    only a full barrier orders. The driver does the mirror image (store
//!    `avail->idx`, full barrier, load flags or `avail_event`). With both
//!    barriers at least one side sees the other's store, so a buffer added
//!    concurrently is either seen by our re-read or kicked by the driver.
//! 4. `need_notify`: `mb` before reading `avail->flags` or `used_event`,
//!    so the `used->idx` store made by `add_used` is ordered before those
//!    loads. The driver re-enables interrupts by storing flags or
//!    `used_event`, then (full barrier) re-reading `used->idx`; again one
//!    side must see the other, so no interrupt is lost.
//! 5. Dirty logging: `wmb` between any write to guest memory and the bitmap
//!    bits that log it, so that migration, which clears a bit and then
//!    copies the page, never copies the page before the data is in it.

use super::super::diag::Reason;
use super::super::errno::Errno;
use super::super::memory::dirtylog::{log_write, log_write_hva};
use super::super::memory::intervalmap::{Piece, TranslateError, PERM_WO};
use super::access::{RingMemory, Translate, UsedRing};
use super::chain::{walk_indirect, Chain, ChainBufs, Collector, RingError, MAX_ROUND_READS};
use super::desc::{
    Desc, UsedElem, DESC_SIZE, USED_ELEM_SIZE, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
};

/// Used-ring flag: the device does not want to be kicked.
pub(crate) const VRING_USED_F_NO_NOTIFY: u16 = 1;
/// Available-ring flag: the driver does not want interrupts.
pub(crate) const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// The number of pieces C has room for when it translates a used-ring
/// range for logging with a device IOTLB (`vq->log_iov`).
pub(crate) const LOG_IOV_MAX: usize = 64;
/// Offset of `idx` in both the available and the used ring.
const IDX_OFFSET: u64 = 2;
/// Offset of the first entry of the available and the used ring.
const RING_OFFSET: u64 = 4;

/// Available-ring entries read ahead in one copy ([`SplitRing`]'s `heads`).
const HEADS_AHEAD: usize = 32;

/// The result of an operation whose errors C reports with `vq_err` but
/// does not return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reported<T> {
    /// What C returns.
    pub(crate) value: T,
    /// The error C passed to `vq_err`, if any; the worker signals the error
    /// eventfd for it.
    pub(crate) error: Option<Errno>,
}

impl<T> Reported<T> {
    /// A result without error.
    const fn ok(value: T) -> Self {
        Reported { value, error: None }
    }
    /// A result after an error that C reports.
    const fn err(value: T, error: Errno) -> Self {
        Reported {
            value,
            error: Some(error),
        }
    }
}

/// Where used-ring writes are logged (`vq->log_used`, `vq->log_addr`,
/// `vq->log_base`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UsedLog {
    /// User address of the dirty bitmap.
    pub(crate) log_base: u64,
    /// Guest address of the used ring, as given by `VHOST_SET_VRING_ADDR`.
    pub(crate) log_addr: u64,
}

/// The configuration of a split ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SplitConfig {
    /// Number of entries; a power of two from 1 to 32768.
    pub(crate) num: u32,
    /// User address of the descriptor table.
    pub(crate) desc: u64,
    /// User address of the available ring.
    pub(crate) avail: u64,
    /// User address of the used ring.
    pub(crate) used: u64,
    /// `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    pub(crate) event_idx: bool,
    /// `VIRTIO_F_NOTIFY_ON_EMPTY` was negotiated.
    pub(crate) notify_on_empty: bool,
}

/// The device side of a split virtqueue (the ring fields of C's
/// `struct vhost_virtqueue`).
///
/// # Invariants
///
/// `num` is a power of two between 1 and 32768, so `num - 1` masks ring
/// indices and every count of ring entries fits in a `u16` once reduced;
/// offsets of ring positions up to `num` (`16 * i`, `8 * i + 4`,
/// `2 * i + 4`) are below 2^20, so plain arithmetic on them is exact.
///
/// `heads_len <= HEADS_AHEAD`, and the entries in `heads` were read, after
/// the barrier that followed reading an `avail->idx` above all of them, at
/// the ring's current `avail` address with its current `num`. They are the
/// driver's until the device takes them: it may not rewrite an entry the
/// device has not taken, so a cached entry is what a read now would give
/// (a driver that breaks that rule gets stale heads, checked like any other).
/// Moving the ring or its indices (`set_layout`, `set_base`,
/// `set_indices`, `set_used_idx`) empties the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SplitRing {
    /// Number of entries.
    num: u32,
    /// User address of the descriptor table.
    desc: u64,
    /// User address of the available ring.
    avail: u64,
    /// User address of the used ring.
    used: u64,
    /// Next available entry to take.
    last_avail_idx: u16,
    /// Last `avail->idx` read (C's `vq->avail_idx`).
    avail_idx: u16,
    /// Next used entry to fill; what `used->idx` is set to.
    last_used_idx: u16,
    /// `last_used_idx` when the driver was last considered for an interrupt.
    signalled_used: u16,
    /// Whether `signalled_used` can be trusted.
    signalled_used_valid: bool,
    /// What we last wrote (or would write) to `used->flags`.
    used_flags: u16,
    /// `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    event_idx: bool,
    /// `VIRTIO_F_NOTIFY_ON_EMPTY` was negotiated.
    notify_on_empty: bool,
    /// `VIRTIO_F_IN_ORDER` was negotiated: chains are taken in descriptor
    /// order from C's `next_avail_head`, the available ring's entries are
    /// not read (C's `vhost_get_vq_desc_n`).
    in_order: bool,
    /// C's `vq->next_avail_head` (the descriptor the next in-order chain
    /// starts at, masked by `num - 1`) less `last_avail_idx`: the
    /// descriptors taken beyond one per chain. A chain of one descriptor
    /// (the usual packet) leaves it alone, so only the walk of a longer
    /// chain, already out of line, counts (make profile: keeping
    /// `next_avail_head` itself cost every packet). Counted in or out of
    /// order, as C counts `next_avail_head`.
    skew: u16,
    /// Where to log used-ring writes, when `VHOST_VRING_F_LOG` is set.
    log: Option<UsedLog>,
    /// Available-ring entries `heads_start..heads_start + heads_len`
    /// (wrapping like `last_avail_idx`), little-endian as in the ring.
    heads: [u8; 2 * HEADS_AHEAD],
    /// The index of the first entry in `heads`.
    heads_start: u16,
    /// How many entries `heads` holds.
    heads_len: u16,
    /// Descriptors read besides heads since [`SplitRing::start_round`],
    /// by the chains taken (at most `MAX_ROUND_READS + MAX_PACKET_READS`).
    walked: u32,
    /// Which of C's `vq_err` messages the last error returned by an
    /// operation without a [`RingError`] stands for ([`SplitRing::fault`]);
    /// written on error paths only.
    fault: Reason,
}

/// Writes used-ring elements at user address `at` (C's
/// `__vhost_add_used_n`).
fn write_used_elems<M: RingMemory + ?Sized>(
    mem: &M,
    at: u64,
    heads: &[UsedElem],
) -> Result<(), Errno> {
    // One element, the latency-bound case: C's `put_user`s, no buffer
    // (Documentation/performance.rst).
    if let [one] = heads {
        return mem.write_used_elem(at, *one).map_err(|_| Errno::EFAULT);
    }
    mem.write_used_elems(at, heads)
}

impl SplitRing {
    /// A ring as after `VHOST_SET_VRING_NUM` / `VHOST_SET_VRING_ADDR` with
    /// all indices 0 (C's `vhost_vq_reset` state); `EINVAL` if `num` is not
    /// a power of two from 1 to 32768.
    pub(crate) fn new(cfg: &SplitConfig) -> Result<Self, Errno> {
        if cfg.num == 0 || cfg.num > 32768 || !cfg.num.is_power_of_two() {
            return Err(Errno::EINVAL);
        }
        Ok(SplitRing {
            num: cfg.num,
            desc: cfg.desc,
            avail: cfg.avail,
            used: cfg.used,
            last_avail_idx: 0,
            avail_idx: 0,
            last_used_idx: 0,
            signalled_used: 0,
            signalled_used_valid: false,
            used_flags: 0,
            event_idx: cfg.event_idx,
            notify_on_empty: cfg.notify_on_empty,
            in_order: false,
            skew: 0,
            log: None,
            heads: [0; 2 * HEADS_AHEAD],
            heads_start: 0,
            heads_len: 0,
            walked: 0,
            fault: Reason::Unspecified,
        })
    }

    /// Number of entries.
    pub(crate) fn num(&self) -> u32 {
        self.num
    }

    /// User address of the descriptor table.
    pub(crate) fn desc(&self) -> u64 {
        self.desc
    }

    /// User address of the available ring.
    pub(crate) fn avail(&self) -> u64 {
        self.avail
    }

    /// User address of the used ring.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Next available entry to take (C's `vq->last_avail_idx`).
    pub(crate) fn last_avail_idx(&self) -> u16 {
        self.last_avail_idx
    }

    /// The cached `avail->idx` (C's `vq->avail_idx`).
    #[allow(
        dead_code,
        reason = "the host tests check the cache of avail->idx with it"
    )]
    pub(crate) fn avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Which of C's `vq_err` messages the last error of `add_used`,
    /// `add_used_in_order`, `need_notify`, `enable_notify`,
    /// `disable_notify` or `avail_empty` stands for (they return C's errno
    /// only); meaningful right after such an error.
    pub(crate) fn fault(&self) -> Reason {
        self.fault
    }

    /// Records which message an error stands for, and passes it on.
    #[cold]
    fn note<E>(&mut self, reason: Reason, e: E) -> E {
        self.fault = reason;
        e
    }

    /// Next used entry to fill (C's `vq->last_used_idx`).
    pub(crate) fn last_used_idx(&self) -> u16 {
        self.last_used_idx
    }

    /// The value of `used->flags` we keep (C's `vq->used_flags`).
    pub(crate) fn used_flags(&self) -> u16 {
        self.used_flags
    }

    /// `VHOST_SET_VRING_BASE`: where to resume taking buffers; the cache
    /// of `avail->idx` restarts there too.
    pub(crate) fn set_base(&mut self, last_avail_idx: u16) {
        self.last_avail_idx = last_avail_idx;
        // C: `vq->next_avail_head = vq->last_avail_idx = s.num`.
        self.skew = 0;
        self.avail_idx = last_avail_idx;
        self.heads_len = 0;
    }

    /// Moves the ring (`VHOST_SET_VRING_NUM`/`ADDR` between rounds); the
    /// indices stay. `EINVAL` for a size [`SplitRing::new`] refuses.
    pub(crate) fn set_layout(
        &mut self,
        num: u32,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<(), Errno> {
        if num == 0 || num > 32768 || !num.is_power_of_two() {
            return Err(Errno::EINVAL);
        }
        self.num = num;
        self.desc = desc;
        self.avail = avail;
        self.used = used;
        self.heads_len = 0;
        Ok(())
    }

    /// Sets both indices, as attaching a backend does after reading
    /// `used->idx` (`vhost_vq_init_access`): the avail cache restarts at
    /// `last_avail_idx` and `signalled_used` is forgotten.
    pub(crate) fn set_indices(&mut self, last_avail_idx: u16, last_used_idx: u16) {
        self.last_avail_idx = last_avail_idx;
        self.avail_idx = last_avail_idx;
        self.last_used_idx = last_used_idx;
        self.signalled_used_valid = false;
        self.heads_len = 0;
    }

    /// Sets `last_used_idx` from the `used->idx` read when a backend is
    /// attached (`vhost_vq_init_access`). As C, the cached `avail->idx`
    /// stays: a ring that stopped on a bad chain takes the entries it
    /// already counted before it reads the index again. The read-ahead
    /// entries are read again (C reads each when it takes it).
    pub(crate) fn set_used_idx(&mut self, last_used_idx: u16) {
        self.last_used_idx = last_used_idx;
        self.heads_len = 0;
    }

    /// Forgets `signalled_used`, so that the next used entry is signalled
    /// whatever the driver's `used_event` says: what attaching a backend
    /// does once `used->flags` is written, whether or not the attach then
    /// succeeds (C's `vhost_vq_init_access`).
    pub(crate) fn forget_signalled(&mut self) {
        self.signalled_used_valid = false;
    }

    /// Sets or clears the logging of used-ring writes (`VHOST_VRING_F_LOG`
    /// with `log_addr`, and the device's log base).
    pub(crate) fn set_used_log(&mut self, log: Option<UsedLog>) {
        self.log = log;
    }

    /// Sets the negotiated ring features (`VHOST_SET_FEATURES`).
    pub(crate) fn set_features(&mut self, event_idx: bool, notify_on_empty: bool, in_order: bool) {
        self.event_idx = event_idx;
        self.notify_on_empty = notify_on_empty;
        self.in_order = in_order;
        // In order the entries are not read: none may stay cached.
        self.heads_len = 0;
    }

    /// Whether `VIRTIO_F_IN_ORDER` was negotiated.
    pub(crate) fn in_order(&self) -> bool {
        self.in_order
    }

    /// `num - 1`, the mask that turns an index into a ring position.
    fn mask(&self) -> u32 {
        self.num - 1
    }

    /// User address of `avail_event` (after the used ring entries).
    fn avail_event_offset(&self) -> u64 {
        RING_OFFSET + USED_ELEM_SIZE * u64::from(self.num)
    }

    /// User address of `used_event` (after the available ring entries).
    fn used_event_addr(&self) -> u64 {
        self.avail
            .wrapping_add(RING_OFFSET)
            .wrapping_add(2 * u64::from(self.num))
    }

    /// The part of `vhost_vq_init_access` that touches the ring, run when a
    /// backend is attached: writes `used->flags`, forgets `signalled_used`
    /// and loads `last_used_idx` from `used->idx`.
    ///
    /// `EFAULT` if the flags cannot be written, else the error of reading
    /// the index. C does not reset `signalled_used_valid` when the flags
    /// write fails; neither does this.
    #[allow(
        dead_code,
        reason = "the host tests and tests/ringbench start a ring with it; the kernel does this part of vhost_vq_init_access in its device code, with the ring's used_flags"
    )]
    pub(crate) fn init_access<M, T>(&mut self, mem: &M, xlate: &T) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        self.update_used_flags(mem, xlate)?;
        self.forget_signalled();
        let idx = mem.read_u16(self.used.wrapping_add(IDX_OFFSET))?;
        self.set_used_idx(idx);
        Ok(())
    }

    /// C's `vhost_get_avail_idx`: re-reads `avail->idx`; returns whether it
    /// differs from the cached value (and updates the cache).
    ///
    /// `EINVAL` if the driver claims more than `num` entries beyond
    /// `last_avail_idx` (checked even when the index did not change); the
    /// read error otherwise. Both are reported by C with `vq_err`.
    ///
    /// Always inline: its callers run it once or twice a round, and out of
    /// line (LLVM's choice after an unrelated change to the IOTLB path of
    /// `read_u16`) it cost a latency round trip about 80 module
    /// instructions (make profile).
    #[inline(always)]
    fn refresh_avail_idx<M: RingMemory + ?Sized>(&mut self, mem: &M) -> Result<bool, Errno> {
        let idx = match mem.read_u16(self.avail.wrapping_add(IDX_OFFSET)) {
            Ok(idx) => idx,
            Err(e) => return Err(self.note(Reason::AvailIdxRead, e)),
        };
        if u32::from(idx.wrapping_sub(self.last_avail_idx)) > self.num {
            return Err(self.note(Reason::AvailIdxInvalid, Errno::EINVAL));
        }
        if idx == self.avail_idx {
            return Ok(false);
        }
        self.avail_idx = idx;
        // Barrier 1 (see the module documentation): the entries and
        // descriptors behind the new index are read after the index. When
        // the index did not change no new entry will be read, and entries
        // below the cached index were ordered by the barrier that followed
        // the read which cached it.
        mem.rmb();
        Ok(true)
    }

    /// Takes the next chain from the available ring (C's
    /// `vhost_get_vq_desc`). `Ok(None)` when the ring is empty (C returns
    /// `num`).
    ///
    /// `avail->idx` is re-read only when every entry up to the cached value
    /// was taken. Errors, as in C (all but the IOTLB miss are `vq_err`):
    /// - reading `avail->idx` fails: that error; it claims more than `num`
    ///   new entries: `EINVAL`;
    /// - reading the head entry fails: `EFAULT`; head `>= num`: `EINVAL`;
    /// - for each descriptor of the table: index `>= num`: `EINVAL`; more
    ///   than `num` descriptors (a loop): `EINVAL`; reading it fails:
    ///   `EFAULT`;
    /// - translating a buffer: `EFAULT` (no mapping), `EPERM`, `ENOBUFS`
    ///   (no room left in `iov`), or [`RingError::IotlbMiss`];
    /// - a readable buffer after a writable one: `EINVAL`;
    /// - indirect descriptors as described at `walk_indirect`.
    ///
    /// On error nothing is consumed (but the cached `avail->idx` may have
    /// moved). On success `last_avail_idx` advances by one.
    ///
    /// C insists (`BUG_ON`) that guest notifications are disabled
    /// ([`SplitRing::disable_notify`]) when this is called; the worker must
    /// do so first, as `handle_tx` and `handle_rx` do. Like C this does not
    /// look at `VIRTIO_RING_F_INDIRECT_DESC`: indirect descriptors are always
    /// accepted.
    // Inlined into `handle_tx` and `handle_rx` (and the translation with
    // it): no frame, no `Result<Option<Chain>>` through memory
    // (Documentation/performance.rst).
    #[inline(always)]
    pub(crate) fn get_desc_chain<M, T>(
        &mut self,
        mem: &M,
        xlate: &T,
        bufs: ChainBufs<'_>,
    ) -> Result<Option<Chain>, RingError>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let last_avail_idx = self.last_avail_idx;
        if self.avail_idx == last_avail_idx
            && !self
                .refresh_avail_idx(mem)
                .map_err(|e| RingError::Broken(e, self.fault))?
        {
            return Ok(None);
        }
        // In order, the chain starts after the previous one in the table
        // and the available ring's entry is not read (C's
        // `vhost_get_vq_desc_n`); the head is below `num` by the mask.
        let head = self.avail_head(mem, xlate, last_avail_idx)?;
        if u32::from(head) >= self.num {
            return Err(RingError::Broken(Errno::EINVAL, Reason::HeadRange));
        }

        let ChainBufs {
            iov,
            indirect,
            log,
            reads,
        } = bufs;
        let mut acc = Collector::new(iov, log, reads);
        let d = self.read_desc(mem, u32::from(head))?;
        let chain = if d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT) == 0 {
            // One direct descriptor, the usual RX buffer and TX packet: no
            // walk, and the collector stays in registers.
            acc.add(xlate, &d)?;
            acc.chain(head, 1)
        } else {
            if self.walked >= MAX_ROUND_READS {
                return Err(RingError::Yield);
            }
            let chain = self.walk_chain(mem, xlate, indirect, acc, head, d)?;
            // Below `MAX_ROUND_READS + MAX_PACKET_READS`: no overflow.
            self.walked += chain.reads;
            // The descriptors past the first one (`descs >= 1`, at most
            // `num`; the count wraps as C's `next_avail_head`).
            self.skew = self.skew.wrapping_add((chain.descs - 1) as u16);
            chain
        };
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        Ok(Some(chain))
    }

    /// A round begins: the count of [`MAX_ROUND_READS`] starts over.
    pub(crate) fn start_round(&mut self) {
        self.walked = 0;
    }

    /// The head of available entry `idx`, which is below `avail_idx`.
    ///
    /// From the entries read ahead if it is there; else, when more entries
    /// are available (up to [`HEADS_AHEAD`], not past the ring's end), they
    /// are read ahead in one copy: RX takes a chain per 4 KiB of a large
    /// packet, and TX a batch of packets per round, and a read of one head
    /// costs more than taking it from the cache
    /// (Documentation/performance.rst). One entry, or a device
    /// IOTLB (where a read ahead could ask userspace for a translation C
    /// would not ask for yet), or a failed read ahead: one read, as C.
    #[inline(always)]
    fn avail_head<M, T>(&mut self, mem: &M, xlate: &T, idx: u16) -> Result<u16, RingError>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let off = usize::from(idx.wrapping_sub(self.heads_start));
        if off < usize::from(self.heads_len) {
            return Ok(u16::from_le_bytes([
                self.heads[2 * off],
                self.heads[2 * off + 1],
            ]));
        }
        // In order nothing is read ahead (`heads_len` stays 0): the chain
        // starts at C's `next_avail_head`, below `num` by the mask, and the
        // entry is not read. Tested here, past the cache, so the usual
        // path meets no test.
        if self.in_order {
            return Ok((u32::from(idx.wrapping_add(self.skew)) & self.mask()) as u16);
        }
        let slot = u32::from(idx) & self.mask();
        let head_addr = self
            .avail
            .wrapping_add(RING_OFFSET)
            .wrapping_add(2 * u64::from(slot));
        let ahead = (usize::from(self.avail_idx.wrapping_sub(idx)))
            .min(HEADS_AHEAD)
            .min((self.num - slot) as usize);
        self.heads_len = 0;
        if ahead > 1
            && !xlate.device_iotlb()
            && mem.read(head_addr, &mut self.heads[..2 * ahead]).is_ok()
        {
            self.heads_start = idx;
            // `ahead <= HEADS_AHEAD`, which fits a `u16`.
            self.heads_len = ahead as u16;
            return Ok(u16::from_le_bytes([self.heads[0], self.heads[1]]));
        }
        mem.read_u16(head_addr)
            .map_err(|_| RingError::Broken(Errno::EFAULT, Reason::HeadRead))
    }

    /// Reads descriptor `i` of the table, which must be below `num`.
    #[inline(always)]
    fn read_desc<M: RingMemory + ?Sized>(&self, mem: &M, i: u32) -> Result<Desc, RingError> {
        let mut b = [0u8; 16];
        let at = self.desc.wrapping_add(DESC_SIZE * u64::from(i));
        mem.read_desc(at, &mut b)
            .map_err(|_| RingError::Broken(Errno::EFAULT, Reason::DescRead))?;
        Ok(Desc::from_bytes(&b))
    }

    /// Collects chain `head` from its first descriptor `d`, already read
    /// (`head` is below `num`), into `acc`. The checks of C's loop, in its
    /// order: each `next` below `num`, at most `num` descriptors (a loop),
    /// each descriptor read after the previous one's buffer was
    /// translated; and at most the collector's allowance of descriptors
    /// read besides the head ([`super::chain::MAX_PACKET_READS`]).
    #[inline(never)]
    fn walk_chain<M, T>(
        &self,
        mem: &M,
        xlate: &T,
        indirect: &mut [Piece],
        mut acc: Collector<'_>,
        head: u16,
        mut d: Desc,
    ) -> Result<Chain, RingError>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let mut found: u32 = 1;
        loop {
            if d.flags & VRING_DESC_F_INDIRECT != 0 {
                walk_indirect(mem, xlate, &d, indirect, &mut acc)?;
            } else {
                acc.add(xlate, &d)?;
            }
            // As in C, an indirect descriptor may itself have NEXT set (the
            // specification forbids it), and the chain then goes on.
            if d.flags & VRING_DESC_F_NEXT == 0 {
                return Ok(acc.chain(head, found));
            }
            let i = u32::from(d.next);
            if i >= self.num {
                return Err(RingError::Broken(Errno::EINVAL, Reason::DescRange));
            }
            found += 1;
            if found > self.num {
                return Err(RingError::Broken(Errno::EINVAL, Reason::DescLoop));
            }
            acc.count_read()?;
            d = self.read_desc(mem, i)?;
        }
    }

    /// Gives back the last `n` chains taken, the first of which has head
    /// `first_head` (C's `vhost_discard_vq_desc(vq, n, ndesc)`); the index
    /// simply moves back, wrapping like C's `u16`.
    ///
    /// In order, the next chain starts at `first_head` again: C moves
    /// `next_avail_head` back by the chains' descriptor count `ndesc`,
    /// which (the chains being consecutive in the table) is this same
    /// position modulo `num`, the only part of `next_avail_head` that is
    /// ever used. Out of order, C's `next_avail_head` is never used and is
    /// left as it is here (the callers would have to count descriptors on
    /// every packet for nothing).
    pub(crate) fn discard(&mut self, n: u16, first_head: u16) {
        self.last_avail_idx = self.last_avail_idx.wrapping_sub(n);
        if self.in_order && n != 0 {
            // `next_avail_head = first_head` modulo `num`.
            self.skew = first_head.wrapping_sub(self.last_avail_idx);
        }
    }

    /// Gives back the `n` chains taken before the last one, which stays
    /// consumed, the first of them with head `first_head`, the last one
    /// with head `last_head`: C's `vhost_discard_vq_desc(vq, n, ndesc)`
    /// where `ndesc` counts the `n` chains only (`get_rx_bufs` after a chain
    /// of the wrong format). The index moves back by `n`, so one avail
    /// entry stays consumed, the first one's; in order, C's
    /// `next_avail_head` moves back by the `n` chains' descriptors only and
    /// stays past the last chain's: `first_head` plus the last chain's
    /// length, which is where the ring is now less `last_head` (the head
    /// rather than the length is passed: the caller keeps it anyway, and
    /// keeping the length too cost the RX loop a register, make profile).
    pub(crate) fn discard_before_last(&mut self, n: u16, first_head: u16, last_head: u16) {
        let next = self.last_avail_idx.wrapping_add(self.skew);
        self.discard(n, first_head);
        if self.in_order && n != 0 {
            // Modulo `num`, which divides 2^16, as every use masks it.
            self.skew = self.skew.wrapping_add(next.wrapping_sub(last_head));
        }
    }

    /// Logs a write to `len` bytes at `offset` in the used ring (C's
    /// `log_used`); C ignores the result everywhere, so this returns none.
    ///
    /// With the memory table the used ring's guest address is `log_addr`.
    /// With a device IOTLB the used ring's address is an IOVA: it is
    /// translated (at most [`LOG_IOV_MAX`] pieces, else nothing is logged)
    /// and the resulting user addresses are mapped back to guest addresses.
    fn log_used<M, T>(&self, mem: &M, xlate: &T, offset: u64, len: u64)
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let Some(log) = self.log else {
            return;
        };
        if !xlate.device_iotlb() {
            let _ = log_write(mem, log.log_base, log.log_addr.wrapping_add(offset), len);
            return;
        }
        // C translates the whole range into a 64-entry array first and logs
        // nothing if that fails. One piece at a time avoids the array: a
        // first pass checks that the translation succeeds within 64 pieces
        // (and lets a miss be queued once), a second pass logs.
        let start = self.used.wrapping_add(offset);
        let Ok(len) = u32::try_from(len) else {
            return;
        };
        for logging in [false, true] {
            let (mut addr, mut left, mut pieces) = (start, len, 0usize);
            while left != 0 {
                if pieces == LOG_IOV_MAX {
                    return;
                }
                let mut p = [Piece::default()];
                match xlate.translate(addr, left, PERM_WO, &mut p) {
                    Ok(_) | Err(TranslateError::NoBufs) => {}
                    Err(_) => return,
                }
                // A well-behaved translation never yields an empty piece or
                // one longer than asked; anything else ends the walk.
                let step = match u32::try_from(p[0].len) {
                    Ok(s) if s != 0 && s <= left => s,
                    _ => return,
                };
                if logging {
                    let region = |i| xlate.umem_region(i);
                    if log_write_hva(mem, log.log_base, region, p[0].addr, p[0].len).is_err() {
                        return;
                    }
                }
                addr = addr.wrapping_add(u64::from(step));
                left -= step;
                pieces += 1;
            }
        }
    }

    /// Where the used ring lies, for the writes of its 2-byte fields.
    #[inline(always)]
    fn used_ring(&self) -> UsedRing {
        UsedRing {
            addr: self.used,
            // At most 4 + 8 * 32768 + 2 bytes.
            len: super::super::validate::used_size(self.num, self.event_idx) as u32,
        }
    }

    /// Writes `used->flags` from `used_flags` and logs it (C's
    /// `vhost_update_used_flags`); `EFAULT` if the write fails.
    fn update_used_flags<M, T>(&self, mem: &M, xlate: &T) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        mem.write_used_u16(self.used_ring(), self.used, self.used_flags)
            .map_err(|_| Errno::EFAULT)?;
        if self.log.is_some() {
            // Barrier 5: the flags are in memory before their page is logged.
            mem.wmb();
            self.log_used(mem, xlate, 0, 2);
            mem.log_signal();
        }
        Ok(())
    }

    /// Writes `avail_event` from the cached `avail->idx` and logs it (C's
    /// `vhost_update_avail_event`); `EFAULT` if the write fails.
    fn update_avail_event<M, T>(&self, mem: &M, xlate: &T) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let offset = self.avail_event_offset();
        let at = self.used.wrapping_add(offset);
        mem.write_used_u16(self.used_ring(), at, self.avail_idx)
            .map_err(|_| Errno::EFAULT)?;
        if self.log.is_some() {
            // Barrier 5: the event index is in memory before it is logged.
            mem.wmb();
            self.log_used(mem, xlate, offset, 2);
            mem.log_signal();
        }
        Ok(())
    }

    /// Writes `heads` at `last_used_idx`, which must not wrap within them,
    /// and advances it (C's `__vhost_add_used_n`).
    fn add_used_part<M, T>(&mut self, mem: &M, xlate: &T, heads: &[UsedElem]) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let start = u64::from(u32::from(self.last_used_idx) & self.mask());
        let offset = RING_OFFSET + USED_ELEM_SIZE * start;
        write_used_elems(mem, self.used.wrapping_add(offset), heads)?;
        if self.log.is_some() {
            // Barrier 5: the elements are in memory before they are logged.
            mem.wmb();
            self.log_used(mem, xlate, offset, USED_ELEM_SIZE * heads.len() as u64);
        }
        let old = self.last_used_idx;
        // `heads` never holds more than `num` elements, so this is exact.
        let new = old.wrapping_add(heads.len() as u16);
        self.last_used_idx = new;
        // If the driver let the used index run a full 2^16 past the point
        // it was last signalled, that point is meaningless now.
        if new.wrapping_sub(self.signalled_used) < new.wrapping_sub(old) {
            self.signalled_used_valid = false;
        }
        Ok(())
    }

    /// Writes `used->idx` from `last_used_idx` after the elements it
    /// publishes, logs it and signals the log eventfd (the end of C's
    /// `vhost_add_used_n`); `EFAULT` if the write fails.
    #[inline(always)]
    fn publish_used_idx<M, T>(&self, mem: &M, xlate: &T) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        // Barrier 2: the elements are visible before the index that
        // publishes them.
        mem.wmb();
        let idx = self.used.wrapping_add(IDX_OFFSET);
        mem.write_used_u16(self.used_ring(), idx, self.last_used_idx)
            .map_err(|_| Errno::EFAULT)?;
        if self.log.is_some() {
            // Barrier 5: the index is in memory before it is logged.
            mem.wmb();
            self.log_used(mem, xlate, IDX_OFFSET, 2);
            mem.log_signal();
        }
        Ok(())
    }

    /// Gives chains back through the used ring and publishes them (C's
    /// `vhost_add_used_n`); `EFAULT` if a write fails.
    ///
    /// The elements are written in order from `last_used_idx`, split where
    /// the ring wraps, then `used->idx` is written, even for an empty
    /// `heads`. When the elements are logged, each part is logged as its
    /// own range, then `idx`, then the log eventfd is signalled.
    ///
    /// C splits only once, so more elements than the room left before the
    /// ring's end plus `num` run past the end of the used ring; a guest
    /// that posts heads again while they are held can make RX collect that
    /// many (Documentation/differences.rst, upstream bugs). This splits at
    /// every wrap instead.
    ///
    /// If the second part fails the first one stays written and counted in
    /// `last_used_idx`, but `used->idx` is not updated, as in C.
    pub(crate) fn add_used<M, T>(
        &mut self,
        mem: &M,
        xlate: &T,
        heads: &[UsedElem],
    ) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let mut rest = heads;
        loop {
            let start = u32::from(self.last_used_idx) & self.mask();
            let room = (self.num - start) as usize;
            if rest.len() <= room {
                break;
            }
            let (now, later) = rest.split_at(room);
            if let Err(e) = self.add_used_part(mem, xlate, now) {
                return Err(self.note(Reason::UsedWrite, e));
            }
            rest = later;
        }
        if let Err(e) = self.add_used_part(mem, xlate, rest) {
            return Err(self.note(Reason::UsedWrite, e));
        }
        match self.publish_used_idx(mem, xlate) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.note(Reason::UsedIdxWrite, e)),
        }
    }

    /// Gives chains back in order (C's `vhost_add_used_n` with
    /// `VIRTIO_F_IN_ORDER` and `nheads`, `vhost_add_used_n_in_order`):
    /// `heads[i]` stands for `nheads[i]` consecutive chains, the last of
    /// which has its `id` (the driver takes the ones before it as used
    /// whole). Each element is written at the position of the first of its
    /// chains, the positions in between are left as they are, and
    /// `used->idx` advances by the sum of `nheads` (wrapping like C's
    /// `u16`), then is written, as in [`SplitRing::add_used`]. `heads` and
    /// `nheads` are taken pairwise, up to the shorter.
    ///
    /// With logging, each element written is logged (8 bytes at its
    /// position), then `idx`, then the log eventfd is signalled. (C logs
    /// one range from the first element's position, whose length is
    /// computed from the position after the last chain: a batch that ends
    /// past the ring's end logs past the used ring, and elements beyond
    /// that range's end are not logged; this logs what was written.)
    ///
    /// If an element cannot be written, `EFAULT`, and neither
    /// `last_used_idx` nor `used->idx` moves (the elements before it stay
    /// written), as in C.
    pub(crate) fn add_used_in_order<M, T>(
        &mut self,
        mem: &M,
        xlate: &T,
        heads: &[UsedElem],
        nheads: &[u16],
    ) -> Result<(), Errno>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        let old = self.last_used_idx;
        let mut new = old;
        for (h, &n) in heads.iter().zip(nheads) {
            let slot = u64::from(u32::from(new) & self.mask());
            let offset = RING_OFFSET + USED_ELEM_SIZE * slot;
            if mem
                .write_used_elem(self.used.wrapping_add(offset), *h)
                .is_err()
            {
                return Err(self.note(Reason::UsedWrite, Errno::EFAULT));
            }
            if self.log.is_some() {
                // Barrier 5: the element is in memory before it is logged.
                mem.wmb();
                self.log_used(mem, xlate, offset, USED_ELEM_SIZE);
            }
            new = new.wrapping_add(n);
        }
        self.last_used_idx = new;
        if new.wrapping_sub(self.signalled_used) < new.wrapping_sub(old) {
            self.signalled_used_valid = false;
        }
        match self.publish_used_idx(mem, xlate) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.note(Reason::UsedIdxWrite, e)),
        }
    }

    /// Whether the driver should be interrupted now that used entries were
    /// added (C's `vhost_notify`, called by `vhost_signal` only when a call
    /// eventfd is set).
    ///
    /// - With `VIRTIO_F_NOTIFY_ON_EMPTY`, yes if every available entry
    ///   (as cached) was taken.
    /// - Without event index: unless `avail->flags` has
    ///   `VRING_AVAIL_F_NO_INTERRUPT`; yes if the flags cannot be read.
    /// - With event index: yes if `signalled_used` was invalid, else if
    ///   `used_event` lies in the entries added since the last call
    ///   (`vring_need_event`); yes if `used_event` cannot be read. The
    ///   current `last_used_idx` becomes the new `signalled_used` in any
    ///   case.
    ///
    /// A failed read is reported as `EFAULT` in [`Reported::error`].
    #[inline(always)]
    pub(crate) fn need_notify<M: RingMemory + ?Sized>(&mut self, mem: &M) -> Reported<bool> {
        // Barrier 4: the used index written by add_used is ordered before
        // the reads of the driver's suppression state below.
        mem.mb();
        if self.notify_on_empty && self.avail_idx == self.last_avail_idx {
            return Reported::ok(true);
        }
        if !self.event_idx {
            return match mem.read_u16(self.avail) {
                Ok(flags) => Reported::ok(flags & VRING_AVAIL_F_NO_INTERRUPT == 0),
                Err(_) => self.note(Reason::FlagsRead, Reported::err(true, Errno::EFAULT)),
            };
        }
        let old = self.signalled_used;
        let valid = self.signalled_used_valid;
        let new = self.last_used_idx;
        self.signalled_used = new;
        self.signalled_used_valid = true;
        if !valid {
            return Reported::ok(true);
        }
        match mem.read_u16(self.used_event_addr()) {
            Ok(event) => Reported::ok(vring_need_event(event, new, old)),
            Err(_) => self.note(Reason::UsedEventRead, Reported::err(true, Errno::EFAULT)),
        }
    }

    /// Asks the driver for kicks again (C's `vhost_enable_notify`); returns
    /// whether `avail->idx` moved meanwhile, in which case the worker should
    /// go on polling the ring instead of sleeping.
    ///
    /// Nothing happens (and the answer is "no") if notifications were not
    /// disabled. Otherwise `VRING_USED_F_NO_NOTIFY` is cleared from the
    /// flags and, without event index, `used->flags` is written; with event
    /// index `avail_event` is written instead, with the cached `avail->idx`.
    /// A failed write is reported (`EFAULT`) and the answer is "no", with the
    /// flag already cleared in `used_flags`, as in C.
    ///
    /// "Moved" means "differs from the cached `avail->idx`", as in C: called
    /// while cached entries are still untaken, it answers "no" for them. A
    /// failure to re-read the index is reported and answered with "no".
    pub(crate) fn enable_notify<M, T>(&mut self, mem: &M, xlate: &T) -> Reported<bool>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        if self.used_flags & VRING_USED_F_NO_NOTIFY == 0 {
            return Reported::ok(false);
        }
        self.used_flags &= !VRING_USED_F_NO_NOTIFY;
        let written = if self.event_idx {
            self.update_avail_event(mem, xlate)
        } else {
            self.update_used_flags(mem, xlate)
        };
        if let Err(e) = written {
            let reason = if self.event_idx {
                Reason::AvailEventWrite
            } else {
                Reason::EnableNotify
            };
            return self.note(reason, Reported::err(false, e));
        }
        // Barrier 3: the store that asks for kicks is ordered before the
        // load of avail->idx that checks for buffers added meanwhile.
        mem.mb();
        match self.refresh_avail_idx(mem) {
            Ok(moved) => Reported::ok(moved),
            Err(e) => Reported::err(false, e),
        }
    }

    /// Tells the driver that kicks are not needed (C's
    /// `vhost_disable_notify`).
    ///
    /// Without event index `used->flags` is written (a failure is reported
    /// as `EFAULT`); with it nothing is written: the driver keeps the last
    /// `avail_event` and kicks once more when it passes it.
    pub(crate) fn disable_notify<M, T>(&mut self, mem: &M, xlate: &T) -> Reported<()>
    where
        M: RingMemory + ?Sized,
        T: Translate + ?Sized,
    {
        if self.used_flags & VRING_USED_F_NO_NOTIFY != 0 {
            return Reported::ok(());
        }
        self.used_flags |= VRING_USED_F_NO_NOTIFY;
        if !self.event_idx {
            if let Err(e) = self.update_used_flags(mem, xlate) {
                return self.note(Reason::DisableNotify, Reported::err((), e));
            }
        }
        Reported::ok(())
    }

    /// Whether the available ring is surely empty (C's
    /// `vhost_vq_avail_empty`): "no" while cached entries remain, else
    /// re-reads `avail->idx`; a failure to read it (reported) counts as
    /// "not empty", so that the worker goes on and meets the error.
    pub(crate) fn avail_empty<M: RingMemory + ?Sized>(&mut self, mem: &M) -> Reported<bool> {
        if self.avail_idx != self.last_avail_idx {
            return Reported::ok(false);
        }
        match self.refresh_avail_idx(mem) {
            Ok(moved) => Reported::ok(!moved),
            Err(e) => Reported::err(false, e),
        }
    }
}

/// Whether the driver asked to be interrupted when the used index passes
/// `event`, given that it moved from `old` to `new` since the last check
/// (`vring_need_event` of include/uapi/linux/virtio_ring.h): all in `u16`
/// arithmetic, `event` must lie in `[old, new)`.
pub(crate) const fn vring_need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
