//! The device IOTLB interface: write(2) of vhost_msg / vhost_msg_v2,
//! read(2) and poll(2) of miss messages, and ACCESS_PLATFORM on and off.

use super::ioctl_util::*;
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::sys::fmt_res;
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("iotlb_write_without_access_platform", write_without_ap),
        t("iotlb_write_v1_messages", write_v1),
        t("iotlb_write_v2_messages", write_v2),
        t("iotlb_write_lengths", write_lengths),
        t("iotlb_update_flood_retires", flood),
        t("iotlb_read_and_poll_empty", read_empty),
        t("iotlb_miss_message_on_attach", miss_on_attach),
        t("iotlb_kick_without_backend_no_miss", kick_without_backend),
        t("iotlb_attach_used_ring_partly_mapped", attach_partly_mapped),
        t("iotlb_miss_wakes_blocked_readers", miss_wakes_blocked),
        t("iotlb_loss_wakes_blocked_reader", loss_wakes_blocked),
        t("access_platform_toggle_invalidates_rings", ap_toggle),
    ]
}

const AP: u64 = 1 << uapi::VIRTIO_F_ACCESS_PLATFORM;
const U: u8 = uapi::VHOST_IOTLB_UPDATE;
const I: u8 = uapi::VHOST_IOTLB_INVALIDATE;

fn write_without_ap(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x4000);
    let a = m.addr();
    let run = |obs: &mut Obs, l: &str| {
        obs.ret(
            format!("{l}: V1 UPDATE"),
            d.write(&msg_v1(U, 0, 0x1000, a, 3)),
        );
        obs.ret(
            format!("{l}: V1 UPDATE size 0"),
            d.write(&msg_v1(U, 0, 0, a, 3)),
        );
        obs.ret(
            format!("{l}: V1 INVALIDATE"),
            d.write(&msg_v1(I, 0, 0x1000, 0, 0)),
        );
        obs.ret(
            format!("{l}: V1 type 9"),
            d.write(&msg_v1(9, 0, 0x1000, a, 3)),
        );
        obs.ret(
            format!("{l}: V2 UPDATE"),
            d.write(&msg_v2(0, U, 0, 0x1000, a, 3)),
        );
        obs.ret(
            format!("{l}: V2 asid 1 UPDATE"),
            d.write(&msg_v2(1, U, 0, 0x1000, a, 3)),
        );
        let mut bad = msg_v1(U, 0, 0x1000, a, 3);
        bad[0] = 3;
        obs.ret(format!("{l}: message type 3"), d.write(&bad));
        bad[0] = 0;
        obs.ret(format!("{l}: message type 0"), d.write(&bad));
    };
    run(obs, "no owner");
    obs.ret_ok("SET_OWNER", d.owner());
    run(obs, "owner");
    obs.ret("SET_FEATURES 0", d.features(0));
    run(obs, "features 0");
    // ACCESS_PLATFORM acked before the owner exists works too (no
    // owner check on SET_FEATURES or write).
    let d2 = Dev::open();
    obs.ret("unowned: SET_FEATURES ACCESS_PLATFORM", d2.features(AP));
    obs.ret(
        "unowned: V1 UPDATE with IOTLB",
        d2.write(&msg_v1(U, 0, 0x1000, a, 3)),
    );
}

