//! What the module parameters `max_mem_regions` and `max_iotlb_entries`
//! mean: parameters of vhost.ko in C, of vhost_net_rs.ko in ours
//! (Documentation/differences.rst). Each test reloads the implementation
//! with values of its own, reads them back from sysfs, watches the memory
//! table and the device IOTLB obey them, and leaves the defaults loaded.

use super::ioctl_util::*;
use crate::harness::{Ctx, DefaultParams, Kind, Obs, Test};
use crate::uapi;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Diff,
        timeout: 120,
        f,
    };
    vec![
        t("params_two_regions_one_iotlb_entry", small_limits),
        t("params_iotlb_entries_not_positive", not_positive),
        t(
            "params_out_of_range_then_defaults",
            out_of_range_then_defaults,
        ),
    ]
}

const AP: u64 = 1 << uapi::VIRTIO_F_ACCESS_PLATFORM;
const U: u8 = uapi::VHOST_IOTLB_UPDATE;
const PARAMS: [&str; 2] = ["max_mem_regions", "max_iotlb_entries"];
/// Where ring 0's addresses point in IOVA space, and an IOVA range away
/// from them.
const RING_IOVA: u64 = 0x4000_0000;
const OTHER_IOVA: u64 = 0x8000_0000;

/// Reloads with `params` and records the outcome (the errno only: the
/// message names the module file) and the parameters read back.
fn reload(obs: &mut Obs, ctx: &Ctx, params: &str) -> bool {
    let r = ctx.reload(params);
    obs.val(
        format!("load {params:?}"),
        match &r {
            Ok(()) => "ok".to_string(),
            Err(e) => e.rsplit(": ").next().unwrap_or(e).to_string(),
        },
    );
    if r.is_ok() {
        for p in PARAMS {
            obs.val(format!("{params:?}: {p}"), ctx.param(p));
        }
    }
    r.is_ok()
}

/// Requires the parameters to read back as `want`.
fn want_params(obs: &mut Obs, ctx: &Ctx, want: [&str; 2]) {
    for (p, w) in PARAMS.into_iter().zip(want) {
        let got = ctx.param(p);
        obs.check(got == w, format!("{p} reads {got}, want {w}"));
    }
}

/// SET_MEM_TABLE with 0 to 3 regions, then RESET_OWNER (which builds an
/// empty table) and a table after it. `max` is the region count that must
/// still succeed (`None`: none succeeds, max_iotlb_entries is not positive).
fn region_counts(obs: &mut Obs, l: &str, max: Option<usize>) {
    let d = Dev::open();
    let m = Map::new(0x10000);
    let regs: Vec<uapi::VhostMemoryRegion> = (0..4u64)
        .map(|i| region(i * 0x4000, 0x4000, m.addr() + i * 0x4000))
        .collect();
    obs.ret_ok(format!("{l}: SET_OWNER"), d.owner());
    for n in 0..=3 {
        let k = format!("{l}: SET_MEM_TABLE {n} regions");
        match max {
            Some(max) if n <= max => obs.ret_ok(k, d.mem(&regs[..n])),
            Some(_) => obs.ret_err(k, d.mem(&regs[..n]), libc::E2BIG),
            None => obs.ret_err(k, d.mem(&regs[..n]), libc::EINVAL),
        }
    }
    // The count is checked before max_iotlb_entries.
    obs.ret_err(
        format!("{l}: SET_MEM_TABLE 0x10000 regions"),
        d.mem_raw(0x1_0000, 0, &regs[..1]),
        libc::E2BIG,
    );
    obs.ret(format!("{l}: RESET_OWNER"), d.reset());
    obs.ret(format!("{l}: SET_MEM_TABLE after"), d.mem(&regs[..1]));
}

/// A memory table that must be accessible (ring 0 has a backend) with a
/// kernel region first or last: a table of one entry keeps only the last
/// region, so the kernel region first is retired and the table accepted.
fn table_retires(obs: &mut Obs, l: &str, one_entry: bool) {
    let d = Dev::open();
    let rings = Rings::new();
    let tap = tap();
    obs.ret_ok(format!("{l}: SET_OWNER"), d.owner());
    rings.setup(obs, &d, 0, &format!("{l}: "));
    obs.ret_ok(format!("{l}: SET_BACKEND 0 tap"), d.backend(0, tap.raw()));
    let good = rings.table()[0];
    let kernel = region(0x10_0000, 0x1000, KERNEL_ADDR);
    let k = format!("{l}: SET_MEM_TABLE kernel region, then good");
    if one_entry {
        obs.ret_ok(k, d.mem(&[kernel, good]));
    } else {
        obs.ret_err(k, d.mem(&[kernel, good]), libc::EFAULT);
    }
    obs.ret_err(
        format!("{l}: SET_MEM_TABLE good region, then kernel"),
        d.mem(&[good, kernel]),
        libc::EFAULT,
    );
    obs.ret_ok(format!("{l}: SET_BACKEND 0 -1"), d.backend(0, -1));
}

