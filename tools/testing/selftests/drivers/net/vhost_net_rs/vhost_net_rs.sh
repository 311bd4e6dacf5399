#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# vhost_net_rs's in-VM suite (vmtest, built by this directory's Makefile)
# against the kernel's C vhost_net and vhost_net_rs, as a kselftest: its
# TAP ends with kselftest's "# Totals:" line; it exits 0 when every test
# passed, 1 when one failed, 4 (KSFT_SKIP) when every test was skipped.
#
# It loads and unloads vhost_net, vhost, vhost_iotlb and vhost_net_rs: run
# it in a VM, not on a host with guests. The modules are found
#  - vhost_net_rs: $VHOST_NET_RS_KO, else `modinfo -n vhost_net_rs` (the
#    installed one: make modules_install, or the DKMS package), else
#    /lib/vhost/vhost_net_rs.ko (the project's test VM);
#  - the C modules: $VHOST_NET_RS_C_DIR, else `modinfo -n` of each
#    (decompressed into a scratch directory if the distribution compresses
#    them), else /lib/vhost/c.
# Without vhost_net_rs, the "ours" half of each test is skipped.
# VMTEST_ARGS adds vmtest options (e.g. --filter NAME; vmtest --help).
ksft_skip=4
here=$(cd "$(dirname "$0")" && pwd)
vmtest=$here/vmtest

skip() { echo "# SKIP: $*"; exit $ksft_skip; }
[ "$(id -u)" = 0 ] || skip "vhost_net_rs.sh must run as root (it loads modules)"
[ -x "$vmtest" ] || skip "$vmtest is not built (make in this directory; it needs cargo)"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# $1: module name; prints a path to its uncompressed .ko (in $tmp if the
# installed one is compressed), or nothing.
module_file() {
    f=$(modinfo -n "$1" 2>/dev/null) || return 0
    case $f in
    *.ko) echo "$f" ;;
    *.ko.xz) xz -dc "$f" > "$tmp/$1.ko" && echo "$tmp/$1.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$tmp/$1.ko" && echo "$tmp/$1.ko" ;;
    *.ko.gz) gzip -dc "$f" > "$tmp/$1.ko" && echo "$tmp/$1.ko" ;;
    esac
}

ours=${VHOST_NET_RS_KO:-$(module_file vhost_net_rs)}
[ -n "$ours" ] || ours=/lib/vhost/vhost_net_rs.ko
c_dir=${VHOST_NET_RS_C_DIR:-}
if [ -z "$c_dir" ]; then
    mkdir "$tmp/c"
    for m in vhost_iotlb vhost vhost_net; do
        f=$(module_file $m)
        [ -n "$f" ] || { rm -rf "$tmp/c"; break; }
        if [ "$f" = "$tmp/$m.ko" ]; then mv "$f" "$tmp/c/$m.ko"; else ln -s "$f" "$tmp/c/$m.ko"; fi
    done
    if [ -d "$tmp/c" ]; then c_dir=$tmp/c; else c_dir=/lib/vhost/c; fi
fi
[ -f "$c_dir/vhost_net.ko" ] || skip "no C vhost_net module to compare with (CONFIG_VHOST_NET=m; or set VHOST_NET_RS_C_DIR)"

# What the tests use around the modules: tun and tap, the socket kinds
# VHOST_NET_SET_BACKEND takes (macvtap), and the network devices the guest
# tests connect (veth, bridge, VLAN). A module already there, built in or
# absent is fine: a test that needs a missing one fails and says so.
for m in tun tap macvlan macvtap veth bridge 8021q; do
    modprobe -q "$m" 2>/dev/null
done

# Upstream's tools/virtio/vhost_net_test and the 32-bit ioctl client are
# installed by the project's test VM at /bin; elsewhere their tests are
# left out rather than failed.
args=""
[ -x /bin/vhost_net_test ] || args="$args --skip upstream_vhost_net_test"
[ -x /bin/compat32 ] || args="$args --skip compat32_"

echo "# vhost_net_rs: ours $ours, C modules in $c_dir"
# shellcheck disable=SC2086 # word splitting of the option lists is meant
exec "$vmtest" --c-dir "$c_dir" --ours "$ours" $args ${VMTEST_ARGS:-}
