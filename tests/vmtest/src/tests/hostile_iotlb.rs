//! A guest whose vIOMMU unmaps buffers while the device uses them:
//! `VHOST_IOTLB_INVALIDATE` during an RX or a TX round. Once the write of
//! the message returns, the guest may reuse the pages, so the device may
//! neither write a byte into the range nor read one from it any more: C
//! takes every ring mutex for an IOTLB message (`vhost_process_iotlb_msg`,
//! `vhost_dev_lock_vqs`), which waits for the round in progress.

use super::ioctl_util::{msg_v2, Dev};
use crate::driver::{frame, Buf, Cfg, Net, Used, GPA_BASE, UNICAST};
use crate::harness::{debug_kernel, Ctx, Kind, Obs, Test};
use crate::sys::{fmt_res, sleep_ms, Fd, Res};
use crate::uapi;
use std::collections::VecDeque;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 120,
        f,
    };
    vec![
        t("hostile_iotlb_invalidate_during_rx", invalidate_during_rx),
        t("hostile_iotlb_invalidate_during_tx", invalidate_during_tx),
        t("iotlb_used_ring_write_only", used_ring_write_only),
        t("iotlb_indirect_descriptors", indirect_descriptors),
        t(
            "iotlb_ring_field_across_two_mappings",
            field_across_mappings,
        ),
        t(
            "iotlb_failed_attach_forgets_signalled",
            failed_attach_forgets_signalled,
        ),
        t("iotlb_dirty_log", dirty_log),
    ]
}

/// A device with ACCESS_PLATFORM and no backend yet (`Net::new`), and
/// its fd as the ioctl tests' wrapper, non-blocking (not closed twice).
fn ap_net(obs: &mut Obs, prefix: &str, event_idx: bool) -> Option<(Net, ManuallyDrop<Dev>)> {
    let cfg = Cfg {
        access_platform: true,
        event_idx,
        ..Cfg::default()
    };
    let n = Net::new(obs, prefix, cfg)?;
    let d = ManuallyDrop::new(Dev(Fd(n.dev.raw())));
    d.set_nonblock(true);
    Some((n, d))
}

/// `VHOST_IOTLB_UPDATE` of guest-physical `[from, to)` as IOVAs equal to
/// the addresses, with `perm`; `base` is the user address of `GPA_BASE`
/// (one memory region: contiguous in user space).
pub(super) fn map_iova(d: &Dev, base: u64, from: u64, to: u64, perm: u8) -> Res {
    let m = msg_v2(
        0,
        uapi::VHOST_IOTLB_UPDATE,
        from,
        to - from,
        base + (from - GPA_BASE),
        perm,
    );
    d.write(&m)
}

/// Records the RX used entries' lengths and whether the first holds
/// frame `g` after the virtio-net header.
fn rx_used_frame(obs: &mut Obs, p: &str, n: &Net, used: &[Used], g: &[u8]) {
    let lens: Vec<String> = used.iter().map(|u| u.len.to_string()).collect();
    obs.val(format!("{p}rx used"), lens.join(","));
    if let Some(u) = used.first() {
        let bytes = crate::driver::Vq::used_bytes(&n.mem, u);
        obs.val(
            format!("{p}rx frame intact"),
            bytes.get(n.hdr_len..) == Some(g),
        );
    }
}

/// A non-blocking eventfd (an error eventfd whose count the test reads).
fn nb_eventfd() -> Fd {
    // SAFETY: plain syscall with integer arguments; checked below.
    let e = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) });
    assert!(e.raw() >= 0, "eventfd");
    e
}

