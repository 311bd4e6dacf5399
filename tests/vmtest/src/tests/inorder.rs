//! VIRTIO_F_IN_ORDER (issue 24): 7.3's C vhost_net offers it, 6.12's does
//! not; ours offers it with the `in_order` module parameter. The tests are
//! differential where C offers the bit; where it does not, the C run says
//! so (`Obs::c_lacks`) and ours runs alone, checked by the test's own
//! expectations. Ours is reloaded with `in_order=1` for them.
//!
//! Observations: used ids and lengths as an in-order driver reads them
//! (src/driver.rs `take_used_in_order`), the used elements read against
//! the chains used (batching), frames intact, ring indices across the u16
//! wrap.

use super::hostile_iotlb::map_iova;
use super::ioctl_util::Dev;
use crate::driver::{bit, eventfd_settle, frame, hash, Buf, Cfg, Net, Used, Vq, GPA_BASE, UNICAST};
use crate::harness::{Ctx, DefaultParams, Kind, Obs, Test};
use crate::modules::Impl;
use crate::sys::{self, fmt_res, ioctl, sleep_ms, Fd};
use crate::uapi;
use std::mem::ManuallyDrop;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 120,
        f,
    };
    vec![
        t("in_order_param_off", param_off),
        t("in_order_tx", tx),
        t("in_order_tx_blocks", tx_blocks),
        t("in_order_rx", rx),
        t("in_order_dirty_log", dirty_log),
        t("in_order_log_past_used_ring", log_past_used_ring),
        t("in_order_interrupts", interrupts),
        t("hostile_in_order_avail_garbage", avail_garbage),
        t("hostile_in_order_reuse_in_flight", reuse_in_flight),
        t(
            "hostile_in_order_rx_bad_chain_mid_packet",
            bad_chain_mid_packet,
        ),
    ]
}

const WAIT: u64 = 5000;
const IN_ORDER: u64 = bit(uapi::VIRTIO_F_IN_ORDER);

/// VHOST_GET_FEATURES of a fresh /dev/vhost-net.
fn get_features(obs: &mut Obs) -> Option<u64> {
    let dev = match sys::open("/dev/vhost-net", libc::O_RDWR) {
        Ok(f) => f,
        Err(e) => {
            obs.fail(format!("open /dev/vhost-net: {e}"));
            return None;
        }
    };
    let mut f = 0u64;
    let r = ioctl(
        dev.raw(),
        uapi::VHOST_GET_FEATURES as u64,
        &mut f as *mut u64 as usize,
    );
    if r.is_err() {
        obs.fail(format!("GET_FEATURES: {}", fmt_res(&r)));
        return None;
    }
    Some(f)
}

/// Loads ours with `in_order=1` (the guard puts the defaults back when the
/// test ends) and says whether the implementation offers IN_ORDER: when C
/// does not, its run is marked `c_lacks` and the test stops there.
fn setup<'a, 'b>(obs: &mut Obs, ctx: &'a Ctx<'b>) -> Option<Option<DefaultParams<'a, 'b>>> {
    let guard = if ctx.imp() == Impl::Ours && !ctx.paths.self_diff {
        if let Err(e) = ctx.reload("in_order=1") {
            obs.fail(format!("reload in_order=1: {e}"));
            return None;
        }
        Some(DefaultParams(ctx))
    } else {
        None
    };
    let f = get_features(obs)?;
    if f & IN_ORDER != 0 {
        obs.val("offers IN_ORDER", true);
        return Some(guard);
    }
    if ctx.imp() == Impl::C {
        obs.c_lacks("VIRTIO_F_IN_ORDER (VHOST_GET_FEATURES bit 35)");
    } else {
        obs.fail("ours with in_order=1 does not offer VIRTIO_F_IN_ORDER");
    }
    None
}

/// [`setup`], then a device with IN_ORDER and rings of `num` entries
/// (the rest of [`Cfg::default`]).
fn in_order_net<'a, 'b>(
    obs: &mut Obs,
    ctx: &'a Ctx<'b>,
    num: u16,
) -> Option<(Option<DefaultParams<'a, 'b>>, Net)> {
    let guard = setup(obs, ctx)?;
    let cfg = Cfg {
        in_order: true,
        num,
        ..Cfg::default()
    };
    Some((guard, Net::new(obs, "", cfg)?))
}

