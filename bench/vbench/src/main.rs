//! vbench: the data-path benchmark of vhost-net-rs, run in the test VM
//! (`bench/bench`, `make bench`).
//!
//! In one boot, for `--rounds` rounds, it measures every row on the C
//! vhost_net and on vhost_net_rs back to back (ABAB...; a module load and
//! unload around each window, C first in odd rounds, ours first in even
//! ones), so that the two windows of a pair see the same host: on a
//! shared host, rows a few seconds apart vary together (`make bench` of
//! 2026-12-01: correlation 0.33 between neighbouring rows, 0.06 eight
//! rows apart). `--order module` measures every row on C, then every row
//! on ours, as earlier versions did.
//! Each row uses a fresh /dev/vhost-net with a tap backend, set up by the
//! test suite's userspace ring driver (`driver.rs`); the hot loops drive the
//! split rings directly (fixed descriptor per buffer, no allocation per
//! packet), like a guest's virtio-net driver would:
//!
//! - `tx SIZE`: the driver keeps the TX ring full (refills as completions
//!   come back, waits on the call eventfd for half a ring when it is full)
//!   and counts used entries. The frames go out of the tap into the host
//!   stack, which drops them (unknown ethertype, or a GSO IPv4/TCP frame for
//!   another host); nobody captures them. `delivered` is the tap's
//!   rx_packets delta (what tun accepted).
//! - `rx SIZE`: pktgen's threads (`--injector pktgen`, the default; two,
//!   on CPU 1 and CPU 0, `--pktgen-threads`) send UDP frames into the
//!   tap's `ndo_start_xmit` as fast as they can, and the tap drops what the
//!   worker does not take in time; or a second thread injects
//!   frames as fast as it can (`--injector socket`: AF_PACKET,
//!   PACKET_QDISC_BYPASS, sendmmsg batches of 32), slower than the worker.
//!   The driver keeps the RX ring full of 4 KiB buffers (mergeable RX
//!   buffers) and counts packets (used heads, following num_buffers).
//!   `offered` is what was injected, dropped frames included.
//! - `lat 64`: ping-pong: guest TX of one frame -> a reflector thread
//!   (AF_PACKET on the tap, sends it back out) -> guest RX; the driver
//!   sleeps on the RX call eventfd. Median and p99 round trip.
//!
//! Every row also reports the vhost worker's CPU time (the `vhost-<pid>`
//! thread of this process) per packet: from /proc/self/task/TID/schedstat
//! (nanoseconds) and from .../stat (utime+stime, clock ticks), and how
//! often it was put on a CPU per 1000 packets (schedstat's third field: its
//! wake-ups, plus preemptions).
//!
//! VIRTIO_F_IN_ORDER (`--in-order auto|on|off`, default auto: negotiated
//! when the loaded module offers it, as 7.3's C does and 6.12's does not):
//! the rings then hand out descriptors in table order and read used
//! elements the in-order way ([`Ring::next_used`]); the row's `in_order`
//! column says whether it was negotiated.
//!
//! Output: lines `vbench-row,...` (CSV, header `vbench-header,...`), and a
//! last line `vbench: <n> rows, <m> errors`. Exit status 0 if no error.

// driver.rs allows its own dead code (the suite uses more of it).
#[path = "../../../tests/vmtest/src/driver.rs"]
mod driver;
#[allow(dead_code)]
#[path = "../../../tests/vmtest/src/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../../../tests/vmtest/src/modules.rs"]
mod modules;
#[allow(dead_code)]
#[path = "../../../tests/vmtest/src/sys.rs"]
mod sys;
#[allow(dead_code)]
#[path = "../../../src/vcore/uapi.rs"]
mod uapi;

use driver::{Cfg, GuestMem, Net, VRING_DESC_F_WRITE};
use harness::Obs;
use modules::{Impl, Paths};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use sys::Fd;

const HEADER: &str = "round,impl,test,size,packets,seconds,pps,gbps,\
worker_ns_per_pkt,worker_stat_ns_per_pkt,lat_p50_us,lat_p99_us,delivered,offered,\
worker_runs_per_kpkt,in_order";

/// RX buffer size (mergeable RX buffers).
const RX_BUF: usize = 4096;
/// At most this much guest memory for TX buffers (the rest is rings, RX).
const TX_MEM: usize = 6 << 20;
/// A row fails when the device makes no progress for this long.
const STALL: Duration = Duration::from_secs(5);

const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;

#[derive(Clone, Debug)]
struct Opts {
    rounds: u32,
    /// Measured window of a row.
    secs: f64,
    /// Warm-up before the window.
    warm: f64,
    /// `--order row`: a window of the pair's first module, not counted,
    /// before the first row of each test in a round (`--no-settle`: none).
    settle: bool,
    /// Stop the window after this many packets (0: time only).
    pkts: u64,
    sizes: Vec<usize>,
    tests: Vec<String>,
    num: u16,
    paths: Paths,
    only: Option<Impl>,
    /// Set off bench/tbprof.c's marks around each window.
    profile: bool,
    /// Where the threads run (`--pin`); see [`placement`].
    pin: PinOpt,
    /// `--order row` (default): each row measured on both modules back
    /// to back, a module load and unload around each; `--order module`:
    /// every row on C, then every row on ours.
    by_row: bool,
    /// `--injector`: what sends the RX rows' frames into the tap (by
    /// default pktgen, but a socket under `--profile`: there every frame
    /// injected must be one received, or the instructions per packet
    /// would count pktgen's dropped frames).
    inject: Option<Inject>,
    /// `--busyloop US`: each ring's busy-poll budget
    /// (`VHOST_SET_VRING_BUSYLOOP_TIMEOUT`, QEMU's `poll-us`); 0, the
    /// default, as QEMU's.
    busyloop: u32,
    /// `--pktgen-threads N`: pktgen threads sending into the tap, on the
    /// other side's CPU and the CPUs after it; see [`Opts::pktgen_threads`].
    pktgen_threads: Option<usize>,
    /// `--in-order`: whether to negotiate VIRTIO_F_IN_ORDER.
    in_order: InOrder,
    /// `--ours-params`: module parameters for ours (`name=value` words).
    ours_params: String,
}

/// `--in-order`: negotiate VIRTIO_F_IN_ORDER when the module offers it
/// (`Auto`, the default), always (`On`: a module that does not offer it
/// fails the rows), or never (`Off`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum InOrder {
    Auto,
    On,
    Off,
}

impl Opts {
    /// pktgen threads for the RX rows: `--pktgen-threads`, else two
    /// with two CPUs or more (one on the other side's CPU, alone, one on
    /// the worker's), so that the tap always holds frames and the worker
    /// never waits for one. One thread only just outruns the worker at
    /// 64 B: a window then either keeps the worker busy or falls into a
    /// state where it sleeps between frames and each frame must wake it
    /// across CPUs, which slows pktgen further (2026-12-03: 4 of 9
    /// windows per module), and with the worker alone on a CPU it
    /// measured how much each worker wake-up costs the sender, not the
    /// module (Documentation/performance/notes.inc).
    fn pktgen_threads(&self) -> usize {
        self.pktgen_threads
            .unwrap_or(if online_cpus() >= 2 { 2 } else { 1 })
    }

