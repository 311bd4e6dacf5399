//! The per-ring ioctls: SET_VRING_NUM/ADDR/BASE, GET_VRING_BASE, the
//! eventfd ioctls, ENDIAN, BUSYLOOP_TIMEOUT, the worker ioctls (routed to
//! the ring path by vhost-net) and foreign or garbage ioctl numbers.

use super::ioctl_util::*;
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("set_vring_num_values", set_vring_num_values),
        t("vring_ioctls_bad_index_and_pointer", bad_index_and_pointer),
        t("set_vring_base_values_read_back", set_vring_base_values),
        t("set_vring_addr_flags_and_alignment", set_vring_addr_checks),
        t(
            "set_vring_addr_checked_with_backend",
            set_vring_addr_backend,
        ),
        t("vring_num_base_busy_with_backend", busy_with_backend),
        t("vring_eventfd_kinds", vring_eventfds),
        t("vring_busyloop_timeout_values", busyloop_values),
        t("vring_endian_not_configured", vring_endian),
        t("worker_ioctls_take_the_ring_path", worker_ioctls),
        t("foreign_and_garbage_ioctl_numbers", foreign_ioctls),
    ]
}

fn set_vring_num_values(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("SET_OWNER", d.owner());
    for num in [
        0u32,
        1,
        2,
        3,
        4,
        6,
        255,
        256,
        257,
        1024,
        4096,
        0x4000,
        0x7fff,
        0x8000,
        0x8001,
        0xc000,
        0xffff,
        0x10000,
        0x10001,
        0x20000,
        0x8000_0000,
        0xffff_ffff,
    ] {
        for idx in [0u32, 1] {
            let (r, s) = d.st(uapi::VHOST_SET_VRING_NUM, idx, num);
            obs.ret(format!("SET_VRING_NUM {idx} {num:#x}"), r);
            if num == 0x8000 {
                obs.val(format!("struct after {idx} {num:#x}"), format!("{s:?}"));
            }
        }
    }
}

fn bad_index_and_pointer(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("SET_OWNER", d.owner());
    let un = unmapped();
    let ro_idx0 = Map::ro_with(&[0u8; 40]);
    let ro_idx5 = Map::ro_with(&[5, 0, 0, 0, 1, 0, 0, 0]);
    // The index is read as a u32 first: a pointer to 4 readable bytes at
    // the very end of a page, followed by an unmapped page.
    let edge = Map::new(8192);
    // SAFETY: unmaps the upper page of `edge`, an 8 KiB mapping this test owns; no Rust reference
    // points into it and only the lower page is accessed afterwards.
    unsafe { libc::munmap(edge.at(4096) as *mut libc::c_void, 4096) };
    edge.w32(4092, 0);
    let reqs = [
        ("SET_VRING_NUM", uapi::VHOST_SET_VRING_NUM),
        ("SET_VRING_ADDR", uapi::VHOST_SET_VRING_ADDR),
        ("SET_VRING_BASE", uapi::VHOST_SET_VRING_BASE),
        ("GET_VRING_BASE", uapi::VHOST_GET_VRING_BASE),
        ("SET_VRING_KICK", uapi::VHOST_SET_VRING_KICK),
        ("SET_VRING_CALL", uapi::VHOST_SET_VRING_CALL),
        ("SET_VRING_ERR", uapi::VHOST_SET_VRING_ERR),
        ("SET_VRING_ENDIAN", uapi::VHOST_SET_VRING_ENDIAN),
        ("GET_VRING_ENDIAN", uapi::VHOST_GET_VRING_ENDIAN),
        ("SET_BUSYLOOP", uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT),
        ("GET_BUSYLOOP", uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT),
        ("NET_SET_BACKEND", uapi::VHOST_NET_SET_BACKEND),
    ];
    for (name, req) in reqs {
        for idx in [2u32, 3, 0x100, 0xffff_ffff] {
            let (r, s) = d.st(req, idx, 1);
            obs.ret(format!("{name} index {idx:#x}"), r);
            if idx == 2 {
                obs.val(format!("{name} index 2 struct"), format!("{s:?}"));
            }
        }
        obs.ret(format!("{name} NULL"), d.io(req, 0));
        obs.ret(format!("{name} unmapped"), d.io(req, un));
        obs.ret(format!("{name} kernel"), d.io(req, KERNEL_ADDR as usize));
        obs.ret(
            format!("{name} read-only index 0"),
            d.io(req, ro_idx0.ptr as usize),
        );
        obs.ret(
            format!("{name} read-only index 5"),
            d.io(req, ro_idx5.ptr as usize),
        );
        obs.ret(
            format!("{name} index at page end"),
            d.io(req, edge.at(4092)),
        );
    }
}

