//! Hostile-guest differential tests: rings written to attack the device.
//! Each attack runs against device A (an error eventfd on both rings,
//! VHOST_SET_VRING_ERR) while device B is set up beside it. After the
//! attack the test records whether A reported the error on the bad ring's
//! err eventfd, whether a second kick reports it again, the bad ring's
//! indices, and checks that A's other ring and device B still move frames
//! and that the kernel log got at most a few (rate-limited) lines.
//! The CVE cases of Documentation/security.rst that a userspace driver can
//! reach are here too.

use crate::driver::{
    eventfd_take, frame, hash, poll_in, Buf, Cfg, Net, Vq, GPA_BASE, MEM_SIZE, UNICAST,
    VRING_DESC_F_INDIRECT as INDIRECT, VRING_DESC_F_NEXT as NEXT, VRING_DESC_F_WRITE as WRITE,
};
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::sys::{self, fmt_res, ioctl, Errno, Fd};
use crate::uapi;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 90,
        f,
    };
    vec![
        t("hostile_desc_loop", desc_loop),
        t("hostile_ring_loop_whole_ring", ring_loop_whole_ring),
        t("hostile_next_out_of_range", next_out_of_range),
        t("hostile_chain_longer_than_iov", chain_longer_than_iov),
        t("hostile_indirect_in_indirect", indirect_in_indirect),
        t("hostile_indirect_len_24", indirect_len_24),
        t("hostile_indirect_len_0", indirect_len_0),
        t("hostile_indirect_loop", indirect_loop),
        t("hostile_addr_outside_table", addr_outside_table),
        t("hostile_straddle_end_of_memory", straddle_end_of_memory),
        t("hostile_straddle_regions_ok", straddle_regions_ok),
        t("hostile_addr_len_overflow", addr_len_overflow),
        t("hostile_len_beyond_memory", len_beyond_memory),
        t("hostile_avail_idx_jump", avail_idx_jump),
        t("hostile_rx_desc_loop", rx_desc_loop),
        t("hostile_rx_readonly_desc", rx_readonly_desc),
        t("hostile_rx_more_pieces_than_uio_maxiov", rx_too_many_pieces),
        t("hostile_used_ring_readonly", used_ring_readonly),
        t("hostile_used_ring_unmapped", used_ring_unmapped),
        t("hostile_avail_ring_unmapped", avail_ring_unmapped),
        t("hostile_rx_never_posted", rx_never_posted),
        t("hostile_tx_flood_busy_worker", tx_flood),
        t("hostile_log_base_short", log_base_short),
        t("hostile_cve_2019_14835_zero_len_log", zero_len_log),
        t("hostile_cve_2014_0055_rx_chain_error", rx_chain_error),
        t("hostile_cve_2014_0077_oversize_nomrg", oversize_nomrg),
        t("hostile_cve_2018_16880_many_heads_log", many_heads_log),
        t("hostile_cve_2024_41090_tiny_frames", tiny_frames),
        t("hostile_set_owner_then_execve", owner_execve),
        t(
            "hostile_reattach_keeps_cached_avail_idx",
            reattach_keeps_avail_idx,
        ),
    ]
}

/// A TX ring stopped on a bad chain keeps the `avail->idx` it read: C's
/// `vhost_vq_init_access` does not touch `vq->avail_idx`, so after the
/// backend is detached and attached again (without `SET_VRING_BASE`) the
/// ring takes the entry it had counted even though the driver has since
/// moved `avail->idx` back, and re-reads the index only once it is taken.
/// The module once reset the cache on every attach and sent nothing.
fn reattach_keeps_avail_idx(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    r.a.tx.raw_reserve(RAW);
    r.a.tx.raw_desc(&r.a.mem, RAW, 0x1000, 112, 0, 0);
    push_kick(&mut r, TX, RAW);
    let sig = poll_in(r.errs[TX].raw(), 3000);
    eventfd_take(&r.errs[TX]);
    obs.val("err signalled (descriptor outside the table)", sig);
    let backend = |r: &Rig, fd: i32| {
        let mut f = uapi::VhostVringFile {
            index: TX as u32,
            fd,
        };
        ioctl(
            r.a.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut f as *mut _ as usize,
        )
    };
    obs.ret("SET_BACKEND 1 -1", backend(&r, -1));
    // The chain made good, and avail->idx moved back to 0.
    let p = tx_payload(&mut r);
    r.a.tx.raw_desc(&r.a.mem, RAW, p.gpa, p.len, 0, 0);
    let idx = r.a.tx.raw_avail_idx();
    r.a.tx.raw_set_avail_idx(idx.wrapping_sub(1));
    r.a.tx.publish(&r.a.mem);
    obs.ret("SET_BACKEND 1 tap", backend(&r, r.a.tap.fd.raw()));
    let t0 = std::time::Instant::now();
    while r.a.tx.used_idx(&r.a.mem) == 0 && t0.elapsed().as_millis() < 2000 {
        sys::sleep_ms(5);
    }
    obs.val("used idx after the attach", r.a.tx.used_idx(&r.a.mem));
    obs.val("frame sent", r.a.tap.capture(500).is_some());
    obs.val(
        "err signalled after the attach",
        poll_in(r.errs[TX].raw(), 0) && eventfd_take(&r.errs[TX]) > 0,
    );
    obs.val("vring base", r.a.vring_base(TX as u32));
}

pub(super) const RX: usize = 0;
pub(super) const TX: usize = 1;
/// Descriptors the raw attacks use (above what the tests' own chains take).
pub(super) const RAW: u16 = 200;
/// Kernel log lines a test may cause (a rate-limited message or two).
const MAX_LOG_LINES: usize = 10;

fn efd() -> Fd {
    // SAFETY: plain syscall with integer arguments; a failure (-1) is checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd: {}", Errno::last());
    Fd(fd)
}

