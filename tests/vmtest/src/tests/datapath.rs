//! Data-path differential tests: a userspace virtio "guest" (src/driver.rs)
//! moves frames through /dev/vhost-net and a tap both ways. Observations:
//! used ids and lengths, num_buffers, the vnet header bytes, frame hashes
//! and whether each frame arrived intact, ring indices, dirty-log pages.

use crate::driver::{
    eventfd_settle, eventfd_take, frame, hash, hex, poll_in, Buf, Cfg, Net, Used, Vq, BROADCAST,
    GPA_BASE, MCAST_V4, MCAST_V6, MEM_SIZE, UNICAST,
};
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::modules::Impl;
use crate::sys::{fmt_res, sleep_ms};
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("dp_tx_integrity", tx_integrity),
        t("dp_rx_integrity", rx_integrity),
        t("dp_tx_layouts", tx_layouts),
        t("dp_rx_nomrg", rx_nomrg),
        t("dp_hdr10_legacy", hdr10_legacy),
        t("dp_mrg_legacy", mrg_legacy),
        t("dp_indirect", indirect),
        t("dp_no_event_idx", no_event_idx),
        t("dp_net_hdr_mrg", net_hdr_mrg),
        t("dp_net_hdr_nomrg", net_hdr_nomrg),
        t("dp_addr_kinds", addr_kinds),
        t("dp_two_devices", two_devices),
        t("dp_rx_no_buffers", rx_no_buffers),
        t("dp_rx_small_buffer", rx_small_buffer),
        t("dp_cross_region", cross_region),
        t("dp_dirty_log", dirty_log),
        t("dp_iotlb_tx_miss", iotlb_tx_miss),
        t("dp_tx_page_reuse", tx_page_reuse),
    ]
}

const SIZES: [usize; 7] = [14, 60, 64, 1500, 1514, 9000, 65535];
/// How long to wait for the device (ms).
const WAIT: u64 = 5000;

/// How a TX frame is laid out in descriptors.
#[derive(Clone, Copy)]
struct TxLayout {
    /// Header in its own descriptor.
    hdr_apart: bool,
    /// Cut the frame (or header+frame) into descriptors of this size (0: one).
    chunk: usize,
    indirect: bool,
}

const TX_DEFAULT: TxLayout = TxLayout {
    hdr_apart: true,
    chunk: 0,
    indirect: false,
};