fn set_vring_base_values(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("SET_OWNER", d.owner());
    obs.val("GET_VRING_BASE 0 fresh", d.base(0));
    obs.val("GET_VRING_BASE 1 fresh", d.base(1));
    for num in [
        0u32,
        1,
        7,
        0x100,
        0x7fff,
        0x8000,
        0xfffe,
        0xffff,
        0x10000,
        0x1_0005,
        0xffff_ffff,
    ] {
        obs.ret(
            format!("SET_VRING_BASE 0 {num:#x}"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, 0, num),
        );
        obs.val(format!("GET_VRING_BASE 0 after {num:#x}"), d.base(0));
    }
    obs.ret(
        "SET_VRING_BASE 1 0x1234",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 1, 0x1234),
    );
    obs.val("GET_VRING_BASE 0 (independent)", d.base(0));
    obs.val("GET_VRING_BASE 1", d.base(1));
    // GET_VRING_BASE writes the whole struct back, index included.
    let ro = Map::ro_with(&[1, 0, 0, 0, 0, 0, 0, 0]);
    obs.ret(
        "GET_VRING_BASE read-only page",
        d.io(uapi::VHOST_GET_VRING_BASE, ro.ptr as usize),
    );
    obs.ret(
        "SET_VRING_BASE read-only page",
        d.io(uapi::VHOST_SET_VRING_BASE, ro.ptr as usize),
    );
    obs.val("GET_VRING_BASE 1 after read-only set", d.base(1));
    // The ring size does not bound the base.
    obs.ret("SET_VRING_NUM 0 4", d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 4));
    obs.ret(
        "SET_VRING_BASE 0 100 with num 4",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 100),
    );
    obs.val("GET_VRING_BASE 0 with num 4", d.base(0));
    // The value survives a failed SET_BACKEND.
    obs.ret("SET_BACKEND 0 -1 (no table)", d.backend(0, -1));
    obs.val("GET_VRING_BASE 0 after failed backend", d.base(0));
}

