#!/usr/bin/env bash
# `make bench`: the data-path benchmark, our module side by side with the C
# vhost_net in the same boot of the test VM (tests/vmtest/src/bin/vbench.rs).
#
# Usage: bench.sh [KDIR [MODULE.ko]]   (default: the cached test kernel and
#                                       ./vhost_net_rs.ko)
# Environment:
#   BENCH_QUICK=1   smoke test for `make check`: 1 round, 300 packets a row;
#                   checks that every row is there and well formed; does not
#                   touch Documentation/
#   BENCH_ROUNDS    rounds (default 5; each row of a round runs on both
#                   modules back to back, C first in odd rounds: vbench --order)
#   BENCH_SECS      measured window of a row in seconds (default 1.5)
#   BENCH_ARGS      extra vbench arguments (e.g. "--tests tx --sizes 64")
#   BENCH_DOC=0     do not write Documentation/performance{.rst,/}
#   BENCH_OUT       work directory (default build/bench; VMCHECK_OUT too)
#   BENCH_TIMEOUT   hard timeout of the VM run (default 2400 s)
#   BENCH_QEMU=0    skip the nested QEMU rows (BENCH_QEMU_ROUNDS,
#                   BENCH_QEMU_MB: see scripts/bench-qemu.sh)
#   BENCH_KARGS     extra guest kernel arguments (default clocksource=tsc;
#                   scripts/vm/vm.sh passes the host's TSC frequency)
#   BENCH_PROFILE=1 instruction profile instead of timing (`make profile`;
#                   with BENCH_QUICK=1 the make check smoke test of it):
#                   QEMU runs tests/profile/tbprof.c, vbench marks each
#                   window, scripts/profile-report.py prints the guest
#                   kernel's instructions per packet by function, C beside
#                   ours (BENCH_PROFILE_TOP: rows shown, default 30); no
#                   report, no Documentation/, no QEMU rows; one CPU unless VM_SMP
#   BENCH_INSTR=0   no instruction rows (by default a second boot runs the
#                   rows once more under the make profile plugin, one CPU,
#                   and the table gets each row's guest kernel instructions
#                   per packet, all and the vhost module(s) alone;
#                   BENCH_INSTR_ROUNDS, default 3: batching moves a
#                   window's count by a few percent)
#   VMTEST_ACCEL, VM_MEM, VM_SMP: see scripts/vm/vm.sh
#
# Writes OUT/raw.csv (every row of every round), OUT/summary.csv (medians),
# prints the table (ours / C ratios) and, unless BENCH_QUICK or BENCH_DOC=0
# or BENCH_ARGS picks a subset of the rows (--tests, --sizes, --only),
# Documentation/performance.rst, Documentation/performance/{raw,summary}.csv
# and Documentation/performance/bench.png.
#
# Then the nested QEMU rows: a real guest with vhost=on over C and ours,
# and vhost=off (scripts/bench-qemu.sh; BENCH_QEMU=0 skips them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/build/env.sh"
KDIR=${1:-$("$HERE/build/kernel.sh" release)}
MODULE=${2:-$REPO/vhost_net_rs.ko}
OUT=${BENCH_OUT:-${VMCHECK_OUT:-$REPO/build/bench}}
QUICK=${BENCH_QUICK:-0}
PROFILE=${BENCH_PROFILE:-0}
[ -f "$KDIR/.vhost-complete" ] || { echo "bench: $KDIR is not a complete kernel build" >&2; exit 2; }
[ -f "$MODULE" ] || { echo "bench: $MODULE: no such file (build the module first)" >&2; exit 2; }
mkdir -p "$OUT"

# 1. The bench binary (in the suite's crate, sharing its driver), static.
TARGET=x86_64-unknown-linux-gnu
(cd "$REPO/tests/vmtest" &&
    RUSTFLAGS="-C target-feature=+crt-static" ${CARGO:-cargo} build --quiet --locked \
        --release --target "$TARGET" --bin vbench) >&2
BIN=$REPO/tests/vmtest/target/$TARGET/release

# 1b. pktgen.ko (vbench --injector pktgen): the test kernel leaves
# CONFIG_NET_PKTGEN off, so the module is built here from that kernel's
# own net/core/pktgen.c, as an external module (a few seconds), rather
# than changing the kernel's configuration and with it both cached builds.
PKTGEN_DIR=$OUT/pktgen
mkdir -p "$PKTGEN_DIR"
cp "$(readlink -f "$KDIR/source")/net/core/pktgen.c" "$PKTGEN_DIR/"
echo 'obj-m := pktgen.o' > "$PKTGEN_DIR/Kbuild"
make -C "$KDIR" M="$PKTGEN_DIR" "${KMAKE_ARGS[@]}" -j"$NPROC" modules >"$PKTGEN_DIR/build.log" 2>&1 ||
    { cat "$PKTGEN_DIR/build.log" >&2; echo "bench: pktgen.ko did not build" >&2; exit 1; }

# 2. The image: the test VM's image with /bin/vbench (and no vmtest).
"$HERE/vm/initramfs.sh" -k "$KDIR" -o "$OUT/initramfs.cpio.gz" \
    -m "$MODULE" -f "$BIN/vbench:/bin/vbench" -f "$PKTGEN_DIR/pktgen.ko:/lib/pktgen.ko" -c vbench

