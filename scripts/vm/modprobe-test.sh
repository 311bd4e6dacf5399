#!/usr/bin/env bash
# Which module answers /dev/vhost-net (issue 25, point 3), in the VM booted
# on Debian's own kernel, with Debian 13's own kmod (modprobe, depmod: from
# the Debian 13 root, with its shared libraries) and the modprobe.d file as
# the package ships it (taken out of the .deb):
#   A. vhost_net_rs.ko (the DKMS-built one) installed under updates/dkms:
#      "modprobe vhost_net", "modprobe char-major-10-238", "modprobe
#      devname:vhost-net" and the kernel's own request on opening
#      /dev/vhost-net (request_module, through /proc/sys/kernel/modprobe)
#      load ours, and not the C vhost_net;
#   B. the same with ours not built for the kernel (its file gone, depmod
#      run again): each loads Debian's C vhost_net.
# The VM's /init is busybox; Debian's kmod runs in a chroot (/kmodroot) with
# /lib/modules/<kver> holding Debian's vhost, vhost_iotlb, vhost_net, tun,
# tap (.ko.xz, as Debian ships them, with modules.builtin and
# modules.order) and ours; modules.dep is made in the VM by Debian's depmod
# (the test checks it is there).
# Usage: modprobe-test.sh DEBIAN_KDIR vhost_net_rs.ko DEB
#   DEBIAN_KDIR  scripts/build/debian13.sh kernel
#   DEB          the package (its /usr/lib/modprobe.d file is used)
# Last line: "<n> passed, <m> failed".
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -eq 3 ] || { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 KO=$(realpath "$2") DEB=$(realpath "$3")
read -r k _ <"$KDIR/.vhost-debian"
ROOT=$("$REPO/scripts/build/debian13.sh" root)
OUT=${MODPROBE_TEST_OUT:-$REPO/build/modprobe-test}
st=$OUT/kmodroot
rm -rf "$st"; mkdir -p "$st"/usr/{bin,sbin,lib64,lib/x86_64-linux-gnu,lib/modprobe.d} "$st"/{etc,proc,sys,dev,tmp,run}

# Debian's kmod and what it links.
for t in modprobe depmod rmmod lsmod modinfo kmod; do cp "$ROOT/usr/bin/kmod" "$st/usr/sbin/$t"; done
cp "${BUSYBOX:-/bin/busybox}" "$st/usr/bin/sh"     # the install rule runs under /bin/sh
for l in $(chroot "$ROOT" ldd /usr/bin/kmod | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    case $l in
        */ld-linux*) cp -L "$ROOT$l" "$st/usr/lib64/" ;;
        *) cp -L "$ROOT$l" "$st/usr/lib/x86_64-linux-gnu/" ;;
    esac
done
# kmod 34 opens its decompression libraries at run time (dlopen): ldd
# does not list them.
for l in liblzma.so.5 libzstd.so.1; do cp -L "$ROOT/usr/lib/x86_64-linux-gnu/$l" "$st/usr/lib/x86_64-linux-gnu/"; done
# The package's modprobe.d file, from the .deb itself.
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/lib/modprobe.d/vhost-net-rs.conf >"$st/usr/lib/modprobe.d/vhost-net-rs.conf"

