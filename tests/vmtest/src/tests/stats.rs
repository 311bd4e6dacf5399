//! Per-queue statistics in `/proc/<pid>/fdinfo/<fd>` (issue 25; ours
//! only: C shows none, so the C run says so with `Obs::c_lacks` and ours
//! runs alone, checked against the test's own counts).
//!
//! Observations: the counters' changes across traffic the test moved
//! (frames sent and received, the tap's own counters, the kicks it made),
//! and the reason a hostile ring left in `last_error` and `drops`.

use super::hostile::{RAW, RX, TX};
use crate::driver::{frame, Cfg, Net, GPA_BASE, MEM_SIZE, UNICAST, VRING_DESC_F_NEXT as NEXT};
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::modules::Impl;
use crate::sys::sleep_ms;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 90,
        f,
    };
    vec![
        t("stats_fdinfo_counts", counts),
        t("hostile_desc_loop_stats", desc_loop),
        t("hostile_desc_addr_stats", desc_addr),
    ]
}

/// One ring's line of the fdinfo: `vqN: key=value ...`.
type Line = HashMap<String, String>;

/// The rings' lines of `fd`'s fdinfo (ours prints one per ring).
fn fdinfo(obs: &mut Obs, fd: i32) -> Option<[Line; 2]> {
    let text = match std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) {
        Ok(t) => t,
        Err(e) => {
            obs.fail(format!("read fdinfo: {e}"));
            return None;
        }
    };
    let mut out: [Line; 2] = Default::default();
    for (i, slot) in out.iter_mut().enumerate() {
        let prefix = format!("vq{i}: ");
        let Some(line) = text.lines().find(|l| l.starts_with(&prefix)) else {
            obs.fail(format!("fdinfo has no vq{i} line:\n{text}"));
            return None;
        };
        for kv in line[prefix.len()..].split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                slot.insert(k.to_string(), v.to_string());
            }
        }
    }
    Some(out)
}

/// A counter of a ring's line (0 if missing, which `check_keys` catches).
fn num(l: &Line, key: &str) -> u64 {
    l.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// `drops=reason:n,...` as a map.
fn drops(l: &Line) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    if let Some(d) = l.get("drops") {
        for part in d.split(',') {
            if let Some((k, v)) = part.split_once(':') {
                m.insert(k.to_string(), v.parse().unwrap_or(0));
            }
        }
    }
    m
}

const KEYS: [&str; 8] = [
    "packets",
    "bytes",
    "kicks",
    "calls",
    "rounds",
    "busypoll_hits",
    "drops",
    "last_error",
];

fn check_keys(obs: &mut Obs, l: &Line, what: &str) {
    for k in KEYS {
        obs.check(l.contains_key(k), format!("{what}: no {k}="));
    }
}

/// A counter of the tap in sysfs.
fn tap_stat(name: &str, what: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/statistics/{what}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX)
}

/// Ours only; the C run is marked (C has no statistics).
fn ours_only(obs: &mut Obs, ctx: &Ctx) -> bool {
    if ctx.imp() == Impl::C {
        obs.c_lacks("per-queue statistics in fdinfo (ours only)");
        return false;
    }
    true
}

