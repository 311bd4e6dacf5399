//! Special tests: they run with no vhost module loaded and load/unload the
//! modules themselves. They pass if they record no failure.

use super::basic::DEV;
use crate::harness::{Ctx, Kind, Obs, Test};
use crate::modules::{self, Impl, OURS_NAME};
use crate::sys::{self, ioctl_ptr};
use crate::uapi;

const CYCLES: usize = 5;

pub fn tests() -> Vec<Test> {
    let t = |name, f| Test {
        name,
        kind: Kind::Special,
        timeout: 300,
        f,
    };
    vec![
        t("modinfo_c", modinfo_c),
        t("modinfo_ours", modinfo_ours),
        t("load_unload_cycles_c", cycles_c),
        t("load_unload_cycles_ours", cycles_ours),
        t("ours_refused_beside_c", ours_refused_beside_c),
        t("c_refused_beside_ours", c_refused_beside_ours),
    ]
}

/// Requires /dev/vhost-net to be char 10:238 and to answer GET_FEATURES.
fn check_dev_present(obs: &mut Obs, what: &str) {
    match sys::stat(DEV) {
        Ok((mode, maj, min, _, _)) => {
            obs.check(
                mode & libc::S_IFMT == libc::S_IFCHR && maj == 10 && min == 238,
                format!("{what}: {DEV} is mode {mode:o} {maj}:{min}, want char 10:238"),
            );
        }
        Err(e) => {
            obs.fail(format!("{what}: stat {DEV}: {e}"));
            return;
        }
    }
    match sys::open(DEV, libc::O_RDWR) {
        Ok(fd) => {
            let mut f = 0u64;
            let r = ioctl_ptr(fd.raw(), uapi::VHOST_GET_FEATURES as u64, &mut f);
            obs.check(
                r == Ok(0) && crate::contract::KNOWN.iter().any(|c| c.features[0] == f),
                format!("{what}: GET_FEATURES {} features {f:#x}", sys::fmt_res(&r)),
            );
            let c = fd.close();
            obs.check(c.is_ok(), format!("{what}: close: {}", sys::fmt_res(&c)));
        }
        Err(e) => obs.fail(format!("{what}: open {DEV}: {e}")),
    }
}

fn check_dev_absent(obs: &mut Obs, what: &str) {
    match sys::stat(DEV) {
        Err(e) if e.0 == libc::ENOENT => {}
        Err(e) => obs.fail(format!("{what}: stat {DEV}: {e}, want ENOENT")),
        Ok(_) => obs.fail(format!("{what}: {DEV} still exists")),
    }
    obs.check(
        !sys::path_exists("/sys/class/misc/vhost-net"),
        format!("{what}: /sys/class/misc/vhost-net still exists"),
    );
}

fn cycles(obs: &mut Obs, ctx: &Ctx, imp: Impl) {
    let main = ctx.paths.main_module(imp);
    for i in 1..=CYCLES {
        let what = format!("{} cycle {i}", imp.label());
        if let Err(e) = ctx.paths.load(imp) {
            obs.fail(format!("{what}: load: {e}"));
            return;
        }
        obs.check(
            modules::is_loaded(main),
            format!("{what}: /sys/module/{main} missing"),
        );
        check_dev_present(obs, &what);
        if let Err(e) = ctx.paths.unload(imp) {
            obs.fail(format!("{what}: unload: {e}"));
            return;
        }
        obs.check(
            !sys::path_exists(&format!("/sys/module/{main}")),
            format!("{what}: /sys/module/{main} still exists after unload"),
        );
        check_dev_absent(obs, &what);
    }
    obs.note(format!("{CYCLES} load/unload cycles of {main}"));
}

fn cycles_c(obs: &mut Obs, ctx: &Ctx) {
    cycles(obs, ctx, Impl::C)
}

fn cycles_ours(obs: &mut Obs, ctx: &Ctx) {
    if ctx.paths.ours.is_none() {
        return obs.skip("module not built");
    }
    cycles(obs, ctx, Impl::Ours)
}

