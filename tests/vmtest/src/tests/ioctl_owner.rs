//! The ownership contract: which ioctls need the owner (EPERM otherwise),
//! which work for anyone, SET_OWNER from a thread, and what RESET_OWNER
//! resets.

use super::basic::in_child;
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
        t("owner_only_ioctls_eperm_before_owner", before_owner),
        t("owner_only_ioctls_eperm_in_forked_child", forked_child),
        t("two_fds_two_owners", two_owners),
        t("set_owner_from_thread", from_thread),
        t("reset_owner_resets_vring_state", reset_state),
        t("reset_owner_drops_backend_and_iotlb", reset_backend),
        t("set_owner_worker_not_created_enomem", worker_not_created),
    ]
}

/// `VHOST_SET_OWNER` when the worker cannot be created: in a child that
/// became an unprivileged user (uid 65534) with `RLIMIT_NPROC` 0, the
/// worker's `copy_process` fails (`EAGAIN`). C's `vhost_worker_create`
/// only says it failed and `vhost_dev_set_owner` answers `ENOMEM`; so does
/// ours (it passed `EAGAIN` on once). Nothing is left owned: a second
/// try answers the same, and ring ioctls still need an owner (`EPERM`).
fn worker_not_created(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    in_child(obs, "child ", |o| {
        let lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setgid/setuid with integer arguments; setrlimit reads the
        // `rlimit` given, which lives across the call.
        let r = unsafe {
            (
                libc::setgid(65534),
                libc::setuid(65534),
                libc::setrlimit(libc::RLIMIT_NPROC, &lim),
            )
        };
        o.val("setgid, setuid, setrlimit", format!("{r:?}"));
        o.ret("SET_OWNER", d.owner());
        o.ret("SET_OWNER again", d.owner());
        o.val("GET_VRING_BASE 0 (no owner: EPERM)", d.base(0));
    });
}

/// Every ioctl with valid-looking arguments for index `idx`, as
/// `(name, result)`. `ptr_ok` false passes NULL instead.
fn all_ioctls(d: &Dev, idx: u32, null: bool) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let e = eventfd();
    let mut st = uapi::VhostVringState { index: idx, num: 1 };
    let mut fl = uapi::VhostVringFile { index: idx, fd: -1 };
    let mut ad = uapi::VhostVringAddr {
        index: idx,
        ..Default::default()
    };
    let mut mem = [0u64; 1];
    let mut u: u64 = 0;
    let mut fd: i32 = -1;
    let mut w = uapi::VhostVringWorker {
        index: idx,
        worker_id: 0,
    };
    let sp = |p: usize| if null { 0 } else { p };
    let stp = sp(&mut st as *mut _ as usize);
    let flp = sp(&mut fl as *mut _ as usize);
    let efl = {
        let b = Box::leak(Box::new(uapi::VhostVringFile {
            index: idx,
            fd: e.raw(),
        }));
        sp(b as *mut _ as usize)
    };
    let cases: Vec<(&str, u32, usize)> = vec![
        (
            "SET_MEM_TABLE",
            uapi::VHOST_SET_MEM_TABLE,
            sp(mem.as_mut_ptr() as usize),
        ),
        (
            "SET_LOG_BASE",
            uapi::VHOST_SET_LOG_BASE,
            sp(&mut u as *mut _ as usize),
        ),
        (
            "SET_LOG_FD",
            uapi::VHOST_SET_LOG_FD,
            sp(&mut fd as *mut _ as usize),
        ),
        ("SET_VRING_NUM", uapi::VHOST_SET_VRING_NUM, stp),
        (
            "SET_VRING_ADDR",
            uapi::VHOST_SET_VRING_ADDR,
            sp(&mut ad as *mut _ as usize),
        ),
        ("SET_VRING_BASE", uapi::VHOST_SET_VRING_BASE, stp),
        ("GET_VRING_BASE", uapi::VHOST_GET_VRING_BASE, stp),
        ("SET_VRING_KICK", uapi::VHOST_SET_VRING_KICK, efl),
        ("SET_VRING_CALL", uapi::VHOST_SET_VRING_CALL, efl),
        ("SET_VRING_ERR", uapi::VHOST_SET_VRING_ERR, efl),
        ("SET_VRING_ENDIAN", uapi::VHOST_SET_VRING_ENDIAN, stp),
        ("GET_VRING_ENDIAN", uapi::VHOST_GET_VRING_ENDIAN, stp),
        (
            "SET_VRING_BUSYLOOP_TIMEOUT",
            uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT,
            stp,
        ),
        (
            "GET_VRING_BUSYLOOP_TIMEOUT",
            uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT,
            stp,
        ),
        ("NET_SET_BACKEND -1", uapi::VHOST_NET_SET_BACKEND, flp),
        (
            "NEW_WORKER",
            uapi::VHOST_NEW_WORKER,
            sp(&mut w as *mut _ as usize),
        ),
        (
            "FREE_WORKER",
            uapi::VHOST_FREE_WORKER,
            sp(&mut w as *mut _ as usize),
        ),
        (
            "ATTACH_VRING_WORKER",
            uapi::VHOST_ATTACH_VRING_WORKER,
            sp(&mut w as *mut _ as usize),
        ),
        (
            "GET_VRING_WORKER",
            uapi::VHOST_GET_VRING_WORKER,
            sp(&mut w as *mut _ as usize),
        ),
        ("_IO(0xAF,0x7F)", uapi::io(uapi::VHOST_VIRTIO, 0x7f), stp),
        ("RESET_OWNER", uapi::VHOST_RESET_OWNER, 0),
    ];
    for (name, req, arg) in cases {
        v.push((name.to_string(), fmt_res(&d.io(req, arg))));
    }
    v.push(("state struct after".into(), format!("{st:?}")));
    v
}

