//! A guest-built descriptor chain that C walks for minutes
//! (Documentation/security.rst, "One descriptor chain held a host CPU for
//! minutes"): every descriptor of a TX ring is `INDIRECT | NEXT`, a cycle
//! through the whole ring, and points at one indirect table of 65536
//! zero-length entries, so one available head asks for `num * 65536`
//! descriptor reads: 2^31 with the largest ring.
//!
//! Ours stops each packet at `MAX_PACKET_READS` reads (the chain fails as a
//! loop does in C, reported on the err eventfd) and each round at a few of
//! those, then reschedules. The test runs the 2^31 chain on ours, in a
//! child process that owns the device and is pinned, with its worker, to
//! CPU 0, while a thread on CPU 1 kicks the ring without pause:
//! - the chain is reported broken within a second;
//! - a thread that sleeps 1 ms at a time on CPU 0 is never kept waiting
//!   long (the worker yields);
//! - `close()` of the device and, in a second child, the owner's death by
//!   SIGKILL take less than a second;
//! - the kernel log stays clean (no soft lockup, hung task or RCU stall:
//!   any report fails the run).
//!
//! Against C the same ring with 16 entries (2^20 reads per head) documents
//! C's behaviour in the notes without failing: the sleeper waits for whole
//! rounds, and close and exit wait for the round in progress. The full
//! chain would hold C's worker 2048 times as long (minutes: a soft lockup).

use crate::driver::Tap;
use crate::harness::{timeout_scale, Ctx, Kind, Obs, Test};
use crate::modules::Impl;
use crate::sys::{self, ioctl, Errno, Fd};
use crate::uapi;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "hostile_chain_of_2_31_descriptors",
        kind: Kind::Diff,
        timeout: 240,
        f: chain_2_31,
    }]
}

const GPA: u64 = 0x4000_0000;
const MEM: usize = 4 << 20;
/// Offsets in guest memory: the TX ring (up to 32768 entries), the
/// indirect table (1 MiB) and a byte the table's entries point at.
const DESC: u64 = 0;
const AVAIL: u64 = 0x8_0000;
const USED: u64 = 0x9_1000;
const TABLE: u64 = 0x10_0000;
const TABLE_ENTRIES: u64 = 65536;
const BUF: u64 = 0x30_0000;
const NEXT: u16 = crate::driver::VRING_DESC_F_NEXT;
const INDIRECT: u16 = crate::driver::VRING_DESC_F_INDIRECT;

/// The device, its memory, and the eventfds of its TX ring.
struct Dev {
    dev: Fd,
    _tap: Tap,
    kick: Fd,
    err: Fd,
    _mem: *mut u8,
}

