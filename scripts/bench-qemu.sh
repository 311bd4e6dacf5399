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
#   BENCH_OUT          work directory (default build/bench; this uses qemu/)
#   BENCH_QEMU_TIMEOUT hard timeout of the VM run (default 3600 s)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
[ $# -eq 3 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 MODULE=$2 RAW=$3
OUT=${BENCH_OUT:-$REPO/build/bench}/qemu
mkdir -p "$OUT"
img=$("$HERE/guest-image.sh" "$KDIR" "$OUT" "$(realpath "$MODULE")")
LOG=$OUT/console.log
set +e
VM_MEM=${VM_MEM:-3072} "$HERE/vm.sh" -k "$KDIR" -i "$img" -t "${BENCH_QEMU_TIMEOUT:-3600}" -l "$LOG" \
    -c "/bin/guest-bench.sh ${BENCH_QEMU_ROUNDS:-3} ${BENCH_QEMU_MB:-16} ${BENCH_QEMU_REPS:-3} ${BENCH_QEMU_PIN:-0}" 2>"$OUT/vm.stderr" |
    sed -u -n 's/\r$//; /^guest-bench: /p; /^vbench-row,/p'
rc=${PIPESTATUS[0]}
set -e
tr -d '\r' < "$LOG" | sed -n 's/^vbench-row,//p' >> "$RAW"
[ "$rc" = 0 ] || { cat "$OUT/vm.stderr" >&2; echo "bench-qemu: FAILED (console log: $LOG)" >&2; }
exit "$rc"