fn used_str(u: &[Used]) -> String {
    u.iter()
        .map(|e| format!("{}:{}", e.id, e.len))
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends `frames` from the guest (all posted, then one notification) and
/// checks they come out of the tap intact and in order.
fn tx(
    obs: &mut Obs,
    net: &mut Net,
    key: &str,
    frames: &[Vec<u8>],
    l: TxLayout,
    hdr: Option<Vec<u8>>,
) {
    tx_post(net, frames, l, hdr);
    net.tx.notify(&net.mem);
    tx_check(obs, net, key, frames);
}

/// Adds `frames` to the TX ring, not yet published.
fn tx_post(net: &mut Net, frames: &[Vec<u8>], l: TxLayout, hdr: Option<Vec<u8>>) {
    for f in frames {
        let h = hdr.clone().unwrap_or_else(|| net.zero_hdr());
        let bufs = if l.hdr_apart {
            let mut b = net.place(&h, 0);
            b.extend(net.place(f, l.chunk));
            b
        } else {
            let mut all = h;
            all.extend_from_slice(f);
            net.place(&all, l.chunk)
        };
        net.tx.add(&mut net.mem, &bufs, false, l.indirect);
    }
}

/// Waits for the device to use the TX buffers of `frames` and checks they
/// come out of the tap intact and in order.
fn tx_check(obs: &mut Obs, net: &mut Net, key: &str, frames: &[Vec<u8>]) {
    let used = net.tx.wait_used(&net.mem, frames.len(), WAIT);
    obs.val(format!("{key} used"), used_str(&used));
    obs.check(
        used.len() == frames.len(),
        format!("{key}: {} of {} TX buffers used", used.len(), frames.len()),
    );
    for (i, f) in frames.iter().enumerate() {
        match net.tap.capture(if used.len() == frames.len() {
            3000
        } else {
            300
        }) {
            Some(got) => {
                let ok = got == *f;
                obs.val(
                    format!("{key} frame{i} len{}", f.len()),
                    format!("got {} {} intact={ok}", got.len(), hash(&got)),
                );
                obs.check(
                    ok,
                    format!(
                        "{key} frame{i}: sent {} bytes, got {} different",
                        f.len(),
                        got.len()
                    ),
                );
            }
            None => {
                obs.val(format!("{key} frame{i} len{}", f.len()), "none");
                obs.fail(format!(
                    "{key} frame{i} ({} bytes) did not reach the tap",
                    f.len()
                ));
            }
        }
    }
    let extra = net.tap.capture(50);
    obs.val(
        format!("{key} extra frame"),
        extra.map(|f| f.len().to_string()).unwrap_or("none".into()),
    );
}

/// How RX buffers are made.
#[derive(Clone, Copy)]
struct RxSpec {
    /// Number of buffers (chains) posted.
    count: usize,
    /// Bytes per chain.
    size: usize,
    /// Cut each chain into descriptors of this size (0: one); with `hdr_apart`
    /// the first descriptor is the header.
    chunk: usize,
    hdr_apart: bool,
    indirect: bool,
}

fn post_rx(net: &mut Net, s: RxSpec) {
    for _ in 0..s.count {
        let mut bufs = Vec::new();
        let mut left = s.size;
        if s.hdr_apart {
            bufs.push(net.rx_buf(net.hdr_len));
            left -= net.hdr_len;
        }
        let chunk = if s.chunk == 0 { left } else { s.chunk };
        while left > 0 {
            let n = left.min(chunk);
            bufs.push(net.rx_buf(n));
            left -= n;
        }
        net.rx.add(&mut net.mem, &bufs, true, s.indirect);
    }
    net.rx.notify(&net.mem);
}

/// Takes used RX elements until `n` packets are complete (mergeable:
/// num_buffers elements per packet) or the wait ends.
fn rx_collect(net: &mut Net, n: usize, ms: u64) -> Vec<Vec<Used>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut pending: Vec<Used> = Vec::new();
    let mut pkts: Vec<Vec<Used>> = Vec::new();
    loop {
        pending.extend(net.rx.take_used(&net.mem));
        while !pending.is_empty() {
            let nb = if net.cfg.mrg_rxbuf {
                let b = Vq::used_bytes(&net.mem, &pending[0]);
                if b.len() >= 12 {
                    (u16::from_le_bytes([b[10], b[11]]) as usize).max(1)
                } else {
                    1
                }
            } else {
                1
            };
            if pending.len() < nb {
                break;
            }
            pkts.push(pending.drain(..nb).collect());
        }
        if pkts.len() >= n || std::time::Instant::now() >= deadline {
            break;
        }
        poll_in(net.rx.call.raw(), 5);
        eventfd_take(&net.rx.call);
    }
    if !pending.is_empty() {
        pkts.push(pending);
    }
    pkts
}

/// Records one received packet against the frame expected.
fn rx_check(obs: &mut Obs, net: &Net, key: &str, pkt: &[Used], want: Option<&Vec<u8>>) {
    let mut bytes = Vec::new();
    for u in pkt {
        bytes.extend(Vq::used_bytes(&net.mem, u));
    }
    let h = net.hdr_len.min(bytes.len());
    let (hdr, data) = bytes.split_at(h);
    let ok = want.map(|w| data == &w[..]).unwrap_or(false);
    obs.val(
        key.to_string(),
        format!(
            "used {} hdr {} data {} {} intact={ok}",
            used_str(pkt),
            hex(hdr),
            data.len(),
            hash(data)
        ),
    );
    match want {
        Some(w) => {
            obs.check(
                ok,
                format!(
                    "{key}: injected {} bytes, got {} different",
                    w.len(),
                    data.len()
                ),
            );
        }
        None => obs.fail(format!(
            "{key}: a packet nobody sent ({} bytes)",
            data.len()
        )),
    }
}

