//! Helpers of the ioctl-contract tests (ioctl_*.rs, iotlb): a device
//! wrapper whose calls return what userspace saw, memory areas with known
//! protections, file descriptors of every kind a vhost ioctl may be handed,
//! and a split ring laid out in the test process's memory.

use super::basic::open_dev;
use crate::sys::{self, fmt_res, ioctl, Errno, Fd, Res};
use crate::uapi;

/// A kernel address: never a valid user address.
pub const KERNEL_ADDR: u64 = 0xffff_8880_0000_0000;
/// The end of the x86_64 user range (TASK_SIZE_MAX, the highest address
/// `access_ok` accepts as the end of a range): 2^47 - 4096 with 4-level
/// paging, 2^56 - 4096 with 5-level paging (TCG's `-cpu max` has LA57).
pub fn user_end() -> u64 {
    static END: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *END.get_or_init(|| {
        // A mapping above 2^47 is possible only with 5-level paging.
        let hint = 1usize << 52;
        // SAFETY: probe mmap of one fresh anonymous page with MAP_FIXED_NOREPLACE: it cannot
        // replace an existing mapping, and a failure is just MAP_FAILED (checked below).
        let p = unsafe {
            libc::mmap(
                hint as *mut libc::c_void,
                4096,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            0x7fff_ffff_f000
        } else {
            // SAFETY: `p` is the page mapped just above and not referenced anywhere else.
            unsafe { libc::munmap(p, 4096) };
            (1u64 << 56) - 4096
        }
    })
}

fn chk(r: i64) -> Res {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

/// An open /dev/vhost-net.
pub struct Dev(pub Fd);

impl Dev {
    pub fn open() -> Dev {
        Dev(open_dev())
    }
    pub fn raw(&self) -> i32 {
        self.0.raw()
    }
    /// `ioctl(fd, req, arg)`.
    pub fn io(&self, req: u32, arg: usize) -> Res {
        ioctl(self.raw(), req as u64, arg)
    }
    pub fn owner(&self) -> Res {
        self.io(uapi::VHOST_SET_OWNER, 0)
    }
    pub fn reset(&self) -> Res {
        self.io(uapi::VHOST_RESET_OWNER, 0)
    }
    /// A `vhost_vring_state` ioctl; returns the struct as left by the call.
    pub fn st(&self, req: u32, index: u32, num: u32) -> (Res, uapi::VhostVringState) {
        let mut s = uapi::VhostVringState { index, num };
        let r = self.io(req, &mut s as *mut _ as usize);
        (r, s)
    }
    /// A `vhost_vring_state` ioctl, the result only.
    pub fn st_r(&self, req: u32, index: u32, num: u32) -> Res {
        self.st(req, index, num).0
    }
    /// GET_VRING_BASE of `index` as `"<res> num=<n>"`.
    pub fn base(&self, index: u32) -> String {
        let (r, s) = self.st(uapi::VHOST_GET_VRING_BASE, index, 0xdead);
        format!("{} index={} num={:#x}", fmt_res(&r), s.index, s.num)
    }
    /// GET_VRING_BUSYLOOP_TIMEOUT of `index` as `"<res> num=<n>"`.
    pub fn busyloop(&self, index: u32) -> String {
        let (r, s) = self.st(uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT, index, 0xdead);
        format!("{} index={} num={:#x}", fmt_res(&r), s.index, s.num)
    }
    /// A `vhost_vring_file` ioctl.
    pub fn file(&self, req: u32, index: u32, fd: i32) -> Res {
        let mut f = uapi::VhostVringFile { index, fd };
        self.io(req, &mut f as *mut _ as usize)
    }
    pub fn backend(&self, index: u32, fd: i32) -> Res {
        self.file(uapi::VHOST_NET_SET_BACKEND, index, fd)
    }
    pub fn addr(&self, a: uapi::VhostVringAddr) -> Res {
        let mut a = a;
        self.io(uapi::VHOST_SET_VRING_ADDR, &mut a as *mut _ as usize)
    }
    pub fn set_u64(&self, req: u32, v: u64) -> Res {
        let mut v = v;
        self.io(req, &mut v as *mut u64 as usize)
    }
    pub fn features(&self, f: u64) -> Res {
        self.set_u64(uapi::VHOST_SET_FEATURES, f)
    }
    pub fn backend_features(&self, f: u64) -> Res {
        self.set_u64(uapi::VHOST_SET_BACKEND_FEATURES, f)
    }
    /// A `u64`-returning ioctl as `"<res> <value>"`.
    pub fn get_u64(&self, req: u32) -> String {
        let mut v: u64 = 0xdead_beef;
        let r = self.io(req, &mut v as *mut u64 as usize);
        format!("{} {v:#x}", fmt_res(&r))
    }
    pub fn set_fork(&self, v: u8) -> Res {
        let mut v = v;
        self.io(uapi::VHOST_SET_FORK_FROM_OWNER, &mut v as *mut u8 as usize)
    }
    pub fn get_fork(&self) -> String {
        let mut v: u8 = 0xee;
        let r = self.io(uapi::VHOST_GET_FORK_FROM_OWNER, &mut v as *mut u8 as usize);
        format!("{} {v:#x}", fmt_res(&r))
    }
    /// SET_MEM_TABLE with the given header values and regions.
    pub fn mem_raw(&self, nregions: u32, padding: u32, regions: &[uapi::VhostMemoryRegion]) -> Res {
        let mut buf = vec![0u64; 1 + regions.len() * 4];
        buf[0] = nregions as u64 | ((padding as u64) << 32);
        for (i, r) in regions.iter().enumerate() {
            buf[1 + i * 4] = r.guest_phys_addr;
            buf[2 + i * 4] = r.memory_size;
            buf[3 + i * 4] = r.userspace_addr;
            buf[4 + i * 4] = r.flags_padding;
        }
        self.io(uapi::VHOST_SET_MEM_TABLE, buf.as_mut_ptr() as usize)
    }
    pub fn mem(&self, regions: &[uapi::VhostMemoryRegion]) -> Res {
        self.mem_raw(regions.len() as u32, 0, regions)
    }
    pub fn write(&self, b: &[u8]) -> Res {
        // SAFETY: `self.raw()` is the device fd owned by `self`; `b` is a valid, readable slice of
        // `b.len()` bytes for the duration of the call.
        chk(unsafe { libc::write(self.raw(), b.as_ptr().cast(), b.len()) } as i64)
    }
    /// read(2) of up to `n` bytes: the result and the bytes read.
    pub fn read(&self, n: usize) -> (Res, Vec<u8>) {
        let mut b = vec![0u8; n];
        // SAFETY: `self.raw()` is the device fd owned by `self`; `b` is a writable buffer of
        // exactly `n` bytes, alive for the duration of the call.
        let r = chk(unsafe { libc::read(self.raw(), b.as_mut_ptr().cast(), n) } as i64);
        b.truncate(*r.as_ref().unwrap_or(&0) as usize);
        (r, b)
    }
    pub fn set_nonblock(&self, on: bool) {
        // SAFETY: fcntl(F_GETFL) on the device fd owned by `self`; integer arguments only.
        let fl = unsafe { libc::fcntl(self.raw(), libc::F_GETFL) };
        let fl = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        // SAFETY: fcntl(F_SETFL) on the device fd owned by `self`; integer arguments only.
        unsafe { libc::fcntl(self.raw(), libc::F_SETFL, fl) };
    }
    /// poll(2) for POLLIN|POLLOUT with `ms` timeout, as `"<res> revents=<x>"`.
    pub fn poll(&self, ms: i32) -> String {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN | libc::POLLOUT | libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: `p` is a valid, writable pollfd on the stack and nfds is 1; the fd is owned by
        // `self`.
        let r = chk(unsafe { libc::poll(&mut p, 1, ms) } as i64);
        format!("{} revents={:#x}", fmt_res(&r), p.revents)
    }
}

pub fn region(gpa: u64, size: u64, uaddr: u64) -> uapi::VhostMemoryRegion {
    uapi::VhostMemoryRegion {
        guest_phys_addr: gpa,
        memory_size: size,
        userspace_addr: uaddr,
        flags_padding: 0,
    }
}

/// An anonymous private mapping, unmapped on drop.
pub struct Map {
    pub ptr: *mut u8,
    pub len: usize,
}

impl Map {
    pub fn new(len: usize) -> Map {
        // SAFETY: anonymous mmap with a null hint: the kernel picks a fresh range, no existing
        // memory is affected; MAP_FAILED is checked by the assert below.
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
        assert!(p != libc::MAP_FAILED, "mmap {len}: {}", Errno::last());
        Map { ptr: p.cast(), len }
    }
    /// A page holding `bytes` at its start, then made read-only.
    pub fn ro_with(bytes: &[u8]) -> Map {
        let m = Map::new(4096);
        // SAFETY: `m` is a fresh writable mapping of 4096 bytes and `bytes` cannot overlap it;
        // callers pass far fewer than 4096 bytes (at most one 72-byte message).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.ptr, bytes.len()) };
        // SAFETY: `m.ptr` is the start of the 4096-byte mapping owned by `m`; after this the test
        // only reads it (or hands it to the kernel).
        assert!(unsafe { libc::mprotect(m.ptr.cast(), 4096, libc::PROT_READ) } == 0);
        m
    }
    /// One mapped page followed by an unmapped one: two pages mapped, the
    /// upper one unmapped again. `len` covers the lower page only, so the
    /// accessors refuse the upper one and drop unmaps only what is still
    /// this map's (the hole may have been reused by then).
    pub fn edge() -> Map {
        let mut m = Map::new(8192);
        // SAFETY: unmaps the upper page of `m`, a fresh 8 KiB mapping owned here that no
        // reference points into; `len` shrinks below so nothing reaches that page through `m`.
        let rc = unsafe { libc::munmap((m.ptr as usize + 4096) as *mut libc::c_void, 4096) };
        assert!(rc == 0, "munmap: {}", Errno::last());
        m.len = 4096;
        m
    }
    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }
    pub fn at(&self, off: usize) -> usize {
        assert!(off < self.len);
        self.ptr as usize + off
    }
    /// The address of the `size` bytes at `off`, asserted to lie inside the
    /// map and to be aligned to `size`.
    fn slot(&self, off: usize, size: usize) -> usize {
        assert!(
            off.checked_add(size).is_some_and(|end| end <= self.len),
            "{size} bytes at {off} outside a {}-byte map",
            self.len
        );
        let a = self.ptr as usize + off;
        assert!(
            a.is_multiple_of(size),
            "unaligned {size}-byte access at {off}"
        );
        a
    }
    pub fn w16(&self, off: usize, v: u16) {
        // SAFETY: `slot` asserts that the 2 bytes at `off` lie inside the live mapping owned by
        // `self` and are aligned; volatile: the kernel may write them.
        unsafe { std::ptr::write_volatile(self.slot(off, 2) as *mut u16, v) }
    }
    pub fn r16(&self, off: usize) -> u16 {
        // SAFETY: `slot` asserts that the 2 bytes at `off` lie inside the live mapping owned by
        // `self` and are aligned; volatile: the kernel may write them.
        unsafe { std::ptr::read_volatile(self.slot(off, 2) as *const u16) }
    }
    pub fn w32(&self, off: usize, v: u32) {
        // SAFETY: `slot` asserts that the 4 bytes at `off` lie inside the live mapping owned by
        // `self` and are aligned; volatile: the kernel may write them.
        unsafe { std::ptr::write_volatile(self.slot(off, 4) as *mut u32, v) }
    }
    pub fn r32(&self, off: usize) -> u32 {
        // SAFETY: `slot` asserts that the 4 bytes at `off` lie inside the live mapping owned by
        // `self` and are aligned; volatile: the kernel may write them.
        unsafe { std::ptr::read_volatile(self.slot(off, 4) as *const u32) }
    }
    pub fn w64(&self, off: usize, v: u64) {
        // SAFETY: `slot` asserts that the 8 bytes at `off` lie inside the live mapping owned by
        // `self` and are aligned; volatile: the kernel may write them.
        unsafe { std::ptr::write_volatile(self.slot(off, 8) as *mut u64, v) }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping created in `Map::new`, owned by this `Map`; nothing
        // uses it after drop (munmap of an already unmapped part is a no-op).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// An address with nothing mapped (a page mapped, then unmapped).
pub fn unmapped() -> usize {
    let m = Map::new(4096);
    let a = m.ptr as usize;
    drop(m);
    a
}

pub fn eventfd() -> Fd {
    // SAFETY: plain syscall with integer arguments; a failure (-1) is checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0, "eventfd: {}", Errno::last());
    Fd(fd)
}

/// Both ends of a pipe.
pub fn pipe() -> (Fd, Fd) {
    let mut p = [0i32; 2];
    // SAFETY: `p` is a writable array of the two ints pipe2 fills.
    assert!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } == 0);
    (Fd(p[0]), Fd(p[1]))
}

/// A descriptor number that is certainly not open.
pub fn closed_fd() -> i32 {
    let e = eventfd();
    // SAFETY: F_DUPFD_CLOEXEC on `e`, an eventfd owned here; integer arguments only.
    let n = unsafe { libc::fcntl(e.raw(), libc::F_DUPFD_CLOEXEC, 700) };
    assert!(n >= 0);
    // SAFETY: `n` is the duplicate made just above and owned by no one else; it is closed once.
    unsafe { libc::close(n) };
    n
}

pub fn socket(domain: i32, ty: i32, proto: i32) -> Fd {
    // SAFETY: plain syscall with integer arguments; a failure (-1) is checked below.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    assert!(
        fd >= 0,
        "socket({domain}, {ty}, {proto}): {}",
        Errno::last()
    );
    Fd(fd)
}