/// An attach that fails after writing `used->flags` (the used index has
/// no translation) still forgets the last signalled used index: C's
/// `vhost_vq_init_access` clears `signalled_used_valid` right after the
/// flags write, before the index read that fails, and the old backend
/// goes back with it cleared. So the next used entry is signalled even
/// where the guest's `used_event` says not to (`vhost_notify`). The
/// module once cleared it only when the attach succeeded.
fn failed_attach_forgets_signalled(obs: &mut Obs, _: &Ctx) {
    let Some((mut n, d)) = ap_net(obs, "", true) else {
        return;
    };
    n.mem.align(PAGE as u64);
    let tx_buf = n.mem.alloc(PAGE);
    let end = n.mem.alloc(PAGE);
    let base = n.mem.uaddr(GPA_BASE);
    let update = |from: u64, to: u64| map_iova(&d, base, from, to, 3);
    let invalidate = |from: u64, to: u64| {
        d.write(&msg_v2(
            0,
            uapi::VHOST_IOTLB_INVALIDATE,
            from,
            to - from,
            0,
            0,
        ))
    };
    let used = n.tx.used;
    let usz = 4 + 8 * u64::from(n.cfg.num) + 2;
    // Three mappings, so that the used ring's can go alone.
    obs.ret("UPDATE below the used ring", update(GPA_BASE, used));
    obs.ret("UPDATE used ring", update(used, used + usz));
    obs.ret("UPDATE above the used ring", update(used + usz, end));
    obs.ret("SET_BACKEND 1 tap", d.backend(1, n.tap.fd.raw()));
    let err = nb_eventfd();
    obs.ret_ok(
        "SET_VRING_ERR 1",
        d.file(uapi::VHOST_SET_VRING_ERR, 1, err.raw()),
    );
    let used_event = n.tx.avail + 4 + 2 * u64::from(n.cfg.num);
    // Sends one frame; returns whether the call eventfd was signalled
    // once the used entry is there.
    let mut seed = 0u32;
    let mut send = |n: &mut Net, key: &str, obs: &mut Obs| {
        seed += 1;
        let f = frame(100, UNICAST, 0x4c, seed, None);
        let mut all = n.zero_hdr();
        all.extend(&f);
        n.mem.write(tx_buf, &all);
        let before = n.tx.used_idx(&n.mem);
        n.tx.add(
            &mut n.mem,
            &[Buf {
                gpa: tx_buf,
                len: all.len() as u32,
            }],
            false,
            false,
        );
        n.tx.notify(&n.mem);
        let t0 = Instant::now();
        while n.tx.used_idx(&n.mem) == before && t0.elapsed() < Duration::from_secs(3) {
            sleep_ms(2);
        }
        sleep_ms(50);
        obs.val(
            format!("{key}: used idx moved by"),
            n.tx.used_idx(&n.mem).wrapping_sub(before),
        );
        obs.val(
            format!("{key}: frame"),
            n.tap.capture(1000).as_deref() == Some(&f[..]),
        );
        obs.val(
            format!("{key}: signalled"),
            crate::driver::eventfd_take(&n.tx.call) > 0,
        );
        // Take the entry without moving used_event (take_used would).
        let ev = n.mem.r16(used_event);
        let _ = n.tx.take_used(&n.mem);
        n.mem.w16(used_event, ev);
    };
    send(&mut n, "first frame", obs);
    // used_event far ahead: no interrupt wanted for the next entries.
    n.mem
        .w16(used_event, n.tx.used_idx(&n.mem).wrapping_add(100));
    crate::driver::eventfd_take(&n.tx.call);
    send(&mut n, "used_event ahead", obs);
    // The used ring's flags mapped, its index not: the attach of another
    // socket writes the flags, fails on the index, and gives the ring
    // its tap back.
    obs.ret("INVALIDATE used ring", invalidate(used, used + usz));
    obs.ret("UPDATE used flags only", update(used, used + 2));
    let sock = super::ioctl_util::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
    obs.ret("SET_BACKEND 1 packet (fails)", d.backend(1, sock.raw()));
    obs.val("errors", crate::driver::eventfd_take(&err));
    obs.ret("INVALIDATE used flags", invalidate(used, used + 2));
    obs.ret("UPDATE used ring again", update(used, used + usz));
    // Misses of the attach, and of rounds the tap's wake-ups ran while
    // the ring was unmapped (timing): not compared.
    while let (Ok(_), b) = d.read(72) {
        obs.note(format!("miss: {}", super::ioctl_util::msg_str(&b)));
    }
    crate::driver::eventfd_take(&n.tx.call);
    send(&mut n, "after the failed attach", obs);
    send(&mut n, "and then", obs);
}

/// A 2-byte ring field whose bytes lie in two IOTLB mappings (a process
/// can map at any byte; a vIOMMU maps pages): C reads and writes ring
/// fields with one `get_user`/`put_user` of one translated address, so
/// such a field is "Non atomic userspace memory access", reported by
/// `__vhost_get_user_slow` and again by the caller (two errors), and the
/// access fails. First `avail->idx` of the TX ring (nothing is sent), then
/// `used->idx` (the frame is sent, its used entry written, the index not).
/// The module once read and wrote such fields a byte at a time.
fn field_across_mappings(obs: &mut Obs, _: &Ctx) {
    let Some((mut n, d)) = ap_net(obs, "", true) else {
        return;
    };
    let end = GPA_BASE + crate::driver::MEM_SIZE as u64;
    let base = n.mem.uaddr(GPA_BASE);
    let map = |from: u64, to: u64| map_iova(&d, base, from, to, 3);
    let unmap_all = || d.write(&msg_v2(0, uapi::VHOST_IOTLB_INVALIDATE, 0, u64::MAX, 0, 0));
    obs.ret("UPDATE all", map(GPA_BASE, end));
    let err = nb_eventfd();
    obs.ret_ok(
        "SET_VRING_ERR 1",
        d.file(uapi::VHOST_SET_VRING_ERR, 1, err.raw()),
    );
    obs.ret("SET_BACKEND 1", d.backend(1, n.tap.fd.raw()));
    let mut seed = 0u32;
    let mut send = |n: &mut Net, obs: &mut Obs, key: &str| {
        seed += 1;
        let f = frame(100, UNICAST, 0x4e, seed, None);
        let mut all = n.zero_hdr();
        all.extend(&f);
        let bufs = n.place(&all, 0);
        n.tx.add(&mut n.mem, &bufs, false, false);
        n.tx.publish(&n.mem);
        n.tx.kick_now();
        let got = n.tap.capture(1000);
        sleep_ms(50);
        obs.val(format!("{key}: frame sent"), got.as_deref() == Some(&f[..]));
        obs.val(format!("{key}: used idx"), n.tx.used_idx(&n.mem));
        obs.val(format!("{key}: errors"), crate::driver::eventfd_take(&err));
    };
    // After a change of the mappings: rounds that ran meanwhile (the
    // attach's, socket wake-ups: timing) may have missed or failed; the
    // same-socket SET_BACKEND flushes the worker (both modules), and what
    // they left is noted, not compared.
    let tap = n.tap.fd.raw();
    let drain = |obs: &mut Obs, key: &str| {
        obs.ret(
            format!("{key}: SET_BACKEND 1 again (flush)"),
            d.backend(1, tap),
        );
        while let (Ok(_), b) = d.read(72) {
            obs.note(format!("{key}: miss {}", super::ioctl_util::msg_str(&b)));
        }
        obs.note(format!(
            "{key}: errors before {}",
            crate::driver::eventfd_take(&err)
        ));
    };
    // avail->idx across two mappings.
    let split = n.tx.avail + 3;
    obs.ret("INVALIDATE all (avail)", unmap_all());
    obs.ret("UPDATE up to avail+3", map(GPA_BASE, split));
    obs.ret("UPDATE from avail+3", map(split, end));
    drain(obs, "avail");
    send(&mut n, obs, "avail idx split");
    // One mapping again: the frame goes.
    obs.ret("INVALIDATE all (one)", unmap_all());
    obs.ret("UPDATE all again", map(GPA_BASE, end));
    drain(obs, "one");
    n.tx.kick_now();
    // The frame first, then a flush (same socket), then what the round
    // left: a fixed sleep could read the used index before the round.
    obs.val("one mapping: frame sent", n.tap.capture(1000).is_some());
    obs.ret(
        "one mapping: SET_BACKEND 1 again (flush)",
        d.backend(1, tap),
    );
    obs.val("one mapping: used idx", n.tx.used_idx(&n.mem));
    obs.val("one mapping: errors", crate::driver::eventfd_take(&err));
    let _ = n.tx.take_used(&n.mem);
    // used->idx across two mappings.
    let split = n.tx.used + 3;
    obs.ret("INVALIDATE all (used)", unmap_all());
    obs.ret("UPDATE up to used+3", map(GPA_BASE, split));
    obs.ret("UPDATE from used+3", map(split, end));
    drain(obs, "used");
    send(&mut n, obs, "used idx split");
}

