//! More data-path differential tests (src/driver.rs drives the rings):
//! other backends (macvtap, AF_PACKET), a multiqueue tap, backend switches
//! under traffic, tap MTUs, checksum/GSO offloads through the vnet header,
//! SIGKILL of the owner (vhost_task and kthread workers), busy polling and
//! a TX flood beside another device.
//!
//! Veth pairs and macvtaps are made with rtnetlink (RTM_NEWLINK) and
//! deleted when the test ends; the macvtap's /dev/tapN is mknod'ed from
//! sysfs (there is no udev in the VM).
//!
//! Observations: used ids/lengths, vnet headers, frame lengths and hashes,
//! syscall results, interface statistics, what exists after a kill. Never
//! timing.

use crate::driver::{
    bind_capture, bind_packet, eventfd_take, frame, hash, hex, packet_socket, poll_in,
    setsockopt_int, src_mac, Buf, Cfg, Net, Tap, Used, Vq, BROADCAST, UNICAST,
};
use crate::harness::{Ctx, DefaultParams, Kind, Obs, Test};
use crate::modules;
use crate::sys::{self, fmt_res, ioctl, sleep_ms, Errno, Fd, Res};
use crate::uapi;
use std::time::{Duration, Instant};

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 90,
        f,
    };
    vec![
        t("dp2_macvtap", macvtap),
        t("dp2_af_packet_net_hdr", af_packet_net_hdr),
        t("dp2_af_packet_raw", af_packet_raw),
        t("dp2_multiqueue_tap", multiqueue),
        t("dp2_backend_switch", backend_switch),
        t("dp2_backend_fd_closed", backend_fd_closed),
        t("dp2_mtu", mtu),
        t("dp2_offload_csum", offload_csum),
        t("dp2_tx_bad_csum_hdr", tx_bad_csum_hdr),
        t("dp2_offload_tso_tx", offload_tso_tx),
        t("dp2_offload_gso_rx", offload_gso_rx),
        t("dp2_kill_owner_task", kill_owner_task),
        t("dp2_kill_owner_kthread", kill_owner_kthread),
        t("dp2_busyloop", busyloop),
        t("dp2_tx_flood_other_device", tx_flood),
        t("dp2_rx_batch_given_back", rx_batch_given_back),
        t("dp2_zcopy_tx", zcopy_tx),
        t("dp2_zcopy_wrap_signals", zcopy_wrap_signals),
        t("dp2_zcopy_then_af_packet", zcopy_then_af_packet),
        t("dp2_worker_cgroup", worker_cgroup),
    ]
}

const WAIT: u64 = 5000;
/// A unicast destination nobody owns (guest TX through macvtap/veth).
const PEER: [u8; 6] = [0x02, 0x76, 0x68, 0xee, 0x00, 0x02];

// ------------------------------------------------------------- netlink

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_MACVLAN_MODE: u16 = 1;
const MACVLAN_MODE_BRIDGE: u32 = 4;

/// A netlink message under construction: nlmsghdr + ifinfomsg + attributes.
struct NlMsg {
    b: Vec<u8>,
    nests: Vec<usize>,
}

impl NlMsg {
    fn new(ty: u16, flags: u16) -> NlMsg {
        let mut b = vec![0u8; 16 + 16];
        b[4..6].copy_from_slice(&ty.to_ne_bytes());
        b[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        b[8..12].copy_from_slice(&1u32.to_ne_bytes());
        NlMsg { b, nests: vec![] }
    }
    fn pad(&mut self) {
        while !self.b.len().is_multiple_of(4) {
            self.b.push(0);
        }
    }
    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        self.pad();
        self.b.extend(((4 + data.len()) as u16).to_ne_bytes());
        self.b.extend(ty.to_ne_bytes());
        self.b.extend(data);
        self.pad();
        self
    }
    fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(ty, &d)
    }
    fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    fn nest(&mut self, ty: u16) -> &mut Self {
        self.pad();
        self.nests.push(self.b.len());
        self.b.extend([0, 0]);
        self.b.extend(ty.to_ne_bytes());
        self
    }
    fn end(&mut self) -> &mut Self {
        let at = self.nests.pop().unwrap();
        let len = (self.b.len() - at) as u16;
        self.b[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }
    /// A nested ifinfomsg (VETH_INFO_PEER's payload starts with one).
    fn ifinfo(&mut self) -> &mut Self {
        self.b.extend([0u8; 16]);
        self
    }
    /// Sends and waits for the ack: Ok(()) or the errno.
    fn send(&mut self) -> Result<(), Errno> {
        let len = self.b.len() as u32;
        self.b[0..4].copy_from_slice(&len.to_ne_bytes());
        // SAFETY: plain syscall with integer arguments; a failure (-1) is checked below.
        let s = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if s < 0 {
            return Err(Errno::last());
        }
        let s = Fd(s);
        // SAFETY: sockaddr_nl is a plain C struct for which all-zero bytes are a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: `s` is the netlink socket owned above; `self.b` is a readable buffer of
        // `self.b.len()` bytes and `sa` a sockaddr_nl of the size passed, both alive for the call.
        let r = unsafe {
            libc::sendto(
                s.raw(),
                self.b.as_ptr().cast(),
                self.b.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(Errno::last());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            if !poll_in(s.raw(), 5000) {
                return Err(Errno(libc::ETIMEDOUT));
            }
            // SAFETY: `s` is the netlink socket owned above; `buf` is a writable buffer of
            // `buf.len()` bytes.
            let n = unsafe { libc::recv(s.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(Errno::last());
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let l = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                if ty == NLMSG_ERROR && off + 20 <= n {
                    let e = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap());
                    return if e == 0 { Ok(()) } else { Err(Errno(-e)) };
                }
                if l < 16 {
                    break;
                }
                off += (l + 3) & !3;
            }
        }
    }
}

fn ifindex(name: &str) -> i32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: `c` is a NUL-terminated CString alive for the call.
    unsafe { libc::if_nametoindex(c.as_ptr()) as i32 }
}

fn exists(name: &str) -> bool {
    sys::path_exists(&format!("/sys/class/net/{name}"))
}

fn del_link(name: &str) -> Result<(), Errno> {
    NlMsg::new(RTM_DELLINK, 0).str(IFLA_IFNAME, name).send()
}

/// A link deleted (with its veth peer and the macvtaps on it) on drop.
struct Link(String);

impl Drop for Link {
    fn drop(&mut self) {
        if exists(&self.0) {
            let _ = del_link(&self.0);
        }
    }
}

fn no_ipv6(name: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
}

const SIOCGIFFLAGS: u64 = 0x8913;
const SIOCSIFFLAGS: u64 = 0x8914;

fn set_up(name: &str) -> Result<(), String> {
    // SAFETY: plain syscall with integer arguments; the descriptor is owned by the `Fd` below.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(format!("socket for SIOCSIFFLAGS {name}: {}", Errno::last()));
    }
    let s = Fd(s);
    let mut r = [0u8; 40];
    r[..name.len()].copy_from_slice(name.as_bytes());
    ioctl(s.raw(), SIOCGIFFLAGS, r.as_mut_ptr() as usize)
        .map_err(|e| format!("SIOCGIFFLAGS {name}: {e}"))?;
    let fl = u16::from_ne_bytes([r[16], r[17]]) | libc::IFF_UP as u16;
    r[16..18].copy_from_slice(&fl.to_ne_bytes());
    ioctl(s.raw(), SIOCSIFFLAGS, r.as_mut_ptr() as usize)
        .map_err(|e| format!("SIOCSIFFLAGS {name}: {e}"))?;
    Ok(())
}

/// A veth pair `a`/`b`, both up, IPv6 off (no stray frames). Dropping the
/// returned link deletes both.
fn veth(a: &str, b: &str, mtu: u32) -> Result<Link, String> {
    for n in [a, b] {
        if exists(n) {
            let _ = del_link(n);
        }
    }
    let mut m = NlMsg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    m.str(IFLA_IFNAME, a).u32(IFLA_MTU, mtu);
    m.nest(IFLA_LINKINFO).str(IFLA_INFO_KIND, "veth");
    m.nest(IFLA_INFO_DATA).nest(VETH_INFO_PEER).ifinfo();
    m.str(IFLA_IFNAME, b).u32(IFLA_MTU, mtu);
    m.end().end().end();
    m.send()
        .map_err(|e| format!("RTM_NEWLINK veth {a}/{b}: {e}"))?;
    let l = Link(a.to_string());
    for n in [a, b] {
        no_ipv6(n);
        set_up(n)?;
    }
    Ok(l)
}

/// A bridge-mode macvtap `name` on `lower` with MAC `mac`, up.
fn macvtap_link(name: &str, lower: &str, mac: [u8; 6]) -> Result<Link, String> {
    let mut m = NlMsg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    m.str(IFLA_IFNAME, name)
        .u32(IFLA_LINK, ifindex(lower) as u32)
        .attr(IFLA_ADDRESS, &mac);
    m.nest(IFLA_LINKINFO).str(IFLA_INFO_KIND, "macvtap");
    m.nest(IFLA_INFO_DATA)
        .u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
    m.end().end();
    m.send()
        .map_err(|e| format!("RTM_NEWLINK macvtap {name}: {e}"))?;
    let l = Link(name.to_string());
    no_ipv6(name);
    set_up(name)?;
    Ok(l)
}

/// Opens the macvtap's character device: /dev/tapN from sysfs's `dev`.
struct TapDev(String);
impl Drop for TapDev {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.clone()).unwrap();
        // SAFETY: `c` is a NUL-terminated CString alive for the call.
        unsafe { libc::unlink(c.as_ptr()) };
    }
}

fn open_macvtap(name: &str) -> Result<(Fd, TapDev), String> {
    let idx = ifindex(name);
    let devf = format!("/sys/class/net/{name}/macvtap/tap{idx}/dev");
    let d = sys::read_trim(&devf).map_err(|e| format!("{devf}: {e}"))?;
    let (ma, mi) = d.split_once(':').ok_or(format!("{devf}: {d}"))?;
    let (ma, mi): (u32, u32) = (ma.parse().unwrap(), mi.parse().unwrap());
    let path = format!("/dev/tap{idx}");
    let c = std::ffi::CString::new(path.clone()).unwrap();
    // SAFETY: `c` is a NUL-terminated CString alive for the call; a failure (no such file) is fine.
    unsafe { libc::unlink(c.as_ptr()) };
    // SAFETY: `c` is a NUL-terminated CString alive for the call; the rest are integers.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(ma, mi)) } < 0 {
        return Err(format!("mknod {path}: {}", Errno::last()));
    }
    let g = TapDev(path.clone());
    let fd = sys::open(&path, libc::O_RDWR).map_err(|e| format!("open {path}: {e}"))?;
    Ok((fd, g))
}