/// Device A (err eventfds on both rings) and device B.
struct Rig {
    a: Net,
    errs: [Fd; 2],
    b: Net,
    kmsg: Option<Fd>,
}

fn rig(obs: &mut Obs, cfg: Cfg) -> Option<Rig> {
    let kmsg = sys::kmsg_open_at_end().ok();
    let a = Net::new(obs, "a ", cfg)?;
    let errs = [efd(), efd()];
    for (i, e) in errs.iter().enumerate() {
        let mut f = uapi::VhostVringFile {
            index: i as u32,
            fd: e.raw(),
        };
        obs.ret_ok(
            format!("a setup SET_VRING_ERR {i}"),
            ioctl(
                a.dev.raw(),
                uapi::VHOST_SET_VRING_ERR as u64,
                &mut f as *mut _ as usize,
            ),
        );
    }
    let b = Net::new(obs, "b ", Cfg::default())?;
    Some(Rig { a, errs, b, kmsg })
}

/// A frame sent by the guest: header and frame in one descriptor; used
/// and captured within a few seconds. "ok" or what went wrong.
fn tx_one(net: &mut Net, seed: u32) -> String {
    let f = frame(100, UNICAST, 0x48, seed, None);
    let mut all = net.zero_hdr();
    all.extend_from_slice(&f);
    let bufs = net.place(&all, 0);
    net.tx.add(&mut net.mem, &bufs, false, false);
    net.tx.notify(&net.mem);
    let used = net.tx.wait_used(&net.mem, 1, 5000);
    match net.tap.capture(3000) {
        Some(g) if g == f && used.len() == 1 => "ok".into(),
        Some(g) => format!(
            "used {} captured {} bytes {}",
            used.len(),
            g.len(),
            hash(&g)
        ),
        None => format!("used {} nothing captured", used.len()),
    }
}

/// A frame received by the guest into one fresh 2 KiB buffer.
pub(super) fn rx_one(net: &mut Net, seed: u32) -> String {
    let b = net.rx_buf(2048);
    net.rx.add(&mut net.mem, &[b], true, false);
    net.rx.notify(&net.mem);
    let f = frame(100, UNICAST, 0x49, seed, None);
    if let Err(e) = net.tap.inject(&f) {
        return format!("inject: {e}");
    }
    let used = net.rx.wait_used(&net.mem, 1, 5000);
    match used.first() {
        Some(u) => {
            let got = Vq::used_bytes(&net.mem, u);
            if got.len() == net.hdr_len + f.len() && got[net.hdr_len..] == f[..] {
                "ok".into()
            } else {
                format!("used len {} different", u.len)
            }
        }
        None => "nothing used".into(),
    }
}

/// Publishes what the test wrote on ring `q` of A and kicks it.
fn kick(r: &mut Rig, q: usize) {
    let vq = if q == TX { &mut r.a.tx } else { &mut r.a.rx };
    vq.publish(&r.a.mem);
    vq.kick_now();
}

/// Pushes a raw head on ring `q` of A, publishes and kicks; on RX a frame
/// is injected too (RX only runs when a frame is there).
fn push_kick(r: &mut Rig, q: usize, head: u16) {
    {
        let vq = if q == TX { &mut r.a.tx } else { &mut r.a.rx };
        vq.raw_push(&r.a.mem, head);
    }
    kick(r, q);
    if q == RX {
        let _ = r.a.tap.inject(&frame(200, UNICAST, 0x47, 1, None));
    }
}

/// The common end of an attack on ring `bad` of A. `expect_err`: whether
/// the device must signal the ring's err eventfd (None: only recorded).
fn finish(obs: &mut Obs, r: &mut Rig, bad: usize, expect_err: Option<bool>) {
    let sig = poll_in(r.errs[bad].raw(), 3000);
    // Summed until quiet: a second signal of the same round can come
    // later than a fixed pause on a loaded host.
    let count = if sig {
        crate::driver::eventfd_settle(&r.errs[bad])
    } else {
        eventfd_take(&r.errs[bad])
    };
    obs.val("err signalled", sig);
    // How many times C's vq_err ran for the kick (twice for a broken
    // indirect table). On TX the kick runs one round; on RX the frame's
    // wake-up may run a second one (timing): not compared there.
    if bad == TX {
        obs.val("err count", count);
    } else {
        obs.note(format!("err count {count}"));
    }
    if let Some(e) = expect_err {
        obs.check(
            sig == e,
            format!("err eventfd of ring {bad}: signalled={sig}, expected {e}"),
        );
    }
    // Kicked again, the bad ring reports again (the chain is still there).
    {
        let vq = if bad == TX { &mut r.a.tx } else { &mut r.a.rx };
        vq.kick_now();
    }
    let again = poll_in(r.errs[bad].raw(), 1000);
    eventfd_take(&r.errs[bad]);
    obs.val("err signalled after another kick", again);
    let (vq, other) = if bad == TX {
        (&r.a.tx, RX)
    } else {
        (&r.a.rx, TX)
    };
    obs.val("bad ring used idx", vq.used_idx(&r.a.mem));
    obs.val("bad ring vring base", r.a.vring_base(bad as u32));
    let o = if other == RX {
        rx_one(&mut r.a, 7)
    } else {
        tx_one(&mut r.a, 7)
    };
    obs.val("a other ring", &o);
    obs.check(
        o == "ok",
        format!("A's other ring ({other}) after the attack: {o}"),
    );
    obs.val(
        "err on other ring",
        poll_in(r.errs[other].raw(), 0) && eventfd_take(&r.errs[other]) > 0,
    );
    let b = tx_one(&mut r.b, 8);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B after the attack: {b}"));
    let b = rx_one(&mut r.b, 9);
    obs.val("b rx", &b);
    obs.check(b == "ok", format!("device B RX after the attack: {b}"));
    log_lines(obs, &r.kmsg);
}

