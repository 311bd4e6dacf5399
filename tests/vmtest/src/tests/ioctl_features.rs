//! GET/SET_FEATURES, GET/SET_BACKEND_FEATURES and GET/SET_FORK_FROM_OWNER:
//! values, unknown bits, bad pointers, and what the acked bits change.

use super::basic::in_child;
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
        t("set_features_each_bit", set_features_each_bit),
        t("features_bad_pointers", features_bad_pointers),
        t(
            "set_backend_features_each_bit",
            set_backend_features_each_bit,
        ),
        t("set_features_log_all_needs_log_access", log_all),
        t("acked_event_idx_sizes_the_rings", event_idx_sizes),
        t("fork_from_owner_values", fork_values),
        t("fork_from_owner_kthread_mode", fork_kthread),
    ]
}

fn set_features_each_bit(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.ret_ok("SET_OWNER", d.owner());
    for bit in 0..64 {
        obs.ret(format!("SET_FEATURES bit {bit}"), d.features(1u64 << bit));
    }
    obs.ret("SET_FEATURES all", d.features(uapi::VHOST_NET_FEATURES));
    obs.ret("SET_FEATURES u64::MAX", d.features(u64::MAX));
    obs.ret(
        "SET_FEATURES all|RING_PACKED",
        d.features(uapi::VHOST_NET_FEATURES | (1 << uapi::VIRTIO_F_RING_PACKED)),
    );
    obs.val("GET_FEATURES after", d.get_u64(uapi::VHOST_GET_FEATURES));
}

fn features_bad_pointers(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let ro = Map::ro_with(&7u64.to_ne_bytes());
    let un = unmapped();
    for (owned, label) in [(false, "no owner"), (true, "owner")] {
        if owned {
            obs.ret_ok("SET_OWNER", d.owner());
        }
        for (name, req) in [
            ("GET_FEATURES", uapi::VHOST_GET_FEATURES),
            ("SET_FEATURES", uapi::VHOST_SET_FEATURES),
            ("GET_BACKEND_FEATURES", uapi::VHOST_GET_BACKEND_FEATURES),
            ("SET_BACKEND_FEATURES", uapi::VHOST_SET_BACKEND_FEATURES),
        ] {
            obs.ret(format!("{label}: {name} NULL"), d.io(req, 0));
            obs.ret(format!("{label}: {name} unmapped"), d.io(req, un));
            obs.ret(
                format!("{label}: {name} kernel address"),
                d.io(req, KERNEL_ADDR as usize),
            );
            // Read-only page: fine for SET (7 is not a known feature set:
            // bits 0-2), EFAULT for the GETs, which write.
            obs.ret(
                format!("{label}: {name} read-only page"),
                d.io(req, ro.ptr as usize),
            );
        }
        // A GET writes exactly 8 bytes at the pointer; the last 8 bytes
        // of a page are fine.
        let m = Map::new(4096);
        obs.ret(
            format!("{label}: GET_FEATURES last 8 bytes of page"),
            d.io(uapi::VHOST_GET_FEATURES, m.at(4088)),
        );
        obs.ret(
            format!("{label}: GET_FEATURES straddling into unmapped"),
            d.io(uapi::VHOST_GET_FEATURES, un - 4),
        );
        // Unaligned pointer.
        obs.ret(
            format!("{label}: GET_FEATURES unaligned"),
            d.io(uapi::VHOST_GET_FEATURES, m.at(3)),
        );
        obs.val(
            format!("{label}: unaligned value"),
            // SAFETY: `m` is a live 4096-byte mapping and `m.at(3)` is in bounds with all 8 bytes
            // inside it; read_unaligned has no alignment requirement and any u64 is valid.
            format!("{:#x}", unsafe {
                std::ptr::read_unaligned(m.at(3) as *const u64)
            }),
        );
    }
}

fn set_backend_features_each_bit(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    for bit in 0..64 {
        obs.ret(
            format!("SET_BACKEND_FEATURES bit {bit} (no owner)"),
            d.backend_features(1u64 << bit),
        );
    }
    obs.ret_ok("SET_OWNER", d.owner());
    obs.ret("SET_BACKEND_FEATURES 0", d.backend_features(0));
    obs.ret("SET_BACKEND_FEATURES 2", d.backend_features(2));
    obs.ret("SET_BACKEND_FEATURES 3", d.backend_features(3));
    obs.ret(
        "SET_BACKEND_FEATURES MSG_V2|BATCH",
        d.backend_features((1 << 1) | (1 << 2)),
    );
    obs.ret(
        "SET_BACKEND_FEATURES ASID (bit 3)",
        d.backend_features(1 << 3),
    );
    obs.val(
        "GET_BACKEND_FEATURES",
        d.get_u64(uapi::VHOST_GET_BACKEND_FEATURES),
    );
    // With a backend attached too.
    let rings = Rings::new();
    let tap = tap();
    rings.setup(obs, &d, 0, "");
    obs.ret("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    obs.ret(
        "SET_BACKEND_FEATURES MSG_V2 with backend",
        d.backend_features(2),
    );
    obs.ret("SET_FEATURES 0 with backend", d.features(0));
    obs.ret(
        "SET_FEATURES MRG_RXBUF|VERSION_1 with backend",
        d.features((1 << uapi::VIRTIO_NET_F_MRG_RXBUF) | (1 << uapi::VIRTIO_F_VERSION_1)),
    );
}