fn used_str(u: &[Used]) -> String {
    u.iter()
        .map(|e| format!("{}:{}", e.id, e.len))
        .collect::<Vec<_>>()
        .join(",")
}

/// Ours without the parameter neither offers nor accepts the bit (6.12's
/// C behaviour); with it, both. Ours only: C's answer depends on its
/// kernel.
fn param_off(obs: &mut Obs, ctx: &Ctx) {
    if ctx.imp() == Impl::C {
        obs.c_lacks("the in_order parameter (ours only)");
        return;
    }
    if ctx.paths.self_diff {
        return;
    }
    // -1 (the default): as the kernel's C, which offers the bit since 6.17.
    obs.check(ctx.param("in_order") == "-1", "in_order defaults to -1");
    let c_offers = crate::harness::kernel_version() >= (6, 17);
    let try_set = |obs: &mut Obs, what: &str, offered: bool| {
        let Some(f) = get_features(obs) else {
            return;
        };
        obs.check(
            (f & IN_ORDER != 0) == offered,
            format!(
                "{what}: IN_ORDER offered is {}, want {offered}",
                f & IN_ORDER != 0
            ),
        );
        let dev = sys::open("/dev/vhost-net", libc::O_RDWR).expect("open");
        let mut v = IN_ORDER | bit(uapi::VIRTIO_F_VERSION_1);
        let r = ioctl(
            dev.raw(),
            uapi::VHOST_SET_FEATURES as u64,
            &mut v as *mut u64 as usize,
        );
        let want = if offered {
            Ok(0)
        } else {
            Err(sys::Errno(libc::EOPNOTSUPP))
        };
        obs.check(
            r == want,
            format!("{what}: SET_FEATURES IN_ORDER gave {}", fmt_res(&r)),
        );
    };
    try_set(obs, "in_order=-1", c_offers);
    let _restore = DefaultParams(ctx);
    for (p, offered) in [("0", false), ("1", true)] {
        if let Err(e) = ctx.reload(&format!("in_order={p}")) {
            obs.fail(format!("reload in_order={p}: {e}"));
            return;
        }
        obs.check(
            ctx.param("in_order") == p,
            format!("in_order={p} reads back"),
        );
        try_set(obs, &format!("in_order={p}"), offered);
    }
}

/// TX frames laid out three ways, by `k`: one descriptor; header apart
/// and the frame in two (a chain of three, which wraps the table's end
/// now and then); indirect.
fn tx_post(n: &mut Net, f: &[u8], k: usize) {
    let h = n.zero_hdr();
    let mut bufs = n.place(&h, 0);
    match k % 3 {
        0 => {
            let mut all = h;
            all.extend_from_slice(f);
            bufs = n.place(&all, 0);
            n.tx.add(&mut n.mem, &bufs, false, false);
        }
        1 => {
            bufs.extend(n.place(f, f.len().div_ceil(2)));
            n.tx.add(&mut n.mem, &bufs, false, false);
        }
        _ => {
            bufs.extend(n.place(f, 0));
            n.tx.add(&mut n.mem, &bufs, false, true);
        }
    }
}

/// Posts `frames`, one notification, waits for them to be used and
/// checks they reached the tap intact, in order.
fn tx_round(obs: &mut Obs, n: &mut Net, key: &str, frames: &[Vec<u8>], layout: usize) {
    for (i, f) in frames.iter().enumerate() {
        tx_post(n, f, layout + i);
    }
    let elems = n.tx.elems;
    n.tx.notify(&n.mem);
    let used = n.tx.wait_used(&n.mem, frames.len(), WAIT);
    let elems = n.tx.elems - elems;
    obs.val(format!("{key} used"), used_str(&used));
    obs.val(format!("{key} elements"), elems);
    obs.check(
        used.len() == frames.len(),
        format!("{key}: {} of {} TX chains used", used.len(), frames.len()),
    );
    // In order, a batch of chains comes back with fewer elements (C: one
    // per batch).
    obs.check(
        frames.len() < 2 || (elems as usize) < frames.len(),
        format!("{key}: {elems} used elements for {} chains", frames.len()),
    );
    for (i, f) in frames.iter().enumerate() {
        match n.tap.capture(3000) {
            Some(got) => {
                obs.check(got == *f, format!("{key} frame{i}: not intact"));
                obs.val(format!("{key} frame{i}"), hash(&got));
            }
            None => {
                obs.fail(format!("{key} frame{i} did not reach the tap"));
                return;
            }
        }
    }
}

