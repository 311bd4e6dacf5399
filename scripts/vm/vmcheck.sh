#!/usr/bin/env bash
# Build the in-VM suite (tests/vmtest), the initramfs, boot the test kernel
# and run the suite against the C vhost_net and, if given, our module.
#
# Usage: vmcheck.sh KDIR [MODULE.ko]
#   KDIR       kernel build directory (`make -s kdir` prints it)
#   MODULE.ko  vhost_net_rs.ko; without it the "ours" side reports SKIP
# Environment:
#   VMTEST_ARGS      extra arguments for vmtest (e.g. "--filter owner --dump")
#   VMCHECK_TIMEOUT  hard timeout of the VM run in seconds (default 1500)
#   VMCHECK_OUT      work directory (default build/vmcheck in the repo)
#   VMTEST_ACCEL, VM_MEM, VM_SMP: see scripts/vm/vm.sh
#
# Prints the VM's console (the TAP stream of vmtest among kernel messages).
# The last line is "<n> passed, <m> failed" from the VM; when the run failed
# outside the tests (kernel report in the log, timeout, crash) one failure is
# added to it. Exit status 0 only if no test failed and the log is clean.
# Nothing is rebuilt when nothing changed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1
MODULE=${2:-}
OUT=${VMCHECK_OUT:-$REPO/build/vmcheck}
[ -f "$KDIR/.vhost-complete" ] || { echo "vmcheck: $KDIR is not a complete kernel build" >&2; exit 2; }
if [ -n "$MODULE" ] && [ ! -f "$MODULE" ]; then
    echo "vmcheck: $MODULE: no such file" >&2; exit 2
fi
mkdir -p "$OUT"

# 1. The suite, static.
TARGET=x86_64-unknown-linux-gnu
(cd "$REPO/tests/vmtest" &&
    RUSTFLAGS="-C target-feature=+crt-static" ${CARGO:-cargo} build --quiet --locked \
        --release --target "$TARGET") >&2
VMTEST=$REPO/tests/vmtest/target/$TARGET/release/vmtest

# 1b. Upstream's tools/virtio/vhost_net_test (static, cached), run by the
# suite's upstream_vhost_net_test_* tests as /bin/vhost_net_test. A failed
# build does not stop the run: its reason goes into the image, and those
# tests report it as failures.
EXTRA=()
VNT_ERR=$OUT/vhost_net_test.build-error
if VNT=$("$HERE/../build/build-vhost-net-test.sh" "$KDIR" "$OUT/vhost_net_test" 2>"$VNT_ERR.tmp"); then
    rm -f "$VNT_ERR" "$VNT_ERR.tmp"
    EXTRA+=(-f "$VNT:/bin/vhost_net_test")
else
    { echo "scripts/build/build-vhost-net-test.sh failed:"; tail -n 20 "$VNT_ERR.tmp"; } > "$VNT_ERR"
    rm -f "$VNT_ERR.tmp"
    echo "vmcheck: building vhost_net_test failed (the upstream tests will fail):" >&2
    cat "$VNT_ERR" >&2
    EXTRA+=(-f "$VNT_ERR:/etc/vhost_net_test.build-error")
fi

# The 32-bit client of the compat_ioctl test (/bin/compat32); a failed
# build is reported by that test, like vhost_net_test's above.
C32_ERR=$OUT/compat32.build-error
if gcc -m32 -static -O2 -Wall -Werror -I "$KDIR/usr/include" -o "$OUT/compat32" \
        "$REPO/tests/compat/compat32.c" 2>"$C32_ERR.tmp"; then
    rm -f "$C32_ERR" "$C32_ERR.tmp"
    EXTRA+=(-f "$OUT/compat32:/bin/compat32")
else
    { echo "gcc -m32 failed:"; tail -n 20 "$C32_ERR.tmp"; } > "$C32_ERR"
    rm -f "$C32_ERR.tmp"
    EXTRA+=(-f "$C32_ERR:/etc/compat32.build-error")
fi

# 2. The initramfs (a no-op when its inputs are unchanged).
"$HERE/initramfs.sh" -k "$KDIR" -o "$OUT/initramfs.cpio.gz" -b "$VMTEST" \
    ${MODULE:+-m "$MODULE"} "${EXTRA[@]}" -c vmtest

# 3. Boot and run.
LOG=$OUT/console.log
rc=0
"$HERE/vm.sh" -k "$KDIR" -i "$OUT/initramfs.cpio.gz" -t "${VMCHECK_TIMEOUT:-1500}" \
    -l "$LOG" -c "vmtest ${VMTEST_ARGS:-}" || rc=$?

# 4. The closing line.
summary=$(tr -d '\r' < "$LOG" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1 || true)
if [ -z "$summary" ]; then
    echo "# vmcheck: the suite printed no summary; console log at $LOG"
    echo "0 passed, 1 failed"
    exit 1
fi
passed=${summary%% passed*}
failed=${summary#*, }; failed=${failed%% failed}
if [ "$rc" != 0 ]; then
    echo "# vmcheck: the VM run failed (see vm.sh messages above); console log at $LOG"
    [ "$failed" != 0 ] || failed=1
fi
echo "$passed passed, $failed failed"
[ "$rc" = 0 ] && [ "$failed" = 0 ]
