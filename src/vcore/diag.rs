// SPDX-License-Identifier: GPL-2.0

//! Why a ring stopped, and what it moved: the reasons the module logs
//! where C calls `vq_err` (one [`Reason`] per C message, with C's text),
//! the per-virtqueue counters shown in `/proc/<pid>/fdinfo/<fd>`
//! ([`VqStats`]), and their one-line format ([`write_vq_line`]).
//!
//! The map from our error sites to C's `vq_err` strings lives here and
//! nowhere else: the kernel glue logs [`Reason::message`] and the fdinfo
//! line shows [`Reason::name`].
//!
//! # The counters and their readers
//!
//! Each ring's counters are written by one task at a time: the holder of
//! the ring's mutex (the worker in a round, or an ioctl that runs the
//! ring's code); the kicks are counted by the kick eventfd's wake-up
//! callback, under the eventfd's wait-queue lock (src/kapi/poll.rs). A single writer needs
//! no read-modify-write: [`Counter::add`] is a `Relaxed` load and a
//! `Relaxed` store, which compile to plain moves (no `lock` prefix), so
//! counting costs the data path what a plain `u64` field would. They are
//! atomics only so that the fdinfo reader, which takes no lock, reads them
//! without a data race: it sees each counter as it was at some moment of
//! the read, not all of them at the same moment (a snapshot, not a
//! consistent cut).

use super::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use core::fmt;

/// Why a ring (or one of its packets) failed: one variant per message C
/// passes to `vq_err` in drivers/vhost/vhost.c and net.c (6.12 and 7.3
/// have the same set), plus the few failures only this module reports or
/// counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reason {
    /// No reason recorded (the host tests' constructors; never logged by
    /// the module).
    Unspecified = 0,
    /// `iotlb_access_ok`, `translate_desc` of ring metadata: a mapping
    /// without the access asked for.
    IotlbTranslation,
    /// `__vhost_get_user_slow`: ring metadata spans several mappings.
    NonAtomicAccess,
    /// `vhost_get_avail_idx`: reading `avail->idx` failed.
    AvailIdxRead,
    /// `vhost_get_avail_idx`: `avail->idx` claims more than `num` entries.
    AvailIdxInvalid,
    /// `vhost_vq_init_access`: reading `used->idx` failed.
    UsedIdxRead,
    /// `get_indirect`: a length that is not a multiple of 16.
    IndirectLen,
    /// `get_indirect`: translating the table failed.
    IndirectXlate,
    /// `get_indirect`: more than 65536 entries.
    IndirectTooBig,
    /// `get_indirect`: more entries than the table holds (a loop).
    IndirectLoop,
    /// `get_indirect`: reading an entry failed.
    IndirectRead,
    /// `get_indirect`: an indirect descriptor inside an indirect table.
    IndirectNested,
    /// `get_indirect`: translating an entry's buffer failed.
    IndirectDescXlate,
    /// `get_indirect`: a readable buffer after a writable one.
    IndirectOutAfterIn,
    /// `vhost_get_vq_desc`: reading the available ring entry failed.
    HeadRead,
    /// `vhost_get_vq_desc`: a head index of `num` or more.
    HeadRange,
    /// `vhost_get_vq_desc`: a `next` index of `num` or more.
    DescRange,
    /// `vhost_get_vq_desc`: more descriptors than `num` (a loop).
    DescLoop,
    /// `vhost_get_vq_desc`: reading a descriptor failed.
    DescRead,
    /// `vhost_get_vq_desc`: translating a buffer failed.
    DescXlate,
    /// `vhost_get_vq_desc`: a readable buffer after a writable one.
    OutAfterIn,
    /// Not in C: the chain needs more than `MAX_PACKET_READS` descriptor
    /// reads (Documentation/security.rst).
    ReadBudget,
    /// Not in C (which has no check): no room left to log a writable
    /// descriptor.
    LogFull,
    /// `__vhost_add_used_n`: writing used elements failed.
    UsedWrite,
    /// `vhost_add_used_n`: writing `used->idx` failed.
    UsedIdxWrite,
    /// `vhost_notify`: reading `avail->flags` failed.
    FlagsRead,
    /// `vhost_notify`: reading `used_event` failed.
    UsedEventRead,
    /// `vhost_enable_notify`: writing `used->flags` failed.
    EnableNotify,
    /// `vhost_enable_notify`: writing `avail_event` failed.
    AvailEventWrite,
    /// `vhost_disable_notify`: writing `used->flags` failed.
    DisableNotify,
    /// `vhost_tx_batch`: the socket refused the batch.
    TxBatch,
    /// `get_tx_bufs`: a TX chain with writable buffers.
    TxFormat,
    /// `get_tx_bufs`: a TX chain no longer than the vhost header.
    TxHeaderLen,
    /// `get_rx_bufs`: an RX chain with readable buffers or none writable.
    RxFormat,
    /// `handle_rx`: writing the virtio-net header failed.
    RxHdrWrite,
    /// `handle_rx`: writing `num_buffers` failed.
    RxNumBuffers,
    /// Not a `vq_err` (C says nothing): an RX packet needs more pieces or
    /// chains than the device has room for.
    RxNoRoom,
    /// Not a `vq_err`: the socket refused a TX packet for good (dropped,
    /// as in C).
    TxSend,
    /// Not a `vq_err`: an RX packet larger than the buffers the guest
    /// posted (dropped, as in C: CVE-2014-0077).
    RxTooBig,
}

