//! What the served kernels' C vhost_net answer differently (issue 24,
//! src/vcore/contract.rs): the feature-array ioctls (6.17), the header
//! length with UDP tunnel GSO (6.17), num_buffers under VERSION_1 without
//! MRG_RXBUF (6.14), the empty IOTLB invalidate and the one outstanding
//! IOTLB miss per ring (7.x). Every test records what it sees; C on the
//! running kernel is the oracle (on 6.12 the array ioctls are unknown).

use super::ioctl_util::*;
use crate::driver::{
    eventfd_take, frame, hash, hex, poll_in, Cfg, Net, Tap, Vq, GPA_BASE, TAP_MTU, UNICAST,
};
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::sys::{fmt_res, ioctl, sleep_ms, Res};
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("contract_get_features_array", get_array),
        t("contract_set_features_array", set_array),
        t("contract_features_array_bad_pointers", array_bad_pointers),
        t("contract_tunnel_hdr_len", tunnel_hdr_len),
        t("contract_rx_num_buffers", rx_num_buffers),
        t("contract_iotlb_empty_invalidate", iotlb_empty_invalidate),
        t("contract_iotlb_one_miss_per_ring", iotlb_one_miss),
        t("contract_iotlb_miss_being_read", iotlb_miss_being_read),
        t("contract_iotlb_read_wakes", iotlb_read_wakes),
        t("contract_tap_backpressure", tap_backpressure),
    ]
}

/// Words of the argument buffer the tests hand out (count + 7 words).
const ARG_WORDS: usize = 8;
/// What unwritten words of the buffer hold.
const FILL: u64 = 0xaaaa_aaaa_aaaa_aaaa;

/// A `struct vhost_features_array` of `count` and `words` at the start of
/// a fresh page whose next page is unmapped (a GET with a huge count
/// zeroes up to the fault), the other words `FILL`.
fn array(count: u64, words: &[u64]) -> Map {
    let m = Map::edge();
    m.w64(0, count);
    for i in 0..ARG_WORDS - 1 {
        m.w64(8 + 8 * i, words.get(i).copied().unwrap_or(FILL));
    }
    m
}