// ------------------------------------------------------- packet sockets

const PACKET_VNET_HDR: i32 = 15;
const PACKET_OUTGOING: u8 = 4;
const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETVNETHDRSZ: u64 = 0x4004_54d8;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const IFF_MULTI_QUEUE: u16 = 0x0100;
const TUN_F_CSUM: usize = 1;
const TUN_F_TSO4: usize = 2;
const TUN_F_TSO6: usize = 4;

/// A capture socket bound to `ifindex` (with PACKET_VNET_HDR if `vnet`).
fn cap_socket(ifindex: i32, vnet: bool) -> Result<Fd, String> {
    let s = packet_socket(libc::ETH_P_ALL as u16);
    if vnet {
        setsockopt_int(&s, libc::SOL_PACKET, PACKET_VNET_HDR, 1);
    }
    bind_capture(&s, ifindex)?;
    Ok(s)
}

/// A driver `Tap` whose backend is `fd` and whose capture/injection
/// sockets are on interface `name` (where the guest's frames come out and
/// where the test sends frames to the guest).
fn port(fd: Fd, name: &str) -> Result<Tap, String> {
    let idx = ifindex(name);
    if idx <= 0 {
        return Err(format!("no interface {name}"));
    }
    Ok(Tap {
        fd,
        name: name.to_string(),
        ifindex: idx,
        cap: cap_socket(idx, false)?,
        inj: packet_socket(0),
    })
}

/// Receives the next frame from the guest with source tag `tag` on a
/// PACKET_VNET_HDR socket: (vnet header, frame).
fn cap_vnet(s: &Fd, tag: u8, ms: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut buf = vec![0u8; 70000];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !poll_in(s.raw(), left.as_millis() as i32) {
            return None;
        }
        // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut sl = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: `s` is an open socket borrowed for the call; `buf` is writable for `buf.len()`
        // bytes, `sll` is writable for the `sl` bytes passed and `sl` is a writable u32.
        let n = unsafe {
            libc::recvfrom(
                s.raw(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut sll as *mut libc::sockaddr_ll).cast(),
                &mut sl,
            )
        };
        if n < 24 || sll.sll_pkttype == PACKET_OUTGOING {
            continue;
        }
        let n = n as usize;
        if buf[16..19] != [0x02, 0x76, 0x68] || buf[19] != tag {
            continue;
        }
        return Some((buf[..10].to_vec(), buf[10..n].to_vec()));
    }
}

/// Next captured frame from the guest with source tag `tag` (frames of
/// other tags, i.e. other devices on the same interface, are skipped).
fn cap_tag(tap: &Tap, tag: u8, ms: u64) -> Option<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = tap.capture(left.as_millis() as u64)?;
        if f.len() >= 10 && f[9] == tag {
            return Some(f);
        }
    }
}

// --------------------------------------------------------------- rings

fn used_str(u: &[Used]) -> String {
    u.iter()
        .map(|e| format!("{}:{}", e.id, e.len))
        .collect::<Vec<_>>()
        .join(",")
}

/// Posts `frames` on TX, each as header `hdr` + frame in two descriptors
/// (one if `hdr` is empty), and notifies.
fn tx_post(net: &mut Net, frames: &[Vec<u8>], hdr: &[u8]) {
    for f in frames {
        let mut b = if hdr.is_empty() {
            vec![]
        } else {
            net.place(hdr, 0)
        };
        b.extend(net.place(f, 0));
        net.tx.add(&mut net.mem, &b, false, false);
    }
    net.tx.notify(&net.mem);
}

/// Sends `frames` and records the used entries and every frame captured
/// (with source tag `tag`); checks the capture equals `want`.
fn tx(
    obs: &mut Obs,
    net: &mut Net,
    key: &str,
    frames: &[Vec<u8>],
    hdr: &[u8],
    tag: u8,
    want: &[Vec<u8>],
) {
    tx_post(net, frames, hdr);
    let used = net.tx.wait_used(&net.mem, frames.len(), WAIT);
    obs.val(format!("{key} used"), used_str(&used));
    obs.check(
        used.len() == frames.len(),
        format!("{key}: {} of {} TX buffers used", used.len(), frames.len()),
    );
    tx_capture(obs, net, key, tag, want);
}

fn tx_capture(obs: &mut Obs, net: &Net, key: &str, tag: u8, want: &[Vec<u8>]) {
    let mut got = Vec::new();
    loop {
        let ms = if got.len() < want.len() { 3000 } else { 100 };
        match cap_tag(&net.tap, tag, ms) {
            Some(f) => got.push(f),
            None => break,
        }
    }
    obs.val(
        format!("{key} captured"),
        got.iter()
            .map(|f| format!("{}/{}", f.len(), &hash(f)[..8]))
            .collect::<Vec<_>>()
            .join(" "),
    );
    obs.check(
        got == want,
        format!(
            "{key}: captured {:?}, want {:?} (lengths)",
            got.iter().map(|f| f.len()).collect::<Vec<_>>(),
            want.iter().map(|f| f.len()).collect::<Vec<_>>()
        ),
    );
}

/// Posts `count` RX chains of `size` bytes (one descriptor each).
fn post_rx(net: &mut Net, count: usize, size: usize) {
    for _ in 0..count {
        let b = net.rx_buf(size);
        net.rx.add(&mut net.mem, &[b], true, false);
    }
    net.rx.notify(&net.mem);
}

/// Collects received packets (mergeable: num_buffers elements each, read
/// at byte 10 when `hlen` is 12) until `n` or the wait ends.
fn rx_collect(net: &mut Net, n: usize, ms: u64, hlen: usize) -> Vec<Vec<Used>> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    let mut pending: Vec<Used> = Vec::new();
    let mut pkts: Vec<Vec<Used>> = Vec::new();
    loop {
        pending.extend(net.rx.take_used(&net.mem));
        while !pending.is_empty() {
            let nb = if net.cfg.mrg_rxbuf && hlen == 12 {
                let b = Vq::used_bytes(&net.mem, &pending[0]);
                if b.len() >= 12 {
                    (u16::from_le_bytes([b[10], b[11]]) as usize).max(1)
                } else {
                    1
                }
            } else {
                1
            };
            if pending.len() < nb {
                break;
            }
            pkts.push(pending.drain(..nb).collect());
        }
        if pkts.len() >= n || Instant::now() >= deadline {
            break;
        }
        poll_in(net.rx.call.raw(), 5);
        eventfd_take(&net.rx.call);
    }
    if !pending.is_empty() {
        pkts.push(pending);
    }
    pkts
}

/// Records received packets against `want` (the data after `hlen` bytes
/// of header); returns the headers.
fn rx_record(
    obs: &mut Obs,
    net: &Net,
    key: &str,
    pkts: &[Vec<Used>],
    want: &[Vec<u8>],
    hlen: usize,
) -> Vec<Vec<u8>> {
    obs.check(
        pkts.len() == want.len(),
        format!("{key}: received {} of {} frames", pkts.len(), want.len()),
    );
    let mut hdrs = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        let mut bytes = Vec::new();
        for u in p {
            bytes.extend(Vq::used_bytes(&net.mem, u));
        }
        let h = hlen.min(bytes.len());
        let (hdr, data) = bytes.split_at(h);
        let w = want.get(i);
        let ok = w.map(|w| data == &w[..]).unwrap_or(false);
        obs.val(
            format!("{key} pkt{i}"),
            format!(
                "used {} hdr {} data {} {} intact={ok}",
                used_str(p),
                hex(hdr),
                data.len(),
                &hash(data)[..8]
            ),
        );
        obs.check(
            ok,
            format!(
                "{key} pkt{i}: want {:?} bytes, got {} different",
                w.map(|w| w.len()),
                data.len()
            ),
        );
        hdrs.push(hdr.to_vec());
    }
    hdrs
}

/// Injects `frames` (to the guest) and records what arrives.
fn rx(obs: &mut Obs, net: &mut Net, key: &str, frames: &[Vec<u8>], want: &[Vec<u8>], hlen: usize) {
    for (i, f) in frames.iter().enumerate() {
        let r = net.tap.inject(f);
        if r != Ok(f.len() as i64) {
            obs.ret(format!("{key} inject{i} {}", f.len()), r);
        }
    }
    let pkts = rx_collect(net, want.len(), WAIT, hlen);
    rx_record(obs, net, key, &pkts, want, hlen);
}

/// Ring state once the device is idle.
fn finish(obs: &mut Obs, net: &Net, p: &str) {
    sleep_ms(50);
    obs.val(format!("{p}rx used_idx"), net.rx.used_idx(&net.mem));
    obs.val(format!("{p}tx used_idx"), net.tx.used_idx(&net.mem));
    obs.val(
        format!("{p}used flags rx/tx"),
        format!(
            "{:#x}/{:#x}",
            net.rx.used_flags(&net.mem),
            net.tx.used_flags(&net.mem)
        ),
    );
    if net.cfg.event_idx {
        obs.val(
            format!("{p}avail_event rx/tx"),
            format!(
                "{}/{}",
                net.rx.avail_event(&net.mem),
                net.tx.avail_event(&net.mem)
            ),
        );
    }
    obs.val(format!("{p}GET_VRING_BASE 0"), net.vring_base(0));
    obs.val(format!("{p}GET_VRING_BASE 1"), net.vring_base(1));
}

fn set_backend(net: &Net, index: u32, fd: i32) -> Res {
    let mut b = uapi::VhostVringFile { index, fd };
    ioctl(
        net.dev.raw(),
        uapi::VHOST_NET_SET_BACKEND as u64,
        &mut b as *mut _ as usize,
    )
}

