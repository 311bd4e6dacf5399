//! VHOST_NET_SET_BACKEND: which file descriptors are backends, the ring
//! checks before a backend attaches, and what attaching does to the used
//! ring in the test process's memory.

use super::ioctl_util::*;
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::sys::{fmt_res, Fd};
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("set_backend_fd_kinds", fd_kinds),
        t("set_backend_needs_valid_rings", needs_valid_rings),
        t("set_backend_writes_used_flags_and_logs", init_access),
        t("set_backend_same_socket_flushes", same_socket_flushes),
    ]
}

/// `VHOST_NET_SET_BACKEND` with the socket the ring already has changes
/// nothing but, as any attach over a backend, flushes the worker (C's
/// `if (oldsock) vhost_dev_flush()`): a kick made before the call has been
/// handled when it returns. 20 times: a frame posted and kicked, the
/// ioctl, then the used index read at once.
fn same_socket_flushes(obs: &mut Obs, _ctx: &Ctx) {
    use crate::driver::{frame, Cfg, Net, UNICAST};
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let tap = n.tap.fd.raw();
    let mut handled = 0;
    for i in 0..20u16 {
        let mut all = n.zero_hdr();
        all.extend_from_slice(&frame(100, UNICAST, 0x50, u32::from(i), None));
        let bufs = n.place(&all, 0);
        let before = n.tx.used_idx(&n.mem);
        n.tx.add(&mut n.mem, &bufs, false, false);
        n.tx.publish(&n.mem);
        n.tx.kick_now();
        let mut f = uapi::VhostVringFile { index: 1, fd: tap };
        let r = crate::sys::ioctl(
            n.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut f as *mut _ as usize,
        );
        if r.is_err() {
            return obs.fail(format!("SET_BACKEND 1 same tap: {}", fmt_res(&r)));
        }
        if n.tx.used_idx(&n.mem) == before.wrapping_add(1) {
            handled += 1;
        }
        n.tx.wait_used(&n.mem, 1, 5000);
        let _ = n.tap.capture(3000);
    }
    obs.val("kicks handled when SET_BACKEND (same) returned", handled);
}

