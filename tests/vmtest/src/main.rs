//! vmtest: the in-VM test suite of vhost-net-rs.
//!
//! Runs every differential test against the kernel's C vhost_net (the
//! oracle) and against vhost_net_rs.ko, in the same boot, and compares what
//! userspace saw. Output is TAP (kselftest style) closed by
//! `<n> passed, <m> failed`.
//!
//! Usage: vmtest [--c-dir DIR] [--ours PATH.ko] [--filter SUBSTR]...
//!               [--skip SUBSTR]... [--list] [--dump] [--trace] [--self-diff]

mod driver;
mod harness;
mod modules;
mod sys;
mod tests;

#[allow(dead_code)]
#[path = "../../../src/vcore/uapi.rs"]
mod uapi;

// The served kernels' contracts: which feature words their C modules offer.
#[allow(dead_code)]
#[path = "../../../src/vcore/contract.rs"]
mod contract;

use harness::{compare, run_forked, Ctx, Kind, Obs, RunResult, Tap, Test};
use modules::{Impl, Paths};
use std::path::PathBuf;
use std::time::Instant;

struct Args {
    paths: Paths,
    filters: Vec<String>,
    skips: Vec<String>,
    list: bool,
    dump: bool,
    trace: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: vmtest [--c-dir DIR] [--ours PATH.ko] [--filter SUBSTR]... [--skip SUBSTR]...\n\
         \x20             [--list] [--dump] [--trace] [--self-diff]\n\
         defaults: --c-dir /lib/vhost/c --ours /lib/vhost/vhost_net_rs.ko\n\
         --filter   run only tests whose name contains SUBSTR\n\
         --skip     leave out tests whose name contains SUBSTR (after --filter)\n\
         --dump     print every observation of every run as # lines\n\
         --trace    mark each test's start in the kernel log (a hung test is named there)\n\
         --self-diff  harness check: the differential tests compare C with C"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut c_dir = PathBuf::from("/lib/vhost/c");
    let mut ours = PathBuf::from("/lib/vhost/vhost_net_rs.ko");
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut list = false;
    let mut dump = false;
    let mut trace = false;
    let mut self_diff = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--c-dir" => c_dir = it.next().unwrap_or_else(|| usage()).into(),
            "--ours" => ours = it.next().unwrap_or_else(|| usage()).into(),
            "--filter" => filters.push(it.next().unwrap_or_else(|| usage())),
            "--skip" => skips.push(it.next().unwrap_or_else(|| usage())),
            "--list" => list = true,
            "--dump" => dump = true,
            "--trace" => trace = true,
            "--self-diff" => self_diff = true,
            _ => usage(),
        }
    }
    // --self-diff stands "ours" in for C everywhere: the real ours is not used.
    let ours = (ours.exists() && !self_diff).then_some(ours);
    Args {
        paths: Paths {
            c_dir,
            ours,
            self_diff,
        },
        filters,
        skips,
        list,
        dump,
        trace,
    }
}

fn run_notes(tap: &Tap, label: &str, o: &Obs) {
    for n in &o.notes {
        tap.diag(&format!("{label}{n}"));
    }
}

fn dump(tap: &Tap, label: &str, o: &Obs) {
    for (k, v) in &o.entries {
        tap.diag(&format!("{label}{k} = {v}"));
    }
}

/// Waits up to a second for a module's reference count to drop to 0;
/// returns the count if it does not.
fn wait_idle(module: &str) -> Option<String> {
    let mut last = String::new();
    for _ in 0..50 {
        match modules::refcnt(module) {
            Ok(rc) if rc == "0" => return None,
            Ok(rc) => last = rc,
            Err(e) => return Some(format!("unreadable ({e})")),
        }
        sys::sleep_ms(20);
    }
    Some(last)
}

/// `--trace`: "vmtest-trace: [c|ours] NAME" into the kernel log, which is
/// timestamped and reaches the console even when the test then hangs (the
/// TAP lines come only after a whole phase).
fn trace(args: &Args, imp: &str, name: &str) {
    if args.trace {
        let _ = std::fs::write("/dev/kmsg", format!("vmtest-trace: {imp} {name}\n"));
    }
}

