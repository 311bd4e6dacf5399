//! compat_ioctl: a 32-bit client (tests/compat/compat32.c, built with
//! `gcc -m32 -static` by scripts/vm/vmcheck.sh, installed as /bin/compat32)
//! runs the ioctl contract through the kernel's 32-bit syscall entry.
//! Each line it prints is one observation, so the C module's transcript and
//! ours must be equal line by line. It covers every ioctl vhost-net answers
//! (valid and invalid arguments, bad pointers), foreign vhost numbers, and
//! the IOTLB `write`/`read`/`poll` interface, whose `struct vhost_msg` is
//! 68 bytes on i386 but 72 in the kernel.

use crate::harness::{Ctx, Kind, Obs, Test};
use std::process::Command;

const BIN: &str = "/bin/compat32";
const BUILD_ERROR: &str = "/etc/compat32.build-error";

pub fn tests() -> Vec<Test> {
    vec![Test {
        name: "compat32_ioctl_transcript",
        kind: Kind::Diff,
        timeout: 60,
        f: compat32_ioctl_transcript,
    }]
}

fn compat32_ioctl_transcript(obs: &mut Obs, _ctx: &Ctx) {
    if let Ok(why) = std::fs::read_to_string(BUILD_ERROR) {
        obs.fail(format!("the 32-bit client was not built: {why}"));
        return;
    }
    let out = match Command::new(BIN).output() {
        Ok(out) => out,
        Err(e) => {
            obs.fail(format!("cannot run {BIN}: {e}"));
            return;
        }
    };
    obs.val("exit status", format!("{:?}", out.status.code()));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        obs.val(format!("{i:02} {key}"), value);
        lines += 1;
    }
    obs.check(
        text.contains("pointer_bits=32"),
        "the client is a 32-bit process",
    );
    obs.check(
        text.contains("SET_OWNER=0"),
        "SET_OWNER works for a 32-bit owner",
    );
    obs.check(
        text.contains("sizeof vhost_msg=68"),
        "the client sees the i386 layout of struct vhost_msg",
    );
    obs.check(
        lines > 150 && text.contains("SET_LOG_FD after reset="),
        "the whole transcript ran",
    );
}
