#!/usr/bin/env bash
# rustfmt over the module (kernel style) and the test crates.
# Usage: fmt.sh check|fix
set -euo pipefail
. "$(dirname "$0")/env.sh"
mode=${1:-check}
flag=--check
[ "$mode" = fix ] && flag=
src=$(cat "$(kernel_dir release)/.vhost-source")
cd "$REPO"
# The kernel's rustfmt config; Debian's rustfmt matches the kernel's rustc.
/usr/bin/rustfmt $flag --config-path "$src/.rustfmt.toml" src/vhost_net_main.rs
for crate in tests/*/ bench/*/; do
    [ -f "$crate/Cargo.toml" ] || continue
    (cd "$crate" && cargo fmt $flag)
done