/// Injects `frames` out of the tap and checks the guest receives each in
/// order. Buffers must have been posted.
fn rx(obs: &mut Obs, net: &mut Net, key: &str, frames: &[Vec<u8>]) {
    for (i, f) in frames.iter().enumerate() {
        let r = net.tap.inject(f);
        if r != Ok(f.len() as i64) {
            obs.fail(format!(
                "{key}: inject frame{i} ({} bytes): {}",
                f.len(),
                fmt_res(&r)
            ));
        }
    }
    let pkts = rx_collect(net, frames.len(), WAIT);
    obs.check(
        pkts.len() == frames.len(),
        format!("{key}: received {} of {} frames", pkts.len(), frames.len()),
    );
    for (i, p) in pkts.iter().enumerate() {
        let want = frames.get(i);
        let k = format!("{key} pkt{i} len{}", want.map(|w| w.len()).unwrap_or(0));
        rx_check(obs, net, &k, p, want);
    }
}

/// Ring state once the device is idle.
fn finish(obs: &mut Obs, net: &Net, p: &str) {
    sleep_ms(20);
    obs.val(format!("{p}rx used_idx"), net.rx.used_idx(&net.mem));
    obs.val(format!("{p}tx used_idx"), net.tx.used_idx(&net.mem));
    obs.val(
        format!("{p}tx used flags"),
        format!("{:#x}", net.tx.used_flags(&net.mem)),
    );
    if net.cfg.event_idx {
        obs.val(format!("{p}tx avail_event"), net.tx.avail_event(&net.mem));
    }
    obs.val(format!("{p}GET_VRING_BASE 0"), net.vring_base(0));
    obs.val(format!("{p}GET_VRING_BASE 1"), net.vring_base(1));
}

fn frames(sizes: &[usize], tag: u8) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| frame(s, UNICAST, tag, i as u32 + 1, None))
        .collect()
}

const MRG_BUFS: RxSpec = RxSpec {
    count: 64,
    size: 2048,
    chunk: 0,
    hdr_apart: false,
    indirect: false,
};

/// Non-mergeable "big" buffers: header apart, then 4 KiB pieces covering a
/// 65535-byte frame.
fn big_bufs(net: &Net, count: usize, indirect: bool) -> RxSpec {
    RxSpec {
        count,
        size: net.hdr_len + 65536,
        chunk: 4096,
        hdr_apart: true,
        indirect,
    }
}

fn tx_integrity(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let f = frames(&SIZES, 1);
    tx(obs, &mut n, "tx", &f, TX_DEFAULT, None);
    finish(obs, &n, "");
}

fn rx_integrity(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    post_rx(&mut n, MRG_BUFS);
    let f = frames(&SIZES, 1);
    rx(obs, &mut n, "rx", &f);
    finish(obs, &n, "");
}

fn tx_layouts(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let one = TxLayout {
        hdr_apart: false,
        chunk: 0,
        indirect: false,
    };
    tx(obs, &mut n, "single", &frames(&[60, 1514], 1), one, None);
    let small = TxLayout {
        hdr_apart: false,
        chunk: 7,
        indirect: false,
    };
    tx(obs, &mut n, "chunks7", &frames(&[64, 300], 1), small, None);
    let bytes1 = TxLayout {
        hdr_apart: true,
        chunk: 1,
        indirect: true,
    };
    tx(
        obs,
        &mut n,
        "indirect bytes",
        &frames(&[100], 1),
        bytes1,
        None,
    );
    let pages = TxLayout {
        hdr_apart: true,
        chunk: 4096,
        indirect: true,
    };
    tx(
        obs,
        &mut n,
        "indirect pages",
        &frames(&[9000, 65535], 1),
        pages,
        None,
    );
    // a header split across two descriptors
    let split_hdr = TxLayout {
        hdr_apart: false,
        chunk: 5,
        indirect: false,
    };
    tx(
        obs,
        &mut n,
        "split header",
        &frames(&[20], 1),
        split_hdr,
        None,
    );
    finish(obs, &n, "");
}

fn rx_nomrg(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let spec = big_bufs(&n, 8, false);
    post_rx(&mut n, spec);
    rx(obs, &mut n, "rx", &frames(&SIZES, 1));
    tx(
        obs,
        &mut n,
        "tx",
        &frames(&[60, 1514, 65535], 2),
        TX_DEFAULT,
        None,
    );
    finish(obs, &n, "");
}