/// The words after the count, as hex.
fn words(m: &Map) -> String {
    (0..ARG_WORDS - 1)
        .map(|i| {
            let off = 8 + 8 * i;
            let v = u64::from(m.r32(off)) | u64::from(m.r32(off + 4)) << 32;
            format!("{v:#x}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn get_arr(d: &Dev, m: &Map) -> Res {
    d.io(uapi::VHOST_GET_FEATURES_ARRAY, m.addr() as usize)
}

fn set_arr(d: &Dev, count: u64, w: &[u64]) -> Res {
    let m = array(count, w);
    d.io(uapi::VHOST_SET_FEATURES_ARRAY, m.addr() as usize)
}

fn get_features(d: &Dev) -> u64 {
    let mut f = 0u64;
    let _ = d.io(uapi::VHOST_GET_FEATURES, &mut f as *mut u64 as usize);
    f
}

/// GET_FEATURES_ARRAY with counts 0..=7 and huge ones, without and with an
/// owner: the return, the words written, the trailing zeroing.
fn get_array(obs: &mut Obs, _: &Ctx) {
    let d = Dev::open();
    obs.val("GET_FEATURES", format!("{:#x}", get_features(&d)));
    for owned in [false, true] {
        let p = if owned { "owner: " } else { "" };
        if owned {
            obs.ret_ok("SET_OWNER", d.owner());
        }
        for count in 0..ARG_WORDS as u64 {
            let m = array(count, &[]);
            obs.ret(format!("{p}GET count {count}"), get_arr(&d, &m));
            obs.val(format!("{p}GET count {count} words"), words(&m));
            obs.val(format!("{p}GET count {count} count after"), m.r32(0));
        }
        for count in [1u64 << 32, 1 << 61, u64::MAX] {
            let m = array(count, &[]);
            obs.ret(format!("{p}GET count {count:#x}"), get_arr(&d, &m));
            obs.val(format!("{p}GET count {count:#x} words"), words(&m));
            obs.val(
                format!("{p}GET count {count:#x} last word"),
                format!("{:#x}", m.r32(4092)),
            );
        }
    }
    // Word 0 is what GET_FEATURES says.
    let m = array(1, &[]);
    if get_arr(&d, &m).is_ok() {
        obs.check(
            words(&m).starts_with(&format!("{:#x},", get_features(&d))),
            "GET_FEATURES_ARRAY word 0 != GET_FEATURES",
        );
    }
}

/// SET_FEATURES_ARRAY: counts, unknown bits in each word, words past the
/// kernel's that are (not) zero, and how it and SET_FEATURES interact.
fn set_array(obs: &mut Obs, _: &Ctx) {
    let d = Dev::open();
    let f0 = get_features(&d);
    // What the kernel offers in word 1 (0 where the ioctl is unknown).
    let m = array(2, &[]);
    let w1 = match get_arr(&d, &m) {
        Ok(_) => u64::from(m.r32(16)) | u64::from(m.r32(20)) << 32,
        Err(_) => 0,
    };
    obs.val("offered word 1", format!("{w1:#x}"));
    obs.ret("no owner: SET count 0", set_arr(&d, 0, &[]));
    obs.ret("no owner: SET count 1 all", set_arr(&d, 1, &[f0]));
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret("SET count 0", set_arr(&d, 0, &[]));
    // Count 1: word 1 is taken as 0 (the FILL after it is not read).
    obs.ret("SET count 1 all", set_arr(&d, 1, &[f0]));
    obs.ret("SET count 1 unknown bit 0", set_arr(&d, 1, &[1]));
    obs.ret("SET count 2 all", set_arr(&d, 2, &[f0, w1]));
    obs.ret("SET count 2 word1 0", set_arr(&d, 2, &[f0, 0]));
    for bit in 0..64u32 {
        obs.ret(
            format!("SET word 0 bit {bit}"),
            set_arr(&d, 2, &[1u64 << bit, 0]),
        );
    }
    for bit in 64..128u32 {
        obs.ret(
            format!("SET word 1 bit {bit}"),
            set_arr(&d, 2, &[0, 1u64 << (bit - 64)]),
        );
    }
    obs.ret(
        "SET word 1 GUEST|HOST_UDP_TUNNEL_GSO",
        set_arr(
            &d,
            2,
            &[
                f0,
                (1 << (uapi::VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64))
                    | (1 << (uapi::VIRTIO_NET_F_HOST_UDP_TUNNEL_GSO - 64)),
            ],
        ),
    );
    // Words past the kernel's must be 0; they are read up to count.
    obs.ret("SET count 3 word2 0", set_arr(&d, 3, &[f0, w1, 0]));
    obs.ret("SET count 3 word2 1", set_arr(&d, 3, &[f0, w1, 1]));
    obs.ret(
        "SET count 7 word6 1<<63",
        set_arr(&d, 7, &[f0, w1, 0, 0, 0, 0, 1 << 63]),
    );
    obs.ret("SET count 7 all 0", set_arr(&d, 7, &[0; 7]));
    // An unknown bit in word 0 with a nonzero word 2: which error first.
    obs.ret("SET count 3 bit0 and word2", set_arr(&d, 3, &[1, 0, 1]));
    // Zero words up to a page's end, then nothing mapped.
    let e = Map::edge();
    for i in 0..512 {
        e.w64(8 * i, 0);
    }
    e.w64(0, 1000);
    obs.ret(
        "SET count 1000 to unmapped",
        d.io(uapi::VHOST_SET_FEATURES_ARRAY, e.addr() as usize),
    );
    e.w64(0, 511);
    obs.ret(
        "SET count 511 to page end",
        d.io(uapi::VHOST_SET_FEATURES_ARRAY, e.addr() as usize),
    );
    // SET_FEATURES after the array, and GET_FEATURES after both.
    obs.ret("SET_FEATURES all", d.features(f0));
    obs.val("GET_FEATURES after", format!("{:#x}", get_features(&d)));
    let m = array(3, &[]);
    obs.ret("GET count 3 after", get_arr(&d, &m));
    obs.val("GET count 3 after words", words(&m));
}

/// NULL, unmapped, read-only and page-edge arguments of both array ioctls.
fn array_bad_pointers(obs: &mut Obs, _: &Ctx) {
    let d = Dev::open();
    let un = unmapped();
    for owned in [false, true] {
        let p = if owned { "owner: " } else { "" };
        if owned {
            obs.ret_ok("SET_OWNER", d.owner());
        }
        for (name, req) in [
            ("GET", uapi::VHOST_GET_FEATURES_ARRAY),
            ("SET", uapi::VHOST_SET_FEATURES_ARRAY),
        ] {
            obs.ret(format!("{p}{name} NULL"), d.io(req, 0));
            obs.ret(format!("{p}{name} unmapped"), d.io(req, un));
            // A count of 0 read-only: GET writes nothing, SET reads nothing.
            let ro = Map::ro_with(&0u64.to_ne_bytes());
            obs.ret(format!("{p}{name} count 0 read-only"), d.io(req, ro.at(0)));
            let ro = Map::ro_with(&2u64.to_ne_bytes());
            obs.ret(format!("{p}{name} count 2 read-only"), d.io(req, ro.at(0)));
            // The count in the page's last word, the words unmapped.
            let e = Map::edge();
            for count in [0u64, 1, 3] {
                e.w64(4088, count);
                obs.ret(
                    format!("{p}{name} count {count} words unmapped"),
                    d.io(req, e.at(4088)),
                );
            }
            // The count and two words mapped, the tail not.
            e.w64(4072, 3);
            e.w64(4080, 0);
            e.w64(4088, 0);
            obs.ret(
                format!("{p}{name} count 3 tail unmapped"),
                d.io(req, e.at(4072)),
            );
            obs.val(
                format!("{p}{name} count 3 tail unmapped words"),
                format!("{:#x} {:#x}", e.r32(4080), e.r32(4088)),
            );
        }
    }
}

/// Sets the acked words with SET_FEATURES_ARRAY, recording the result.
fn ack_words(obs: &mut Obs, n: &Net, key: &str, w0: u64, w1: u64) {
    let m = array(2, &[w0, w1]);
    let r = ioctl(
        n.dev.raw(),
        uapi::VHOST_SET_FEATURES_ARRAY as u64,
        m.addr() as usize,
    );
    obs.ret(key.to_string(), r);
}

/// The header vhost adds and strips with VHOST_NET_F_VIRTIO_NET_HDR is
/// 24 bytes once a UDP tunnel GSO bit is acked (where the kernel offers
/// it): RX data starts after it, TX strips it.
fn tunnel_hdr_len(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        net_hdr: true,
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::new(obs, "", cfg) else {
        return;
    };
    let w0 = cfg.features();
    let tnl = 1u64 << (uapi::VIRTIO_NET_F_GUEST_UDP_TUNNEL_GSO - 64);
    ack_words(obs, &n, "SET_FEATURES_ARRAY +GUEST_UDP_TUNNEL_GSO", w0, tnl);
    // RX: one 2 KiB buffer, filled with 0xa5.
    let b = n.rx_buf(2048);
    n.rx.add(&mut n.mem, &[b], true, false);
    n.rx.notify(&n.mem);
    let f = frame(100, UNICAST, 7, 1, None);
    obs.ret("inject", n.tap.inject(&f));
    let used = n.rx.wait_used(&n.mem, 1, 5000);
    obs.val("rx used", used.len());
    if let Some(u) = used.first() {
        let bytes = Vq::used_bytes(&n.mem, u);
        obs.val("rx used len", u.len);
        obs.val("rx first 28 bytes", hex(&bytes[..bytes.len().min(28)]));
        let at = bytes.windows(f.len()).position(|w| w == &f[..]);
        obs.val("rx frame at", format!("{at:?}"));
    }
    // TX: a 24-byte header of 0x5a, then the frame.
    let mut all = vec![0x5au8; 24];
    all.extend_from_slice(&f);
    let bufs = n.place(&all, 0);
    n.tx.add(&mut n.mem, &bufs, false, false);
    n.tx.notify(&n.mem);
    let used = n.tx.wait_used(&n.mem, 1, 5000);
    obs.val("tx used", used.len());
    match n.tap.capture(2000) {
        Some(got) => {
            obs.val("tx out len", got.len());
            obs.val("tx out hash", hash(&got));
        }
        None => obs.val("tx out", "none"),
    }
    // Back to SET_FEATURES: word 1 is cleared, 12 bytes again.
    obs.ret("SET_FEATURES", n_features(&n, w0));
    let b = n.rx_buf(2048);
    n.rx.add(&mut n.mem, &[b], true, false);
    n.rx.notify(&n.mem);
    obs.ret("inject 2", n.tap.inject(&f));
    let used = n.rx.wait_used(&n.mem, 1, 5000);
    if let Some(u) = used.first() {
        let bytes = Vq::used_bytes(&n.mem, u);
        obs.val("rx 2 used len", u.len);
        let at = bytes.windows(f.len()).position(|w| w == &f[..]);
        obs.val("rx 2 frame at", format!("{at:?}"));
    }
}

fn n_features(n: &Net, f: u64) -> Res {
    let mut v = f;
    ioctl(
        n.dev.raw(),
        uapi::VHOST_SET_FEATURES as u64,
        &mut v as *mut u64 as usize,
    )
}

/// num_buffers in the RX header (bytes 10..12, guest buffers filled with
/// 0xa5), by how the header is made and the features acked.
fn rx_num_buffers(obs: &mut Obs, _: &Ctx) {
    let cases = [
        ("v1 nomrg tap hdr", true, false, false),
        ("v1 nomrg vhost hdr", true, false, true),
        ("v1 mrg tap hdr", true, true, false),
        ("v1 mrg vhost hdr", true, true, true),
        ("legacy mrg tap hdr", false, true, false),
        ("legacy nomrg vhost hdr", false, false, true),
    ];
    for (name, version_1, mrg_rxbuf, net_hdr) in cases {
        let cfg = Cfg {
            version_1,
            mrg_rxbuf,
            net_hdr,
            ..Cfg::default()
        };
        let Some(mut n) = Net::new(obs, &format!("{name}: "), cfg) else {
            continue;
        };
        let b = n.rx_buf(4096);
        n.rx.add(&mut n.mem, &[b], true, false);
        n.rx.notify(&n.mem);
        let f = frame(200, UNICAST, 9, 1, None);
        obs.ret(format!("{name}: inject"), n.tap.inject(&f));
        let used = n.rx.wait_used(&n.mem, 1, 5000);
        obs.val(format!("{name}: used"), used.len());
        if let Some(u) = used.first() {
            let bytes = Vq::used_bytes(&n.mem, u);
            obs.val(format!("{name}: used len"), u.len);
            obs.val(
                format!("{name}: hdr"),
                hex(&bytes[..bytes.len().min(n.hdr_len)]),
            );
            if bytes.len() >= 12 {
                obs.val(
                    format!("{name}: num_buffers"),
                    format!("{:#06x}", u16::from_le_bytes([bytes[10], bytes[11]])),
                );
            }
        }
    }
}

/// Writes an IOTLB message to the device, as a result.
fn iotlb_write(n: &Net, t: u8, iova: u64, size: u64, uaddr: u64) -> Res {
    let m = msg_v2(0, t, iova, size, uaddr, 3);
    // SAFETY: `n.dev` is the open device fd; `m` is readable for its length.
    let r = unsafe { libc::write(n.dev.raw(), m.as_ptr().cast(), m.len()) } as i64;
    if r < 0 {
        Err(crate::sys::Errno::last())
    } else {
        Ok(r)
    }
}

/// VHOST_IOTLB_INVALIDATE of size 0: 6.12 deletes `[iova, iova - 1]`
/// (everything when iova is 0), 7.x refuses it. Whether the mapping
/// survived shows in whether the TX ring can then be attached.
fn iotlb_empty_invalidate(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg {
        access_platform: true,
        ..Cfg::default()
    };
    let Some(n) = Net::new(obs, "", cfg) else {
        return;
    };
    let base = n.mem.uaddr(GPA_BASE);
    let size = crate::driver::MEM_SIZE as u64;
    let ua = |iova: u64| base + (iova - GPA_BASE);
    obs.ret(
        "UPDATE all",
        iotlb_write(&n, uapi::VHOST_IOTLB_UPDATE, GPA_BASE, size, ua(GPA_BASE)),
    );
    obs.ret(
        "INVALIDATE iova 0 size 0",
        iotlb_write(&n, uapi::VHOST_IOTLB_INVALIDATE, 0, 0, 0),
    );
    let attach = |n: &Net| {
        let mut b = uapi::VhostVringFile {
            index: 1,
            fd: n.tap.fd.raw(),
        };
        let r = ioctl(
            n.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut b as *mut _ as usize,
        );
        let mut u = uapi::VhostVringFile { index: 1, fd: -1 };
        let _ = ioctl(
            n.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut u as *mut _ as usize,
        );
        fmt_res(&r)
    };
    obs.val("SET_BACKEND 1 after", attach(&n));
    obs.ret(
        "INVALIDATE inside size 0",
        iotlb_write(&n, uapi::VHOST_IOTLB_INVALIDATE, GPA_BASE + 0x1000, 0, 0),
    );
    obs.ret(
        "UPDATE all again",
        iotlb_write(&n, uapi::VHOST_IOTLB_UPDATE, GPA_BASE, size, ua(GPA_BASE)),
    );
    obs.ret(
        "INVALIDATE size 1",
        iotlb_write(&n, uapi::VHOST_IOTLB_INVALIDATE, GPA_BASE, 1, 0),
    );
}

/// A device with an IOTLB, its fd non-blocking (as a `Dev`, which must not
/// close it), whose TX ring was kicked with a frame while its IOTLB maps only
/// the used ring: its miss is queued when this returns.
fn tx_ring_missing(obs: &mut Obs) -> Option<(Net, std::mem::ManuallyDrop<Dev>)> {
    let cfg = Cfg {
        access_platform: true,
        ..Cfg::default()
    };
    let mut n = Net::new(obs, "", cfg)?;
    let d = std::mem::ManuallyDrop::new(Dev(crate::sys::Fd(n.dev.raw())));
    d.set_nonblock(true);
    // The used ring mapped (attaching needs it), the rest not.
    map_used_then_attach(obs, &n, &d, 1);
    let bufs = n.place(&frame(100, UNICAST, 3, 1, None), 0);
    n.tx.add(&mut n.mem, &bufs, false, false);
    obs.val("kicked", n.tx.notify(&n.mem));
    obs.val("miss readable", poll_in(n.dev.raw(), 5000));
    sleep_ms(200);
    Some((n, d))
}

/// Maps ring `index`'s used ring in the IOTLB (one page, read-write) and
/// attaches the tap to the ring.
fn map_used_then_attach(obs: &mut Obs, n: &Net, d: &Dev, index: u32) {
    let used = if index == 0 { n.rx.used } else { n.tx.used };
    let uaddr = n.mem.uaddr(GPA_BASE) + (used - GPA_BASE);
    let m = msg_v2(0, uapi::VHOST_IOTLB_UPDATE, used, 4096, uaddr, 3);
    obs.ret(format!("UPDATE ring {index}'s used ring"), d.write(&m));
    obs.ret_ok(
        format!("SET_BACKEND {index}"),
        d.backend(index, n.tap.fd.raw()),
    );
}

/// Reads (non-blocking) every message queued on `d`: how many.
fn read_all(d: &Dev) -> usize {
    let mut got = 0;
    while let (Ok(_), _) = d.read(72) {
        got += 1;
    }
    got
}

/// Kicks TX three times, 150 ms apart, then reads what they queued and
/// records whether they queued a miss (`key`), noting how many.
fn kicks_queue_misses(obs: &mut Obs, n: &mut Net, d: &Dev, key: &str) {
    for _ in 0..3 {
        n.tx.kick_now();
        sleep_ms(150);
    }
    let again = read_all(d);
    obs.note(format!("{key}: {again} misses after 3 kicks"));
    obs.val(key, again > 0);
}

/// A ring whose miss userspace read but did not resolve misses again on
/// each kick: 6.12 queues each miss, 7.x none while one is outstanding.
fn iotlb_one_miss(obs: &mut Obs, _: &Ctx) {
    let Some((mut n, d)) = tx_ring_missing(obs) else {
        return;
    };
    obs.val("misses read first", read_all(&d) > 0);
    // Kick again; the misses read are outstanding.
    kicks_queue_misses(obs, &mut n, &d, "misses after more kicks");
    eventfd_take(&n.tx.call);
}

/// A miss a reader has taken off the queue but not yet copied out is, on
/// 7.x, still its ring's outstanding miss (C's `vq->iotlb_miss` points at
/// its node until the node is freed): kicks meanwhile queue none. The
/// reader's copy is held in a page fault of a userfaultfd page while the
/// ring is kicked, then released; afterwards the miss waits for an update
/// and kicks queue none either. Kernels without userfaultfd record
/// that (the 6.12 test kernel; it queues every miss anyway).
fn iotlb_miss_being_read(obs: &mut Obs, _: &Ctx) {
    let page = match UffdPage::new() {
        Ok(p) => p,
        Err(e) => {
            obs.ret("userfaultfd", Err(e));
            return;
        }
    };
    let Some((mut n, d)) = tx_ring_missing(obs) else {
        return;
    };
    let (fd, at) = (n.dev.raw(), page.addr());
    let reader = std::thread::spawn(move || {
        // SAFETY: read(2) of at most 72 bytes into the first of the 4096 bytes mapped at `at`,
        // which the `UffdPage` keeps mapped until after this thread is joined.
        unsafe { libc::read(fd, at as *mut libc::c_void, 72) }
    });
    let held = page.wait_fault(5000);
    obs.val("reader's copy held in a fault", held);
    if held {
        kicks_queue_misses(obs, &mut n, &d, "misses queued while one is read");
    }
    obs.ret("UFFDIO_COPY", page.fill());
    let got = reader.join().unwrap_or(-1);
    obs.val("reader read", got);
    kicks_queue_misses(obs, &mut n, &d, "misses queued after the read");
    eventfd_take(&n.tx.call);
}

/// Reading a miss wakes the device's waiters, as its move to the pending
/// list does in C (`vhost_enqueue_msg`, both kernels): an edge-triggered
/// epoll user that reads one of two queued misses is told again that the
/// device is readable.
fn iotlb_read_wakes(obs: &mut Obs, _: &Ctx) {
    let Some((mut n, d)) = tx_ring_missing(obs) else {
        return;
    };
    // RX misses too (7.x queues one miss per ring): two messages queued.
    map_used_then_attach(obs, &n, &d, 0);
    n.rx.kick_now();
    // The same socket again waits for the kicked round (a flush).
    obs.ret("SET_BACKEND 0 again (flush)", d.backend(0, n.tap.fd.raw()));
    // SAFETY: epoll_create1(2) with integer flags; the result is checked below.
    let ep = crate::sys::Fd(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) });
    if ep.raw() < 0 {
        obs.fail(format!("epoll_create1: {}", crate::sys::Errno::last()));
        return;
    }
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: 0,
    };
    // SAFETY: `ep` and the device fd are open; `ev` is a valid epoll_event for the call.
    let rc = unsafe { libc::epoll_ctl(ep.raw(), libc::EPOLL_CTL_ADD, n.dev.raw(), &mut ev) };
    obs.val("EPOLL_CTL_ADD", rc);
    let ready = |ep: &crate::sys::Fd| {
        let mut out = [libc::epoll_event { events: 0, u64: 0 }];
        // SAFETY: `out` holds one writable epoll_event and maxevents is 1; timeout 0.
        unsafe { libc::epoll_wait(ep.raw(), out.as_mut_ptr(), 1, 0) }
    };
    obs.val("edge before reading", ready(&ep));
    let (r, _) = d.read(72);
    obs.ret("read one miss", r);
    obs.val("edge after reading one", ready(&ep));
    let left = read_all(&d);
    obs.note(format!("{left} more messages queued"));
    obs.val("another message was queued", left > 0);
    eventfd_take(&n.tx.call);
}

