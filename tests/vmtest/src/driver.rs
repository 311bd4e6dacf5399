//! A userspace virtio-net "guest" driver for the data-path tests: guest
//! memory (one or two memory-table regions at a guest-physical base that
//! differs from the user address), split rings for RX (0) and TX (1), a tap
//! backend, and AF_PACKET sockets on the tap's host side.
//!
//! Directions (drivers/net/tun.c):
//! - guest TX: vhost `sendmsg`s on the tap socket, tun_get_user() injects
//!   the frame into the stack as if received on the tap: it is captured by
//!   an AF_PACKET socket bound to the tap (`Net::capture`).
//! - guest RX: a frame the stack transmits out of the tap (AF_PACKET
//!   `sendto` on the tap's ifindex, `Net::inject`) is queued by
//!   tun_net_xmit() in the tap's ring, where vhost `recvmsg`s it.
//!
//! Everything is self-contained (no dependence on the ioctl tests'
//! helpers) and deterministic: buffer placement, descriptor numbering and
//! frame contents depend only on what the test asks for.

#![allow(dead_code)]

use crate::harness::Obs;
use crate::sys::{self, fmt_res, ioctl, Errno, Fd, Res};
use crate::uapi;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

/// Guest-physical address of the first byte of guest memory.
pub const GPA_BASE: u64 = 0x4000_0000;
/// Size of guest memory (both regions together).
pub const MEM_SIZE: usize = 8 << 20;
/// Ring parts (offsets from GPA_BASE).
const RX_RING: u64 = 0x0000;
const TX_RING: u64 = 0x4000;
/// The buffer heap: from HEAP_START; the 64 KiB around the region boundary
/// (MEM_SIZE / 2) are left to tests that place buffers there by hand.
const HEAP_START: u64 = 0x10000;
const HOLE: u64 = 0x10000;

pub const VRING_DESC_F_NEXT: u16 = 1;
pub const VRING_DESC_F_WRITE: u16 = 2;
pub const VRING_DESC_F_INDIRECT: u16 = 4;
pub const VRING_USED_F_NO_NOTIFY: u16 = 1;

pub const fn bit(b: u32) -> u64 {
    1u64 << b
}