/// At most MAX_LOG_LINES new kernel log lines (shown as notes).
fn log_lines(obs: &mut Obs, kmsg: &Option<Fd>) {
    if let Some(k) = kmsg {
        let lines: Vec<String> = sys::kmsg_drain(k)
            .into_iter()
            .filter(|l| !l.contains("entered promiscuous") && !l.contains("left promiscuous"))
            .collect();
        for l in lines.iter().take(5) {
            obs.note(format!("kernel: {l}"));
        }
        obs.check(
            lines.len() <= MAX_LOG_LINES,
            format!(
                "{} kernel log lines (rate limit: {MAX_LOG_LINES})",
                lines.len()
            ),
        );
    }
}

/// Header + frame in guest memory for a TX descriptor.
fn tx_payload(r: &mut Rig) -> Buf {
    let mut all = r.a.zero_hdr();
    all.extend(frame(100, UNICAST, 0x46, 3, None));
    r.a.place(&all, 0)[0]
}

// ------------------------------------------------------------ TX attacks

fn tx_attack(obs: &mut Obs, cfg: Cfg, f: impl FnOnce(&mut Rig) -> u16, expect: Option<bool>) {
    let Some(mut r) = rig(obs, cfg) else { return };
    let head = f(&mut r);
    push_kick(&mut r, TX, head);
    finish(obs, &mut r, TX, expect);
}

fn desc_loop(obs: &mut Obs, _: &Ctx) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let p = tx_payload(r);
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_reserve(RAW + 1);
            r.a.tx.raw_desc(&r.a.mem, RAW, p.gpa, p.len, NEXT, RAW + 1);
            r.a.tx.raw_desc(&r.a.mem, RAW + 1, p.gpa, p.len, NEXT, RAW);
            RAW
        },
        Some(true),
    );
}

/// A ring of 8 whose 8 descriptors form one cycle: the chain is longer
/// than the ring.
fn ring_loop_whole_ring(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        num: 8,
        ..Cfg::default()
    };
    tx_attack(
        obs,
        cfg,
        |r| {
            let p = tx_payload(r);
            for i in 0..8u16 {
                r.a.tx.raw_reserve(i);
                r.a.tx.raw_desc(&r.a.mem, i, p.gpa, 8, NEXT, (i + 1) % 8);
            }
            0
        },
        Some(true),
    );
}

fn next_out_of_range(obs: &mut Obs, _: &Ctx) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let p = tx_payload(r);
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_desc(&r.a.mem, RAW, p.gpa, p.len, NEXT, 256 + 5);
            RAW
        },
        Some(true),
    );
}

/// An indirect table of 1100 one-byte descriptors: more than UIO_MAXIOV
/// (1024) iovecs.
fn chain_longer_than_iov(obs: &mut Obs, _: &Ctx) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let n = 1100u16;
            let data = r.a.mem.alloc(n as usize);
            r.a.mem.fill(data, n as usize, 0);
            let t = r.a.mem.alloc(16 * n as usize);
            for i in 0..n {
                let last = i + 1 == n;
                Vq::raw_table_desc(
                    &r.a.mem,
                    t,
                    i,
                    data + i as u64,
                    1,
                    if last { 0 } else { NEXT },
                    if last { 0 } else { i + 1 },
                );
            }
            r.a.tx.raw_reserve(RAW);
            r.a.tx
                .raw_desc(&r.a.mem, RAW, t, 16 * n as u32, INDIRECT, 0);
            RAW
        },
        Some(true),
    );
}

/// Indirect table helper: `entries` written at a fresh table; returns it.
fn table(r: &mut Rig, entries: &[(u64, u32, u16, u16)]) -> u64 {
    let t = r.a.mem.alloc(16 * entries.len().max(1));
    for (i, &(g, l, f, n)) in entries.iter().enumerate() {
        Vq::raw_table_desc(&r.a.mem, t, i as u16, g, l, f, n);
    }
    t
}

fn indirect_in_indirect(obs: &mut Obs, _: &Ctx) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let p = tx_payload(r);
            let inner = table(r, &[(p.gpa, p.len, 0, 0)]);
            let outer = table(r, &[(p.gpa, 12, NEXT, 1), (inner, 16, INDIRECT, 0)]);
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_desc(&r.a.mem, RAW, outer, 32, INDIRECT, 0);
            RAW
        },
        Some(true),
    );
}

fn indirect_len(obs: &mut Obs, len: u32) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let p = tx_payload(r);
            let t = table(r, &[(p.gpa, 12, NEXT, 1), (p.gpa + 12, p.len - 12, 0, 0)]);
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_desc(&r.a.mem, RAW, t, len, INDIRECT, 0);
            RAW
        },
        Some(true),
    );
}

fn indirect_len_24(obs: &mut Obs, _: &Ctx) {
    indirect_len(obs, 24);
}

fn indirect_len_0(obs: &mut Obs, _: &Ctx) {
    indirect_len(obs, 0);
}

/// A loop inside an indirect table.
fn indirect_loop(obs: &mut Obs, _: &Ctx) {
    tx_attack(
        obs,
        Cfg::default(),
        |r| {
            let p = tx_payload(r);
            let t = table(
                r,
                &[(p.gpa, 12, NEXT, 1), (p.gpa + 12, p.len - 12, NEXT, 0)],
            );
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_desc(&r.a.mem, RAW, t, 32, INDIRECT, 0);
            RAW
        },
        Some(true),
    );
}