fn frames(sizes: &[usize], dst: [u8; 6], tag: u8) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &s)| frame(s, dst, tag, i as u32 + 1 + 100 * tag as u32, None))
        .collect()
}

fn stats(tap_name: &str) -> String {
    [
        "rx_packets",
        "tx_packets",
        "rx_dropped",
        "tx_dropped",
        "rx_frame_errors",
    ]
    .iter()
    .map(|w| {
        sys::read_trim(&format!("/sys/class/net/{tap_name}/statistics/{w}"))
            .unwrap_or_else(|e| format!("?{e}"))
    })
    .collect::<Vec<_>>()
    .join(" ")
}

/// `stats(tap_name)` once rx_packets has reached `rx` (or after 2 s, so a
/// short count still shows in the record).
fn settled_stats(tap_name: &str, rx: usize) -> String {
    let deadline = Instant::now() + Duration::from_millis(2000);
    loop {
        let s = stats(tap_name);
        let got: Option<usize> = s.split(' ').next().and_then(|v| v.parse().ok());
        if got.is_some_and(|g| g >= rx) || Instant::now() > deadline {
            return s;
        }
        sleep_ms(10);
    }
}

// ------------------------------------------------------------- backends

/// macvtap (bridge mode) on one end of a veth pair: the guest's frames come
/// out of the other end, frames sent into the other end for the macvtap's
/// MAC (and broadcast) reach the guest.
fn macvtap(obs: &mut Obs, _: &Ctx) {
    let _v = match veth("d2mva", "d2mvb", 1500) {
        Ok(l) => l,
        Err(e) => return obs.fail(e),
    };
    let _m = match macvtap_link("d2mvt", "d2mva", UNICAST) {
        Ok(l) => l,
        Err(e) => return obs.fail(e),
    };
    let (fd, _node) = match open_macvtap("d2mvt") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    let mut sz = 12i32;
    obs.ret(
        "TUNSETVNETHDRSZ 12",
        ioctl(fd.raw(), TUNSETVNETHDRSZ, &mut sz as *mut i32 as usize),
    );
    let tap = match port(fd, "d2mvb") {
        Ok(t) => t,
        Err(e) => return obs.fail(e),
    };
    let Some(mut n) = Net::with_backend(obs, "", Cfg::default(), tap, None) else {
        return;
    };
    let f = frames(&[14, 60, 1514], PEER, 1);
    let h = n.zero_hdr();
    tx(obs, &mut n, "tx", &f, &h, 1, &f);
    // the lower veth forwards up to MTU + 14 + 4 (VLAN) bytes and drops
    // the rest after vhost sent them
    let big = frames(&[1518, 1519, 9014], PEER, 2);
    tx(obs, &mut n, "tx over mtu", &big, &h, 2, &big[..1]);
    post_rx(&mut n, 64, 2048);
    let mut r = frames(&[60, 1514], UNICAST, 3);
    r.push(frame(342, BROADCAST, 3, 9, None));
    rx(obs, &mut n, "rx", &r, &r, 12);
    // not for the macvtap's MAC: the lower device takes it
    let other = frames(&[100], PEER, 4);
    rx(obs, &mut n, "rx other mac", &other, &[], 12);
    // macvlan counts a broadcast in its work item after handing it on
    // (netif_rx, then macvlan_count_rx), so the guest can hold the frame
    // before rx_packets shows it: wait for the three frames it took.
    obs.val("macvtap stats", settled_stats("d2mvt", r.len()));
    finish(obs, &n, "");
}

/// AF_PACKET SOCK_RAW bound to one veth end as the backend.
fn af_packet_backend(name_a: &str, name_b: &str) -> Result<(Tap, Link), String> {
    let l = veth(name_a, name_b, 1500)?;
    let s = packet_socket(libc::ETH_P_ALL as u16);
    bind_packet(&s, ifindex(name_a))?;
    Ok((port(s, name_b)?, l))
}

/// A device with VHOST_NET_F_VIRTIO_NET_HDR (vhost adds and strips the
/// header; the backend has none) on `tap`.
fn net_hdr_net(obs: &mut Obs, tap: Tap) -> Option<Net> {
    let cfg = Cfg {
        net_hdr: true,
        ..Cfg::default()
    };
    Net::with_backend(obs, "", cfg, tap, None)
}

/// With VHOST_NET_F_VIRTIO_NET_HDR: vhost strips the guest's header on TX
/// and writes a zero one on RX (sock_hlen 0, vhost_hlen 12).
fn af_packet_net_hdr(obs: &mut Obs, _: &Ctx) {
    let (tap, _l) = match af_packet_backend("d2pa", "d2pb") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    let Some(mut n) = net_hdr_net(obs, tap) else {
        return;
    };
    let f = frames(&[14, 60, 1514], PEER, 1);
    // a junk header: stripped without being looked at
    let junk: Vec<u8> = (1..=12).map(|i| i * 0x11).collect();
    tx(obs, &mut n, "tx", &f, &junk, 1, &f);
    // shorter than an Ethernet header, and over the MTU (EMSGSIZE): the
    // socket refuses both, vhost uses both buffers
    let bad = vec![
        frame(14, PEER, 2, 1, None)[..13].to_vec(),
        frame(1515, PEER, 2, 2, None),
    ];
    tx(obs, &mut n, "tx short/long", &bad, &junk, 2, &[]);
    post_rx(&mut n, 64, 2048);
    let r = frames(&[60, 1514, 14], PEER, 3);
    rx(obs, &mut n, "rx", &r, &r, 12);
    // a VLAN frame: untagged by the stack, so the socket's peeked length
    // (with the tag) and what recvmsg returns (without) differ
    let v = vec![frame(100, PEER, 4, 1, Some(5))];
    rx(obs, &mut n, "rx vlan", &v, &[], 12);
    sleep_ms(200);
    let after = frames(&[70], PEER, 5);
    rx(obs, &mut n, "rx after vlan", &after, &after, 12);
    // non-mergeable: a 1514-byte frame in a 1526-byte buffer, then in a
    // buffer one byte short
    finish(obs, &n, "");
    obs.val("d2pa stats", stats("d2pa"));
}

/// Without VHOST_NET_F_VIRTIO_NET_HDR: no header anywhere, the guest's
/// buffers hold bare frames (non-mergeable: nothing written at byte 10).
fn af_packet_raw(obs: &mut Obs, _: &Ctx) {
    let (tap, _l) = match af_packet_backend("d2ra", "d2rb") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    let cfg = Cfg {
        mrg_rxbuf: false,
        ..Cfg::default()
    };
    let Some(mut n) = Net::with_backend(obs, "nomrg ", cfg, tap, None) else {
        return;
    };
    let f = frames(&[14, 60, 1514], PEER, 1);
    tx(obs, &mut n, "tx", &f, &[], 1, &f);
    // RX cannot work: vhost expects a 12-byte header from the socket
    // (sock_hlen 12), the socket's length (peek + 12) never matches what
    // recvmsg returns and every frame is dropped (C does the same)
    post_rx(&mut n, 4, 1514);
    let r = frames(&[60, 1514], PEER, 2);
    rx(obs, &mut n, "rx", &r, &[], 0);
    obs.val("rx used_idx after drops", n.rx.used_idx(&n.mem));
    // a frame one byte larger than the remaining buffer: dropped
    let big = frame(1514, PEER, 2, 7, None);
    post_rx(&mut n, 1, 1513);
    obs.ret("inject 1514 into 1513", n.tap.inject(&big));
    sleep_ms(200);
    let u = n.rx.take_used(&n.mem);
    obs.val("used after too small", used_str(&u));
    finish(obs, &n, "nomrg ");
    drop(n);
    // mergeable without any header: vhost writes num_buffers at byte 10 of
    // the frame itself, as C does
    let (tap, _l2) = match af_packet_backend("d2ra", "d2rb") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    let Some(mut n) = Net::with_backend(obs, "mrg ", Cfg::default(), tap, None) else {
        return;
    };
    post_rx(&mut n, 8, 1024);
    let r = frames(&[60, 1514], PEER, 3);
    for x in &r {
        n.tap.inject(x).ok();
    }
    let pkts = rx_collect(&mut n, 3, 2000, 0);
    for (i, p) in pkts.iter().enumerate() {
        let mut b = Vec::new();
        for u in p {
            b.extend(Vq::used_bytes(&n.mem, u));
        }
        obs.val(
            format!("mrg raw pkt{i}"),
            format!("used {} bytes {} {}", used_str(p), b.len(), hash(&b)),
        );
    }
    finish(obs, &n, "mrg ");
}

// ------------------------------------------------------- multiqueue tap

fn mq_queue(name: &str) -> Result<(Fd, String), String> {
    let fd = sys::open("/dev/net/tun", libc::O_RDWR).map_err(|e| format!("open tun: {e}"))?;
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as u16 | IFF_MULTI_QUEUE;
    ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
    ioctl(fd.raw(), TUNSETIFF, ifr.as_mut_ptr() as usize)
        .map_err(|e| format!("TUNSETIFF {name}: {e}"))?;
    let end = ifr[..16].iter().position(|&b| b == 0).unwrap_or(16);
    let mut sz = 12i32;
    ioctl(fd.raw(), TUNSETVNETHDRSZ, &mut sz as *mut i32 as usize)
        .map_err(|e| format!("TUNSETVNETHDRSZ: {e}"))?;
    Ok((fd, String::from_utf8_lossy(&ifr[..end]).to_string()))
}

/// An IPv4/UDP frame (valid checksums) from the guest's MAC tag.
fn udp_frame(dst: [u8; 6], tag: u8, sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(dst);
    f.extend(src_mac(tag));
    f.extend(0x0800u16.to_be_bytes());
    let ulen = 8 + payload;
    f.extend(ipv4(17, ulen, [10, 0, 0, 1], [10, 0, 0, 2]));
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend((ulen as u16).to_be_bytes());
    f.extend([0, 0]);
    for i in 0..payload {
        f.push((i as u32).wrapping_mul(31).wrapping_add(sport as u32) as u8);
    }
    let c = l4_csum(&f[14..], 17);
    f[40..42].copy_from_slice(&c.to_be_bytes());
    f
}