/// The ioctls that need no owner, as `(name, result)`.
fn owner_free_ioctls(d: &Dev) -> Vec<(String, String)> {
    vec![
        ("GET_FEATURES".into(), d.get_u64(uapi::VHOST_GET_FEATURES)),
        ("SET_FEATURES 0".into(), fmt_res(&d.features(0))),
        (
            "SET_FEATURES VERSION_1".into(),
            fmt_res(&d.features(1 << uapi::VIRTIO_F_VERSION_1)),
        ),
        (
            "GET_BACKEND_FEATURES".into(),
            d.get_u64(uapi::VHOST_GET_BACKEND_FEATURES),
        ),
        (
            "SET_BACKEND_FEATURES MSG_V2".into(),
            fmt_res(&d.backend_features(1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2)),
        ),
        ("SET_FORK_FROM_OWNER 1".into(), fmt_res(&d.set_fork(1))),
        ("GET_FORK_FROM_OWNER".into(), d.get_fork()),
    ]
}

fn before_owner(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    for (k, r) in all_ioctls(&d, 0, false) {
        obs.val(format!("no owner: {k}"), r);
    }
    // The owner check comes before the index and the pointer.
    for (k, r) in all_ioctls(&d, 7, false) {
        obs.val(format!("no owner, index 7: {k}"), r);
    }
    for (k, r) in all_ioctls(&d, 0, true) {
        obs.val(format!("no owner, NULL: {k}"), r);
    }
    for (k, v) in owner_free_ioctls(&d) {
        obs.val(format!("no owner: {k}"), v);
    }
    obs.ret_ok("SET_OWNER", d.owner());
    for (k, r) in all_ioctls(&d, 0, false) {
        obs.val(format!("owner: {k}"), r);
    }
}

fn forked_child(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("parent SET_OWNER", d.owner());
    obs.ret_ok(
        "parent SET_VRING_BASE 0 5",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 5),
    );
    in_child(obs, "child ", |o| {
        for (k, r) in all_ioctls(&d, 0, false) {
            o.val(k, r);
        }
        for (k, r) in all_ioctls(&d, 9, true) {
            o.val(format!("index 9 NULL: {k}"), r);
        }
        o.ret("SET_OWNER", d.owner());
        // Feature ioctls and GET_FORK_FROM_OWNER do not check the owner;
        // SET_FORK_FROM_OWNER refuses once there is one.
        for (k, v) in owner_free_ioctls(&d) {
            o.val(k, v);
        }
        // read/write have no owner check either.
        d.set_nonblock(true);
        o.ret("read nonblock", d.read(72).0);
        o.ret(
            "write V1 UPDATE (no IOTLB)",
            d.write(&msg_v1(uapi::VHOST_IOTLB_UPDATE, 0, 0x1000, 0x1000, 3)),
        );
    });
    // The child changed nothing the parent owns.
    obs.val("parent GET_VRING_BASE 0", d.base(0));
    obs.val("parent GET_VRING_BASE 1", d.base(1));
    obs.val("parent busyloop 0", d.busyloop(0));
    obs.ret("parent RESET_OWNER", d.reset());
}