fn set_vring_addr_checks(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("SET_OWNER", d.owner());
    let ok = uapi::VhostVringAddr {
        index: 0,
        flags: 0,
        desc_user_addr: 0x10000,
        used_user_addr: 0x20000,
        avail_user_addr: 0x30000,
        log_guest_addr: 0x40000,
    };
    let with = |f: &dyn Fn(&mut uapi::VhostVringAddr)| {
        let mut a = ok;
        f(&mut a);
        a
    };
    let cases: Vec<(&str, uapi::VhostVringAddr)> = vec![
        ("all aligned", ok),
        ("all zero", uapi::VhostVringAddr::default()),
        ("index 1", with(&|a| a.index = 1)),
        ("flags LOG", with(&|a| a.flags = 1)),
        ("flags 2", with(&|a| a.flags = 2)),
        ("flags 3", with(&|a| a.flags = 3)),
        ("flags 0x80000000", with(&|a| a.flags = 0x8000_0000)),
        ("desc +1", with(&|a| a.desc_user_addr += 1)),
        ("desc +8", with(&|a| a.desc_user_addr += 8)),
        ("avail +1", with(&|a| a.avail_user_addr += 1)),
        ("avail +2", with(&|a| a.avail_user_addr += 2)),
        ("used +1", with(&|a| a.used_user_addr += 1)),
        ("used +2", with(&|a| a.used_user_addr += 2)),
        ("used +4", with(&|a| a.used_user_addr += 4)),
        ("log +2, no LOG flag", with(&|a| a.log_guest_addr += 2)),
        (
            "log +2, LOG flag",
            with(&|a| {
                a.log_guest_addr += 2;
                a.flags = 1
            }),
        ),
        (
            "log +4, LOG flag",
            with(&|a| {
                a.log_guest_addr += 4;
                a.flags = 1
            }),
        ),
        (
            "flags 2 and avail +1",
            with(&|a| {
                a.flags = 2;
                a.avail_user_addr += 1
            }),
        ),
        (
            "kernel addresses",
            with(&|a| {
                a.desc_user_addr = KERNEL_ADDR;
                a.avail_user_addr = KERNEL_ADDR;
                a.used_user_addr = KERNEL_ADDR;
            }),
        ),
        (
            "u64::MAX-3 all",
            with(&|a| {
                a.desc_user_addr = u64::MAX - 3;
                a.avail_user_addr = u64::MAX - 3;
                a.used_user_addr = u64::MAX - 3;
                a.log_guest_addr = u64::MAX - 3;
            }),
        ),
        (
            "log u64::MAX-3 LOG flag",
            with(&|a| {
                a.log_guest_addr = u64::MAX - 3;
                a.flags = 1
            }),
        ),
        (
            "user end",
            with(&|a| {
                a.desc_user_addr = user_end();
                a.avail_user_addr = user_end();
                a.used_user_addr = user_end();
            }),
        ),
        ("index 2", with(&|a| a.index = 2)),
        (
            "index 2 and flags 2",
            with(&|a| {
                a.index = 2;
                a.flags = 2
            }),
        ),
    ];
    for (name, a) in cases {
        obs.ret(format!("SET_VRING_ADDR {name}"), d.addr(a));
    }
    // The struct is read whole: 40 bytes, the last one on an unmapped page.
    let edge = Map::new(8192);
    // SAFETY: unmaps the upper page of `edge`, an 8 KiB mapping this test owns; no Rust reference
    // points into it; the test only hands addresses in it to the kernel.
    unsafe { libc::munmap(edge.at(4096) as *mut libc::c_void, 4096) };
    obs.ret(
        "SET_VRING_ADDR struct crossing into unmapped",
        d.io(uapi::VHOST_SET_VRING_ADDR, edge.at(4096 - 39)),
    );
    obs.ret(
        "SET_VRING_ADDR struct at page end",
        d.io(uapi::VHOST_SET_VRING_ADDR, edge.at(4096 - 40)),
    );
}

fn set_vring_addr_backend(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    let ok = rings.vaddr(0);
    let with = |f: &dyn Fn(&mut uapi::VhostVringAddr)| {
        let mut a = ok;
        f(&mut a);
        a
    };
    let cases: Vec<(&str, uapi::VhostVringAddr)> = vec![
        ("same addresses", ok),
        ("kernel desc", with(&|a| a.desc_user_addr = KERNEL_ADDR)),
        ("kernel avail", with(&|a| a.avail_user_addr = KERNEL_ADDR)),
        ("kernel used", with(&|a| a.used_user_addr = KERNEL_ADDR)),
        ("desc misaligned +1", with(&|a| a.desc_user_addr += 1)),
        (
            "avail +1 (alignment first)",
            with(&|a| a.avail_user_addr += 1),
        ),
        ("flags 2", with(&|a| a.flags = 2)),
        ("LOG flag, log addr 0", with(&|a| a.flags = 1)),
        (
            "LOG flag, log addr 1<<62",
            with(&|a| {
                a.flags = 1;
                a.log_guest_addr = 1 << 62
            }),
        ),
        (
            "no LOG flag, log addr 1<<62",
            with(&|a| a.log_guest_addr = 1 << 62),
        ),
        (
            "unmapped but user addresses",
            with(&|a| {
                a.desc_user_addr = 0x1000_0000;
                a.avail_user_addr = 0x1000_0000;
                a.used_user_addr = 0x1000_0000;
            }),
        ),
        ("restore", ok),
    ];
    for (name, a) in cases {
        obs.ret(format!("SET_VRING_ADDR {name}"), d.addr(a));
    }
    // With a log base at the end of the user range, the used ring's log
    // (1 byte for guest 0..0x8000) must fit.
    obs.ret(
        "SET_LOG_BASE end-1",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 1),
    );
    obs.ret(
        "SET_VRING_ADDR LOG flag, log 0",
        d.addr(with(&|a| a.flags = 1)),
    );
    obs.ret(
        "SET_VRING_ADDR LOG flag, log 0x8000",
        d.addr(with(&|a| {
            a.flags = 1;
            a.log_guest_addr = 0x8000
        })),
    );
    obs.ret(
        "SET_LOG_BASE end (log_used on)",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end()),
    );
    obs.ret(
        "SET_LOG_BASE end-1 (log_used on)",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 1),
    );
    obs.ret("SET_VRING_ADDR restore 2", d.addr(ok));
    obs.ret(
        "SET_LOG_BASE end (log_used off)",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end()),
    );
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    // Detached: nothing is checked any more.
    obs.ret(
        "detached: kernel used",
        d.addr(with(&|a| a.used_user_addr = KERNEL_ADDR)),
    );
}

