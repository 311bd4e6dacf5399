#!/usr/bin/env bash
# The nested QEMU rows of `make bench` (scripts/bench.sh calls it): one boot
# of the test VM in which tests/guest/outer-bench.sh starts a real QEMU
# guest with vhost=on over the C module, over ours, and with vhost=off, in
# rounds, and times a verified TCP transfer each way. Appends its
# vbench-row lines to RAW.csv.
#
# Usage: bench-qemu.sh KDIR MODULE.ko RAW.csv
# Environment:
#   BENCH_QEMU_ROUNDS  rounds (default 3; each boots three guests)
#   BENCH_QEMU_MB      MiB per transfer (default 16)
#   BENCH_QEMU_REPS    transfers each way per guest boot (default 3)
#   BENCH_QEMU_PIN     1: the guest's vCPU thread on one CPU, QEMU's other
#                      threads and the vhost worker on the other (default 0)
#   BENCH_QEMU_TSO     both senders' net.ipv4.tcp_min_tso_segs (default 0:
#                      the kernel's 2, packet sizes follow the rate; make
#                      profile-qemu: 44, about 64 KB; see outer-bench.sh)
#   BENCH_QUICK        1: the make check smoke test: fail unless every
#                      transfer gave a row (and, profiling, unless every
#                      row has windows counted in both modules)
#   BENCH_OUT          work directory (default build/bench; this uses qemu/)
#   BENCH_QEMU_TIMEOUT hard timeout of the VM run (default 3600 s)
#   BENCH_QEMU_PROFILE 1: an instruction profile instead of timing (`make
#                      profile-qemu`): the test VM runs tests/profile/tbprof.c
#                      counting user space too, each transfer is a window,
#                      and scripts/profile-report.py prints the outer guest's
#                      instructions per MiB by function, C beside ours
#                      (BENCH_PROFILE_TOP rows, default 30; more options in
#                      BENCH_PROFILE_ARGS, e.g. "--by-diff --calls")
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
. "$HERE/build/env.sh"
[ $# -eq 3 ] || { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 MODULE=$2 RAW=$3
OUT=${BENCH_OUT:-$REPO/build/bench}/qemu
mkdir -p "$(dirname "$RAW")"
mkdir -p "$OUT"
img=$("$HERE/vm/guest-image.sh" "$KDIR" "$OUT" "$(realpath "$MODULE")")
LOG=$OUT/console.log
PROFILE=${BENCH_QEMU_PROFILE:-0}
if [ "$PROFILE" = 1 ]; then
    VM_QEMU_ARGS=$(tbprof_args "$OUT" user=on)
    export VM_QEMU_ARGS
fi
set +e
VM_MEM=${VM_MEM:-3072} "$HERE/vm/vm.sh" -k "$KDIR" -i "$img" -t "${BENCH_QEMU_TIMEOUT:-3600}" -l "$LOG" \
    -c "/bin/guest-bench.sh ${BENCH_QEMU_ROUNDS:-3} ${BENCH_QEMU_MB:-16} ${BENCH_QEMU_REPS:-3} ${BENCH_QEMU_PIN:-0} $PROFILE ${BENCH_QEMU_TSO:-0}" 2>"$OUT/vm.stderr" |
    sed -u -n 's/\r$//; /^guest-bench: /p; /^vbench-row,/p'
rc=${PIPESTATUS[0]}
set -e
tr -d '\r' < "$LOG" | sed -n 's/^vbench-row,//p' >> "$RAW"
QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    # Three modes (c, ours, novhost), two directions, REPS each, per round.
    want=$(( ${BENCH_QEMU_ROUNDS:-3} * ${BENCH_QEMU_REPS:-3} * 6 ))
    got=$(tr -d '\r' < "$LOG" | grep -c '^vbench-row,[0-9]*,\(c\|ours\|novhost\),qemu_[gh]2[hg],' || true)
    [ "$got" = "$want" ] || { echo "bench-qemu: $got rows, expected $want" >&2; rc=1; }
fi
[ "$rc" = 0 ] || { cat "$OUT/vm.stderr" >&2; echo "bench-qemu: FAILED (console log: $LOG)" >&2; }
if [ "$PROFILE" = 1 ]; then
    /usr/bin/python3 "$HERE/profile-report.py" --log "$LOG" --dumps "$OUT/prof" \
        --system-map "$KDIR/System.map" --top "${BENCH_PROFILE_TOP:-30}" \
        $([ "$QUICK" = 1 ] && echo --check) ${BENCH_PROFILE_ARGS:-} || rc=1
fi
exit "$rc"