/// userfaultfd(2) (include/uapi/linux/userfaultfd.h): the API version,
/// the ioctls (`_IOWR(0xAA, nr, struct)`), the registration mode and the
/// page-fault event.
const UFFD_API: u64 = 0xaa;
const UFFDIO_API: u64 = 0xc018_aa3f;
const UFFDIO_REGISTER: u64 = 0xc020_aa00;
const UFFDIO_COPY: u64 = 0xc028_aa03;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

/// One anonymous page, not populated, registered with a userfaultfd for
/// missing-page faults: a first touch (a kernel copy included) waits until
/// [`UffdPage::fill`] maps it.
struct UffdPage {
    uffd: crate::sys::Fd,
    ptr: *mut libc::c_void,
}

impl UffdPage {
    fn new() -> Result<UffdPage, crate::sys::Errno> {
        // SAFETY: userfaultfd(2) with integer flags only; the result is checked.
        let fd =
            unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if fd < 0 {
            return Err(crate::sys::Errno::last());
        }
        let uffd = crate::sys::Fd(fd as i32);
        let mut api = [UFFD_API, 0, 0];
        ioctl(uffd.raw(), UFFDIO_API, api.as_mut_ptr() as usize)?;
        // SAFETY: anonymous mmap with a null hint, not populated: a fresh range, no existing
        // memory affected; MAP_FAILED is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(crate::sys::Errno::last());
        }
        let page = UffdPage { uffd, ptr };
        // struct uffdio_register: range (start, len), mode, ioctls (out).
        let mut reg = [page.addr(), 4096, UFFDIO_REGISTER_MODE_MISSING, 0];
        ioctl(page.uffd.raw(), UFFDIO_REGISTER, reg.as_mut_ptr() as usize)?;
        Ok(page)
    }

    fn addr(&self) -> u64 {
        self.ptr as u64
    }

    /// Waits up to `ms` for a missing-page fault on the page: whether one
    /// came (its faulting thread waits until `fill`).
    fn wait_fault(&self, ms: i32) -> bool {
        if !poll_in(self.uffd.raw(), ms) {
            return false;
        }
        let mut msg = [0u8; 32];
        // SAFETY: read(2) of at most 32 bytes (one `struct uffd_msg`) into `msg`, 32 bytes.
        let r = unsafe { libc::read(self.uffd.raw(), msg.as_mut_ptr().cast(), msg.len()) };
        r == 32 && msg[0] == UFFD_EVENT_PAGEFAULT
    }

    /// Maps a zeroed page there and wakes the thread waiting on it.
    fn fill(&self) -> Res {
        let zero = vec![0u8; 4096];
        // struct uffdio_copy: dst, src, len, mode, copy (out).
        let mut copy = [self.addr(), zero.as_ptr() as u64, 4096, 0, 0];
        ioctl(self.uffd.raw(), UFFDIO_COPY, copy.as_mut_ptr() as usize)
    }
}

