// SPDX-License-Identifier: GPL-2.0

//! Descriptor chains: taking one from the descriptor table and indirect
//! tables into the caller's buffers (C's `vhost_get_vq_desc` loop and
//! `get_indirect`), the budget of descriptor reads that bounds a packet and
//! a round, and the dirty logging of a used chain (C's `vhost_log_write`).
//! The ring layout decides where a chain starts ([`super::split`]).

use super::super::diag::Reason;
use super::super::errno::Errno;
use super::super::memory::dirtylog::{log_write, log_write_hva, LogEntry};
use super::super::memory::intervalmap::{Piece, TranslateError, PERM_RO, PERM_WO};
use super::access::{RingMemory, Translate};
use super::desc::{Desc, DESC_SIZE, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

/// The number of pieces C has room for in an indirect table and in a
/// chain (`UIO_MAXIOV`, the size of `vq->indirect` and `vq->iov`).
pub(crate) const UIO_MAXIOV: usize = 1024;

/// Largest number of descriptors in an indirect table: `next` is 16 bits.
const MAX_INDIRECT: u32 = 1 << 16;

/// The most descriptors one packet may make the device read besides the
/// heads of its chains: the further entries of the descriptor table and
/// every entry of an indirect table, over all the chains of a packet (one
/// chain for TX, up to [`UIO_MAXIOV`] for a mergeable RX packet; the caller
/// passes what is left in [`ChainBufs::reads`]). A chain that would need
/// more fails with `EINVAL`, like C's loop checks. A chain of one
/// descriptor, the usual one, reads nothing beyond its head and pays
/// nothing for the count.
///
/// C bounds each table on its own (`num` for the descriptor table, the
/// table's length for an indirect one), so one chain whose every
/// descriptor is `INDIRECT | NEXT` and points at a table of 65536
/// zero-length entries makes it read 2^31 descriptors without a
/// rescheduling point (a soft lockup; Documentation/security.rst). A driver
/// that works with QEMU's own virtio-net posts at most 1024 buffers per
/// packet, none of length 0, and so needs fewer than 2048 reads; this is
/// twice that. At some tens of nanoseconds a read, a packet's chains cost
/// at most a few hundred microseconds.
pub(crate) const MAX_PACKET_READS: u32 = 4096;
/// The most descriptors a round may read besides heads before the ring
/// yields ([`RingError::Yield`], checked before each walk beyond a head,
/// so a packet's chains are read in one round): four of the worst packets.
/// A guest's packets read a few each (256 packets of 64 descriptors would
/// be this many), so only a guest that chains zero-length or needlessly
/// many descriptors meets it, and its rounds then end after some hundreds
/// of microseconds, however long its chains. The count lives in the ring
/// and grows only on the walk, so the usual one-descriptor chain pays
/// nothing for it.
pub(crate) const MAX_ROUND_READS: u32 = 4 * MAX_PACKET_READS;

/// Why a ring operation failed.
///
/// Two failures are equal when C would answer them alike: a broken ring's
/// [`Reason`] says which of C's `vq_err` messages it is, for the log and
/// the statistics only, and is left out of the comparison (the host tests
/// compare failures with C's errno).
#[derive(Clone, Copy, Debug)]
pub(crate) enum RingError {
    /// The ring is broken or unreadable: C reports this with `vq_err`
    /// (signalling the error eventfd, logging the reason) and the handler
    /// stops until the next kick.
    Broken(Errno, Reason),
    /// A guest address missed in the device IOTLB; C returns `EAGAIN`
    /// without `vq_err` and the handler retries once userspace has answered
    /// the miss (which [`Translate::translate`] queued).
    IotlbMiss {
        /// The first address without a mapping.
        iova: u64,
        /// `PERM_RO` or `PERM_WO`: the access that missed.
        access: u32,
    },
    /// The round has read [`MAX_ROUND_READS`] descriptors besides heads:
    /// nothing was taken, and the handler ends the round and runs the ring
    /// again after the worker rescheduled (C has no such limit).
    Yield,
}

impl RingError {
    /// The errno C returns for this failure.
    #[allow(
        dead_code,
        reason = "the host tests compare failures with C's errno; the worker needs only the kind"
    )]
    pub(crate) const fn errno(self) -> Errno {
        match self {
            RingError::Broken(e, _) => e,
            RingError::IotlbMiss { .. } | RingError::Yield => Errno::EAGAIN,
        }
    }

    /// A broken ring without a reason (the host tests' expected values).
    #[allow(
        dead_code,
        reason = "the host tests build expected failures with it; the module always names a reason"
    )]
    pub(crate) const fn broken(e: Errno) -> Self {
        RingError::Broken(e, Reason::Unspecified)
    }

    /// The same failure, met inside an indirect table: C's messages for
    /// a buffer there differ from those for the descriptor table's.
    #[cold]
    fn in_indirect(self) -> Self {
        match self {
            RingError::Broken(e, Reason::DescXlate) => {
                RingError::Broken(e, Reason::IndirectDescXlate)
            }
            RingError::Broken(e, Reason::OutAfterIn) => {
                RingError::Broken(e, Reason::IndirectOutAfterIn)
            }
            other => other,
        }
    }
}