fn write_v1(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x10000);
    let a = m.addr();
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    let cases: Vec<(&str, [u8; 72])> = vec![
        ("UPDATE rw", msg_v1(U, 0x1000, 0x1000, a, 3)),
        ("UPDATE ro", msg_v1(U, 0x2000, 0x1000, a, 1)),
        ("UPDATE wo", msg_v1(U, 0x3000, 0x1000, a, 2)),
        ("UPDATE perm 0", msg_v1(U, 0x4000, 0x1000, a, 0)),
        ("UPDATE perm 0xff", msg_v1(U, 0x5000, 0x1000, a, 0xff)),
        ("UPDATE size 0", msg_v1(U, 0x6000, 0, a, 3)),
        ("UPDATE size 1", msg_v1(U, 0x6000, 1, a, 3)),
        (
            "UPDATE kernel uaddr rw",
            msg_v1(U, 0x7000, 0x1000, KERNEL_ADDR, 3),
        ),
        (
            "UPDATE kernel uaddr ro",
            msg_v1(U, 0x7000, 0x1000, KERNEL_ADDR, 1),
        ),
        (
            "UPDATE kernel uaddr perm 0",
            msg_v1(U, 0x7000, 0x1000, KERNEL_ADDR, 0),
        ),
        (
            "UPDATE uaddr ends at user end",
            msg_v1(U, 0x8000, 0x1000, user_end() - 0x1000, 3),
        ),
        (
            "UPDATE uaddr past user end",
            msg_v1(U, 0x8000, 0x2000, user_end() - 0x1000, 3),
        ),
        (
            "UPDATE uaddr wraps",
            msg_v1(U, 0x8000, 0x2000, u64::MAX - 0xfff, 3),
        ),
        (
            "UPDATE unmapped user uaddr",
            msg_v1(U, 0x9000, 0x1000, 0x1000_0000, 3),
        ),
        (
            "UPDATE iova wraps",
            msg_v1(U, u64::MAX - 0xfff, 0x2000, a, 3),
        ),
        (
            "UPDATE iova at top",
            msg_v1(U, u64::MAX - 0xfff, 0x1000, a, 3),
        ),
        ("UPDATE whole space", msg_v1(U, 0, u64::MAX, a, 0)),
        ("UPDATE overlapping", msg_v1(U, 0x1800, 0x1000, a, 3)),
        ("INVALIDATE", msg_v1(I, 0x1000, 0x1000, 0, 0)),
        (
            "INVALIDATE nothing mapped",
            msg_v1(I, 0x100_0000, 0x1000, 0, 0),
        ),
        ("INVALIDATE size 0", msg_v1(I, 0x2000, 0, 0, 0)),
        ("INVALIDATE all", msg_v1(I, 0, u64::MAX, 0, 0)),
        ("MISS", msg_v1(uapi::VHOST_IOTLB_MISS, 0, 0x1000, a, 3)),
        (
            "ACCESS_FAIL",
            msg_v1(uapi::VHOST_IOTLB_ACCESS_FAIL, 0, 0x1000, a, 3),
        ),
        (
            "BATCH_BEGIN",
            msg_v1(uapi::VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0),
        ),
        ("BATCH_END", msg_v1(uapi::VHOST_IOTLB_BATCH_END, 0, 0, 0, 0)),
        ("type 0", msg_v1(0, 0, 0x1000, a, 3)),
        ("type 7", msg_v1(7, 0, 0x1000, a, 3)),
        ("type 255", msg_v1(255, 0, 0x1000, a, 3)),
    ];
    for (name, m) in cases {
        obs.ret(format!("V1 {name}"), d.write(&m));
    }
    // The hole after the type and the padding are ignored.
    let mut m1 = msg_v1(U, 0xa000, 0x1000, a, 3);
    m1[4..8].copy_from_slice(&[0xff; 4]);
    m1[34..72].copy_from_slice(&[0xee; 38]);
    obs.ret("V1 UPDATE garbage hole and padding", d.write(&m1));
    // A message from a read-only page is fine.
    let ro = Map::ro_with(&msg_v1(U, 0xb000, 0x1000, a, 3));
    obs.ret("V1 UPDATE from read-only page", {
        // SAFETY: `d` owns the device fd; `ro.ptr` is the start of the live read-only 4096-byte
        // mapping `ro`, of which 72 bytes are read.
        let r = unsafe { libc::write(d.raw(), ro.ptr.cast(), 72) };
        if r < 0 {
            Err(crate::sys::Errno::last())
        } else {
            Ok(r as i64)
        }
    });
    obs.ret("write from NULL", {
        // SAFETY: deliberately invalid user pointer: the kernel must reject it with EFAULT; no Rust
        // memory is involved.
        let r = unsafe { libc::write(d.raw(), std::ptr::null(), 72) };
        if r < 0 {
            Err(crate::sys::Errno::last())
        } else {
            Ok(r as i64)
        }
    });
}