fn two_owners(obs: &mut Obs, _ctx: &Ctx) {
    let a = Dev::open();
    let b = Dev::open();
    obs.ret_ok("parent SET_OWNER a", a.owner());
    in_child(obs, "child ", |o| {
        o.ret("SET_OWNER a", a.owner());
        o.ret("SET_OWNER b", b.owner());
        o.ret(
            "SET_VRING_BASE a",
            a.st_r(uapi::VHOST_SET_VRING_BASE, 0, 11),
        );
        o.ret(
            "SET_VRING_BASE b",
            b.st_r(uapi::VHOST_SET_VRING_BASE, 0, 22),
        );
        o.val("GET_VRING_BASE b", b.base(0));
        // The child exits still owning b: the owner's mm stays referenced
        // by the device, so b keeps its owner.
    });
    obs.ret(
        "parent SET_VRING_BASE a",
        a.st_r(uapi::VHOST_SET_VRING_BASE, 0, 33),
    );
    obs.val("parent GET_VRING_BASE a", a.base(0));
    obs.val("parent GET_VRING_BASE b", b.base(0));
    obs.ret("parent SET_OWNER b", b.owner());
    obs.ret("parent RESET_OWNER b", b.reset());
    obs.val("parent GET_FORK_FROM_OWNER b", b.get_fork());
    obs.ret("parent SET_FORK_FROM_OWNER b 0", b.set_fork(0));
    obs.ret("close b", b.0.close());
    obs.ret("close a", a.0.close());
}

fn from_thread(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let raw = d.raw();
    let r = std::thread::spawn(move || {
        let d = Dev(crate::sys::Fd(raw));
        let r = (d.owner(), d.owner());
        std::mem::forget(d);
        r
    })
    .join()
    .unwrap();
    obs.ret("thread SET_OWNER", r.0);
    obs.ret("thread SET_OWNER again", r.1);
    // The thread's process is the owner: the main thread may do
    // everything.
    obs.ret("main SET_OWNER", d.owner());
    obs.ret(
        "main SET_VRING_BASE",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 1, 42),
    );
    obs.val("main GET_VRING_BASE", d.base(1));
    let r = std::thread::spawn(move || {
        let d = Dev(crate::sys::Fd(raw));
        let r = (d.base(1), d.reset(), d.owner());
        std::mem::forget(d);
        r
    })
    .join()
    .unwrap();
    obs.val("thread2 GET_VRING_BASE", r.0);
    obs.ret("thread2 RESET_OWNER", r.1);
    obs.ret("thread2 SET_OWNER", r.2);
    obs.val("main GET_VRING_BASE after", d.base(1));
    in_child(obs, "child ", |o| {
        o.val("GET_VRING_BASE", d.base(1));
        o.ret("RESET_OWNER", d.reset());
    });
    obs.ret("main RESET_OWNER", d.reset());
}