    /// What injects the RX frames: `--injector`, else pktgen, or a socket
    /// under `--profile`.
    fn injector(&self) -> Inject {
        self.inject.unwrap_or(if self.profile {
            Inject::Socket
        } else {
            Inject::Pktgen
        })
    }
}

/// What injects the RX rows' frames into the tap.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inject {
    /// A thread of ours: AF_PACKET, `sendmmsg` ([`injector`]).
    Socket,
    /// The kernel's packet generator (`pktgen.ko`, `/proc/net/pktgen`): its
    /// threads send straight into the tap's `ndo_start_xmit`, faster than
    /// the worker drains them, so the tap drops the excess and the row
    /// measures the module rather than the injector ([`Pktgen`],
    /// [`Opts::pktgen_threads`]).
    Pktgen,
}

/// `--pin`: the rows' default placement, none, or the CPUs of the driver,
/// of the other side's thread (injector or reflector) and of the worker.
#[derive(Clone, Copy, Debug)]
enum PinOpt {
    Auto,
    Off,
    Cpus([usize; 3]),
}

/// The CPUs of a row's driver, other-side thread and worker, or `None`
/// to leave them to the scheduler.
///
/// By default the latency row, with two CPUs or more, runs the driver on
/// CPU 0 and the reflector and worker on CPU 1, as a guest's vCPU and the
/// host's vhost worker would run. Left to the scheduler, a round settles
/// into one of two placements: every one of the four wake-ups of a round
/// trip crossing CPUs (an IPI to an idle CPU each, a slow trip), or two
/// of them (2026-12-01, `make profile` with `VM_SMP=2`: 3.99 IPIs per
/// trip for C in one round and 2.07 in the next, ours 2.69 then 3.98,
/// trips per second following); the row then measured where the
/// scheduler put the threads more than the module. Pinned, both modules
/// make exactly 2 IPIs per trip.
fn placement(o: &Opts, test: &str) -> Option<[usize; 3]> {
    match o.pin {
        PinOpt::Off => None,
        PinOpt::Cpus(c) => Some(c),
        PinOpt::Auto if online_cpus() < 2 => None,
        PinOpt::Auto if test == "lat" => Some([0, 1, 1]),
        // pktgen's first thread alone on CPU 1 (it does not sleep while
        // it runs), the driver, the worker and pktgen's second thread on
        // CPU 0.
        PinOpt::Auto if test == "rx" && o.injector() == Inject::Pktgen => Some([0, 1, 0]),
        PinOpt::Auto => None,
    }
}

fn online_cpus() -> i64 {
    // SAFETY: plain call with an integer argument.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}

fn usage() -> ! {
    eprintln!(
        "usage: vbench [--rounds N] [--secs S] [--warm S] [--pkts N] [--sizes 64,256,1500,65000]\n\
         \x20             [--no-settle]  (no uncounted window before each test's first row)\n\
         \x20             [--tests tx,rx,lat] [--num RING] [--only c|ours] [--c-dir DIR] [--ours KO]\n\
         \x20             [--profile]  (marks for make profile around each window)\n\
         \x20             [--order row|module]  (both modules per row, or every row per module)\n\
         \x20             [--pin D,O,W|off]  (driver, other side, worker on these CPUs; default:\n\
         \x20                                the latency row on 0,1,1 with two CPUs or more;\n\
         \x20                                RX with pktgen on 0,1,0)\n\
         \x20             [--injector pktgen|socket]  (RX frames from pktgen, loaded from\n\
         \x20                                /lib/pktgen.ko, the default but under --profile;\n\
         \x20                                or from a thread's socket)\n\
         \x20             [--busyloop US]  (each ring's busy-poll budget, QEMU's poll-us;\n\
         \x20                                default 0, as QEMU's)\n\
         \x20             [--pktgen-threads N]  (pktgen threads, on the other side's CPU\n\
         \x20                                and those after it; default 2, 1 on one CPU)\n\
         \x20             [--in-order auto|on|off]  (negotiate VIRTIO_F_IN_ORDER: when the\n\
         \x20                                module offers it, the default; always; never)\n\
         \x20             [--ours-params 'P=V ...']  (module parameters for ours)\n\
         \x20      vbench --quick   (1 round, 300 packets a row: a smoke test)"
    );
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        rounds: 5,
        secs: 1.5,
        warm: 0.3,
        settle: true,
        pkts: 0,
        sizes: vec![64, 256, 1500, 65000],
        tests: vec!["tx".into(), "rx".into(), "lat".into()],
        num: 256,
        paths: Paths {
            c_dir: PathBuf::from("/lib/vhost/c"),
            ours: Some(PathBuf::from("/lib/vhost/vhost_net_rs.ko")),
            self_diff: false,
        },
        only: None,
        profile: false,
        pin: PinOpt::Auto,
        by_row: true,
        inject: None,
        busyloop: 0,
        pktgen_threads: None,
        in_order: InOrder::Auto,
        ours_params: String::new(),
    };
    let mut it = std::env::args().skip(1);
    let num =
        |v: Option<String>| -> f64 { v.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()) };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => o.rounds = num(it.next()) as u32,
            "--secs" => o.secs = num(it.next()),
            "--warm" => o.warm = num(it.next()),
            "--no-settle" => o.settle = false,
            "--pkts" => o.pkts = num(it.next()) as u64,
            "--num" => o.num = num(it.next()) as u16,
            "--sizes" => {
                o.sizes = it
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(|s| s.parse().unwrap_or_else(|_| usage()))
                    .collect()
            }
            "--tests" => {
                o.tests = it
                    .next()
                    .unwrap_or_else(|| usage())
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--profile" => o.profile = true,
            "--order" => {
                o.by_row = match it.next().as_deref() {
                    Some("row") => true,
                    Some("module") => false,
                    _ => usage(),
                }
            }
            "--pin" => {
                let arg = it.next().unwrap_or_else(|| usage());
                o.pin = if arg == "off" {
                    PinOpt::Off
                } else {
                    let v: Vec<usize> = arg
                        .split(',')
                        .map(|s| s.parse().unwrap_or_else(|_| usage()))
                        .collect();
                    PinOpt::Cpus(v.try_into().unwrap_or_else(|_| usage()))
                };
            }
            "--quick" => {
                o.rounds = 1;
                o.secs = 2.0;
                o.warm = 0.0;
                o.settle = false;
                o.pkts = 300;
            }
            "--only" => {
                o.only = match it.next().as_deref() {
                    Some("c") => Some(Impl::C),
                    Some("ours") => Some(Impl::Ours),
                    _ => usage(),
                }
            }
            "--injector" => {
                o.inject = match it.next().as_deref() {
                    Some("socket") => Some(Inject::Socket),
                    Some("pktgen") => Some(Inject::Pktgen),
                    _ => usage(),
                }
            }
            "--busyloop" => o.busyloop = num(it.next()) as u32,
            "--in-order" => {
                o.in_order = match it.next().as_deref() {
                    Some("auto") => InOrder::Auto,
                    Some("on") => InOrder::On,
                    Some("off") => InOrder::Off,
                    _ => usage(),
                }
            }
            "--ours-params" => o.ours_params = it.next().unwrap_or_else(|| usage()),
            "--pktgen-threads" => o.pktgen_threads = Some((num(it.next()) as usize).max(1)),
            "--c-dir" => o.paths.c_dir = it.next().unwrap_or_else(|| usage()).into(),
            "--ours" => o.paths.ours = Some(it.next().unwrap_or_else(|| usage()).into()),
            _ => usage(),
        }
    }
    if o.sizes.iter().any(|&s| !(60..=65000).contains(&s)) {
        eprintln!("vbench: sizes must be 60..=65000 bytes");
        usage();
    }
    o
}