fn chk(r: i64) -> Res {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

// ---------------------------------------------------------------- memory

/// Guest memory: one anonymous mapping. With two regions, the upper half of
/// guest-physical space is the *lower* half of the mapping (and a page gap
/// separates them), so a buffer crossing the boundary is not contiguous in
/// user space: the device must split it.
pub struct GuestMem {
    base: *mut u8,
    map_len: usize,
    pub two_regions: bool,
    heap: u64,
}

impl GuestMem {
    pub fn new(two_regions: bool) -> GuestMem {
        let map_len = MEM_SIZE + 4096;
        // SAFETY: anonymous private mapping at an address the kernel picks (no MAP_FIXED), so no
        // existing memory is touched; the result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert!(
            p != libc::MAP_FAILED,
            "mmap guest memory: {}",
            Errno::last()
        );
        GuestMem {
            base: p.cast(),
            map_len,
            two_regions,
            heap: HEAP_START,
        }
    }

    /// Offset in the mapping of guest offset `off` (from GPA_BASE).
    fn map_off(&self, off: u64) -> usize {
        let half = (MEM_SIZE / 2) as u64;
        assert!(off < MEM_SIZE as u64, "guest offset {off:#x} out of memory");
        if !self.two_regions {
            off as usize
        } else if off < half {
            (half + 4096 + off) as usize
        } else {
            (off - half) as usize
        }
    }

    /// User address of a guest-physical address.
    pub fn uaddr(&self, gpa: u64) -> u64 {
        self.base as u64 + self.map_off(gpa - GPA_BASE) as u64
    }

    pub fn regions(&self) -> Vec<uapi::VhostMemoryRegion> {
        let r = |gpa: u64, size: u64, ua: u64| uapi::VhostMemoryRegion {
            guest_phys_addr: gpa,
            memory_size: size,
            userspace_addr: ua,
            flags_padding: 0,
        };
        if self.two_regions {
            let half = (MEM_SIZE / 2) as u64;
            vec![
                r(GPA_BASE, half, self.uaddr(GPA_BASE)),
                r(GPA_BASE + half, half, self.uaddr(GPA_BASE + half)),
            ]
        } else {
            vec![r(GPA_BASE, MEM_SIZE as u64, self.uaddr(GPA_BASE))]
        }
    }

    /// Contiguous pieces (user pointer, length) of `[gpa, gpa+len)`.
    fn pieces(&self, gpa: u64, len: usize) -> Vec<(*mut u8, usize)> {
        let mut out = Vec::new();
        let half = GPA_BASE + (MEM_SIZE / 2) as u64;
        let mut g = gpa;
        let mut left = len;
        while left > 0 {
            let n = if self.two_regions && g < half {
                left.min((half - g) as usize)
            } else {
                left
            };
            out.push((self.uaddr(g) as *mut u8, n));
            g += n as u64;
            left -= n;
        }
        out
    }

    pub fn write(&self, gpa: u64, b: &[u8]) {
        let mut o = 0;
        for (p, n) in self.pieces(gpa, b.len()) {
            // SAFETY: `p` points into the live mapping (`map_off` asserts each piece's start; the
            // caller keeps `gpa + len` inside guest memory) and `b[o..]` holds at least `n` bytes
            // (the pieces sum to `b.len()`); `b` is a Rust buffer, not the mapping, so no overlap.
            unsafe { std::ptr::copy_nonoverlapping(b[o..].as_ptr(), p, n) };
            o += n;
        }
    }

    pub fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let mut o = 0;
        for (p, n) in self.pieces(gpa, len) {
            // SAFETY: `p` points into the live mapping (`map_off` asserts each piece's start; the
            // caller keeps `gpa + len` inside guest memory) and `v[o..]` has room for `n` bytes
            // (the pieces sum to `len`); `v` is a fresh Vec, so they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(p, v[o..].as_mut_ptr(), n) };
            o += n;
        }
        v
    }

    pub fn fill(&self, gpa: u64, len: usize, byte: u8) {
        for (p, n) in self.pieces(gpa, len) {
            // SAFETY: `p` points into the live mapping (`map_off` asserts each piece's start; the
            // caller keeps `gpa + len` inside guest memory) and the piece is `n` bytes long.
            unsafe { std::ptr::write_bytes(p, byte, n) };
        }
    }

    pub fn w16(&self, gpa: u64, v: u16) {
        // SAFETY: `uaddr` asserts `gpa` is inside the live mapping; callers pass ring fields
        // aligned for the type (the mapping is page-aligned). Volatile: the vhost worker accesses
        // this memory concurrently.
        unsafe { std::ptr::write_volatile(self.uaddr(gpa) as *mut u16, v) }
    }
    pub fn r16(&self, gpa: u64) -> u16 {
        // SAFETY: `uaddr` asserts `gpa` is inside the live mapping; callers pass ring fields
        // aligned for the type (the mapping is page-aligned). Volatile: the vhost worker accesses
        // this memory concurrently.
        unsafe { std::ptr::read_volatile(self.uaddr(gpa) as *const u16) }
    }
    pub fn w32(&self, gpa: u64, v: u32) {
        // SAFETY: `uaddr` asserts `gpa` is inside the live mapping; callers pass ring fields
        // aligned for the type (the mapping is page-aligned). Volatile: the vhost worker accesses
        // this memory concurrently.
        unsafe { std::ptr::write_volatile(self.uaddr(gpa) as *mut u32, v) }
    }
    pub fn r32(&self, gpa: u64) -> u32 {
        // SAFETY: `uaddr` asserts `gpa` is inside the live mapping; callers pass ring fields
        // aligned for the type (the mapping is page-aligned). Volatile: the vhost worker accesses
        // this memory concurrently.
        unsafe { std::ptr::read_volatile(self.uaddr(gpa) as *const u32) }
    }
    pub fn w64(&self, gpa: u64, v: u64) {
        // SAFETY: `uaddr` asserts `gpa` is inside the live mapping; callers pass ring fields
        // aligned for the type (the mapping is page-aligned). Volatile: the vhost worker accesses
        // this memory concurrently.
        unsafe { std::ptr::write_volatile(self.uaddr(gpa) as *mut u64, v) }
    }

    /// Aligns the next allocation to `a` bytes.
    pub fn align(&mut self, a: u64) {
        self.heap = (self.heap + a - 1) & !(a - 1);
    }

    /// Allocates `len` bytes of guest memory (16-byte aligned), skipping the
    /// hole around the region boundary.
    pub fn alloc(&mut self, len: usize) -> u64 {
        let len = (len as u64 + 15) & !15;
        let half = (MEM_SIZE / 2) as u64;
        if self.heap < half && self.heap + len > half - HOLE {
            self.heap = half + HOLE;
        }
        assert!(self.heap + len <= MEM_SIZE as u64, "guest memory exhausted");
        let g = GPA_BASE + self.heap;
        self.heap += len;
        g
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new` (`base`, `map_len`); accessors only copy
        // in and out, so no reference into it outlives `self`. A later device access to it fails in
        // the kernel (EFAULT), not in userspace.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

// ----------------------------------------------------------------- rings

/// One buffer of a chain: guest-physical address and length.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub gpa: u64,
    pub len: u32,
}

/// A chain made available and not yet used.
#[derive(Clone, Debug)]
pub struct Chain {
    descs: Vec<u16>,
    pub bufs: Vec<Buf>,
}

/// A used element with the chain it returned.
#[derive(Clone, Debug)]
pub struct Used {
    pub id: u32,
    pub len: u32,
    pub chain: Chain,
}

/// A split virtqueue in guest memory.
pub struct Vq {
    pub index: u32,
    pub num: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    avail_idx: u16,
    /// avail idx at the last notification decision.
    kicked_idx: u16,
    last_used: u16,
    free: Vec<u16>,
    chains: HashMap<u16, Chain>,
    pub event_idx: bool,
    pub kick: Fd,
    pub call: Fd,
    pub kicks: u32,
    /// VIRTIO_F_IN_ORDER: descriptors are handed out in table order
    /// (`next_desc`, wrapping) and a used element with id X means every
    /// chain made available before X's is used too (`take_used`).
    pub in_order: bool,
    /// In order: the next descriptor to hand out.
    next_desc: u16,
    /// In order: the heads made available and not yet used, oldest first.
    order: VecDeque<u16>,
    /// Used elements read (in order, one may stand for several chains).
    pub elems: u32,
    /// In order: used elements whose id is no chain in flight (a device
    /// bug); each counts as one chain with no buffers.
    pub stray: u32,
}

fn eventfd() -> Fd {
    // SAFETY: plain syscall with integer arguments; the result is checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    assert!(fd >= 0, "eventfd: {}", Errno::last());
    Fd(fd)
}

/// The signals of eventfd `fd` until it goes quiet: counts taken every
/// 50 ms until two windows in a row add none (at most 3 s), summed. For a
/// count of what a burst of work signalled, whatever its rounds' timing.
pub fn eventfd_settle(fd: &Fd) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(3000);
    let (mut total, mut quiet) = (0, 0);
    while quiet < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let n = eventfd_take(fd);
        total += n;
        quiet = if n == 0 { quiet + 1 } else { 0 };
    }
    total
}

/// Reads an eventfd's counter (0 if it was not signalled).
pub fn eventfd_take(fd: &Fd) -> u64 {
    let mut v = 0u64;
    // SAFETY: `fd` is an open eventfd borrowed for the call; `v` is a writable u64, the 8 bytes
    // read.
    let n = unsafe { libc::read(fd.raw(), (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        v
    } else {
        0
    }
}

/// Waits up to `ms` for an fd to become readable.
pub fn poll_in(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one valid, writable pollfd and nfds is 1.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

impl Vq {
    fn new(mem: &GuestMem, index: u32, num: u16, at: u64, event_idx: bool) -> Vq {
        let desc = GPA_BASE + at;
        let avail = desc + 16 * num as u64;
        // used: 4-byte aligned, and on its own page for the dirty log tests
        let used = (avail + 6 + 2 * num as u64 + 4095) & !4095;
        mem.fill(desc, (used - desc) as usize + 6 + 8 * num as usize, 0);
        Vq {
            index,
            num,
            desc,
            avail,
            used,
            avail_idx: 0,
            kicked_idx: 0,
            last_used: 0,
            free: (0..num).rev().collect(),
            chains: HashMap::new(),
            event_idx,
            kick: eventfd(),
            call: eventfd(),
            kicks: 0,
            in_order: false,
            next_desc: 0,
            order: VecDeque::new(),
            elems: 0,
            stray: 0,
        }
    }

    /// Starts the ring at `base` (what SET_VRING_BASE is given): the avail
    /// and used indices, `used->idx` in memory and, in order, the next
    /// descriptor (C's `next_avail_head = base`).
    pub fn set_base(&mut self, mem: &GuestMem, base: u16) {
        self.avail_idx = base;
        self.kicked_idx = base;
        self.last_used = base;
        self.next_desc = base % self.num;
        mem.w16(self.used + 2, base);
        mem.w16(self.avail + 2, base);
    }

    /// Takes a free descriptor: any (the last freed first), or in order
    /// the next in the table.
    fn alloc_desc(&mut self) -> u16 {
        if !self.in_order {
            return self.free.pop().expect("ring full");
        }
        let d = self.next_desc;
        let at = self
            .free
            .iter()
            .position(|&f| f == d)
            .expect("ring full (in order)");
        self.free.remove(at);
        self.next_desc = (d + 1) % self.num;
        d
    }

    pub fn vaddr(&self, mem: &GuestMem, log: bool) -> uapi::VhostVringAddr {
        uapi::VhostVringAddr {
            index: self.index,
            flags: if log { 1 << uapi::VHOST_VRING_F_LOG } else { 0 },
            desc_user_addr: mem.uaddr(self.desc),
            used_user_addr: mem.uaddr(self.used),
            avail_user_addr: mem.uaddr(self.avail),
            log_guest_addr: self.used,
        }
    }

    pub fn free_descs(&self) -> usize {
        self.free.len()
    }

    fn write_desc(mem: &GuestMem, at: u64, b: Buf, flags: u16, next: u16) {
        mem.w64(at, b.gpa);
        mem.w32(at + 8, b.len);
        mem.w16(at + 12, flags);
        mem.w16(at + 14, next);
    }

    /// Adds a chain (device-writable if `write`), directly or through an
    /// indirect table; not visible to the device before `publish`.
    pub fn add(&mut self, mem: &mut GuestMem, bufs: &[Buf], write: bool, indirect: bool) -> u16 {
        assert!(!bufs.is_empty());
        let wf = if write { VRING_DESC_F_WRITE } else { 0 };
        let head;
        let mut descs = Vec::new();
        if indirect {
            let table = mem.alloc(16 * bufs.len());
            for (i, b) in bufs.iter().enumerate() {
                let last = i + 1 == bufs.len();
                let fl = wf | if last { 0 } else { VRING_DESC_F_NEXT };
                Self::write_desc(
                    mem,
                    table + 16 * i as u64,
                    *b,
                    fl,
                    if last { 0 } else { i as u16 + 1 },
                );
            }
            head = self.alloc_desc();
            descs.push(head);
            let d = Buf {
                gpa: table,
                len: 16 * bufs.len() as u32,
            };
            Self::write_desc(
                mem,
                self.desc + 16 * head as u64,
                d,
                VRING_DESC_F_INDIRECT,
                0,
            );
        } else {
            assert!(self.free.len() >= bufs.len(), "ring full");
            for _ in bufs {
                descs.push(self.alloc_desc());
            }
            head = descs[0];
            for (i, b) in bufs.iter().enumerate() {
                let last = i + 1 == bufs.len();
                let fl = wf | if last { 0 } else { VRING_DESC_F_NEXT };
                let next = if last { 0 } else { descs[i + 1] };
                Self::write_desc(mem, self.desc + 16 * descs[i] as u64, *b, fl, next);
            }
        }
        let slot = self.avail + 4 + 2 * (self.avail_idx % self.num) as u64;
        mem.w16(slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.order.push_back(head);
        self.chains.insert(
            head,
            Chain {
                descs,
                bufs: bufs.to_vec(),
            },
        );
        head
    }

    /// Makes the added chains visible (avail->idx).
    pub fn publish(&self, mem: &GuestMem) {
        fence(Ordering::SeqCst);
        mem.w16(self.avail + 2, self.avail_idx);
        fence(Ordering::SeqCst);
    }

    /// Publishes and kicks if the device asked for it (EVENT_IDX's
    /// avail_event or the used ring's NO_NOTIFY flag). Returns whether it
    /// kicked.
    pub fn notify(&mut self, mem: &GuestMem) -> bool {
        self.publish(mem);
        let old = self.kicked_idx;
        let new = self.avail_idx;
        self.kicked_idx = new;
        let need = if self.event_idx {
            let ev = mem.r16(self.used + 4 + 8 * self.num as u64);
            new.wrapping_sub(ev).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            mem.r16(self.used) & VRING_USED_F_NO_NOTIFY == 0
        };
        if need {
            self.kick_now();
        }
        need
    }

    /// Writes the kick eventfd unconditionally.
    pub fn kick_now(&mut self) {
        let v = 1u64;
        // SAFETY: `self.kick` is an open eventfd owned by this Vq; `v` is a readable u64, the 8
        // bytes written.
        unsafe { libc::write(self.kick.raw(), (&v as *const u64).cast(), 8) };
        self.kicks += 1;
    }

    pub fn used_idx(&self, mem: &GuestMem) -> u16 {
        mem.r16(self.used + 2)
    }

    pub fn used_flags(&self, mem: &GuestMem) -> u16 {
        mem.r16(self.used)
    }

    pub fn avail_event(&self, mem: &GuestMem) -> u16 {
        mem.r16(self.used + 4 + 8 * self.num as u64)
    }

    /// Takes every used element the device published.
    pub fn take_used(&mut self, mem: &GuestMem) -> Vec<Used> {
        fence(Ordering::SeqCst);
        let idx = self.used_idx(mem);
        fence(Ordering::SeqCst);
        let mut out = Vec::new();
        if self.in_order {
            self.take_used_in_order(mem, idx, &mut out);
        }
        while self.last_used != idx {
            let e = self.used + 4 + 8 * (self.last_used % self.num) as u64;
            let id = mem.r32(e);
            let len = mem.r32(e + 4);
            let chain = match self.chains.remove(&(id as u16)) {
                Some(c) => {
                    self.free.extend(c.descs.iter().rev());
                    c
                }
                None => Chain {
                    descs: vec![],
                    bufs: vec![],
                },
            };
            out.push(Used { id, len, chain });
            self.last_used = self.last_used.wrapping_add(1);
        }
        if self.event_idx {
            // used_event: interrupt me at the next used element
            mem.w16(self.avail + 4 + 2 * self.num as u64, self.last_used);
            fence(Ordering::SeqCst);
        }
        out
    }

    /// In order (virtio 1.x 2.7.9): the element at `last_used` with id X
    /// uses every chain in flight up to X's, in the order they were made
    /// available; the ones before X count as wholly written (their
    /// writable bytes, as Linux's driver takes them), X's has the
    /// element's length. `last_used` moves by the chains used.
    fn take_used_in_order(&mut self, mem: &GuestMem, idx: u16, out: &mut Vec<Used>) {
        while self.last_used != idx {
            let e = self.used + 4 + 8 * (self.last_used % self.num) as u64;
            let id = mem.r32(e);
            let len = mem.r32(e + 4);
            self.elems += 1;
            if !self.order.iter().any(|&h| u32::from(h) == id) {
                self.stray += 1;
                out.push(Used {
                    id,
                    len,
                    chain: Chain {
                        descs: vec![],
                        bufs: vec![],
                    },
                });
                self.last_used = self.last_used.wrapping_add(1);
                continue;
            }
            while let Some(h) = self.order.pop_front() {
                let c = self.chains.remove(&h).expect("chain in flight");
                self.free.extend(c.descs.iter().rev());
                self.last_used = self.last_used.wrapping_add(1);
                let last = u32::from(h) == id;
                let len = if last {
                    len
                } else {
                    c.bufs.iter().map(|b| b.len).sum()
                };
                out.push(Used {
                    id: u32::from(h),
                    len,
                    chain: c,
                });
                if last {
                    break;
                }
            }
        }
    }

    /// Collects used elements until `n` arrived or `ms` passed.
    pub fn wait_used(&mut self, mem: &GuestMem, n: usize, ms: u64) -> Vec<Used> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut out = self.take_used(mem);
        while out.len() < n && Instant::now() < deadline {
            poll_in(self.call.raw(), 5);
            eventfd_take(&self.call);
            out.extend(self.take_used(mem));
        }
        out
    }

    /// Bytes the device wrote into a used chain (its first `len` bytes).
    pub fn used_bytes(mem: &GuestMem, u: &Used) -> Vec<u8> {
        let mut out = Vec::new();
        let mut left = u.len as usize;
        for b in &u.chain.bufs {
            if left == 0 {
                break;
            }
            let n = left.min(b.len as usize);
            out.extend(mem.read(b.gpa, n));
            left -= n;
        }
        out
    }
}

// ------------------------------------------------------------------- tap

const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;
const SIOCGIFINDEX: u64 = 0x8933;
const SIOCSIFMTU: u64 = 0x8922;
const SIOCSIFTXQLEN: u64 = 0x8943;
const PACKET_AUXDATA: i32 = 8;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// The highest MTU of a tap (MAX_MTU - ETH_HLEN): 65535-byte frames fit.
pub const TAP_MTU: u32 = 65521;

pub struct Tap {
    pub fd: Fd,
    pub name: String,
    pub ifindex: i32,
    /// AF_PACKET, ETH_P_ALL, bound to the tap: what the guest transmits.
    pub cap: Fd,
    /// AF_PACKET, protocol 0: sends frames out of the tap (guest RX).
    pub inj: Fd,
}

fn ifreq(name: &str) -> [u8; 40] {
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    ifr
}

pub fn packet_socket(proto: u16) -> Fd {
    // SAFETY: plain syscall with integer arguments; the result is checked below.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto.to_be() as i32,
        )
    };
    assert!(fd >= 0, "AF_PACKET socket: {}", Errno::last());
    Fd(fd)
}

/// Binds AF_PACKET socket `s` to interface `ifindex`, for every protocol.
pub fn bind_packet(s: &Fd, ifindex: i32) -> Result<(), String> {
    // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array: all-zero is
    // valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `s` is an open socket; `sll` is an initialized sockaddr_ll and the length
    // passed is its size.
    let rc = unsafe {
        libc::bind(
            s.raw(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(format!("bind AF_PACKET {ifindex}: {}", Errno::last()));
    }
    Ok(())
}

/// setsockopt(2) of an `int` option on socket `s` (what it answers is not
/// checked: the options set here exist on every kernel served).
pub fn setsockopt_int(s: &Fd, level: i32, opt: i32, v: i32) {
    // SAFETY: `s` is an open socket borrowed for the call; `v` is a readable i32, the 4 bytes
    // passed.
    unsafe {
        libc::setsockopt(s.raw(), level, opt, (&v as *const i32).cast(), 4);
    }
}

/// Binds AF_PACKET socket `cap` to interface `ifindex` for every protocol,
/// asks for VLAN aux data and gives it an 8 MiB receive buffer.
pub fn bind_capture(cap: &Fd, ifindex: i32) -> Result<(), String> {
    bind_packet(cap, ifindex)?;
    setsockopt_int(cap, libc::SOL_PACKET, PACKET_AUXDATA, 1);
    setsockopt_int(cap, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 8 << 20);
    Ok(())
}

impl Tap {
    /// Creates a tap (`IFF_VNET_HDR` with a `vnet_hdr` header size, or
    /// none), disables IPv6 on it (no stray frames), sets the MTU and
    /// brings it up, and opens the two packet sockets.
    pub fn new(vnet_hdr: Option<i32>, mtu: u32) -> Result<Tap, String> {
        Tap::with_flags(vnet_hdr, mtu, 0)
    }

    /// Like `new`, with `extra` TUNSETIFF flags (e.g. 7.x's
    /// `IFF_BACKPRESSURE`, which older kernels ignore).
    pub fn with_flags(vnet_hdr: Option<i32>, mtu: u32, extra: u16) -> Result<Tap, String> {
        let fd = sys::open("/dev/net/tun", libc::O_RDWR).map_err(|e| format!("open tun: {e}"))?;
        let mut ifr = ifreq("vdp%d");
        let mut flags = (libc::IFF_TAP | libc::IFF_NO_PI) as u16 | extra;
        if vnet_hdr.is_some() {
            flags |= libc::IFF_VNET_HDR as u16;
        }
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        ioctl(fd.raw(), TUNSETIFF, ifr.as_mut_ptr() as usize)
            .map_err(|e| format!("TUNSETIFF: {e}"))?;
        let end = ifr[..16].iter().position(|&b| b == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&ifr[..end]).to_string();
        if let Some(sz) = vnet_hdr {
            let mut sz = sz;
            ioctl(fd.raw(), TUNSETVNETHDRSZ, &mut sz as *mut i32 as usize)
                .map_err(|e| format!("TUNSETVNETHDRSZ: {e}"))?;
        }
        let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        let cap = packet_socket(libc::ETH_P_ALL as u16);
        let mut r = ifreq(&name);
        ioctl(cap.raw(), SIOCGIFINDEX, r.as_mut_ptr() as usize)
            .map_err(|e| format!("SIOCGIFINDEX: {e}"))?;
        let ifindex = i32::from_ne_bytes(r[16..20].try_into().unwrap());
        let mut r = ifreq(&name);
        r[16..20].copy_from_slice(&(mtu as i32).to_ne_bytes());
        ioctl(cap.raw(), SIOCSIFMTU, r.as_mut_ptr() as usize)
            .map_err(|e| format!("SIOCSIFMTU {mtu}: {e}"))?;
        let mut r = ifreq(&name);
        ioctl(cap.raw(), SIOCGIFFLAGS, r.as_mut_ptr() as usize)
            .map_err(|e| format!("SIOCGIFFLAGS: {e}"))?;
        let fl = u16::from_ne_bytes([r[16], r[17]]) | libc::IFF_UP as u16;
        r[16..18].copy_from_slice(&fl.to_ne_bytes());
        ioctl(cap.raw(), SIOCSIFFLAGS, r.as_mut_ptr() as usize)
            .map_err(|e| format!("SIOCSIFFLAGS: {e}"))?;
        bind_capture(&cap, ifindex)?;
        let inj = packet_socket(0);
        Ok(Tap {
            fd,
            name,
            ifindex,
            cap,
            inj,
        })
    }

    /// A new capture socket like `cap`, bound to the tap.
    pub fn new_capture(&self) -> Result<Fd, String> {
        let cap = packet_socket(libc::ETH_P_ALL as u16);
        bind_capture(&cap, self.ifindex)?;
        Ok(cap)
    }

    /// Sets the tap's transmit queue length (its ring's size, and the
    /// qdisc's limit).
    pub fn set_txqlen(&self, len: i32) -> Res {
        let mut r = ifreq(&self.name);
        r[16..20].copy_from_slice(&len.to_ne_bytes());
        ioctl(self.cap.raw(), SIOCSIFTXQLEN, r.as_mut_ptr() as usize)
    }

    /// Sends `frame` out of the tap: it is queued for vhost's RX.
    pub fn inject(&self, frame: &[u8]) -> Res {
        // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array: all-zero is
        // valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        // SAFETY: `inj` is an open socket; `frame` is readable for `frame.len()` bytes and `sll` is
        // an initialized sockaddr_ll of the length passed.
        chk(unsafe {
            libc::sendto(
                self.inj.raw(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        } as i64)
    }

    /// Receives the next frame the tap received (not the ones it sent),
    /// with its VLAN tag put back, within `ms`.
    pub fn capture(&self, ms: u64) -> Option<Vec<u8>> {
        let deadline = Instant::now() + Duration::from_millis(ms);
        let mut buf = vec![0u8; 70000];
        let mut ctrl = [0u64; 16];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !poll_in(self.cap.raw(), left.as_millis() as i32) {
                return None;
            }
            // SAFETY: `sockaddr_ll` is a plain C struct of integers and a byte array: all-zero is
            // valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            // SAFETY: `msghdr` is a plain C struct of integers and pointers: all-zero (null
            // pointers, zero lengths) is valid.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_name = (&mut sll as *mut libc::sockaddr_ll).cast();
            msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctrl.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&ctrl);
            // SAFETY: every pointer in `msg` (name -> `sll`, iov -> `iov` -> `buf`, control ->
            // `ctrl`) is a live, writable local with its length recorded beside it.
            let n = unsafe { libc::recvmsg(self.cap.raw(), &mut msg, libc::MSG_DONTWAIT) };
            if n < 0 {
                continue;
            }
            // only frames the guest sent: not the stack's, not ours out
            if sll.sll_pkttype == PACKET_OUTGOING || n < 14 || buf[6..9] != [0x02, 0x76, 0x68] {
                continue;
            }
            let mut f = buf[..n as usize].to_vec();
            // VLAN tag stripped by the stack: reinsert it from the aux data
            // SAFETY: `msg` is the header recvmsg just filled; CMSG_FIRSTHDR only reads its control
            // fields and returns null when there is no header.
            let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
            while !c.is_null() {
                // SAFETY: `c` is non-null and came from CMSG_FIRSTHDR/CMSG_NXTHDR, which only
                // return headers lying inside `ctrl` (u64-aligned, alive for the loop).
                let h = unsafe { &*c };
                // SAFETY: CMSG_LEN is arithmetic on its argument.
                let want = unsafe { libc::CMSG_LEN(20) } as usize;
                if h.cmsg_level == libc::SOL_PACKET
                    && h.cmsg_type == PACKET_AUXDATA
                    && h.cmsg_len as usize >= want
                {
                    // SAFETY: the header says its data holds at least the 20 bytes of a
                    // `tpacket_auxdata`, and the kernel's put_cmsg never sets a `cmsg_len` that
                    // runs past the control buffer (`ctrl`, 128 bytes; it truncates and sets
                    // MSG_CTRUNC instead). Only read while `ctrl` lives.
                    let d = unsafe { std::slice::from_raw_parts(libc::CMSG_DATA(c), 20) };
                    let status = u32::from_ne_bytes(d[0..4].try_into().unwrap());
                    let tci = u16::from_ne_bytes(d[16..18].try_into().unwrap());
                    let tpid = u16::from_ne_bytes(d[18..20].try_into().unwrap());
                    if status & TP_STATUS_VLAN_VALID != 0 && f.len() >= 12 {
                        let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                            tpid
                        } else {
                            0x8100
                        };
                        let mut tag = tpid.to_be_bytes().to_vec();
                        tag.extend(tci.to_be_bytes());
                        f.splice(12..12, tag);
                    }
                }
                // SAFETY: `msg` and `c` are the header and a cmsg inside its control buffer from
                // above; CMSG_NXTHDR returns null past `msg_controllen`.
                c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
            }
            return Some(f);
        }
    }

    /// Reads a counter of /sys/class/net/<tap>/statistics.
    pub fn stat(&self, what: &str) -> String {
        sys::read_trim(&format!("/sys/class/net/{}/statistics/{what}", self.name))
            .unwrap_or_else(|e| format!("? {e}"))
    }
}

// ---------------------------------------------------------------- device

/// Which features to negotiate and how to lay the device out.
#[derive(Clone, Copy, Debug)]
pub struct Cfg {
    pub version_1: bool,
    pub mrg_rxbuf: bool,
    pub event_idx: bool,
    pub indirect: bool,
    /// VHOST_NET_F_VIRTIO_NET_HDR: vhost adds/strips the header and the
    /// tap has no IFF_VNET_HDR.
    pub net_hdr: bool,
    pub log_all: bool,
    pub two_regions: bool,
    pub num: u16,
    /// VIRTIO_F_ACCESS_PLATFORM, with VHOST_BACKEND_F_IOTLB_MSG_V2 acked
    /// first: ring and buffer addresses are IOVAs equal to the
    /// guest-physical ones, which the test maps by writing IOTLB updates.
    /// No backend is attached: attaching needs the used ring translated.
    pub access_platform: bool,
    /// VIRTIO_F_IN_ORDER (bit 35): negotiated, and the driver's rings
    /// work in order.
    pub in_order: bool,
    /// SET_VRING_BASE of both rings (with `used->idx` set to it before
    /// the backend is attached): near 65535 the u16 indices wrap soon.
    pub base: u16,
}

impl Default for Cfg {
    fn default() -> Cfg {
        Cfg {
            version_1: true,
            mrg_rxbuf: true,
            event_idx: true,
            indirect: true,
            net_hdr: false,
            log_all: false,
            two_regions: false,
            num: 256,
            access_platform: false,
            in_order: false,
            base: 0,
        }
    }
}

impl Cfg {
    pub fn features(&self) -> u64 {
        let mut f = 0;
        if self.version_1 {
            f |= bit(uapi::VIRTIO_F_VERSION_1);
        }
        if self.mrg_rxbuf {
            f |= bit(uapi::VIRTIO_NET_F_MRG_RXBUF);
        }
        if self.event_idx {
            f |= bit(uapi::VIRTIO_RING_F_EVENT_IDX);
        }
        if self.indirect {
            f |= bit(uapi::VIRTIO_RING_F_INDIRECT_DESC);
        }
        if self.net_hdr {
            f |= bit(uapi::VHOST_NET_F_VIRTIO_NET_HDR);
        }
        if self.log_all {
            f |= bit(uapi::VHOST_F_LOG_ALL);
        }
        if self.access_platform {
            f |= bit(uapi::VIRTIO_F_ACCESS_PLATFORM);
        }
        if self.in_order {
            f |= bit(uapi::VIRTIO_F_IN_ORDER);
        }
        f
    }
    /// The virtio-net header size the guest sees.
    pub fn hdr_len(&self) -> usize {
        if self.mrg_rxbuf || self.version_1 {
            12
        } else {
            10
        }
    }
}

/// The dirty log: a bitmap in the test's memory and its eventfd.
pub struct Log {
    pub base: *mut u8,
    pub len: usize,
    pub fd: Fd,
}

impl Log {
    fn new() -> Log {
        // one bit per 4 KiB page of guest-physical space up to the end of memory
        let pages = (GPA_BASE + MEM_SIZE as u64) / 4096;
        let len = ((pages / 8 + 4095) & !4095) as usize;
        // SAFETY: anonymous private mapping at an address the kernel picks (no MAP_FIXED), so no
        // existing memory is touched; the result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED);
        Log {
            base: p.cast(),
            len,
            fd: eventfd(),
        }
    }
    pub fn clear(&self) {
        // SAFETY: `base` is the live mapping of `len` bytes made in `new`, unmapped only in Drop.
        unsafe { std::ptr::write_bytes(self.base, 0, self.len) };
        fence(Ordering::SeqCst);
    }
    /// The marked pages, as offsets from GPA_BASE in pages (pages outside
    /// guest memory as absolute page numbers prefixed by `abs:`).
    pub fn pages(&self) -> Vec<String> {
        fence(Ordering::SeqCst);
        let mut out = Vec::new();
        // SAFETY: `base` is the live, initialized (anonymous, zero-filled) mapping of `len` bytes,
        // unmapped only in Drop. vhost may set bits in it concurrently (kernel writes, not Rust):
        // the test relies on a stale byte being harmless.
        let s = unsafe { std::slice::from_raw_parts(self.base, self.len) };
        for (i, &b) in s.iter().enumerate() {
            if b == 0 {
                continue;
            }
            for k in 0..8 {
                if b & (1 << k) != 0 {
                    let page = (i * 8 + k) as u64;
                    let first = GPA_BASE / 4096;
                    if page >= first && page < first + (MEM_SIZE / 4096) as u64 {
                        out.push(format!("{:#x}", page - first));
                    } else {
                        out.push(format!("abs:{page:#x}"));
                    }
                }
            }
        }
        out
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new` (`base`, `len`); `pages` copies out, so
        // no reference into it outlives `self`. Later kernel log writes there get EFAULT.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The `VHOST_SET_MEM_TABLE` argument for `regions`, as u64 words: the
/// count (with the padding), then each region.
pub fn mem_table(regions: &[uapi::VhostMemoryRegion]) -> Vec<u64> {
    let mut buf = vec![0u64; 1 + 4 * regions.len()];
    buf[0] = regions.len() as u64;
    for (i, r) in regions.iter().enumerate() {
        buf[1 + 4 * i] = r.guest_phys_addr;
        buf[2 + 4 * i] = r.memory_size;
        buf[3 + 4 * i] = r.userspace_addr;
    }
    buf
}

/// A configured /dev/vhost-net with a tap backend on both rings.
pub struct Net {
    pub cfg: Cfg,
    pub dev: Fd,
    pub mem: GuestMem,
    pub rx: Vq,
    pub tx: Vq,
    pub tap: Tap,
    pub log: Option<Log>,
    pub hdr_len: usize,
}

impl Net {
    /// Sets the device up; every ioctl result is recorded as
    /// `"<prefix>setup <ioctl>"` and must succeed. Returns None (and
    /// records a failure) if the setup could not complete.
    pub fn new(obs: &mut Obs, prefix: &str, cfg: Cfg) -> Option<Net> {
        let hdr_len = cfg.hdr_len();
        let tap = match Tap::new(
            if cfg.net_hdr {
                None
            } else {
                Some(hdr_len as i32)
            },
            TAP_MTU,
        ) {
            Ok(t) => t,
            Err(e) => {
                obs.fail(format!("{prefix}tap: {e}"));
                return None;
            }
        };
        Net::with_backend(obs, prefix, cfg, tap, None)
    }

    /// Like `new`, with a backend the caller made (`tap.fd` is passed to
    /// SET_BACKEND: a tap, macvtap or AF_PACKET socket; `cap`/`inj` are
    /// where the test captures and injects), and `VHOST_SET_FORK_FROM_OWNER
    /// fork` before SET_OWNER if given.
    pub fn with_backend(
        obs: &mut Obs,
        prefix: &str,
        cfg: Cfg,
        tap: Tap,
        fork: Option<u8>,
    ) -> Option<Net> {
        let dev = match sys::open("/dev/vhost-net", libc::O_RDWR) {
            Ok(f) => f,
            Err(e) => {
                obs.fail(format!("open /dev/vhost-net: {e}"));
                return None;
            }
        };
        let hdr_len = cfg.hdr_len();
        if let Some(v) = fork {
            let mut v = v;
            obs.ret_ok(
                format!("{prefix}setup SET_FORK_FROM_OWNER {v}"),
                ioctl(
                    dev.raw(),
                    uapi::VHOST_SET_FORK_FROM_OWNER as u64,
                    &mut v as *mut u8 as usize,
                ),
            );
        }
        let mut mem = GuestMem::new(cfg.two_regions);
        let mut rx = Vq::new(&mem, 0, cfg.num, RX_RING, cfg.event_idx);
        let mut tx = Vq::new(&mem, 1, cfg.num, TX_RING, cfg.event_idx);
        for vq in [&mut rx, &mut tx] {
            vq.in_order = cfg.in_order;
            vq.set_base(&mem, cfg.base);
        }
        mem.heap = HEAP_START;
        let log = cfg.log_all.then(Log::new);
        let io = |req: u32, arg: usize| ioctl(dev.raw(), req as u64, arg);
        let mut ok = true;
        let mut rec = |obs: &mut Obs, k: &str, r: Res| {
            ok &= r.is_ok();
            obs.ret_ok(format!("{prefix}setup {k}"), r);
        };
        rec(obs, "SET_OWNER", io(uapi::VHOST_SET_OWNER, 0));
        let mut buf = mem_table(&mem.regions());
        rec(
            obs,
            "SET_MEM_TABLE",
            io(uapi::VHOST_SET_MEM_TABLE, buf.as_mut_ptr() as usize),
        );
        if let Some(l) = &log {
            let mut b = l.base as u64;
            rec(
                obs,
                "SET_LOG_BASE",
                io(uapi::VHOST_SET_LOG_BASE, &mut b as *mut u64 as usize),
            );
            let mut fd = l.fd.raw();
            rec(
                obs,
                "SET_LOG_FD",
                io(uapi::VHOST_SET_LOG_FD, &mut fd as *mut i32 as usize),
            );
        }
        if cfg.access_platform {
            let mut b = bit(uapi::VHOST_BACKEND_F_IOTLB_MSG_V2);
            rec(
                obs,
                "SET_BACKEND_FEATURES",
                io(
                    uapi::VHOST_SET_BACKEND_FEATURES,
                    &mut b as *mut u64 as usize,
                ),
            );
        }
        let mut f = cfg.features();
        rec(
            obs,
            "SET_FEATURES",
            io(uapi::VHOST_SET_FEATURES, &mut f as *mut u64 as usize),
        );
        for vq in [&rx, &tx] {
            let i = vq.index;
            let mut s = uapi::VhostVringState {
                index: i,
                num: cfg.num as u32,
            };
            rec(
                obs,
                &format!("SET_VRING_NUM {i}"),
                io(uapi::VHOST_SET_VRING_NUM, &mut s as *mut _ as usize),
            );
            let mut s = uapi::VhostVringState {
                index: i,
                num: u32::from(cfg.base),
            };
            rec(
                obs,
                &format!("SET_VRING_BASE {i}"),
                io(uapi::VHOST_SET_VRING_BASE, &mut s as *mut _ as usize),
            );
            let mut a = vq.vaddr(&mem, cfg.log_all);
            if cfg.access_platform {
                a.desc_user_addr = vq.desc;
                a.avail_user_addr = vq.avail;
                a.used_user_addr = vq.used;
            }
            rec(
                obs,
                &format!("SET_VRING_ADDR {i}"),
                io(uapi::VHOST_SET_VRING_ADDR, &mut a as *mut _ as usize),
            );
            let mut k = uapi::VhostVringFile {
                index: i,
                fd: vq.kick.raw(),
            };
            rec(
                obs,
                &format!("SET_VRING_KICK {i}"),
                io(uapi::VHOST_SET_VRING_KICK, &mut k as *mut _ as usize),
            );
            let mut c = uapi::VhostVringFile {
                index: i,
                fd: vq.call.raw(),
            };
            rec(
                obs,
                &format!("SET_VRING_CALL {i}"),
                io(uapi::VHOST_SET_VRING_CALL, &mut c as *mut _ as usize),
            );
        }
        for i in [0u32, 1].into_iter().filter(|_| !cfg.access_platform) {
            let mut b = uapi::VhostVringFile {
                index: i,
                fd: tap.fd.raw(),
            };
            rec(
                obs,
                &format!("SET_BACKEND {i}"),
                io(uapi::VHOST_NET_SET_BACKEND, &mut b as *mut _ as usize),
            );
        }
        if !ok {
            return None;
        }
        Some(Net {
            cfg,
            dev,
            mem,
            rx,
            tx,
            tap,
            log,
            hdr_len,
        })
    }

    /// `VHOST_NET_SET_BACKEND` of ring `index` to the tap it has: C and
    /// ours then only wait for the work queued (`vhost_dev_flush`), such
    /// as the round a kick or a frame just queued.
    pub fn flush(&self, index: u32) -> Res {
        let mut b = uapi::VhostVringFile {
            index,
            fd: self.tap.fd.raw(),
        };
        ioctl(
            self.dev.raw(),
            uapi::VHOST_NET_SET_BACKEND as u64,
            &mut b as *mut _ as usize,
        )
    }

    /// GET_VRING_BASE of a ring, as `"<res> <num>"`.
    pub fn vring_base(&self, index: u32) -> String {
        let mut s = uapi::VhostVringState { index, num: 0xdead };
        let r = ioctl(
            self.dev.raw(),
            uapi::VHOST_GET_VRING_BASE as u64,
            &mut s as *mut _ as usize,
        );
        format!("{} {}", fmt_res(&r), s.num)
    }

    /// A zeroed virtio-net header of the guest's size.
    pub fn zero_hdr(&self) -> Vec<u8> {
        vec![0u8; self.hdr_len]
    }

    /// Places `bytes` in guest memory cut into descriptors of at most
    /// `chunk` bytes (0: one descriptor).
    pub fn place(&mut self, bytes: &[u8], chunk: usize) -> Vec<Buf> {
        let mut out = Vec::new();
        let chunk = if chunk == 0 {
            bytes.len().max(1)
        } else {
            chunk
        };
        for c in bytes.chunks(chunk) {
            let g = self.mem.alloc(c.len());
            self.mem.write(g, c);
            out.push(Buf {
                gpa: g,
                len: c.len() as u32,
            });
        }
        out
    }

    /// Allocates a device-writable buffer of `len` bytes filled with 0xa5.
    pub fn rx_buf(&mut self, len: usize) -> Buf {
        let g = self.mem.alloc(len);
        self.mem.fill(g, len, 0xa5);
        Buf {
            gpa: g,
            len: len as u32,
        }
    }
}

// ---------------------------------------------------------------- frames

/// Our frames' source MAC: 02:76:68:xx:00:00 (xx = a tag per device).
pub fn src_mac(tag: u8) -> [u8; 6] {
    [0x02, 0x76, 0x68, tag, 0, 0]
}

pub const UNICAST: [u8; 6] = [0x02, 0x76, 0x68, 0xee, 0x00, 0x01];
pub const BROADCAST: [u8; 6] = [0xff; 6];
pub const MCAST_V4: [u8; 6] = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];
pub const MCAST_V6: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x42];
/// A local experimental ethertype: nothing in the stack answers it.
pub const ETH_TEST: u16 = 0x88b5;