fn busy_with_backend(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    obs.ret(
        "SET_VRING_BASE 0 5",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 5),
    );
    rings.m.w16(AVAIL_OFF + 2, 5);
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    let step = |obs: &mut Obs, l: &str| {
        obs.ret(
            format!("{l}: SET_VRING_NUM 0 128"),
            d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 128),
        );
        obs.ret(
            format!("{l}: SET_VRING_NUM 0 invalid 3"),
            d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 3),
        );
        obs.ret(
            format!("{l}: SET_VRING_NUM 0 NULL-ish (index read)"),
            d.io(uapi::VHOST_SET_VRING_NUM, 0),
        );
        obs.ret(
            format!("{l}: SET_VRING_BASE 0 9"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 9),
        );
        obs.ret(
            format!("{l}: SET_VRING_BASE 0 0x10000"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 0x10000),
        );
        obs.val(format!("{l}: GET_VRING_BASE 0"), d.base(0));
        obs.ret(
            format!("{l}: SET_VRING_NUM 1 128"),
            d.st_r(uapi::VHOST_SET_VRING_NUM, 1, 128),
        );
        obs.ret(
            format!("{l}: SET_VRING_BASE 1 9"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, 1, 9),
        );
        obs.ret(
            format!("{l}: SET_VRING_ENDIAN 0"),
            d.st_r(uapi::VHOST_SET_VRING_ENDIAN, 0, 0),
        );
        obs.ret(
            format!("{l}: SET_BUSYLOOP 0"),
            d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 0, 10),
        );
    };
    step(obs, "attached");
    obs.val(
        "used flags after attach",
        format!("{:#x}", rings.used_flags()),
    );
    obs.ret("SET_BACKEND 0 tap again (same)", d.backend(0, tap.raw()));
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    step(obs, "detached");
    obs.ret("SET_BACKEND 0 -1 again", d.backend(0, -1));
}