/// Frames sent and received: the counters move by what moved.
fn counts(obs: &mut Obs, ctx: &Ctx) {
    if !ours_only(obs, ctx) {
        return;
    }
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let fd = n.dev.raw();
    let Some(before) = fdinfo(obs, fd) else {
        return;
    };
    check_keys(obs, &before[RX], "vq0");
    check_keys(obs, &before[TX], "vq1");
    obs.check(
        before[TX].get("last_error").map(String::as_str) == Some("-"),
        format!(
            "fresh device: vq1 last_error {:?}",
            before[TX].get("last_error")
        ),
    );
    let tap = n.tap.name.clone();
    let (tap_rx_p, tap_rx_b) = (tap_stat(&tap, "rx_packets"), tap_stat(&tap, "rx_bytes"));
    let (tap_tx_p, tap_tx_b) = (tap_stat(&tap, "tx_packets"), tap_stat(&tap, "tx_bytes"));

    // TX: frames of several sizes, a notification each (the test counts
    // the kicks it makes).
    let sizes = [60usize, 64, 100, 1514, 300, 9000, 77, 1000];
    let mut tx_bytes = 0u64;
    let mut kicks = 0u64;
    let mut sent = 0u64;
    for (i, &s) in sizes.iter().enumerate() {
        let f = frame(s, UNICAST, 0x51, i as u32, None);
        let mut all = n.zero_hdr();
        all.extend_from_slice(&f);
        let bufs = n.place(&all, 0);
        n.tx.add(&mut n.mem, &bufs, false, false);
        if n.tx.notify(&n.mem) {
            kicks += 1;
        }
        let used = n.tx.wait_used(&n.mem, 1, 5000);
        obs.check(used.len() == 1, format!("tx frame {i} used"));
        match n.tap.capture(3000) {
            Some(g) if g == f => {
                sent += 1;
                tx_bytes += f.len() as u64;
            }
            _ => obs.fail(format!("tx frame {i} did not reach the tap intact")),
        }
    }
    // RX: buffers first, then frames.
    let rx_sizes = [60usize, 1514, 128, 4000, 64];
    for _ in 0..rx_sizes.len() {
        let b = n.rx_buf(8192);
        n.rx.add(&mut n.mem, &[b], true, false);
    }
    if n.rx.notify(&n.mem) {
        kicks += 1;
    }
    let mut rx_bytes = 0u64;
    for (i, &s) in rx_sizes.iter().enumerate() {
        let f = frame(s, UNICAST, 0x52, i as u32, None);
        obs.check(n.tap.inject(&f).is_ok(), format!("inject {i}"));
        rx_bytes += f.len() as u64;
    }
    let mut used = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while used.len() < rx_sizes.len() && Instant::now() < deadline {
        used.extend(n.rx.wait_used(&n.mem, 1, 100));
    }
    obs.check(
        used.len() == rx_sizes.len(),
        format!("{} of {} rx frames used", used.len(), rx_sizes.len()),
    );
    sleep_ms(50);
    let Some(after) = fdinfo(obs, fd) else {
        return;
    };
    let d = |l: usize, k: &str| num(&after[l], k).wrapping_sub(num(&before[l], k));
    let tap_rx = (
        tap_stat(&tap, "rx_packets").wrapping_sub(tap_rx_p),
        tap_stat(&tap, "rx_bytes").wrapping_sub(tap_rx_b),
    );
    let tap_tx = (
        tap_stat(&tap, "tx_packets").wrapping_sub(tap_tx_p),
        tap_stat(&tap, "tx_bytes").wrapping_sub(tap_tx_b),
    );
    obs.note(format!(
        "fdinfo after: vq0 {:?} vq1 {:?}; tap rx {tap_rx:?} tx {tap_tx:?}",
        after[RX], after[TX]
    ));
    // TX: the frames the tap captured, their bytes; the tap received them.
    obs.check(
        d(TX, "packets") == sent,
        format!("vq1 packets +{} for {sent} frames sent", d(TX, "packets")),
    );
    obs.check(
        d(TX, "bytes") == tx_bytes,
        format!("vq1 bytes +{} for {tx_bytes} bytes sent", d(TX, "bytes")),
    );
    obs.check(
        tap_rx == (sent, tx_bytes),
        format!("tap rx {tap_rx:?}, want ({sent}, {tx_bytes})"),
    );
    // RX: every frame the guest got is counted, and what the tap sent out
    // (the frames injected, and any the host stack sent meanwhile).
    obs.check(
        d(RX, "packets") == used.len() as u64,
        format!("vq0 packets +{} for {} used", d(RX, "packets"), used.len()),
    );
    obs.check(
        (d(RX, "packets"), d(RX, "bytes")) == tap_tx,
        format!(
            "vq0 +({}, {}) against the tap's tx {tap_tx:?}",
            d(RX, "packets"),
            d(RX, "bytes")
        ),
    );
    obs.check(
        d(RX, "bytes") >= rx_bytes,
        format!(
            "vq0 bytes +{} for {rx_bytes} bytes injected",
            d(RX, "bytes")
        ),
    );
    // Every kick the test made reached the device.
    let k = d(RX, "kicks") + d(TX, "kicks");
    obs.check(
        k == kicks,
        format!("kicks +{k}, the test kicked {kicks} times"),
    );
    for (q, name) in [(RX, "vq0"), (TX, "vq1")] {
        obs.check(d(q, "rounds") >= 1, format!("{name}: no round counted"));
        obs.check(
            d(q, "calls") >= 1 && d(q, "calls") <= d(q, "packets"),
            format!(
                "{name}: calls +{} for +{} packets",
                d(q, "calls"),
                d(q, "packets")
            ),
        );
        obs.check(
            after[q].get("drops").map(String::as_str) == Some("-"),
            format!("{name}: drops {:?}", after[q].get("drops")),
        );
    }
}