fn write_v2(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x10000);
    let a = m.addr();
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    // V2 is accepted before MSG_V2 is acked.
    obs.ret(
        "V2 UPDATE, MSG_V2 not acked",
        d.write(&msg_v2(0, U, 0, 0x1000, a, 3)),
    );
    obs.ret_ok(
        "SET_BACKEND_FEATURES MSG_V2",
        d.backend_features(1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2),
    );
    let cases: Vec<(&str, [u8; 72])> = vec![
        ("UPDATE", msg_v2(0, U, 0x1000, 0x1000, a, 3)),
        (
            "UPDATE asid 1 (ASID not acked: ignored)",
            msg_v2(1, U, 0x2000, 0x1000, a, 3),
        ),
        (
            "UPDATE asid 0xffffffff",
            msg_v2(0xffff_ffff, U, 0x3000, 0x1000, a, 3),
        ),
        ("UPDATE size 0", msg_v2(0, U, 0x4000, 0, a, 3)),
        (
            "UPDATE kernel uaddr",
            msg_v2(0, U, 0x4000, 0x1000, KERNEL_ADDR, 3),
        ),
        ("INVALIDATE", msg_v2(0, I, 0x1000, 0x1000, 0, 0)),
        (
            "BATCH_BEGIN",
            msg_v2(0, uapi::VHOST_IOTLB_BATCH_BEGIN, 0, 0, 0, 0),
        ),
        (
            "BATCH_END",
            msg_v2(0, uapi::VHOST_IOTLB_BATCH_END, 0, 0, 0, 0),
        ),
        ("MISS", msg_v2(0, uapi::VHOST_IOTLB_MISS, 0, 0x1000, a, 3)),
        ("type 9", msg_v2(0, 9, 0, 0x1000, a, 3)),
    ];
    for (name, m) in cases {
        obs.ret(format!("V2 {name}"), d.write(&m));
    }
    obs.ret(
        "V1 UPDATE with MSG_V2 acked",
        d.write(&msg_v1(U, 0x5000, 0x1000, a, 3)),
    );
    obs.ret("SET_BACKEND_FEATURES 0", d.backend_features(0));
    obs.ret(
        "V2 UPDATE after MSG_V2 cleared",
        d.write(&msg_v2(0, U, 0x6000, 0x1000, a, 3)),
    );
}

fn write_lengths(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x10000);
    let a = m.addr();
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    let v1 = msg_v1(U, 0x1000, 0x1000, a, 3);
    let v2 = msg_v2(0, U, 0x1000, 0x1000, a, 3);
    let mut big = [0u8; 200];
    for n in [0usize, 1, 3, 4, 8, 39, 40, 41, 71, 72, 73, 200] {
        big[..72].copy_from_slice(&v1);
        obs.ret(format!("V1 UPDATE {n} bytes"), d.write(&big[..n]));
        big[..72].copy_from_slice(&v2);
        obs.ret(format!("V2 UPDATE {n} bytes"), d.write(&big[..n]));
    }
    // writev of the message in pieces.
    let iov = [
        libc::iovec {
            iov_base: v1.as_ptr() as *mut libc::c_void,
            iov_len: 4,
        },
        libc::iovec {
            iov_base: v1[4..].as_ptr() as *mut libc::c_void,
            iov_len: 30,
        },
        libc::iovec {
            iov_base: v1[34..].as_ptr() as *mut libc::c_void,
            iov_len: 38,
        },
    ];
    // SAFETY: `d` owns the device fd; `iov` is an array of 3 iovecs, each pointing into `v1`, which
    // is alive and holds the 4 + 30 + 38 bytes they describe; the kernel only reads them.
    let r = unsafe { libc::writev(d.raw(), iov.as_ptr(), 3) };
    obs.val(
        "writev V1 in 3 pieces",
        fmt_res(&if r < 0 {
            Err(crate::sys::Errno::last())
        } else {
            Ok(r as i64)
        }),
    );
    // A size-0 UPDATE short of its last bytes is still too short.
    let z = msg_v1(U, 0x1000, 0, a, 3);
    obs.ret("V1 UPDATE size 0, 40 bytes", d.write(&z[..40]));
    obs.ret("V1 UPDATE size 0, 39 bytes", d.write(&z[..39]));
}

