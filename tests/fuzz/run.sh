#!/bin/sh
# Runs every cargo-fuzz target of tests/fuzz for SECONDS seconds each
# (default 20); exits non-zero if a target crashes.
#
# cargo-fuzz is installed once, pinned, into a cache directory. Only stable
# Rust is needed: RUSTC_BOOTSTRAP=1 lets it pass the -Z flags that
# cargo-fuzz uses. Set FUZZ_SANITIZER=none to run without AddressSanitizer
# (the core has no unsafe code, so ASan finds little; panics are what count).
#
# Overflow checks are on, as in the kernel: Debian builds its Rust kernels
# with CONFIG_RUST_OVERFLOW_CHECKS=y (and so does our test kernel, by
# default), so an unchecked `+`, `-` or `*` that overflows on guest input
# is a host panic there and must be a crash here. `--debug-assertions`
# passes -Cdebug-assertions, which turns overflow checks on, and the fuzz
# crate's release profile (Cargo.toml) asks for them too. The host tests
# (tests/unit, `cargo test`) run the same core in the dev profile, where
# overflow checks are on by default (and pinned in its Cargo.toml).
set -eu

SECONDS_PER_TARGET=${1:-20}
CARGO_FUZZ_VERSION=0.13.2
CACHE=${VHOST_CACHE:-/var/cache/vhost-net-rs}   # as scripts/build/env.sh
ROOT="$CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION"
SANITIZER=${FUZZ_SANITIZER:-address}

here=$(cd "$(dirname "$0")" && pwd)

if [ ! -x "$ROOT/bin/cargo-fuzz" ]; then
    echo "run.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION into $ROOT (once per machine, 2-5 minutes)" >&2
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root "$ROOT"
fi
PATH="$ROOT/bin:$PATH"
export PATH RUSTC_BOOTSTRAP=1
# Debian's rustc (rustc-web, used when no rustup is installed) ships no
# sanitizer runtime: without one, fuzz without ASan rather than fail to link.
if [ "$SANITIZER" = address ] &&
   ! ls "$(rustc --print sysroot)"/lib/rustlib/*/lib/librustc-*_rt.asan.a >/dev/null 2>&1; then
    echo "run.sh: $(rustc --version) has no AddressSanitizer runtime: fuzzing without it (panics and overflow checks still count)" >&2
    SANITIZER=none
fi

cd "$here"
targets=$(cargo fuzz list --fuzz-dir "$here")
[ -n "$targets" ] || { echo "run.sh: no fuzz targets found" >&2; exit 1; }
status=0
for target in $targets; do
    # libFuzzer writes new inputs into the first corpus directory; give it a
    # scratch one so the committed seeds stay as they are.
    work="$here/target/corpus-work/$target"
    mkdir -p "$work" "$here/corpus/$target"
    echo "run.sh: fuzzing $target for ${SECONDS_PER_TARGET}s" >&2
    if ! cargo fuzz run --fuzz-dir "$here" --sanitizer "$SANITIZER" --debug-assertions \
        "$target" "$work" "$here/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1; then
        echo "run.sh: $target FAILED; crash inputs are in $here/artifacts/$target" >&2
        status=1
    fi
done
exit $status