fn reset_state(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let e = eventfd();
    obs.ret_ok("SET_FORK_FROM_OWNER 0", d.set_fork(0));
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    for i in 0..2 {
        obs.ret(
            format!("SET_VRING_BASE {i}"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, i, 100 + i),
        );
        obs.ret(
            format!("SET_BUSYLOOP {i}"),
            d.st_r(uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT, i, 50 + i),
        );
        for (n, req) in [
            ("KICK", uapi::VHOST_SET_VRING_KICK),
            ("CALL", uapi::VHOST_SET_VRING_CALL),
            ("ERR", uapi::VHOST_SET_VRING_ERR),
        ] {
            obs.ret(format!("SET_VRING_{n} {i}"), d.file(req, i, e.raw()));
        }
    }
    let mut lfd = e.raw();
    obs.ret(
        "SET_LOG_FD",
        d.io(uapi::VHOST_SET_LOG_FD, &mut lfd as *mut i32 as usize),
    );
    obs.ret(
        "SET_LOG_BASE",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, rings.m.addr()),
    );
    obs.ret(
        "SET_FEATURES EVENT_IDX|LOG_ALL",
        d.features((1 << uapi::VIRTIO_RING_F_EVENT_IDX) | (1 << uapi::VHOST_F_LOG_ALL)),
    );
    obs.val("GET_FORK_FROM_OWNER owned", d.get_fork());
    obs.ret_ok("RESET_OWNER", d.reset());
    // Not owned any more.
    obs.val("GET_VRING_BASE unowned", d.base(0));
    obs.val("GET_FORK_FROM_OWNER after reset", d.get_fork());
    obs.ret_ok("SET_OWNER again", d.owner());
    for i in 0..2 {
        obs.val(format!("GET_VRING_BASE {i} after reset"), d.base(i));
        obs.val(format!("busyloop {i} after reset"), d.busyloop(i));
    }
    // The memory table is replaced by an empty one: a backend of -1 is
    // accepted (a fresh device refuses it: no table at all).
    obs.ret("SET_BACKEND 0 -1 after reset", d.backend(0, -1));
    let fresh = Dev::open();
    obs.ret_ok("fresh SET_OWNER", fresh.owner());
    obs.ret("fresh SET_BACKEND 0 -1", fresh.backend(0, -1));
    // Ring addresses are gone: attaching a tap needs them again.
    let tap = tap();
    obs.ret("SET_BACKEND 0 tap, no addresses", d.backend(0, tap.raw()));
    // The ring size went back to 1 and the features to 0: with the rings
    // set again but the size left alone, the tap attaches.
    obs.ret("SET_VRING_ADDR 0 after reset", d.addr(rings.vaddr(0)));
    rings.m.w16(USED_OFF, 0x5555);
    obs.ret("SET_BACKEND 0 tap after addr", d.backend(0, tap.raw()));
    obs.val("used flags", format!("{:#x}", rings.used_flags()));
    // EVENT_IDX is not acked any more: the used ring may end 2 bytes
    // later (num 1: 4 + 8 bytes).
    let mut a = rings.vaddr(0);
    a.used_user_addr = user_end() - 12;
    obs.ret("SET_VRING_ADDR used at end-12 (num 1)", d.addr(a));
    a.used_user_addr = user_end() - 8;
    obs.ret("SET_VRING_ADDR used at end-8 (num 1)", d.addr(a));
    obs.ret("SET_VRING_ADDR restore", d.addr(rings.vaddr(0)));
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    obs.ret("close", d.0.close());
}

fn reset_backend(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret(
        "SET_VRING_NUM with backend",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 64),
    );
    obs.ret_ok("RESET_OWNER with backend", d.reset());
    obs.ret_ok("SET_OWNER", d.owner());
    // The backend is gone: ring size and base may change again.
    obs.ret(
        "SET_VRING_NUM after reset",
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, 64),
    );
    obs.ret(
        "SET_VRING_BASE after reset",
        d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 3),
    );
    // The tap can be attached again (to the same device).
    rings.setup(obs, &d, 0, "again ");
    obs.ret("SET_BACKEND 0 tap again", d.backend(0, tap.raw()));
    obs.ret("SET_BACKEND 1 tap too", d.backend(1, tap.raw()));
    // ACCESS_PLATFORM set, then reset: the IOTLB is gone.
    obs.ret(
        "SET_FEATURES ACCESS_PLATFORM",
        d.features(1 << uapi::VIRTIO_F_ACCESS_PLATFORM),
    );
    obs.ret(
        "write UPDATE with IOTLB",
        d.write(&msg_v1(
            uapi::VHOST_IOTLB_UPDATE,
            0,
            0x1000,
            rings.m.addr(),
            3,
        )),
    );
    obs.ret_ok("RESET_OWNER 2", d.reset());
    obs.ret(
        "write UPDATE after reset",
        d.write(&msg_v1(
            uapi::VHOST_IOTLB_UPDATE,
            0,
            0x1000,
            rings.m.addr(),
            3,
        )),
    );
    d.set_nonblock(false);
    obs.ret("blocking read after reset", d.read(72).0);
    obs.ret("close", d.0.close());
}