const TUNSETIFF: u64 = 0x4004_54ca;

/// /dev/net/tun opened, no TUNSETIFF: not attached to any interface.
pub fn tun_unattached() -> Fd {
    sys::open("/dev/net/tun", libc::O_RDWR).unwrap_or_else(|e| panic!("open /dev/net/tun: {e}"))
}

/// A tap device (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR), left down.
pub fn tap() -> Fd {
    let fd = tun_unattached();
    let mut ifr = [0u8; 40];
    ifr[..5].copy_from_slice(b"vtt%d");
    let flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as u16;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    let r = ioctl(fd.raw(), TUNSETIFF, ifr.as_mut_ptr() as usize);
    assert!(r.is_ok(), "TUNSETIFF: {}", fmt_res(&r));
    fd
}

/// A regular file (the test binary), opened read-only.
pub fn regular_file() -> Fd {
    sys::open("/proc/self/exe", libc::O_RDONLY).unwrap_or_else(|e| panic!("open exe: {e}"))
}

/// Ring layout in a `Map`: num 256, desc at 0, avail at 0x1000, used at
/// 0x2000; buffers from 0x4000. The memory table maps guest physical
/// address 0 onto the start of the area.
pub const RING_NUM: u32 = 256;
pub const DESC_OFF: usize = 0;
pub const AVAIL_OFF: usize = 0x1000;
pub const USED_OFF: usize = 0x2000;
pub const RING_AREA: usize = 0x10000;

