//! The test harness: observations, forked test runs with a timeout, and the
//! comparison of the C run with ours.

use crate::modules::{Impl, Paths};
use crate::sys::{fmt_res, Res};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// What one run of a test saw. Differential tests record `entries`, which
/// must be equal for C and ours; `failures` are broken expectations that
/// fail the test whatever the other run saw; `notes` are diagnostics only.
#[derive(Default, Debug, Clone)]
pub struct Obs {
    pub entries: Vec<(String, String)>,
    pub failures: Vec<String>,
    pub notes: Vec<String>,
    pub skip: Option<String>,
    /// Set by a differential test's C run when C lacks what the test
    /// exercises (`Obs::c_lacks`): ours then runs alone, its failures
    /// count and nothing is compared.
    pub c_lacks: Option<String>,
}

impl Obs {
    /// Records a value.
    pub fn val(&mut self, key: impl Into<String>, v: impl ToString) {
        self.entries.push((key.into(), v.to_string()));
    }

    /// Records what a syscall returned: `0`, `3` or `-1 EBUSY(16)`.
    pub fn ret(&mut self, key: impl Into<String>, r: Res) {
        self.val(key, fmt_res(&r));
    }

    /// Records a syscall result and requires it to be `Err(errno)`.
    pub fn ret_err(&mut self, key: impl Into<String>, r: Res, errno: i32) {
        let key = key.into();
        if r != Err(crate::sys::Errno(errno)) {
            self.fail(format!(
                "{key}: got {}, want -1 {}",
                fmt_res(&r),
                crate::sys::Errno(errno)
            ));
        }
        self.ret(key, r)
    }

    /// Records a syscall result and requires it to succeed.
    pub fn ret_ok(&mut self, key: impl Into<String>, r: Res) {
        let key = key.into();
        if r.is_err() {
            self.fail(format!("{key}: got {}, want success", fmt_res(&r)));
        }
        self.ret(key, r)
    }

    /// A broken expectation: the test fails.
    pub fn fail(&mut self, msg: impl Into<String>) {
        self.failures.push(msg.into());
    }

    /// Fails with `msg` unless `cond`.
    pub fn check(&mut self, cond: bool, msg: impl Into<String>) -> bool {
        if !cond {
            self.fail(msg);
        }
        cond
    }

    /// A diagnostic line, printed as `# ...`, never compared.
    pub fn note(&mut self, msg: impl Into<String>) {
        self.notes.push(msg.into());
    }

    /// In the C run of a differential test: C lacks what the test needs
    /// (a feature a newer C offers, say), so the test records nothing
    /// more on C and the run of ours is not compared with it, only its own
    /// checks count. When C has it, the test is an ordinary `Diff`.
    pub fn c_lacks(&mut self, what: impl Into<String>) {
        self.c_lacks = Some(what.into());
    }

    /// Marks this run as skipped.
    pub fn skip(&mut self, reason: impl Into<String>) {
        self.skip = Some(reason.into());
    }

    // Wire format from the forked child: a tag byte, a u32 length, the bytes.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |tag: u8, s: &str| {
            out.push(tag);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for (k, v) in &self.entries {
            put(b'k', k);
            put(b'v', v);
        }
        for f in &self.failures {
            put(b'f', f);
        }
        for n in &self.notes {
            put(b'n', n);
        }
        if let Some(s) = &self.skip {
            put(b's', s);
        }
        if let Some(s) = &self.c_lacks {
            put(b'l', s);
        }
        put(b'E', "");
        out
    }

    fn decode(d: &[u8]) -> Result<Obs, String> {
        let mut o = Obs::default();
        let mut i = 0;
        let mut key: Option<String> = None;
        while i + 5 <= d.len() {
            let tag = d[i];
            let len = u32::from_le_bytes(d[i + 1..i + 5].try_into().unwrap()) as usize;
            let s = d.get(i + 5..i + 5 + len).ok_or("truncated observation")?;
            let s = String::from_utf8_lossy(s).to_string();
            i += 5 + len;
            match tag {
                b'k' => key = Some(s),
                b'v' => o.entries.push((key.take().ok_or("value without key")?, s)),
                b'f' => o.failures.push(s),
                b'n' => o.notes.push(s),
                b's' => o.skip = Some(s),
                b'l' => o.c_lacks = Some(s),
                b'E' => return Ok(o),
                _ => return Err(format!("bad tag {tag}")),
            }
        }
        Err("observation ended early (the test died)".into())
    }
}