fn vring_eventfds(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let e1 = eventfd();
    let e2 = eventfd();
    let (pr, pw) = pipe();
    let other = Dev::open();
    let sock = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
    let file = regular_file();
    let closed = closed_fd();
    // A signalled eventfd as kick: polling starts with a pending event.
    let hot = eventfd();
    let one: u64 = 1;
    // SAFETY: `hot` is an eventfd owned here; `one` is a readable u64, the 8 bytes an eventfd write
    // takes.
    unsafe { libc::write(hot.raw(), (&one as *const u64).cast(), 8) };
    let ro = Map::ro_with(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    let fds: Vec<(&str, i32)> = vec![
        ("eventfd", e1.raw()),
        ("same eventfd", e1.raw()),
        ("another eventfd", e2.raw()),
        ("signalled eventfd", hot.raw()),
        ("-1", -1),
        ("-1 again", -1),
        ("-2", -2),
        ("pipe read end", pr.raw()),
        ("pipe write end", pw.raw()),
        ("vhost-net fd", other.raw()),
        ("self", d.raw()),
        ("unix socket", sock.raw()),
        ("regular file", file.raw()),
        ("closed fd", closed),
        ("fd 100000", 100_000),
        ("i32::MIN", i32::MIN),
        ("eventfd at end", e2.raw()),
    ];
    obs.ret_ok("SET_OWNER", d.owner());
    for (name, req) in [
        ("KICK", uapi::VHOST_SET_VRING_KICK),
        ("CALL", uapi::VHOST_SET_VRING_CALL),
        ("ERR", uapi::VHOST_SET_VRING_ERR),
    ] {
        for idx in [0u32, 1] {
            for (fname, fd) in &fds {
                obs.ret(format!("{name} {idx} {fname}"), d.file(req, idx, *fd));
            }
        }
        obs.ret(format!("{name} index 2 eventfd"), d.file(req, 2, e1.raw()));
        obs.ret(format!("{name} index 2 -1"), d.file(req, 2, -1));
        obs.ret(format!("{name} NULL"), d.io(req, 0));
        obs.ret(
            format!("{name} read-only {{0,-1}}"),
            d.io(req, ro.ptr as usize),
        );
    }
    // The device keeps its own references: closing ours changes nothing.
    drop(e2);
    obs.ret(
        "SET_VRING_KICK 0 -1 after close",
        d.file(uapi::VHOST_SET_VRING_KICK, 0, -1),
    );
    obs.ret("close", d.0.close());
}

fn busyloop_values(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.val("no owner: GET 0", d.busyloop(0));
    obs.ret(
        "no owner: SET 0 5",
        d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 0, 5),
    );
    obs.ret_ok("SET_OWNER", d.owner());
    obs.val("GET 0 fresh", d.busyloop(0));
    obs.val("GET 1 fresh", d.busyloop(1));
    for v in [0u32, 1, 50, 1000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0] {
        obs.ret(
            format!("SET 0 {v:#x}"),
            d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 0, v),
        );
        obs.val(format!("GET 0 after {v:#x}"), d.busyloop(0));
    }
    obs.ret(
        "SET 1 77",
        d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 1, 77),
    );
    obs.val("GET 0 (independent)", d.busyloop(0));
    obs.val("GET 1", d.busyloop(1));
    obs.val("GET 2", d.busyloop(2));
    let ro = Map::ro_with(&[1, 0, 0, 0, 9, 0, 0, 0]);
    obs.ret(
        "GET read-only",
        d.io(uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT, ro.ptr as usize),
    );
    obs.ret(
        "SET read-only {1, 9}",
        d.io(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, ro.ptr as usize),
    );
    obs.val("GET 1 after read-only set", d.busyloop(1));
    // With a backend attached the value may still change.
    let rings = Rings::new();
    let tap = tap();
    rings.setup(obs, &d, 0, "");
    obs.ret("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret(
        "attached: SET 0 20",
        d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, 0, 20),
    );
    obs.val("attached: GET 0", d.busyloop(0));
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
}

fn vring_endian(obs: &mut Obs, _ctx: &Ctx) {
    // The kernel is built without CONFIG_VHOST_CROSS_ENDIAN_LEGACY: after
    // the owner and index checks, both ioctls are unknown.
    let d = Dev::open();
    for (l, owned) in [("no owner", false), ("owner", true)] {
        if owned {
            obs.ret_ok("SET_OWNER", d.owner());
        }
        for (v, idx) in [(0u32, 0u32), (1, 0), (2, 1), (0, 2)] {
            let (r, s) = d.st(uapi::VHOST_SET_VRING_ENDIAN, idx, v);
            obs.ret(format!("{l}: SET_VRING_ENDIAN {idx} {v}"), r);
            obs.val(format!("{l}: SET struct {idx} {v}"), format!("{s:?}"));
            let (r, s) = d.st(uapi::VHOST_GET_VRING_ENDIAN, idx, 0xabc);
            obs.ret(format!("{l}: GET_VRING_ENDIAN {idx}"), r);
            obs.val(format!("{l}: GET struct {idx} {v}"), format!("{s:?}"));
        }
        obs.ret(
            format!("{l}: GET_VRING_ENDIAN NULL"),
            d.io(uapi::VHOST_GET_VRING_ENDIAN, 0),
        );
    }
    // With a backend attached (C checks EBUSY only when configured).
    let rings = Rings::new();
    let tap = tap();
    rings.setup(obs, &d, 0, "");
    obs.ret("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret(
        "attached: SET_VRING_ENDIAN 0 1",
        d.st_r(uapi::VHOST_SET_VRING_ENDIAN, 0, 1),
    );
}