pub struct Rings {
    pub m: Map,
}

impl Rings {
    pub fn new() -> Rings {
        Rings {
            m: Map::new(RING_AREA),
        }
    }
    pub fn used(&self) -> u64 {
        self.m.addr() + USED_OFF as u64
    }
    pub fn vaddr(&self, index: u32) -> uapi::VhostVringAddr {
        vaddr_at(index, self.m.addr())
    }
    /// The memory table covering the area at guest physical address 0.
    pub fn table(&self) -> [uapi::VhostMemoryRegion; 1] {
        [region(0, RING_AREA as u64, self.m.addr())]
    }
    /// SET_MEM_TABLE, SET_VRING_NUM and SET_VRING_ADDR of `index`; records
    /// each result with `prefix`. The device must be owned.
    pub fn setup(&self, obs: &mut crate::harness::Obs, dev: &Dev, index: u32, prefix: &str) {
        obs.ret_ok(format!("{prefix}SET_MEM_TABLE"), dev.mem(&self.table()));
        obs.ret_ok(
            format!("{prefix}SET_VRING_NUM {index}"),
            dev.st_r(uapi::VHOST_SET_VRING_NUM, index, RING_NUM),
        );
        obs.ret_ok(
            format!("{prefix}SET_VRING_ADDR {index}"),
            dev.addr(self.vaddr(index)),
        );
    }
    pub fn used_flags(&self) -> u16 {
        self.m.r16(USED_OFF)
    }
    pub fn used_idx(&self) -> u16 {
        self.m.r16(USED_OFF + 2)
    }
}