fn one_desc(obs: &mut Obs, cfg: Cfg, gpa: u64, len: u32) {
    tx_attack(
        obs,
        cfg,
        |r| {
            r.a.tx.raw_reserve(RAW);
            r.a.tx.raw_desc(&r.a.mem, RAW, gpa, len, 0, 0);
            RAW
        },
        Some(true),
    );
}

fn addr_outside_table(obs: &mut Obs, _: &Ctx) {
    one_desc(obs, Cfg::default(), 0x1000, 112);
}

fn straddle_end_of_memory(obs: &mut Obs, _: &Ctx) {
    one_desc(obs, Cfg::default(), GPA_BASE + MEM_SIZE as u64 - 50, 112);
}

fn addr_len_overflow(obs: &mut Obs, _: &Ctx) {
    one_desc(obs, Cfg::default(), u64::MAX - 10, 112);
}

fn len_beyond_memory(obs: &mut Obs, _: &Ctx) {
    one_desc(obs, Cfg::default(), GPA_BASE, u32::MAX);
}

/// CVE-2013-0311: a descriptor spanning two memory regions is legal and
/// must be split, not rejected or copied past the first region. TX and RX.
fn straddle_regions_ok(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        two_regions: true,
        ..Cfg::default()
    };
    let Some(mut r) = rig(obs, cfg) else { return };
    let half = GPA_BASE + (MEM_SIZE / 2) as u64;
    let f = frame(1500, UNICAST, 0x45, 11, None);
    let mut all = r.a.zero_hdr();
    all.extend_from_slice(&f);
    let g = half - 700;
    r.a.mem.write(g, &all);
    r.a.tx.add(
        &mut r.a.mem,
        &[Buf {
            gpa: g,
            len: all.len() as u32,
        }],
        false,
        false,
    );
    r.a.tx.notify(&r.a.mem);
    let used = r.a.tx.wait_used(&r.a.mem, 1, 5000);
    obs.val("tx used", used.len());
    let got = r.a.tap.capture(3000);
    obs.val(
        "tx frame",
        got.as_ref()
            .map(|g| format!("{} intact={}", g.len(), *g == f))
            .unwrap_or("none".into()),
    );
    obs.check(got.as_ref() == Some(&f), "TX frame across regions intact");
    // RX into a buffer across the boundary.
    let rb = half - 300;
    r.a.mem.fill(rb, 4096, 0xa5);
    r.a.rx
        .add(&mut r.a.mem, &[Buf { gpa: rb, len: 4096 }], true, false);
    r.a.rx.notify(&r.a.mem);
    let f2 = frame(1500, UNICAST, 0x45, 12, None);
    let _ = r.a.tap.inject(&f2);
    let used = r.a.rx.wait_used(&r.a.mem, 1, 5000);
    let ok = used.len() == 1 && {
        let b = r.a.mem.read(rb, r.a.hdr_len + f2.len());
        b[r.a.hdr_len..] == f2[..]
    };
    obs.val("rx across regions intact", ok);
    obs.check(ok, "RX frame across regions intact");
    obs.val(
        "err signalled",
        poll_in(r.errs[TX].raw(), 0) || poll_in(r.errs[RX].raw(), 0),
    );
    log_lines(obs, &r.kmsg);
}

fn avail_idx_jump(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let p = tx_payload(&mut r);
    r.a.tx.add(&mut r.a.mem, &[p], false, false);
    let i = r.a.tx.raw_avail_idx();
    r.a.tx.raw_set_avail_idx(i.wrapping_add(256 + 1));
    kick(&mut r, TX);
    finish(obs, &mut r, TX, Some(true));
}

// ------------------------------------------------------------ RX attacks

fn rx_desc_loop(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let b = r.a.rx_buf(2048);
    r.a.rx.raw_reserve(RAW);
    r.a.rx.raw_reserve(RAW + 1);
    r.a.rx
        .raw_desc(&r.a.mem, RAW, b.gpa, 1024, WRITE | NEXT, RAW + 1);
    r.a.rx
        .raw_desc(&r.a.mem, RAW + 1, b.gpa + 1024, 1024, WRITE | NEXT, RAW);
    push_kick(&mut r, RX, RAW);
    finish(obs, &mut r, RX, Some(true));
}

/// An RX chain whose descriptor is device-readable, not writable.
fn rx_readonly_desc(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let b = r.a.rx_buf(2048);
    r.a.rx.raw_reserve(RAW);
    r.a.rx.raw_desc(&r.a.mem, RAW, b.gpa, 2048, 0, 0);
    push_kick(&mut r, RX, RAW);
    finish(obs, &mut r, RX, Some(true));
}

/// A mergeable RX packet whose chains hold more pieces than UIO_MAXIOV
/// before they hold the packet: 20 chains, each an indirect table of 64
/// one-byte writable descriptors (1024 pieces, 1024 bytes, in 16 chains),
/// for a 1500-byte frame. C gives the chains back and stops the round
/// with -ENOBUFS, without a `vq_err`: the error eventfd stays quiet, as
/// ours (which once signalled it).
fn rx_too_many_pieces(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    const CHAINS: u16 = 20;
    const PIECES: u16 = 64;
    let data = r.a.mem.alloc(usize::from(PIECES));
    for c in 0..CHAINS {
        let entries: Vec<(u64, u32, u16, u16)> = (0..PIECES)
            .map(|i| {
                let last = i + 1 == PIECES;
                (
                    data + u64::from(i),
                    1,
                    if last { WRITE } else { WRITE | NEXT },
                    if last { 0 } else { i + 1 },
                )
            })
            .collect();
        let t = table(&mut r, &entries);
        r.a.rx.raw_reserve(RAW + c);
        r.a.rx
            .raw_desc(&r.a.mem, RAW + c, t, 16 * u32::from(PIECES), INDIRECT, 0);
        r.a.rx.raw_push(&r.a.mem, RAW + c);
    }
    kick(&mut r, RX);
    let _ = r.a.tap.inject(&frame(1500, UNICAST, 0x47, 1, None));
    finish(obs, &mut r, RX, Some(false));
}

