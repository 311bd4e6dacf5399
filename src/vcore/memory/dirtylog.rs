// SPDX-License-Identifier: GPL-2.0

//! Dirty-page logging for live migration: which bits of the log bitmap a
//! write by the device sets.
//!
//! Userspace gives a bitmap (`VHOST_SET_LOG_BASE`) with one bit per 4 KiB
//! page of guest-physical memory; bit `p % 8` of byte `log_base + p / 8`
//! stands for page `p`. Whenever the device writes guest memory it sets the
//! bits of the pages it touched, after the data is visible, so that the
//! migration code, which clears bits and copies the pages they name, never
//! misses a page.
//!
//! C sets one bit per page with `set_bit_to_user` (an atomic `set_bit` on
//! the pinned bitmap page). Here the bits of one byte are gathered into one
//! [`LogUpdate`] so the kernel can set them with one atomic OR; the set of
//! bits that end up set is the same.
//!
//! Three sources of guest ranges exist, as in C:
//! - `log_write`: a guest-physical range, for descriptors (recorded by
//!   `get_desc_chain` as [`LogEntry`] values) and for the used ring when the
//!   memory table is in use (the used ring's guest address is `log_addr`);
//! - `log_write_hva`: a range of user (host virtual) addresses, mapped back
//!   to guest-physical addresses through the memory table; used when a device
//!   IOTLB is in use, since the descriptors then hold IOVAs rather than
//!   guest-physical addresses and C logs the user addresses the IOVAs were
//!   translated to instead;
//! - the used ring with a device IOTLB: its address is an IOVA, translated
//!   through the IOTLB and then handled like `log_write_hva` (see
//!   `ring::split::SplitRing`).
//!
//! The logging of a used chain as a whole (C's `vhost_log_write`) is
//! `ring::chain::log_write_bufs`: it needs the ring's view of memory.

use super::super::errno::Errno;
use super::super::uapi::VHOST_PAGE_SIZE;
use super::intervalmap::Entry;

/// A guest range written through a writable descriptor (C's `struct vhost_log`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// Guest address of the descriptor's buffer (as the descriptor says).
    pub(crate) addr: u64,
    /// Length of the descriptor's buffer.
    pub(crate) len: u64,
}

/// One update of the bitmap: OR `mask` into the byte at user address `uaddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LogUpdate {
    /// User address of the bitmap byte.
    pub(crate) uaddr: u64,
    /// The bits to set in that byte; never 0.
    pub(crate) mask: u8,
}

/// The dirty bitmap in the owner's memory, as the kernel provides it.
pub(crate) trait DirtyBitmap {
    /// Sets the bits of `mask` in the byte at user address `uaddr`, atomically
    /// with respect to other writers of the bitmap (C's `set_bit_to_user`).
    fn set_log_bits(&self, uaddr: u64, mask: u8) -> Result<(), Errno>;
}

/// The bitmap updates that log a write of `len` bytes at guest address
/// `addr`, in increasing page order (C's `log_write`).
///
/// # Invariants
///
/// `pages` is the number of pages still to report, starting at `page`.
#[derive(Clone, Debug)]
pub(crate) struct LogBits {
    /// User address of the bitmap.
    base: u64,
    /// Next page to report.
    page: u64,
    /// Pages left to report.
    pages: u64,
}

/// The updates for a write of `len` bytes at guest address `addr` into the
/// bitmap at `log_base`.
///
/// A `len` of 0 logs nothing. Otherwise every page from the one holding
/// `addr` to the one holding the last byte is logged. C adds the offset of
/// `addr` in its page to `len` with u64 wrap-around before counting pages,
/// and so does this, so even absurd lengths give C's answer; C likewise lets
/// `log_base + page / 8` wrap.
pub(crate) fn log_write_bits(log_base: u64, addr: u64, len: u64) -> LogBits {
    let pages = if len == 0 {
        0
    } else {
        // C loops "set bit; stop if at most one page is left; else advance",
        // which always sets at least one bit.
        let span = len.wrapping_add(addr % VHOST_PAGE_SIZE);
        span.div_ceil(VHOST_PAGE_SIZE).max(1)
    };
    LogBits {
        base: log_base,
        page: addr / VHOST_PAGE_SIZE,
        pages,
    }
}

impl Iterator for LogBits {
    type Item = LogUpdate;

    fn next(&mut self) -> Option<LogUpdate> {
        if self.pages == 0 {
            return None;
        }
        let first_bit = self.page % 8;
        let n = self.pages.min(8 - first_bit);
        // `n` is between 1 and 8 - first_bit, so the mask fits in a byte.
        let bits = ((1u16 << n) - 1) << first_bit;
        let update = LogUpdate {
            uaddr: self.base.wrapping_add(self.page / 8),
            mask: bits as u8,
        };
        self.page = self.page.wrapping_add(n);
        self.pages -= n;
        Some(update)
    }
}

/// Logs a write of `len` bytes at guest address `addr` (C's `log_write`),
/// stopping at the first bitmap byte that cannot be written.
pub(crate) fn log_write<B: DirtyBitmap + ?Sized>(
    bitmap: &B,
    log_base: u64,
    addr: u64,
    len: u64,
) -> Result<(), Errno> {
    for u in log_write_bits(log_base, addr, len) {
        bitmap.set_log_bits(u.uaddr, u.mask)?;
    }
    Ok(())
}

/// Logs a write of `len` bytes at user address `hva` by mapping it back to
/// guest-physical addresses through the memory table (C's `log_write_hva`).
///
/// `region(i)` returns the `i`-th memory-table entry (any order; C walks its
/// insertion-ordered list, and the order only matters for which bits are
/// already set when a bitmap write fails). Several guest ranges may map the
/// same user range, so every overlapping entry is logged. The range then
/// advances by the shortest overlap found. `EFAULT` when no entry overlaps
/// the first remaining byte — except that, as in C, once any entry has
/// matched the "hit" flag stays set for the rest of the call, so a later
/// hole is skipped silently rather than failing.
pub(crate) fn log_write_hva<B, R>(
    bitmap: &B,
    log_base: u64,
    region: R,
    hva: u64,
    len: u64,
) -> Result<(), Errno>
where
    B: DirtyBitmap + ?Sized,
    R: Fn(usize) -> Option<Entry>,
{
    let (mut hva, mut len) = (hva, len);
    let mut hit = false;
    while len != 0 {
        let mut min = len;
        let want_last = hva.wrapping_sub(1).wrapping_add(len);
        let mut i = 0;
        while let Some(u) = region(i) {
            i += 1;
            let u_last = u.addr.wrapping_sub(1).wrapping_add(u.size());
            if u.addr > want_last || u_last < hva {
                continue;
            }
            let start = u.addr.max(hva);
            let end = u_last.min(want_last);
            let l = end.wrapping_sub(start).wrapping_add(1);
            log_write(
                bitmap,
                log_base,
                u.start.wrapping_add(start).wrapping_sub(u.addr),
                l,
            )?;
            hit = true;
            min = min.min(l);
        }
        if !hit {
            return Err(Errno::EFAULT);
        }
        if min == 0 {
            // Only a range wrapping past the end of the address space gets
            // here; C would spin forever, this gives up instead.
            return Err(Errno::EFAULT);
        }
        len -= min;
        hva = hva.wrapping_add(min);
    }
    Ok(())
}