fn tx(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    let cfg = Cfg {
        in_order: true,
        num: 16,
        base: 65530,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let sizes = [60, 64, 1500, 14, 9000, 1514, 100, 60];
    let f: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| frame(s, UNICAST, 1, i as u32 + 1, None))
        .collect();
    tx_round(obs, &mut n, "batch8", &f, 0);
    // Many packets through the 16-entry ring, past the u16 wrap of the
    // indices (base 65530) and around the descriptor table many times.
    for r in 0..30 {
        let f: Vec<Vec<u8>> = (0..3)
            .map(|i| frame(60 + 37 * (r + i), UNICAST, 2, (r * 3 + i) as u32, None))
            .collect();
        tx_round(obs, &mut n, &format!("round{r}"), &f, r);
    }
    sleep_ms(20);
    let idx = n.tx.used_idx(&n.mem);
    obs.val("tx used_idx", idx);
    obs.check(
        idx == 65530u16.wrapping_add(8 + 90),
        format!("tx used_idx {idx}"),
    );
    obs.check(n.tx.stray == 0, format!("{} stray used ids", n.tx.stray));
    obs.val("tx elements", n.tx.elems);
    obs.val("GET_VRING_BASE 1", n.vring_base(1));
}

/// TX batches of 64-byte frames long enough to fill the XDP allocator's
/// block mid-batch, mixed with frames that are copied into the batch at
/// 3 KiB a buffer and frames too big for a page (sent on their own, after
/// the batch). Ours hands a batch to tun early where the next buffer would
/// need a new block (docs: "TX batches reuse their page"); C never does.
/// Where ours did so just before a frame too big for a page, 7.3's C still
/// has buffers batched and publishes their used entries first: the used
/// elements, one per batch in order, must be C's in every round.
fn tx_blocks(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    let cfg = Cfg {
        in_order: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    for r in 0..12u32 {
        let mut sizes = vec![64; 44 + 2 * r as usize];
        sizes.extend([5000, 3000, 3000, 5000, 3000, 64, 5000, 64, 64]);
        let f: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| frame(s, UNICAST, 3, r * 100 + i as u32, None))
            .collect();
        tx_round(obs, &mut n, &format!("round{r}"), &f, r as usize);
    }
    obs.check(n.tx.stray == 0, format!("{} stray used ids", n.tx.stray));
    obs.val("tx elements", n.tx.elems);
}

/// Posts `count` RX buffers of 2048 bytes, every third one indirect and
/// cut in a header piece and two more.
fn rx_post(n: &mut Net, count: usize) {
    for k in 0..count {
        if k % 3 == 2 {
            let bufs = vec![
                n.rx_buf(n.hdr_len),
                n.rx_buf(1000),
                n.rx_buf(1048 - n.hdr_len),
            ];
            n.rx.add(&mut n.mem, &bufs, true, true);
        } else {
            let b = n.rx_buf(2048);
            n.rx.add(&mut n.mem, &[b], true, false);
        }
    }
    n.rx.notify(&n.mem);
}

/// The bytes of a used chain, its first `len` bytes.
fn chain_bytes(n: &Net, u: &Used) -> Vec<u8> {
    Vq::used_bytes(&n.mem, u)
}

