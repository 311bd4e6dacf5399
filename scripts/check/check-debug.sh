#!/usr/bin/env bash
# `make check-debug`: the VM suite (the C vhost_net and ours, same boot) on
# the debug kernel (kconfig/debug.config: KASAN, lockdep, atomic-sleep and
# list debugging, kmemleak, hung tasks, UBSAN). Any kernel report in the
# console log fails the run (scripts/vm/check-kernel-log.sh); /init triggers a
# kmemleak scan after the suite and prints the result, and this script
# checks that the scan ran.
#
# Usage: check-debug.sh [--hostile | --soak]
#   (none)     every test
#   --hostile  only the hostile-guest and hostile-process tests
#              (hostile_*, process_*), as `make check` runs them
#   --soak     only the long random ioctl sequence (process_fuzz_soak)
# Environment: VMCHECK_OUT (default build/vmcheck-debug), VMCHECK_TIMEOUT
#   (default 3600), VMTEST_ARGS (appended).
#
# Our module is built against the debug kernel in build/debug-module (a
# copy of Kbuild and src/), never at the repository root, where the
# release module lives. The last line is "<n> passed, <m> failed".
set -uo pipefail
. "$(dirname "$0")/../build/env.sh"
cd "$REPO"
start=$(date +%s)

filter=""
case "${1:-}" in
    "") ;;
    --hostile) filter="--filter hostile_ --filter process_" ;;
    --soak) filter="--filter process_fuzz_soak" ;;
    *) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

fail() { echo "check-debug: $*"; echo "0 passed, 1 failed"; exit 1; }

t0=$(date +%s)
kdir=$(scripts/build/kernel.sh debug) || fail "the debug kernel did not build"
echo "check-debug: debug kernel $kdir ($(( $(date +%s) - t0 )) s)"

# The module, against exactly this kernel (lockdep changes lock sizes).
mdir=$REPO/build/debug-module
mkdir -p "$mdir"
rsync -a --delete --exclude '*.o' --exclude '.*.cmd' --exclude '*.rmeta' \
    --exclude '*.d' --exclude '*.mod' --exclude '*.mod.c' --exclude '*.ko' \
    "$REPO/Kbuild" "$REPO/src" "$mdir/" || fail "copying the module sources"
t0=$(date +%s)
if ! make -C "$kdir" M="$mdir" "${KMAKE_ARGS[@]}" -j"$NPROC" modules \
        >"$mdir/build.log" 2>&1; then
    tail -n 40 "$mdir/build.log"
    fail "the module did not build against the debug kernel ($mdir/build.log)"
fi
echo "check-debug: module $mdir/vhost_net_rs.ko ($(( $(date +%s) - t0 )) s)"

export VMCHECK_OUT=${VMCHECK_OUT:-$REPO/build/vmcheck-debug}
export VMCHECK_TIMEOUT=${VMCHECK_TIMEOUT:-3600}
export VMTEST_ARGS="$filter ${VMTEST_ARGS:-}"
vmlog=$(mktemp)
t0=$(date +%s)
scripts/vm/vmcheck.sh "$kdir" "$mdir/vhost_net_rs.ko" 2>&1 | tee "$vmlog"
rc=${PIPESTATUS[0]}
echo "check-debug: VM suite on the debug kernel took $(( $(date +%s) - t0 )) s"
totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$vmlog" | tail -n 1)
rm -f "$vmlog"
passed=${totals%% *}; passed=${passed:-0}
failed=${totals#*, }; failed=${failed%% *}; failed=${failed:-1}
# The kmemleak scan after the suite must have run (and found nothing:
# check-kernel-log.sh matches "unreferenced object").
# grep reads the file itself: `tr ... | grep -q` could fail under pipefail
# when grep exits at the match while tr still writes (SIGPIPE).
if ! grep -q 'vmtest-init: kmemleak scan done' "$VMCHECK_OUT/console.log"; then
    echo "check-debug: no kmemleak scan in $VMCHECK_OUT/console.log"
    failed=$((failed + 1))
fi
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "check-debug: the VM run failed (kernel report, timeout or crash); console log at $VMCHECK_OUT/console.log"
    failed=1
fi
echo "# check-debug took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