/// The number of [`Reason`] variants.
pub(crate) const NREASONS: usize = Reason::RxTooBig as usize + 1;

impl Reason {
    /// Every reason, in the order of their values.
    pub(crate) const ALL: [Reason; NREASONS] = [
        Reason::Unspecified,
        Reason::IotlbTranslation,
        Reason::NonAtomicAccess,
        Reason::AvailIdxRead,
        Reason::AvailIdxInvalid,
        Reason::UsedIdxRead,
        Reason::IndirectLen,
        Reason::IndirectXlate,
        Reason::IndirectTooBig,
        Reason::IndirectLoop,
        Reason::IndirectRead,
        Reason::IndirectNested,
        Reason::IndirectDescXlate,
        Reason::IndirectOutAfterIn,
        Reason::HeadRead,
        Reason::HeadRange,
        Reason::DescRange,
        Reason::DescLoop,
        Reason::DescRead,
        Reason::DescXlate,
        Reason::OutAfterIn,
        Reason::ReadBudget,
        Reason::LogFull,
        Reason::UsedWrite,
        Reason::UsedIdxWrite,
        Reason::FlagsRead,
        Reason::UsedEventRead,
        Reason::EnableNotify,
        Reason::AvailEventWrite,
        Reason::DisableNotify,
        Reason::TxBatch,
        Reason::TxFormat,
        Reason::TxHeaderLen,
        Reason::RxFormat,
        Reason::RxHdrWrite,
        Reason::RxNumBuffers,
        Reason::RxNoRoom,
        Reason::TxSend,
        Reason::RxTooBig,
    ];

    /// The reason of value `v`, if any.
    pub(crate) fn from_u8(v: u8) -> Option<Reason> {
        Self::ALL.get(usize::from(v)).copied()
    }

    /// How many times C's `vq_err` reports this condition, each a signal
    /// of the ring's error eventfd: twice for a broken indirect table
    /// (`get_indirect`'s own message, then `vhost_get_vq_desc`'s "Failure
    /// detected in indirect descriptor"), once for anything else.
    pub(crate) const fn c_reports(self) -> u64 {
        match self {
            Reason::IndirectLen
            | Reason::IndirectXlate
            | Reason::IndirectTooBig
            | Reason::IndirectLoop
            | Reason::IndirectRead
            | Reason::IndirectNested
            | Reason::IndirectDescXlate
            | Reason::IndirectOutAfterIn => 2,
            _ => 1,
        }
    }

