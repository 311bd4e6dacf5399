#!/usr/bin/env bash
# `make modules_install` signs the module where the kernel is configured
# so (issue 25, point 1), tested on Debian's kernel, which is:
# CONFIG_MODULE_SIG_ALL=y with CONFIG_MODULE_SIG_KEY="output/signing_key.pem",
# a key only Debian's builders hold. In a copy of the headers tree that
# `make KERNEL=debian13` builds against, a throw-away key and its
# certificate go where kbuild looks for them ($KDIR/output/signing_key.pem,
# $KDIR/certs/signing_key.x509); then, in the Debian 13 root, in the
# directory where the module was built for Debian's kernel (DIR, default
# build/debian13):
#  1. `make modules_install KDIR=<copy> INSTALL_MOD_PATH=<dir>` installs
#     lib/modules/<kver>/updates/vhost_net_rs.ko (.xz: Debian's kernel
#     compresses its modules, after signing) with a signature by that
#     key (sign-file's trailer; modinfo's signer and sig_key are the
#     certificate's name and serial), runs depmod (modules.dep names it), and leaves the
#     built .ko unsigned;
#  2. without the key it still installs (kbuild ignores a failed signature
#     of an external module), unsigned;
#  3. `make modules_install KERNEL=debian13` is refused in one line.
# Usage: sign-test.sh [DIR]
set -euo pipefail
. "$(dirname "$0")/../build/env.sh"
dir=$(realpath "${1:-$REPO/build/debian13}")
d13=$REPO/scripts/build/debian13.sh
fail() { echo "sign-test: $*" >&2; exit 1; }
[ -f "$dir/vhost_net_rs.ko" ] || fail "no module in $dir (scripts/build/module.sh debian13 $dir builds it)"
host_kdir=$("$d13" kdir)
root=$("$d13" root)
kdir=${host_kdir#"$root"}
kver=$("$d13" kver)
out=$REPO/build/sign-test
rm -rf "$out"; mkdir -p "$out"
trap 'rm -rf "$out"' EXIT

# The copy of the headers tree, its Makefile pointing at itself.
cp -a "$host_kdir" "$out/kdir"
sed -i "s|^KBUILD_OUTPUT=.*|KBUILD_OUTPUT=$out/kdir|" "$out/kdir/Makefile"
grep -q '^CONFIG_MODULE_SIG_ALL=y' "$out/kdir/.config" || fail "Debian's kernel no longer has CONFIG_MODULE_SIG_ALL=y"
keyrel=$(sed -n 's/^CONFIG_MODULE_SIG_KEY="\(.*\)"/\1/p' "$out/kdir/.config")
[ "$keyrel" = output/signing_key.pem ] || fail "CONFIG_MODULE_SIG_KEY is '$keyrel', not output/signing_key.pem"

# modules_install KDIR OUT: the project's make modules_install, in the
# module's build directory, in the Debian 13 root.
minst() {
    "$d13" run make -s -f "$REPO/Makefile" -C "$dir" modules_install KDIR="$1" INSTALL_MOD_PATH="$2" 2>&1
}
# Kbuild compresses what it installs as the kernel's configuration says
# (Debian's: CONFIG_MODULE_COMPRESS_XZ), after signing.
case $(sed -n 's/^CONFIG_MODULE_COMPRESS_\(GZIP\|XZ\|ZSTD\)=y/\1/p' "$host_kdir/.config") in
    XZ) ext=.xz unz="xz -dc" ;;
    GZIP) ext=.gz unz="gzip -dc" ;;
    ZSTD) ext=.zst unz="zstd -dcq" ;;
    *) ext="" unz=cat ;;
esac
signed() { $unz "$1" | tail -c 28 | grep -q '~Module signature appended~'; }
installed=lib/modules/$kver/updates/vhost_net_rs.ko$ext
before=$(sha256sum <"$dir/vhost_net_rs.ko")

# 1. With a key.
mkdir -p "$out/kdir/output" "$out/kdir/certs"
cn="vhost-net-rs make check throw-away key"
openssl req -new -nodes -utf8 -sha256 -days 1 -batch -x509 -newkey rsa:2048 \
    -subj "/CN=$cn/" -keyout "$out/kdir/output/signing_key.pem" -out "$out/cert.pem" 2>/dev/null
cat "$out/cert.pem" >>"$out/kdir/output/signing_key.pem"
openssl x509 -in "$out/cert.pem" -outform DER -out "$out/kdir/certs/signing_key.x509"
log=$(minst "$out/kdir" "$out/inst1") || { echo "$log" | tail -n 20; fail "make modules_install with a key failed"; }
[ -f "$out/inst1/$installed" ] || fail "with a key: no $installed"
signed "$out/inst1/$installed" || fail "with a key: $installed carries no signature"
signer=$("$d13" run modinfo -F signer "$out/inst1/$installed")
[ "$signer" = "$cn" ] || fail "with a key: signer is '$signer', not '$cn'"
# sign-file names the signer by issuer and serial number: modinfo's
# sig_key is the certificate's serial.
serial=$(openssl x509 -in "$out/cert.pem" -noout -serial | sed 's/^serial=//' | tr a-f A-F)
sigkey=$("$d13" run modinfo -F sig_key "$out/inst1/$installed" | tr -d ':' | tr a-f A-F)
[ "$sigkey" = "$serial" ] || fail "with a key: sig_key is '$sigkey', not the certificate's serial $serial"
grep -q "^updates/vhost_net_rs.ko$ext:" "$out/inst1/lib/modules/$kver/modules.dep" ||
    fail "with a key: depmod's modules.dep does not name $installed"
[ "$(sha256sum <"$dir/vhost_net_rs.ko")" = "$before" ] || fail "with a key: the built .ko was changed"

# 2. Without one: installed, unsigned, not an error.
rm -rf "$out/kdir/output" "$out/kdir/certs"
log=$(minst "$out/kdir" "$out/inst2") || { echo "$log" | tail -n 20; fail "make modules_install without a key failed"; }
[ -f "$out/inst2/$installed" ] || fail "without a key: no $installed"
! signed "$out/inst2/$installed" || fail "without a key: $installed is signed"

# 3. KERNEL= is refused in one line.
if log=$(make -s -C "$REPO" modules_install KERNEL=debian13 2>&1); then
    fail "make modules_install KERNEL=debian13 was not refused"
fi
[ "$(echo "$log" | grep -c .)" = 1 ] || fail "make modules_install KERNEL=debian13: not one line: $log"

echo "sign-test: make modules_install for $kver signs with the kernel's configured key (signer '$cn', sig_key its serial $serial), runs depmod, leaves the built .ko as it was; without the key installs unsigned; KERNEL= refused in one line"