fn flood(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x1000);
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    let mut res: Vec<(String, usize)> = Vec::new();
    for i in 0..2100u64 {
        let r = fmt_res(&d.write(&msg_v1(U, i * 0x1000, 0x1000, m.addr(), 3)));
        match res.last_mut() {
            Some((s, n)) if *s == r => *n += 1,
            _ => res.push((r, 1)),
        }
    }
    obs.val(
        "2100 UPDATEs",
        res.iter()
            .map(|(s, n)| format!("{n}x {s}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // Whole-space entries count twice.
    obs.ret(
        "UPDATE whole space",
        d.write(&msg_v1(U, 0, u64::MAX, m.addr(), 1)),
    );
    obs.ret("INVALIDATE all", d.write(&msg_v1(I, 0, u64::MAX, 0, 0)));
    obs.ret("UPDATE after", d.write(&msg_v1(U, 0, 0x1000, m.addr(), 3)));
    // Re-acking ACCESS_PLATFORM replaces the IOTLB with an empty one.
    obs.ret("SET_FEATURES ACCESS_PLATFORM again", d.features(AP));
    obs.ret(
        "UPDATE after re-ack",
        d.write(&msg_v1(U, 0, 0x1000, m.addr(), 3)),
    );
}

fn read_empty(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let run = |obs: &mut Obs, l: &str, blocking_ok: bool| {
        d.set_nonblock(true);
        for n in [0usize, 1, 71, 72, 100, 4096] {
            let (r, b) = d.read(n);
            obs.ret(format!("{l}: nonblock read {n}"), r);
            obs.val(format!("{l}: bytes {n}"), hex(&b));
        }
        obs.val(format!("{l}: poll 0"), d.poll(0));
        obs.val(format!("{l}: poll 50ms"), d.poll(50));
        d.set_nonblock(false);
        obs.ret(format!("{l}: blocking read 10"), d.read(10).0);
        if blocking_ok {
            obs.ret(format!("{l}: blocking read 72"), d.read(72).0);
        }
    };
    run(obs, "no owner", true);
    obs.ret_ok("SET_OWNER", d.owner());
    run(obs, "owner", true);
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    // With an IOTLB a blocking read would wait for a miss: not done.
    run(obs, "iotlb", false);
    obs.ret("SET_FEATURES 0", d.features(0));
    run(obs, "iotlb dropped", true);
    // read into a bad buffer with nothing queued.
    d.set_nonblock(true);
    // SAFETY: deliberately invalid user pointer (NULL): with nothing queued the kernel returns
    // EAGAIN or EFAULT (what the test observes); no Rust memory is involved.
    let r = unsafe { libc::read(d.raw(), std::ptr::null_mut(), 72) };
    obs.val(
        "nonblock read into NULL",
        fmt_res(&if r < 0 {
            Err(crate::sys::Errno::last())
        } else {
            Ok(r as i64)
        }),
    );
}

/// The IOVA of offset `off` of the rings of `iova_ring`.
fn iova(off: usize) -> u64 {
    0x4000_0000u64 + off as u64
}

/// An owned device with ACCESS_PLATFORM acked and ring 0 at IOVAs that
/// have no translation, and an AF_PACKET socket: each attach of the socket
/// fails and queues a miss of the used ring.
fn iova_ring(obs: &mut Obs) -> (Dev, Rings, crate::sys::Fd) {
    let d = Dev::open();
    let rings = Rings::new();
    let sock = socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret_ok("SET_FEATURES ACCESS_PLATFORM", d.features(AP));
    // A memory table is still needed for the attach check.
    obs.ret("SET_MEM_TABLE", d.mem(&rings.table()));
    obs.ret(
        "SET_VRING_NUM",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, RING_NUM),
    );
    obs.ret("SET_VRING_ADDR iova", d.addr(vaddr_at(0, iova(0))));
    (d, rings, sock)
}

/// Sets up ring 0 with IOVA addresses under ACCESS_PLATFORM and attaches
/// an AF_PACKET socket: the used ring has no translation yet, so the
/// attach fails and a miss message is queued.
fn miss_on_attach(obs: &mut Obs, _ctx: &Ctx) {
    let (d, rings, sock) = iova_ring(obs);
    d.set_nonblock(true);
    obs.val("poll before", d.poll(0));
    obs.ret("SET_BACKEND 0 packet (miss)", d.backend(0, sock.raw()));
    obs.val("poll after miss", d.poll(0));
    obs.ret("read 71 (too short: consumes nothing)", d.read(71).0);
    let (r, b) = d.read(200);
    obs.ret("read miss V1", r);
    obs.val("miss V1", msg_str(&b));
    obs.ret("read again", d.read(200).0);
    obs.val("poll after read", d.poll(0));
    // V2 format once MSG_V2 is acked.
    obs.ret(
        "SET_BACKEND_FEATURES MSG_V2",
        d.backend_features(1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2),
    );
    obs.ret("SET_BACKEND 0 packet (miss 2)", d.backend(0, sock.raw()));
    let (r, b) = d.read(72);
    obs.ret("read miss V2", r);
    obs.val("miss V2", msg_str(&b));
    // Two failed attaches queue two messages.
    obs.ret("SET_BACKEND 0 packet (miss 3)", d.backend(0, sock.raw()));
    obs.ret("SET_BACKEND 0 packet (miss 4)", d.backend(0, sock.raw()));
    let (r, b) = d.read(72);
    obs.ret("read miss 3", r);
    obs.val("miss 3", msg_str(&b));
    // SET_BACKEND with fd -1 clears the queue.
    obs.ret("SET_BACKEND 0 -1 (clears messages)", d.backend(0, -1));
    obs.ret("read after -1", d.read(72).0);
    // A read-only translation of the used ring: the flags write needs
    // write permission; then a read-write one.
    obs.ret(
        "UPDATE used ring ro",
        d.write(&msg_v1(U, iova(USED_OFF), 0x1000, rings.used(), 1)),
    );
    obs.ret("SET_BACKEND 0 packet (ro used)", d.backend(0, sock.raw()));
    let (r, b) = d.read(72);
    obs.ret("read after ro attempt", r);
    obs.val("message after ro attempt", msg_str(&b));
    obs.val(
        "used flags after ro attempt",
        format!("{:#x}", rings.used_flags()),
    );
    obs.ret("SET_BACKEND 0 -1 after ro attempt", d.backend(0, -1));
    rings.m.w16(USED_OFF, 0xffff);
    rings.m.w16(USED_OFF + 2, 5);
    obs.ret(
        "UPDATE used ring rw",
        d.write(&msg_v1(U, iova(USED_OFF), 0x1000, rings.used(), 3)),
    );
    obs.ret("SET_BACKEND 0 packet (mapped)", d.backend(0, sock.raw()));
    obs.val(
        "used flags after attach",
        format!("{:#x}", rings.used_flags()),
    );
    obs.val("used idx after attach", rings.used_idx());
    obs.val("poll after attach", d.poll(0));
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    // Dropping ACCESS_PLATFORM: the queue is emptied, blocking reads fail.
    obs.ret("INVALIDATE all", d.write(&msg_v1(I, 0, u64::MAX, 0, 0)));
    obs.ret("SET_BACKEND 0 packet (miss 5)", d.backend(0, sock.raw()));
    obs.val("poll with a miss queued", d.poll(0));
    obs.ret("SET_FEATURES 0", d.features(0));
    obs.val("poll after features 0", d.poll(0));
    obs.ret("read after features 0", d.read(72).0);
    d.set_nonblock(false);
    obs.ret("blocking read after features 0", d.read(72).0);
}

/// Kicks of rings that have no backend, never attached and detached
/// (QEMU detaches on link down while the guest keeps kicking), with
/// untranslated rings: the handler returns before looking at the rings
/// (C's `handle_rx`/`handle_tx` check the socket first), so no miss is
/// queued. The module once prefetched first and queued one per kick.
fn kick_without_backend(obs: &mut Obs, _ctx: &Ctx) {
    let (d, _rings, sock) = iova_ring(obs);
    d.set_nonblock(true);
    obs.ret(
        "SET_VRING_NUM 1",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 1, RING_NUM),
    );
    obs.ret("SET_VRING_ADDR 1 iova", d.addr(vaddr_at(1, iova(0x10000))));
    let kicks = [eventfd(), eventfd()];
    for (i, k) in kicks.iter().enumerate() {
        obs.ret(
            format!("SET_VRING_KICK {i}"),
            d.file(uapi::VHOST_SET_VRING_KICK, i as u32, k.raw()),
        );
    }
    let kick_all = |obs: &mut Obs, tag: &str| {
        for k in &kicks {
            let one = 1u64;
            // SAFETY: write(2) of 8 readable bytes to an eventfd this test holds.
            let r = unsafe { libc::write(k.raw(), (&one as *const u64).cast(), 8) };
            obs.val(format!("kick {tag}"), r);
        }
        crate::sys::sleep_ms(200);
    };
    kick_all(obs, "never attached");
    obs.val("poll after kicks, never attached", d.poll(0));
    obs.ret("read after kicks, never attached", d.read(72).0);
    // A failed attach queues one miss; detaching clears it.
    obs.ret("SET_BACKEND 0 packet (miss)", d.backend(0, sock.raw()));
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    kick_all(obs, "detached");
    obs.val("poll after kicks, detached", d.poll(0));
    obs.ret("read after kicks, detached", d.read(72).0);
}

