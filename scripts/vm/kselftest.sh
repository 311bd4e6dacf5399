#!/usr/bin/env bash
# The in-VM suite in its kselftest form, end to end: the kernel source's
# kselftest framework builds and installs
# tools/testing/selftests/drivers/net/vhost_net_rs (in a scratch copy of the
# framework: the cached kernel source is not modified), and the test VM
# runs the installed run_kselftest.sh on KDIR's kernel (the runner writes
# to /dev/stdout, which the VM's devtmpfs lacks: the links are made first;
# it calls /usr/bin/timeout --foreground, which busybox's lacks: it goes, and
# vm.sh's timeout is the only one).
#
# Usage: kselftest.sh KDIR [MODULE.ko]
#   KDIR       a complete kernel build (`make -s kdir`, or
#              scripts/build/debian13.sh kernel); its source tree is
#              KDIR/.vhost-source
#   MODULE.ko  vhost_net_rs.ko (at /lib/vhost/vhost_net_rs.ko in the VM,
#              where the run script finds it when modinfo does not)
# Environment: VMTEST_ARGS (e.g. "--filter modinfo"), passed through
#   run_kselftest.sh to the run script; KSFT_OUT, the work directory
#   (default build/kselftest).
# Prints the console; exits 0 only if run_kselftest.sh printed its
# "# Totals:" with fail:0 and the VM run was clean.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 MODULE=${2:-}
OUT=${KSFT_OUT:-$REPO/build/kselftest}
src=$(cat "$KDIR/.vhost-source" 2>/dev/null) || { echo "kselftest: $KDIR/.vhost-source names no kernel source" >&2; exit 2; }
S=$src/tools/testing/selftests
rm -rf "$OUT/ksrc" "$OUT/ksft"
mkdir -p "$OUT/ksrc/tools/testing/selftests/drivers/net" "$OUT/ksrc/scripts"
cp "$src/Makefile" "$OUT/ksrc/"
cp "$src/scripts/subarch.include" "$OUT/ksrc/scripts/"
cp -r "$S/Makefile" "$S/lib.mk" "$S/run_kselftest.sh" "$S/kselftest_install.sh" "$S/kselftest" \
    "$S"/*.h "$OUT/ksrc/tools/testing/selftests/"
cp -r "$REPO/tools/testing/selftests/drivers/net/vhost_net_rs" "$OUT/ksrc/tools/testing/selftests/drivers/net/"
make -s -C "$OUT/ksrc/tools/testing/selftests" TARGETS=drivers/net/vhost_net_rs \
    VHOST_NET_RS_SRC="$REPO" install INSTALL_PATH="$OUT/ksft" >&2
"$HERE/initramfs.sh" -k "$KDIR" -o "$OUT/initramfs.cpio.gz" ${MODULE:+-m "$MODULE"} \
    -f "$OUT/ksft:/ksft" -c kselftest
rc=0
"$HERE/vm.sh" -k "$KDIR" -i "$OUT/initramfs.cpio.gz" -t "${VMCHECK_TIMEOUT:-1500}" -l "$OUT/console.log" \
    -c "for f in stdin:0 stdout:1 stderr:2; do [ -e /dev/\${f%:*} ] || ln -s /proc/self/fd/\${f#*:} /dev/\${f%:*}; done;
        rm -f /usr/bin/timeout;
        VMTEST_ARGS='${VMTEST_ARGS:-}' /ksft/run_kselftest.sh" || rc=$?
totals=$(tr -d '\r' < "$OUT/console.log" | grep -E '# Totals: pass:[0-9]+ fail:' | tail -n1 || true)
[ -n "$totals" ] || { echo "kselftest: no Totals line; console log at $OUT/console.log"; exit 1; }
echo "kselftest: ${totals##*# }"
[ "$rc" = 0 ] && [[ $totals == *" fail:0 "* ]]