fn fd_kinds(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let tap1 = tap();
    let tap2 = tap();
    let tun0 = tun_unattached();
    let raw = socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
    let raw_all = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        (libc::ETH_P_ALL as u16).to_be() as i32,
    );
    let dgram = socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0);
    let udp = socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
    let tcp = socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    let unix_s = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
    let unix_d = socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
    let inet_raw = socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP);
    let file = regular_file();
    let (pr, pw) = pipe();
    let e = eventfd();
    let other = Dev::open();
    let closed = closed_fd();
    obs.ret("no owner: tap", d.backend(0, tap1.raw()));
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    let kinds: Vec<(&str, i32)> = vec![
        ("tap", tap1.raw()),
        ("-1", -1),
        ("tun without TUNSETIFF", tun0.raw()),
        ("AF_PACKET SOCK_RAW", raw.raw()),
        ("-1 (2)", -1),
        ("AF_PACKET SOCK_RAW ETH_P_ALL", raw_all.raw()),
        ("tap replacing a packet socket", tap1.raw()),
        ("same tap again", tap1.raw()),
        ("another tap", tap2.raw()),
        ("AF_PACKET SOCK_DGRAM", dgram.raw()),
        ("AF_INET SOCK_DGRAM", udp.raw()),
        ("AF_INET SOCK_STREAM", tcp.raw()),
        ("AF_INET SOCK_RAW", inet_raw.raw()),
        ("AF_UNIX SOCK_STREAM", unix_s.raw()),
        ("AF_UNIX SOCK_DGRAM", unix_d.raw()),
        ("regular file", file.raw()),
        ("pipe read end", pr.raw()),
        ("pipe write end", pw.raw()),
        ("eventfd", e.raw()),
        ("vhost-net fd", other.raw()),
        ("self", d.raw()),
        ("closed fd", closed),
        ("-2", -2),
        ("i32::MAX", i32::MAX),
        ("-1 (3)", -1),
        ("-1 (4)", -1),
    ];
    for (name, fd) in &kinds {
        let r = d.backend(0, *fd);
        obs.ret(format!("SET_BACKEND 0 {name}"), r);
        // A ring with a backend refuses a new size: tells whether the
        // failed call left the previous backend (or none) in place.
        let busy = d.st_r(uapi::VHOST_SET_VRING_NUM, 0, RING_NUM);
        obs.val(format!("  attached after {name}"), fmt_res(&busy));
    }
    // Ring 1 with its own rings, same tap as ring 0.
    let rings1 = Rings::new();
    obs.ret(
        "SET_VRING_NUM 1",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 1, RING_NUM),
    );
    obs.ret("SET_VRING_ADDR 1", d.addr(rings1.vaddr(1)));
    obs.ret(
        "SET_MEM_TABLE both",
        d.mem(&[
            rings.table()[0],
            region(0x10000, RING_AREA as u64, rings1.m.addr()),
        ]),
    );
    obs.ret("SET_BACKEND 0 tap", d.backend(0, tap1.raw()));
    obs.ret("SET_BACKEND 1 same tap", d.backend(1, tap1.raw()));
    obs.ret(
        "SET_BACKEND 1 tun without TUNSETIFF",
        d.backend(1, tun0.raw()),
    );
    obs.ret("SET_BACKEND 1 -1", d.backend(1, -1));
    obs.ret("SET_BACKEND 2 tap", d.backend(2, tap1.raw()));
    obs.ret("SET_BACKEND 2 -1", d.backend(2, -1));
    obs.ret("SET_BACKEND 0xffffffff -1", d.backend(0xffff_ffff, -1));
    // Closing our tap fd: the device holds its own reference.
    drop(tap1);
    obs.ret(
        "SET_BACKEND 0 -1 after closing the tap fd",
        d.backend(0, -1),
    );
    obs.ret("SET_BACKEND NULL", d.io(uapi::VHOST_NET_SET_BACKEND, 0));
    obs.ret(
        "SET_BACKEND unmapped",
        d.io(uapi::VHOST_NET_SET_BACKEND, unmapped()),
    );
    let ro = Map::ro_with(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    obs.ret(
        "SET_BACKEND read-only {0, -1}",
        d.io(uapi::VHOST_NET_SET_BACKEND, ro.ptr as usize),
    );
    // Close with a backend attached (the harness checks the references).
    obs.ret("SET_BACKEND 0 tap2 before close", d.backend(0, tap2.raw()));
    obs.ret("close", d.0.close());
}

fn needs_valid_rings(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let t = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret("no table: -1", d.backend(0, -1));
    obs.ret("no table: tap", d.backend(0, t.raw()));
    obs.ret("no table: AF_UNIX (checks first)", {
        let u = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        d.backend(0, u.raw())
    });
    obs.ret("no table: index 2", d.backend(2, t.raw()));
    obs.ret("SET_MEM_TABLE empty", d.mem(&[]));
    // Size 1 and no addresses: the used ring at NULL cannot be written.
    obs.ret("table, no addresses: tap", d.backend(0, t.raw()));
    obs.ret("table, no addresses: -1", d.backend(0, -1));
    obs.ret("table, no addresses: AF_UNIX", {
        let u = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        d.backend(0, u.raw())
    });
    let set = |obs: &mut Obs, l: &str, desc: u64, avail: u64, used: u64, fd: &Fd| {
        let a = uapi::VhostVringAddr {
            index: 0,
            flags: 0,
            desc_user_addr: desc,
            used_user_addr: used,
            avail_user_addr: avail,
            log_guest_addr: 0,
        };
        obs.ret(format!("{l}: SET_VRING_ADDR"), d.addr(a));
        obs.ret(format!("{l}: SET_BACKEND tap"), d.backend(0, fd.raw()));
        obs.ret(format!("{l}: SET_BACKEND -1"), d.backend(0, -1));
    };
    obs.ret(
        "SET_VRING_NUM 256",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 256),
    );
    let m = Map::new(RING_AREA);
    let ro = Map::ro_with(&[0u8; 8]);
    let un = unmapped() as u64;
    let a = m.addr();
    set(obs, "unmapped used", a, a + 0x1000, un, &t);
    set(obs, "read-only used", a, a + 0x1000, ro.addr(), &t);
    set(obs, "kernel used", a, a + 0x1000, KERNEL_ADDR, &t);
    set(obs, "kernel desc", KERNEL_ADDR, a + 0x1000, a + 0x2000, &t);
    set(obs, "kernel avail", a, KERNEL_ADDR, a + 0x2000, &t);
    // Only the used ring is touched on attach: unmapped desc and avail
    // are fine.
    set(obs, "unmapped desc and avail", un, un, a + 0x2000, &t);
    set(
        obs,
        "used at the last 4 bytes of a page",
        a,
        a + 0x1000,
        a + 0x2ffc,
        &t,
    );
    set(
        obs,
        "used at end of user range",
        a,
        a + 0x1000,
        user_end() - 2060,
        &t,
    );
    set(obs, "all good", a, a + 0x1000, a + 0x2000, &t);
    // A failed attach leaves no backend: the size can change.
    obs.ret(
        "SET_VRING_NUM after failures",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 128),
    );
}