// ---------------------------------------------------- ring memory attacks

fn page_of(uaddr: u64) -> *mut libc::c_void {
    (uaddr & !4095) as *mut libc::c_void
}

fn used_ring_readonly(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let pg = page_of(r.a.mem.uaddr(r.a.tx.used));
    // SAFETY: `pg` is the page of A's TX used ring inside `r.a.mem`'s live mapping; while it is
    // read-only the test only reads it, and it is made writable again below.
    let rc = unsafe { libc::mprotect(pg, 4096, libc::PROT_READ) };
    obs.check(rc == 0, "mprotect");
    let p = tx_payload(&mut r);
    r.a.tx.add(&mut r.a.mem, &[p], false, false);
    kick(&mut r, TX);
    finish(obs, &mut r, TX, Some(true));
    // SAFETY: `pg` is the same page of `r.a.mem`'s live mapping, made writable again.
    unsafe { libc::mprotect(pg, 4096, libc::PROT_READ | libc::PROT_WRITE) };
}

fn used_ring_unmapped(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let pg = page_of(r.a.mem.uaddr(r.a.tx.used));
    let p = tx_payload(&mut r);
    // SAFETY: `pg` is the page of A's TX used ring inside `r.a.mem`'s mapping; no Rust reference
    // points into it and the test does not touch that page afterwards (publish + kick only).
    let rc = unsafe { libc::munmap(pg, 4096) };
    obs.check(rc == 0, "munmap");
    r.a.tx.add(&mut r.a.mem, &[p], false, false);
    // The driver cannot read the used ring any more: only publish + kick.
    kick(&mut r, TX);
    let sig = poll_in(r.errs[TX].raw(), 3000);
    eventfd_take(&r.errs[TX]);
    obs.val("err signalled", sig);
    obs.check(sig, "err eventfd of the TX ring");
    obs.val("bad ring vring base", r.a.vring_base(TX as u32));
    let o = rx_one(&mut r.a, 7);
    obs.val("a other ring", &o);
    obs.check(o == "ok", format!("A's RX ring after the attack: {o}"));
    let b = tx_one(&mut r.b, 8);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B after the attack: {b}"));
    log_lines(obs, &r.kmsg);
}

/// The avail ring's page unmapped after setup (desc table and avail ring
/// share a page range: the avail ring starts at desc + 16 * 256).
fn avail_ring_unmapped(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let pg = page_of(r.a.mem.uaddr(r.a.tx.avail));
    // SAFETY: `pg` is the page of A's TX avail ring inside `r.a.mem`'s mapping; no Rust reference
    // points into it and the test does not touch that page afterwards (kick only).
    let rc = unsafe { libc::munmap(pg, 4096) };
    obs.check(rc == 0, "munmap");
    r.a.tx.kick_now();
    let sig = poll_in(r.errs[TX].raw(), 3000);
    eventfd_take(&r.errs[TX]);
    obs.val("err signalled", sig);
    obs.check(sig, "err eventfd of the TX ring");
    obs.val("bad ring vring base", r.a.vring_base(TX as u32));
    let o = rx_one(&mut r.a, 7);
    obs.val("a other ring", &o);
    obs.check(o == "ok", format!("A's RX ring after the attack: {o}"));
    let b = tx_one(&mut r.b, 8);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B after the attack: {b}"));
    log_lines(obs, &r.kmsg);
}

// ------------------------------------------------------ resource attacks

/// Frames keep arriving and the guest never posts an RX buffer: nothing is
/// an error; the tap's queue bounds what waits; TX and B keep working;
/// buffers posted later get the queued frames.
fn rx_never_posted(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let mut sent = 0;
    for i in 0..1500u32 {
        if r.a.tap.inject(&frame(200, UNICAST, 0x44, i, None)).is_ok() {
            sent += 1;
        }
    }
    obs.val("injected", sent);
    sys::sleep_ms(300);
    obs.val("err signalled", poll_in(r.errs[RX].raw(), 0));
    obs.val("rx used idx", r.a.rx.used_idx(&r.a.mem));
    let o = tx_one(&mut r.a, 5);
    obs.val("a tx", &o);
    obs.check(o == "ok", format!("A's TX while RX starves: {o}"));
    let b = tx_one(&mut r.b, 6);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B: {b}"));
    for _ in 0..64 {
        let b = r.a.rx_buf(2048);
        r.a.rx.add(&mut r.a.mem, &[b], true, false);
    }
    r.a.rx.notify(&r.a.mem);
    let used = r.a.rx.wait_used(&r.a.mem, 64, 10000);
    obs.val("rx used after posting 64", used.len());
    obs.val("tap tx_dropped > 0", r.a.tap.stat("tx_dropped") != "0");
    log_lines(obs, &r.kmsg);
}

struct SendNet(Net);
// SAFETY: `Net` is not Send only because it holds raw pointers into mappings it owns; the thread
// gets sole use of it and hands it back through join.
unsafe impl Send for SendNet {}