fn hdr10_legacy(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        version_1: false,
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    obs.val("hdr_len", n.hdr_len);
    let spec = big_bufs(&n, 8, false);
    post_rx(&mut n, spec);
    rx(obs, &mut n, "rx", &frames(&SIZES, 1));
    tx(obs, &mut n, "tx", &frames(&SIZES, 2), TX_DEFAULT, None);
    finish(obs, &n, "");
}

fn mrg_legacy(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        version_1: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    post_rx(&mut n, MRG_BUFS);
    rx(obs, &mut n, "rx", &frames(&SIZES, 1));
    tx(obs, &mut n, "tx", &frames(&[60, 1514], 2), TX_DEFAULT, None);
    finish(obs, &n, "");
}

fn indirect(obs: &mut Obs, _: &Ctx) {
    // mergeable buffers, each an indirect table of header + 2 pieces
    let Some(mut n) = Net::new(obs, "mrg ", Cfg::default()) else {
        return;
    };
    post_rx(
        &mut n,
        RxSpec {
            count: 64,
            size: 1536 + 12,
            chunk: 768,
            hdr_apart: true,
            indirect: true,
        },
    );
    rx(obs, &mut n, "mrg rx", &frames(&SIZES, 1));
    let l = TxLayout {
        hdr_apart: true,
        chunk: 512,
        indirect: true,
    };
    tx(obs, &mut n, "tx", &frames(&SIZES, 2), l, None);
    finish(obs, &n, "mrg ");
    drop(n);
    // non-mergeable big buffers through indirect tables
    let cfg = Cfg {
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "big ", cfg) else {
        return;
    };
    let spec = big_bufs(&n, 8, true);
    post_rx(&mut n, spec);
    rx(obs, &mut n, "big rx", &frames(&SIZES, 3));
    finish(obs, &n, "big ");
}

fn no_event_idx(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        event_idx: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    // several rounds, each waiting for the device, so the notification
    // suppression flag is exercised both ways
    for round in 0..3 {
        tx(
            obs,
            &mut n,
            &format!("tx{round}"),
            &frames(&[60, 1514], round as u8),
            TX_DEFAULT,
            None,
        );
        post_rx(
            &mut n,
            RxSpec {
                count: 2,
                ..MRG_BUFS
            },
        );
        rx(
            obs,
            &mut n,
            &format!("rx{round}"),
            &frames(&[64, 1500], round as u8),
        );
    }
    finish(obs, &n, "");
}

fn net_hdr_common(obs: &mut Obs, mrg: bool) {
    let cfg = Cfg {
        net_hdr: true,
        mrg_rxbuf: mrg,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    if mrg {
        post_rx(&mut n, MRG_BUFS);
    } else {
        let spec = big_bufs(&n, 8, false);
        post_rx(&mut n, spec);
    }
    rx(obs, &mut n, "rx", &frames(&SIZES, 1));
    tx(obs, &mut n, "tx", &frames(&SIZES, 2), TX_DEFAULT, None);
    // vhost strips the header without looking at it
    let mut junk = n.zero_hdr();
    junk.iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = 0x11 * (i as u8 + 1));
    tx(
        obs,
        &mut n,
        "tx junk hdr",
        &frames(&[60], 3),
        TX_DEFAULT,
        Some(junk),
    );
    finish(obs, &n, "");
}

fn net_hdr_mrg(obs: &mut Obs, _: &Ctx) {
    net_hdr_common(obs, true)
}

fn net_hdr_nomrg(obs: &mut Obs, _: &Ctx) {
    net_hdr_common(obs, false)
}

fn addr_kinds(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let f = vec![
        frame(60, BROADCAST, 1, 1, None),
        frame(342, BROADCAST, 1, 2, None),
        frame(64, MCAST_V4, 1, 3, None),
        frame(1500, MCAST_V6, 1, 4, None),
        frame(64, UNICAST, 1, 5, Some(0x0064)),
        frame(1518, UNICAST, 1, 6, Some(0xe00a)),
        frame(200, BROADCAST, 1, 7, Some(0x0fff)),
    ];
    tx(obs, &mut n, "tx", &f, TX_DEFAULT, None);
    post_rx(&mut n, MRG_BUFS);
    rx(obs, &mut n, "rx", &f);
    finish(obs, &n, "");
}