/// Ring `index`'s addresses laid out as in `Rings` from `base` (a user
/// address, or an IOVA under ACCESS_PLATFORM).
pub fn vaddr_at(index: u32, base: u64) -> uapi::VhostVringAddr {
    uapi::VhostVringAddr {
        index,
        flags: 0,
        desc_user_addr: base + DESC_OFF as u64,
        used_user_addr: base + USED_OFF as u64,
        avail_user_addr: base + AVAIL_OFF as u64,
        log_guest_addr: 0,
    }
}

/// Formats bytes as hex, for messages read from the device.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Decodes a `vhost_msg`/`vhost_msg_v2` read from the device.
pub fn msg_str(b: &[u8]) -> String {
    msg_rel(b, 0)
}

/// Like `msg_str`, with an iova in `[base, base + RING_AREA)` shown as
/// `base+offset` (user addresses differ from run to run).
pub fn msg_rel(b: &[u8], base: u64) -> String {
    if b.is_empty() {
        return "none".into();
    }
    if b.len() < 40 {
        return format!("short {}", hex(b));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap());
    format!(
        "len={} type={} word1={:#x} iova={} size={:#x} uaddr={:#x} perm={} msgtype={} rest={}",
        b.len(),
        u32_at(0),
        u32_at(4),
        Rel(u64_at(8), base),
        u64_at(16),
        u64_at(24),
        b[32],
        b[33],
        hex(&b[34..])
    )
}