/// Indirect descriptors behind a device IOTLB (a Linux guest behind a
/// vIOMMU uses them for multi-fragment TX and big RX buffers): the table's
/// IOVA is translated once, and its entries are read from the user
/// addresses it maps to (C's `get_indirect`: `translate_desc`, then
/// `copy_from_iter_full` of those addresses). The module once translated
/// those user addresses through the IOTLB a second time, missed, and
/// stopped the ring with an error on every kick.
fn indirect_descriptors(obs: &mut Obs, _: &Ctx) {
    let Some((mut n, d)) = ap_net(obs, "", true) else {
        return;
    };
    // All of guest memory, read-write.
    let end = GPA_BASE + crate::driver::MEM_SIZE as u64;
    let base = n.mem.uaddr(GPA_BASE);
    let m = msg_v2(
        0,
        uapi::VHOST_IOTLB_UPDATE,
        GPA_BASE,
        end - GPA_BASE,
        base,
        3,
    );
    obs.ret("UPDATE all", d.write(&m));
    let err = nb_eventfd();
    for i in 0..2 {
        obs.ret_ok(
            format!("SET_VRING_ERR {i}"),
            d.file(uapi::VHOST_SET_VRING_ERR, i, err.raw()),
        );
        obs.ret(format!("SET_BACKEND {i}"), d.backend(i, n.tap.fd.raw()));
    }
    // TX: the header and the frame in two pieces of one indirect table.
    let f = frame(600, UNICAST, 0x4d, 1, None);
    let mut all = n.zero_hdr();
    all.extend(&f);
    let bufs = n.place(&all, 200);
    n.tx.add(&mut n.mem, &bufs, false, true);
    n.tx.notify(&n.mem);
    let used = n.tx.wait_used(&n.mem, 1, 3000);
    obs.val("tx used", used.len());
    obs.val(
        "tx frame intact",
        n.tap.capture(2000).as_deref() == Some(&f[..]),
    );
    // RX: two 1 KiB pieces of one indirect table, a 1500-byte frame.
    let rx: Vec<Buf> = (0..2).map(|_| n.rx_buf(1024)).collect();
    n.rx.add(&mut n.mem, &rx, true, true);
    n.rx.notify(&n.mem);
    let g = frame(1500, UNICAST, 0x4d, 2, None);
    obs.ret("inject", n.tap.inject(&g));
    let used = n.rx.wait_used(&n.mem, 1, 3000);
    rx_used_frame(obs, "", &n, &used, &g);
    sleep_ms(20);
    obs.val("errors", crate::driver::eventfd_take(&err));
    let (r, b) = d.read(72);
    obs.ret("read (no miss)", r);
    if r.is_ok() {
        obs.val("miss", super::ioctl_util::msg_str(&b));
    }
}