    /// A short name, for the fdinfo line (lower case, no spaces).
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Reason::Unspecified => "unspecified",
            Reason::IotlbTranslation => "iotlb_translation",
            Reason::NonAtomicAccess => "non_atomic_access",
            Reason::AvailIdxRead => "avail_idx_read",
            Reason::AvailIdxInvalid => "avail_idx_invalid",
            Reason::UsedIdxRead => "used_idx_read",
            Reason::IndirectLen => "indirect_len",
            Reason::IndirectXlate => "indirect_xlate",
            Reason::IndirectTooBig => "indirect_too_big",
            Reason::IndirectLoop => "indirect_loop",
            Reason::IndirectRead => "indirect_read",
            Reason::IndirectNested => "indirect_nested",
            Reason::IndirectDescXlate => "indirect_desc_xlate",
            Reason::IndirectOutAfterIn => "indirect_out_after_in",
            Reason::HeadRead => "head_read",
            Reason::HeadRange => "head_range",
            Reason::DescRange => "desc_range",
            Reason::DescLoop => "desc_loop",
            Reason::DescRead => "desc_read",
            Reason::DescXlate => "desc_xlate",
            Reason::OutAfterIn => "out_after_in",
            Reason::ReadBudget => "read_budget",
            Reason::LogFull => "log_full",
            Reason::UsedWrite => "used_write",
            Reason::UsedIdxWrite => "used_idx_write",
            Reason::FlagsRead => "flags_read",
            Reason::UsedEventRead => "used_event_read",
            Reason::EnableNotify => "enable_notify",
            Reason::AvailEventWrite => "avail_event_write",
            Reason::DisableNotify => "disable_notify",
            Reason::TxBatch => "tx_batch",
            Reason::TxFormat => "tx_format",
            Reason::TxHeaderLen => "tx_header_len",
            Reason::RxFormat => "rx_format",
            Reason::RxHdrWrite => "rx_hdr_write",
            Reason::RxNumBuffers => "rx_num_buffers",
            Reason::RxNoRoom => "rx_no_room",
            Reason::TxSend => "tx_send",
            Reason::RxTooBig => "rx_too_big",
        }
    }

    /// The message C's `vq_err` prints for it (without C's numbers: the
    /// log line adds the ring, the errno and, where C prints one, the
    /// index). Reasons C does not report say so.
    pub(crate) const fn message(self) -> &'static str {
        match self {
            Reason::Unspecified => "Unspecified error",
            Reason::IotlbTranslation => "IOTLB translation failure",
            Reason::NonAtomicAccess => "Non atomic userspace memory access",
            Reason::AvailIdxRead => "Failed to access available index",
            Reason::AvailIdxInvalid => "Invalid available index change",
            Reason::UsedIdxRead => "Can't access used idx",
            Reason::IndirectLen => "Invalid length in indirect descriptor",
            Reason::IndirectXlate => "Translation failure in indirect",
            Reason::IndirectTooBig => "Indirect buffer length too big",
            Reason::IndirectLoop => "Loop detected in indirect table",
            Reason::IndirectRead => "Failed indirect descriptor",
            Reason::IndirectNested => "Nested indirect descriptor",
            Reason::IndirectDescXlate => "Translation failure indirect",
            Reason::IndirectOutAfterIn => "Indirect descriptor has out after in",
            Reason::HeadRead => "Failed to read head",
            Reason::HeadRange => "Guest says index > num is available",
            Reason::DescRange => "Desc index is > num",
            Reason::DescLoop => "Loop detected in descriptor table",
            Reason::DescRead => "Failed to get descriptor",
            Reason::DescXlate => "Translation failure descriptor",
            Reason::OutAfterIn => "Descriptor has out after in",
            Reason::ReadBudget => "Too many descriptors for one packet (not in C)",
            Reason::LogFull => "No room to log a writable descriptor (not in C)",
            Reason::UsedWrite => "Failed to write used",
            Reason::UsedIdxWrite => "Failed to increment used idx",
            Reason::FlagsRead => "Failed to get flags",
            Reason::UsedEventRead => "Failed to get used event idx",
            Reason::EnableNotify => "Failed to enable notification",
            Reason::AvailEventWrite => "Failed to update avail event index",
            Reason::DisableNotify => "Failed to disable notification",
            Reason::TxBatch => "Fail to batch sending packets",
            Reason::TxFormat => "Unexpected descriptor format for TX",
            Reason::TxHeaderLen => "Unexpected header len for TX",
            Reason::RxFormat => "unexpected descriptor format for RX",
            Reason::RxHdrWrite => "Unable to write vnet_hdr",
            Reason::RxNumBuffers => "Failed num_buffers write",
            Reason::RxNoRoom => "RX packet needs more buffers than the device holds (not in C)",
            Reason::TxSend => "TX packet dropped by the socket (not a vq_err)",
            Reason::RxTooBig => "RX packet larger than the guest's buffers (not a vq_err)",
        }
    }
}

/// A counter with one writer at a time (see the module documentation).
#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (wrapping): a load and a store, not an atomic
    /// read-modify-write. Callers are the counter's single writer.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One virtqueue's counters (C has none). Written by the ring's single