impl PartialEq for RingError {
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (RingError::Broken(a, _), RingError::Broken(b, _)) => a == b,
            (
                RingError::IotlbMiss { iova, access },
                RingError::IotlbMiss {
                    iova: iova2,
                    access: access2,
                },
            ) => iova == iova2 && access == access2,
            (RingError::Yield, RingError::Yield) => true,
            _ => false,
        }
    }
}

impl Eq for RingError {}

/// A descriptor chain taken from the available ring.
///
/// The chain's buffers are in the `iov` slice given to `get_desc_chain`:
/// `out_num` readable pieces first, then `in_num` writable ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    /// Index of the head descriptor; what goes into [`super::desc::UsedElem::id`].
    pub(crate) head: u16,
    /// Number of readable (device-reads, "out") pieces.
    pub(crate) out_num: usize,
    /// Number of writable (device-writes, "in") pieces.
    pub(crate) in_num: usize,
    /// Number of [`LogEntry`] values stored, when a log slice was given.
    pub(crate) log_num: usize,
    /// Bytes in all the pieces (the sum of the descriptors' lengths): what
    /// C's callers compute with `iov_length`, kept as the chain is walked,
    /// which is cheaper than a sum over the pieces afterwards
    /// (Documentation/performance.rst).
    pub(crate) len: u64,
    /// Number of descriptors of the descriptor table the chain used (an
    /// indirect descriptor counts as one); a packed or in-order ring needs
    /// it to know how far the chain reaches.
    pub(crate) descs: u32,
    /// Descriptors read to collect the chain besides its head (further
    /// entries of the table, indirect entries), at most the
    /// [`ChainBufs::reads`] given.
    pub(crate) reads: u32,
}

/// What the caller provides to receive a chain.
pub(crate) struct ChainBufs<'a> {
    /// Room for the pieces of the chain (C's `iov`, `iov_size`).
    pub(crate) iov: &'a mut [Piece],
    /// Scratch room for the pieces of an indirect table (C's `vq->indirect`,
    /// [`UIO_MAXIOV`] entries).
    pub(crate) indirect: &'a mut [Piece],
    /// Room for the writable descriptors to log, when dirty logging is on
    /// (C passes `vq->log` only with `VHOST_F_LOG_ALL`). Each logged
    /// descriptor has at least one writable piece, so a slice as long as
    /// `iov` never runs out; C does not check, this fails with `ENOBUFS`.
    pub(crate) log: Option<&'a mut [LogEntry]>,
    /// Descriptors the chain may read besides its head, at most
    /// [`MAX_PACKET_READS`]; a chain that needs more fails with `EINVAL`.
    pub(crate) reads: u32,
}

/// Maps a translation failure to C's error, noting IOTLB misses;
/// `reason` is what C logs for it.
fn xlate_err<T: Translate + ?Sized>(
    xlate: &T,
    e: TranslateError,
    access: u32,
    reason: Reason,
) -> RingError {
    match e {
        TranslateError::Miss { addr } if xlate.device_iotlb() => {
            RingError::IotlbMiss { iova: addr, access }
        }
        e => RingError::Broken(e.errno(xlate.device_iotlb()), reason),
    }
}

/// The pieces and log entries of a chain being collected.
pub(super) struct Collector<'a> {
    /// The caller's room for pieces.
    iov: &'a mut [Piece],
    /// The caller's room for log entries.
    log: Option<&'a mut [LogEntry]>,
    /// Readable pieces so far.
    out_num: usize,
    /// Writable pieces so far.
    in_num: usize,
    /// Log entries so far.
    log_num: usize,
    /// Bytes so far.
    len: u64,
    /// Descriptor reads allowed besides the head ([`MAX_PACKET_READS`]).
    reads: u32,
    /// Of those, the ones still allowed (at most `reads`).
    reads_left: u32,
}

impl<'a> Collector<'a> {
    /// Nothing collected yet into the caller's room, with `reads`
    /// descriptor reads allowed besides the head, at most
    /// [`MAX_PACKET_READS`].
    #[inline(always)]
    pub(super) fn new(iov: &'a mut [Piece], log: Option<&'a mut [LogEntry]>, reads: u32) -> Self {
        Collector {
            iov,
            log,
            out_num: 0,
            in_num: 0,
            log_num: 0,
            len: 0,
            reads: reads.min(MAX_PACKET_READS),
            reads_left: reads.min(MAX_PACKET_READS),
        }
    }