/// CVE-2019-3900 and TX weights: a guest keeps A's worker busy with a TX
/// flood. Device B still gets service, the owner's ioctls answer and
/// close(A) returns promptly.
fn tx_flood(obs: &mut Obs, _: &Ctx) {
    let kmsg = sys::kmsg_open_at_end().ok();
    let Some(mut a) = Net::new(obs, "a ", Cfg::default()) else {
        return;
    };
    let Some(mut b) = Net::new(obs, "b ", Cfg::default()) else {
        return;
    };
    // Prefill: 128 frames of 1500 bytes, reposted as they complete.
    let f = frame(1500, UNICAST, 0x43, 1, None);
    let mut all = a.zero_hdr();
    all.extend_from_slice(&f);
    let bufs: Vec<Buf> = (0..128).map(|_| a.place(&all, 0)[0]).collect();
    let adev = a.dev.raw();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let sa = SendNet(a);
    let h = std::thread::spawn(move || {
        let mut sa = sa;
        let a = &mut sa.0;
        for b in &bufs {
            a.tx.add(&mut a.mem, &[*b], false, false);
        }
        a.tx.notify(&a.mem);
        let mut done = 0u64;
        while !st.load(std::sync::atomic::Ordering::Relaxed) {
            let u = a.tx.take_used(&a.mem);
            done += u.len() as u64;
            for e in &u {
                a.tx.add(&mut a.mem, &e.chain.bufs, false, false);
            }
            if !u.is_empty() {
                a.tx.notify(&a.mem);
            } else {
                std::thread::yield_now();
            }
        }
        (sa, done)
    });
    sys::sleep_ms(300);
    // B: 20 frames one at a time, each within 3 s.
    let mut served = 0;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let t0 = Instant::now();
        if tx_one(&mut b, 100 + i) == "ok" {
            served += 1;
        }
        worst = worst.max(t0.elapsed());
    }
    obs.val("b frames served during the flood", served);
    obs.check(
        served == 20,
        format!("B served {served}/20 during A's flood"),
    );
    obs.check(
        worst < Duration::from_secs(3),
        format!("B's slowest frame took {worst:?}"),
    );
    obs.note(format!("B's slowest frame during the flood: {worst:?}"));
    // The owner's ioctls answer promptly while the worker is busy.
    let t0 = Instant::now();
    let mut feat = 0u64;
    let r = ioctl(
        adev,
        uapi::VHOST_GET_FEATURES as u64,
        &mut feat as *mut u64 as usize,
    );
    let mut s = uapi::VhostVringState { index: 0, num: 0 };
    let r2 = ioctl(
        adev,
        uapi::VHOST_GET_VRING_BASE as u64,
        &mut s as *mut _ as usize,
    );
    let lat = t0.elapsed();
    obs.ret("a GET_FEATURES during the flood", r);
    obs.ret("a GET_VRING_BASE 0 during the flood", r2);
    obs.check(
        lat < Duration::from_secs(2),
        format!("owner ioctls took {lat:?}"),
    );
    obs.note(format!("owner ioctls during the flood: {lat:?}"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sa, done) = h.join().expect("flood thread");
    obs.check(done > 0, "the flood moved frames");
    obs.note(format!("A moved {done} frames during the flood"));
    // close() while frames are still queued returns promptly.
    let t0 = Instant::now();
    drop(sa);
    let lat = t0.elapsed();
    obs.check(
        lat < Duration::from_secs(3),
        format!("close(A) took {lat:?}"),
    );
    obs.note(format!("close(A): {lat:?}"));
    let o = tx_one(&mut b, 999);
    obs.val("b after", &o);
    log_lines(obs, &kmsg);
}

// -------------------------------------------------------------- dirty log

/// A dirty log whose bitmap ends inside guest memory's range: the log base
/// is placed so that the bits of the upper half of memory fall on an
/// unmapped page (SET_LOG_BASE only checks access_ok). RX into the upper
/// half makes the device write those bits.
fn log_base_short(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        log_all: true,
        ..Cfg::default()
    };
    let Some(mut r) = rig(obs, cfg) else { return };
    // SAFETY: anonymous mmap with a null hint: the kernel picks a fresh range, no existing memory
    // is affected; MAP_FAILED is checked by the assert below.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            3 * 4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    assert!(map != libc::MAP_FAILED);
    // SAFETY: unmaps the third page of `map`, the mapping made just above; nothing points into it.
    unsafe { libc::munmap((map as u64 + 2 * 4096) as *mut libc::c_void, 4096) };
    let first_byte = GPA_BASE / 4096 / 8;
    let half_bytes = (MEM_SIZE / 4096 / 8 / 2) as u64;
    let mut base = map as u64 + 2 * 4096 - first_byte - half_bytes;
    obs.ret(
        "SET_LOG_BASE short",
        ioctl(
            r.a.dev.raw(),
            uapi::VHOST_SET_LOG_BASE as u64,
            &mut base as *mut u64 as usize,
        ),
    );
    // An RX buffer in the upper half of memory.
    let g = GPA_BASE + MEM_SIZE as u64 - 0x10_0000;
    r.a.mem.fill(g, 2048, 0xa5);
    r.a.rx
        .add(&mut r.a.mem, &[Buf { gpa: g, len: 2048 }], true, false);
    r.a.rx.notify(&r.a.mem);
    let f = frame(100, UNICAST, 0x42, 1, None);
    let _ = r.a.tap.inject(&f);
    let used = r.a.rx.wait_used(&r.a.mem, 1, 3000);
    obs.val("rx used", used.len());
    let sig = poll_in(r.errs[RX].raw(), 1000);
    eventfd_take(&r.errs[RX]);
    obs.val("err signalled", sig);
    // SAFETY: the last `half_bytes` (128) bytes of the second page of `map`, still mapped,
    // initialised (zero, or log bits the kernel set) and alive while `lo` is used.
    let lo = unsafe {
        std::slice::from_raw_parts(
            (map as u64 + 2 * 4096 - half_bytes) as *const u8,
            half_bytes as usize,
        )
    };
    obs.val(
        "lower half log bits set",
        lo.iter().filter(|&&x| x != 0).count(),
    );
    let o = tx_one(&mut r.a, 3);
    obs.val("a tx", &o);
    let b = tx_one(&mut r.b, 4);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B: {b}"));
    log_lines(obs, &r.kmsg);
    drop(r);
    // SAFETY: `map`'s first two pages, still mapped (the third was unmapped above); `lo` is no
    // longer used and the rig using the log base was dropped just above.
    unsafe { libc::munmap(map, 2 * 4096) };
}