/// A deterministic frame of `len` bytes (>= 14): header, then a payload
/// that depends on `seed`. With `vlan`, an 802.1Q tag (TCI `vlan`) follows
/// the MACs.
pub fn frame(len: usize, dst: [u8; 6], tag: u8, seed: u32, vlan: Option<u16>) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend(dst);
    f.extend(src_mac(tag));
    if let Some(tci) = vlan {
        f.extend(0x8100u16.to_be_bytes());
        f.extend(tci.to_be_bytes());
    }
    f.extend(ETH_TEST.to_be_bytes());
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(len as u32);
    while f.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    f.truncate(len.max(14));
    f
}

/// FNV-1a of a byte string, as 16 hex digits.
pub fn hash(b: &[u8]) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------- raw ring access (hostile)

/// Raw access for tests that write rings no correct driver would write
/// (tests/hostile.rs): descriptors by index, avail entries and index.
impl Vq {
    /// Writes descriptor `i` of the table as given (no bookkeeping).
    pub fn raw_desc(&self, mem: &GuestMem, i: u16, gpa: u64, len: u32, flags: u16, next: u16) {
        Self::write_desc(
            mem,
            self.desc + 16 * i as u64,
            Buf { gpa, len },
            flags,
            next,
        );
    }

    /// Writes a descriptor into a table anywhere in guest memory (an
    /// indirect table): entry `i` of the table at `table`.
    pub fn raw_table_desc(
        mem: &GuestMem,
        table: u64,
        i: u16,
        gpa: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        Self::write_desc(mem, table + 16 * i as u64, Buf { gpa, len }, flags, next);
    }

    /// Puts `head` in the next avail slot (not published; no chain is
    /// recorded, so its used element comes back with an empty chain).
    pub fn raw_push(&mut self, mem: &GuestMem, head: u16) {
        let slot = self.avail + 4 + 2 * (self.avail_idx % self.num) as u64;
        mem.w16(slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
    }

    /// Sets the avail index the next `publish` writes (any value).
    pub fn raw_set_avail_idx(&mut self, idx: u16) {
        self.avail_idx = idx;
    }

    /// The avail index as the driver last set it.
    pub fn raw_avail_idx(&self) -> u16 {
        self.avail_idx
    }

    /// Takes descriptor `i` out of the free list (the test uses it raw).
    pub fn raw_reserve(&mut self, i: u16) {
        self.free.retain(|&d| d != i);
    }
}