/// Injects `frames`, reads what the device used, packet by packet
/// (num_buffers chains each), and checks each frame arrived intact.
fn rx_round(obs: &mut Obs, n: &mut Net, key: &str, frames: &[Vec<u8>]) {
    let elems = n.rx.elems;
    for (i, f) in frames.iter().enumerate() {
        let r = n.tap.inject(f);
        obs.check(r == Ok(f.len() as i64), format!("{key}: inject {i}"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(WAIT);
    let mut pending: Vec<Used> = Vec::new();
    let mut pkts: Vec<Vec<Used>> = Vec::new();
    while pkts.len() < frames.len() && std::time::Instant::now() < deadline {
        pending.extend(n.rx.wait_used(&n.mem, 1, 50));
        while let Some(first) = pending.first() {
            let b = chain_bytes(n, first);
            let nb = if b.len() >= 12 {
                usize::from(u16::from_le_bytes([b[10], b[11]])).max(1)
            } else {
                1
            };
            if pending.len() < nb {
                break;
            }
            pkts.push(pending.drain(..nb).collect());
        }
    }
    let elems = n.rx.elems - elems;
    obs.val(format!("{key} elements"), elems);
    obs.check(
        pkts.len() == frames.len() && pending.is_empty(),
        format!(
            "{key}: {} of {} packets, {} chains left over",
            pkts.len(),
            frames.len(),
            pending.len()
        ),
    );
    // C writes one element per packet (`count += in_order ? 1 : headcount`).
    obs.check(
        elems as usize == pkts.len(),
        format!("{key}: {elems} used elements for {} packets", pkts.len()),
    );
    for (i, (p, f)) in pkts.iter().zip(frames).enumerate() {
        let mut bytes = Vec::new();
        for u in p {
            bytes.extend(chain_bytes(n, u));
        }
        let data = bytes.get(n.hdr_len..).unwrap_or(&[]);
        obs.val(
            format!("{key} pkt{i}"),
            format!("used {} data {} {}", used_str(p), data.len(), hash(data)),
        );
        obs.check(data == &f[..], format!("{key} pkt{i}: not intact"));
    }
}

fn rx(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    let cfg = Cfg {
        in_order: true,
        num: 64,
        base: 65500,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    // Mergeable packets of 1 to 15 buffers, direct and indirect ones.
    rx_post(&mut n, 48);
    let sizes = [60, 1500, 9000, 64, 30000];
    let f: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| frame(s, UNICAST, 3, i as u32 + 1, None))
        .collect();
    rx_round(obs, &mut n, "mrg", &f);
    // Around the ring and past the u16 wrap: 12 rounds of 4 packets.
    for r in 0..12 {
        rx_post(&mut n, 6);
        let f: Vec<Vec<u8>> = (0..4)
            .map(|i| frame(100 + 700 * i, UNICAST, 4, (r * 4 + i) as u32, None))
            .collect();
        rx_round(obs, &mut n, &format!("round{r}"), &f);
    }
    sleep_ms(20);
    let idx = n.rx.used_idx(&n.mem);
    obs.val("rx used_idx", idx);
    obs.check(n.rx.stray == 0, format!("{} stray used ids", n.rx.stray));
    obs.check(
        idx.wrapping_sub(65500) > 36,
        format!("rx used_idx {idx}: the u16 index did not wrap"),
    );
    obs.val("GET_VRING_BASE 0", n.vring_base(0));
}

/// Interrupts (call eventfd signals) with IN_ORDER, without EVENT_IDX
/// and with it: TX takes 10, then 100 chains posted at once (C publishes
/// every 64 chains and at the round's end); RX fills 10, then 100 buffers
/// posted at once for as many frames already waiting in the tap (C
/// publishes past 64 heads and at the round's end). Recorded: the chains
/// used and the signals counted once the eventfd is quiet.
fn interrupts(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    for event_idx in [false, true] {
        let cfg = Cfg {
            in_order: true,
            event_idx,
            num: 128,
            ..Cfg::default()
        };
        let Some(mut n) = Net::new(obs, "", cfg) else {
            return;
        };
        let key = if event_idx {
            "event_idx"
        } else {
            "no event_idx"
        };
        eventfd_settle(&n.tx.call);
        eventfd_settle(&n.rx.call);
        for count in [10usize, 100] {
            let f: Vec<Vec<u8>> = (0..count)
                .map(|i| frame(60 + i, UNICAST, 6, i as u32, None))
                .collect();
            for fr in &f {
                tx_post(&mut n, fr, 0);
            }
            let calls = publish_and_count(&mut n.tx, &n.mem, count);
            record_calls(obs, &format!("{key}: tx {count}"), calls, event_idx, count);
            for fr in &f {
                let r = n.tap.inject(fr);
                obs.check(r == Ok(fr.len() as i64), format!("{key}: inject"));
            }
            sleep_ms(200);
            for _ in 0..count {
                let b = n.rx_buf(2048);
                n.rx.add(&mut n.mem, &[b], true, false);
            }
            let calls = publish_and_count(&mut n.rx, &n.mem, count);
            record_calls(obs, &format!("{key}: rx {count}"), calls, event_idx, count);
        }
    }
}

/// Makes what was added to `q` available (one notification), waits (at
/// most `WAIT`) until `count` chains are used, reading the used index only
/// (`wait_used` would take the call eventfd's signals), then counts the
/// signals once the eventfd is quiet and takes the used elements: "chains
/// used, signals".
fn publish_and_count(q: &mut Vq, mem: &crate::driver::GuestMem, count: usize) -> String {
    let start = q.used_idx(mem);
    q.notify(mem);
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(WAIT);
    while usize::from(q.used_idx(mem).wrapping_sub(start)) < count
        && std::time::Instant::now() < deadline
    {
        sleep_ms(5);
    }
    let calls = eventfd_settle(&q.call);
    let used = q.take_used(mem);
    format!("{} {calls}", used.len())
}

/// Records `calls` ([`publish_and_count`]) under `key` and checks it
/// against what 7.3's C answers (which matters where ours runs alone, on
/// 6.12): every chain used, one signal per publish without EVENT_IDX
/// (two for 100 chains: at 64 and at the end), one with it (the driver
/// asks for a signal at the first element only).
fn record_calls(obs: &mut Obs, key: &str, calls: String, event_idx: bool, count: usize) {
    let want = format!("{count} {}", if !event_idx && count > 64 { 2 } else { 1 });
    obs.check(calls == want, format!("{key}: {calls}, C {want}"));
    obs.val(format!("{key}: chains used, interrupts"), calls);
}

/// With VHOST_F_LOG_ALL the used-ring page is logged for in-order
/// elements too, TX and RX.
fn dirty_log(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    let cfg = Cfg {
        in_order: true,
        num: 16,
        base: 65534,
        log_all: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let used_page = |vq: &Vq| format!("{:#x}", (vq.used - crate::driver::GPA_BASE) / 4096);
    let f: Vec<Vec<u8>> = (0..5).map(|i| frame(200, UNICAST, 5, i, None)).collect();
    n.log.as_ref().unwrap().clear();
    tx_round(obs, &mut n, "tx", &f, 0);
    sleep_ms(20);
    let pages = n.log.as_ref().unwrap().pages();
    obs.check(
        pages.contains(&used_page(&n.tx)),
        format!("tx used ring page not logged: {pages:?}"),
    );
    rx_post(&mut n, 6);
    n.log.as_ref().unwrap().clear();
    rx_round(obs, &mut n, "rx", &f);
    sleep_ms(20);
    let pages = n.log.as_ref().unwrap().pages();
    obs.check(
        pages.contains(&used_page(&n.rx)),
        format!("rx used ring page not logged: {pages:?}"),
    );
    // The pages of the buffers written are logged too.
    obs.check(pages.len() >= 2, format!("rx pages logged: {pages:?}"));
}

/// With the dirty log on, a publish of chains that wraps the used ring
/// logs what it wrote. 7.3's C logs `(num - end slot) * 8` bytes from the
/// first slot written (`vhost_add_used_n_in_order`): past the used ring.
/// Behind an IOMMU that range is translated, so C asks for the IOVA just
/// past the used ring (`VHOST_IOTLB_MISS`, write); a guest whose ring ends
/// where its mapping ends takes a DMA remapping fault (guest section i,
/// C's run, once: a live migration logs). Ours logs the 8 bytes of the
/// element it writes and asks for nothing. TX rings of 16 from index 14,
/// mapped but for the bytes after the TX used ring up to its page end;
/// four chains, one publish (slots 14 to 1).
fn log_past_used_ring(obs: &mut Obs, ctx: &Ctx) {
    let Some(_g) = setup(obs, ctx) else {
        return;
    };
    let cfg = Cfg {
        access_platform: true,
        in_order: true,
        log_all: true,
        num: 16,
        base: 14,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let d = ManuallyDrop::new(Dev(Fd(n.dev.raw())));
    d.set_nonblock(true);
    let used = n.tx.used;
    let usz = 4 + 8 * u64::from(n.cfg.num) + 2;
    let base = n.mem.uaddr(GPA_BASE);
    let update = |from: u64, to: u64| map_iova(&d, base, from, to, 3);
    obs.ret(
        "UPDATE to the TX used ring's end",
        update(GPA_BASE, used + usz),
    );
    let end = GPA_BASE + crate::driver::MEM_SIZE as u64;
    obs.ret("UPDATE from the next page on", update(used + 4096, end));
    obs.ret_ok("SET_BACKEND 1", d.backend(1, n.tap.fd.raw()));
    let misses = |d: &Dev| {
        let mut got = Vec::new();
        while let (Ok(_), b) = d.read(72) {
            got.push(miss_at(&b, used));
        }
        got.join(" ")
    };
    obs.val("misses after attach", misses(&d));
    let f: Vec<Vec<u8>> = (0..4).map(|i| frame(120, UNICAST, 0x4f, i, None)).collect();
    tx_round(obs, &mut n, "tx", &f, 0);
    sleep_ms(100);
    let got = misses(&d);
    obs.val("misses after the wrapping publish", &got);
    obs.val("tx used_idx", n.tx.used_idx(&n.mem));
    let past = format!("used+{usz:#x} perm 2");
    match ctx.imp() {
        Impl::Ours => obs.check(got.is_empty(), format!("ours asked for {got}")),
        Impl::C => obs.check(
            got == past,
            format!("C's log past the used ring (upstream, 7.3) not seen: {got:?}"),
        ),
    };
}

/// A miss message read from the device: its IOVA against the used ring
/// `used`, and its permission.
fn miss_at(b: &[u8], used: u64) -> String {
    if b.len() < 34 || b[33] != uapi::VHOST_IOTLB_MISS {
        return format!("other({})", super::ioctl_util::msg_str(b));
    }
    let iova = u64::from_ne_bytes(b[8..16].try_into().unwrap());
    format!("used+{:#x} perm {}", iova.wrapping_sub(used), b[32])
}

/// The guest fills the avail ring with heads that are not its chains'
/// (all 7, a descriptor inside a chain): in order, C does not
/// read the entries (it takes `next_avail_head`), so the chains go in
/// table order, and so do ours.
fn avail_garbage(obs: &mut Obs, ctx: &Ctx) {
    let Some((_g, mut n)) = in_order_net(obs, ctx, 16) else {
        return;
    };
    let f: Vec<Vec<u8>> = (0..4)
        .map(|i| frame(80 + i as usize, UNICAST, 6, i, None))
        .collect();
    for (i, fr) in f.iter().enumerate() {
        // Three descriptors each: heads 0, 3, 6, 9.
        tx_post(&mut n, fr, 1 + 3 * i);
    }
    for k in 0..4u64 {
        n.mem.w16(n.tx.avail + 4 + 2 * k, 7);
    }
    n.tx.notify(&n.mem);
    let used = n.tx.wait_used(&n.mem, 4, WAIT);
    obs.val("used", used_str(&used));
    obs.check(used.len() == 4, format!("{} of 4 chains used", used.len()));
    for (i, fr) in f.iter().enumerate() {
        let got = n.tap.capture(3000);
        obs.val(
            format!("frame{i}"),
            got.as_deref().map(hash).unwrap_or_default(),
        );
        obs.check(
            got.as_ref() == Some(fr),
            format!("frame{i} not sent in table order"),
        );
    }
    obs.val("tx used_idx", n.tx.used_idx(&n.mem));
    obs.check(n.tx.stray == 0, format!("{} stray used ids", n.tx.stray));
}

/// The guest reuses a descriptor still in flight: RX buffer 0 is posted,
/// then rewritten to point elsewhere and its head made available again,
/// although descriptor 2, where an in-order device looks next, holds no
/// buffer. Both take the rewritten descriptor 0 and descriptor 1 for the
/// first two packets, then meet the empty descriptor 2: a ring error, the
/// third packet stays queued, nothing else happens.
fn reuse_in_flight(obs: &mut Obs, ctx: &Ctx) {
    let Some((_g, mut n)) = in_order_net(obs, ctx, 8) else {
        return;
    };
    let a = n.rx_buf(2048);
    let b = n.rx_buf(2048);
    let h0 = n.rx.add(&mut n.mem, &[a], true, false);
    n.rx.add(&mut n.mem, &[b], true, false);
    n.rx.publish(&n.mem);
    // Descriptor 0 again, on a new buffer, before anything was used.
    let c: Buf = n.rx_buf(2048);
    n.rx.raw_desc(
        &n.mem,
        h0,
        c.gpa,
        c.len,
        crate::driver::VRING_DESC_F_WRITE,
        0,
    );
    n.rx.raw_push(&n.mem, h0);
    n.rx.notify(&n.mem);
    let f: Vec<Vec<u8>> = (0..3)
        .map(|i| frame(300 + i as usize, UNICAST, 7, i, None))
        .collect();
    for fr in &f {
        let r = n.tap.inject(fr);
        obs.check(r == Ok(fr.len() as i64), "inject");
    }
    let used = n.rx.wait_used(&n.mem, 3, 1500);
    obs.val("used", used_str(&used));
    obs.val("rx used_idx", n.rx.used_idx(&n.mem));
    obs.check(
        used.len() == 2,
        format!("{} chains used, want 2", used.len()),
    );
    // The first packet went to the rewritten descriptor's buffer.
    let hdr = n.hdr_len;
    let got = n.mem.read(c.gpa + hdr as u64, f[0].len());
    obs.val("buffer c", hash(&got));
    obs.check(got == f[0], "packet 0 not in the rewritten buffer");
    obs.check(
        n.mem.read(a.gpa, 16).iter().all(|&x| x == 0xa5),
        "the old buffer of descriptor 0 was written",
    );
    obs.val("GET_VRING_BASE 0", n.vring_base(0));
}

/// The used ring's first `n` elements, raw (`id:len`), and its index.
fn used_raw(n: &Net, count: u16) -> String {
    let mut v: Vec<String> = (0..u64::from(count))
        .map(|i| {
            let at = n.rx.used + 4 + 8 * i;
            format!("{}:{}", n.mem.r32(at), n.mem.r32(at + 4))
        })
        .collect();
    v.push(format!("idx {}", n.rx.used_idx(&n.mem)));
    v.join(",")
}

/// A mergeable packet's second chain is readable (RX format error) after
/// a good first chain. C gives the first chain back but leaves its
/// in-order position past the bad chain's descriptors (its
/// `vhost_discard_vq_desc` moves `next_avail_head` back by the good
/// chains' descriptors only): the retry starts at descriptor 2, the bad
/// chain's writable tail, and takes the packet there. Ours once restarted
/// at descriptor 0 and met the bad chain on every try.
fn bad_chain_mid_packet(obs: &mut Obs, ctx: &Ctx) {
    let Some((_g, mut n)) = in_order_net(obs, ctx, 16) else {
        return;
    };
    use crate::driver::{VRING_DESC_F_NEXT as NEXT, VRING_DESC_F_WRITE as WRITE};
    let bufs: Vec<Buf> = [1024, 100, 1024, 2048, 2048]
        .iter()
        .map(|&l| n.rx_buf(l))
        .collect();
    // 0: writable; 1 -> 2: readable then writable (the bad chain); 3, 4:
    // writable. Available: heads 0, 1, 3, 4.
    let descs = [(WRITE, 0), (NEXT, 2), (WRITE, 0), (WRITE, 0), (WRITE, 0)];
    for (i, (b, &(flags, next))) in bufs.iter().zip(&descs).enumerate() {
        n.rx.raw_reserve(i as u16);
        n.rx.raw_desc(&n.mem, i as u16, b.gpa, b.len, flags, next);
    }
    for h in [0, 1, 3, 4] {
        n.rx.raw_push(&n.mem, h);
    }
    n.rx.notify(&n.mem);
    let f = [
        frame(1500, UNICAST, 8, 1, None),
        frame(60, UNICAST, 8, 2, None),
    ];
    let r = n.tap.inject(&f[0]);
    obs.check(r == Ok(f[0].len() as i64), "inject 0");
    sleep_ms(300);
    // Not compared: whether a second round (the frame's wake-up racing
    // the first kick's round) retried already depends on timing, for C
    // as for ours.
    obs.note(format!("after the error: {}", used_raw(&n, 2)));
    // The retry: a kick, then one more frame.
    n.rx.kick_now();
    sleep_ms(300);
    let r = n.tap.inject(&f[1]);
    obs.check(r == Ok(f[1].len() as i64), "inject 1");
    // Its round is queued once the frame reaches the tap (at once, or
    // from ksoftirqd on a loaded host): a pause, then wait for the round.
    sleep_ms(300);
    obs.ret("SET_BACKEND 0 again (flush)", n.flush(0));
    obs.val("after the retry", used_raw(&n, 2));
    obs.val("GET_VRING_BASE 0 after the retry", n.vring_base(0));
    for (i, b) in bufs.iter().enumerate() {
        let got = n.mem.read(b.gpa + n.hdr_len as u64, 60);
        obs.val(format!("buffer {i}"), hash(&got));
    }
}
