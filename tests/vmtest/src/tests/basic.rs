//! Differential tests of the character device and the owner/feature ioctls.
//! Each runs once against C and once against ours; the observations must
//! be equal.

use crate::harness::{Ctx, Kind, Obs, Test};
use crate::modules;
use crate::sys::{self, fmt_res, ioctl, ioctl_ptr, Fd};
use crate::uapi;

pub const DEV: &str = "/dev/vhost-net";

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 60,
        f,
    };
    vec![
        t("devnode", devnode),
        t("open_close", open_close),
        t("get_features", get_features),
        t("set_features", set_features),
        t("set_owner_twice", set_owner_twice),
        t("set_owner_other_process", set_owner_other_process),
        t("reset_owner", reset_owner),
        t("unknown_ioctl", unknown_ioctl),
        t("unload_while_open", unload_while_open),
        t("owner_worker_thread", owner_worker_thread),
    ]
}

/// Opens /dev/vhost-net read-write or panics (the test then fails).
pub fn open_dev() -> Fd {
    sys::open(DEV, libc::O_RDWR).unwrap_or_else(|e| panic!("open {DEV}: {e}"))
}

/// Forks, runs `f` in the child with its own observation and returns that
/// observation's entries prefixed with `prefix`, in order. For ownership
/// tests: the child is another process (another mm).
pub fn in_child(obs: &mut Obs, prefix: &str, f: impl FnOnce(&mut Obs)) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable array of two c_ints, what pipe fills.
    assert!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0);
    // SAFETY: forked from a test body with no other live threads of its own (callers join theirs
    // first); the child runs `f`, writes the pipe and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: `fds[0]` is the child's copy of the read end, unused here; integer argument only.
        unsafe { libc::close(fds[0]) };
        let mut o = Obs::default();
        f(&mut o);
        let mut s = String::new();
        for (k, v) in &o.entries {
            s.push_str(&format!("{k}\t{v}\n"));
        }
        // SAFETY: `fds[1]` is the pipe's open write end; `s` is readable for `s.len()` bytes.
        unsafe { libc::write(fds[1], s.as_ptr().cast(), s.len()) };
        // SAFETY: _exit takes an integer and never returns; the parent's destructors must not run
        // in the child.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: `fds[1]` is the parent's copy of the write end, not used again; integer argument.
    unsafe { libc::close(fds[1]) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: `fds[0]` is the open read end; `buf` is a valid, writable buffer of `buf.len()`
        // bytes.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: `fds[0]` is the read end, closed once here and not used again.
    unsafe { libc::close(fds[0]) };
    let mut status = 0;
    // SAFETY: `status` is a writable c_int; `pid` is our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    obs.check(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        format!("{prefix}: child exited with status {status:#x}"),
    );
    for line in String::from_utf8_lossy(&out).lines() {
        if let Some((k, v)) = line.split_once('\t') {
            obs.val(format!("{prefix}{k}"), v);
        }
    }
}

fn devnode(obs: &mut Obs, ctx: &Ctx) {
    match sys::stat(DEV) {
        Ok((mode, maj, min, uid, gid)) => {
            obs.val(
                "type",
                if mode & libc::S_IFMT == libc::S_IFCHR {
                    "char"
                } else {
                    "other"
                },
            );
            obs.val("perm", format!("{:o}", mode & 0o7777));
            obs.val("rdev", format!("{maj}:{min}"));
            obs.val("owner", format!("{uid}:{gid}"));
            obs.check(
                mode & libc::S_IFMT == libc::S_IFCHR && maj == 10 && min == 238,
                format!("{DEV} is not char 10:238 (mode {mode:o}, {maj}:{min})"),
            );
        }
        Err(e) => {
            obs.val("stat", e);
            obs.fail(format!("stat {DEV}: {e}"));
        }
    }
    let sysdev = sys::read_trim("/sys/class/misc/vhost-net/dev");
    obs.val("sys/class/misc/vhost-net/dev", format!("{sysdev:?}"));
    let uevent = sys::read_trim("/sys/class/misc/vhost-net/uevent");
    obs.val("sys/class/misc/vhost-net/uevent", format!("{uevent:?}"));
    obs.val(
        "refcnt idle",
        format!("{:?}", modules::refcnt(ctx.module())),
    );
}