    /// The chain collected: `head`, of `descs` descriptors.
    pub(super) fn chain(&self, head: u16, descs: u32) -> Chain {
        Chain {
            head,
            out_num: self.out_num,
            in_num: self.in_num,
            log_num: self.log_num,
            len: self.len,
            descs,
            // `reads_left` only goes down from `reads`.
            reads: self.reads - self.reads_left,
        }
    }

    /// Accounts for one more descriptor read ([`MAX_PACKET_READS`]): the
    /// walk fails with `EINVAL` once the caller's allowance is spent.
    #[inline(always)]
    pub(super) fn count_read(&mut self) -> Result<(), RingError> {
        self.reads_left = self
            .reads_left
            .checked_sub(1)
            .ok_or(RingError::Broken(Errno::EINVAL, Reason::ReadBudget))?;
        Ok(())
    }

    /// Adds the buffer of a direct descriptor, checking what C checks after
    /// translating it: a readable buffer after a writable one is `EINVAL`.
    ///
    /// Only pieces count: a writable descriptor of length 0 adds no piece,
    /// so a readable one may follow it, and it is not logged.
    // Inlined: it runs once per descriptor, and a call costs it a frame
    // (Documentation/performance.rst).
    #[inline(always)]
    pub(super) fn add<T: Translate + ?Sized>(
        &mut self,
        xlate: &T,
        d: &Desc,
    ) -> Result<(), RingError> {
        let access = if d.flags & VRING_DESC_F_WRITE != 0 {
            PERM_WO
        } else {
            PERM_RO
        };
        // The translation stores at most `room.len()` pieces, so the counts
        // stay at most `iov.len()`: plain additions.
        let at = self.out_num + self.in_num;
        let room = self.iov.get_mut(at..).unwrap_or_default();
        let n = xlate
            .translate(d.addr, d.len, access, room)
            .map_err(|e| xlate_err(xlate, e, access, Reason::DescXlate))?;
        // The `n` pieces hold the `d.len` bytes. Every descriptor of
        // nonzero length adds a piece, at most `iov.len()` (at most
        // `UIO_MAXIOV` in the driver) of them, so the sum stays below 2^42.
        self.len = self.len.wrapping_add(u64::from(d.len));
        if access == PERM_WO {
            self.in_num += n;
            if n != 0 {
                if let Some(log) = self.log.as_deref_mut() {
                    let slot = log
                        .get_mut(self.log_num)
                        .ok_or(RingError::Broken(Errno::ENOBUFS, Reason::LogFull))?;
                    *slot = LogEntry {
                        addr: d.addr,
                        len: u64::from(d.len),
                    };
                    self.log_num += 1;
                }
            }
        } else {
            if self.in_num != 0 {
                return Err(RingError::Broken(Errno::EINVAL, Reason::OutAfterIn));
            }
            self.out_num += n;
        }
        Ok(())
    }
}

/// Reads consecutive bytes through the pieces of a translated range, like
/// an `iov_iter` over them.
struct PieceReader<'a> {
    /// The pieces, in order.
    pieces: &'a [Piece],
    /// Index of the current piece.
    index: usize,
    /// Bytes of the current piece already read.
    offset: u64,
}

impl PieceReader<'_> {
    /// Reads the next descriptor; `false` if the pieces run out or a read
    /// faults (C's `copy_from_iter_full` failing).
    fn read_desc<M: RingMemory + ?Sized>(&mut self, mem: &M) -> Option<Desc> {
        let mut b = [0u8; 16];
        let mut filled = 0usize;
        while filled < b.len() {
            let p = self.pieces.get(self.index)?;
            let left = p.len.saturating_sub(self.offset);
            if left == 0 {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            // `filled < 16` and `take <= left`: the sums below stay within
            // `b` and the piece.
            let take = left.min((b.len() - filled) as u64) as usize;
            // The piece is a translation: read it as it is.
            mem.read_translated(
                p.addr.wrapping_add(self.offset),
                &mut b[filled..filled + take],
            )
            .ok()?;
            filled += take;
            self.offset += take as u64;
        }
        Some(Desc::from_bytes(&b))
    }
}