/// Attach with the used ring's first field only partly translated. The
/// flags' first byte mapped and not the second: a miss for the second
/// byte (C's `translate_desc` has room for the next piece and misses
/// there). The flags mapped and not the index: the attach fails, the miss
/// is for the index, and the error eventfd counts two errors, as C's
/// translation and its index read each report one.
fn attach_partly_mapped(obs: &mut Obs, _ctx: &Ctx) {
    let (d, rings, sock) = iova_ring(obs);
    d.set_nonblock(true);
    // SAFETY: plain syscall with integer arguments; checked below.
    let err = crate::sys::Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) });
    assert!(err.raw() >= 0, "eventfd");
    obs.ret(
        "SET_VRING_ERR 0",
        d.file(uapi::VHOST_SET_VRING_ERR, 0, err.raw()),
    );
    let count = |obs: &mut Obs, key: &str| {
        let mut v = 0u64;
        // SAFETY: read(2) of 8 bytes into a live u64 from an eventfd this
        // test holds (non-blocking: EAGAIN when the count is 0).
        let r = unsafe { libc::read(err.raw(), (&mut v as *mut u64).cast(), 8) };
        obs.val(key, if r == 8 { v } else { 0 });
    };
    for (tag, size) in [("1 byte of the flags", 1u64), ("the flags only", 2)] {
        obs.ret(
            format!("UPDATE used ring, {tag}"),
            d.write(&msg_v1(U, iova(USED_OFF), size, rings.used(), 3)),
        );
        obs.ret(
            format!("SET_BACKEND 0 packet ({tag})"),
            d.backend(0, sock.raw()),
        );
        let (r, b) = d.read(72);
        obs.ret(format!("read ({tag})"), r);
        obs.val(format!("message ({tag})"), msg_str(&b));
        obs.ret(format!("read again ({tag})"), d.read(72).0);
        count(obs, &format!("errors ({tag})"));
        obs.ret(
            format!("INVALIDATE all ({tag})"),
            d.write(&msg_v1(I, 0, u64::MAX, 0, 0)),
        );
        obs.ret(format!("SET_BACKEND 0 -1 ({tag})"), d.backend(0, -1));
    }
}

