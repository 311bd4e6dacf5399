#!/usr/bin/env bash
# Build the test VM's initramfs (gzip'ed newc cpio) around busybox.
#
# Usage: initramfs.sh -k KDIR -o OUT.cpio.gz [-m vhost_net_rs.ko] [-b vmtest]
#                     [-f SRC:DEST]... [-c 'default command']
#   -k KDIR  kernel build directory (holds the C modules), or a Debian
#            kernel dir (scripts/build/debian13.sh kernel: Debian's own
#            modules, .ko.xz, decompressed into the image so that busybox
#            insmod loads them)
#   -o OUT   output file; OUT.manifest is written beside it, and the image is
#            not rebuilt when the manifest (inputs' hashes; extra files' sizes
#            and mtimes) is unchanged
#   -m KO    our module, installed as /lib/vhost/vhost_net_rs.ko
#   -b BIN   the vmtest binary (static), installed as /bin/vmtest
#   -f S:D   an extra file or directory S, installed at D (repeatable)
#   -c CMD   command run by /init when the kernel command line has no
#            vmtest.cmd= (baked in as /etc/vmtest.cmd)
#   -B MODS  the base modules to load at boot, space-separated (default:
#            DEFAULT_BASE below, printed with this help)
#
# In the guest, /init mounts proc, sysfs, devtmpfs and /tmp, insmods the
# base modules (-B, as built, plus whatever the vhost modules depend on, in
# dependency order),
# runs the command given as vmtest.cmd=<base64> on the kernel command line
# (else /etc/vmtest.cmd; an interactive shell if there is none or the
# command line has vmtest.shell=1), prints
# "vmtest-exit-status=<rc>" to the kernel log and reboots (QEMU runs with
# -no-reboot, so it exits; the kernel has no ACPI to power off).
# The C oracle is at /lib/vhost/c/{vhost_iotlb,vhost,vhost_net}.ko.
# A kernel that ships pktgen as a module (Debian's) has it at
# /lib/pktgen.ko, where bench/vbench loads it, unless -f puts one there.
set -euo pipefail

# The backends and devices the VM suite uses, and what they depend on.
DEFAULT_BASE="tun tap macvlan macvtap veth llc stp bridge 8021q"
KDIR="" OUT="" OURS="" VMTEST="" CMD="" BASE_LIST=$DEFAULT_BASE
EXTRA=()
while getopts "k:o:m:b:f:c:B:h" opt; do
    case $opt in
        k) KDIR=$OPTARG ;;
        o) OUT=$OPTARG ;;
        m) OURS=$OPTARG ;;
        b) VMTEST=$OPTARG ;;
        f) EXTRA+=("$OPTARG") ;;
        c) CMD=$OPTARG ;;
        B) BASE_LIST=$OPTARG ;;
        *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d' >&2
           echo "DEFAULT_BASE: $DEFAULT_BASE" >&2; exit 2 ;;
    esac