fn log_all(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    let log_all = 1u64 << uapi::VHOST_F_LOG_ALL;
    obs.ret("LOG_ALL no owner", d.features(log_all));
    obs.ret_ok("SET_OWNER", d.owner());
    // Without an attached backend there is nothing to check.
    obs.ret("LOG_ALL no log base, no table", d.features(log_all));
    obs.ret(
        "SET_LOG_BASE kernel address",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, KERNEL_ADDR),
    );
    obs.ret("LOG_ALL kernel log base, no backend", d.features(log_all));
    let rings = Rings::new();
    let tap = tap();
    obs.ret("SET_FEATURES 0", d.features(0));
    rings.setup(obs, &d, 0, "");
    // The log base is only checked when the backend attaches, with the
    // features acked then (none).
    obs.ret("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    // Now the log must cover the table: guest [0, 0x10000) needs 2 bytes
    // of log at the base.
    obs.ret("LOG_ALL kernel log base, backend", d.features(log_all));
    obs.ret(
        "SET_LOG_BASE end-2",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 2),
    );
    obs.ret("LOG_ALL log base end-2", d.features(log_all));
    obs.ret(
        "SET_LOG_BASE end-1 with LOG_ALL acked",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 1),
    );
    obs.ret("SET_FEATURES 0 again", d.features(0));
    obs.ret(
        "SET_LOG_BASE end-1 without LOG_ALL",
        d.set_u64(uapi::VHOST_SET_LOG_BASE, user_end() - 1),
    );
    obs.ret("LOG_ALL log base end-1", d.features(log_all));
    obs.ret("SET_LOG_BASE 0", d.set_u64(uapi::VHOST_SET_LOG_BASE, 0));
    obs.ret("LOG_ALL log base 0", d.features(log_all));
    // A table whose guest addresses need a log beyond the user range.
    obs.ret(
        "SET_MEM_TABLE high guest address (LOG_ALL acked)",
        d.mem(&[region(1 << 62, 0x1000, rings.m.addr())]),
    );
    obs.ret("SET_FEATURES 0 (3)", d.features(0));
    obs.ret(
        "SET_MEM_TABLE high guest address (no LOG_ALL)",
        d.mem(&[region(1 << 62, 0x1000, rings.m.addr())]),
    );
    obs.ret("LOG_ALL with high table", d.features(log_all));
    obs.ret(
        "LOG_ALL|ACCESS_PLATFORM with high table",
        d.features(log_all | (1 << uapi::VIRTIO_F_ACCESS_PLATFORM)),
    );
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
    obs.ret("LOG_ALL with high table, detached", d.features(log_all));
}

fn event_idx_sizes(obs: &mut Obs, _ctx: &Ctx) {
    // With a backend attached, SET_VRING_ADDR checks that the rings fit
    // below the end of the user range, with sizes that depend on
    // EVENT_IDX (+2 bytes for avail and used).
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok("SET_OWNER", d.owner());
    rings.setup(obs, &d, 0, "");
    obs.ret_ok("SET_BACKEND 0 tap", d.backend(0, tap.raw()));
    let n = RING_NUM as u64;
    let used = 4 + 8 * n;
    let avail = 4 + 2 * n;
    let desc = 16 * n;
    for (feat, label) in [
        (0u64, "no EVENT_IDX"),
        (1 << uapi::VIRTIO_RING_F_EVENT_IDX, "EVENT_IDX"),
        (0, "EVENT_IDX off again"),
    ] {
        obs.ret(format!("{label}: SET_FEATURES"), d.features(feat));
        for (name, off) in [
            ("used end-size", user_end() - used),
            ("used end-size-4", user_end() - used - 4),
            ("used end-size+4", user_end() - used + 4),
        ] {
            let mut a = rings.vaddr(0);
            a.used_user_addr = off;
            obs.ret(format!("{label}: {name}"), d.addr(a));
        }
        for (name, off) in [
            ("avail end-size", user_end() - avail),
            ("avail end-size-2", user_end() - avail - 2),
            ("avail end-size+2", user_end() - avail + 2),
        ] {
            let mut a = rings.vaddr(0);
            a.avail_user_addr = off;
            obs.ret(format!("{label}: {name}"), d.addr(a));
        }
        for (name, off) in [
            ("desc end-size", user_end() - desc),
            ("desc end-size+1", user_end() - desc + 1),
        ] {
            let mut a = rings.vaddr(0);
            a.desc_user_addr = off;
            obs.ret(format!("{label}: {name}"), d.addr(a));
        }
        obs.ret(format!("{label}: restore"), d.addr(rings.vaddr(0)));
    }
    obs.ret("SET_BACKEND 0 -1", d.backend(0, -1));
}