/// Dirty logging behind a device IOTLB (QEMU migrating a guest that has a
/// vIOMMU): the device knows IOVAs and owner's addresses only, and C's
/// `log_write_hva` finds the guest pages back through the memory table.
/// Two memory regions whose owner's addresses are in the other order than
/// their guest addresses, each mapped by its own IOTLB entry (IOVA = GPA):
/// TX logs the used ring, RX the used ring and the buffers, among them
/// one that crosses from one region to the other (two pieces, two
/// regions). The RX buffers are exactly header plus frame, where C's
/// whole-buffer logging and ours' written bytes coincide (differences.rst).
/// The log eventfd's count is compared exactly for TX (every frame posted
/// before one kick: one round); for RX, where the frames' arrival splits
/// rounds, whether it fired.
fn dirty_log(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        access_platform: true,
        log_all: true,
        two_regions: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let d = ManuallyDrop::new(Dev(Fd(n.dev.raw())));
    d.set_nonblock(true);
    for (i, r) in n.mem.regions().iter().enumerate() {
        let m = msg_v2(
            0,
            uapi::VHOST_IOTLB_UPDATE,
            r.guest_phys_addr,
            r.memory_size,
            r.userspace_addr,
            3,
        );
        obs.ret(format!("UPDATE region {i}"), d.write(&m));
    }
    let signals = |n: &Net| crate::driver::eventfd_settle(&log_of(n).fd);
    let pages = |n: &Net| log_of(n).pages().join(" ");
    for i in 0..2 {
        obs.ret(format!("SET_BACKEND {i}"), d.backend(i, n.tap.fd.raw()));
    }
    // The attach's first rounds (each ring's poll) log and signal too:
    // the same socket again waits for them (a flush, in C and ours).
    obs.ret("SET_BACKEND 1 again (flush)", d.backend(1, n.tap.fd.raw()));
    let attach_signals = signals(&n);
    obs.val("after attach: pages", pages(&n));
    obs.val("after attach: log signals", attach_signals);
    log_of(&n).clear();
    // TX: two frames, one kick.
    for k in 0..2u32 {
        let f = frame(200 + 700 * k as usize, UNICAST, 0x4e, k, None);
        let mut all = n.zero_hdr();
        all.extend(&f);
        let bufs = n.place(&all, 0);
        n.tx.add(&mut n.mem, &bufs, false, false);
    }
    let before = n.tx.used_idx(&n.mem);
    n.tx.notify(&n.mem);
    // The round's log is written before its used index: wait for that.
    let deadline = Instant::now() + Duration::from_millis(3000);
    while n.tx.used_idx(&n.mem).wrapping_sub(before) < 2 && Instant::now() < deadline {
        sleep_ms(10);
    }
    let tx_signals = signals(&n);
    obs.val("tx used", n.tx.take_used(&n.mem).len());
    obs.val("after tx: pages", pages(&n));
    obs.val("after tx: log signals", tx_signals);
    log_of(&n).clear();
    // RX: a buffer in the lower region, one that crosses into the upper
    // one, and one in the upper region; each exactly header plus frame.
    let half = GPA_BASE + crate::driver::MEM_SIZE as u64 / 2;
    let sizes = [300usize, 400, 500];
    let at = [half - 0x3000 + 0x80, half - 0x100, half + 0x2000 + 0x40];
    for (gpa, sz) in at.iter().zip(sizes) {
        let b = Buf {
            gpa: *gpa,
            len: (n.hdr_len + sz) as u32,
        };
        n.rx.add(&mut n.mem, &[b], true, false);
    }
    n.rx.notify(&n.mem);
    for (k, sz) in sizes.iter().enumerate() {
        obs.ret(
            format!("inject {sz}"),
            n.tap
                .inject(&frame(*sz, UNICAST, 0x4e, 10 + k as u32, None)),
        );
    }
    let mut used = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_millis(3000);
    while used.len() < 3 && std::time::Instant::now() < deadline {
        sleep_ms(20);
        used.extend(n.rx.take_used(&n.mem));
    }
    let lens: Vec<String> = used.iter().map(|u| u.len.to_string()).collect();
    obs.val("rx used", lens.join(","));
    sleep_ms(50);
    obs.val("after rx: pages", pages(&n));
    obs.val("after rx: log fired", signals(&n) > 0);
}

/// The dirty log of a device made with `log_all`.
fn log_of(n: &Net) -> &crate::driver::Log {
    n.log.as_ref().expect("log_all")
}