fn worker_ioctls(obs: &mut Obs, _ctx: &Ctx) {
    // vhost-net does not call vhost_worker_ioctl: the worker ioctls fall
    // through to the ring ioctls, which read the first u32 as a ring index
    // and then do not know the command.
    let d = Dev::open();
    let threads = thread_count();
    let reqs = [
        ("NEW_WORKER", uapi::VHOST_NEW_WORKER),
        ("FREE_WORKER", uapi::VHOST_FREE_WORKER),
        ("ATTACH_VRING_WORKER", uapi::VHOST_ATTACH_VRING_WORKER),
        ("GET_VRING_WORKER", uapi::VHOST_GET_VRING_WORKER),
    ];
    let run = |obs: &mut Obs, l: &str| {
        for (name, req) in reqs {
            for first in [0u32, 1, 2, 0xffff_ffff] {
                let mut w = uapi::VhostVringWorker {
                    index: first,
                    worker_id: 0x55,
                };
                let r = d.io(req, &mut w as *mut _ as usize);
                obs.ret(format!("{l}: {name} first word {first:#x}"), r);
                obs.val(
                    format!("{l}: {name} struct after {first:#x}"),
                    format!("{w:?}"),
                );
            }
            obs.ret(format!("{l}: {name} NULL"), d.io(req, 0));
        }
    };
    run(obs, "no owner");
    obs.ret_ok("SET_OWNER", d.owner());
    let owned_threads = thread_count();
    run(obs, "owner");
    obs.val(
        "threads added by the worker ioctls",
        thread_count() as i64 - owned_threads as i64,
    );
    obs.val("threads added by SET_OWNER", owned_threads - threads);
    // In kthread mode C's NEW_WORKER would refuse; vhost-net never gets
    // there.
    let k = Dev::open();
    obs.ret("kthread SET_FORK 0", k.set_fork(0));
    obs.ret_ok("kthread SET_OWNER", k.owner());
    let mut w = uapi::VhostWorkerState { worker_id: 0 };
    obs.ret(
        "kthread NEW_WORKER",
        k.io(uapi::VHOST_NEW_WORKER, &mut w as *mut _ as usize),
    );
    obs.val("kthread NEW_WORKER id", w.worker_id);
}

