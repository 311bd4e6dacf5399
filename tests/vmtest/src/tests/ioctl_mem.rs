//! SET_MEM_TABLE, SET_LOG_BASE and SET_LOG_FD.

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
        t("set_mem_table_region_counts", region_counts),
        t("set_mem_table_region_shapes", region_shapes),
        t("set_mem_table_checked_with_backend", mem_with_backend),
        t("set_log_base_values", log_base_values),
        t("set_log_fd_kinds", log_fd_kinds),
    ]
}

fn region_counts(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x100000);
    let regs: Vec<uapi::VhostMemoryRegion> = (0..70u64)
        .map(|i| region(i * 0x4000, 0x4000, m.addr() + i * 0x4000))
        .collect();
    obs.ret("no owner: 1 region", d.mem(&regs[..1]));
    obs.ret("no owner: NULL", d.io(uapi::VHOST_SET_MEM_TABLE, 0));
    obs.ret_ok("SET_OWNER", d.owner());
    for n in [0usize, 1, 2, 63, 64, 65, 70] {
        obs.ret(format!("{n} regions"), d.mem(&regs[..n]));
    }
    for (n, pad) in [(1u32, 1u32), (0, 0x8000_0000), (65, 1), (0x1_0000, 0)] {
        obs.ret(
            format!("nregions {n:#x} padding {pad:#x}"),
            d.mem_raw(n, pad, &regs[..1]),
        );
    }
    obs.ret("nregions 0xffffffff", d.mem_raw(0xffff_ffff, 0, &regs[..1]));
    // 64 regions: one real, 63 all-zero ones (size 0 at guest 0).
    let t = Map::new(8192);
    t.w32(0, 64);
    t.w64(8 + 8, 0x1000);
    t.w64(8 + 16, m.addr());
    obs.ret(
        "nregions 64, 63 of them zero",
        d.io(uapi::VHOST_SET_MEM_TABLE, t.ptr as usize),
    );
    obs.ret("NULL", d.io(uapi::VHOST_SET_MEM_TABLE, 0));
    obs.ret("unmapped", d.io(uapi::VHOST_SET_MEM_TABLE, unmapped()));
    obs.ret(
        "kernel",
        d.io(uapi::VHOST_SET_MEM_TABLE, KERNEL_ADDR as usize),
    );
    // Header readable, regions on an unmapped page.
    let edge = Map::edge();
    edge.w32(4088, 1);
    obs.ret(
        "header at page end, 1 region unmapped",
        d.io(uapi::VHOST_SET_MEM_TABLE, edge.at(4088)),
    );
    edge.w32(4088, 0);
    obs.ret(
        "header at page end, 0 regions",
        d.io(uapi::VHOST_SET_MEM_TABLE, edge.at(4088)),
    );
    // A read-only table is fine.
    let mut b = [0u8; 40];
    b[0] = 1;
    b[16..24].copy_from_slice(&0x1000u64.to_ne_bytes());
    b[24..32].copy_from_slice(&m.addr().to_ne_bytes());
    let ro = Map::ro_with(&b);
    obs.ret(
        "read-only table",
        d.io(uapi::VHOST_SET_MEM_TABLE, ro.ptr as usize),
    );
}