fn open_close(obs: &mut Obs, ctx: &Ctx) {
    // Many sequential opens: every one must succeed and close cleanly.
    let mut bad = Vec::new();
    for i in 0..200 {
        match sys::open(DEV, libc::O_RDWR) {
            Ok(fd) => {
                if let Err(e) = fd.close() {
                    bad.push(format!("close #{i}: {e}"));
                }
            }
            Err(e) => bad.push(format!("open #{i}: {e}")),
        }
    }
    obs.val(
        "200 sequential open/close",
        if bad.is_empty() {
            "ok".into()
        } else {
            bad.join(", ")
        },
    );
    // Access modes and flags.
    for (name, flags) in [
        ("O_RDONLY", libc::O_RDONLY),
        ("O_WRONLY", libc::O_WRONLY),
        ("O_RDWR", libc::O_RDWR),
        ("O_RDWR|O_NONBLOCK", libc::O_RDWR | libc::O_NONBLOCK),
    ] {
        let r = sys::open(DEV, flags).map(|fd| {
            let c = fd.close();
            format!("open ok, close {}", fmt_res(&c))
        });
        obs.val(
            format!("open {name}"),
            match r {
                Ok(s) => s,
                Err(e) => format!("-1 {e}"),
            },
        );
    }
    // Many files open at once, each one a separate device; and the module
    // reference count follows the open files.
    let before = modules::refcnt(ctx.module());
    let fds: Vec<_> = (0..32).map(|_| sys::open(DEV, libc::O_RDWR)).collect();
    obs.val(
        "32 concurrent opens",
        fds.iter().filter(|r| r.is_ok()).count(),
    );
    obs.val("refcnt before", format!("{before:?}"));
    obs.val(
        "refcnt with 32 open",
        format!("{:?}", modules::refcnt(ctx.module())),
    );
    // Each file has its own owner state: SET_OWNER works on every one.
    let owners = fds
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|fd| fmt_res(&ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0)))
        .collect::<Vec<_>>();
    obs.val("SET_OWNER on each", dedup_summary(&owners));
    drop(fds);
    obs.val(
        "refcnt after close",
        format!("{:?}", modules::refcnt(ctx.module())),
    );
    // read/write/poll on a bare device (no IOTLB enabled).
    let fd = open_dev();
    let mut buf = [0u8; 128];
    // SAFETY: `fd` is the open device descriptor; integer arguments only.
    let fl = unsafe { libc::fcntl(fd.raw(), libc::F_GETFL) };
    // SAFETY: `fd` is the open device descriptor; integer arguments only.
    unsafe { libc::fcntl(fd.raw(), libc::F_SETFL, fl | libc::O_NONBLOCK) };
    // SAFETY: `fd` is the open device descriptor; `buf` is a valid, writable buffer of `buf.len()`
    // bytes.
    let r = unsafe { libc::read(fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
    obs.val(
        "read nonblock",
        fmt_res(&if r < 0 {
            Err(sys::Errno::last())
        } else {
            Ok(r as i64)
        }),
    );
    // SAFETY: `fd` is the open device descriptor; `buf` is readable, and length 0 is passed.
    let r = unsafe { libc::write(fd.raw(), buf.as_ptr().cast(), 0) };
    obs.val(
        "write 0 bytes",
        fmt_res(&if r < 0 {
            Err(sys::Errno::last())
        } else {
            Ok(r as i64)
        }),
    );
    let mut pfd = libc::pollfd {
        fd: fd.raw(),
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, writable pollfd and nfds is 1.
    let r = unsafe { libc::poll(&mut pfd, 1, 0) };
    obs.val("poll", format!("{r} revents={:#x}", pfd.revents));
    obs.ret("close", fd.close());
}

fn dedup_summary(v: &[String]) -> String {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in v {
        match out.iter_mut().find(|(x, _)| x == s) {
            Some((_, n)) => *n += 1,
            None => out.push((s.clone(), 1)),
        }
    }
    out.iter()
        .map(|(s, n)| format!("{n}x {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn get_features(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    let mut f: u64 = 0xdead_beef;
    obs.ret_ok(
        "GET_FEATURES",
        ioctl_ptr(fd.raw(), uapi::VHOST_GET_FEATURES as u64, &mut f),
    );
    obs.val("features", format!("{f:#x}"));
    obs.check(
        crate::contract::KNOWN.iter().any(|c| c.features[0] == f),
        format!("features {f:#x}: no served kernel's C module offers that"),
    );
    let mut b: u64 = 0xdead_beef;
    obs.ret_ok(
        "GET_BACKEND_FEATURES",
        ioctl_ptr(fd.raw(), uapi::VHOST_GET_BACKEND_FEATURES as u64, &mut b),
    );
    obs.val("backend features", format!("{b:#x}"));
    obs.check(
        b == uapi::VHOST_NET_BACKEND_FEATURES,
        format!(
            "backend features {b:#x} != uapi {:#x}",
            uapi::VHOST_NET_BACKEND_FEATURES
        ),
    );
    // Bad user pointers.
    obs.ret(
        "GET_FEATURES NULL",
        ioctl(fd.raw(), uapi::VHOST_GET_FEATURES as u64, 0),
    );
    obs.ret(
        "GET_FEATURES bad ptr",
        ioctl(fd.raw(), uapi::VHOST_GET_FEATURES as u64, 0x10),
    );
    obs.ret(
        "GET_BACKEND_FEATURES NULL",
        ioctl(fd.raw(), uapi::VHOST_GET_BACKEND_FEATURES as u64, 0),
    );
    // Same after SET_OWNER.
    obs.ret_ok(
        "SET_OWNER",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    let mut f2: u64 = 0;
    obs.ret(
        "GET_FEATURES owned",
        ioctl_ptr(fd.raw(), uapi::VHOST_GET_FEATURES as u64, &mut f2),
    );
    obs.val("features owned", format!("{f2:#x}"));
}

fn set_features(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    let all = uapi::VHOST_NET_FEATURES;
    let set = |obs: &mut Obs, key: &str, mut v: u64| {
        obs.ret(
            key,
            ioctl_ptr(fd.raw(), uapi::VHOST_SET_FEATURES as u64, &mut v),
        );
    };
    set(obs, "SET_FEATURES 0 (no owner)", 0);
    set(obs, "SET_FEATURES unsupported bit 0", 1);
    set(obs, "SET_FEATURES unsupported bit 63", 1 << 63);
    set(
        obs,
        "SET_FEATURES VERSION_1|MRG_RXBUF",
        (1 << uapi::VIRTIO_F_VERSION_1) | (1 << uapi::VIRTIO_NET_F_MRG_RXBUF),
    );
    obs.ret(
        "SET_FEATURES NULL",
        ioctl(fd.raw(), uapi::VHOST_SET_FEATURES as u64, 0),
    );
    obs.ret_ok(
        "SET_OWNER",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    set(obs, "SET_FEATURES 0", 0);
    set(
        obs,
        "SET_FEATURES all but LOG_ALL",
        all & !(1 << uapi::VHOST_F_LOG_ALL),
    );
    set(obs, "SET_FEATURES all", all);
    set(obs, "SET_FEATURES all|bit 41", all | (1 << 41));
    let setb = |obs: &mut Obs, key: &str, mut v: u64| {
        obs.ret(
            key,
            ioctl_ptr(fd.raw(), uapi::VHOST_SET_BACKEND_FEATURES as u64, &mut v),
        );
    };
    setb(obs, "SET_BACKEND_FEATURES 0", 0);
    setb(
        obs,
        "SET_BACKEND_FEATURES MSG_V2",
        1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2,
    );
    setb(
        obs,
        "SET_BACKEND_FEATURES BATCH",
        1 << uapi::VHOST_BACKEND_F_IOTLB_BATCH,
    );
    setb(obs, "SET_BACKEND_FEATURES bit 0", 1);
}

fn set_owner_twice(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    obs.ret_ok(
        "SET_OWNER#1",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    obs.ret_err(
        "SET_OWNER#2",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
        libc::EBUSY,
    );
    // A second device in the same process is independent.
    let fd2 = open_dev();
    obs.ret_ok(
        "second fd SET_OWNER",
        ioctl(fd2.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    obs.ret("second fd close", fd2.close());
    obs.ret_err(
        "SET_OWNER#3",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
        libc::EBUSY,
    );
    obs.ret("close", fd.close());
}

fn set_owner_other_process(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    let raw = fd.raw();
    obs.ret_ok(
        "parent SET_OWNER",
        ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0),
    );
    // A forked child shares the file but not the mm: it is not the owner.
    in_child(obs, "child ", |o| {
        o.ret("SET_OWNER", ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0));
        o.ret("RESET_OWNER", ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0));
        let mut s = uapi::VhostVringState { index: 0, num: 256 };
        o.ret(
            "SET_VRING_NUM",
            ioctl_ptr(raw, uapi::VHOST_SET_VRING_NUM as u64, &mut s),
        );
        let mut f: u64 = 0;
        o.ret(
            "GET_FEATURES",
            ioctl_ptr(raw, uapi::VHOST_GET_FEATURES as u64, &mut f),
        );
    });
    // A device opened but not owned, then owned by a child: the parent is
    // then the stranger.
    let fd2 = open_dev();
    let raw2 = fd2.raw();
    in_child(obs, "child2 ", |o| {
        o.ret("SET_OWNER", ioctl(raw2, uapi::VHOST_SET_OWNER as u64, 0));
    });
    obs.ret(
        "parent SET_OWNER after child owned",
        ioctl(raw2, uapi::VHOST_SET_OWNER as u64, 0),
    );
    obs.ret(
        "parent RESET_OWNER after child owned",
        ioctl(raw2, uapi::VHOST_RESET_OWNER as u64, 0),
    );
    let mut s = uapi::VhostVringState { index: 0, num: 256 };
    obs.ret(
        "parent SET_VRING_NUM after child owned",
        ioctl_ptr(raw2, uapi::VHOST_SET_VRING_NUM as u64, &mut s),
    );
}

fn reset_owner(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    let raw = fd.raw();
    obs.ret(
        "RESET_OWNER before owner",
        ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0),
    );
    obs.ret_ok("SET_OWNER", ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0));
    obs.ret_ok(
        "RESET_OWNER after owner",
        ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0),
    );
    obs.ret(
        "RESET_OWNER again",
        ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0),
    );
    obs.ret_ok(
        "SET_OWNER after reset",
        ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0),
    );
    obs.ret_err(
        "SET_OWNER again",
        ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0),
        libc::EBUSY,
    );
    // Features survive a reset? Recorded, whatever they are.
    let mut f: u64 = 1 << uapi::VIRTIO_F_VERSION_1;
    obs.ret(
        "SET_FEATURES VERSION_1",
        ioctl_ptr(raw, uapi::VHOST_SET_FEATURES as u64, &mut f),
    );
    obs.ret("RESET_OWNER", ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0));
    // After a reset another process may take the device.
    in_child(obs, "child ", |o| {
        o.ret("SET_OWNER", ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0));
        o.ret("RESET_OWNER", ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 0));
    });
    // RESET_OWNER with a (meaningless) argument.
    obs.ret("SET_OWNER 3", ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0));
    obs.ret(
        "RESET_OWNER arg=1",
        ioctl(raw, uapi::VHOST_RESET_OWNER as u64, 1),
    );
    obs.ret("close", fd.close());
}