/// Posts `head` raw on TX, kicks, and waits for the fdinfo to show an
/// error on vq1; checks its reason is `want` and that it was counted.
fn expect_tx_error(obs: &mut Obs, n: &mut Net, head: u16, want: &str) {
    n.tx.raw_push(&n.mem, head);
    n.tx.publish(&n.mem);
    n.tx.kick_now();
    let fd = n.dev.raw();
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let Some(l) = fdinfo(obs, fd) else { return };
        if l[TX].get("last_error").map(String::as_str) != Some("-") || Instant::now() > deadline {
            break l;
        }
        sleep_ms(20);
    };
    let last = line[TX].get("last_error").cloned().unwrap_or_default();
    obs.note(format!("vq1 after the attack: {:?}", line[TX]));
    let Some((reason, when)) = last.split_once('@') else {
        obs.fail(format!("vq1 last_error {last:?}, want {want}@<seconds>"));
        return;
    };
    obs.check(
        reason == want,
        format!("vq1 last_error {reason}, want {want}"),
    );
    // Seconds since boot, at most the uptime now.
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let t: f64 = when.parse().unwrap_or(-1.0);
    obs.check(
        t > 0.0 && t <= uptime + 1.0,
        format!("vq1 last_error time {when}, uptime {uptime}"),
    );
    let dr = drops(&line[TX]);
    obs.check(
        dr.get(want).copied().unwrap_or(0) >= 1,
        format!("vq1 drops {:?} lack {want}", line[TX].get("drops")),
    );
    obs.check(
        line[RX].get("last_error").map(String::as_str) == Some("-"),
        format!("vq0 last_error {:?}", line[RX].get("last_error")),
    );
}

/// Dynamic debug's control file, where the kernel has it (Debian's
/// does; the 6.12 test kernel is built without `CONFIG_DYNAMIC_DEBUG`).
const DYNDBG: &str = "/proc/dynamic_debug/control";

/// Turns the module's `pr_debug` lines on or off; whether it could.
fn dyndbg(on: bool) -> bool {
    let cmd = format!("module vhost_net_rs {}p", if on { '+' } else { '-' });
    std::fs::write(DYNDBG, cmd).is_ok()
}

/// A TX chain whose two descriptors point at each other: `desc_loop`;
/// with dynamic debug on, the log says so in C's words.
fn desc_loop(obs: &mut Obs, ctx: &Ctx) {
    if !ours_only(obs, ctx) {
        return;
    }
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let logged = crate::sys::path_exists(DYNDBG) && dyndbg(true);
    let kmsg = crate::sys::kmsg_open_at_end().ok();
    let mut all = n.zero_hdr();
    all.extend(frame(100, UNICAST, 0x53, 1, None));
    let p = n.place(&all, 0)[0];
    n.tx.raw_reserve(RAW);
    n.tx.raw_reserve(RAW + 1);
    n.tx.raw_desc(&n.mem, RAW, p.gpa, p.len, NEXT, RAW + 1);
    n.tx.raw_desc(&n.mem, RAW + 1, p.gpa, p.len, NEXT, RAW);
    expect_tx_error(obs, &mut n, RAW, "desc_loop");
    if !logged {
        obs.note("no dynamic debug in this kernel: the log is not checked");
        return;
    }
    dyndbg(false);
    let lines = kmsg.map(|k| crate::sys::kmsg_drain(&k)).unwrap_or_default();
    let hit = lines
        .iter()
        .find(|l| l.contains("vhost_net_rs: vq1: Loop detected"));
    obs.check(
        hit.is_some_and(|l| l.contains("[desc_loop]")),
        format!("no dynamic-debug line for the loop; kmsg: {lines:?}"),
    );
}

/// A TX descriptor whose buffer lies beyond guest memory: `desc_xlate`
/// (C's "Translation failure %d descriptor idx %d").
fn desc_addr(obs: &mut Obs, ctx: &Ctx) {
    if !ours_only(obs, ctx) {
        return;
    }
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    n.tx.raw_reserve(RAW);
    let beyond = GPA_BASE + MEM_SIZE as u64 + 0x10_0000;
    n.tx.raw_desc(&n.mem, RAW, beyond, 200, 0, 0);
    expect_tx_error(obs, &mut n, RAW, "desc_xlate");
}