fn fork_values(obs: &mut Obs, _ctx: &Ctx) {
    let d = Dev::open();
    obs.val("GET default", d.get_fork());
    for v in [0u8, 1, 2, 3, 0x80, 0xff, 0] {
        obs.ret(format!("SET {v}"), d.set_fork(v));
        obs.val(format!("GET after SET {v}"), d.get_fork());
    }
    // Only one byte is read: a u32 0x100 is the byte 0.
    let mut w: u32 = 0x100;
    obs.ret(
        "SET u32 0x100",
        d.io(uapi::VHOST_SET_FORK_FROM_OWNER, &mut w as *mut u32 as usize),
    );
    obs.val("GET after u32 0x100", d.get_fork());
    let mut w: u32 = 0x201;
    obs.ret(
        "SET u32 0x201",
        d.io(uapi::VHOST_SET_FORK_FROM_OWNER, &mut w as *mut u32 as usize),
    );
    obs.val("GET after u32 0x201", d.get_fork());
    // GET writes one byte only.
    let mut g: u64 = u64::MAX;
    obs.ret(
        "GET into u64",
        d.io(uapi::VHOST_GET_FORK_FROM_OWNER, &mut g as *mut u64 as usize),
    );
    obs.val("GET into u64 value", format!("{g:#x}"));
    let ro = Map::ro_with(&[0u8]);
    let un = unmapped();
    obs.ret("SET NULL", d.io(uapi::VHOST_SET_FORK_FROM_OWNER, 0));
    obs.ret("SET unmapped", d.io(uapi::VHOST_SET_FORK_FROM_OWNER, un));
    obs.ret(
        "SET read-only 0",
        d.io(uapi::VHOST_SET_FORK_FROM_OWNER, ro.ptr as usize),
    );
    obs.val("GET after read-only 0", d.get_fork());
    obs.ret("GET NULL", d.io(uapi::VHOST_GET_FORK_FROM_OWNER, 0));
    obs.ret(
        "GET read-only",
        d.io(uapi::VHOST_GET_FORK_FROM_OWNER, ro.ptr as usize),
    );
    obs.ret(
        "GET kernel address",
        d.io(uapi::VHOST_GET_FORK_FROM_OWNER, KERNEL_ADDR as usize),
    );
    obs.ret("SET 1", d.set_fork(1));
    obs.ret_ok("SET_OWNER", d.owner());
    for v in [0u8, 1, 2] {
        obs.ret(format!("owned: SET {v}"), d.set_fork(v));
    }
    obs.ret("owned: SET NULL", d.io(uapi::VHOST_SET_FORK_FROM_OWNER, 0));
    obs.val("owned: GET", d.get_fork());
    obs.ret("owned: GET NULL", d.io(uapi::VHOST_GET_FORK_FROM_OWNER, 0));
    in_child(obs, "child ", |o| {
        o.val("GET", d.get_fork());
        o.ret("SET 0", d.set_fork(0));
    });
    obs.ret_ok("RESET_OWNER", d.reset());
    obs.val("GET after RESET_OWNER", d.get_fork());
    obs.ret("SET 0 after RESET_OWNER", d.set_fork(0));
    obs.val("GET after SET 0", d.get_fork());
    obs.ret_ok("SET_OWNER again", d.owner());
    obs.ret_ok("RESET_OWNER again", d.reset());
    // RESET_OWNER restores the default, whatever was set.
    obs.val("GET after second RESET_OWNER", d.get_fork());
    // A forked child may set it on an unowned device.
    in_child(obs, "child2 ", |o| {
        o.ret("SET 0", d.set_fork(0));
        o.val("GET", d.get_fork());
    });
    obs.val("GET after child2", d.get_fork());
}

fn fork_kthread(obs: &mut Obs, _ctx: &Ctx) {
    // Mode 0: the worker is a kernel thread, not a thread of the owner;
    // mode 1: a vhost task in the owner's thread group.
    let base = thread_count();
    for mode in [0u8, 1] {
        let d = Dev::open();
        obs.ret(format!("mode {mode}: SET"), d.set_fork(mode));
        obs.ret_ok(format!("mode {mode}: SET_OWNER"), d.owner());
        let want = base + mode as usize;
        wait_for(|| thread_count() == want);
        obs.val(format!("mode {mode}: extra threads"), thread_count() - base);
        // The device works either way.
        obs.ret(
            format!("mode {mode}: SET_VRING_BASE"),
            d.st_r(uapi::VHOST_SET_VRING_BASE, 0, 9),
        );
        obs.val(format!("mode {mode}: GET_VRING_BASE"), d.base(0));
        obs.ret(format!("mode {mode}: close"), d.0.close());
        wait_for(|| thread_count() == base);
        obs.val(
            format!("mode {mode}: extra threads after close"),
            thread_count() - base,
        );
    }
}