fn ap_toggle(obs: &mut Obs, _ctx: &Ctx) {
    let t = tap();
    for (l, feats) in [
        ("control (no ACCESS_PLATFORM)", vec![0u64]),
        ("on", vec![AP]),
        ("on then off", vec![AP, 0]),
        ("on, on", vec![AP, AP]),
        ("off only", vec![0, 0]),
    ] {
        let d = Dev::open();
        let rings = Rings::new();
        obs.ret_ok(format!("{l}: SET_OWNER"), d.owner());
        rings.setup(obs, &d, 0, &format!("{l}: "));
        for f in &feats {
            obs.ret(format!("{l}: SET_FEATURES {f:#x}"), d.features(*f));
        }
        rings.m.w16(USED_OFF, 0xffff);
        obs.ret(format!("{l}: SET_BACKEND 0 tap"), d.backend(0, t.raw()));
        obs.val(
            format!("{l}: used flags"),
            format!("{:#x}", rings.used_flags()),
        );
        d.set_nonblock(true);
        let (r, b) = d.read(72);
        obs.ret(format!("{l}: read"), r);
        obs.val(format!("{l}: message"), msg_rel(&b, rings.m.addr()));
        obs.ret(format!("{l}: SET_BACKEND 0 -1"), d.backend(0, -1));
        // Setting the addresses again makes the rings usable (unless
        // the IOTLB has no translation).
        obs.ret(format!("{l}: SET_VRING_ADDR again"), d.addr(rings.vaddr(0)));
        obs.ret(
            format!("{l}: SET_BACKEND 0 tap again"),
            d.backend(0, t.raw()),
        );
        let (r, b) = d.read(72);
        obs.ret(format!("{l}: read again"), r);
        obs.val(format!("{l}: message again"), msg_rel(&b, rings.m.addr()));
        obs.ret(format!("{l}: SET_BACKEND 0 -1 end"), d.backend(0, -1));
    }
}