/// A `vhost_msg` (V1) as bytes.
pub fn msg_v1(t: u8, iova: u64, size: u64, uaddr: u64, perm: u8) -> [u8; 72] {
    let mut m = uapi::VhostMsg {
        type_: uapi::VHOST_IOTLB_MSG as i32,
        ..Default::default()
    };
    m.iotlb = uapi::VhostIotlbMsg {
        iova,
        size,
        uaddr,
        perm,
        type_: t,
        padding: [0; 6],
    };
    // SAFETY: `VhostMsg` is repr(C), 72 bytes, with all padding spelled out as fields, so every
    // byte is initialised and any [u8; 72] read of it is valid.
    unsafe { std::mem::transmute::<uapi::VhostMsg, [u8; 72]>(m) }
}

/// A `vhost_msg_v2` as bytes.
pub fn msg_v2(asid: u32, t: u8, iova: u64, size: u64, uaddr: u64, perm: u8) -> [u8; 72] {
    let mut m = uapi::VhostMsgV2 {
        type_: uapi::VHOST_IOTLB_MSG_V2,
        asid,
        ..Default::default()
    };
    m.iotlb = uapi::VhostIotlbMsg {
        iova,
        size,
        uaddr,
        perm,
        type_: t,
        padding: [0; 6],
    };
    // SAFETY: `VhostMsgV2` is repr(C), 72 bytes, with all padding spelled out as fields, so every
    // byte is initialised and any [u8; 72] read of it is valid.
    unsafe { std::mem::transmute::<uapi::VhostMsgV2, [u8; 72]>(m) }
}

/// The threads of this process, minus the calling one.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
        .saturating_sub(1)
}

/// Polls up to a second for `f` to become true.
pub fn wait_for(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        sys::sleep_ms(10);
    }
    f()
}

struct Rel(u64, u64);

impl std::fmt::Display for Rel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.1 != 0 && self.0 >= self.1 && self.0 < self.1 + RING_AREA as u64 {
            write!(f, "base+{:#x}", self.0 - self.1)
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}