fn ipv4(proto: u8, l4len: usize, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend(((20 + l4len) as u16).to_be_bytes());
    h.extend([0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    h.extend(src);
    h.extend(dst);
    let c = !fold(sum16(&h, 0));
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn sum16(b: &[u8], mut s: u32) -> u32 {
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += w as u32;
        s = (s & 0xffff) + (s >> 16);
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The IPv4 pseudo-header sum of an IP packet `ip` (header at 0).
fn pseudo(ip: &[u8], proto: u8) -> u32 {
    let l4 = (ip.len() - 20) as u32;
    let mut p = ip[12..20].to_vec();
    p.extend([0, proto]);
    p.extend((l4 as u16).to_be_bytes());
    sum16(&p, 0)
}

/// The full L4 checksum of IP packet `ip` (its checksum field zero).
fn l4_csum(ip: &[u8], proto: u8) -> u16 {
    let c = !fold(sum16(&ip[20..], pseudo(ip, proto)));
    if c == 0 && proto == 17 {
        0xffff
    } else {
        c
    }
}

/// Two queues of one multiqueue tap, a vhost device on each; RX flows
/// (UDP, one source port each) are spread by the tap's flow hash.
fn multiqueue(obs: &mut Obs, _: &Ctx) {
    let (fa, name) = match mq_queue("d2mq%d") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    let (fb, _) = match mq_queue(&name) {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    no_ipv6(&name);
    if let Err(e) = set_up(&name) {
        return obs.fail(e);
    }
    let (ta, tb) = match (port(fa, &name), port(fb, &name)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return obs.fail(e),
    };
    let Some(mut a) = Net::with_backend(obs, "a ", Cfg::default(), ta, None) else {
        return;
    };
    let Some(mut b) = Net::with_backend(obs, "b ", Cfg::default(), tb, None) else {
        return;
    };
    post_rx(&mut a, 64, 2048);
    post_rx(&mut b, 64, 2048);
    // TX on both queues
    let fa_ = frames(&[60, 1514, 9000], PEER, 0xa);
    let fb_ = frames(&[64, 1500, 9000], PEER, 0xb);
    let h = a.zero_hdr();
    tx_post(&mut a, &fa_, &h);
    tx_post(&mut b, &fb_, &h);
    for (net, key, f, tag) in [(&mut a, "a tx", &fa_, 0xa), (&mut b, "b tx", &fb_, 0xb)] {
        let used = net.tx.wait_used(&net.mem, f.len(), WAIT);
        obs.val(format!("{key} used"), used_str(&used));
        tx_capture(obs, net, key, tag, f);
    }
    // RX: 16 flows
    let rxf: Vec<Vec<u8>> = (0..16)
        .map(|i| udp_frame(UNICAST, 0x33, 1000 + i * 7, 9, 100 + i as usize))
        .collect();
    for f in &rxf {
        a.tap.inject(f).ok();
    }
    let mut got_a = Vec::new();
    let mut got_b = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(WAIT);
    while got_a.len() + got_b.len() < rxf.len() && Instant::now() < deadline {
        for (net, got) in [(&mut a, &mut got_a), (&mut b, &mut got_b)] {
            for p in rx_collect(net, 1, 10, 12) {
                let mut bytes = Vec::new();
                for u in &p {
                    bytes.extend(Vq::used_bytes(&net.mem, u));
                }
                got.push(bytes[12.min(bytes.len())..].to_vec());
            }
        }
    }
    let which = |got: &Vec<Vec<u8>>| {
        got.iter()
            .map(|g| match rxf.iter().position(|f| f == g) {
                Some(i) => i.to_string(),
                None => format!("?{}", g.len()),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    obs.val("rx total", got_a.len() + got_b.len());
    obs.val("rx queue a", which(&got_a));
    obs.val("rx queue b", which(&got_b));
    obs.check(
        got_a.len() + got_b.len() == rxf.len(),
        format!("rx: {} + {} of {}", got_a.len(), got_b.len(), rxf.len()),
    );
    obs.check(
        !got_a.is_empty() && !got_b.is_empty(),
        "rx: one queue got nothing",
    );
    let mut all: Vec<_> = got_a.iter().chain(&got_b).cloned().collect();
    all.sort();
    let mut want = rxf.clone();
    want.sort();
    obs.check(all == want, "rx: frames lost or damaged");
    finish(obs, &a, "a ");
    finish(obs, &b, "b ");
}

// --------------------------------------------------------- switching

/// SET_BACKEND to another tap and to -1 and back while frames are queued
/// on both sides.
fn backend_switch(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let t2 = match Tap::new(Some(12), 65521) {
        Ok(t) => t,
        Err(e) => return obs.fail(e),
    };
    let h = n.zero_hdr();
    post_rx(&mut n, 128, 2048);
    // 1: traffic on tap 1
    let f1 = frames(&[60, 1514], PEER, 1);
    tx(obs, &mut n, "tap1 tx", &f1, &h, 1, &f1);
    rx(obs, &mut n, "tap1 rx", &f1, &f1, 12);
    // 2: frames queued on tap 1's RX, then switch both rings to tap 2
    let q1 = frames(&[70, 80], UNICAST, 2);
    for f in &q1 {
        n.tap.inject(f).ok();
    }
    // (vhost takes them right away: the ring has buffers)
    let p = rx_collect(&mut n, 2, WAIT, 12);
    rx_record(obs, &n, "tap1 rx before switch", &p, &q1, 12);
    obs.ret("SET_BACKEND 0 tap2", set_backend(&n, 0, t2.fd.raw()));
    obs.ret("SET_BACKEND 1 tap2", set_backend(&n, 1, t2.fd.raw()));
    let f2 = frames(&[64, 1500], PEER, 3);
    tx_post(&mut n, &f2, &h);
    let used = n.tx.wait_used(&n.mem, 2, WAIT);
    obs.val("tap2 tx used", used_str(&used));
    let mut got = Vec::new();
    while let Some(f) = t2.capture(if got.len() < 2 { 3000 } else { 100 }) {
        got.push(f);
    }
    obs.val("tap2 tx captured", got.len());
    obs.check(got == f2, "tap2 tx: frames not on tap 2");
    obs.val("tap1 got tx", n.tap.capture(100).is_some());
    for f in &f2 {
        t2.inject(f).ok();
    }
    let p = rx_collect(&mut n, 2, WAIT, 12);
    rx_record(obs, &n, "tap2 rx", &p, &f2, 12);
    // frames injected on tap 1 while detached from it stay in tap 1
    let stale = frames(&[90], UNICAST, 4);
    obs.ret("inject tap1 (detached)", n.tap.inject(&stale[0]));
    sleep_ms(200);
    obs.val("rx used after tap1 inject", n.rx.used_idx(&n.mem));
    // 3: no backend: TX posted and RX injected wait
    obs.ret("SET_BACKEND 0 -1", set_backend(&n, 0, -1));
    obs.ret("SET_BACKEND 1 -1", set_backend(&n, 1, -1));
    obs.val("GET_VRING_BASE 1 at -1", n.vring_base(1));
    let f3 = frames(&[100, 200, 300], PEER, 5);
    tx_post(&mut n, &f3, &h);
    let f3r = frames(&[110], UNICAST, 6);
    obs.ret("inject tap2 (no backend)", t2.inject(&f3r[0]));
    sleep_ms(300);
    obs.val("tx used while -1", used_str(&n.tx.take_used(&n.mem)));
    obs.val("rx used while -1", used_str(&n.rx.take_used(&n.mem)));
    obs.val("tap2 capture while -1", t2.capture(100).is_some());
    // 4: back to tap 1: the TX frames posted meanwhile go out of tap 1 and
    // tap 1's queued frame arrives; tap 2's stays there
    obs.ret("SET_BACKEND 0 tap1", set_backend(&n, 0, n.tap.fd.raw()));
    obs.ret("SET_BACKEND 1 tap1", set_backend(&n, 1, n.tap.fd.raw()));
    let used = n.tx.wait_used(&n.mem, 3, WAIT);
    obs.val("back tx used", used_str(&used));
    tx_capture(obs, &n, "back tx", 5, &f3);
    let p = rx_collect(&mut n, 1, WAIT, 12);
    rx_record(obs, &n, "back rx", &p, &stale, 12);
    // a kick with nothing new: nothing happens
    n.tx.kick_now();
    sleep_ms(100);
    obs.val("tx used after empty kick", n.tx.used_idx(&n.mem));
    let f4 = frames(&[1514], PEER, 7);
    tx(obs, &mut n, "back tx2", &f4, &h, 7, &f4);
    obs.val("tap1 stats", stats(&n.tap.name));
    obs.val("tap2 stats", stats(&t2.name));
    finish(obs, &n, "");
}

/// The backend fd closed by userspace while attached: vhost's reference
/// keeps the tap alive and working; it goes away once detached.
fn backend_fd_closed(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let h = n.zero_hdr();
    let fd = std::mem::replace(&mut n.tap.fd, Fd(-1));
    obs.ret("close tap fd", fd.close());
    obs.val("tap exists after close", exists(&n.tap.name));
    post_rx(&mut n, 64, 2048);
    let f = frames(&[60, 1514, 9000], PEER, 1);
    tx(obs, &mut n, "tx", &f, &h, 1, &f);
    let r = frames(&[64, 1500], UNICAST, 2);
    rx(obs, &mut n, "rx", &r, &r, 12);
    // detach RX only: the tap lives on through TX
    obs.ret("SET_BACKEND 0 -1", set_backend(&n, 0, -1));
    sleep_ms(100);
    obs.val("tap exists, TX attached", exists(&n.tap.name));
    let f2 = frames(&[100], PEER, 3);
    tx(obs, &mut n, "tx rx-detached", &f2, &h, 3, &f2);
    obs.ret("SET_BACKEND 1 -1", set_backend(&n, 1, -1));
    let mut gone = false;
    for _ in 0..50 {
        if !exists(&n.tap.name) {
            gone = true;
            break;
        }
        sleep_ms(100);
    }
    obs.val("tap gone after detach", gone);
    // the fd number is no longer a tap: EBADF
    obs.val("SET_BACKEND closed fd", fmt_res(&set_backend(&n, 1, 1000)));
    finish(obs, &n, "");
}

// ------------------------------------------------------------------ MTU

fn mtu(obs: &mut Obs, _: &Ctx) {
    for m in [68usize, 1500, 9000] {
        let tap = match Tap::new(Some(12), m as u32) {
            Ok(t) => t,
            Err(e) => return obs.fail(format!("mtu {m}: {e}")),
        };
        let p = format!("mtu{m} ");
        let cfg = Cfg {
            mrg_rxbuf: false,
            ..Cfg::default()
        };
        let Some(mut n) = Net::with_backend(obs, &p, cfg, tap, None) else {
            return;
        };
        let h = n.zero_hdr();
        let at = m + 14;
        let f = frames(&[at, at + 1], PEER, 1);
        tx(obs, &mut n, &format!("{p}tx"), &f, &h, 1, &f);
        // RX buffers of exactly header + MTU frame (one descriptor each)
        post_rx(&mut n, 4, 12 + at);
        let r = frames(&[at], UNICAST, 2);
        rx(obs, &mut n, &format!("{p}rx"), &r, &r, 12);
        let over = frame(at + 1, UNICAST, 2, 50, None);
        obs.ret(format!("{p}inject mtu+1"), n.tap.inject(&over));
        let vl = frame(at + 4, UNICAST, 2, 51, Some(7));
        obs.ret(format!("{p}inject vlan at mtu"), n.tap.inject(&vl));
        // the tag is put back into the frame: 4 bytes too big for the
        // buffers, dropped
        let pk = rx_collect(&mut n, 1, 1000, 12);
        rx_record(obs, &n, &format!("{p}rx vlan"), &pk, &[], 12);
        obs.val(format!("{p}stats"), stats(&n.tap.name));
        finish(obs, &n, &p);
    }
}

// ------------------------------------------------------------- offloads

fn vnet_hdr(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, cs: u16, co: u16) -> Vec<u8> {
    let mut h = vec![flags, gso_type];
    for v in [hdr_len, gso_size, cs, co, 0] {
        h.extend(v.to_le_bytes());
    }
    h
}

fn vnet_str(h: &[u8]) -> String {
    if h.len() < 10 {
        return format!("short {}", hex(h));
    }
    let w = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    format!(
        "flags {:#x} gso {} hdr_len {} gso_size {} csum {}+{}",
        h[0],
        h[1],
        w(2),
        w(4),
        w(6),
        w(8)
    )
}

fn set_offload(obs: &mut Obs, tap: &Tap, key: &str, f: usize) {
    obs.ret(key, ioctl(tap.fd.raw(), TUNSETOFFLOAD, f));
}

/// Guest TX with VIRTIO_NET_HDR_F_NEEDS_CSUM: the tap takes a partial
/// checksum; a PACKET_VNET_HDR capture reports it, and completing it at
/// csum_start/csum_offset gives the right UDP checksum.
fn offload_csum(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    set_offload(obs, &n.tap, "TUNSETOFFLOAD csum", TUN_F_CSUM);
    let vcap = match cap_socket(n.tap.ifindex, true) {
        Ok(s) => s,
        Err(e) => return obs.fail(e),
    };
    let good = udp_frame(PEER, 1, 4000, 5000, 300);
    // partial: the checksum field holds the pseudo-header sum
    let mut part = good.clone();
    let ps = fold(pseudo(&part[14..], 17));
    part[40..42].copy_from_slice(&ps.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("needs_csum", vnet_hdr(1, 0, 0, 0, 34, 6), part.clone()),
        (
            "needs_csum hdr_len",
            vnet_hdr(1, 0, 42, 0, 34, 6),
            part.clone(),
        ),
        ("data_valid", vnet_hdr(2, 0, 0, 0, 0, 0), good.clone()),
        ("no flags", vnet_hdr(0, 0, 0, 0, 0, 0), good.clone()),
    ];
    for (k, h, f) in &cases {
        let mut b = n.place(h, 0);
        b.extend(n.place(f, 0));
        n.tx.add(&mut n.mem, &b, false, false);
        n.tx.notify(&n.mem);
        let u = n.tx.wait_used(&n.mem, 1, WAIT);
        obs.val(format!("{k} used"), used_str(&u));
        match cap_vnet(&vcap, 1, 1000) {
            Some((vh, fr)) => {
                // complete the checksum as a device would
                let mut done = fr.clone();
                let mut valid = String::from("-");
                if vh[0] & 1 != 0 {
                    let cs = u16::from_le_bytes([vh[6], vh[7]]) as usize;
                    let co = u16::from_le_bytes([vh[8], vh[9]]) as usize;
                    if cs + co + 2 <= done.len() {
                        let c = !fold(sum16(&done[cs..], 0));
                        done[cs + co..cs + co + 2].copy_from_slice(&c.to_be_bytes());
                    }
                }
                if done.len() >= 42 {
                    valid = (done == good).to_string();
                }
                obs.val(
                    format!("{k} captured"),
                    format!(
                        "{} len {} {} completed==good {valid} udp csum {}",
                        vnet_str(&vh),
                        fr.len(),
                        &hash(&fr)[..8],
                        hex(&done[40..42])
                    ),
                );
            }
            None => obs.val(format!("{k} captured"), "none"),
        }
        // drain the plain capture socket
        while n.tap.capture(20).is_some() {}
    }
    obs.val("tap stats", stats(&n.tap.name));
    // RX: a partial-checksum frame from the stack: with TUN_F_CSUM the
    // guest gets NEEDS_CSUM, without it the stack completes it first
    post_rx(&mut n, 16, 2048);
    let inj = packet_socket(0);
    setsockopt_int(&inj, libc::SOL_PACKET, PACKET_VNET_HDR, 1);
    let rxgood = udp_frame(UNICAST, 2, 4001, 5001, 200);
    let mut rxpart = rxgood.clone();
    let ps = fold(pseudo(&rxpart[14..], 17));
    rxpart[40..42].copy_from_slice(&ps.to_be_bytes());
    for (k, off, want) in [
        ("rx csum offload", TUN_F_CSUM, &rxpart),
        ("rx no offload", 0, &rxgood),
    ] {
        set_offload(obs, &n.tap, &format!("{k} TUNSETOFFLOAD"), off);
        let mut m = vnet_hdr(1, 0, 0, 0, 34, 6)[..10].to_vec();
        m.extend(&rxpart);
        obs.ret(format!("{k} inject"), send_on(&inj, n.tap.ifindex, &m));
        let p = rx_collect(&mut n, 1, WAIT, 12);
        rx_record(obs, &n, k, &p, std::slice::from_ref(want), 12);
    }
    finish(obs, &n, "");
}

/// sendto on a packet socket bound nowhere, to `ifindex`.
fn send_on(s: &Fd, ifindex: i32, bytes: &[u8]) -> Res {
    // SAFETY: sockaddr_ll is a plain C struct for which all-zero bytes are a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    sll.sll_protocol = 0x0800u16.to_be();
    // SAFETY: `s` is an open socket borrowed for the call; `bytes` is readable for `bytes.len()`
    // bytes and `sll` is a sockaddr_ll of the size passed, alive for the call.
    let r = unsafe {
        libc::sendto(
            s.raw(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r as i64)
    }
}

/// A TCP/IPv4 frame with `payload` bytes, TCP checksum field holding the
/// pseudo-header sum (CHECKSUM_PARTIAL).
fn tcp_frame(dst: [u8; 6], tag: u8, payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(dst);
    f.extend(src_mac(tag));
    f.extend(0x0800u16.to_be_bytes());
    f.extend(ipv4(6, 20 + payload, [10, 0, 0, 1], [10, 0, 0, 2]));
    f.extend(40000u16.to_be_bytes());
    f.extend(80u16.to_be_bytes());
    f.extend(0x1000_0000u32.to_be_bytes());
    f.extend(0x2000_0000u32.to_be_bytes());
    f.extend([0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    for i in 0..payload {
        f.push((i * 7 + i / 251) as u8);
    }
    let ps = fold(pseudo(&f[14..], 6));
    f[50..52].copy_from_slice(&ps.to_be_bytes());
    f
}

/// Guest TSO: a 64 KB TCP frame with gso_type TCPV4 / gso_size 1448.
fn offload_tso_tx(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    set_offload(
        obs,
        &n.tap,
        "TUNSETOFFLOAD csum|tso4|tso6",
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
    );
    let vcap = match cap_socket(n.tap.ifindex, true) {
        Ok(s) => s,
        Err(e) => return obs.fail(e),
    };
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "tso 64k",
            vnet_hdr(1, 1, 54, 1448, 34, 16),
            tcp_frame(PEER, 1, 64000),
        ),
        (
            "tso small",
            vnet_hdr(1, 1, 54, 1448, 34, 16),
            tcp_frame(PEER, 1, 3000),
        ),
        // gso without NEEDS_CSUM: refused by the tap
        (
            "tso no csum",
            vnet_hdr(0, 1, 54, 1448, 0, 0),
            tcp_frame(PEER, 1, 3000),
        ),
        // TCPV4 gso_type on a UDP frame
        (
            "tso on udp",
            vnet_hdr(1, 1, 42, 1448, 34, 6),
            udp_frame(PEER, 1, 1, 2, 3000),
        ),
        (
            "tso ecn",
            vnet_hdr(1, 0x81, 54, 1000, 34, 16),
            tcp_frame(PEER, 1, 5000),
        ),
    ];
    for (k, h, f) in &cases {
        // header apart, frame in 4 KiB pieces
        let mut b = n.place(h, 0);
        b.extend(n.place(f, 4096));
        n.tx.add(&mut n.mem, &b, false, true);
        n.tx.notify(&n.mem);
        let u = n.tx.wait_used(&n.mem, 1, WAIT);
        obs.val(format!("{k} used"), used_str(&u));
        let mut got = Vec::new();
        while let Some((vh, fr)) = cap_vnet(&vcap, 1, if got.is_empty() { 1000 } else { 100 }) {
            got.push(format!(
                "[{} len {} {} intact={}]",
                vnet_str(&vh),
                fr.len(),
                &hash(&fr)[..8],
                fr == *f
            ));
        }
        obs.val(format!("{k} captured"), got.join(" "));
        while n.tap.capture(20).is_some() {}
    }
    obs.val("tap stats", stats(&n.tap.name));
    finish(obs, &n, "");
}

/// A GSO frame from the stack to the guest: with TSO4 on the tap it
/// arrives whole with its gso fields in the guest's header; without, the
/// stack segments it.
fn offload_gso_rx(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let inj = packet_socket(0);
    setsockopt_int(&inj, libc::SOL_PACKET, PACKET_VNET_HDR, 1);
    let f = tcp_frame(UNICAST, 2, 20000);
    for (k, off, expect) in [
        ("tso4", TUN_F_CSUM | TUN_F_TSO4, 1usize),
        ("csum only", TUN_F_CSUM, 14),
        ("none", 0, 14),
    ] {
        set_offload(obs, &n.tap, &format!("{k} TUNSETOFFLOAD"), off);
        post_rx(&mut n, 64, 2048);
        let mut m = vnet_hdr(1, 1, 54, 1448, 34, 16)[..10].to_vec();
        m.extend(&f);
        obs.ret(format!("{k} inject"), send_on(&inj, n.tap.ifindex, &m));
        let pk = rx_collect(&mut n, expect, WAIT, 12);
        sleep_ms(100);
        let mut more = rx_collect(&mut n, 0, 10, 12);
        let mut all = pk;
        all.append(&mut more);
        obs.val(format!("{k} packets"), all.len());
        for (i, p) in all.iter().enumerate() {
            let mut bytes = Vec::new();
            for u in p {
                bytes.extend(Vq::used_bytes(&n.mem, u));
            }
            let h = 12.min(bytes.len());
            obs.val(
                format!("{k} pkt{i}"),
                format!(
                    "used {} {} data {} {} whole={}",
                    used_str(p),
                    vnet_str(&bytes[..h]),
                    bytes.len() - h,
                    &hash(&bytes[h..])[..8],
                    bytes[h..] == f[..]
                ),
            );
        }
        // re-post what was used (ring has 256 descriptors)
        let _ = n.rx.take_used(&n.mem);
    }
    finish(obs, &n, "");
}

// ----------------------------------------------------------------- kill

/// The entries under `under` (`/proc` or `/proc/PID/task`) whose `comm`
/// is `want`.
fn comm_find(want: &str, under: &str) -> Vec<std::path::PathBuf> {
    let Ok(d) = std::fs::read_dir(under) else {
        return vec![];
    };
    d.filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_to_string(p.join("comm"))
                .map(|c| c.trim() == want)
                .unwrap_or(false)
        })
        .collect()
}

fn comm_count(want: &str, under: &str) -> usize {
    comm_find(want, under).len()
}

/// The worker is accounted to the owner's cgroup: as a thread of the owner
/// (vhost_task) by construction, and as a kernel thread because the module
/// moves it there (C's `vhost_attach_task_to_cgroups`).
fn worker_cgroup(obs: &mut Obs, _: &Ctx) {
    let root = "/sys/fs/cgroup";
    if !std::path::Path::new(&format!("{root}/cgroup.procs")).exists() {
        // SAFETY: all three strings are NUL-terminated C string literals and the data pointer is
        // null, which mount(2) accepts for cgroup2.
        let r = unsafe {
            libc::mount(
                c"none".as_ptr(),
                c"/sys/fs/cgroup".as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return obs.fail(format!("mount cgroup2: {}", Errno::last()));
        }
    }
    let me = std::process::id();
    let cg = format!("{root}/vt-{me}");
    if let Err(e) = std::fs::create_dir(&cg) {
        return obs.fail(format!("mkdir {cg}: {e}"));
    }
    let join = |dir: &str| std::fs::write(format!("{dir}/cgroup.procs"), me.to_string());
    if let Err(e) = join(&cg) {
        obs.fail(format!("join {cg}: {e}"));
    }
    let mine = format!("0::/vt-{me}");
    let wname = format!("vhost-{me}");
    for (mode, fork) in [("task", None), ("kthread", Some(0u8))] {
        let Ok(tap) = Tap::new(Some(12), 1500) else {
            obs.fail("tap");
            continue;
        };
        let Some(n) = Net::with_backend(obs, mode, Cfg::default(), tap, fork) else {
            continue;
        };
        let found = if fork.is_some() {
            comm_find(&wname, "/proc")
        } else {
            comm_find(&wname, &format!("/proc/{me}/task"))
        };
        let cgs: Vec<String> = found
            .iter()
            .map(|p| {
                let c = std::fs::read_to_string(p.join("cgroup")).unwrap_or_default();
                if c.trim() == mine {
                    "owner's".to_string()
                } else {
                    c.trim().to_string()
                }
            })
            .collect();
        obs.val(format!("{mode} worker cgroups"), format!("{cgs:?}"));
        obs.check(
            cgs == ["owner's"],
            format!("{mode}: one worker in the owner's cgroup, found {cgs:?}"),
        );
        drop(n);
    }
    let _ = join(root);
    let _ = std::fs::remove_dir(&cg);
}

/// The owner, a child process, moves traffic both ways in a loop and is
/// SIGKILLed; its worker must stop, the fds close (the tap disappears) and
/// the module's reference count return to 0.
fn kill_owner(obs: &mut Obs, ctx: &Ctx, fork_val: Option<u8>) {
    let mut p = [0i32; 2];
    // SAFETY: `p` is a writable array of the two ints pipe2 fills.
    assert!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } == 0);
    let (r, w) = (Fd(p[0]), Fd(p[1]));
    // SAFETY: libc::fork: the child runs only the owner loop below and never returns into the
    // harness: it loops until the parent SIGKILLs it, or leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        drop(r);
        let say = |s: &str| {
            let b = format!("{s}\n");
            // SAFETY: `w` is the pipe's write end owned here; `b` is readable for `b.len()` bytes.
            unsafe { libc::write(w.raw(), b.as_ptr().cast(), b.len()) };
        };
        let mut o = Obs::default();
        let Some(mut n) = Net::with_backend(
            &mut o,
            "",
            Cfg::default(),
            Tap::new(Some(12), 65521).unwrap(),
            fork_val,
        ) else {
            say(&format!("fail {:?}", o.failures));
            // SAFETY: _exit ends the child without running the parent's destructors or atexit
            // handlers.
            unsafe { libc::_exit(1) };
        };
        let h = n.zero_hdr();
        post_rx(&mut n, 128, 2048);
        let f = frames(&[60, 1514, 9000], PEER, 1);
        // buffers placed once and reused (guest memory is finite)
        let txb: Vec<Vec<Buf>> = f
            .iter()
            .map(|x| {
                let mut b = n.place(&h, 0);
                b.extend(n.place(x, 0));
                b
            })
            .collect();
        let mut said = false;
        let mut seq = 0u32;
        loop {
            if n.tx.free_descs() >= 8 {
                for b in &txb {
                    n.tx.add(&mut n.mem, b, false, false);
                }
                n.tx.notify(&n.mem);
            }
            let _ = n.tx.take_used(&n.mem);
            let x = frame(200 + (seq % 1000) as usize, UNICAST, 1, seq, None);
            seq += 1;
            n.tap.inject(&x).ok();
            let u = n.rx.take_used(&n.mem);
            for e in &u {
                n.rx.add(&mut n.mem, &e.chain.bufs, true, false);
            }
            if !u.is_empty() {
                n.rx.notify(&n.mem);
            }
            while n.tap.capture(0).is_some() {}
            if !said && n.tx.used_idx(&n.mem) >= 6 && n.rx.used_idx(&n.mem) >= 2 {
                say(&format!("ok {}", n.tap.name));
                said = true;
            }
        }
    }
    drop(w);
    let mut line = String::new();
    if poll_in(r.raw(), 30000) {
        let mut b = [0u8; 256];
        // SAFETY: `r` is the pipe's read end owned here; `b` is writable for `b.len()` bytes.
        let k = unsafe { libc::read(r.raw(), b.as_mut_ptr().cast(), b.len()) };
        if k > 0 {
            line = String::from_utf8_lossy(&b[..k as usize]).trim().to_string();
        }
    }
    let ready = line.starts_with("ok ");
    obs.val("owner ready", ready);
    if !ready {
        obs.fail(format!("owner: {line:?}"));
    }
    let tap = line.strip_prefix("ok ").unwrap_or("").to_string();
    let wname = format!("vhost-{pid}");
    let threads = comm_count(&wname, &format!("/proc/{pid}/task"));
    let procs = comm_count(&wname, "/proc");
    obs.val(
        "worker: owner threads/processes",
        format!("{threads}/{procs}"),
    );
    sleep_ms(300);
    // SAFETY: plain syscall with integer arguments; `pid` is the child forked above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let mut st = 0;
    // SAFETY: `pid` is the child forked above; `st` is a writable int for the call.
    unsafe { libc::waitpid(pid, &mut st, 0) };
    obs.val(
        "owner status",
        if libc::WIFSIGNALED(st) {
            format!("signal {}", libc::WTERMSIG(st))
        } else {
            format!("exit {}", libc::WEXITSTATUS(st))
        },
    );
    let mut gone = false;
    let mut rc = String::new();
    for _ in 0..100 {
        gone = tap.is_empty() || !exists(&tap);
        rc = modules::refcnt(ctx.module()).unwrap_or_else(|e| e.to_string());
        if gone && rc == "0" && comm_count(&wname, "/proc") == 0 {
            break;
        }
        sleep_ms(100);
    }
    obs.val("tap gone", gone);
    obs.val("refcnt", rc);
    obs.val("worker left", comm_count(&wname, "/proc"));
}

fn kill_owner_task(obs: &mut Obs, ctx: &Ctx) {
    kill_owner(obs, ctx, None)
}

fn kill_owner_kthread(obs: &mut Obs, ctx: &Ctx) {
    kill_owner(obs, ctx, Some(0))
}

// ------------------------------------------------------------ busyloop

fn busyloop(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    for i in [0u32, 1] {
        let mut s = uapi::VhostVringState { index: i, num: 50 };
        obs.ret_ok(
            format!("SET_VRING_BUSYLOOP_TIMEOUT {i}"),
            ioctl(
                n.dev.raw(),
                uapi::VHOST_SET_VRING_BUSYLOOP_TIMEOUT as u64,
                &mut s as *mut _ as usize,
            ),
        );
        let mut s = uapi::VhostVringState { index: i, num: 0 };
        let r = ioctl(
            n.dev.raw(),
            uapi::VHOST_GET_VRING_BUSYLOOP_TIMEOUT as u64,
            &mut s as *mut _ as usize,
        );
        obs.val(
            format!("GET_VRING_BUSYLOOP_TIMEOUT {i}"),
            format!("{} {}", fmt_res(&r), s.num),
        );
    }
    let h = n.zero_hdr();
    post_rx(&mut n, 64, 2048);
    for round in 0..4u8 {
        let f = frames(&[60, 1514, 9000], PEER, round + 1);
        tx(obs, &mut n, &format!("tx{round}"), &f, &h, round + 1, &f);
        let r = frames(&[64, 1500], UNICAST, round + 10);
        rx(obs, &mut n, &format!("rx{round}"), &r, &r, 12);
        // both at once: RX frames arrive while TX is being processed
        let f = frames(&[100, 200], PEER, round + 20);
        tx_post(&mut n, &f, &h);
        let r = frames(&[300], UNICAST, round + 30);
        for x in &r {
            n.tap.inject(x).ok();
        }
        let u = n.tx.wait_used(&n.mem, 2, WAIT);
        obs.val(format!("mixed{round} tx used"), used_str(&u));
        tx_capture(obs, &n, &format!("mixed{round} tx"), round + 20, &f);
        let p = rx_collect(&mut n, 1, WAIT, 12);
        rx_record(obs, &n, &format!("mixed{round} rx"), &p, &r, 12);
    }
    // idle: notifications must end up enabled as without busy polling
    sleep_ms(300);
    finish(obs, &n, "");
    let f = frames(&[77], PEER, 40);
    tx(obs, &mut n, "after idle tx", &f, &h, 40, &f);
    let r = frames(&[88], UNICAST, 41);
    rx(obs, &mut n, "after idle rx", &r, &r, 12);
}

// ----------------------------------------------------------- TX flood

/// Device A floods TX (the ring kept full) while device B moves a few
/// frames each way: B completes within the wait.
fn tx_flood(obs: &mut Obs, _: &Ctx) {
    let Some(mut a) = Net::new(obs, "a ", Cfg::default()) else {
        return;
    };
    let Some(mut b) = Net::new(obs, "b ", Cfg::default()) else {
        return;
    };
    let h = a.zero_hdr();
    let flood = frames(&[1514; 8], PEER, 0xa);
    let fb: Vec<Vec<Buf>> = flood
        .iter()
        .map(|x| {
            let mut v = a.place(&h, 0);
            v.extend(a.place(x, 0));
            v
        })
        .collect();
    let start = Instant::now();
    let mut a_used = 0usize;
    post_rx(&mut b, 32, 2048);
    let bt = frames(&[60, 1514, 9000, 100], PEER, 0xb);
    let br = frames(&[64, 1500, 9000, 200], UNICAST, 0xc);
    let mut b_tx_used = Vec::new();
    let mut b_rx = Vec::new();
    let mut phase = 0;
    while start.elapsed() < Duration::from_secs(15) {
        while a.tx.free_descs() >= 16 {
            for v in &fb {
                a.tx.add(&mut a.mem, v, false, false);
            }
            a.tx.notify(&a.mem);
        }
        a_used += a.tx.take_used(&a.mem).len();
        // drain A's capture so the socket does not fill
        while a.tap.capture(0).is_some() {}
        if phase == 0 && start.elapsed() > Duration::from_millis(200) {
            tx_post(&mut b, &bt, &h);
            for x in &br {
                b.tap.inject(x).ok();
            }
            phase = 1;
        }
        if phase == 1 {
            b_tx_used.extend(b.tx.take_used(&b.mem));
            b_rx.extend(rx_collect(&mut b, 0, 1, 12));
            if b_tx_used.len() >= bt.len() && b_rx.len() >= br.len() {
                break;
            }
        }
    }
    obs.val("a flood progressed", a_used > 0);
    obs.val("b tx used", used_str(&b_tx_used));
    obs.check(b_tx_used.len() == bt.len(), "b tx: not all used in 15 s");
    let mut got = Vec::new();
    while let Some(f) = cap_tag(&b.tap, 0xb, if got.len() < bt.len() { 2000 } else { 100 }) {
        got.push(f);
    }
    obs.val("b tx captured", got.len());
    obs.check(got == bt, "b tx: frames differ");
    rx_record(obs, &b, "b rx", &b_rx, &br, 12);
    // stop the flood and let A finish
    let _ = a.tx.wait_used(&a.mem, 256, WAIT);
    finish(obs, &b, "b ");
}

/// CPU ticks (utime + stime) of this process's threads named `comm`.
fn thread_ticks(comm: &str) -> u64 {
    let mut t = 0;
    if let Ok(d) = std::fs::read_dir("/proc/self/task") {
        for e in d.flatten() {
            let c = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if c.trim() != comm {
                continue;
            }
            let st = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if let Some((_, rest)) = st.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // fields 14 and 15 of stat; `rest` starts at field 3
                t += f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                t += f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    t
}

/// Guest TX whose vnet header the tap refuses (NEEDS_CSUM with
/// csum_start + csum_offset + 2 beyond the frame), then a good frame.
fn tx_bad_csum_hdr(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let good = udp_frame(PEER, 1, 4000, 5000, 300);
    let mut part = good.clone();
    let ps = fold(pseudo(&part[14..], 17));
    part[40..42].copy_from_slice(&ps.to_be_bytes());
    let ok_hdr = vnet_hdr(1, 0, 0, 0, 34, 6);
    tx(
        obs,
        &mut n,
        "good",
        std::slice::from_ref(&part),
        &ok_hdr,
        1,
        std::slice::from_ref(&part),
    );
    while n.tap.capture(20).is_some() {}
    let bad_hdr = vnet_hdr(1, 0, 0, 0, 34, 320);
    let mut b = n.place(&bad_hdr, 0);
    b.extend(n.place(&part, 0));
    n.tx.add(&mut n.mem, &b, false, false);
    n.tx.notify(&n.mem);
    let u = n.tx.wait_used(&n.mem, 1, 2000);
    obs.val("bad used", used_str(&u));
    let worker = format!("vhost-{}", std::process::id());
    let t0 = thread_ticks(&worker);
    sleep_ms(1000);
    let t1 = thread_ticks(&worker);
    obs.note(format!(
        "worker {worker} CPU ticks in the 1 s after the bad frame: {}",
        t1 - t0
    ));
    obs.val("GET_VRING_BASE 1 after bad", n.vring_base(1));
    // a good frame after it
    let f = frames(&[60], PEER, 2);
    let h = n.zero_hdr();
    tx_post(&mut n, &f, &h);
    let u = n.tx.wait_used(&n.mem, 1, 2000);
    obs.val("next used", used_str(&u));
    let got = cap_tag(&n.tap, 2, 1000);
    obs.val(
        "next captured",
        got.map(|g| g.len().to_string()).unwrap_or("none".into()),
    );
    obs.val("tap stats", stats(&n.tap.name));
    finish(obs, &n, "");
}

/// Reads what is queued on the tap's own fd (frames the stack sent out of
/// the tap and no vhost ring took), each with its 12-byte vnet header cut,
/// and checks it is `want`.
fn tap_drained(obs: &mut Obs, tap: &Tap, when: &str, want: &[Vec<u8>]) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 70000];
    while poll_in(tap.fd.raw(), if got.is_empty() { 1000 } else { 100 }) {
        // SAFETY: `tap.fd` is an open tap fd borrowed for the call; `buf` is writable for
        // `buf.len()` bytes.
        let n = unsafe { libc::read(tap.fd.raw(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 12 {
            break;
        }
        got.push(buf[12..n as usize].to_vec());
    }
    let hashes: Vec<String> = got.iter().map(|g| hash(g)).collect();
    obs.val(
        format!("{when}, tap fd reads"),
        format!("{} frames: {}", got.len(), hashes.join(" ")),
    );
    obs.check(
        got == want,
        format!("{when}: the {} frames not received, in order", want.len()),
    );
    obs.val(format!("tap tx_dropped {when}"), tap.stat("tx_dropped"));
}

/// Frames vhost took off the tap's ring ahead of the guest's buffers (C
/// takes up to 64 at once) go back to the ring, in order and none lost,
/// when the ring's backend is removed and when the device is closed: the
/// tap's own reader gets them.
fn rx_batch_given_back(obs: &mut Obs, _: &Ctx) {
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let f = frames(&[60, 100, 1500, 64, 200, 70, 1000, 90], UNICAST, 7);
    for x in &f {
        n.tap.inject(x).ok();
    }
    sleep_ms(200);
    post_rx(&mut n, 2, 2048);
    let p = rx_collect(&mut n, 2, WAIT, 12);
    rx_record(obs, &n, "first two", &p, &f[..2], 12);
    obs.ret("SET_BACKEND 0 -1", set_backend(&n, 0, -1));
    tap_drained(obs, &n.tap, "after detach", &f[2..]);
    // again, then close the device with frames taken
    obs.ret("SET_BACKEND 0 tap", set_backend(&n, 0, n.tap.fd.raw()));
    let g = frames(&[300, 61, 1400, 77], UNICAST, 8);
    for x in &g {
        n.tap.inject(x).ok();
    }
    sleep_ms(200);
    post_rx(&mut n, 1, 2048);
    let p = rx_collect(&mut n, 1, WAIT, 12);
    rx_record(obs, &n, "then one", &p, &g[..1], 12);
    let Net { dev, tap, .. } = n;
    drop(dev);
    sleep_ms(100);
    tap_drained(obs, &tap, "after close", &g[1..]);
}

/// Used ids as a sorted list: with zerocopy, a chain reaches the used ring
/// when the stack releases its pages, so the order depends on timing.
fn used_ids_sorted(used: &[Used]) -> String {
    let mut ids: Vec<u32> = used.iter().map(|u| u.id).collect();
    ids.sort_unstable();
    format!("{} entries, ids {:?}", ids.len(), ids)
}

/// `experimental_zcopytx=1`: TX from the guest's pages, completed through
/// the ubuf callback. Frames around the 256-byte threshold, a burst that
/// wraps the 1024 slots and meets the in-flight bound, then the device
/// closed with packets just posted (release waits for the callbacks).
fn zcopy_tx(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    if let Err(e) = ctx.reload("experimental_zcopytx=1") {
        return obs.fail(e);
    }
    obs.val("parameter", ctx.param("experimental_zcopytx"));
    let Some(mut n) = Net::new(obs, "", Cfg::default()) else {
        return;
    };
    let h = n.zero_hdr();
    // The capture socket holds a frame's skb until the test reads it. Until
    // 6.17 the stack copied zerocopy pages for it (the callback reports
    // zerocopy failed); since, an AF_PACKET tap keeps the guest's pages, so
    // the buffer is used only once its frame was read: every step reads
    // what it captures before it waits for used entries, as a real
    // consumer would (on 6.12 the order makes no difference).
    // 1: both sides of the threshold
    let f = frames(&[60, 255, 256, 257, 1000, 1514], PEER, 1);
    tx_post(&mut n, &f, &h);
    tx_capture(obs, &n, "sizes", 1, &f);
    let used = n.tx.wait_used(&n.mem, f.len(), WAIT);
    obs.val("sizes used", used_ids_sorted(&used));
    // 2: 200 frames in chunks of 64, captured (on 6.12 the capture copies
    // the pages, the callback reports zerocopy failed, and the ring falls
    // back to copying for a while, as C's heuristic says)
    let sizes: Vec<usize> = (0..200).map(|i| 300 + (i * 37) % 1200).collect();
    let mut got = Vec::new();
    let (used_n, all) = zcopy_burst(obs, &mut n, &h, &sizes, 2, Some(&mut got));
    obs.val("burst used", used_n);
    obs.val("burst captured", got.len());
    obs.check(
        got == all,
        "burst: the frames captured are the frames sent, in order",
    );
    // 3: 1300 frames with nobody capturing: the stack drops them without
    // copying, every callback reports success, the slots wrap and the
    // in-flight bound holds the ring back
    // SAFETY: plain syscall with integer arguments; the new descriptor is owned by the `Fd`.
    n.tap.cap = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) });
    let before: u64 = n.tap.stat("rx_packets").parse().unwrap_or(0);
    let sizes: Vec<usize> = (0..1300).map(|i| 256 + (i * 53) % 1300).collect();
    let (used_n, _) = zcopy_burst(obs, &mut n, &h, &sizes, 4, None);
    let after: u64 = n.tap.stat("rx_packets").parse().unwrap_or(0);
    obs.val("uncaptured burst used", used_n);
    obs.val("uncaptured burst tap rx_packets", after - before);
    // 4: close with a chunk just posted. The C module leaks its 128-byte
    // ubuf counter when a device is closed with a zerocopy TX backend
    // attached (vhost_net_release resets nvq->ubufs without freeing it; the
    // debug kernel's kmemleak reports it), so on C the rings are detached
    // first; ours is closed as QEMU killed mid-traffic would close it
    // (Documentation/differences.rst).
    let fr: Vec<Vec<u8>> = (0..32).map(|i| frame(1400, PEER, 3, i, None)).collect();
    tx_post(&mut n, &fr, &h);
    if ctx.imp() == modules::Impl::C {
        let _ = set_backend(&n, 1, -1);
        let _ = set_backend(&n, 0, -1);
    }
    drop(n);
    obs.val("closed with packets posted", "ok");
}

/// Zerocopy completions that wrap the 1024 slots in one go: C publishes
/// the chains up to slot 1023 and those from slot 0 in two calls of
/// `vhost_add_used_and_signal_n`, so without EVENT_IDX the guest gets two
/// interrupts (with it, the guest's `used_event` picks at most one of
/// them). 1020 uncaptured frames bring the slots to the end; 8 more are
/// held by a capture socket (since 6.17 an AF_PACKET tap keeps the
/// guest's pages until the frame is read) and released together when it
/// is closed: only the last release wakes the worker (C's `cnt <= 1`).
/// On 6.12 the capture copies the pages, so nothing is held: C and ours
/// are compared there too, without a wrap in one go. The module once
/// published the 8 in one call: one interrupt where C gives two.
fn zcopy_wrap_signals(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    if let Err(e) = ctx.reload("experimental_zcopytx=1") {
        return obs.fail(e);
    }
    for event_idx in [false, true] {
        let p = if event_idx {
            "event_idx "
        } else {
            "no event_idx "
        };
        let cfg = Cfg {
            event_idx,
            ..Cfg::default()
        };
        let Some(mut n) = Net::new(obs, p, cfg) else {
            return;
        };
        let h = n.zero_hdr();
        // SAFETY: plain syscall with integer arguments; the new descriptor is owned by the `Fd`.
        n.tap.cap = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) });
        let (used_n, _) = zcopy_burst(obs, &mut n, &h, &[300; 1020], 5, None);
        obs.val(format!("{p}uncaptured used"), used_n);
        n.tap.cap = match n.tap.new_capture() {
            Ok(c) => c,
            Err(e) => return obs.fail(e),
        };
        sleep_ms(50);
        eventfd_take(&n.tx.call);
        let fr: Vec<Vec<u8>> = (0..8).map(|i| frame(300, PEER, 6, i, None)).collect();
        let sent = |n: &Net| n.tap.stat("rx_packets").parse::<u64>().unwrap_or(0);
        let before = sent(&n);
        tx_post(&mut n, &fr, &h);
        // tun counts the 8 as they come in (not a flush: C's would wait
        // for the pages the capture holds), then their completions.
        let deadline = Instant::now() + Duration::from_millis(WAIT);
        while sent(&n) < before + 8 && Instant::now() < deadline {
            sleep_ms(10);
        }
        sleep_ms(300);
        let held = 8 - n.tx.take_used(&n.mem).len();
        obs.val(format!("{p}held by the capture socket"), held);
        let calls = eventfd_take(&n.tx.call);
        // SAFETY: plain syscall with integer arguments; the new descriptor is owned by the `Fd`.
        n.tap.cap = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) });
        // Not `wait_used`, which takes the interrupts it waits on.
        let deadline = Instant::now() + Duration::from_millis(WAIT);
        let mut used = n.tx.take_used(&n.mem).len();
        while used < held && Instant::now() < deadline {
            sleep_ms(20);
            used += n.tx.take_used(&n.mem).len();
        }
        sleep_ms(100);
        obs.val(format!("{p}used once released"), used);
        obs.val(
            format!("{p}interrupts (sending, releasing)"),
            format!("{calls}, {}", eventfd_take(&n.tx.call)),
        );
    }
}