/// A thread sleeping in a syscall on the device. What the syscall
/// returned comes back over a channel, so a wake-up that never comes fails
/// the test (after a bounded wait) instead of hanging it.
struct Blocked {
    label: &'static str,
    rx: std::sync::mpsc::Receiver<String>,
}

impl Blocked {
    /// `poll(fd, POLLIN, 20 s)`: its result and revents.
    fn poll(obs: &mut Obs, label: &'static str, d: &Dev) -> Blocked {
        let fd = d.raw();
        Blocked::start(obs, label, libc::SYS_poll, move || {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: `p` is a valid, writable pollfd local to this thread and nfds is 1; `fd` is
            // only a number to the kernel, no Rust memory depends on it.
            let r =
                unsafe { libc::syscall(libc::SYS_poll, &mut p as *mut libc::pollfd, 1, 20_000) };
            format!("{} revents={:#x}", fmt_res(&res(r)), p.revents)
        })
    }

    /// A blocking `read(fd, buf, 72)`: its result and the message read.
    fn read(obs: &mut Obs, label: &'static str, d: &Dev) -> Blocked {
        let fd = d.raw();
        Blocked::start(obs, label, libc::SYS_read, move || {
            let mut b = [0u8; 72];
            // SAFETY: `b` is a writable 72-byte buffer local to this thread, alive for the call;
            // `fd` is only a number to the kernel, no Rust memory depends on it.
            let r = unsafe { libc::syscall(libc::SYS_read, fd, b.as_mut_ptr(), b.len()) };
            let n = r.clamp(0, 72) as usize;
            format!("{} {}", fmt_res(&res(r)), msg_str(&b[..n]))
        })
    }

    /// Runs `f` in a new thread and waits (up to 10 s) until that thread
    /// sleeps in syscall `nr` (/proc/<tid>/syscall names the syscall of a
    /// blocked task only).
    fn start(
        obs: &mut Obs,
        label: &'static str,
        nr: i64,
        f: impl FnOnce() -> String + Send + 'static,
    ) -> Blocked {
        let (tx, rx) = std::sync::mpsc::channel();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: gettid takes no arguments and cannot fail.
            let _ = tid_tx.send(unsafe { libc::gettid() });
            let _ = tx.send(f());
        });
        let tid = tid_rx.recv().expect("thread started");
        let path = format!("/proc/self/task/{tid}/syscall");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let asleep = loop {
            let s = std::fs::read_to_string(&path).unwrap_or_default();
            if s.split(' ').next() == Some(&nr.to_string()) {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            crate::sys::sleep_ms(10);
        };
        obs.val(format!("{label}: asleep before"), asleep);
        obs.check(
            asleep,
            format!("{label}: the thread never slept in syscall {nr}"),
        );
        Blocked { label, rx }
    }

    /// What the syscall returned, waiting up to 10 s for it.
    fn result(self, obs: &mut Obs) {
        let r = self.rx.recv_timeout(std::time::Duration::from_secs(10));
        let label = self.label;
        if r.is_err() {
            obs.fail(format!("{label}: not woken within 10 s"));
        }
        obs.val(label, r.unwrap_or_else(|_| "still asleep".into()));
    }
}