fn modinfo_check(obs: &mut Obs, path: &std::path::Path, ours: bool) {
    let info = match modules::modinfo(path) {
        Ok(i) => i,
        Err(e) => return obs.fail(e),
    };
    let has = |k: &str, v: &str| info.iter().any(|(a, b)| a == k && b == v);
    let get = |k: &str| info.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone());
    for (k, v) in &info {
        if matches!(k.as_str(), "name" | "alias" | "license" | "depends") {
            obs.note(format!("{k}={v}"));
        }
    }
    obs.check(
        has("alias", "char-major-10-238"),
        "no alias=char-major-10-238",
    );
    obs.check(
        has("alias", "devname:vhost-net"),
        "no alias=devname:vhost-net",
    );
    if ours {
        obs.check(
            get("license").is_some_and(|l| l.starts_with("GPL")),
            format!("license is {:?}, want GPL", get("license")),
        );
        obs.check(
            get("description").is_some_and(|d| !d.is_empty()),
            "no description",
        );
        obs.check(get("author").is_some_and(|d| !d.is_empty()), "no author");
        obs.check(
            get("name").as_deref() == Some(OURS_NAME),
            format!("name is {:?}", get("name")),
        );
        // Kbuild: git describe, or VHOST_NET_RS_VERSION / VERSION.
        obs.check(
            get("version").is_some_and(|v| !v.is_empty() && v != "unknown"),
            format!("version is {:?}", get("version")),
        );
    }
}

fn modinfo_c(obs: &mut Obs, ctx: &Ctx) {
    modinfo_check(obs, &ctx.paths.c_module("vhost_net"), false)
}

fn modinfo_ours(obs: &mut Obs, ctx: &Ctx) {
    match &ctx.paths.ours {
        None => obs.skip("module not built"),
        Some(p) => modinfo_check(obs, p, true),
    }
}

fn ours_refused_beside_c(obs: &mut Obs, ctx: &Ctx) {
    let Some(ours) = ctx.paths.ours.clone() else {
        return obs.skip("module not built");
    };
    if let Err(e) = ctx.paths.load(Impl::C) {
        return obs.fail(format!("load C: {e}"));
    }
    let kmsg = sys::kmsg_open_at_end();
    let r = sys::finit_module(&ours, "");
    obs.check(
        r == Err(sys::Errno(libc::EBUSY)),
        format!(
            "finit_module(ours) beside C: {}, want -1 EBUSY",
            sys::fmt_res(&r)
        ),
    );
    if r.is_ok() {
        let _ = modules::unload_one(OURS_NAME);
    }
    match kmsg {
        Ok(fd) => {
            let lines = sys::kmsg_drain(&fd);
            let hit = lines
                .iter()
                .find(|l| l.contains("vhost_net_rs") && l.contains("minor 238"));
            match hit {
                Some(l) => {
                    obs.note(format!("kmsg: {l}"));
                    // The line names who holds the minor (issue 25).
                    obs.check(
                        l.contains("the C vhost_net module is loaded"),
                        format!("the EBUSY line does not name the loaded C vhost_net: {l}"),
                    );
                }
                None => {
                    obs.fail("no /dev/kmsg line with \"vhost_net_rs\" and \"minor 238\"");
                    for l in lines.iter().take(10) {
                        obs.note(format!("kmsg: {l}"));
                    }
                }
            }
        }
        Err(e) => obs.fail(format!("open /dev/kmsg: {e}")),
    }
    obs.check(
        !sys::path_exists(&format!("/sys/module/{OURS_NAME}")),
        format!("/sys/module/{OURS_NAME} exists after the refused load"),
    );
    check_dev_present(obs, "C after refused load of ours");
    if let Err(e) = ctx.paths.unload(Impl::C) {
        obs.fail(format!("unload C: {e}"));
    }
}

fn c_refused_beside_ours(obs: &mut Obs, ctx: &Ctx) {
    if ctx.paths.ours.is_none() {
        return obs.skip("module not built");
    }
    if let Err(e) = ctx.paths.load(Impl::Ours) {
        return obs.fail(format!("load ours: {e}"));
    }
    // vhost_iotlb and vhost load fine; vhost_net's misc_register fails.
    for m in ["vhost_iotlb", "vhost"] {
        let r = sys::finit_module(&ctx.paths.c_module(m), "");
        obs.check(
            r.is_ok(),
            format!("finit_module({m}) beside ours: {}", sys::fmt_res(&r)),
        );
    }
    let r = sys::finit_module(&ctx.paths.c_module("vhost_net"), "");
    obs.check(
        r == Err(sys::Errno(libc::EBUSY)),
        format!(
            "finit_module(vhost_net) beside ours: {}, want -1 EBUSY",
            sys::fmt_res(&r)
        ),
    );
    obs.check(
        !modules::is_loaded("vhost_net"),
        "vhost_net is loaded beside ours",
    );
    check_dev_present(obs, "ours after refused load of C");
    for m in ["vhost_net", "vhost", "vhost_iotlb", OURS_NAME] {
        if let Err(e) = modules::unload_one(m) {
            obs.fail(e);
        }
    }
}
