#!/bin/sh
# `make bench`'s nested QEMU rows, inside the test VM (baked in as
# /bin/guest-bench.sh, run by scripts/bench-qemu.sh): a real QEMU guest
# whose virtio-net NIC is on tap0, with vhost=on,vhostforce=on over the C
# module, over ours, and with vhost=off (QEMU's own userspace virtio-net,
# what the module saves). Each round runs the three in turn (c, ours,
# novhost: one guest boot each) and moves MB MiB of TCP each way, content
# verified; a row per direction:
#   vbench-row,ROUND,IMPL,qemu_g2h|qemu_h2g,MB,,SECONDS,,GBPS,...
# in the columns of vbench's rows (scripts/bench-report.py). A transfer that
# fails or does not verify gives no row and "guest-bench: FAILED" at the end.
#
# Usage: guest-bench.sh ROUNDS MB
. /lib/guest/lib.sh
ROUNDS=${1:-3}
MB=${2:-16}
C=/lib/vhost/c
fail=0

load() {
    case $1 in
        c) insmod $C/vhost_iotlb.ko && insmod $C/vhost.ko && insmod $C/vhost_net.ko ;;
        ours) insmod /lib/vhost/vhost_net_rs.ko ;;
    esac
}
unload() {
    case $1 in
        c) rmmod vhost_net vhost vhost_iotlb ;;
        ours) rmmod vhost_net_rs ;;
    esac
}
# row ROUND IMPL TEST RECV-LINE: the receiver's line gives bytes and secs
row() {
    local bytes secs
    bytes=$(field bytes "$4") secs=$(field secs "$4")
    [ "$(field verify "$4")" = ok ] && [ "$bytes" = $((MB << 20)) ] || {
        echo "guest-bench: $2 $3 round $1: transfer failed: $4"; fail=1; return; }
    awk -v r="$1" -v i="$2" -v t="$3" -v mb="$MB" -v b="$bytes" -v s="$secs" 'BEGIN {
        printf "vbench-row,%s,%s,%s,%s,0,%.4f,,%.6f,,,,,,,\n", r, i, t, mb, s, b * 8 / s / 1e9 }'
}

round=1
while [ $round -le "$ROUNDS" ]; do
    for impl in c ours novhost; do
        name=b$impl
        [ $impl = novhost ] && vh=off || vh=on,vhostforce=on
        load $impl || { echo "guest-bench: loading $impl failed"; fail=1; continue; }
        qemu_start $name \
            -netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=$vh \
            -device virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56
        i=0
        while [ ! -e /sys/class/net/tap0 ] && [ $i -lt 120 ]; do usleep 250000; i=$((i + 1)); done
        ip addr add 198.18.0.1/24 dev tap0
        ip link set tap0 up
        if gwait $name 1200; then
            eth=$(guest_if $name 52:54:00:12:34:56)
            g $name "ip addr add 198.18.0.2/24 dev $eth && ip link set $eth up" >/dev/null
            # warm up ARP and the TCP paths
            ping -c 2 -W 5 198.18.0.2 >/dev/null 2>&1
            # guest -> host
            nettool tcp-recv 5002 $round > /tmp/r 2>&1 &
            rp=$!
            g $name "nettool tcp-send 198.18.0.1 5002 $((MB << 20)) $round" >/dev/null
            wait $rp
            row $round $impl qemu_g2h "$(cat /tmp/r)"
            # host -> guest
            g $name "nettool tcp-recv 5001 $round > /tmp/r 2>&1 &" >/dev/null
            usleep 300000
            nettool tcp-send 198.18.0.2 5001 $((MB << 20)) $round >/dev/null
            usleep 500000
            row $round $impl qemu_h2g "$(g $name "cat /tmp/r")"
            [ $impl = novhost ] || [ "$(vhost_threads $name | wc -l)" -ge 1 ] || {
                echo "guest-bench: no vhost worker in QEMU with $impl"; fail=1; }
        else
            echo "guest-bench: the $impl guest did not come up"; fail=1
        fi
        gquit $name
        unload $impl
    done
    round=$((round + 1))
done
[ $fail = 0 ] || echo "guest-bench: FAILED"
exit $fail