/// CVE-2019-14835: with logging on, zero-length descriptors get a log
/// entry but no iovec; a chain of more of them than the log array holds
/// overflowed it. An indirect RX table of 1100 zero-length descriptors
/// and one real buffer.
fn zero_len_log(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        log_all: true,
        ..Cfg::default()
    };
    let Some(mut r) = rig(obs, cfg) else { return };
    let n = 1101u16;
    let data = r.a.rx_buf(2048);
    let t = r.a.mem.alloc(16 * n as usize);
    for i in 0..n {
        let last = i + 1 == n;
        let (g, l) = if last {
            (data.gpa, 2048)
        } else {
            (data.gpa, 0)
        };
        Vq::raw_table_desc(
            &r.a.mem,
            t,
            i,
            g,
            l,
            WRITE | if last { 0 } else { NEXT },
            if last { 0 } else { i + 1 },
        );
    }
    r.a.rx.raw_reserve(RAW);
    r.a.rx
        .raw_desc(&r.a.mem, RAW, t, 16 * n as u32, INDIRECT, 0);
    r.a.log.as_ref().unwrap().clear();
    push_kick(&mut r, RX, RAW);
    let used = r.a.rx.wait_used(&r.a.mem, 1, 3000);
    obs.val(
        "rx used",
        used.iter()
            .map(|u| format!("{}:{}", u.id, u.len))
            .collect::<Vec<_>>()
            .join(","),
    );
    obs.val("log pages", r.a.log.as_ref().unwrap().pages().join(" "));
    let sig = poll_in(r.errs[RX].raw(), 500);
    eventfd_take(&r.errs[RX]);
    obs.val("err signalled", sig);
    let o = tx_one(&mut r.a, 3);
    obs.val("a tx", &o);
    let b = tx_one(&mut r.b, 4);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B: {b}"));
    log_lines(obs, &r.kmsg);
}

// ---------------------------------------------------------------- RX CVEs

/// CVE-2014-0055: an error in the middle of a mergeable RX packet's
/// heads (the second head's address is outside memory).
fn rx_chain_error(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    let b = r.a.rx_buf(256);
    r.a.rx.add(&mut r.a.mem, &[b], true, false);
    r.a.rx.raw_reserve(RAW);
    r.a.rx.raw_desc(&r.a.mem, RAW, 0x1000, 4096, WRITE, 0);
    r.a.rx.raw_push(&r.a.mem, RAW);
    r.a.rx.notify(&r.a.mem);
    let _ = r.a.tap.inject(&frame(1500, UNICAST, 0x41, 1, None));
    let sig = poll_in(r.errs[RX].raw(), 3000);
    eventfd_take(&r.errs[RX]);
    obs.val("err signalled", sig);
    obs.check(sig, "err eventfd of the RX ring");
    obs.val("rx used idx", r.a.rx.used_idx(&r.a.mem));
    obs.val("rx vring base", r.a.vring_base(0));
    let o = tx_one(&mut r.a, 3);
    obs.val("a tx", &o);
    obs.check(o == "ok", format!("A's TX: {o}"));
    let b = tx_one(&mut r.b, 4);
    obs.val("b tx", &b);
    obs.check(b == "ok", format!("device B: {b}"));
    log_lines(obs, &r.kmsg);
}

/// CVE-2014-0077: without MRG_RXBUF a frame larger than the posted buffer
/// is dropped (not written past the buffer); a small one then fits.
fn oversize_nomrg(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut r) = rig(obs, cfg) else { return };
    let mut bufs = Vec::new();
    for _ in 0..2 {
        let b = r.a.rx_buf(128);
        // a guard after each buffer
        let guard = r.a.mem.alloc(64);
        r.a.mem.fill(guard, 64, 0x5a);
        bufs.push((b, guard));
        r.a.rx.add(&mut r.a.mem, &[b], true, false);
    }
    r.a.rx.notify(&r.a.mem);
    let _ = r.a.tap.inject(&frame(1500, UNICAST, 0x40, 1, None));
    sys::sleep_ms(300);
    let _ = r.a.tap.inject(&frame(60, UNICAST, 0x40, 2, None));
    let used = r.a.rx.wait_used(&r.a.mem, 2, 3000);
    obs.val(
        "rx used",
        used.iter()
            .map(|u| format!("{}:{}", u.id, u.len))
            .collect::<Vec<_>>()
            .join(","),
    );
    let guards_ok = bufs
        .iter()
        .all(|(_, g)| r.a.mem.read(*g, 64).iter().all(|&x| x == 0x5a));
    obs.val("guards intact", guards_ok);
    obs.check(guards_ok, "bytes after the RX buffers untouched");
    obs.val("err signalled", poll_in(r.errs[RX].raw(), 0));
    obs.val("tap tx_dropped", r.a.tap.stat("tx_dropped"));
    let b = tx_one(&mut r.b, 4);
    obs.check(b == "ok", format!("device B: {b}"));
    log_lines(obs, &r.kmsg);
}