/// Used rings that the guest's IOMMU maps write-only (an IOMMU maps a
/// `DMA_FROM_DEVICE` buffer so): C checks write permission for the used
/// ring once a round (`vq_meta_prefetch`) and then writes its 2-byte
/// fields (`used->idx`, `used->flags`, `avail_event`) through the ring's
/// metadata cache, so TX and RX work. Its uncached path asks for read
/// permission, which is why the attach runs with the rings read-write.
/// The module once translated those fields with read permission in a
/// round too: the ring stopped with an error on the first used index.
fn used_ring_write_only(obs: &mut Obs, _: &Ctx) {
    for event_idx in [true, false] {
        let p = if event_idx {
            "event_idx "
        } else {
            "no event_idx "
        };
        let Some((mut n, d)) = ap_net(obs, p, event_idx) else {
            return;
        };
        n.mem.align(PAGE as u64);
        let tx_buf = n.mem.alloc(PAGE);
        let rx_buf = n.mem.alloc(PAGE);
        let end = n.mem.alloc(PAGE);
        let base = n.mem.uaddr(GPA_BASE);
        let map = |from: u64, to: u64, perm: u8| map_iova(&d, base, from, to, perm);
        let errs: Vec<Fd> = (0..2).map(|_| nb_eventfd()).collect();
        for (i, e) in errs.iter().enumerate() {
            obs.ret_ok(
                format!("{p}SET_VRING_ERR {i}"),
                d.file(uapi::VHOST_SET_VRING_ERR, i as u32, e.raw()),
            );
        }
        // Attach with everything read-write.
        obs.ret(format!("{p}UPDATE all rw"), map(GPA_BASE, end, 3));
        for i in 0..2 {
            obs.ret(format!("{p}SET_BACKEND {i}"), d.backend(i, n.tap.fd.raw()));
        }
        // Then the used rings write-only, the rest read-write.
        obs.ret(
            format!("{p}INVALIDATE all"),
            d.write(&msg_v2(0, uapi::VHOST_IOTLB_INVALIDATE, 0, u64::MAX, 0, 0)),
        );
        let usz = 4 + 8 * u64::from(n.cfg.num) + if event_idx { 2 } else { 0 };
        let mut at = GPA_BASE;
        for used in [n.rx.used, n.tx.used] {
            obs.ret(format!("{p}UPDATE rw below {used:#x}"), map(at, used, 3));
            obs.ret(
                format!("{p}UPDATE used {used:#x} wo"),
                map(used, used + usz, 2),
            );
            at = used + usz;
        }
        obs.ret(format!("{p}UPDATE rw to the end"), map(at, end, 3));
        // The round the attach queued may run between the INVALIDATE and
        // the UPDATEs and miss (timing, for both modules): not compared.
        sleep_ms(50);
        while let (Ok(_), b) = d.read(72) {
            obs.note(format!(
                "{p}miss after updates: {}",
                super::ioctl_util::msg_str(&b)
            ));
        }
        // TX: one frame.
        let f = frame(200, UNICAST, 0x4b, 1, None);
        let mut all = n.zero_hdr();
        all.extend(&f);
        n.mem.write(tx_buf, &all);
        let b = Buf {
            gpa: tx_buf,
            len: all.len() as u32,
        };
        n.tx.add(&mut n.mem, &[b], false, false);
        n.tx.notify(&n.mem);
        let used = n.tx.wait_used(&n.mem, 1, 2000);
        obs.val(format!("{p}tx used"), used.len());
        let got = n.tap.capture(2000);
        obs.val(
            format!("{p}tx frame intact"),
            got.as_deref() == Some(&f[..]),
        );
        // RX: one frame into one buffer.
        n.rx.add(
            &mut n.mem,
            &[Buf {
                gpa: rx_buf,
                len: PAGE as u32,
            }],
            true,
            false,
        );
        n.rx.notify(&n.mem);
        let g = frame(300, UNICAST, 0x4b, 2, None);
        obs.ret(format!("{p}inject"), n.tap.inject(&g));
        let used = n.rx.wait_used(&n.mem, 1, 2000);
        rx_used_frame(obs, p, &n, &used, &g);
        sleep_ms(50);
        for i in [0u32, 1] {
            let vq = if i == 0 { &n.rx } else { &n.tx };
            obs.val(format!("{p}used idx {i}"), vq.used_idx(&n.mem));
            obs.val(
                format!("{p}used flags {i}"),
                format!("{:#x}", vq.used_flags(&n.mem)),
            );
            if event_idx {
                obs.val(format!("{p}avail_event {i}"), vq.avail_event(&n.mem));
            }
            obs.val(
                format!("{p}errors {i}"),
                crate::driver::eventfd_take(&errs[i as usize]),
            );
        }
        let (r, b) = d.read(72);
        obs.ret(format!("{p}read (no miss)"), r);
        if r.is_ok() {
            obs.val(format!("{p}miss"), super::ioctl_util::msg_str(&b));
        }
    }
}

/// A page: the unit of the canary.
const PAGE: usize = 4096;
/// Pages of one frame with its 12-byte vnet header (mergeable RX, and the
/// tap's header on TX): a 64 KiB frame.
const PER_FRAME: usize = 16;
const FRAME_LEN: usize = PER_FRAME * PAGE - 12;
/// What a posted RX buffer holds until the device writes it.
const FREE: u8 = 0xa5;
/// What the test writes, right after the INVALIDATE returned, into every
/// buffer the device has not returned.
const CANARY: u8 = 0x5a;
/// Rounds per run at most (a run also ends after `Rig::budget`).
const MAX_ITERS: u64 = 400;

/// A device with ACCESS_PLATFORM whose rings are mapped through the IOTLB
/// for good, and a pool of buffers that each round maps and invalidates.
struct Rig {
    n: Net,
    /// The device fd as the ioctl tests' wrapper, not closed twice.
    d: ManuallyDrop<Dev>,
    /// The pool: `[lo, hi)`, IOVA = guest-physical address.
    lo: u64,
    hi: u64,
    invalidate: [u8; 72],
    /// How long a round waits for stragglers before it checks.
    settle: u64,
    budget: Duration,
}

impl Rig {
    /// Sets the device up with `pages` pages of pool and the backend on
    /// ring `index` only.
    fn new(obs: &mut Obs, index: u32, pages: usize) -> Option<Rig> {
        let (mut n, d) = ap_net(obs, "", true)?;
        n.mem.align(PAGE as u64);
        let lo = n.mem.alloc(pages * PAGE);
        let hi = lo + (pages * PAGE) as u64;
        let debug = debug_kernel();
        let r = Rig {
            n,
            d,
            lo,
            hi,
            invalidate: msg_v2(0, uapi::VHOST_IOTLB_INVALIDATE, lo, hi - lo, 0, 0),
            settle: if debug { 40 } else { 20 },
            budget: Duration::from_secs(if debug { 15 } else { 10 }),
        };
        // The rings (and everything below the pool) stay mapped.
        obs.ret_ok("UPDATE rings", r.map(GPA_BASE, lo));
        obs.ret_ok(
            format!("SET_BACKEND {index}"),
            r.d.backend(index, r.n.tap.fd.raw()),
        );
        Some(r)
    }

    /// `VHOST_IOTLB_UPDATE` of `[iova, end)`, read and write (one memory
    /// region: contiguous in user space).
    fn map(&self, iova: u64, end: u64) -> Res {
        map_iova(&self.d, self.n.mem.uaddr(GPA_BASE), iova, end, 3)
    }

    /// Reads the misses the device queued, so that the next update
    /// resolves them (they would pile up otherwise).
    fn drain_misses(&self) -> u64 {
        let mut n = 0;
        while self.d.read(72).0.is_ok() {
            n += 1;
        }
        n
    }

