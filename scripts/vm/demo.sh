#!/usr/bin/env bash
# `make demo`: boot the test VM, load our module, start a real QEMU in it
# whose guest (the same kernel, a busybox initramfs) has a virtio-net NIC
# backed by our /dev/vhost-net (-netdev tap,vhost=on,vhostforce=on), and
# show ping and bulk TCP both ways plus the proof that the packets went
# through vhost_net_rs (tests/guest/outer-demo.sh). Installs what it needs
# and builds the kernel once per machine.
# Environment: KERNEL (test, the default, or debian13: the VM boots Debian
# 13's own 7.3 kernel, the guest runs Debian's kernel on Debian 13's QEMU 10
# with in_order=on and shows VIRTIO_F_IN_ORDER negotiated), DEMO_MB (size
# of each TCP transfer, default 64), VM_MEM (outer VM, default 2048 MiB),
# DEMO_TIMEOUT (default 1800 s).
set -euo pipefail
. "$(dirname "$0")/../build/env.sh"
cd "$REPO"
scripts/build/bootstrap.sh >&2
case ${KERNEL:-test} in
test)
    kdir=$(scripts/build/kernel.sh release)
    scripts/build/module.sh "$kdir" >/dev/null
    ko=$REPO/vhost_net_rs.ko out=$REPO/build/demo dev="" cpu="" ;;
debian13)
    kdir=$(scripts/build/debian13.sh kernel)
    scripts/build/module.sh debian13 "$REPO/build/debian13" >/dev/null
    ko=$REPO/build/debian13/vhost_net_rs.ko out=$REPO/build/demo-debian13 dev=in_order=on cpu=max ;;
*) echo "demo: KERNEL must be test or debian13" >&2; exit 2 ;;
esac
img=$(scripts/vm/guest-image.sh "$kdir" "$out" "$ko")
VM_MEM=${VM_MEM:-2048} scripts/vm/vm.sh -k "$kdir" -i "$img" -t "${DEMO_TIMEOUT:-1800}" \
    -c "DEMO_MB=${DEMO_MB:-64} GUESTCHECK_DEV=$dev GUESTCHECK_CPU=$cpu /bin/guest-demo.sh" 2>&1 |
    grep --line-buffered -vE '^\[ *[0-9]+\.[0-9]+\] |^vmtest-init: running|^vmtest-exit-status'
exit "${PIPESTATUS[0]}"