fn main() {
    let args = parse_args();
    let all = tests::all();
    let selected: Vec<&Test> = all
        .iter()
        .filter(|t| {
            (args.filters.is_empty() || args.filters.iter().any(|f| t.name.contains(f.as_str())))
                && !args.skips.iter().any(|f| t.name.contains(f.as_str()))
        })
        .collect();
    if args.list {
        for t in &selected {
            println!(
                "{} {}",
                if t.kind == Kind::Diff {
                    "diff   "
                } else {
                    "special"
                },
                t.name
            );
        }
        return;
    }
    let special: Vec<&Test> = selected
        .iter()
        .copied()
        .filter(|t| t.kind == Kind::Special)
        .collect();
    let diff: Vec<&Test> = selected
        .iter()
        .copied()
        .filter(|t| t.kind == Kind::Diff)
        .collect();
    let phases = if diff.is_empty() { 0 } else { 2 };
    // With every ioctl-contract test selected, their compared cases are
    // counted and must reach the floor (one more TAP line).
    let contract: Vec<&'static str> = tests::contract().iter().map(|t| t.name).collect();
    let whole_contract = contract.iter().all(|n| diff.iter().any(|t| t.name == *n));
    let mut tap = Tap::start(special.len() + diff.len() + phases + usize::from(whole_contract));
    tap.diag(&format!(
        "c modules: {}; ours: {}",
        args.paths.c_dir.display(),
        if args.paths.self_diff {
            "the C modules again (--self-diff)".to_string()
        } else {
            args.paths
                .ours
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "not built".into())
        }
    ));

    // The C oracle is the running kernel's: say which (6.12 test kernel,
    // Debian's 7.3).
    let (major, minor) = harness::kernel_version();
    tap.diag(&format!("kernel {major}.{minor}"));

    let (unloaded, errors) = modules::unload_all();
    if !unloaded.is_empty() || !errors.is_empty() {
        tap.diag(&format!(
            "before the tests: unloaded {unloaded:?}, errors {errors:?}"
        ));
    }

    // Special tests: no vhost module loaded before or after each.
    for t in &special {
        let ctx = Ctx {
            imp: None,
            paths: &args.paths,
        };
        trace(&args, "", t.name);
        let t0 = Instant::now();
        let r = run_forked(t, &ctx);
        tap.time(t.name, "", t0.elapsed());
        let (unloaded, errors) = modules::unload_all();
        let mut why = Vec::new();
        if !unloaded.is_empty() {
            why.push(format!("left modules loaded: {unloaded:?}"));
        }
        why.extend(errors);
        match r {
            RunResult::Crashed(e) => {
                why.insert(0, e);
                tap.not_ok(t.name, &why);
            }
            RunResult::Done(o) => {
                run_notes(&tap, "", &o);
                why.splice(0..0, o.failures.iter().cloned());
                if !why.is_empty() {
                    tap.not_ok(t.name, &why);
                } else if let Some(s) = &o.skip {
                    tap.skip(t.name, s);
                } else {
                    tap.ok(t.name);
                }
            }
        }
    }
    if diff.is_empty() {
        std::process::exit(tap.finish());
    }

    // Differential phases: C first, then ours.
    let mut results: Vec<[Option<RunResult>; 2]> = diff.iter().map(|_| [None, None]).collect();
    let mut phase_results = Vec::new();
    for (pi, imp) in [Impl::C, Impl::Ours].into_iter().enumerate() {
        let name = format!("phase_{}_load_run_unload", imp.label());
        if imp == Impl::Ours && !args.paths.has_ours() {
            phase_results.push((name, Err(None)));
            continue;
        }
        if let Err(e) = args.paths.load(imp) {
            for r in results.iter_mut() {
                r[pi] = Some(RunResult::Crashed(format!(
                    "{} not loaded: {e}",
                    imp.label()
                )));
            }
            phase_results.push((name, Err(Some(vec![format!("load: {e}")]))));
            continue;
        }
        let main_mod = args.paths.main_module(imp);
        let mut why = Vec::new();
        for (i, t) in diff.iter().enumerate() {
            if !modules::is_loaded(main_mod) {
                results[i][pi] = Some(RunResult::Crashed(format!(
                    "{main_mod} is no longer loaded"
                )));
                continue;
            }
            let ctx = Ctx {
                imp: Some(imp),
                paths: &args.paths,
            };
            trace(&args, imp.label(), t.name);
            let t0 = Instant::now();
            let mut r = run_forked(t, &ctx);
            tap.time(t.name, imp.label(), t0.elapsed());
            // The test's files are closed and its processes gone: the
            // module must be idle again, or this test leaked a reference.
            if let RunResult::Done(o) = &mut r {
                if let Some(rc) = wait_idle(main_mod) {
                    o.fail(format!(
                        "{main_mod} refcnt {rc} after the test: a reference leaked"
                    ));
                }
            }
            results[i][pi] = Some(r);
        }
        // Every file is closed and every test process gone: the module
        // must unload now, or a reference leaked.
        match modules::refcnt(main_mod) {
            Ok(rc) if rc != "0" => why.push(format!("{main_mod} refcnt {rc} after all tests")),
            _ => {}
        }
        if let Err(e) = args.paths.unload(imp) {
            why.push(format!("unload: {e}"));
        }
        phase_results.push((
            name,
            if why.is_empty() {
                Ok(())
            } else {
                Err(Some(why))
            },
        ));
    }

    let mut contract_cases = 0;
    let mut thin_tests: Vec<String> = Vec::new();
    for (i, t) in diff.iter().enumerate() {
        let [c, ours] = &results[i];
        let c = c.as_ref().expect("C phase always runs");
        let c_obs = match c {
            RunResult::Crashed(e) => {
                tap.not_ok(t.name, &[format!("c: {e}")]);
                continue;
            }
            RunResult::Done(o) => o,
        };
        if args.dump {
            dump(&tap, "c: ", c_obs);
            run_notes(&tap, "c: ", c_obs);
        }
        let mut why: Vec<String> = c_obs.failures.iter().map(|f| format!("c: {f}")).collect();
        let ours_obs = match ours {
            None => {
                run_notes(&tap, "c: ", c_obs);
                if why.is_empty() {
                    tap.skip(t.name, "ours: module not built");
                } else {
                    tap.not_ok(t.name, &why);
                }
                continue;
            }
            Some(RunResult::Crashed(e)) => {
                why.push(format!("ours: {e}"));
                tap.not_ok(t.name, &why);
                continue;
            }
            Some(RunResult::Done(o)) => o,
        };
        if args.dump {
            dump(&tap, "ours: ", ours_obs);
            run_notes(&tap, "ours: ", ours_obs);
        }
        why.extend(ours_obs.failures.iter().map(|f| format!("ours: {f}")));
        if contract.contains(&t.name) {
            let n = c_obs.entries.len().min(ours_obs.entries.len());
            contract_cases += n;
            if n < tests::CONTRACT_MIN_PER_TEST {
                thin_tests.push(format!("{}: {n}", t.name));
            }
        }
        let (diffs, notes) = match &c_obs.c_lacks {
            // C cannot run it: ours alone, by its own checks.
            Some(what) => (
                Vec::new(),
                vec![format!(
                    "{}: c lacks {what}: ours checked alone, not compared",
                    t.name
                )],
            ),
            None => compare(t.name, c_obs, ours_obs, tests::ALLOWED),
        };
        for n in notes {
            tap.diag(&n);
        }
        why.extend(diffs);
        if !why.is_empty() {
            run_notes(&tap, "c: ", c_obs);
            run_notes(&tap, "ours: ", ours_obs);
            tap.not_ok(t.name, &why);
        } else if let Some(s) = c_obs.skip.as_ref().or(ours_obs.skip.as_ref()) {
            tap.skip(t.name, s);
        } else {
            tap.ok(t.name);
        }
    }
    if whole_contract {
        let name = "ioctl_contract_case_count";
        tap.diag(&format!(
            "ioctl contract: {} tests, {contract_cases} cases compared between C and ours",
            contract.len()
        ));
        let mut why = Vec::new();
        if contract_cases < tests::CONTRACT_MIN_CASES {
            why.push(format!(
                "{contract_cases} compared cases, fewer than {}",
                tests::CONTRACT_MIN_CASES
            ));
        }
        if !thin_tests.is_empty() {
            why.push(format!(
                "tests with fewer than {} compared cases: {}",
                tests::CONTRACT_MIN_PER_TEST,
                thin_tests.join(", ")
            ));
        }
        if why.is_empty() {
            tap.ok(name);
        } else {
            tap.not_ok(name, &why);
        }
    }
    for (name, r) in phase_results {
        match r {
            Ok(()) => tap.ok(&name),
            Err(None) => tap.skip(&name, "module not built"),
            Err(Some(why)) => tap.not_ok(&name, &why),
        }
    }
    std::process::exit(tap.finish());
}