fn init_access(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let t = tap();
    let m = &rings.m;
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    // Known contents: used flags 0xffff, used idx 7, avail idx = base 3.
    m.w16(USED_OFF, 0xffff);
    m.w16(USED_OFF + 2, 7);
    m.w16(AVAIL_OFF, 0x1234);
    m.w16(AVAIL_OFF + 2, 3);
    m.w32(USED_OFF + 4, 0xaaaa_aaaa);
    obs.ret(
        "SET_VRING_BASE 0 3",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 3),
    );
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, t.raw()));
    let snap = |obs: &mut Obs, l: &str| {
        obs.val(
            format!("{l}: used flags/idx/ring[0].id"),
            format!(
                "{:#x} {} {:#x}",
                m.r16(USED_OFF),
                m.r16(USED_OFF + 2),
                m.r32(USED_OFF + 4)
            ),
        );
        obs.val(
            format!("{l}: avail flags/idx"),
            format!("{:#x} {}", m.r16(AVAIL_OFF), m.r16(AVAIL_OFF + 2)),
        );
        obs.val(format!("{l}: GET_VRING_BASE 0"), d.base(0));
    };
    snap(obs, "attached");
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    m.w16(USED_OFF, 0xfffe);
    snap(obs, "detached");
    // Attach with the used ring logged: the flags write is logged in the
    // bitmap at the log base and signalled on the log eventfd.
    let log = Map::new(4096);
    // SAFETY: plain syscall with integer arguments; the new descriptor is owned by the `Fd`.
    let efd = Fd(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) });
    let mut lfd = efd.raw();
    obs.ret(
        "SET_LOG_FD",
        d.io(uapi::VHOST_SET_LOG_FD, &mut lfd as *mut i32 as usize),
    );
    obs.ret(
        "SET_LOG_BASE",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, log.addr()),
    );
    let mut a = rings.vaddr(0);
    a.flags = 1 << uapi::VHOST_VRING_F_LOG;
    a.log_guest_addr = 0x12000;
    obs.ret("SET_VRING_ADDR logged", d.addr(a));
    obs.ret("SET_BACKEND 0 tap (logged)", d.backend(0, t.raw()));
    snap(obs, "logged");
    let bitmap: Vec<String> = (0..64)
        // SAFETY: `i` < 64 is inside `log`, a live 4096-byte mapping owned by this test; a u8 has
        // no alignment or validity requirement.
        .filter(|&i| unsafe { *log.ptr.add(i) } != 0)
        // SAFETY: `i` < 64 is inside `log`, a live 4096-byte mapping owned by this test; a u8 has
        // no alignment or validity requirement.
        .map(|i| format!("{i}:{:#x}", unsafe { *log.ptr.add(i) }))
        .collect();
    obs.val("log bitmap", bitmap.join(" "));
    let mut cnt: u64 = 0;
    // SAFETY: `efd` is an eventfd owned here; `cnt` is a writable u64, the 8 bytes an eventfd read
    // fills.
    let r = unsafe { libc::read(efd.raw(), (&mut cnt as *mut u64).cast(), 8) };
    obs.val("log eventfd", format!("{r} {cnt}"));
    obs.ret("SET_BACKEND 0 -1 (logged)", d.backend(0, -1));
    // The used ring is written through the user mapping: a used ring
    // shared with a second mapping of the same page sees the write.
    obs.ret("close", d.0.close());
}