/// Reads the indirect table described by `outer` and adds its buffers to
/// the chain (C's `get_indirect`).
///
/// Errors, in C's order:
/// - `len` not a multiple of 16: `EINVAL`. A `len` of 0 passes this and the
///   translation, and then fails the loop check (`EINVAL`);
/// - translating the table (read access, at most `table.len()` pieces):
///   `EFAULT`, `EPERM`, `ENOBUFS`, or an IOTLB miss;
/// - more than 65536 entries: `E2BIG`;
/// - then, for each entry: more entries than the table holds: `EINVAL`;
///   reading it fails: `EINVAL` (not `EFAULT`: C's `copy_from_iter_full`
///   only says "incomplete"); `VRING_DESC_F_INDIRECT` set: `EINVAL`; and the
///   checks of a direct descriptor.
///
/// C reads the table's entries one after the other and never looks at
/// their `next` field: `VRING_DESC_F_NEXT` only says whether the chain goes
/// on, with the entry that follows in the table. The outer descriptor's
/// `VRING_DESC_F_WRITE` is ignored.
pub(super) fn walk_indirect<M, T>(
    mem: &M,
    xlate: &T,
    outer: &Desc,
    table: &mut [Piece],
    acc: &mut Collector<'_>,
) -> Result<(), RingError>
where
    M: RingMemory + ?Sized,
    T: Translate + ?Sized,
{
    let len = outer.len;
    if u64::from(len) % DESC_SIZE != 0 {
        return Err(RingError::Broken(Errno::EINVAL, Reason::IndirectLen));
    }
    let n = xlate
        .translate(outer.addr, len, PERM_RO, table)
        .map_err(|e| xlate_err(xlate, e, PERM_RO, Reason::IndirectXlate))?;
    let count = len / DESC_SIZE as u32;
    if count > MAX_INDIRECT {
        return Err(RingError::Broken(Errno::E2BIG, Reason::IndirectTooBig));
    }
    let mut reader = PieceReader {
        pieces: table.get(..n).unwrap_or_default(),
        index: 0,
        offset: 0,
    };
    let mut found: u32 = 0;
    loop {
        found += 1;
        if found > count {
            return Err(RingError::Broken(Errno::EINVAL, Reason::IndirectLoop));
        }
        acc.count_read()?;
        let d = reader
            .read_desc(mem)
            .ok_or(RingError::Broken(Errno::EINVAL, Reason::IndirectRead))?;
        if d.flags & VRING_DESC_F_INDIRECT != 0 {
            return Err(RingError::Broken(Errno::EINVAL, Reason::IndirectNested));
        }
        acc.add(xlate, &d).map_err(RingError::in_indirect)?;
        if d.flags & VRING_DESC_F_NEXT == 0 {
            return Ok(());
        }
    }
}

/// Logs the guest buffers of a used chain after the device wrote `len`
/// bytes into them (C's `vhost_log_write`); returns whether C would signal
/// the log eventfd (`log_ctx`) now.
///
/// Without a device IOTLB, `log` holds the writable descriptors recorded by
/// `get_desc_chain`; each is logged up to the bytes still unaccounted for,
/// and the walk stops (and asks for the signal) once `len` bytes are logged.
/// If the entries hold fewer than `len` bytes C hits `BUG()`; this returns
/// `EINVAL` instead. With a device IOTLB the descriptors hold IOVAs, so C
/// logs the user addresses the writable buffers were translated to (`iov`,
/// the writable pieces) through the memory table, and does not signal.
///
/// C logs those pieces whole. A guest can make that a walk of terabytes
/// for one packet (up to [`UIO_MAXIOV`] pieces of up to 4 GiB,
/// a bitmap write per page, with no rescheduling point). This logs the
/// first `len` bytes of the pieces, which are the bytes the device wrote
/// (it fills them in order), so every written page is still logged: a
/// deliberate difference (Documentation/differences.rst).
///
/// The write barrier first makes the data written to the buffers visible
/// before any log bit: userspace that sees a bit, clears it and copies the
/// page must see the new data, or the page would be migrated stale.
pub(crate) fn log_write_bufs<M, T>(
    mem: &M,
    xlate: &T,
    log_base: u64,
    log: &[LogEntry],
    len: u64,
    iov: &[Piece],
) -> Result<bool, Errno>
where
    M: RingMemory + ?Sized,
    T: Translate + ?Sized,
{
    mem.wmb();
    if xlate.device_iotlb() {
        let mut left = len;
        for p in iov {
            if left == 0 {
                break;
            }
            let l = p.len.min(left);
            log_write_hva(mem, log_base, |i| xlate.umem_region(i), p.addr, l)?;
            // `l <= left`.
            left -= l;
        }
        return Ok(false);
    }
    let mut len = len;
    for e in log {
        let l = e.len.min(len);
        log_write(mem, log_base, e.addr, l)?;
        len -= l;
        if len == 0 {
            return Ok(true);
        }
    }
    Err(Errno::EINVAL)
}