/// C's TX ring keeps one `done_idx` for zerocopy (its slot cursor) and for
/// the copy path (its batch count), and `VHOST_NET_SET_BACKEND` resets
/// neither: after k zerocopy packets on a tap, the first copy round on an
/// AF_PACKET socket (not zerocopy-capable) publishes `heads[0..k)` again,
/// chains the guest had back already, before the new one
/// (Documentation/differences.rst, "Upstream bugs we do not reproduce";
/// the key is allowed to differ). Ours keeps the two apart: one entry.
fn zcopy_then_af_packet(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    if let Err(e) = ctx.reload("experimental_zcopytx=1") {
        return obs.fail(e);
    }
    let tap = match Tap::new(None, 1500) {
        Ok(t) => t,
        Err(e) => return obs.fail(e),
    };
    let Some(mut n) = net_hdr_net(obs, tap) else {
        return;
    };
    let h = n.zero_hdr();
    // Three frames from the guest's pages, released at once (nobody
    // captures them).
    // SAFETY: plain syscall with integer arguments; the new descriptor is owned by the `Fd`.
    n.tap.cap = Fd(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) });
    tx_post(&mut n, &frames(&[300, 300, 300], PEER, 7), &h);
    let used = n.tx.wait_used(&n.mem, 3, WAIT);
    obs.val("tap: used ids", used_ids_sorted(&used));
    let (pk, _l) = match af_packet_backend("d2za", "d2zb") {
        Ok(x) => x,
        Err(e) => return obs.fail(e),
    };
    obs.ret("SET_BACKEND tx AF_PACKET", set_backend(&n, 1, pk.fd.raw()));
    tx_post(&mut n, &frames(&[300], PEER, 8), &h);
    // The same socket again waits for the kicked round (a flush; nothing
    // is zerocopy on AF_PACKET).
    obs.ret(
        "SET_BACKEND tx AF_PACKET again (flush)",
        set_backend(&n, 1, pk.fd.raw()),
    );
    let used = n.tx.take_used(&n.mem);
    let ids: Vec<u32> = used.iter().map(|u| u.id).collect();
    obs.val("AF_PACKET: used ids", format!("{ids:?}"));
    obs.val(
        "AF_PACKET: the new chain used",
        used.iter().any(|u| !u.chain.bufs.is_empty()),
    );
    // C leaks its ubuf counter on release with a zerocopy backend
    // attached (see zcopy_tx): detach first.
    let _ = set_backend(&n, 1, -1);
    let _ = set_backend(&n, 0, -1);
}