    /// Fills `pages` (guest-physical addresses of pages) with the canary
    /// in the order given.
    fn canary(&self, pages: impl Iterator<Item = u64>) {
        for g in pages {
            self.n.mem.fill(g, PAGE, CANARY);
        }
    }
}

/// What the rounds saw.
#[derive(Default)]
struct Tally {
    rounds: u64,
    /// Rounds whose INVALIDATE met the ring at work.
    hot: u64,
    /// Rounds in which the device touched the range after the write
    /// returned, and how many bytes (RX) or frames (TX) it did.
    late: u64,
    late_units: u64,
    /// Rounds that published used entries after the write returned, and
    /// how many.
    late_used_rounds: u64,
    late_used: u64,
    misses: u64,
    slowest: Duration,
    surprises: Vec<String>,
}

impl Tally {
    /// One round: `seen` whether it met the ring at work, `took` how long
    /// the INVALIDATE took, `late` what the device did after it returned,
    /// `used` how many used entries it published after it returned.
    fn round(&mut self, seen: bool, took: Duration, late: u64, used: u16) {
        if seen {
            self.hot += 1;
            self.slowest = self.slowest.max(took);
        }
        if late > 0 {
            self.late += 1;
            self.late_units += late;
        }
        if used > 0 {
            self.late_used_rounds += 1;
            self.late_used += u64::from(used);
        }
    }

    fn report(&self, obs: &mut Obs, what: &str, units: &str, elapsed: Duration) {
        let (hot, late, late_used) = (self.hot, self.late, self.late_used_rounds);
        obs.note(format!(
            "{} rounds in {elapsed:?}: {hot} with {what} in progress, {late} with {units} \
             after INVALIDATE returned ({} {units}), {late_used} with used entries \
             published after it ({}); {} misses read; slowest INVALIDATE {:?}",
            self.rounds, self.late_units, self.late_used, self.misses, self.slowest
        ));
        obs.val("surprises", self.surprises.len());
        obs.check(
            self.surprises.is_empty(),
            format!(
                "unexpected: {:?}",
                &self.surprises[..self.surprises.len().min(5)]
            ),
        );
        obs.val(format!("INVALIDATE met {what} in progress"), hot > 0);
        obs.check(
            hot > 0,
            format!("{what} was never in progress when INVALIDATE came"),
        );
        obs.val(format!("{units} after INVALIDATE returned"), late > 0);
        obs.check(
            late == 0,
            format!(
                "{late} of {hot} INVALIDATEs returned while {what} still used the range \
                 ({} {units} after the write returned)",
                self.late_units
            ),
        );
        obs.val(
            "used entries published after INVALIDATE returned",
            late_used > 0,
        );
        obs.check(
            late_used == 0,
            format!(
                "{late_used} of {hot} INVALIDATEs returned with the {what} round still \
                 running ({} used entries published after the write returned)",
                self.late_used
            ),
        );
    }
}

/// A tiny deterministic generator.
fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A message whose copy by the device faults on every byte: written with
/// one iovec per byte, each byte alone in its 64 KiB (fault-around) window
/// of a shared memfd mapping whose page-table entries are dropped before
/// each write. The device copies a message before it takes any lock (C
/// and ours alike), so this only stretches the time between the write's
/// start and the IOTLB change.
struct SlowMsg {
    base: *mut u8,
    _fd: Fd,
}

const STRIDE: usize = 64 << 10;