fn unknown_ioctl(obs: &mut Obs, _ctx: &Ctx) {
    let fd = open_dev();
    let raw = fd.raw();
    let mut zero = [0u64; 8];
    let zp = zero.as_mut_ptr() as usize;
    let mut big = [0u32; 8];
    big[0] = 1000; // a vring index far out of range
    let bp = big.as_mut_ptr() as usize;
    let cases: [(&str, u64, usize); 11] = [
        (
            "_IO(0xAF,0x7F) NULL",
            uapi::io(uapi::VHOST_VIRTIO, 0x7F) as u64,
            0,
        ),
        (
            "_IO(0xAF,0x7F) &0",
            uapi::io(uapi::VHOST_VIRTIO, 0x7F) as u64,
            zp,
        ),
        (
            "_IO(0xAF,0x7F) &1000",
            uapi::io(uapi::VHOST_VIRTIO, 0x7F) as u64,
            bp,
        ),
        (
            "_IOR(0xAF,0x7E,u64) &0",
            uapi::ior(uapi::VHOST_VIRTIO, 0x7E, 8) as u64,
            zp,
        ),
        (
            "VHOST_VDPA_GET_DEVICE_ID &0",
            uapi::VHOST_VDPA_GET_DEVICE_ID as u64,
            zp,
        ),
        (
            "VHOST_VSOCK_SET_RUNNING &0",
            uapi::VHOST_VSOCK_SET_RUNNING as u64,
            zp,
        ),
        (
            "VHOST_SCSI_GET_ABI_VERSION &0",
            uapi::VHOST_SCSI_GET_ABI_VERSION as u64,
            zp,
        ),
        ("TCGETS &0", libc::TCGETS, zp),
        ("FIONREAD &0", libc::FIONREAD, zp),
        ("_IO('X',1) NULL", uapi::io(b'X' as u32, 1) as u64, 0),
        ("0xffffffff &0", 0xffff_ffff, zp),
    ];
    for (name, req, arg) in cases {
        obs.ret(format!("{name} (no owner)"), ioctl(raw, req, arg));
    }
    obs.ret_ok("SET_OWNER", ioctl(raw, uapi::VHOST_SET_OWNER as u64, 0));
    for (name, req, arg) in cases {
        obs.ret(format!("{name} (owner)"), ioctl(raw, req, arg));
    }
    // The device still works.
    let mut f: u64 = 0;
    obs.ret(
        "GET_FEATURES after",
        ioctl_ptr(raw, uapi::VHOST_GET_FEATURES as u64, &mut f),
    );
}

