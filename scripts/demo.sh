#!/usr/bin/env bash
# `make demo`: boot the test VM, load our module, show it serving
# /dev/vhost-net to a real vhost-net client (upstream's vhost_net_test).
# Installs what it needs and builds the kernel once per machine.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
scripts/bootstrap.sh >&2
kdir=$(scripts/kernel.sh release)
scripts/module.sh "$kdir" >/dev/null
out=$REPO/build/demo
mkdir -p "$out"
vnt=$(scripts/build-vhost-net-test.sh "$kdir" "$out/vhost_net_test")
scripts/initramfs.sh -k "$kdir" -o "$out/initramfs.cpio.gz" -m "$REPO/vhost_net_rs.ko" \
    -f "$vnt:/bin/vhost_net_test" -f "$REPO/tests/demo/guest.sh:/bin/demo-guest.sh" \
    -c /bin/demo-guest.sh >&2
scripts/vm.sh -k "$kdir" -i "$out/initramfs.cpio.gz" -t 300 -c /bin/demo-guest.sh 2>&1 |
    grep -vE '^\[ *[0-9]+\.[0-9]+\] ' || true