# Debian's modules (the vhost ones and what they depend on), and ours.
src=$KDIR/root/usr/lib/modules/$k
dst=$st/usr/lib/modules/$k
mkdir -p "$dst/updates/dkms"
declare -A seen=()
add() {
    local m=$1 f d
    [ -z "${seen[$m]:-}" ] || return 0
    seen[$m]=1
    f=$(find "$src/kernel" -name "$m.ko*" -o -name "${m//_/-}.ko*" | head -n1)
    [ -n "$f" ] || return 0                                    # built in
    mkdir -p "$dst/$(dirname "${f#"$src/"}")"
    cp "$f" "$dst/${f#"$src/"}"
    for d in $(modinfo -F depends "$f" | tr ',' ' '); do add "$d"; done
}
for m in vhost_net vhost vhost_iotlb tun tap; do add "$m"; done
for d in $(modinfo -F depends "$KO" | tr ',' ' '); do add "$d"; done
for f in modules.builtin modules.builtin.modinfo modules.order; do
    [ ! -f "$src/$f" ] || cp "$src/$f" "$dst/"
done
cp "$KO" "$dst/updates/dkms/vhost_net_rs.ko"

# The test, run by the VM's /init.
cat >"$OUT/kmodtest.sh" <<'EOF'
#!/bin/sh
R=/kmodroot
k=$(uname -r)
passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
nok() { echo "not ok - $1"; failed=$((failed + 1)); }
for l in bin sbin lib lib64; do ln -s usr/$l $R/$l; done
for d in proc sys dev; do mount --bind /$d $R/$d; done
# Debian's tools by their path: busybox's chroot would run its own
# applet of the same name instead.
ch() { c=$1; shift; chroot $R /usr/sbin/$c "$@"; }
ch modprobe --version
# The kernel's own requests (request_module) go to Debian's modprobe too.
printf '#!/bin/sh\necho "modprobe-debian: $*" >/dev/kmsg\nexec chroot /kmodroot /usr/sbin/modprobe "$@" 2>/dev/kmsg\n' >/bin/modprobe-debian
chmod 755 /bin/modprobe-debian
echo /bin/modprobe-debian >/proc/sys/kernel/modprobe
ch depmod -a && [ -s $R/lib/modules/$k/modules.dep ] && ok "Debian's depmod made modules.dep for $k" ||
    nok "Debian's depmod made modules.dep for $k"
ch modprobe -c | grep -E '^(alias (char-major-10-238|devname:vhost-net) |install vhost_net )'
loaded() { [ -d /sys/module/$1 ]; }
unload() {
    ch modprobe -r vhost_net_rs 2>/dev/null
    loaded vhost_net && rmmod vhost_net
    for m in vhost vhost_iotlb; do loaded $m && rmmod $m; done
    ! loaded vhost_net_rs && ! loaded vhost_net
}
expect() { # expect CASE MODULE: each trigger loads MODULE and not the other
    other=vhost_net_rs; [ "$2" = vhost_net_rs ] && other=vhost_net
    for how in "modprobe vhost_net" "modprobe char-major-10-238" "modprobe devname:vhost-net" open; do
        unload || { nok "$1: $how: could not unload first"; continue; }
        if [ "$how" = open ]; then
            # No module: the node is opened, the kernel asks for
            # char-major-10-238 (misc_open's request_module).
            rm -f /dev/vhost-net; mknod /dev/vhost-net c 10 238
            (exec 3<>/dev/vhost-net) 2>/dev/null; rc=$?
            how="open /dev/vhost-net (kernel request_module), rc=$rc"
        else
            ch $how
        fi
        if loaded "$2" && ! loaded "$other"; then ok "$1: $how loads $2"
        else nok "$1: $how loads $2 (loaded: $(ls /sys/module | grep -E '^vhost' | tr '\n' ' '))"; fi
    done
    unload
}
if modinfo=$(ch modinfo -F filename vhost_net_rs) && [ "$modinfo" = /lib/modules/$k/updates/dkms/vhost_net_rs.ko ]; then
    ok "A: modinfo vhost_net_rs finds $modinfo"
else nok "A: modinfo vhost_net_rs finds updates/dkms/vhost_net_rs.ko (got: $modinfo)"; fi
expect A vhost_net_rs
rm $R/lib/modules/$k/updates/dkms/vhost_net_rs.ko
ch depmod -a
ch modinfo vhost_net_rs >/dev/null 2>&1 && nok "B: ours gone" || ok "B: ours gone (modinfo vhost_net_rs: not found)"
expect B vhost_net
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
EOF

img=$OUT/initramfs.cpio.gz
"$HERE/initramfs.sh" -k "$KDIR" -o "$img" -f "$st:/kmodroot" -f "$OUT/kmodtest.sh:/kmodtest.sh"
rc=0
"$HERE/vm.sh" -k "$KDIR" -i "$img" -t "${MODPROBE_TEST_TIMEOUT:-900}" -l "$OUT/console.log" -c "sh /kmodtest.sh" \
    >"$OUT/vm.out" 2>&1 || rc=$?
tr -d '\r' <"$OUT/console.log" | grep -E '^(ok|not ok|kmod version|alias |install )' || true
totals=$(tr -d '\r' <"$OUT/console.log" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)
if [ "$rc" -ne 0 ]; then
    # vm.sh's verdict: the command's status and the kernel log's reports.
    tail -n 20 "$OUT/vm.out"
    case $totals in *", 0 failed"|"") echo "0 passed, 1 failed" ;; *) echo "$totals" ;; esac
    exit 1
fi
echo "$totals"