/// What a test can see of its environment.
pub struct Ctx<'a> {
    /// The implementation loaded for this run (differential tests), or
    /// `None` for special tests, which run with no vhost module loaded.
    pub imp: Option<Impl>,
    pub paths: &'a Paths,
}

impl Ctx<'_> {
    /// The implementation under test (differential tests only).
    pub fn imp(&self) -> Impl {
        self.imp.expect("not a differential test")
    }
    /// The name of the module that provides /dev/vhost-net in this run.
    pub fn module(&self) -> &'static str {
        self.paths.main_module(self.imp())
    }
    /// Reloads the implementation under test with module parameters
    /// (`name=value` words); hold a `DefaultParams` to put it back.
    pub fn reload(&self, params: &str) -> Result<(), String> {
        self.paths.reload(self.imp(), params)
    }
    /// A module parameter's value as sysfs shows it, or `? errno`.
    pub fn param(&self, name: &str) -> String {
        let m = self.paths.param_module(self.imp(), name);
        crate::sys::read_trim(&format!("/sys/module/{m}/parameters/{name}"))
            .unwrap_or_else(|e| format!("? {e}"))
    }
}

/// Reloads the implementation under test without parameters when dropped,
/// so that a test that reloaded it with some leaves the defaults behind.
pub struct DefaultParams<'a, 'b>(pub &'a Ctx<'b>);

impl Drop for DefaultParams<'_, '_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.reload("") {
            eprintln!("# reloading without parameters: {e}");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Run once with the C modules loaded and once with ours; the
    /// observations must be equal.
    Diff,
    /// Run once with no vhost module loaded; manages modules itself and
    /// passes if it records no failure.
    Special,
}

pub struct Test {
    pub name: &'static str,
    pub kind: Kind,
    /// Per-run timeout in seconds (TCG is slow: be generous).
    pub timeout: u64,
    pub f: fn(&mut Obs, &Ctx),
}

/// A deliberate, documented difference between C and ours: the entry `key`
/// of test `test` is not compared.
pub struct Allowed {
    pub test: &'static str,
    pub key: &'static str,
    pub reason: &'static str,
}

/// How one run ended.
pub enum RunResult {
    Done(Obs),
    Crashed(String),
}

/// Whether this is the debug kernel (`kconfig/debug.config`: the one with
/// kmemleak, and KASAN, lockdep).
pub fn debug_kernel() -> bool {
    std::path::Path::new("/sys/kernel/debug/kmemleak").exists()
}

/// The running kernel's version as (major, minor), e.g. (6, 12) on the
/// test kernel and (7, 3) on Debian 13's own (`/proc/sys/kernel/osrelease`:
/// "6.12.118", "7.3.4+deb13-amd64"); (0, 0) if it cannot be read. The C
/// oracle is the running kernel's vhost_net: where its behaviour changed
/// between versions, a test can tell which one it compares against.
pub fn kernel_version() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| parse_kernel_version(&r))
        .unwrap_or((0, 0))
}

/// (major, minor) of a kernel release string ("7.3.4+deb13-amd64").
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// How much longer than their timeouts tests may run: 4 times on the debug
/// kernel (KASAN and lockdep make everything several times slower), 1
/// otherwise.
pub fn timeout_scale() -> u64 {
    if debug_kernel() {
        4
    } else {
        1
    }
}