# 3. One boot: every round of both modules.
# Only warnings and worse on the console (kernel reports are still seen):
# module load messages must not cut the result lines. vbench's own lines
# are shown as they come.
# The TSC frequency comes from the host (scripts/vm/vm.sh); the timing needs
# it as the clocksource too.
KARGS=${BENCH_KARGS-clocksource=tsc}
run_vbench() { # run_vbench DIR ARGS: a boot running vbench ARGS; DIR/console.log, DIR/raw.csv
    local dir=$1 args=$2 r
    mkdir -p "$dir"
    set +e
    "$HERE/vm/vm.sh" -k "$KDIR" -i "$OUT/initramfs.cpio.gz" -t "${BENCH_TIMEOUT:-2400}" \
        -l "$dir/console.log" ${KARGS:+-a "$KARGS"} \
        -c "echo 5 > /proc/sys/kernel/printk; vbench $args" 2>"$dir/vm.stderr" |
        sed -u -n 's/\r$//; /^vbench: /p'
    r=${PIPESTATUS[0]}
    set -e
    cat "$dir/vm.stderr" >&2
    tr -d '\r' < "$dir/console.log" | sed -n 's/^vbench-header,//p' | head -n1 > "$dir/raw.csv"
    tr -d '\r' < "$dir/console.log" | sed -n 's/^vbench-row,//p' >> "$dir/raw.csv"
    return "$r"
}
# An instruction profile: a boot with tests/profile/tbprof.c in QEMU, then
# its report (--csv PATH: each window's totals for make bench's table).
# An instruction count per translation block is exact under TCG, where
# perf has no hardware counters. A few blocks per window are counted
# before the window starts (their counts are zeroed by the mark).
# One CPU unless asked otherwise: on two, a spin lock's waiter counts the
# instructions of its spinning, which depend on timing (a latency window
# on 2026-12-01: 23174 in queued_spin_lock_slowpath per round trip for C,
# 8294 for ours), so totals no longer compare.
profile_pass() { # profile_pass DIR ARGS [report options]
    local dir=$1 args=$2 r=0 plugin
    shift 2
    mkdir -p "$dir"
    plugin=$(tbprof_args "$dir") || return 1
    VM_QEMU_ARGS=$plugin VM_SMP=${VM_SMP_PROFILE:-1} run_vbench "$dir" "$args --profile" || r=1
    /usr/bin/python3 "$HERE/profile-report.py" --log "$dir/console.log" --dumps "$dir/prof" \
        --system-map "$KDIR/System.map" --top "${BENCH_PROFILE_TOP:-30}" \
        $([ "$QUICK" = 1 ] && echo --check) "$@" || r=1
    return "$r"
}
if [ "$QUICK" = 1 ]; then
    ARGS="--quick"
else
    ARGS="--rounds ${BENCH_ROUNDS:-5} --secs ${BENCH_SECS:-1.5}"
fi
ARGS+=" ${BENCH_ARGS:-}"
if [ "$PROFILE" = 1 ]; then
    VM_SMP_PROFILE=${VM_SMP:-1} profile_pass "$OUT" "$ARGS" && exit 0
    exit 1
fi
rc=0
run_vbench "$OUT" "$ARGS" || rc=$?

# 3b. The instructions rows: the same rows once more in a second boot,
# profiled (above), on one CPU; their guest kernel instructions per packet
# (all of it, and the vhost module(s) alone) go into the table beside the
# timed rows. Exact and independent of host load, they tell apart what
# the timed rows cannot (on a shared host those vary 20-30% from window
# to window). BENCH_INSTR=0 skips them.
INSTR=
INSTR_LOG=
if [ "${BENCH_INSTR:-1}" = 1 ]; then
    INSTR_LOG=$OUT/instr/console.log
    if [ "$QUICK" = 1 ]; then
        IARGS="--quick"
    else
        IARGS="--rounds ${BENCH_INSTR_ROUNDS:-3} --secs 1"
    fi
    echo "bench: instruction rows (a second boot, profiled, one CPU)" >&2
    mkdir -p "$OUT/instr"
    if profile_pass "$OUT/instr" "$IARGS ${BENCH_ARGS:-}" --top 0 --csv "$OUT/instr.csv" \
        >"$OUT/instr/report.txt"; then
        INSTR=$OUT/instr.csv
    else
        cat "$OUT/instr/report.txt" >&2
        rc=1
    fi
fi

# 4. The nested QEMU rows (scripts/bench-qemu.sh: real guests with
# vhost=on over C and ours, and vhost=off), unless BENCH_QEMU=0. A failure
# there fails the bench but keeps the other rows.
qemu_rows() {
    [ "${BENCH_QEMU:-1}" = 1 ] || return 0
    local hook=${BENCH_QEMU_HOOK:-$HERE/bench-qemu.sh}
    "$hook" "$KDIR" "$MODULE" "$OUT/raw.csv" || rc=1
}
[ "$QUICK" = 1 ] || qemu_rows

# 5. The report.
REPORT=(/usr/bin/python3 "$HERE/bench-report.py" --raw "$OUT/raw.csv" --summary "$OUT/summary.csv"
        --accel "$(sed -n 's/.*booting .* (\([a-z]*\), \([0-9]*\) CPUs, \([0-9]*\) MiB.*/\1, \2 vCPUs, \3 MiB/p' "$OUT/vm.stderr" | head -n1)"
        --kernel "$(cat "$KDIR/include/config/kernel.release" 2>/dev/null || echo '?')"
        --args "$ARGS" ${INSTR:+--instr "$INSTR"})
if [ "$QUICK" = 1 ]; then
    REPORT+=(--check --rounds 1)
elif [ "${BENCH_DOC:-1}" = 1 ]; then
    REPORT+=(--doc "$REPO/Documentation" --rounds "${BENCH_ROUNDS:-5}")
fi
"${REPORT[@]}" || rc=1
if [ "$rc" != 0 ]; then
    echo "bench: FAILED (console log: $OUT/console.log${INSTR_LOG:+, $INSTR_LOG})" >&2
fi
exit "$rc"