fn two_devices(obs: &mut Obs, _: &Ctx) {
    let Some(mut a) = Net::new(obs, "a ", Cfg::default()) else {
        return;
    };
    let cfg_b = Cfg {
        mrg_rxbuf: false,
        event_idx: false,
        ..Cfg::default()
    };
    let Some(mut b) = Net::new(obs, "b ", cfg_b) else {
        return;
    };
    post_rx(&mut a, MRG_BUFS);
    let spec = big_bufs(&b, 4, false);
    post_rx(&mut b, spec);
    let fa = frames(&[60, 1514, 9000], 0xa);
    let fb = frames(&[64, 1500, 9000], 0xb);
    // interleave: both devices busy at once
    for (x, y) in fa.iter().zip(&fb) {
        a.tap.inject(x).ok();
        b.tap.inject(y).ok();
    }
    for (net, key, fr) in [(&mut a, "a rx", &fa), (&mut b, "b rx", &fb)] {
        let pkts = rx_collect(net, fr.len(), WAIT);
        obs.check(
            pkts.len() == fr.len(),
            format!("{key}: {} of {} frames", pkts.len(), fr.len()),
        );
        for (i, p) in pkts.iter().enumerate() {
            let k = format!("{key} pkt{i}");
            rx_check(obs, net, &k, p, fr.get(i));
        }
    }
    for (x, y) in fa.iter().zip(&fb) {
        let bx = a.place(&[a.zero_hdr(), x.clone()].concat(), 0);
        a.tx.add(&mut a.mem, &bx, false, false);
        let by = b.place(&[b.zero_hdr(), y.clone()].concat(), 0);
        b.tx.add(&mut b.mem, &by, false, false);
    }
    a.tx.notify(&a.mem);
    b.tx.notify(&b.mem);
    for (net, key, fr) in [(&mut a, "a tx", &fa), (&mut b, "b tx", &fb)] {
        let used = net.tx.wait_used(&net.mem, fr.len(), WAIT);
        obs.val(format!("{key} used"), used_str(&used));
        for (i, f) in fr.iter().enumerate() {
            let got = net.tap.capture(3000);
            let ok = got.as_ref() == Some(f);
            obs.val(format!("{key} frame{i}"), format!("intact={ok}"));
            obs.check(
                ok,
                format!(
                    "{key} frame{i}: wrong or missing ({:?} bytes)",
                    got.map(|g| g.len())
                ),
            );
        }
        obs.val(format!("{key} extra"), net.tap.capture(50).is_some());
    }
    finish(obs, &a, "a ");
    finish(obs, &b, "b ");
}

/// RX with no buffers: frames wait in the tap's queue and arrive once
/// buffers are added.
fn rx_no_buffers(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let f = frames(&[60, 100, 1500, 64, 9000, 70], 1);
    for x in &f {
        let r = n.tap.inject(x);
        obs.ret(format!("inject {}", x.len()), r);
    }
    sleep_ms(200);
    obs.val("used before buffers", n.rx.used_idx(&n.mem));
    obs.val("tap tx_dropped before", n.tap.stat("tx_dropped"));
    // two single buffers: two frames (the 9000-byte one needs 5)
    post_rx(
        &mut n,
        RxSpec {
            count: 2,
            ..MRG_BUFS
        },
    );
    let p1 = rx_collect(&mut n, 2, WAIT);
    sleep_ms(100);
    let more = n.rx.take_used(&n.mem);
    obs.val(
        "after 2 buffers",
        format!("{} packets, then {} more used", p1.len(), more.len()),
    );
    for (i, p) in p1.iter().enumerate() {
        rx_check(obs, &n, &format!("first pkt{i}"), p, f.get(i));
    }
    post_rx(
        &mut n,
        RxSpec {
            count: 16,
            ..MRG_BUFS
        },
    );
    let p2 = rx_collect(&mut n, 4, WAIT);
    obs.val("after 16 more", format!("{} packets", p2.len()));
    for (i, p) in p2.iter().enumerate() {
        rx_check(obs, &n, &format!("then pkt{i}"), p, f.get(i + 2));
    }
    obs.val("tap tx_dropped after", n.tap.stat("tx_dropped"));
    // the ring still has buffers: a new frame goes straight in
    let late = frame(333, UNICAST, 1, 99, None);
    rx(obs, &mut n, "late", std::slice::from_ref(&late));
    finish(obs, &n, "");
}