fn region_shapes(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let m = Map::new(0x10000);
    let a = m.addr();
    obs.ret_ok("SET_OWNER", d.owner());
    let mut pad = region(0x1000, 0x1000, a);
    pad.flags_padding = 0xffff_ffff_ffff_ffff;
    let cases: Vec<(&str, Vec<uapi::VhostMemoryRegion>)> = vec![
        ("one page", vec![region(0, 0x1000, a)]),
        ("size 0 at 0x1000", vec![region(0x1000, 0, a)]),
        ("size 0 at 0", vec![region(0, 0, a)]),
        ("size 1", vec![region(0x1000, 1, a)]),
        ("unaligned everything", vec![region(0x1001, 0x123, a + 7)]),
        ("flags_padding set", vec![pad]),
        (
            "overlapping",
            vec![region(0, 0x2000, a), region(0x1000, 0x2000, a + 0x1000)],
        ),
        (
            "duplicate",
            vec![region(0, 0x1000, a), region(0, 0x1000, a)],
        ),
        (
            "same uaddr twice",
            vec![region(0, 0x1000, a), region(0x10000, 0x1000, a)],
        ),
        (
            "wraps guest space",
            vec![region(u64::MAX - 0xfff, 0x2000, a)],
        ),
        (
            "ends at guest top",
            vec![region(u64::MAX - 0xfff, 0x1000, a)],
        ),
        ("whole guest space minus 1", vec![region(0, u64::MAX, a)]),
        ("from 1, size u64::MAX", vec![region(1, u64::MAX, a)]),
        ("kernel uaddr", vec![region(0, 0x1000, KERNEL_ADDR)]),
        ("uaddr wraps", vec![region(0, 0x2000, u64::MAX - 0xfff)]),
        ("uaddr NULL", vec![region(0, 0x1000, 0)]),
        ("uaddr above user end", vec![region(0, 0x1000, user_end())]),
        (
            "second region bad",
            vec![region(0, 0x1000, a), region(0x5000, 0, a)],
        ),
        ("empty again", vec![]),
    ];
    for (name, regs) in cases {
        obs.ret(format!("SET_MEM_TABLE {name}"), d.mem(&regs));
    }
}

fn mem_with_backend(obs: &mut Obs, _ctx: &Ctx) {
    // Once a ring has a backend, a new table must be accessible.
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    let a = rings.m.addr();
    let cases: Vec<(&str, Vec<uapi::VhostMemoryRegion>)> = vec![
        ("same", rings.table().to_vec()),
        ("empty", vec![]),
        ("kernel uaddr", vec![region(0, 0x1000, KERNEL_ADDR)]),
        (
            "uaddr ends at user end",
            vec![region(0, 0x1000, user_end() - 0x1000)],
        ),
        (
            "uaddr ends past user end",
            vec![region(0, 0x2000, user_end() - 0x1000)],
        ),
        ("uaddr wraps", vec![region(0, 0x2000, u64::MAX - 0xfff)]),
        ("size 0 at 0 (whole space)", vec![region(0, 0, a)]),
        ("unmapped user uaddr", vec![region(0, 0x1000, 0x1000_0000)]),
        (
            "second region kernel",
            vec![region(0, 0x1000, a), region(0x4000, 0x1000, KERNEL_ADDR)],
        ),
        (
            "64 regions",
            (0..64)
                .map(|i| region(i * 0x100, 0x100, a + i * 0x100))
                .collect(),
        ),
        ("restore", rings.table().to_vec()),
    ];
    for (name, regs) in cases {
        obs.ret(format!("with backend: {name}"), d.mem(&regs));
    }
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    obs.ret(
        "detached: kernel uaddr",
        d.mem(&[region(0, 0x1000, KERNEL_ADDR)]),
    );
    // The bad table stays in force: a backend cannot attach.
    obs.ret(
        "SET_BACKEND 0 tap with kernel table",
        d.backend(0, tap.raw()),
    );
    obs.ret("SET_BACKEND 0 -1 with kernel table", d.backend(0, -1));
    obs.ret("restore table", d.mem(&rings.table()));
    obs.ret("SET_BACKEND 0 tap again", d.backend(0, tap.raw()));
    obs.ret("SET_BACKEND 0 -1 end", d.backend(0, -1));
}