/// Sets up a device whose TX ring of `num` entries holds the chain, with
/// one head available; the caller kicks it.
fn setup(num: u32) -> Result<Dev, String> {
    // SAFETY: anonymous private mapping at an address the kernel picks;
    // checked against MAP_FAILED.
    let mem = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if mem == libc::MAP_FAILED {
        return Err(format!("mmap: {}", Errno::last()));
    }
    let mem = mem.cast::<u8>();
    let ua = |off: u64| mem as u64 + off;
    let w = |off: u64, b: &[u8]| {
        assert!(off as usize + b.len() <= MEM);
        // SAFETY: in bounds of the mapping (asserted), which this process owns.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), mem.add(off as usize), b.len()) }
    };
    let desc = |addr: u64, len: u32, flags: u16, next: u16| {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        d
    };
    for i in 0..num {
        let next = ((i + 1) % num) as u16;
        let d = desc(
            GPA + TABLE,
            (16 * TABLE_ENTRIES) as u32,
            INDIRECT | NEXT,
            next,
        );
        w(DESC + 16 * u64::from(i), &d);
    }
    for k in 0..TABLE_ENTRIES {
        let flags = if k == TABLE_ENTRIES - 1 { 0 } else { NEXT };
        w(TABLE + 16 * k, &desc(GPA + BUF, 0, flags, 0));
    }
    // avail: flags 0, idx 1, ring[0] = head 0.
    w(AVAIL, &[0, 0, 1, 0, 0, 0]);

    let dev = sys::open("/dev/vhost-net", libc::O_RDWR).map_err(|e| format!("open: {e}"))?;
    let tap = Tap::new(Some(12), crate::driver::TAP_MTU)?;
    let kick = super::ioctl_util::eventfd();
    let err = super::ioctl_util::eventfd();
    let io = |what: &str, req: u32, arg: usize| {
        ioctl(dev.raw(), req as u64, arg)
            .map(|_| ())
            .map_err(|e| format!("{what}: {e}"))
    };
    io("SET_OWNER", uapi::VHOST_SET_OWNER, 0)?;
    let mut table = [1u64, GPA, MEM as u64, ua(0), 0];
    io(
        "SET_MEM_TABLE",
        uapi::VHOST_SET_MEM_TABLE,
        table.as_mut_ptr() as usize,
    )?;
    let mut f = 1u64 << 32; // VIRTIO_F_VERSION_1
    io(
        "SET_FEATURES",
        uapi::VHOST_SET_FEATURES,
        &mut f as *mut u64 as usize,
    )?;
    let mut s = uapi::VhostVringState { index: 1, num };
    io(
        "SET_VRING_NUM",
        uapi::VHOST_SET_VRING_NUM,
        &mut s as *mut _ as usize,
    )?;
    let mut s = uapi::VhostVringState { index: 1, num: 0 };
    io(
        "SET_VRING_BASE",
        uapi::VHOST_SET_VRING_BASE,
        &mut s as *mut _ as usize,
    )?;
    let mut a = uapi::VhostVringAddr {
        index: 1,
        flags: 0,
        desc_user_addr: ua(DESC),
        used_user_addr: ua(USED),
        avail_user_addr: ua(AVAIL),
        log_guest_addr: 0,
    };
    io(
        "SET_VRING_ADDR",
        uapi::VHOST_SET_VRING_ADDR,
        &mut a as *mut _ as usize,
    )?;
    for (what, req, fd) in [
        ("SET_VRING_KICK", uapi::VHOST_SET_VRING_KICK, kick.raw()),
        ("SET_VRING_ERR", uapi::VHOST_SET_VRING_ERR, err.raw()),
        ("SET_BACKEND", uapi::VHOST_NET_SET_BACKEND, tap.fd.raw()),
    ] {
        let mut f = uapi::VhostVringFile { index: 1, fd };
        io(what, req, &mut f as *mut _ as usize)?;
    }
    Ok(Dev {
        dev,
        _tap: tap,
        kick,
        err,
        _mem: mem,
    })
}

/// Kicks `fd` without pause from a thread on CPU 1 until `stop` is set.
fn kicker(
    fd: i32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        sys::pin_to_cpu(1);
        let one = 1u64.to_ne_bytes();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: writes 8 bytes from a valid buffer; a failure (a full
            // counter) is harmless and ignored.
            unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
            std::thread::sleep(Duration::from_micros(200));
        }
    })
}

/// The owner's side, in a child: prints `key=value` lines on `out`.
fn owner(num: u32, out: i32) -> i32 {
    sys::pin_to_cpu(0);
    let say = |s: String| {
        let s = format!("{s}\n");
        // SAFETY: writes the bytes of `s` to the pipe.
        unsafe { libc::write(out, s.as_ptr().cast(), s.len()) };
    };
    let d = match setup(num) {
        Ok(d) => d,
        Err(e) => {
            say(format!("setup={e}"));
            return 1;
        }
    };
    say("setup=ok".into());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let k = kicker(d.kick.raw(), stop.clone());
    let reported = crate::driver::poll_in(d.err.raw(), 3000);
    say(format!("err_signalled={reported}"));
    say(format!("err_ms={}", t0.elapsed().as_millis()));
    // A sleeper beside the worker on CPU 0, for 1.5 s of kicks.
    let mut worst = Duration::ZERO;
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        worst = worst.max(t.elapsed());
    }
    say(format!("sleep_worst_ms={}", worst.as_millis()));
    let t = Instant::now();
    drop(d.dev);
    say(format!("close_ms={}", t.elapsed().as_millis()));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = k.join();
    0
}