fn foreign_ioctls(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let un = unmapped();
    let reqs: Vec<(&str, u32)> = vec![
        ("SCSI_SET_ENDPOINT", uapi::VHOST_SCSI_SET_ENDPOINT),
        ("SCSI_CLEAR_ENDPOINT", uapi::VHOST_SCSI_CLEAR_ENDPOINT),
        ("SCSI_GET_ABI_VERSION", uapi::VHOST_SCSI_GET_ABI_VERSION),
        ("VSOCK_SET_GUEST_CID", uapi::VHOST_VSOCK_SET_GUEST_CID),
        ("VSOCK_SET_RUNNING", uapi::VHOST_VSOCK_SET_RUNNING),
        ("VDPA_GET_DEVICE_ID", uapi::VHOST_VDPA_GET_DEVICE_ID),
        ("VDPA_GET_STATUS", uapi::VHOST_VDPA_GET_STATUS),
        ("VDPA_SET_STATUS", uapi::VHOST_VDPA_SET_STATUS),
        ("VDPA_GET_CONFIG", uapi::VHOST_VDPA_GET_CONFIG),
        ("VDPA_SET_VRING_ENABLE", uapi::VHOST_VDPA_SET_VRING_ENABLE),
        ("VDPA_GET_VRING_NUM", uapi::VHOST_VDPA_GET_VRING_NUM),
        ("VDPA_GET_IOVA_RANGE", uapi::VHOST_VDPA_GET_IOVA_RANGE),
        ("VDPA_SUSPEND", uapi::VHOST_VDPA_SUSPEND),
        ("VDPA_GET_VRING_SIZE", uapi::VHOST_VDPA_GET_VRING_SIZE),
        // Known numbers with the wrong size or direction.
        (
            "SET_OWNER as _IOW(u64)",
            uapi::iow(uapi::VHOST_VIRTIO, 0x01, 8),
        ),
        (
            "RESET_OWNER as _IOR(u32)",
            uapi::ior(uapi::VHOST_VIRTIO, 0x02, 4),
        ),
        (
            "GET_FEATURES as _IOR(u32)",
            uapi::ior(uapi::VHOST_VIRTIO, 0x00, 4),
        ),
        ("SET_FEATURES as _IO", uapi::io(uapi::VHOST_VIRTIO, 0x00)),
        (
            "SET_VRING_NUM as _IOWR",
            uapi::iowr(uapi::VHOST_VIRTIO, 0x10, 8),
        ),
        (
            "GET_VRING_BASE as _IOR",
            uapi::ior(uapi::VHOST_VIRTIO, 0x12, 8),
        ),
        (
            "NET_SET_BACKEND as _IOW(16)",
            uapi::iow(uapi::VHOST_VIRTIO, 0x30, 16),
        ),
        (
            "SET_FORK as _IOW(u32)",
            uapi::iow(uapi::VHOST_VIRTIO, 0x84, 4),
        ),
        (
            "GET_FORK as _IOR(u32)",
            uapi::ior(uapi::VHOST_VIRTIO, 0x85, 4),
        ),
        ("nr 0x05", uapi::io(uapi::VHOST_VIRTIO, 0x05)),
        ("nr 0x06 _IOW(u64)", uapi::iow(uapi::VHOST_VIRTIO, 0x06, 8)),
        ("nr 0x17 _IOW(8)", uapi::iow(uapi::VHOST_VIRTIO, 0x17, 8)),
        ("nr 0x31 _IOW(8)", uapi::iow(uapi::VHOST_VIRTIO, 0x31, 8)),
        ("nr 0x86 _IOW(1)", uapi::iow(uapi::VHOST_VIRTIO, 0x86, 1)),
        ("nr 0xff", uapi::io(uapi::VHOST_VIRTIO, 0xff)),
        ("KVM type 0xAE nr 0x01", uapi::io(0xAE, 0x01)),
        ("type 0 nr 0", 0),
        ("TUNSETIFF", 0x4004_54ca),
        ("FIONBIO", libc::FIONBIO as u32),
        ("FIOCLEX", libc::FIOCLEX as u32),
        ("FIONREAD", libc::FIONREAD as u32),
        ("0xffffffff", 0xffff_ffff),
    ];
    let idx0 = Map::new(4096);
    let idx5 = Map::new(4096);
    idx5.w32(0, 5);
    let run = |obs: &mut Obs, l: &str| {
        for (name, req) in &reqs {
            obs.ret(format!("{l}: {name} &0"), d.io(*req, idx0.ptr as usize));
            obs.ret(format!("{l}: {name} &5"), d.io(*req, idx5.ptr as usize));
            obs.ret(format!("{l}: {name} unmapped"), d.io(*req, un));
        }
    };
    run(obs, "no owner");
    obs.ret_ok("SET_OWNER", d.owner());
    run(obs, "owner");
    // Nothing was written to the argument pages.
    let dirty = (0..4096).step_by(4).any(|o| idx0.r32(o) != 0)
        || idx5.r32(0) != 5
        || (4..4096).step_by(4).any(|o| idx5.r32(o) != 0);
    obs.val("argument pages written", dirty);
    // FIOCLEX/FIONBIO are handled by the VFS.
    // SAFETY: fcntl(F_GETFD) on the device fd owned by `d`; integer arguments only.
    let fl = unsafe { libc::fcntl(d.raw(), libc::F_GETFD) };
    obs.val("FD_CLOEXEC after FIOCLEX", fl & libc::FD_CLOEXEC);
    obs.val("GET_FEATURES still", d.get_u64(uapi::VHOST_GET_FEATURES));
}