impl SlowMsg {
    fn new() -> SlowMsg {
        // SAFETY: a NUL-terminated name and integer flags; the result is checked below.
        let fd = unsafe { libc::memfd_create(c"vmtest-slow-msg".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", crate::sys::Errno::last());
        let fd = Fd(fd);
        // SAFETY: integer arguments on the memfd just created.
        let r = unsafe { libc::ftruncate(fd.raw(), (72 * STRIDE) as i64) };
        assert!(r == 0, "ftruncate: {}", crate::sys::Errno::last());
        // SAFETY: a fresh shared mapping of the whole memfd at an address the kernel picks (no
        // MAP_FIXED): no existing memory is touched; MAP_FAILED is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                72 * STRIDE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.raw(),
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap: {}", crate::sys::Errno::last());
        SlowMsg {
            base: p.cast(),
            _fd: fd,
        }
    }

    /// `writev(dev, msg)`, one byte per iovec, each faulting.
    fn write(&self, dev: i32, msg: &[u8; 72]) -> Res {
        let mut iov = Vec::with_capacity(72);
        for (i, &b) in msg.iter().enumerate() {
            // SAFETY: `i * STRIDE` is inside the 72 * STRIDE bytes mapped in `new`, which live
            // until Drop.
            let p = unsafe { self.base.add(i * STRIDE) };
            // SAFETY: `p` is a writable byte of the live mapping, touched by no one else.
            unsafe { p.write_volatile(b) };
            iov.push(libc::iovec {
                iov_base: p.cast(),
                iov_len: 1,
            });
        }
        // SAFETY: drops the page-table entries of the mapping made in `new` (exactly its range);
        // the bytes stay in the memfd (a shared mapping) and fault back in on access.
        unsafe { libc::madvise(self.base.cast(), 72 * STRIDE, libc::MADV_DONTNEED) };
        // SAFETY: `iov` holds 72 iovecs of one readable byte each in the live mapping; `dev` is
        // an open fd borrowed for the call.
        let r = unsafe { libc::writev(dev, iov.as_ptr(), iov.len() as i32) };
        if r < 0 {
            Err(crate::sys::Errno::last())
        } else {
            Ok(r as i64)
        }
    }
}

impl Drop for SlowMsg {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference into it outlives `self`.
        unsafe { libc::munmap(self.base.cast(), 72 * STRIDE) };
    }
}

/// RX: a pool of one-page buffers (the whole ring, posted), mapped by an
/// IOTLB update; 64 KiB frames flow, twelve kept queued in the tap, more
/// than one round takes (the byte weight is eight), so that the worker
/// starts a new round at once when one ends. Once the device is seen
/// writing the first frame (the test spins on one of its pages), the pool
/// is invalidated with a message that faults on every byte (`SlowMsg`).
/// Right after `write()` returns, every buffer the device has not returned
/// gets a canary, the last page of every frame first, then the page
/// before, and so on (the device writes a frame front to back, and which
/// frame is in flight is not known); 20 ms later the canary must be intact
/// and no more used entries published. The next round maps the pool again
/// (resolving the misses the device queued) and kicks.
///
/// Before the fix, `write_msg` took the RX mutex only to read the backend
/// features before it copied the message, so it waited for the round in
/// progress but not for the next one, which the slow copy lets start.
fn invalidate_during_rx(obs: &mut Obs, _: &Ctx) {
    const POOL: usize = 256;
    const BACKLOG: u64 = 12;
    let per_frame = PER_FRAME as u64;
    let Some(mut rig) = Rig::new(obs, 0, POOL) else {
        return;
    };
    let slow = SlowMsg::new();
    let pool: Vec<Buf> = (0..POOL)
        .map(|i| Buf {
            gpa: rig.lo + (i * PAGE) as u64,
            len: PAGE as u32,
        })
        .collect();
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|s| frame(FRAME_LEN, UNICAST, 0x49, s, None))
        .collect();
    let start = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut free: Vec<Buf> = pool.iter().rev().copied().collect();
    // Posted buffers in posting order, with their sequence numbers.
    let mut out: VecDeque<(u64, Buf)> = VecDeque::new();
    let mut seq = 0u64;
    // Used entries taken so far (the ring's used index as we last saw it).
    let mut taken = 0u16;
    let (mut injected, mut received) = (0u64, 0u64);
    let mut resync = false;
    let mut inject_errs = Vec::new();
    let mut t = Tally::default();
    while t.rounds < MAX_ITERS && start.elapsed() < rig.budget {
        t.rounds += 1;
        t.misses += rig.drain_misses();
        let n = &mut rig.n;
        for u in n.rx.take_used(&n.mem) {
            // Used in posting order: the oldest posted buffer.
            let b = u.chain.bufs[0];
            match out.iter().position(|(_, o)| o.gpa == b.gpa) {
                Some(0) => {}
                p => t
                    .surprises
                    .push(format!("buffer {:#x} used at {p:?}", b.gpa)),
            }
            out.retain(|(_, o)| o.gpa != b.gpa);
            free.push(b);
            taken = taken.wrapping_add(1);
            received += 1;
        }
        if resync {
            // Nothing flowed for 2 s: the tap's queue is empty.
            injected = received / per_frame;
            resync = false;
        }
        // Arm every posted buffer again, post the free ones.
        for (_, b) in &out {
            n.mem.fill(b.gpa, PAGE, FREE);
        }
        while n.rx.free_descs() > 0 {
            let Some(b) = free.pop() else { break };
            n.mem.fill(b.gpa, PAGE, FREE);
            n.rx.add(&mut n.mem, &[b], true, false);
            out.push_back((seq, b));
            seq += 1;
        }
        n.rx.publish(&n.mem);
        let queued = injected.saturating_sub(received / per_frame);
        for _ in queued..BACKLOG {
            let f = &frames[(injected % 4) as usize];
            let r = n.tap.inject(f);
            if r != Ok(f.len() as i64) && inject_errs.len() < 3 {
                inject_errs.push(fmt_res(&r));
            }
            injected += 1;
        }
        // Frames start every 16 buffers in posting order. The page to
        // watch: the second to ninth of the first frame.
        let s0 = out.front().map_or(0, |(s, _)| *s);
        let target = s0 + 1 + xorshift(&mut rng) % 8;
        let watched = out.iter().find(|(s, _)| *s == target).map(|(_, b)| b.gpa);
        // The canary's order, decided beforehand so that it starts at once.
        // By index in `out`: those the device returned before the write
        // did are skipped.
        let mut order: Vec<(usize, u64)> = out
            .iter()
            .enumerate()
            .map(|(i, (_, b))| (i, b.gpa))
            .collect();
        order.sort_by_key(|&(i, _)| {
            let s = out[i].0 - s0;
            (per_frame - 1 - s % per_frame, s)
        });
        let r = rig.map(rig.lo, rig.hi);
        if r != Ok(72) {
            t.surprises.push(format!("UPDATE pool: {}", fmt_res(&r)));
        }
        let n = &mut rig.n;
        n.rx.kick_now();
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = false;
        if let Some(g) = watched {
            let armed = u32::from_ne_bytes([FREE; 4]);
            while Instant::now() < deadline {
                if n.mem.r32(g) != armed {
                    seen = true;
                    break;
                }
                std::hint::spin_loop();
            }
        }
        let t0 = Instant::now();
        let r = slow.write(rig.d.raw(), &rig.invalidate);
        let took = t0.elapsed();
        // Everything the device had not returned when the write returned.
        let skip = rig.n.rx.used_idx(&rig.n.mem).wrapping_sub(taken) as usize;
        rig.canary(order.iter().filter(|&&(i, _)| i >= skip).map(|&(_, g)| g));
        if r != Ok(72) {
            t.surprises.push(format!("INVALIDATE: {}", fmt_res(&r)));
        }
        resync |= !seen;
        sleep_ms(rig.settle);
        let n = &rig.n;
        let used =
            n.rx.used_idx(&n.mem)
                .wrapping_sub(taken.wrapping_add(skip as u16));
        let mut changed = 0u64;
        for &(_, g) in order.iter().filter(|&&(i, _)| i >= skip) {
            changed += n.mem.read(g, PAGE).iter().filter(|&&x| x != CANARY).count() as u64;
        }
        t.round(seen, took, changed, used);
    }
    obs.check(
        inject_errs.is_empty(),
        format!("injecting frames: {inject_errs:?}"),
    );
    t.report(obs, "RX", "bytes written", start.elapsed());
}

