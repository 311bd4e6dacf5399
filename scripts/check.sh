#!/usr/bin/env bash
# `make check`: set-up, kernel (cached), module with lints, formatting, host
# tests, the VM suite against both modules. The last line is the totals:
# "<n> passed, <m> failed". Exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
passed=0
failed=0
start=$(date +%s)

step() { # step NAME CMD...: one pass or one fail
    local name=$1; shift
    echo "=== $name"
    if "$@"; then
        echo "ok - $name"; passed=$((passed + 1))
    else
        echo "not ok - $name"; failed=$((failed + 1))
    fi
}

finish() {
    echo "# make check took $(( $(date +%s) - start )) s"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

step bootstrap scripts/bootstrap.sh || true
if ! kdir=$(scripts/kernel.sh release); then
    failed=$((failed + 1)); echo "not ok - test kernel"; finish
fi
passed=$((passed + 1)); echo "ok - test kernel ($kdir)"

step "module (CLIPPY=1, warnings are errors)" scripts/module.sh "$kdir"
step "rustfmt --check" scripts/fmt.sh check

# Host tests: every cargo test counts.
cargo_tests() { # cargo_tests DIR TITLE
    echo "=== host tests ($1: $2)"
    local out rc p f
    out=$(cd "$1" && cargo test --quiet 2>&1); rc=$?
    echo "$out" | grep -E '^test result:|FAILED|panicked' || true
    p=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | paste -sd+ | bc)
    f=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | paste -sd+ | bc)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
        echo "$out" | tail -n 30; failed=$((failed + 1))
    fi
}
cargo_tests tests/unit "src/core, property tests, no_std build with kernel lints"
cargo_tests tests/vmtest "harness, comparison, uapi layout"

# The VM suite: its last line is its own totals.
echo "=== VM suite (ours and the C vhost_net, same boot)"
if [ -f vhost_net_rs.ko ]; then
    vmlog=$(mktemp)
    scripts/vmcheck.sh "$kdir" "$REPO/vhost_net_rs.ko" 2>&1 | tee "$vmlog"
    vmrc=${PIPESTATUS[0]}
    totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$vmlog" | tail -n 1)
    rm -f "$vmlog"
    if [ -n "$totals" ]; then
        passed=$((passed + ${totals%% *}))
        f=${totals#*, }; failed=$((failed + ${f%% *}))
    fi
    if [ "$vmrc" -ne 0 ] && { [ -z "$totals" ] || [ "${f%% *}" -eq 0 ]; }; then
        echo "not ok - VM run (boot, timeout or kernel report)"; failed=$((failed + 1))
    fi
    step "bench smoke test (BENCH_QUICK=1: runs, well-formed output)" \
        env BENCH_QUICK=1 BENCH_OUT="$REPO/build/bench-quick" scripts/bench.sh "$kdir" "$REPO/vhost_net_rs.ko"
else
    echo "not ok - VM suite: the module was not built"; failed=$((failed + 1))
fi
finish