fn res(r: i64) -> crate::sys::Res {
    if r < 0 {
        Err(crate::sys::Errno::last())
    } else {
        Ok(r)
    }
}

/// A miss queued by a failed attach wakes a poller and a reader that were
/// already asleep on the device (opened without O_NONBLOCK).
fn miss_wakes_blocked(obs: &mut Obs, _ctx: &Ctx) {
    let (d, _rings, sock) = iova_ring(obs);
    // A poller alone.
    let p = Blocked::poll(obs, "poll", &d);
    obs.ret("SET_BACKEND (miss 1)", d.backend(0, sock.raw()));
    p.result(obs);
    let (r, b) = d.read(72);
    obs.ret("read after poll", r);
    obs.val("message after poll", msg_str(&b));
    // The read miss stays outstanding until an update resolves it, and
    // 7.x queues no other miss of the ring meanwhile: detaching (fd -1)
    // drops every message, in both kernels (C's vhost_clear_msg).
    obs.ret("SET_BACKEND -1 (drops the read miss)", d.backend(0, -1));
    // A reader alone, with V2 messages.
    obs.ret(
        "SET_BACKEND_FEATURES MSG_V2",
        d.backend_features(1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2),
    );
    let r = Blocked::read(obs, "read", &d);
    obs.ret("SET_BACKEND (miss 2)", d.backend(0, sock.raw()));
    r.result(obs);
    obs.ret("SET_BACKEND -1 (drops the read miss 2)", d.backend(0, -1));
    // Both at once: the reader takes one of two misses, the poller sees
    // the other (whichever woke first). One miss from each ring (ring 1
    // at the same IOVAs), so that 7.x, which keeps one outstanding miss a
    // ring, queues both too.
    obs.ret(
        "SET_VRING_NUM 1",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 1, RING_NUM),
    );
    obs.ret("SET_VRING_ADDR 1 iova", d.addr(vaddr_at(1, iova(0))));
    let p = Blocked::poll(obs, "both: poll", &d);
    let r = Blocked::read(obs, "both: read", &d);
    obs.ret("SET_BACKEND (miss 3)", d.backend(0, sock.raw()));
    obs.ret("SET_BACKEND 1 (miss 4)", d.backend(1, sock.raw()));
    r.result(obs);
    p.result(obs);
    d.set_nonblock(true);
    let (r, b) = d.read(72);
    obs.ret("both: read left", r);
    obs.val("both: message left", msg_str(&b));
    obs.ret("both: read again", d.read(72).0);
}

/// A reader asleep with nothing queued is woken when the IOTLB goes away
/// (RESET_OWNER, SET_FEATURES without ACCESS_PLATFORM) and fails with
/// EBADFD. Re-acking ACCESS_PLATFORM replaces the IOTLB without waking
/// anyone in C, so that case is not tested: the reader would sleep on.
fn loss_wakes_blocked(obs: &mut Obs, _ctx: &Ctx) {
    for (l, reset) in [("RESET_OWNER", true), ("SET_FEATURES 0", false)] {
        let d = Dev::open();
        obs.ret_ok(format!("{l}: SET_OWNER"), d.owner());
        obs.ret_ok(format!("{l}: SET_FEATURES ACCESS_PLATFORM"), d.features(AP));
        let label = if reset {
            "read across RESET_OWNER"
        } else {
            "read across SET_FEATURES 0"
        };
        let r = Blocked::read(obs, label, &d);
        obs.ret(l, if reset { d.reset() } else { d.features(0) });
        r.result(obs);
        obs.val(format!("{l}: poll after"), d.poll(0));
    }
}