/// Sends frames of `sizes` (tag `tag`) in chunks of 64, waiting for each
/// chunk's used entries; with `capture`, first reads the chunk's frames
/// from the capture socket into it. Returns how many were used and the
/// frames.
fn zcopy_burst(
    obs: &mut Obs,
    n: &mut Net,
    h: &[u8],
    sizes: &[usize],
    tag: u8,
    mut capture: Option<&mut Vec<Vec<u8>>>,
) -> (usize, Vec<Vec<u8>>) {
    let mut all = Vec::new();
    let mut used_n = 0;
    for (c, chunk) in sizes.chunks(64).enumerate() {
        let fr: Vec<Vec<u8>> = chunk
            .iter()
            .enumerate()
            .map(|(i, &s)| frame(s, PEER, tag, (c * 64 + i) as u32, None))
            .collect();
        tx_post(n, &fr, h);
        if let Some(got) = capture.as_deref_mut() {
            let want = got.len() + fr.len();
            while got.len() < want {
                match cap_tag(&n.tap, tag, 3000) {
                    Some(x) => got.push(x),
                    None => break,
                }
            }
        }
        let used = n.tx.wait_used(&n.mem, fr.len(), WAIT);
        used_n += used.len();
        if used.len() != fr.len() {
            obs.fail(format!(
                "burst {tag} chunk {c}: {} of {} used",
                used.len(),
                fr.len()
            ));
            break;
        }
        all.extend(fr);
    }
    (used_n, all)
}