/// Non-mergeable RX with a buffer too small for the frame: vhost discards
/// the frame and keeps the buffer for the next one.
fn rx_small_buffer(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    post_rx(
        &mut n,
        RxSpec {
            count: 1,
            size: 12 + 200,
            chunk: 0,
            hdr_apart: true,
            indirect: false,
        },
    );
    let big = frame(1500, UNICAST, 1, 1, None);
    let small = frame(150, UNICAST, 1, 2, None);
    obs.ret("inject 1500", n.tap.inject(&big));
    sleep_ms(200);
    let u = n.rx.take_used(&n.mem);
    obs.val("used after 1500", used_str(&u));
    obs.val("tap tx_dropped", n.tap.stat("tx_dropped"));
    rx(obs, &mut n, "small", std::slice::from_ref(&small));
    // exactly the header + frame size
    post_rx(
        &mut n,
        RxSpec {
            count: 1,
            size: 12 + 1500,
            chunk: 0,
            hdr_apart: false,
            indirect: false,
        },
    );
    rx(obs, &mut n, "exact", std::slice::from_ref(&big));
    // one byte short
    post_rx(
        &mut n,
        RxSpec {
            count: 1,
            size: 12 + 1499,
            chunk: 0,
            hdr_apart: false,
            indirect: false,
        },
    );
    obs.ret("inject 1500 again", n.tap.inject(&big));
    sleep_ms(200);
    obs.val("used after short", used_str(&n.rx.take_used(&n.mem)));
    finish(obs, &n, "");
}

/// Two memory regions; buffers that cross the boundary both ways.
fn cross_region(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        two_regions: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let half = GPA_BASE + (MEM_SIZE / 2) as u64;
    obs.val(
        "regions",
        n.mem
            .regions()
            .iter()
            .map(|r| format!("{:#x}+{:#x}", r.guest_phys_addr, r.memory_size))
            .collect::<Vec<_>>()
            .join(" "),
    );
    // TX, one frame at a time (both use the boundary): header + frame in
    // one descriptor that crosses it, then a frame whose header crosses it
    let f0 = frame(1514, UNICAST, 1, 1, None);
    let f1 = frame(9000, UNICAST, 1, 2, None);
    for (i, (f, g)) in [(&f0, half - 700), (&f1, half - 5)].into_iter().enumerate() {
        let mut all = n.zero_hdr();
        all.extend(f);
        n.mem.write(g, &all);
        let b = Buf {
            gpa: g,
            len: all.len() as u32,
        };
        n.tx.add(&mut n.mem, &[b], false, false);
        n.tx.notify(&n.mem);
        let used = n.tx.wait_used(&n.mem, 1, WAIT);
        obs.val(format!("tx{i} used"), used_str(&used));
        let got = n.tap.capture(3000);
        let ok = got.as_ref() == Some(f);
        obs.val(format!("tx frame{i}"), format!("intact={ok}"));
        obs.check(ok, format!("tx frame{i} across regions: wrong or missing"));
    }
    // RX: a mergeable buffer that crosses the boundary
    let gb = half - 1000;
    n.mem.fill(gb, 4096, 0xa5);
    n.rx.add(&mut n.mem, &[Buf { gpa: gb, len: 4096 }], true, false);
    n.rx.notify(&n.mem);
    let fr = frame(3000, UNICAST, 1, 3, None);
    rx(obs, &mut n, "rx", std::slice::from_ref(&fr));
    obs.val("rx buffer", hash(&n.mem.read(gb, 4096)));
    finish(obs, &n, "");
}