// --------------------------------------------------------------- profile

/// Where bench/tbprof.c watches for its marks: executing the
/// instruction at START zeroes the guest kernel's instruction counts, at
/// STOP writes them out (dump number = the marks' order).
const MARK_START: usize = 0x7e57_0000_0000;
const MARK_STOP: usize = 0x7e57_0000_0040;
/// Dumps written so far (stop marks set off).
static DUMPS: AtomicU64 = AtomicU64::new(0);
/// Whether the marks are mapped (`--profile`).
static PROFILING: AtomicBool = AtomicBool::new(false);

/// Maps the page holding the two marks: a `ret` at each.
fn map_marks() -> Result<(), String> {
    // SAFETY: A fresh anonymous mapping at a fixed address nothing else in
    // this process uses (MAP_FIXED_NOREPLACE fails rather than replace).
    let p = unsafe {
        libc::mmap(
            MARK_START as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p as usize != MARK_START {
        return Err(format!("mmap marks: {}", sys::Errno::last()));
    }
    // SAFETY: The page is ours, writable, 4096 bytes; both offsets are in it.
    unsafe {
        *(MARK_START as *mut u8) = 0xc3;
        *(MARK_STOP as *mut u8) = 0xc3;
    }
    PROFILING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Sets off a mark (nothing without `--profile`).
fn mark(at: usize) {
    if !PROFILING.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: `map_marks` put a `ret` at `at` in an executable page that
    // stays mapped: calling it returns at once.
    let f: extern "C" fn() = unsafe { core::mem::transmute(at) };
    f();
    if at == MARK_STOP {
        DUMPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Prints the text symbols of the loaded modules (their addresses change
/// with every load) for bench/profile-report.py.
fn print_module_symbols() {
    let Ok(s) = std::fs::read_to_string("/proc/kallsyms") else {
        return;
    };
    for l in s.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 4 && matches!(f[1], "t" | "T") {
            println!(
                "vbench-ksym,{},{},{}",
                f[0],
                f[2],
                f[3].trim_matches(['[', ']'])
            );
        }
    }
}

// ------------------------------------------------------------------ ring

/// The hot-loop view of one split ring set up by `driver::Net`: fixed
/// descriptors, our own indices, the ring's kick and call eventfds.
struct Ring {
    num: u16,
    desc: u64,
    avail: u64,
    used: u64,
    avail_idx: u16,
    kicked_idx: u16,
    last_used: u16,
    kick: i32,
    call: i32,
    kicks: u64,
    /// VIRTIO_F_IN_ORDER negotiated: descriptors must be made available in
    /// table order (each chain here is one descriptor, whose id is its
    /// avail position modulo `num`), and a used element stands for every
    /// chain from its position up to its id ([`Ring::next_used`]).
    in_order: bool,
}

impl Ring {
    fn of(vq: &driver::Vq, in_order: bool) -> Ring {
        Ring {
            in_order,
            num: vq.num,
            desc: vq.desc,
            avail: vq.avail,
            used: vq.used,
            avail_idx: 0,
            kicked_idx: 0,
            last_used: 0,
            kick: vq.kick.raw(),
            call: vq.call.raw(),
            kicks: 0,
        }
    }
    /// Takes the used element at `last_used` (the caller saw `used_idx`
    /// = `ui` beyond it): `(first, n, len)`, the descriptors `first`,
    /// `first + 1`, ... (`n` of them, modulo `num`) are used, the last one
    /// with `len` bytes written. Out of order an element is one chain.
    /// In order (virtio 1.x 2.7.9; 7.3's `vhost_add_used_n_in_order`) the
    /// device writes one element per batch of chains at the position of
    /// the batch's first chain, with the id of its last, and moves
    /// `used->idx` by the number of chains: TX one element per batch with
    /// `len` 0, RX one per packet (its last buffer's id, the bytes in that
    /// buffer; `num_buffers` in the header counts the buffers). An element
    /// that would reach beyond `ui` is a device bug: an error.
    fn next_used(&mut self, mem: &GuestMem, ui: u16) -> Result<(u16, u16, u32), String> {
        let (id, len) = self.used_elem(mem);
        if !self.in_order {
            self.last_used = self.last_used.wrapping_add(1);
            return Ok((id, 1, len));
        }
        let first = self.last_used % self.num;
        if id >= self.num {
            return Err(format!(
                "in-order used element at {}: id {id} >= {}",
                self.last_used, self.num
            ));
        }
        let n = (id + self.num - first) % self.num + 1;
        if n > ui.wrapping_sub(self.last_used) {
            return Err(format!(
                "in-order used element at {} (id {id}) covers {n} chains, used idx {ui}",
                self.last_used
            ));
        }
        self.last_used = self.last_used.wrapping_add(n);
        Ok((first, n, len))
    }
    fn set_desc(&self, mem: &GuestMem, i: u16, gpa: u64, len: u32, flags: u16) {
        let at = self.desc + 16 * i as u64;
        mem.w64(at, gpa);
        mem.w32(at + 8, len);
        mem.w16(at + 12, flags);
        mem.w16(at + 14, 0);
    }
    fn push(&mut self, mem: &GuestMem, id: u16) {
        mem.w16(self.avail + 4 + 2 * (self.avail_idx % self.num) as u64, id);
        self.avail_idx = self.avail_idx.wrapping_add(1);
    }
    /// Publishes avail->idx and kicks if the device's avail_event asks.
    fn notify(&mut self, mem: &GuestMem) {
        fence(Ordering::SeqCst);
        mem.w16(self.avail + 2, self.avail_idx);
        fence(Ordering::SeqCst);
        let (old, new) = (self.kicked_idx, self.avail_idx);
        self.kicked_idx = new;
        let ev = mem.r16(self.used + 4 + 8 * self.num as u64);
        if new.wrapping_sub(ev).wrapping_sub(1) < new.wrapping_sub(old) {
            let v = 1u64;
            // SAFETY: this Ring's `kick` is the eventfd of a `driver::Vq` in `net`, which outlives
            // the Ring; `v` is a readable u64, the 8 bytes written.
            unsafe { libc::write(self.kick, (&v as *const u64).cast(), 8) };
            self.kicks += 1;
        }
    }
    fn used_idx(&self, mem: &GuestMem) -> u16 {
        let v = mem.r16(self.used + 2);
        fence(Ordering::Acquire);
        v
    }
    /// The used element at our `last_used`: (id, len).
    fn used_elem(&self, mem: &GuestMem) -> (u16, u32) {
        let e = self.used + 4 + 8 * (self.last_used % self.num) as u64;
        (mem.r32(e) as u16, mem.r32(e + 4))
    }
    /// Asks for a call when used entry `idx` is published.
    fn set_used_event(&self, mem: &GuestMem, idx: u16) {
        mem.w16(self.avail + 4 + 2 * self.num as u64, idx);
        fence(Ordering::SeqCst);
    }
    /// Sleeps on the call eventfd (up to `ms`) and clears it.
    fn wait(&self, ms: i32) {
        driver::poll_in(self.call, ms);
        let mut v = 0u64;
        // SAFETY: this Ring's `call` is the eventfd of a `driver::Vq` in `net`, which outlives the
        // Ring; `v` is a writable u64, the 8 bytes read.
        unsafe { libc::read(self.call, (&mut v as *mut u64).cast(), 8) };
    }
}

// ------------------------------------------------------------ CPU time

/// Binds thread `tid` (0: the calling thread) to `cpu`, or to every CPU
/// when `None` ([`placement`]).
fn pin(tid: i32, cpu: Option<usize>) -> Result<(), String> {
    // SAFETY: `cpu_set_t` is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let cpus = match cpu {
        Some(c) => c..c + 1,
        None => 0..libc::CPU_SETSIZE as usize,
    };
    for c in cpus {
        // SAFETY: `set` is a live cpu_set_t; CPU_SET checks `c` against its size.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a live cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(format!(
            "pin {tid} to CPU {cpu:?}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The vhost worker of this process: the `vhost-<pid>` thread.
fn worker_tid() -> Option<i32> {
    let want = format!("vhost-{}", std::process::id());
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() == want {
            return e.file_name().to_str()?.parse().ok();
        }
    }
    None
}

/// What a thread has used of the CPU so far.
#[derive(Clone, Copy)]
struct Cpu {
    /// schedstat run time, nanoseconds.
    ns: u64,
    /// stat's utime + stime, clock ticks.
    ticks: u64,
    /// schedstat's count of times the thread was put on a CPU: once per
    /// wake-up, plus preemptions.
    runs: u64,
}

fn cpu_of(tid: i32) -> Cpu {
    let base = format!("/proc/self/task/{tid}");
    let sched: Vec<u64> = std::fs::read_to_string(format!("{base}/schedstat"))
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = std::fs::read_to_string(format!("{base}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Cpu {
        ns: sched.first().copied().unwrap_or(0),
        ticks,
        runs: sched.get(2).copied().unwrap_or(0),
    }
}

fn clk_tck() -> u64 {
    // SAFETY: plain call with an integer argument; -1 on failure is handled below.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

// ------------------------------------------------------------- results

#[derive(Default, Debug)]
struct Row {
    packets: u64,
    secs: f64,
    bytes: u64,
    worker_ns: u64,
    worker_ticks: u64,
    worker_runs: u64,
    lat: Vec<f64>,
    delivered: Option<u64>,
    offered: Option<u64>,
    /// VIRTIO_F_IN_ORDER negotiated.
    in_order: bool,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn print_row(round: u32, imp: Impl, test: &str, size: usize, r: &mut Row) {
    let per = |x: f64| {
        if r.packets == 0 {
            f64::NAN
        } else {
            x / r.packets as f64
        }
    };
    let stat_ns = r.worker_ticks as f64 * 1e9 / clk_tck() as f64;
    let p50 = pct(&mut r.lat, 0.5);
    let p99 = pct(&mut r.lat, 0.99);
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_default();
    let nan = |x: f64, prec: usize| {
        if x.is_finite() {
            format!("{x:.prec$}")
        } else {
            String::new()
        }
    };
    println!(
        "vbench-row,{round},{},{test},{size},{},{:.4},{:.1},{:.4},{},{},{},{},{},{},{},{}",
        imp.label(),
        r.packets,
        r.secs,
        r.packets as f64 / r.secs,
        r.bytes as f64 * 8.0 / r.secs / 1e9,
        nan(per(r.worker_ns as f64), 0),
        nan(per(stat_ns), 0),
        nan(p50, 1),
        nan(p99, 1),
        opt(r.delivered),
        opt(r.offered),
        nan(per(r.worker_runs as f64 * 1000.0), 1),
        u8::from(r.in_order),
    );
    let _ = std::io::stdout().flush();
}

// --------------------------------------------------------------- set-up

/// Opens the device for a row whose threads run on `cpus` ([`placement`]):
/// the calling thread (the driver) and the worker are bound here, the
/// other side's thread binds itself.
fn setup(o: &Opts, cpus: Option<[usize; 3]>, in_order: bool) -> Result<(Net, i32), String> {
    let mut obs = Obs::default();
    let cfg = Cfg {
        num: o.num,
        in_order,
        ..Cfg::default()
    };
    let mut net =
        Net::new(&mut obs, "", cfg).ok_or_else(|| format!("setup: {:?}", obs.failures))?;
    // Nobody captures on the tap: frames the guest sends are dropped by the
    // stack as cheaply as possible.
    drop(std::mem::replace(&mut net.tap.cap, Fd(-1)));
    for index in [0u32, 1] {
        let mut s = uapi::VhostVringState {
            index,
            num: o.busyloop,
        };
        sys::ioctl_ptr(
            net.dev.raw(),
            uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT as u64,
            &mut s,
        )
        .map_err(|e| format!("SET_VRING_BUSYLOOP_TIMEOUT {index}: {e:?}"))?;
    }
    let tid = worker_tid().ok_or("no vhost-<pid> worker thread")?;
    pin(0, cpus.map(|c| c[0]))?;
    pin(tid, cpus.map(|c| c[2]))?;
    Ok((net, tid))
}

fn tap_stat(net: &Net, what: &str) -> u64 {
    net.tap.stat(what).parse().unwrap_or(0)
}

/// The measured window: warm-up, then `secs` or `pkts` packets.
struct Window {
    start: Instant,
    warm: Duration,
    secs: Duration,
    pkts: u64,
    on: Option<(Instant, u64, Cpu)>,
    last_progress: Instant,
    last_count: u64,
}

impl Window {
    fn new(o: &Opts) -> Window {
        let now = Instant::now();
        Window {
            start: now,
            warm: Duration::from_secs_f64(o.warm),
            secs: Duration::from_secs_f64(o.secs),
            pkts: o.pkts,
            on: None,
            last_progress: now,
            last_count: 0,
        }
    }
    /// Called with the running packet count; returns Ok(true) when the
    /// window is over (the row is then filled in).
    fn tick(&mut self, count: u64, tid: i32, row: &mut Row) -> Result<bool, String> {
        let now = Instant::now();
        if count != self.last_count {
            self.last_count = count;
            self.last_progress = now;
        } else if now - self.last_progress > STALL {
            return Err(format!(
                "no progress for {}s ({count} packets)",
                STALL.as_secs()
            ));
        }
        match self.on {
            None => {
                if now - self.start >= self.warm {
                    mark(MARK_START);
                    self.on = Some((now, count, cpu_of(tid)));
                }
                Ok(false)
            }
            Some((t0, c0, cpu0)) => {
                let n = count - c0;
                if now - t0 >= self.secs || (self.pkts > 0 && n >= self.pkts) {
                    mark(MARK_STOP);
                    let cpu1 = cpu_of(tid);
                    row.packets = n;
                    row.secs = (now - t0).as_secs_f64();
                    row.worker_ns = cpu1.ns.saturating_sub(cpu0.ns);
                    row.worker_ticks = cpu1.ticks.saturating_sub(cpu0.ticks);
                    row.worker_runs = cpu1.runs.saturating_sub(cpu0.runs);
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }
    fn measuring(&self) -> bool {
        self.on.is_some()
    }
}

/// A frame of `size` bytes for the benchmark: a local ethertype, or for
/// sizes above 9000 an IPv4/TCP frame (the guest side sends it as a GSO
/// frame), for another host: the stack drops it early.
fn bench_frame(size: usize) -> Vec<u8> {
    let mut f = driver::frame(size, driver::UNICAST, 0xbe, size as u32, None);
    if size > 9000 {
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip.fill(0);
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((size - 14) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6; // TCP
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let mut sum = 0u32;
        for c in ip.chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        let tcp = &mut f[34..54];
        tcp.fill(0);
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5678u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        tcp[14..16].copy_from_slice(&65535u16.to_be_bytes());
    }
    f
}

/// The virtio-net header (12 bytes, little endian) for a TX frame: GSO
/// TCPv4 with partial checksum for the big frames, none otherwise.
fn tx_hdr(size: usize, hdr_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; hdr_len];
    if size > 9000 {
        h[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
        h[1] = 1; // VIRTIO_NET_HDR_GSO_TCPV4
        h[2..4].copy_from_slice(&54u16.to_le_bytes()); // hdr_len
        h[4..6].copy_from_slice(&1448u16.to_le_bytes()); // gso_size
        h[6..8].copy_from_slice(&34u16.to_le_bytes()); // csum_start
        h[8..10].copy_from_slice(&16u16.to_le_bytes()); // csum_offset
    }
    h
}

// ------------------------------------------------------------------- TX

fn bench_tx(o: &Opts, size: usize, in_order: bool) -> Result<Row, String> {
    let (mut net, tid) = setup(o, placement(o, "tx"), in_order)?;
    let hdr = net.hdr_len;
    let len = hdr + size;
    let mut r = Ring::of(&net.tx, in_order);
    let num = r.num;
    let nbufs = (num as usize).min(TX_MEM / len).max(1);
    let mut pkt = tx_hdr(size, hdr);
    pkt.extend(bench_frame(size));
    let bufs: Vec<u64> = (0..nbufs)
        .map(|_| {
            let g = net.mem.alloc(len);
            net.mem.write(g, &pkt);
            g
        })
        .collect();
    let mem = &net.mem;
    for i in 0..num {
        r.set_desc(mem, i, bufs[i as usize % nbufs], len as u32, 0);
    }
    let mut free: Vec<u16> = (0..num).rev().collect();
    let mut done = 0u64;
    let mut row = Row::default();
    let mut w = Window::new(o);
    let mut d0 = 0;
    loop {
        let ui = r.used_idx(mem);
        while r.last_used != ui {
            let (first, n, _) = r.next_used(mem, ui)?;
            for k in 0..n {
                free.push((first + k) % num);
            }
            done += u64::from(n);
        }
        let was = w.measuring();
        if w.tick(done, tid, &mut row)? {
            break;
        }
        if !was && w.measuring() {
            d0 = tap_stat(&net, "rx_packets");
        }
        if !free.is_empty() {
            if r.in_order {
                // In table order: the next descriptor is the next avail slot's.
                for _ in 0..free.len() {
                    r.push(mem, r.avail_idx % num);
                }
                free.clear();
            } else {
                while let Some(id) = free.pop() {
                    r.push(mem, id);
                }
            }
            r.notify(mem);
            continue;
        }
        // Ring full: sleep until half of it came back.
        r.set_used_event(mem, r.last_used.wrapping_add(num / 2 - 1));
        if r.used_idx(mem) == r.last_used {
            r.wait(100);
        }
    }
    row.bytes = row.packets * size as u64;
    row.delivered = Some(tap_stat(&net, "rx_packets") - d0);
    Ok(row)
}

// ------------------------------------------------------------------- RX

fn packet_socket(proto: u16, ifindex: i32) -> Result<Fd, String> {
    // SAFETY: plain syscall with integer arguments; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto.to_be() as i32,
        )
    };
    if fd < 0 {
        return Err(format!("AF_PACKET socket: {}", sys::Errno::last()));
    }
    let fd = Fd(fd);
    let one: i32 = 1;
    // SAFETY: `fd` is the socket just opened; `one` is a live i32 and 4, the length passed, is its
    // size.
    unsafe {
        libc::setsockopt(
            fd.raw(),
            libc::SOL_PACKET,
            PACKET_QDISC_BYPASS,
            (&one as *const i32).cast(),
            4,
        )
    };
    if proto != 0 {
        // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array: all-zero is
        // valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `fd` is an open socket; `sll` is an initialized sockaddr_ll and the length passed
        // is its size.
        let rc = unsafe {
            libc::bind(
                fd.raw(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(format!("bind AF_PACKET: {}", sys::Errno::last()));
        }
    }
    Ok(fd)
}

fn sll_to(ifindex: i32, frame: &[u8]) -> libc::sockaddr_ll {
    // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array: all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
    sll
}

/// Injects `frame` out of the tap until `stop`; counts frames sent.
fn injector(
    ifindex: i32,
    frame: Vec<u8>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> Result<(), String> {
    let sock = packet_socket(0, ifindex)?;
    let sll = sll_to(ifindex, &frame);
    const BATCH: usize = 32;
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    };
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| {
            // SAFETY: `mmsghdr` is a plain C struct of integers and pointers: all-zero is valid.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = (&sll as *const libc::sockaddr_ll) as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `msgs` holds BATCH initialized mmsghdrs whose name points at `sll` and iov at
        // `iov` -> `frame`, all alive across the call; the kernel only reads those and writes
        // msg_len.
        let n = unsafe { libc::sendmmsg(sock.raw(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent.fetch_add(n as u64, Ordering::Relaxed);
        } else {
            // SAFETY: sched_yield takes no arguments.
            unsafe { libc::sched_yield() };
        }
    }
    Ok(())
}

fn bench_rx(o: &Opts, size: usize, in_order: bool) -> Result<Row, String> {
    let cpus = placement(o, "rx");
    let (mut net, tid) = setup(o, cpus, in_order)?;
    let mut r = Ring::of(&net.rx, in_order);
    let num = r.num;
    let bufs: Vec<u64> = (0..num).map(|_| net.mem.alloc(RX_BUF)).collect();
    let mem = &net.mem;
    for i in 0..num {
        r.set_desc(mem, i, bufs[i as usize], RX_BUF as u32, VRING_DESC_F_WRITE);
        r.push(mem, i);
    }
    r.notify(mem);
    let inj = Injection::start(
        o.injector(),
        &net.tap,
        size,
        cpus.map(|c| c[1]),
        o.pktgen_threads(),
    )?;
    let mut pkts = 0u64;
    let mut rest = 0u16; // buffers left of the current packet
    let mut row = Row::default();
    let mut w = Window::new(o);
    let mut s0 = 0;
    let res = loop {
        let ui = r.used_idx(mem);
        let got = r.last_used != ui;
        let mut bad = None;
        while r.last_used != ui {
            let (first, n, _) = match r.next_used(mem, ui) {
                Ok(u) => u,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            };
            let nb = mem.r16(bufs[first as usize % bufs.len()] + 10);
            if r.in_order {
                // One element per packet: its buffers are first..=id.
                if nb != n {
                    bad = Some(format!(
                        "in-order RX: an element covers {n} buffers, num_buffers {nb}"
                    ));
                    break;
                }
                pkts += 1;
            } else if rest == 0 {
                rest = nb.max(1) - 1;
                pkts += 1;
            } else {
                rest -= 1;
            }
            for k in 0..n {
                r.push(mem, (first + k) % num);
            }
        }
        if let Some(e) = bad {
            break Err(e);
        }
        if got {
            r.notify(mem);
        }
        let was = w.measuring();
        match w.tick(pkts, tid, &mut row) {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
        if !was && w.measuring() {
            s0 = inj.offered();
        }
        if !got {
            r.set_used_event(mem, r.last_used);
            if r.used_idx(mem) == r.last_used {
                r.wait(100);
            }
        }
    };
    let offered = inj.offered() - s0;
    let inj = inj.stop();
    res?;
    inj?;
    row.bytes = row.packets * size as u64;
    row.offered = Some(offered);
    Ok(row)
}

/// The RX rows' injector, running.
enum Injection {
    /// [`injector`] on its thread, with its count of frames sent.
    Socket {
        stop: Arc<AtomicBool>,
        sent: Arc<AtomicU64>,
        thread: std::thread::JoinHandle<Result<(), String>>,
    },
    Pktgen(Pktgen),
}

impl Injection {
    /// Starts injecting `size`-byte frames into `tap`, from `cpu` if set;
    /// pktgen from `threads` threads, on `cpu` and the CPUs after it.
    fn start(
        how: Inject,
        tap: &driver::Tap,
        size: usize,
        cpu: Option<usize>,
        threads: usize,
    ) -> Result<Injection, String> {
        if how == Inject::Pktgen {
            let first = cpu.unwrap_or(0);
            let n = online_cpus().max(1) as usize;
            let cpus: Vec<usize> = (0..threads).map(|i| (first + i) % n).collect();
            return Pktgen::start(&tap.name, size, &cpus).map(Injection::Pktgen);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (st, se) = (stop.clone(), sent.clone());
        let (ifindex, frame) = (tap.ifindex, bench_frame(size));
        let thread = std::thread::spawn(move || {
            pin(0, cpu)?;
            injector(ifindex, frame, st, se)
        });
        Ok(Injection::Socket { stop, sent, thread })
    }

    /// Frames offered to the tap so far.
    fn offered(&self) -> u64 {
        match self {
            Injection::Socket { sent, .. } => sent.load(Ordering::Relaxed),
            Injection::Pktgen(p) => p.sent(),
        }
    }

    fn stop(self) -> Result<(), String> {
        match self {
            Injection::Socket { stop, thread, .. } => {
                stop.store(true, Ordering::Relaxed);
                thread.join().map_err(|_| "injector panicked".to_string())?
            }
            Injection::Pktgen(p) => p.stop(),
        }
    }
}

/// The kernel's packet generator sending `size`-byte frames into a tap
/// (Documentation/networking/pktgen.rst): one device on the thread of
/// each given CPU (the second and later named `tap@N`, pktgen's way of
/// sending into one interface from several threads), `count 0` (until
/// stopped), a new skb per frame.
struct Pktgen {
    /// pktgen's device names (`tap`, `tap@1`, ...) and their threads.
    devs: Vec<(String, String)>,
    /// The writer of `start` to pgctrl: it returns when pktgen stops.
    run: std::thread::JoinHandle<Result<(), String>>,
}

impl Pktgen {
    const DIR: &'static str = "/proc/net/pktgen";
    const MODULE: &'static str = "/lib/pktgen.ko";

    /// Writes one command; with its newline, which pgctrl cuts off
    /// whatever the last byte is.
    fn write(file: &str, cmd: &str) -> Result<(), String> {
        std::fs::write(format!("{}/{file}", Self::DIR), format!("{cmd}\n"))
            .map_err(|e| format!("pktgen: {file} <- {cmd}: {e}"))
    }

    fn start(dev: &str, size: usize, cpus: &[usize]) -> Result<Pktgen, String> {
        if !std::path::Path::new(Self::DIR).exists() {
            let st = std::process::Command::new("insmod")
                .arg(Self::MODULE)
                .status()
                .map_err(|e| format!("insmod {}: {e}", Self::MODULE))?;
            if !st.success() {
                return Err(format!("insmod {}: {st}", Self::MODULE));
            }
        }
        let m = driver::UNICAST;
        let mac = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let mut devs = Vec::new();
        for (i, cpu) in cpus.iter().enumerate() {
            let thread = format!("kpktgend_{cpu}");
            let name = if i == 0 {
                dev.to_string()
            } else {
                format!("{dev}@{i}")
            };
            Self::write(&thread, "rem_device_all")?;
            Self::write(&thread, &format!("add_device {name}"))?;
            for cmd in [
                "count 0".to_string(),
                format!("pkt_size {size}"),
                "clone_skb 0".to_string(),
                "delay 0".to_string(),
                format!("dst_mac {mac}"),
                "dst 198.18.0.2".to_string(),
            ] {
                Self::write(&name, &cmd)?;
            }
            devs.push((name, thread));
        }
        let run = std::thread::spawn(|| Self::write("pgctrl", "start"));
        let pg = Pktgen { devs, run };
        // A thread takes `start` and `stop` from flags it reads in its
        // loop, stop first: a stop written before a thread saw the start
        // would leave its device sending after the stop, with no end
        // (`count 0`). So the window starts once every device runs.
        if let Err(e) = Self::wait_threads(&pg.devs, true) {
            let _ = pg.stop();
            return Err(e);
        }
        Ok(pg)
    }

    /// Waits (up to 5 s) until every device runs (`running`), or until no
    /// thread lists it any more (`!running`): its thread's `Running:` and
    /// `Stopped:` lines.
    fn wait_threads(devs: &[(String, String)], running: bool) -> Result<(), String> {
        let end = Instant::now() + Duration::from_secs(5);
        for (dev, thread) in devs {
            loop {
                let s = std::fs::read_to_string(format!("{}/{thread}", Self::DIR))
                    .map_err(|e| format!("pktgen: {thread}: {e}"))?;
                let listed = |tag: &str| -> bool {
                    s.lines()
                        .find_map(|l| l.strip_prefix(tag))
                        .is_some_and(|l| l.split_whitespace().any(|d| d == dev))
                };
                let done = if running {
                    listed("Running:")
                } else {
                    !listed("Running:") && !listed("Stopped:")
                };
                if done {
                    break;
                }
                if Instant::now() > end {
                    let want = if running { "running" } else { "removed" };
                    return Err(format!("pktgen: {thread}: {dev} not {want}: {s:?}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Frames offered to the tap so far: pktgen's `pkts-sofar` (those
    /// the tap took) plus its `errors` (those it dropped, its queue full),
    /// of every thread.
    fn sent(&self) -> u64 {
        let mut n = 0;
        for (dev, _) in &self.devs {
            let s = std::fs::read_to_string(format!("{}/{dev}", Self::DIR)).unwrap_or_default();
            let field = |name: &str| -> u64 {
                let mut w = s.split_whitespace();
                w.by_ref().find(|&t| t == name);
                w.next().and_then(|n| n.parse().ok()).unwrap_or(0)
            };
            n += field("pkts-sofar:") + field("errors:");
        }
        n
    }

    fn stop(self) -> Result<(), String> {
        let Pktgen { devs, run } = self;
        let r = Self::write("pgctrl", "stop");
        let ran = run
            .join()
            .map_err(|_| "pktgen start panicked".to_string())?;
        let mut res = r.and(ran);
        for (_, thread) in &devs {
            res = res.and(Self::write(thread, "rem_device_all"));
        }
        // The threads drop their devices (and their references on the
        // tap) in their own loop: wait for it, so that the tap closes
        // freely and the next row's `add_device` finds the names free.
        res.and(Self::wait_threads(&devs, false))
    }
}

// -------------------------------------------------------------- latency

/// Sends back out of the tap every frame the guest sent, until `stop`.
fn reflector(ifindex: i32, stop: Arc<AtomicBool>) -> Result<(), String> {
    let sock = packet_socket(libc::ETH_P_ALL as u16, ifindex)?;
    let one: i32 = 1;
    // SAFETY: `sock` is an open socket; `one` is a live i32 and 4, the length passed, is its size.
    unsafe {
        libc::setsockopt(
            sock.raw(),
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            (&one as *const i32).cast(),
            4,
        )
    };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 50_000,
    };
    // SAFETY: `sock` is an open socket; `tv` is a live timeval of the length passed.
    unsafe {
        libc::setsockopt(
            sock.raw(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    let mut buf = vec![0u8; 70000];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `sock` is an open socket; `buf` is a valid, writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(sock.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 14 || buf[6..9] != [0x02, 0x76, 0x68] {
            continue;
        }
        let f = &buf[..n as usize];
        let sll = sll_to(ifindex, f);
        // SAFETY: `sock` is an open socket; `f` is readable for `f.len()` bytes and `sll` is an
        // initialized sockaddr_ll of the length passed.
        unsafe {
            libc::sendto(
                sock.raw(),
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
    }
    Ok(())
}

fn bench_lat(o: &Opts, size: usize, in_order: bool) -> Result<Row, String> {
    let cpus = placement(o, "lat");
    let (mut net, tid) = setup(o, cpus, in_order)?;
    let hdr = net.hdr_len;
    let mut rx = Ring::of(&net.rx, in_order);
    // TX hands out its descriptors in table order already (`next_tx`)
    // and reclaims by used->idx alone: in order or not, nothing differs.
    let mut tx = Ring::of(&net.tx, in_order);
    let num = rx.num;
    let rbufs: Vec<u64> = (0..num).map(|_| net.mem.alloc(RX_BUF)).collect();
    let mut pkt = vec![0u8; hdr];
    pkt.extend(bench_frame(size));
    let tbuf = net.mem.alloc(pkt.len());
    net.mem.write(tbuf, &pkt);
    let mem = &net.mem;
    for i in 0..num {
        rx.set_desc(mem, i, rbufs[i as usize], RX_BUF as u32, VRING_DESC_F_WRITE);
        rx.push(mem, i);
        tx.set_desc(mem, i, tbuf, pkt.len() as u32, 0);
    }
    rx.notify(mem);
    let stop = Arc::new(AtomicBool::new(false));
    let th = {
        let stop = stop.clone();
        let ifindex = net.tap.ifindex;
        let cpu = cpus.map(|c| c[1]);
        std::thread::spawn(move || {
            pin(0, cpu)?;
            reflector(ifindex, stop)
        })
    };
    // let the reflector bind before the first ping
    std::thread::sleep(Duration::from_millis(20));
    let mut row = Row::default();
    let mut w = Window::new(o);
    let mut trips = 0u64;
    let mut lat = Vec::new();
    let mut next_tx = 0u16;
    let res = loop {
        // reclaim TX (fixed descriptors: nothing to do but advance)
        let ui = tx.used_idx(mem);
        tx.last_used = ui;
        let t0 = Instant::now();
        tx.push(mem, next_tx);
        next_tx = (next_tx + 1) % num;
        tx.notify(mem);
        let deadline = t0 + Duration::from_secs(2);
        let mut lost = false;
        loop {
            if rx.used_idx(mem) != rx.last_used {
                break;
            }
            rx.set_used_event(mem, rx.last_used);
            if rx.used_idx(mem) != rx.last_used {
                break;
            }
            if Instant::now() > deadline {
                lost = true;
                break;
            }
            rx.wait(100);
        }
        let dt = t0.elapsed();
        if !lost {
            let ui = rx.used_idx(mem);
            let mut bad = None;
            while rx.last_used != ui {
                match rx.next_used(mem, ui) {
                    Ok((first, n, _)) => {
                        for k in 0..n {
                            rx.push(mem, (first + k) % num);
                        }
                    }
                    Err(e) => {
                        bad = Some(e);
                        break;
                    }
                }
            }
            if let Some(e) = bad {
                break Err(e);
            }
            rx.notify(mem);
            trips += 1;
            if w.measuring() {
                lat.push(dt.as_secs_f64() * 1e6);
            }
        }
        match w.tick(trips, tid, &mut row) {
            Ok(true) => break Ok(()),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    stop.store(true, Ordering::Relaxed);
    let refl = th.join().map_err(|_| "reflector panicked".to_string())?;
    res?;
    refl?;
    row.bytes = row.packets * size as u64;
    row.lat = lat;
    Ok(row)
}

/// Whether the loaded module offers VIRTIO_F_IN_ORDER (VHOST_GET_FEATURES
/// on a device of its own).
fn offers_in_order() -> Result<bool, String> {
    let dev = sys::open("/dev/vhost-net", libc::O_RDWR)
        .map_err(|e| format!("open /dev/vhost-net: {e}"))?;
    let mut f = 0u64;
    sys::ioctl_ptr(dev.raw(), uapi::VHOST_GET_FEATURES as u64, &mut f)
        .map_err(|e| format!("GET_FEATURES: {e:?}"))?;
    Ok(f & (1u64 << uapi::VIRTIO_F_IN_ORDER) != 0)
}

/// Rows measured and errors so far.
#[derive(Default)]
struct Count {
    rows: u32,
    errors: u32,
}

/// One phase: loads `imp`, measures `rows` (test, size) on it, unloads it.
/// `count` false: a settling window, whose rows are not printed (only its
/// errors are reported).
fn phase(o: &Opts, round: u32, imp: Impl, rows: &[(&str, usize)], n: &mut Count, count: bool) {
    let params = match imp {
        Impl::C => "",
        Impl::Ours => o.ours_params.as_str(),
    };
    if let Err(e) = o.paths.load_with(imp, params) {
        println!("vbench: ERROR round {round} {}: load: {e}", imp.label());
        n.errors += 1;
        return;
    }
    if o.profile {
        print_module_symbols();
    }
    let in_order = match o.in_order {
        InOrder::Off => false,
        InOrder::On => true,
        InOrder::Auto => offers_in_order().unwrap_or_else(|e| {
            println!("vbench: ERROR round {round} {}: {e}", imp.label());
            n.errors += 1;
            false
        }),
    };
    // Once per module: whether it negotiated it (the rows say it too).
    static SAID: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    if !SAID[imp as usize].swap(true, Ordering::Relaxed) {
        println!(
            "vbench: {}: VIRTIO_F_IN_ORDER {}",
            imp.label(),
            if in_order {
                "negotiated"
            } else {
                "not negotiated"
            }
        );
    }
    for &(test, size) in rows {
        let r = match test {
            "tx" => bench_tx(o, size, in_order),
            "rx" => bench_rx(o, size, in_order),
            "lat" => bench_lat(o, size, in_order),
            _ => Err(format!("unknown test {test}")),
        };
        match r {
            Ok(_) if !count => {}
            Ok(mut row) => {
                row.in_order = in_order;
                print_row(round, imp, test, size, &mut row);
                if o.profile {
                    println!(
                        "vbench-profile,{},{round},{},{test},{size},{}",
                        DUMPS.load(Ordering::SeqCst).wrapping_sub(1),
                        imp.label(),
                        row.packets
                    );
                }
                n.rows += 1;
            }
            Err(e) => {
                println!(
                    "vbench: ERROR round {round} {} {test} {size}: {e}",
                    imp.label()
                );
                n.errors += 1;
            }
        }
    }
    // every device of this phase is closed: the module must unload
    let main = o.paths.main_module(imp);
    for _ in 0..50 {
        if modules::refcnt(main).as_deref() == Ok("0") {
            break;
        }
        sys::sleep_ms(20);
    }
    if let Err(e) = o.paths.unload(imp) {
        println!("vbench: ERROR round {round} {}: unload: {e}", imp.label());
        n.errors += 1;
    }
}

// ----------------------------------------------------------------- main

fn main() {
    let o = parse();
    let (unloaded, errors) = modules::unload_all();
    if !unloaded.is_empty() || !errors.is_empty() {
        println!("vbench: before: unloaded {unloaded:?}, errors {errors:?}");
    }
    println!(
        "vbench: {} rounds, window {}s (warm-up {}s){}, ring {}, sizes {:?}, tests {:?}",
        o.rounds,
        o.secs,
        o.warm,
        if o.pkts > 0 {
            format!(" or {} packets", o.pkts)
        } else {
            String::new()
        },
        o.num,
        o.sizes,
        o.tests
    );
    println!("vbench-header,{HEADER}");
    if o.profile {
        if let Err(e) = map_marks() {
            println!("vbench: ERROR {e}");
            std::process::exit(1);
        }
    }
    let mut n = Count::default();
    let imps: Vec<Impl> = [Impl::C, Impl::Ours]
        .into_iter()
        .filter(|i| o.only.is_none_or(|x| x == *i))
        .collect();
    let mut rows: Vec<(&str, usize)> = Vec::new();
    for test in &o.tests {
        if test == "lat" {
            rows.push((test, 64));
        } else {
            rows.extend(o.sizes.iter().map(|&s| (test.as_str(), s)));
        }
    }
    for round in 1..=o.rounds {
        let t = Instant::now();
        if o.by_row {
            // Odd rounds C first, even rounds ours first: neither module
            // always follows the other's row.
            let mut order = imps.clone();
            if round % 2 == 0 {
                order.reverse();
            }
            let mut test = "";
            for row in &rows {
                // The first window of a test in a round can run slow
                // whichever module has it: on Debian's kernel (2026-12-07,
                // nine rounds) RX 64 B right after TX 64 KiB gave ours/C
                // 1.63 where C had that window and 0.90 where ours had it,
                // the rows after it no such split. A window not counted
                // takes that place (not under --profile, whose windows are
                // dumps the report numbers).
                if o.settle && !o.profile && row.0 != test {
                    phase(
                        &o,
                        round,
                        order[0],
                        core::slice::from_ref(row),
                        &mut n,
                        false,
                    );
                }
                test = row.0;
                for &imp in &order {
                    phase(&o, round, imp, core::slice::from_ref(row), &mut n, true);
                }
            }
        } else {
            for &imp in &imps {
                phase(&o, round, imp, &rows, &mut n, true);
            }
        }
        println!(
            "vbench: round {round} took {:.1}s",
            t.elapsed().as_secs_f64()
        );
    }
    let Count { rows, errors } = n;
    println!("vbench: {rows} rows, {errors} errors");
    std::process::exit(if errors == 0 { 0 } else { 1 });
}