impl Drop for UffdPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is the 4096-byte mapping made in `new` and owned by this `UffdPage`;
        // nothing uses it after drop (the reader thread has been joined by then).
        unsafe { libc::munmap(self.ptr, 4096) };
    }
}

/// `IFF_BACKPRESSURE` (7.x, include/uapi/linux/if_tun.h): tun stops its
/// queue instead of dropping when its ring is full, and the reader (vhost)
/// wakes it for what it consumed. 6.12 ignores the flag and drops.
const IFF_BACKPRESSURE: u16 = 0x0080;

/// A tap with IFF_BACKPRESSURE and an 8-packet ring fills while no ring
/// reads it (ring full, queue stopped, the qdisc holding more); once RX is
/// attached, vhost must wake the queue for what it consumes, or what the
/// qdisc holds never arrives. Recorded: whether every frame the tap
/// accepted reached the guest.
fn tap_backpressure(obs: &mut Obs, _: &Ctx) {
    let cfg = Cfg::default();
    let tap = match Tap::with_flags(Some(cfg.hdr_len() as i32), TAP_MTU, IFF_BACKPRESSURE) {
        Ok(t) => t,
        Err(e) => {
            obs.fail(format!("tap: {e}"));
            return;
        }
    };
    obs.ret("SIOCSIFTXQLEN 8", tap.set_txqlen(8));
    let Some(mut n) = Net::with_backend(obs, "", cfg, tap, None) else {
        return;
    };
    let detach = uapi::VhostVringFile { index: 0, fd: -1 };
    let set_backend = |n: &Net, mut f: uapi::VhostVringFile| {
        ioctl(
            n.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut f as *mut _ as usize,
        )
    };
    obs.ret("SET_BACKEND 0 -1", set_backend(&n, detach));
    let mut accepted = 0;
    for i in 0..24u32 {
        if n.tap.inject(&frame(200, UNICAST, 5, i + 1, None)).is_ok() {
            accepted += 1;
        }
    }
    obs.note(format!("{accepted} of 24 frames accepted"));
    for _ in 0..64 {
        let b = n.rx_buf(2048);
        n.rx.add(&mut n.mem, &[b], true, false);
    }
    n.rx.notify(&n.mem);
    let attach = uapi::VhostVringFile {
        index: 0,
        fd: n.tap.fd.raw(),
    };
    obs.ret("SET_BACKEND 0", set_backend(&n, attach));
    let mut got = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(3000);
    while std::time::Instant::now() < deadline {
        got += n.rx.take_used(&n.mem).len();
        if got >= accepted {
            break;
        }
        poll_in(n.rx.call.raw(), 50);
        eventfd_take(&n.rx.call);
    }
    sleep_ms(100);
    got += n.rx.take_used(&n.mem).len();
    obs.note(format!("{got} frames received"));
    obs.val("every accepted frame received", got == accepted);
    obs.val("some frame refused or dropped", got < 24);
}