/// Dirty logging: which guest pages RX and the used-ring updates mark, and
/// how often the log eventfd fired (exactly for the set-up and for TX, one
/// round each; for RX, whose frames may take several rounds, whether).
fn dirty_log(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        log_all: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let log_signals = |n: &Net| eventfd_settle(&n.log.as_ref().unwrap().fd);
    let log_fd_of = |n: &Net| log_signals(n) > 0;
    let pages = |n: &Net| n.log.as_ref().unwrap().pages().join(" ");
    obs.val(
        "rings",
        format!(
            "rx used {:#x} tx used {:#x}",
            n.rx.used - GPA_BASE,
            n.tx.used - GPA_BASE
        ),
    );
    // The attach's first rounds (each ring's poll) log and signal too.
    let setup_signals = log_signals(&n);
    obs.val("after setup: pages", pages(&n));
    // Exact counts where one round does the work (C signals once per
    // used-ring update and per packet logged, not per round).
    obs.val("after setup: log signals", setup_signals);
    n.log.as_ref().unwrap().clear();
    // TX: only the used ring is written
    tx(obs, &mut n, "tx", &frames(&[60, 1514], 1), TX_DEFAULT, None);
    sleep_ms(20);
    obs.val("after tx: pages", pages(&n));
    let tx_signals = log_signals(&n);
    obs.val("after tx: log signals", tx_signals);
    n.log.as_ref().unwrap().clear();
    // RX: the buffers written (mergeable, 4 KiB-aligned 4 KiB buffers: one
    // page each, but frames only fill part of some) and the used ring
    n.mem.align(0x1000);
    let mut bufs = Vec::new();
    for _ in 0..8 {
        bufs.push(n.rx_buf(4096));
    }
    obs.val(
        "rx buffers",
        bufs.iter()
            .map(|b| format!("{:#x}", b.gpa - GPA_BASE))
            .collect::<Vec<_>>()
            .join(" "),
    );
    for b in &bufs {
        n.rx.add(&mut n.mem, std::slice::from_ref(b), true, false);
    }
    n.rx.notify(&n.mem);
    rx(obs, &mut n, "rx", &frames(&[60, 9000, 100], 1));
    sleep_ms(20);
    obs.val("after rx: pages", pages(&n));
    obs.val("after rx: log fd", log_fd_of(&n));
    finish(obs, &n, "");
}

