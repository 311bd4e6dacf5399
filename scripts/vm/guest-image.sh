#!/usr/bin/env bash
# Build the images of the nested-QEMU scenarios (`make demo`,
# scripts/vm/guestcheck.sh, bench/bench's QEMU rows): the static helper, the inner guest's initramfs and
# the outer test VM's initramfs holding a real QEMU.
#
# Usage: guest-image.sh KDIR OUTDIR [MODULE.ko]
#   OUTDIR/nettool           tests/guest/nettool.c, gcc -static
#   OUTDIR/inner.cpio.gz     busybox, nettool, tests/guest/agent.sh as the
#                            command (scripts/vm/initramfs.sh; of the base
#                            modules only 8021q, for the VLAN test, and
#                            what vhost_net needs, tun and tap)
#   OUTDIR/outer.cpio.gz     scripts/vm/initramfs.sh with our module (if given),
#                            Debian's qemu-system-x86_64 and the libraries
#                            ldd lists (Debian 12's 7.2; for Debian's own
#                            kernel, KDIR/.vhost-debian, Debian 13's 10.x
#                            from the Debian 13 root: only it passes
#                            VIRTIO_F_IN_ORDER through), its firmware (/usr/share/qemu,
#                            /usr/share/seabios), its TCG accelerator module
#                            if this QEMU has one, KDIR's bzImage and
#                            inner.cpio.gz under /guest, tests/guest/*.sh
#                            (outer-{demo,check}.sh as /bin/guest-*.sh) and
#                            bench/guest-bench.sh as /bin/guest-bench.sh
# Each step is skipped when its inputs are unchanged. Prints OUTDIR/outer.cpio.gz.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -ge 2 ] && [ $# -le 3 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 OUT=$2 MODULE=${3:-}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
# Where QEMU and its files come from: this machine, or the Debian 13 root
# (QROOT, a prefix of every path; ldd runs inside it).
QROOT=""
INNER_BASE=8021q
if [ -f "$KDIR/.vhost-debian" ]; then
    QROOT=$("$REPO/scripts/build/debian13.sh" root)
    # Debian builds virtio_net as a module (the test kernel has it built in).
    INNER_BASE="virtio_net 8021q"
fi
QEMU_BIN=/usr/bin/qemu-system-x86_64
qldd() {
    if [ -n "$QROOT" ]; then "$REPO/scripts/build/debian13.sh" run ldd "$1"; else ldd "$1"; fi |
        grep -oE '/[^ ]+\.so[^ ]*' | sort -u
}

# 1. The helper.
src=$REPO/tests/guest/nettool.c
if [ ! -x "$OUT/nettool" ] || [ "$src" -nt "$OUT/nettool" ]; then
    gcc -O2 -Wall -Wextra -Werror -static -o "$OUT/nettool.tmp" "$src"
    mv "$OUT/nettool.tmp" "$OUT/nettool"
fi

# 2. The inner guest.
# Every module insmod'ed at boot costs the nested guests seconds.
"$HERE/initramfs.sh" -k "$KDIR" -o "$OUT/inner.cpio.gz" -B "$INNER_BASE" \
    -f "$OUT/nettool:/bin/nettool" -f "$REPO/tests/guest/agent.sh:/bin/agent.sh" \
    -c /bin/agent.sh

# 3. QEMU for the outer VM: the binary, its libraries, firmware, modules.
EXTRA=(-f "$QROOT$QEMU_BIN:/usr/bin/qemu-system-x86_64")
while read -r lib; do
    EXTRA+=(-f "$QROOT$lib:$lib")
done < <(qldd "$QEMU_BIN")
accel=/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so
if [ -f "$QROOT$accel" ]; then
    EXTRA+=(-f "$QROOT$accel:$accel")
    while read -r lib; do
        EXTRA+=(-f "$QROOT$lib:$lib")
    done < <(qldd "$accel")
fi
# /usr/share/qemu without its dangling links and other architectures'
# firmware; /usr/share/seabios holds the PC BIOS.
share=$OUT/share-qemu
rm -rf "$share.tmp"; mkdir -p "$share.tmp"
for f in "$QROOT"/usr/share/qemu/*; do
    [ -e "$f" ] || continue
    case ${f##*/} in
        openbios-*|slof.bin|skiboot.lid|s390-*|hppa-*|opensbi-*|palcode-*|*.dtb|u-boot*|QEMU,*|npcm7xx*|vof*) continue ;;
    esac
    cp -a -L "$f" "$share.tmp/"
done
if [ -d "$share" ] && diff -r "$share" "$share.tmp" >/dev/null 2>&1; then
    rm -rf "$share.tmp"
else
    rm -rf "$share"; mv "$share.tmp" "$share"
fi
EXTRA+=(-f "$share:/usr/share/qemu" -f "$QROOT/usr/share/seabios:/usr/share/seabios")
for f in lib.sh:/lib/guest/lib.sh outer-demo.sh:/bin/guest-demo.sh outer-check.sh:/bin/guest-check.sh; do
    EXTRA+=(-f "$REPO/tests/guest/${f%%:*}:${f#*:}")
done
# The nested QEMU rows of the benchmark (bench/bench) run this one.
EXTRA+=(-f "$REPO/bench/guest-bench.sh:/bin/guest-bench.sh")
EXTRA+=(-f "$OUT/nettool:/bin/nettool"
        -f "$KDIR/arch/x86/boot/bzImage:/guest/bzImage"
        -f "$OUT/inner.cpio.gz:/guest/initramfs.cpio.gz")
# GUEST_EXTRA="SRC:DEST ...": more files for the outer image (debugging).
for f in ${GUEST_EXTRA:-}; do EXTRA+=(-f "$f"); done
"$HERE/initramfs.sh" -k "$KDIR" -o "$OUT/outer.cpio.gz" ${MODULE:+-m "$MODULE"} "${EXTRA[@]}"
echo "$OUT/outer.cpio.gz"