fn log_base_values(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret("no owner", d.set_u64(uapi::VHOST_SET_LOG_BASE, 0x1000));
    obs.ret_ok("SET_OWNER", d.owner());
    for v in [
        0u64,
        1,
        0x1000,
        0x1001,
        user_end(),
        KERNEL_ADDR,
        0x8000_0000_0000_0000,
        u64::MAX,
    ] {
        obs.ret(
            format!("SET_LOG_BASE {v:#x}"),
            d.set_u64(uapi::VHOST_SET_LOG_BASE, v),
        );
    }
    obs.ret("NULL", d.io(uapi::VHOST_SET_LOG_BASE, 0));
    obs.ret("unmapped", d.io(uapi::VHOST_SET_LOG_BASE, unmapped()));
    let ro = Map::ro_with(&0x2000u64.to_ne_bytes());
    obs.ret(
        "read-only page",
        d.io(uapi::VHOST_SET_LOG_BASE, ro.ptr as usize),
    );
    // With a backend, only what the log must cover is checked (nothing,
    // without LOG_ALL and without a logged used ring).
    let rings = Rings::new();
    let tap = tap();
    rings.setup(obs, &d, 0, "");
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret(
        "attached: SET_LOG_BASE kernel",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, KERNEL_ADDR),
    );
    obs.ret(
        "attached: SET_FEATURES LOG_ALL",
        d.features(1 << uapi::VHOST_F_LOG_ALL),
    );
    obs.ret(
        "attached: SET_LOG_BASE area",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, rings.m.addr()),
    );
    obs.ret(
        "attached: SET_FEATURES LOG_ALL 2",
        d.features(1 << uapi::VHOST_F_LOG_ALL),
    );
    obs.ret(
        "attached+LOG_ALL: SET_LOG_BASE kernel",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, KERNEL_ADDR),
    );
    obs.ret(
        "attached+LOG_ALL: SET_LOG_BASE u64::MAX",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, u64::MAX),
    );
    obs.ret(
        "attached+LOG_ALL: SET_LOG_BASE end-2",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 2),
    );
    obs.ret(
        "attached+LOG_ALL: SET_LOG_BASE end-1",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 1),
    );
    // Ring 1 has no backend: it took the value; ring 0 kept end-2. A
    // detach of ring 0 re-checks its own log base.
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    obs.ret("SET_BACKEND 0 tap again", d.backend(0, tap.raw()));
    obs.ret("SET_BACKEND 0 -1 again", d.backend(0, -1));
    // A detached ring with a bad log base and LOG_ALL cannot attach.
    obs.ret(
        "detached: SET_LOG_BASE kernel",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, KERNEL_ADDR),
    );
    obs.ret("detached: SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret("detached: SET_BACKEND 0 -1", d.backend(0, -1));
}

fn log_fd_kinds(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let e = eventfd();
    let (pr, _pw) = pipe();
    let closed = closed_fd();
    let other = Dev::open();
    let set = |fd: i32| {
        let mut v = fd;
        d.io(uapi::VHOST_SET_LOG_FD, &mut v as *mut i32 as usize)
    };
    obs.ret("no owner: eventfd", set(e.raw()));
    obs.ret("no owner: NULL", d.io(uapi::VHOST_SET_LOG_FD, 0));
    obs.ret_ok("SET_OWNER", d.owner());
    for (name, fd) in [
        ("eventfd", e.raw()),
        ("same eventfd", e.raw()),
        ("-1", -1),
        ("-1 again", -1),
        ("-2", -2),
        ("pipe", pr.raw()),
        ("vhost-net fd", other.raw()),
        ("closed fd", closed),
        ("i32::MAX", i32::MAX),
        ("eventfd at end", e.raw()),
    ] {
        obs.ret(format!("SET_LOG_FD {name}"), set(fd));
    }
    obs.ret("NULL", d.io(uapi::VHOST_SET_LOG_FD, 0));
    obs.ret("unmapped", d.io(uapi::VHOST_SET_LOG_FD, unmapped()));
    let ro = Map::ro_with(&(-1i32).to_ne_bytes());
    obs.ret(
        "read-only -1",
        d.io(uapi::VHOST_SET_LOG_FD, ro.ptr as usize),
    );
    // Only 4 bytes are read: the last 4 bytes of a page.
    let edge = Map::edge();
    edge.w32(4092, u32::MAX);
    obs.ret(
        "-1 in the last 4 bytes of a page",
        d.io(uapi::VHOST_SET_LOG_FD, edge.at(4092)),
    );
    obs.ret(
        "straddling into unmapped",
        d.io(uapi::VHOST_SET_LOG_FD, edge.at(4094)),
    );
}