/// A child owner that kicks until killed: says `ready` once kicking.
fn owner_until_killed(num: u32, out: i32) -> i32 {
    sys::pin_to_cpu(0);
    let d = match setup(num) {
        Ok(d) => d,
        Err(_) => return 1,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _k = kicker(d.kick.raw(), stop);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: writes 6 bytes of a static string to the pipe.
    unsafe { libc::write(out, b"ready\n".as_ptr().cast(), 6) };
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Runs `f` in a child process; returns its pid and the read end of its
/// output pipe.
fn spawn(f: impl FnOnce(i32) -> i32) -> (libc::pid_t, Fd) {
    let mut p = [0i32; 2];
    // SAFETY: `p` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
    // SAFETY: the test process is single-threaded here; the child only
    // runs `f` and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", Errno::last());
    if pid == 0 {
        // SAFETY: closing our copy of the read end.
        unsafe { libc::close(p[0]) };
        let rc = f(p[1]);
        // SAFETY: leaves the child without running the parent's handlers.
        unsafe { libc::_exit(rc) };
    }
    // SAFETY: closing the parent's copy of the write end.
    unsafe { libc::close(p[1]) };
    (pid, Fd(p[0]))
}

/// Reads the child's output until it closes the pipe or `timeout` passes.
fn read_lines(fd: &Fd, timeout: Duration, until: Option<&str>) -> Vec<String> {
    let end = Instant::now() + timeout;
    let mut buf = Vec::new();
    while Instant::now() < end {
        if !crate::driver::poll_in(fd.raw(), 100) {
            continue;
        }
        let mut b = [0u8; 256];
        // SAFETY: reads into a local buffer of that size.
        let n = unsafe { libc::read(fd.raw(), b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        buf.extend_from_slice(&b[..n as usize]);
        if until.is_some_and(|u| String::from_utf8_lossy(&buf).contains(u)) {
            break;
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .map(str::to_string)
        .collect()
}

fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn chain_2_31(obs: &mut Obs, ctx: &Ctx) {
    let ours = ctx.imp() == Impl::Ours;
    // C gets a ring it can finish well before the soft-lockup detector
    // (20 s): 16 * 65536 reads per head, 4 * 65536 on the debug kernel.
    let num: u32 = match (ours, crate::harness::debug_kernel()) {
        (true, _) => 32768,
        (false, false) => 16,
        (false, true) => 4,
    };
    let per_head = u64::from(num) * TABLE_ENTRIES;
    let scale = timeout_scale() as u128;

    let (pid, out) = spawn(|w| owner(num, w));
    let lines = read_lines(&out, Duration::from_secs(60 * timeout_scale()), None);
    let exited = sys::reap(pid) != -1000;
    obs.val("setup", value(&lines, "setup").unwrap_or("(no answer)"));
    obs.val("owner finished", exited);
    let ms = |k: &str| value(&lines, k).and_then(|v| v.parse::<u128>().ok());
    let (err_ms, worst, close) = (ms("err_ms"), ms("sleep_worst_ms"), ms("close_ms"));
    obs.note(format!(
        "{}: {per_head} descriptor reads per head; err signalled: {:?} after {err_ms:?} ms; \
         a 1 ms sleeper beside the worker waited up to {worst:?} ms; close took {close:?} ms",
        if ours { "ours" } else { "C" },
        value(&lines, "err_signalled"),
    ));
    if ours {
        obs.check(
            value(&lines, "err_signalled") == Some("true")
                && err_ms.is_some_and(|m| m < 1000 * scale),
            format!("the chain is reported broken within a second: {lines:?}"),
        );
        // 7-8 ms on an idle machine; 422 ms was seen once with the TCG
        // vCPU threads descheduled by other work on the host (C's figure
        // in the same run rose from 188 to 359 ms). Without the bound the
        // walk holds the CPU for minutes (Documentation/security.rst), so
        // a second still tells the two apart.
        obs.check(
            worst.is_some_and(|m| m < 1000 * scale),
            format!("the worker yields: a 1 ms sleep on its CPU took up to {worst:?} ms"),
        );
        obs.check(
            close.is_some_and(|m| m < 1000 * scale),
            format!("close() under the attack took {close:?} ms"),
        );
    }

    // The owner dies by SIGKILL while its worker walks the chain.
    let (pid, out) = spawn(|w| owner_until_killed(num, w));
    let ready = read_lines(
        &out,
        Duration::from_secs(60 * timeout_scale()),
        Some("ready"),
    );
    obs.val("owner kicking", ready.iter().any(|l| l == "ready"));
    let t = Instant::now();
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let reaped = sys::reap(pid) != -1000;
    let exit_ms = t.elapsed().as_millis();
    obs.val("owner reaped", reaped);
    obs.note(format!("the owner's exit after SIGKILL took {exit_ms} ms"));
    if ours {
        obs.check(
            exit_ms < 1000 * scale,
            format!("the owner's exit under the attack took {exit_ms} ms"),
        );
    }
}