/// Runs `t` in a forked child with a timeout; the child sends its
/// observation back over a pipe.
pub fn run_forked(t: &Test, ctx: &Ctx) -> RunResult {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a writable array of two c_ints, what pipe2 fills.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return RunResult::Crashed(format!("pipe2: {}", crate::sys::Errno::last()));
    }
    let _ = std::io::stdout().flush();
    // SAFETY: in the VM the runner forks from its only thread (tests start threads only in the
    // child); the child runs the test body, writes the pipe and leaves with _exit. Under `cargo
    // test` other threads exist: the child relies on glibc's fork-safe malloc.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return RunResult::Crashed(format!("fork: {}", crate::sys::Errno::last()));
    }
    if pid == 0 {
        // SAFETY: `fds[0]` is the child's copy of the read end, unused here; integer argument only.
        unsafe { libc::close(fds[0]) };
        // Own process group, so a timeout kills whatever the test forked.
        // SAFETY: plain syscall with integer arguments; a failure is harmless and ignored.
        unsafe { libc::setpgid(0, 0) };
        let mut obs = Obs::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (t.f)(&mut obs, ctx)));
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            obs.fail(format!("panicked: {msg}"));
        }
        let buf = obs.encode();
        let mut off = 0;
        while off < buf.len() {
            // SAFETY: `fds[1]` is the pipe's open write end; `buf[off..]` is readable for
            // `buf.len() - off` bytes.
            let n = unsafe { libc::write(fds[1], buf[off..].as_ptr().cast(), buf.len() - off) };
            if n <= 0 {
                break;
            }
            off += n as usize;
        }
        // SAFETY: _exit takes an integer and never returns; it skips the parent's destructors and
        // atexit handlers, which must not run in the child.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: `fds[1]` is the parent's copy of the write end, not used again; integer argument.
    unsafe { libc::close(fds[1]) };
    // SAFETY: plain syscall with integer arguments; a failure (the child already did it, or has
    // exited) is harmless and ignored.
    unsafe { libc::setpgid(pid, pid) };
    // SAFETY: `fds[0]` is the open read end and nothing else owns it: the File closes it once.
    // Below it is only used as a number for poll while `pipe` is alive.
    let mut pipe = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
    let deadline = Instant::now() + Duration::from_secs(t.timeout * timeout_scale());
    let mut data = Vec::new();
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut pfd = libc::pollfd {
            fd: fds[0],
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid, writable pollfd for the open read end; nfds is 1.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n < 0 {
            continue;
        }
        if n == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => data.extend_from_slice(&buf[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if timed_out {
        // SAFETY: plain syscall with integer arguments; the child is not reaped yet, so its pid and
        // process group id cannot have been reused.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        // SAFETY: plain syscall with integer arguments; the child is not reaped yet, so `pid`
        // cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // The child may be stuck in the kernel (D state): wait a little, then
    // report it rather than hanging the suite.
    let wait_until = Instant::now() + Duration::from_secs(10);
    let mut reaped = false;
    while Instant::now() < wait_until {
        // SAFETY: `status` is a writable c_int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            reaped = true;
            break;
        }
        if r < 0 {
            break;
        }
        crate::sys::sleep_ms(20);
    }
    // Reap the test's own children left in its group, if any.
    // SAFETY: a null status pointer is allowed (status not wanted); the rest are integers.
    while unsafe { libc::waitpid(-pid, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
    if timed_out {
        return RunResult::Crashed(format!(
            "timed out after {} s{}",
            t.timeout,
            if reaped {
                ""
            } else {
                " (child could not be killed: stuck in the kernel?)"
            }
        ));
    }
    if !reaped {
        return RunResult::Crashed("child did not exit after sending its result".into());
    }
    if libc::WIFSIGNALED(status) {
        return RunResult::Crashed(format!("killed by signal {}", libc::WTERMSIG(status)));
    }
    match Obs::decode(&data) {
        Ok(o) => RunResult::Done(o),
        Err(e) => RunResult::Crashed(e),
    }
}

/// The differences between two observations, as diagnostic lines, after
/// removing the allowed entries (reported as notes).
pub fn compare(test: &str, c: &Obs, ours: &Obs, allowed: &[Allowed]) -> (Vec<String>, Vec<String>) {
    let allowed_here: Vec<&Allowed> = allowed.iter().filter(|a| a.test == test).collect();
    let keep = |e: &&(String, String)| !allowed_here.iter().any(|a| a.key == e.0);
    let a: Vec<&(String, String)> = c.entries.iter().filter(keep).collect();
    let b: Vec<&(String, String)> = ours.entries.iter().filter(keep).collect();
    let mut diffs = Vec::new();
    for i in 0..a.len().max(b.len()) {
        match (a.get(i), b.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if x.0 == y.0 => {
                diffs.push(format!("{}: c={} ours={}", x.0, x.1, y.1));
            }
            (Some(x), Some(y)) => {
                diffs.push(format!(
                    "entry {i}: c {}={} / ours {}={}",
                    x.0, x.1, y.0, y.1
                ));
            }
            (Some(x), None) => diffs.push(format!("{}: c={} ours=(missing)", x.0, x.1)),
            (None, Some(y)) => diffs.push(format!("{}: c=(missing) ours={}", y.0, y.1)),
            (None, None) => {}
        }
        if diffs.len() >= 20 {
            diffs.push("... (more differences left out)".into());
            break;
        }
    }
    let notes = allowed_here
        .iter()
        .map(|a| format!("allowed difference in {}: {}", a.key, a.reason))
        .collect();
    (diffs, notes)
}

/// TAP output with kselftest's closing lines: `# Totals: ...` as
/// `ksft_print_cnts` prints it, then this project's "<n> passed, <m> failed"
/// (scripts/vm/vmcheck.sh and scripts/check/check.sh read it).
pub struct Tap {
    n: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// How long each run of a test took: (test, which run, time).
    times: Vec<(String, String, Duration)>,
}

/// A run longer than this is reported as it ends (`# NAME took N.N s`).
pub const SLOW: Duration = Duration::from_secs(2);
/// kselftest's exit status when every test was skipped (KSFT_SKIP).
pub const KSFT_SKIP: i32 = 4;

impl Tap {
    pub fn start(total: usize) -> Tap {
        println!("TAP version 13");
        println!("1..{total}");
        flush();
        Tap {
            n: 0,
            passed: 0,
            failed: 0,
            skipped: 0,
            times: Vec::new(),
        }
    }

    pub fn diag(&self, msg: &str) {
        for l in msg.lines() {
            println!("# {l}");
        }
        flush();
    }

    /// Records how long one run of test `name` took (`run`: "c", "ours",
    /// or "" for a test run once) and reports it if it took more than
    /// [`SLOW`].
    pub fn time(&mut self, name: &str, run: &str, took: Duration) {
        if took > SLOW {
            let who = if run.is_empty() {
                name.to_string()
            } else {
                format!("{run}: {name}")
            };
            self.diag(&format!("{who} took {:.1} s", took.as_secs_f64()));
        }
        self.times.push((name.into(), run.into(), took));
    }

    /// The `count` slowest tests, their runs added up, slowest first:
    /// (test, total, "c 1.0 s, ours 2.0 s" or "").
    pub fn slowest(&self, count: usize) -> Vec<(String, Duration, String)> {
        let mut by_test: Vec<(String, Duration, Vec<String>)> = Vec::new();
        for (name, run, took) in &self.times {
            let i = match by_test.iter().position(|(n, _, _)| n == name) {
                Some(i) => i,
                None => {
                    by_test.push((name.clone(), Duration::ZERO, Vec::new()));
                    by_test.len() - 1
                }
            };
            by_test[i].1 += *took;
            if !run.is_empty() {
                by_test[i]
                    .2
                    .push(format!("{run} {:.1} s", took.as_secs_f64()));
            }
        }
        by_test.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        by_test.truncate(count);
        by_test
            .into_iter()
            .map(|(n, t, runs)| (n, t, runs.join(", ")))
            .collect()
    }

    pub fn ok(&mut self, name: &str) {
        self.n += 1;
        self.passed += 1;
        println!("ok {} {name}", self.n);
        flush();
    }

    pub fn not_ok(&mut self, name: &str, why: &[String]) {
        for w in why {
            self.diag(w);
        }
        self.n += 1;
        self.failed += 1;
        println!("not ok {} {name}", self.n);
        flush();
    }

    pub fn skip(&mut self, name: &str, reason: &str) {
        self.n += 1;
        self.skipped += 1;
        println!("ok {} {name} # SKIP {reason}", self.n);
        flush();
    }

    /// The exit status, as kselftest's: 1 if a test failed, KSFT_SKIP if
    /// every test was skipped, else 0.
    pub fn status(&self) -> i32 {
        if self.failed > 0 {
            1
        } else if self.passed == 0 && self.skipped > 0 {
            KSFT_SKIP
        } else {
            0
        }
    }

    /// Prints the ten slowest tests and the closing lines; returns the
    /// exit status ([`Tap::status`]).
    pub fn finish(self) -> i32 {
        let slowest = self.slowest(10);
        if !slowest.is_empty() {
            self.diag(&format!("the {} slowest tests:", slowest.len()));
            for (name, took, runs) in &slowest {
                let runs = if runs.is_empty() {
                    String::new()
                } else {
                    format!(" ({runs})")
                };
                self.diag(&format!("  {:6.1} s  {name}{runs}", took.as_secs_f64()));
            }
        }
        println!("# {} skipped", self.skipped);
        println!(
            "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
            self.passed, self.failed, self.skipped
        );
        println!("{} passed, {} failed", self.passed, self.failed);
        flush();
        // Let the UART drain before init powers the machine off.
        // SAFETY: plain call with an integer fd; a failure only returns -1, which is ignored.
        unsafe { libc::tcdrain(1) };
        self.status()
    }
}

pub fn flush() {
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    //! Host-side checks of the harness itself (`cargo test`, one thread:
    //! see .cargo/config.toml; the runner forks).
    use super::*;

    #[test]
    fn tap_status_is_kselftests() {
        let mut t = Tap::start(2);
        t.skip("a", "why");
        t.skip("b", "why");
        assert_eq!(t.status(), KSFT_SKIP);
        t.ok("c");
        assert_eq!(t.status(), 0);
        t.not_ok("d", &[]);
        assert_eq!(t.status(), 1);
        assert_eq!(Tap::start(0).status(), 0);
    }

    #[test]
    fn tap_slowest_adds_runs_up() {
        let mut t = Tap::start(0);
        let ms = Duration::from_millis;
        t.time("quick", "c", ms(10));
        t.time("slow", "c", ms(1500));
        t.time("quick", "ours", ms(20));
        t.time("slow", "ours", ms(1000));
        t.time("alone", "", ms(2100));
        let s = t.slowest(2);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, "slow");
        assert_eq!(s[0].1, ms(2500));
        assert_eq!(s[0].2, "c 1.5 s, ours 1.0 s");
        assert_eq!((s[1].0.as_str(), s[1].2.as_str()), ("alone", ""));
        assert_eq!(t.slowest(10).len(), 3);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.12.118\n"), Some((6, 12)));
        assert_eq!(parse_kernel_version("7.3.4+deb13-amd64"), Some((7, 3)));
        assert_eq!(parse_kernel_version("7.3-rc1"), Some((7, 3)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert_ne!(
            kernel_version(),
            (0, 0),
            "the host's /proc/sys/kernel/osrelease"
        );
    }

    fn paths() -> Paths {
        Paths {
            c_dir: "/nonexistent".into(),
            ours: None,
            self_diff: false,
        }
    }

    fn run(f: fn(&mut Obs, &Ctx), timeout: u64) -> RunResult {
        let p = paths();
        let t = Test {
            name: "t",
            kind: Kind::Diff,
            timeout,
            f,
        };
        run_forked(
            &t,
            &Ctx {
                imp: Some(Impl::C),
                paths: &p,
            },
        )
    }

    #[test]
    fn observation_round_trip() {
        let mut o = Obs::default();
        o.val("a", "1\n2\t3");
        o.ret("b", Err(crate::sys::Errno(libc::EBUSY)));
        o.ret("c", Ok(7));
        o.fail("broken");
        o.note("note");
        o.skip("why");
        o.c_lacks("feature");
        let d = Obs::decode(&o.encode()).unwrap();
        assert_eq!(d.c_lacks.as_deref(), Some("feature"));
        assert_eq!(d.entries, o.entries);
        assert_eq!(d.entries[1].1, "-1 EBUSY(16)");
        assert_eq!(d.failures, vec!["broken"]);
        assert_eq!(d.notes, vec!["note"]);
        assert_eq!(d.skip.as_deref(), Some("why"));
        assert!(Obs::decode(&o.encode()[..10]).is_err());
    }

    #[test]
    fn compare_reports_differences_and_allowed_keys() {
        let mut a = Obs::default();
        let mut b = Obs::default();
        a.val("x", 1);
        b.val("x", 1);
        assert!(compare("t", &a, &b, &[]).0.is_empty());
        a.val("y", "EBUSY");
        b.val("y", "EPERM");
        a.val("z", 3);
        let (d, _) = compare("t", &a, &b, &[]);
        assert_eq!(d, vec!["y: c=EBUSY ours=EPERM", "z: c=3 ours=(missing)"]);
        let allowed = [
            Allowed {
                test: "t",
                key: "y",
                reason: "documented",
            },
            Allowed {
                test: "t",
                key: "z",
                reason: "documented",
            },
        ];
        let (d, notes) = compare("t", &a, &b, &allowed);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(notes.len(), 2);
        // An allowance for another test does not apply.
        assert_eq!(compare("u", &a, &b, &allowed).0.len(), 2);
    }

    #[test]
    fn forked_run_returns_observation() {
        match run(|o, _| o.val("k", "v"), 10) {
            RunResult::Done(o) => assert_eq!(o.entries, vec![("k".to_string(), "v".to_string())]),
            RunResult::Crashed(e) => panic!("{e}"),
        }
    }

    #[test]
    fn forked_run_catches_panic() {
        match run(|_, _| panic!("boom"), 10) {
            RunResult::Done(o) => assert!(o.failures[0].contains("boom"), "{:?}", o.failures),
            RunResult::Crashed(e) => panic!("{e}"),
        }
    }

    #[test]
    fn forked_run_reports_signal() {
        // SAFETY: abort takes no arguments and never returns; it runs in the forked test child,
        // whose death by SIGABRT is what this test checks.
        match run(|_, _| unsafe { libc::abort() }, 10) {
            RunResult::Crashed(e) => assert!(e.contains("signal 6"), "{e}"),
            RunResult::Done(_) => panic!("abort not noticed"),
        }
    }

    #[test]
    fn forked_run_times_out() {
        let start = Instant::now();
        match run(|_, _| std::thread::sleep(Duration::from_secs(30)), 1) {
            RunResult::Crashed(e) => assert!(e.contains("timed out"), "{e}"),
            RunResult::Done(_) => panic!("timeout not noticed"),
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn forked_run_kills_grandchildren_on_timeout() {
        match run(
            |_, _| {
                // SAFETY: in the forked test child; the grandchild only sleeps until the timeout
                // kills the group, so it takes no lock another (cargo test) thread could have held
                // at fork.
                if unsafe { libc::fork() } == 0 {
                    std::thread::sleep(Duration::from_secs(30));
                }
                std::thread::sleep(Duration::from_secs(30));
            },
            1,
        ) {
            RunResult::Crashed(e) => assert!(e.contains("timed out"), "{e}"),
            RunResult::Done(_) => panic!("timeout not noticed"),
        }
    }

    #[test]
    fn elf_sections_are_found() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let e = crate::modules::modinfo(&exe).unwrap_err();
        assert!(e.contains("no .modinfo section"), "{e}");
    }
}