/// writer, read racily by fdinfo (module documentation).
pub(crate) struct VqStats {
    /// Packets moved: sent (TX) or received into the guest (RX).
    pub(crate) packets: Counter,
    /// Their bytes, frame bytes without virtio-net headers (what the tap
    /// device counts).
    pub(crate) bytes: Counter,
    /// Guest notifications: signals of the call eventfd.
    pub(crate) calls: Counter,
    /// Worker rounds that ran the ring's handler.
    pub(crate) rounds: Counter,
    /// Busy polls that found work before their budget ran out.
    pub(crate) busypoll_hits: Counter,
    /// Packets dropped and ring errors, by [`Reason`].
    pub(crate) drops: [Counter; NREASONS],
    /// The last error's [`Reason`] value (0: none yet).
    last_error: AtomicU8,
    /// When it happened: nanoseconds since boot (`CLOCK_BOOTTIME`).
    last_error_ns: AtomicU64,
    /// The ring's index, for the log (kept here so that a round carries
    /// one pointer for both).
    index: u8,
}

impl Default for VqStats {
    fn default() -> Self {
        Self::new(0)
    }
}

impl VqStats {
    /// The counters of ring `index`, all 0.
    pub(crate) fn new(index: u8) -> Self {
        VqStats {
            packets: Counter::default(),
            bytes: Counter::default(),
            calls: Counter::default(),
            rounds: Counter::default(),
            busypoll_hits: Counter::default(),
            drops: core::array::from_fn(|_| Counter::default()),
            last_error: AtomicU8::new(0),
            last_error_ns: AtomicU64::new(0),
            index,
        }
    }

    /// The ring's index.
    pub(crate) fn index(&self) -> usize {
        usize::from(self.index)
    }
    /// Counts a drop or ring error for `reason`, and makes it the last
    /// error, at `now_ns` since boot.
    #[inline(never)]
    #[cold]
    pub(crate) fn error(&self, reason: Reason, now_ns: u64) {
        self.drops[reason as usize].add(1);
        self.last_error_ns.store(now_ns, Ordering::Relaxed);
        self.last_error.store(reason as u8, Ordering::Relaxed);
    }

    /// Counts a round's `pkts` packets, `bytes` bytes in all, of which
    /// `hdr` bytes each are headers the counters leave out (saturating: a
    /// TX packet shorter than its socket header is refused, and still
    /// counted by the weights). Once per round, out of line: inlined into
    /// the handlers, this changed their loops' register allocation (TX
    /// 64 B cost 9 module instructions a packet more, RX 64 B 7; out of
    /// line 2 and none, `make profile`). The header product wraps rather
    /// than saturates: the overflow branch cost the latency round trip 37
    /// instructions (`Documentation/performance/notes.inc`).
    #[inline(never)]
    pub(crate) fn count_moved(&self, pkts: usize, bytes: usize, hdr: usize) {
        self.packets.add(pkts as u64);
        // `pkts` is at most a round's weight and `hdr` a socket header's
        // length: the product cannot wrap (and a wrapped counter would
        // only be wrong, not unsafe).
        self.bytes
            .add(bytes.saturating_sub(pkts.wrapping_mul(hdr)) as u64);
    }

    /// Counts a packet dropped for `reason` without making it the last
    /// error (a drop C does not report either).
    #[inline(never)]
    #[cold]
    pub(crate) fn drop_packet(&self, reason: Reason) {
        self.drops[reason as usize].add(1);
    }

    /// A copy of the counters, each read once.
    pub(crate) fn snapshot(&self) -> VqSnapshot {
        let mut drops = [0u64; NREASONS];
        for (d, c) in drops.iter_mut().zip(self.drops.iter()) {
            *d = c.get();
        }
        let last = self.last_error.load(Ordering::Relaxed);
        VqSnapshot {
            packets: self.packets.get(),
            bytes: self.bytes.get(),
            // Counted by the kick poll; the caller fills it in.
            kicks: 0,
            calls: self.calls.get(),
            rounds: self.rounds.get(),
            busypoll_hits: self.busypoll_hits.get(),
            drops,
            last_error: match Reason::from_u8(last) {
                Some(Reason::Unspecified) | None => None,
                Some(r) => Some((r, self.last_error_ns.load(Ordering::Relaxed))),
            },
        }
    }
}