done
[ -n "$KDIR" ] && [ -n "$OUT" ] || { echo "initramfs.sh: -k KDIR and -o OUT are required" >&2; exit 2; }
[ -f "$KDIR/.vhost-complete" ] || { echo "initramfs.sh: $KDIR is not a complete kernel build" >&2; exit 1; }
BUSYBOX=${BUSYBOX:-/bin/busybox}
# The image is assembled in another directory: make every path absolute.
abs() { realpath -m -- "$1"; }
KDIR=$(abs "$KDIR"); OUT=$(abs "$OUT")
[ -z "$OURS" ] || OURS=$(abs "$OURS")
[ -z "$VMTEST" ] || VMTEST=$(abs "$VMTEST")
for i in "${!EXTRA[@]}"; do
    e=${EXTRA[$i]}
    [ "${e%%:*}" != "$e" ] || { echo "initramfs.sh: -f wants SRC:DEST, got $e" >&2; exit 2; }
    [ -e "${e%%:*}" ] || { echo "initramfs.sh: ${e%%:*}: no such file" >&2; exit 1; }
    EXTRA[$i]=$(abs "${e%%:*}"):${e#*:}
done

# Base modules the VM loads at boot, when the kernel has built them.
read -r -a BASE <<<"$BASE_LIST"
VHOST_C=(vhost_iotlb vhost vhost_net)

# Modules as built (.ko) or as Debian ships them (.ko.xz, .ko.zst); a
# Debian kernel dir's source/ (and a build's source link) holds none.
declare -A KO=()
while IFS= read -r f; do
    n=$(basename "$f"); n=${n%.xz}; n=${n%.zst}; n=${n%.ko}
    KO[${n//-/_}]=$f
done < <(find "$KDIR" -path "$KDIR/source" -prune -o \
    \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' \) -not -path '*/.tmp*' -print)

for m in "${VHOST_C[@]}"; do
    [ -n "${KO[$m]:-}" ] || { echo "initramfs.sh: $m.ko not found in $KDIR" >&2; exit 1; }
done
[ -z "$OURS" ] || [ -f "$OURS" ] || { echo "initramfs.sh: $OURS: no such file" >&2; exit 1; }
[ -z "$VMTEST" ] || [ -f "$VMTEST" ] || { echo "initramfs.sh: $VMTEST: no such file" >&2; exit 1; }

deps_of() { modinfo -F depends "$1" | tr ',' ' '; }

# Topological order of the base modules plus the non-vhost dependencies of
# the vhost modules (C and ours).
declare -A SEEN=()
ORDER=()
visit() {
    local m=${1//-/_} d
    [ -n "${SEEN[$m]:-}" ] && return
    SEEN[$m]=1
    [ -n "${KO[$m]:-}" ] || { echo "initramfs.sh: module $m needed but not built in $KDIR" >&2; exit 1; }
    for d in $(deps_of "${KO[$m]}"); do visit "$d"; done
    ORDER+=("$m")
}
for m in "${BASE[@]}"; do
    if [ -n "${KO[$m]:-}" ]; then visit "$m"; else echo "initramfs.sh: note: $m.ko not built, not loaded" >&2; fi
done
for f in "${KO[vhost_net]}" ${OURS:+"$OURS"}; do
    for d in $(deps_of "$f"); do
        case ${d//-/_} in vhost|vhost_iotlb|vhost_net) ;; *) visit "$d" ;; esac
    done
done
# pktgen (bench/vbench) when the kernel ships it and no -f provides it.
PKTGEN=""
if [ -n "${KO[pktgen]:-}" ] && ! grep -q ':/*lib/pktgen.ko$' <<<"$(printf '%s\n' "${EXTRA[@]}")"; then
    PKTGEN=${KO[pktgen]}
    for d in $(deps_of "$PKTGEN"); do visit "$d"; done
fi

# Fast path: nothing changed since the last build.
manifest() {
    sha256sum "$0" | cut -d' ' -f1
    echo "cmd=$CMD"
    local f
    for m in "${ORDER[@]}" "${VHOST_C[@]}"; do echo "${KO[$m]}"; done
    sha256sum "$BUSYBOX" ${OURS:+"$OURS"} ${VMTEST:+"$VMTEST"} ${PKTGEN:+"$PKTGEN"} \
        $(for m in "${ORDER[@]}" "${VHOST_C[@]}"; do echo "${KO[$m]}"; done)
    for f in "${EXTRA[@]}"; do
        echo "extra $f"
        find -L "${f%%:*}" -printf '%p %s %T@\n' 2>/dev/null | sort
    done
}
new_manifest=$(manifest)
if [ -f "$OUT" ] && [ -f "$OUT.manifest" ] && [ "$(cat "$OUT.manifest")" = "$new_manifest" ]; then
    exit 0
fi

mkdir -p "$(dirname "$OUT")"
STAGE=$(mktemp -d "${OUT}.stage.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
cd "$STAGE"
mkdir -p bin dev proc sys tmp run etc root lib/base lib/vhost/c usr
ln -s bin sbin
ln -s ../bin usr/bin
ln -s ../bin usr/sbin
cp "$BUSYBOX" bin/busybox
for a in $("$BUSYBOX" --list); do
    [ -e "bin/$a" ] || ln -s busybox "bin/$a"
done
# The kernel opens /dev/console for init before devtmpfs is mounted.
mknod -m 600 dev/console c 5 1 2>/dev/null || true

# put_ko SRC DEST.ko: a module, decompressed (busybox insmod and
# finit_module without flags take only plain ELF).
put_ko() {
    case $1 in
        *.xz) xz -dc "$1" > "$2" ;;
        *.zst) zstd -q -dc "$1" > "$2" ;;
        *) cp "$1" "$2" ;;
    esac
}
for m in "${ORDER[@]}"; do
    n=$(basename "${KO[$m]}"); n=${n%.xz}; n=${n%.zst}
    put_ko "${KO[$m]}" "lib/base/$n"
    echo "$n" >> lib/base/order
done
touch lib/base/order
for m in "${VHOST_C[@]}"; do put_ko "${KO[$m]}" "lib/vhost/c/$m.ko"; done
[ -z "$PKTGEN" ] || put_ko "$PKTGEN" lib/pktgen.ko
[ -z "$OURS" ] || cp "$OURS" lib/vhost/vhost_net_rs.ko
[ -z "$VMTEST" ] || install -m 755 "$VMTEST" bin/vmtest
[ -z "$CMD" ] || printf '%s\n' "$CMD" > etc/vmtest.cmd
for e in "${EXTRA[@]}"; do
    src=${e%%:*} dst=${e#*:}
    mkdir -p "./$(dirname "$dst")"
    cp -a -L "$src" "./$dst"
done

cat > init <<'EOF'
#!/bin/sh
# vmtest /init: see scripts/vm/initramfs.sh.
export PATH=/bin HOME=/root TERM=${TERM:-vt100}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
exec </dev/console >/dev/console 2>&1
hostname vmtest
ip link set lo up 2>/dev/null

# Marks in the kernel log (timestamped; echo is a builtin) show where a
# slow boot spends its time.
echo "vmtest-init: mounted" > /dev/kmsg
init_failed=0
while read -r ko; do
    insmod "/lib/base/$ko" || { echo "vmtest-init: insmod $ko failed"; init_failed=1; }
done < /lib/base/order
echo "vmtest-init: base modules loaded" > /dev/kmsg

cmd=""
shell=0
for w in $(cat /proc/cmdline); do
    case "$w" in
        vmtest.cmd=*) cmd=$(echo "${w#vmtest.cmd=}" | base64 -d) ;;
        vmtest.shell=1) shell=1 ;;
    esac
done
[ -n "$cmd" ] || [ ! -f /etc/vmtest.cmd ] || cmd=$(cat /etc/vmtest.cmd)
[ "$shell" = 0 ] || cmd=""

cd /tmp
if [ -z "$cmd" ]; then
    echo "vmtest-init: no command; interactive shell (exit to power off)"
    setsid cttyhack sh
    rc=$?
else
    echo "vmtest-init: running: $cmd"
    sh -c "$cmd"
    rc=$?
fi
if [ -e /sys/kernel/debug/kmemleak ]; then
    # Objects younger than 5 s are never reported: let the last test's
    # allocations age, then scan twice (a leak must stay unreferenced).
    sleep 6
    echo scan > /sys/kernel/debug/kmemleak
    echo scan > /sys/kernel/debug/kmemleak
    echo "vmtest-init: kmemleak scan done"
    cat /sys/kernel/debug/kmemleak
fi
if [ "$rc" = 0 ] && [ "$init_failed" != 0 ]; then
    echo "vmtest-init: base modules failed to load"
    rc=99
fi
# Through the kernel log: written synchronously to the console, so the
# marker cannot be lost in a UART buffer at power-off.
echo "vmtest-exit-status=$rc" > /dev/kmsg
sync
# No ACPI in the test kernel: power-off would only halt. With -no-reboot,
# QEMU exits on the reset instead (Debian's kernel, with ACPI, too).
reboot -f
EOF
chmod 755 init

find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --owner=0:0 --quiet | gzip -1 > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
printf '%s\n' "$new_manifest" > "$OUT.manifest"
echo "initramfs.sh: wrote $OUT ($(du -h "$OUT" | cut -f1); base modules: ${ORDER[*]})" >&2