/// Ring 0 at IOVAs with ACCESS_PLATFORM and MSG_V2; two UPDATEs of
/// disjoint ranges, the one of the rings `first` or second, then an attach
/// that needs the used ring's translation. An IOTLB of one entry keeps only
/// the second: with the rings' range first the attach misses on it.
fn iotlb_retires(obs: &mut Obs, l: &str, rings_first: bool, one_entry: bool) {
    let l = format!(
        "{l}, rings' range {}",
        if rings_first { "first" } else { "second" }
    );
    let d = Dev::open();
    let rings = Rings::new();
    let sock = socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
    obs.ret_ok(format!("{l}: SET_OWNER"), d.owner());
    obs.ret_ok(format!("{l}: SET_FEATURES ACCESS_PLATFORM"), d.features(AP));
    obs.ret_ok(
        format!("{l}: SET_BACKEND_FEATURES MSG_V2"),
        d.backend_features(1 << uapi::VHOST_BACKEND_F_IOTLB_MSG_V2),
    );
    obs.ret_ok(format!("{l}: SET_MEM_TABLE"), d.mem(&rings.table()));
    obs.ret_ok(
        format!("{l}: SET_VRING_NUM"),
        d.st_r(uapi::VHOST_SET_VRING_NUM, 0, RING_NUM),
    );
    obs.ret_ok(
        format!("{l}: SET_VRING_ADDR iova"),
        d.addr(vaddr_at(0, RING_IOVA)),
    );
    let ring_map = msg_v2(0, U, RING_IOVA, RING_AREA as u64, rings.m.addr(), 3);
    let other = msg_v2(0, U, OTHER_IOVA, 0x1000, rings.m.addr(), 3);
    let (a, b) = if rings_first {
        (ring_map, other)
    } else {
        (other, ring_map)
    };
    obs.ret_ok(format!("{l}: UPDATE 1"), d.write(&a));
    obs.ret_ok(format!("{l}: UPDATE 2"), d.write(&b));
    d.set_nonblock(true);
    let attach = d.backend(0, sock.raw());
    let (r, msg) = d.read(72);
    let k = format!("{l}: SET_BACKEND 0 packet");
    if one_entry && rings_first {
        obs.ret_err(k, attach, libc::EFAULT);
        let missed = msg
            .get(8..16)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap()));
        obs.check(
            missed == Some(RING_IOVA + USED_OFF as u64)
                && msg.get(33) == Some(&uapi::VHOST_IOTLB_MISS),
            format!("{l}: a miss for the used ring, got {}", msg_str(&msg)),
        );
    } else {
        obs.ret_ok(k, attach);
        obs.check(
            msg.is_empty(),
            format!("{l}: no message, got {}", msg_str(&msg)),
        );
    }
    obs.ret(format!("{l}: read"), r);
    obs.val(format!("{l}: message"), msg_str(&msg));
    obs.ret_ok(format!("{l}: SET_BACKEND 0 -1"), d.backend(0, -1));
}

/// Everything that depends on the limits, for `max_mem_regions` regions
/// and an IOTLB of one entry or of many.
fn limits(obs: &mut Obs, l: &str, max_regions: usize, one_entry: bool) {
    region_counts(obs, l, Some(max_regions));
    table_retires(obs, l, one_entry);
    iotlb_retires(obs, l, true, one_entry);
    iotlb_retires(obs, l, false, one_entry);
}

/// max_mem_regions=2: two regions are accepted, three are E2BIG.
/// max_iotlb_entries=1: the memory table and the device IOTLB each keep
/// their newest entry (VHOST_IOTLB_FLAG_RETIRE).
fn small_limits(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    let p = "max_mem_regions=2 max_iotlb_entries=1";
    if !reload(obs, ctx, p) {
        return obs.fail(format!("cannot load with {p}"));
    }
    want_params(obs, ctx, ["2", "1"]);
    limits(obs, "2 regions, 1 entry", 2, true);
}

/// max_iotlb_entries of 0 or less loads, but no map can be built: no memory
/// table (EINVAL), no device IOTLB (SET_FEATURES ACCESS_PLATFORM fails), no
/// RESET_OWNER (ENOMEM: it builds an empty table first).
fn not_positive(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    for v in ["0", "-1"] {
        let p = format!("max_iotlb_entries={v}");
        if !reload(obs, ctx, &p) {
            return obs.fail(format!("cannot load with {p}"));
        }
        want_params(obs, ctx, ["64", v]);
        region_counts(obs, &p, None);
        let d = Dev::open();
        let m = Map::new(0x1000);
        obs.ret_ok(format!("{p}: SET_OWNER"), d.owner());
        obs.ret_err(
            format!("{p}: SET_FEATURES ACCESS_PLATFORM"),
            d.features(AP),
            libc::EFAULT,
        );
        obs.ret(
            format!("{p}: V2 UPDATE"),
            d.write(&msg_v2(0, U, 0, 0x1000, m.addr(), 3)),
        );
        d.set_nonblock(true);
        obs.ret(format!("{p}: read"), d.read(72).0);
        obs.ret(format!("{p}: SET_FEATURES 0"), d.features(0));
    }
}

/// Values out of the parameters' types do not load; then the defaults
/// (64 regions, 2048 entries) and what they allow.
fn out_of_range_then_defaults(obs: &mut Obs, ctx: &Ctx) {
    let _restore = DefaultParams(ctx);
    for p in [
        "max_mem_regions=65536",
        "max_mem_regions=-1",
        "max_iotlb_entries=2147483648",
        "max_iotlb_entries=x",
    ] {
        if reload(obs, ctx, p) {
            obs.fail(format!("loaded with {p}"));
        }
    }
    if !reload(obs, ctx, "") {
        return obs.fail("cannot load without parameters");
    }
    want_params(obs, ctx, ["64", "2048"]);
    limits(obs, "defaults", 3, false);
}