fn unload_while_open(obs: &mut Obs, ctx: &Ctx) {
    // An open file pins the module: delete_module must refuse.
    let fd = open_dev();
    let r = sys::delete_module(ctx.module());
    obs.check(
        r.is_err(),
        format!("delete_module({}) succeeded with a file open", ctx.module()),
    );
    obs.ret("delete_module with fd open", r);
    obs.ret_ok(
        "SET_OWNER",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    let r = sys::delete_module(ctx.module());
    obs.check(
        r.is_err(),
        format!(
            "delete_module({}) succeeded with an owned file open",
            ctx.module()
        ),
    );
    obs.ret("delete_module with owned fd open", r);
    let mut f: u64 = 0;
    obs.ret(
        "GET_FEATURES after",
        ioctl_ptr(fd.raw(), uapi::VHOST_GET_FEATURES as u64, &mut f),
    );
    obs.ret("close", fd.close());
}

/// The threads of this process other than the main one, as
/// comm names with every number replaced by N (worker names carry pids).
fn other_threads() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|t| *t != me)
                .map(|t| {
                    let comm =
                        sys::read_trim(&format!("/proc/self/task/{t}/comm")).unwrap_or_default();
                    let mut out = String::new();
                    let mut in_num = false;
                    for c in comm.chars() {
                        if c.is_ascii_digit() {
                            if !in_num {
                                out.push('N');
                            }
                            in_num = true;
                        } else {
                            out.push(c);
                            in_num = false;
                        }
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Polls up to a second for the thread list to become `want`.
fn threads_settle(want: &[String]) -> Vec<String> {
    let mut t = other_threads();
    for _ in 0..50 {
        if t == want {
            break;
        }
        sys::sleep_ms(20);
        t = other_threads();
    }
    t
}

fn owner_worker_thread(obs: &mut Obs, _ctx: &Ctx) {
    // SET_OWNER creates the worker (a vhost task in the owner's thread
    // group, or a kthread); RESET_OWNER and close stop it.
    let none: Vec<String> = Vec::new();
    obs.val("threads before", format!("{:?}", other_threads()));
    let fd = open_dev();
    obs.val("threads after open", format!("{:?}", other_threads()));
    obs.ret_ok(
        "SET_OWNER",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    let owned = other_threads();
    obs.val("threads after SET_OWNER", format!("{owned:?}"));
    obs.ret_ok(
        "RESET_OWNER",
        ioctl(fd.raw(), uapi::VHOST_RESET_OWNER as u64, 0),
    );
    obs.val(
        "threads after RESET_OWNER",
        format!("{:?}", threads_settle(&none)),
    );
    obs.ret_ok(
        "SET_OWNER again",
        ioctl(fd.raw(), uapi::VHOST_SET_OWNER as u64, 0),
    );
    obs.val(
        "threads after SET_OWNER again",
        format!("{:?}", threads_settle(&owned)),
    );
    obs.ret("close", fd.close());
    obs.val(
        "threads after close",
        format!("{:?}", threads_settle(&none)),
    );
}