/// The counters of a ring as read once (plain values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VqSnapshot {
    /// See [`VqStats::packets`].
    pub(crate) packets: u64,
    /// See [`VqStats::bytes`].
    pub(crate) bytes: u64,
    /// Kicks: wake-ups of the ring's kick eventfd poll (counted there).
    pub(crate) kicks: u64,
    /// See [`VqStats::calls`].
    pub(crate) calls: u64,
    /// See [`VqStats::rounds`].
    pub(crate) rounds: u64,
    /// See [`VqStats::busypoll_hits`].
    pub(crate) busypoll_hits: u64,
    /// Drops by [`Reason`] value.
    pub(crate) drops: [u64; NREASONS],
    /// The last error and its time in nanoseconds since boot.
    pub(crate) last_error: Option<(Reason, u64)>,
}

/// Writes ring `index`'s line of the fdinfo:
///
/// ```text
/// vq0: packets=P bytes=B kicks=K calls=C rounds=R busypoll_hits=H drops=desc_loop:1,rx_too_big:2 last_error=desc_loop@12.345678
/// ```
///
/// `drops` lists the nonzero counts by [`Reason::name`] (`-` when none);
/// `last_error` is the reason and its time in seconds since boot, to the
/// microsecond (`-` when none).
pub(crate) fn write_vq_line<W: fmt::Write>(w: &mut W, index: usize, s: &VqSnapshot) -> fmt::Result {
    write!(
        w,
        "vq{}: packets={} bytes={} kicks={} calls={} rounds={} busypoll_hits={} drops=",
        index, s.packets, s.bytes, s.kicks, s.calls, s.rounds, s.busypoll_hits
    )?;
    let mut any = false;
    for (r, &n) in Reason::ALL.iter().zip(s.drops.iter()) {
        if n != 0 {
            if any {
                w.write_char(',')?;
            }
            write!(w, "{}:{}", r.name(), n)?;
            any = true;
        }
    }
    if !any {
        w.write_char('-')?;
    }
    match s.last_error {
        Some((r, ns)) => writeln!(
            w,
            " last_error={}@{}.{:06}",
            r.name(),
            ns / 1_000_000_000,
            (ns % 1_000_000_000) / 1000
        ),
        None => writeln!(w, " last_error=-"),
    }
}

/// Messages a [`RateLimit`] lets through per interval (the kernel's
/// `DEFAULT_RATELIMIT_BURST`).
pub(crate) const RATELIMIT_BURST: u32 = 10;
/// The interval of a [`RateLimit`], in nanoseconds (the kernel's
/// `DEFAULT_RATELIMIT_INTERVAL`, 5 s).
pub(crate) const RATELIMIT_INTERVAL_NS: u64 = 5_000_000_000;

/// A rate limit for log messages, as the kernel's `__ratelimit`: at most
/// [`RATELIMIT_BURST`] messages in an interval of
/// [`RATELIMIT_INTERVAL_NS`], the others counted as suppressed and
/// reported with the first message of a later interval. Shared by every
/// ring of every device; lock-free and approximate under contention (two
/// tasks may both open a new interval, or let one message too many
/// through), which a log limit can afford. Used on error paths only.
pub(crate) struct RateLimit {
    /// When the current interval began (0: none yet).
    begin_ns: AtomicU64,
    /// Messages let through in it.
    printed: AtomicU64,
    /// Messages suppressed since the last one let through.
    missed: AtomicU64,
}

impl RateLimit {
    /// A limit with no interval begun.
    pub(crate) const fn new() -> Self {
        RateLimit {
            begin_ns: AtomicU64::new(0),
            printed: AtomicU64::new(0),
            missed: AtomicU64::new(0),
        }
    }

    /// Whether a message may be printed at `now_ns`; if so, `Some` of the
    /// number of messages suppressed before it.
    pub(crate) fn allow(&self, now_ns: u64) -> Option<u64> {
        let now = now_ns.max(1);
        let begin = self.begin_ns.load(Ordering::Relaxed);
        if (begin == 0 || now.wrapping_sub(begin) >= RATELIMIT_INTERVAL_NS)
            && self
                .begin_ns
                .compare_exchange(begin, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.printed.store(0, Ordering::Relaxed);
        }
        if self.printed.fetch_add(1, Ordering::Relaxed) < u64::from(RATELIMIT_BURST) {
            Some(self.missed.swap(0, Ordering::Relaxed))
        } else {
            self.missed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