/// TX: eight 64 KiB frames, each in one descriptor, in a pool mapped by an
/// IOTLB update; as soon as the first one comes out of the tap, the pool
/// is invalidated. Right after `write()` returns, every frame the device
/// has not returned gets a canary, the last page of each first, then the
/// page before, and so on (the device reads a frame front to back, and
/// the one in flight is not known); 20 ms later no frame may have come out
/// with a byte of canary (or not at all as it was posted), and no more
/// used entries may have been published. The next round writes the frames
/// not sent back, maps the pool again and kicks.
fn invalidate_during_tx(obs: &mut Obs, _: &Ctx) {
    const SLOTS: usize = 8;
    let Some(mut rig) = Rig::new(obs, 1, SLOTS * PER_FRAME) else {
        return;
    };
    let slot = |i: usize| rig.lo + (i * PER_FRAME * PAGE) as u64;
    let slots: Vec<u64> = (0..SLOTS).map(slot).collect();
    // The frame of a seed: the seed in its first payload bytes, so that a
    // captured frame says which it should be.
    let content = |seed: u64| {
        let mut b = vec![0u8; 12];
        let mut f = frame(FRAME_LEN, UNICAST, 0x4a, seed as u32, None);
        f[14..22].copy_from_slice(&seed.to_le_bytes());
        b.extend(f);
        b
    };
    let intact = |f: &[u8]| {
        f.len() == FRAME_LEN && {
            let seed = u64::from_le_bytes(f[14..22].try_into().unwrap());
            content(seed)[12..] == *f
        }
    };
    let start = Instant::now();
    let mut free: Vec<u64> = slots.iter().rev().copied().collect();
    // Posted frames in posting order: slot and seed.
    let mut out: VecDeque<(u64, u64)> = VecDeque::new();
    let mut seed = 0u64;
    let mut taken = 0u16;
    let mut t = Tally::default();
    let mut sent = 0u64;
    while t.rounds < MAX_ITERS && start.elapsed() < rig.budget {
        t.rounds += 1;
        t.misses += rig.drain_misses();
        let n = &mut rig.n;
        for u in n.tx.take_used(&n.mem) {
            let g = u.chain.bufs[0].gpa;
            match out.iter().position(|&(s, _)| s == g) {
                Some(0) => {}
                p => t.surprises.push(format!("frame {g:#x} used at {p:?}")),
            }
            out.retain(|&(s, _)| s != g);
            free.push(g);
            taken = taken.wrapping_add(1);
        }
        // The frames not sent got the canary: write them again (the pool
        // is unmapped), and post the free slots with new frames.
        for &(g, s) in &out {
            n.mem.write(g, &content(s));
        }
        while let Some(g) = free.pop() {
            n.mem.write(g, &content(seed));
            let len = (PER_FRAME * PAGE) as u32;
            n.tx.add(&mut n.mem, &[Buf { gpa: g, len }], false, false);
            out.push_back((g, seed));
            seed += 1;
        }
        n.tx.publish(&n.mem);
        // Frames late from the last round (sent after its check).
        let mut late = 0u64;
        while let Some(f) = rig.n.tap.capture(0) {
            late += u64::from(!intact(&f));
        }
        let r = rig.map(rig.lo, rig.hi);
        if r != Ok(72) {
            t.surprises.push(format!("UPDATE pool: {}", fmt_res(&r)));
        }
        rig.n.tx.kick_now();
        let first = rig.n.tap.capture(2000);
        let t0 = Instant::now();
        let r = rig.d.write(&rig.invalidate);
        let took = t0.elapsed();
        let n = &rig.n;
        let skip = n.tx.used_idx(&n.mem).wrapping_sub(taken) as usize;
        let pending: Vec<u64> = out.iter().skip(skip).map(|&(g, _)| g).collect();
        rig.canary(
            (0..PER_FRAME)
                .rev()
                .flat_map(|p| pending.iter().map(move |g| g + (p * PAGE) as u64)),
        );
        if r != Ok(72) {
            t.surprises.push(format!("INVALIDATE: {}", fmt_res(&r)));
        }
        sleep_ms(rig.settle);
        let n = &rig.n;
        let used =
            n.tx.used_idx(&n.mem)
                .wrapping_sub(taken.wrapping_add(skip as u16));
        if let Some(f) = &first {
            sent += 1;
            if !intact(f) {
                t.surprises
                    .push(format!("frame before INVALIDATE: {} bytes", f.len()));
            }
        }
        while let Some(f) = n.tap.capture(0) {
            sent += 1;
            late += u64::from(!intact(&f));
        }
        t.round(first.is_some(), took, late, used);
    }
    obs.note(format!("{sent} frames captured"));
    t.report(obs, "TX", "frames read", start.elapsed());
}