/// TX under VIRTIO_F_ACCESS_PLATFORM with an IOTLB that starts empty
/// (IOVA = guest-physical address): the attach misses on the used ring;
/// once that is mapped the attach works, and the frame posted and kicked
/// misses on the descriptor table; mapping the rest of guest memory must
/// make the device (kicked by the update resolving the read miss) send it.
fn iotlb_tx_miss(obs: &mut Obs, _: &Ctx) {
    use super::ioctl_util::{msg_str, msg_v2, Dev};
    let cfg = Cfg {
        access_platform: true,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    // The device fd as the ioctl tests' wrapper, without closing it twice.
    let d = std::mem::ManuallyDrop::new(Dev(crate::sys::Fd(n.dev.raw())));
    d.set_nonblock(true);
    // One memory region: guest memory is contiguous in user space too.
    let base = n.mem.uaddr(GPA_BASE);
    let update = |iova: u64, end: u64| {
        let ua = base + (iova - GPA_BASE);
        let m = msg_v2(0, uapi::VHOST_IOTLB_UPDATE, iova, end - iova, ua, 3);
        d.write(&m)
    };
    let used = n.tx.used;
    obs.ret(
        "SET_BACKEND 1 (used ring unmapped)",
        d.backend(1, n.tap.fd.raw()),
    );
    let (r, b) = d.read(72);
    obs.ret("read miss on attach", r);
    obs.val("miss on attach", msg_str(&b));
    obs.ret("UPDATE tx used ring", update(used, used + 4096));
    obs.ret_ok("SET_BACKEND 1", d.backend(1, n.tap.fd.raw()));
    let f = frames(&[1500], 1);
    tx_post(&mut n, &f, TX_DEFAULT, None);
    obs.val("kicked", n.tx.notify(&n.mem));
    // The attach and the kick each make the worker try the ring: one or
    // two misses, all alike; read them all (a read miss waits for its
    // update).
    obs.val("miss readable", poll_in(n.dev.raw(), WAIT as i32));
    // The same socket again waits for the kicked round (a flush): on
    // 6.12 each round queues a miss, and one read late would outlive
    // the updates below.
    obs.ret_ok("SET_BACKEND 1 again (flush)", d.backend(1, n.tap.fd.raw()));
    let mut misses = Vec::new();
    while let (Ok(_), b) = d.read(72) {
        misses.push(msg_str(&b));
    }
    obs.note(format!("{} misses before the update", misses.len()));
    let first = misses.first().cloned().unwrap_or_else(|| "none".into());
    obs.val("first miss after kick", &first);
    obs.val("misses alike", misses.iter().all(|m| *m == first));
    obs.val("tx used_idx before update", n.tx.used_idx(&n.mem));
    obs.val("frame before update", n.tap.capture(200).is_some());
    // The buffers first, then the rings: the second update resolves the
    // read misses and kicks the ring, which then finds everything mapped.
    obs.ret(
        "UPDATE above tx used ring",
        update(used + 4096, GPA_BASE + MEM_SIZE as u64),
    );
    obs.val("tx used_idx after first update", n.tx.used_idx(&n.mem));
    obs.ret("UPDATE below tx used ring", update(GPA_BASE, used));
    tx_check(obs, &mut n, "tx", &f);
    obs.ret("read after progress", d.read(72).0);
    finish(obs, &n, "");
}

/// Pages the kernel's page allocator handed out so far (`/proc/vmstat`'s
/// `pgalloc_*`, every zone; an order-3 block counts 8), or `None` without
/// those counters (`CONFIG_VM_EVENT_COUNTERS`).
fn pages_allocated() -> Option<u64> {
    let vmstat = std::fs::read_to_string("/proc/vmstat").ok()?;
    let counts: Vec<u64> = vmstat
        .lines()
        .filter(|l| l.starts_with("pgalloc_"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// TX batches into the tap keep reusing one page of the buffer allocator
/// (an improvement: Documentation/differences.rst, "TX batches reuse their
/// page"). 64-byte frames that nobody holds (the capture socket is closed,
/// the tap's stack drops them on the spot): C takes a new 32 KiB block
/// (8 pages) every 64 frames, its batch of 64 holding the old one; ours
/// sends the batch when the block runs out, and carves it again. Both use
/// every buffer; ours must allocate less than a page per 64 frames (C: 8),
/// which C's count, noted, shows this test tells apart. A kernel without
/// /proc/vmstat's allocation counters fails it (both of ours have them).
fn tx_page_reuse(obs: &mut Obs, ctx: &Ctx) {
    const PER_ROUND: usize = 128;
    const ROUNDS: usize = 32;
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let cap = std::mem::replace(&mut n.tap.cap, crate::sys::Fd(-1));
    obs.ret_ok("close capture socket", cap.close());
    let mut pkt = n.zero_hdr();
    pkt.extend_from_slice(&frame(64, UNICAST, 1, 1, None));
    let bufs = n.place(&pkt, 0);
    let round = |n: &mut Net| {
        for _ in 0..PER_ROUND {
            n.tx.add(&mut n.mem, &bufs, false, false);
        }
        n.tx.notify(&n.mem);
        n.tx.wait_used(&n.mem, PER_ROUND, WAIT).len()
    };
    // The first round gives the allocator its first block.
    let first = round(&mut n);
    let before = pages_allocated();
    let used: usize = first + (0..ROUNDS).map(|_| round(&mut n)).sum::<usize>();
    let (Some(before), Some(after)) = (before, pages_allocated()) else {
        obs.fail("no pgalloc_* counters in /proc/vmstat (CONFIG_VM_EVENT_COUNTERS)");
        return;
    };
    let pages = after.saturating_sub(before);
    let frames = PER_ROUND * ROUNDS;
    obs.val("tx used", used);
    obs.check(
        used == PER_ROUND * (ROUNDS + 1),
        format!("{used} of {} TX buffers used", PER_ROUND * (ROUNDS + 1)),
    );
    let msg = format!("{pages} pages allocated while {frames} frames were sent");
    obs.note(msg.clone());
    if ctx.imp() == Impl::Ours {
        obs.check(pages < (frames / 64) as u64, msg);
    }
    finish(obs, &n, "");
}