/// CVE-2018-16880: a mergeable RX packet over many heads with logging on
/// (the log array holds one entry per head's descriptor).
fn many_heads_log(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        log_all: true,
        ..Cfg::default()
    };
    let Some(mut r) = rig(obs, cfg) else { return };
    for _ in 0..200 {
        let b = r.a.rx_buf(64);
        r.a.rx.add(&mut r.a.mem, &[b], true, false);
    }
    r.a.rx.notify(&r.a.mem);
    r.a.log.as_ref().unwrap().clear();
    let f = frame(9000, UNICAST, 0x3f, 1, None);
    let _ = r.a.tap.inject(&f);
    let used = r.a.rx.wait_used(&r.a.mem, 200, 3000);
    obs.val("rx used elements", used.len());
    let mut bytes = Vec::new();
    for u in &used {
        bytes.extend(Vq::used_bytes(&r.a.mem, u));
    }
    let nb = if bytes.len() >= 12 {
        u16::from_le_bytes([bytes[10], bytes[11]])
    } else {
        0
    };
    obs.val("num_buffers", nb);
    let ok = bytes.len() == 12 + f.len() && bytes[12..] == f[..];
    obs.val("frame intact", ok);
    obs.val("log pages", r.a.log.as_ref().unwrap().pages().join(" "));
    obs.val("err signalled", poll_in(r.errs[RX].raw(), 0));
    log_lines(obs, &r.kmsg);
}

/// CVE-2024-41090/41091: guest frames of 0 to 13 bytes (shorter than an
/// Ethernet header) through the tap; then a normal one.
fn tiny_frames(obs: &mut Obs, _: &Ctx) {
    let Some(mut r) = rig(obs, Cfg::default()) else {
        return;
    };
    for len in 0..14usize {
        let mut all = r.a.zero_hdr();
        all.extend((0..len).map(|i| i as u8 ^ 0x5c));
        let bufs = r.a.place(&all, 0);
        r.a.tx.add(&mut r.a.mem, &bufs, false, false);
    }
    r.a.tx.notify(&r.a.mem);
    let used = r.a.tx.wait_used(&r.a.mem, 14, 5000);
    obs.val(
        "tx used",
        used.iter()
            .map(|u| format!("{}:{}", u.id, u.len))
            .collect::<Vec<_>>()
            .join(","),
    );
    let mut caught = Vec::new();
    while let Some(g) = r.a.tap.capture(300) {
        caught.push(g.len().to_string());
    }
    obs.val("captured", caught.join(","));
    obs.val("tap rx_dropped", r.a.tap.stat("rx_dropped"));
    obs.val("tap rx_errors", r.a.tap.stat("rx_errors"));
    let o = tx_one(&mut r.a, 3);
    obs.val("a tx after", &o);
    obs.check(o == "ok", format!("A's TX after tiny frames: {o}"));
    obs.val("err signalled", poll_in(r.errs[TX].raw(), 0));
    log_lines(obs, &r.kmsg);
}

/// SET_OWNER (and a full set-up with a frame in flight) and then execve:
/// the exec kills the owner's worker; the new image still holds the fd,
/// exits, and everything is released (the harness checks refcnt 0).
fn owner_execve(obs: &mut Obs, ctx: &Ctx) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable array of the two ints pipe fills.
    assert!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0);
    // SAFETY: libc::fork: the child runs only the owner set-up below and never returns into the
    // harness: it leaves through execv or _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: closes the child's copy of the pipe's read end, owned by no `Fd`.
        unsafe { libc::close(fds[0]) };
        let mut o = Obs::default();
        let code = match Net::new(&mut o, "", Cfg::default()) {
            Some(mut n) => {
                let p = n.place(&[0u8; 112], 0);
                n.tx.add(&mut n.mem, &p, false, false);
                n.tx.notify(&n.mem);
                // keep the device fd across exec
                // SAFETY: fcntl(F_SETFD, 0) on the device fd owned by `n`; integer arguments only.
                unsafe { libc::fcntl(n.dev.raw(), libc::F_SETFD, 0) };
                let fd = n.dev.raw();
                let msg = format!("{fd}\n");
                // SAFETY: `fds[1]` is the pipe's write end; `msg` is a readable buffer of
                // `msg.len()` bytes.
                unsafe { libc::write(fds[1], msg.as_ptr().cast(), msg.len()) };
                let sh = std::ffi::CString::new("/bin/sh").unwrap();
                let a1 = std::ffi::CString::new("-c").unwrap();
                // the new image: the inherited fd is open; exit after a while
                let a2 = std::ffi::CString::new(format!(
                    "test -e /proc/self/fd/{fd} && sleep 1 && exit 7; exit 9"
                ))
                .unwrap();
                let argv = [sh.as_ptr(), a1.as_ptr(), a2.as_ptr(), std::ptr::null()];
                // SAFETY: `sh` and the strings in `argv` are NUL-terminated CStrings alive across
                // the call, and `argv` ends with a null pointer.
                unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
                3
            }
            None => 2,
        };
        // SAFETY: _exit ends the child without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: closes the parent's copy of the pipe's write end, owned by no `Fd`.
    unsafe { libc::close(fds[1]) };
    let mut buf = [0u8; 64];
    // SAFETY: `fds[0]` is the pipe's read end; `buf` is a writable buffer of 64 bytes.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), 64) };
    // SAFETY: closes the pipe's read end, owned by no `Fd`; it is not used again.
    unsafe { libc::close(fds[0]) };
    obs.val("child set up", n > 0);
    let t0 = Instant::now();
    let mut status = 0;
    // SAFETY: `pid` is the child forked above; `status` is a writable int for the call.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    obs.val("exec'd image exit", code);
    obs.check(
        code == 7,
        format!("exec'd image exited {code} (7: fd was inherited)"),
    );
    obs.check(
        t0.elapsed() < Duration::from_secs(10),
        format!("exec + exit took {:?}", t0.elapsed()),
    );
    // The last reference went with the exec'd image.
    let mut rc = String::new();
    for _ in 0..40 {
        rc = crate::modules::refcnt(ctx.module()).unwrap_or_else(|e| e.to_string());
        if rc == "0" {
            break;
        }
        sys::sleep_ms(50);
    }
    obs.val("refcnt after exit", &rc);
    let _ = fmt_res;
}
