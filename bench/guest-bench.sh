#!/bin/sh
# `make bench`'s nested QEMU rows, inside the test VM (baked in as
# /bin/guest-bench.sh, run by bench/bench's QEMU rows): a real QEMU guest
# whose virtio-net NIC is on tap0, with vhost=on,vhostforce=on over the C
# module, over ours, and with vhost=off (QEMU's own userspace virtio-net,
# what the module saves). Each round runs the three in turn (c, ours,
# novhost: one guest boot each) and, in each boot, moves MB MiB of TCP each
# way REPS times, content verified; a row per transfer:
#   vbench-row,ROUND,IMPL,qemu_g2h|qemu_h2g,MB,,SECONDS,,GBPS,...,IN_ORDER
# in the columns of vbench's rows (bench/report.py; IN_ORDER 1 when the
# guest's driver negotiated VIRTIO_F_IN_ORDER, bit 35), and a line
#   guest-bench: IMPL DIR round R rep K: SECONDS s, RETRANS retransmitted
#   segments, WORKER s vhost worker CPU
# (the sender's TCP retransmissions, from its /proc/net/snmp, and the vhost
# worker's utime+stime over the transfer): what a slow transfer lost time
# to. A transfer that fails or does not verify gives no row and
# "guest-bench: FAILED" at the end.
#
# With PIN=1, QEMU's vCPU thread runs on CPU 0 and its other threads (the
# main loop, which is the device with vhost=off and injects the interrupts
# with vhost=on, and the vhost worker) on CPU 1, so that where the scheduler
# happens to put them does not decide a transfer's speed.
#
# With PROF=1 (`make profile-qemu`), each transfer runs between the marks
# of bench/tbprof.c (`nettool mark`), and the log gets what
# bench/profile-report.py reads: the loaded modules' text symbols
# (vbench-ksym lines) after each load and a line per dump
#   vbench-profile,DUMP,ROUND,IMPL,qemu_g2h|qemu_h2g,MB,MB
# (the packet count is MB: the report's counts are per MiB).
#
# TSO (default 0): with N > 0, both senders' net.ipv4.tcp_min_tso_segs,
# the outer VM's (host to guest) and the guest's (guest to host), is N;
# 0 leaves the kernel's 2. TCP sizes its TSO packets from its own rate
# (about 1 ms of data, at least tcp_min_tso_segs segments) and the nested
# guest's cost per MiB is mostly per packet, so a slow transfer moves
# small packets, which keep it slow: `make profile-qemu` (2026-12-02) saw
# one h2g transfer at 3 KB per packet and the next, same module, at 8 KB.
# `make profile-qemu` uses 44 (about 64 KB) so that its windows compare;
# the timed rows keep the kernel's sizing (with 44 they were no steadier).
#
# Environment (bench/bench sets them on Debian's 7.3 kernel):
# GUESTCHECK_DEV more virtio-net-pci properties (in_order=on: QEMU 10
# offers VIRTIO_F_IN_ORDER to the guest when the vhost module does),
# GUESTCHECK_CPU the guests' CPU model (lib.sh), GUEST_BENCH_OURS_PARAMS
# our module's parameters (in_order=1), GUEST_BENCH_IMPLS the guests of a
# round, comma-separated (default c,ours,novhost; bench/bench --qemu-impls).
#
# Usage: guest-bench.sh ROUNDS MB [REPS [PIN [PROF [TSO]]]]
. /lib/guest/lib.sh
ROUNDS=${1:-3}
MB=${2:-16}
REPS=${3:-3}
PIN=${4:-0}
PROF=${5:-0}
TSO=${6:-0}
dumps=0
C=/lib/vhost/c
fail=0
DEV=${GUESTCHECK_DEV:+,$GUESTCHECK_DEV}
in_order=0

load() {
    case $1 in
        c) insmod $C/vhost_iotlb.ko && insmod $C/vhost.ko && insmod $C/vhost_net.ko ;;
        ours) insmod /lib/vhost/vhost_net_rs.ko ${GUEST_BENCH_OURS_PARAMS:-} ;;
    esac
}
unload() {
    case $1 in
        c) rmmod vhost_net vhost vhost_iotlb ;;
        ours) rmmod vhost_net_rs ;;
    esac
}
# The modules' text symbols, as vbench prints them for the report
ksyms() {
    awk 'NF >= 4 && ($2 == "t" || $2 == "T") {
        m = $4; gsub(/[][]/, "", m); print "vbench-ksym," $1 "," $3 "," m }' /proc/kallsyms
}
# mark start | mark stop ROUND IMPL TEST: around a profiled transfer
mark() {
    [ "$PROF" = 1 ] || return 0
    nettool mark $1
    [ $1 = stop ] || return 0
    echo "vbench-profile,$dumps,$2,$3,$4,$MB,$MB"
    dumps=$((dumps + 1))
}
# row ROUND IMPL TEST RECV-LINE: the receiver's line gives bytes and secs;
# 1 if the transfer failed
row() {
    local bytes secs
    bytes=$(field bytes "$4") secs=$(field secs "$4")
    [ "$(field verify "$4")" = ok ] && [ "$bytes" = $((MB << 20)) ] || {
        echo "guest-bench: $2 $3 round $1: transfer failed: $4"; fail=1; return 1; }
    awk -v r="$1" -v i="$2" -v t="$3" -v mb="$MB" -v b="$bytes" -v s="$secs" -v io="$in_order" 'BEGIN {
        printf "vbench-row,%s,%s,%s,%s,0,%.4f,,%.6f,,,,,,,,%s\n", r, i, t, mb, s, b * 8 / s / 1e9, io }'
}
# The kernel's count of retransmitted TCP segments (/proc/net/snmp), here
# and, as a command, in a guest
RETRANS='awk '"'"'/^Tcp:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i; h = 1 } else print $c }'"'"' /proc/net/snmp'
retrans() { sh -c "$RETRANS"; }
# worker_cpu NAME: the vhost workers' CPU seconds (0 with vhost=off)
worker_cpu() { vhost_threads "$1" | awk '{ s += $3 } END { printf "%.2f", s }'; }
# pin NAME: the vCPU thread on CPU 0, QEMU's other threads on CPU 1
pin() {
    local t
    for t in /proc/$(qpid "$1")/task/*; do
        case $(cat $t/comm) in
            "CPU "*) taskset -p 1 ${t##*/} ;;
            *) taskset -p 2 ${t##*/} ;;
        esac >/dev/null
    done
}
# note ROUND IMPL DIR REP RECV-LINE RETRANS-BEFORE RETRANS-AFTER CPU-BEFORE CPU-AFTER
note() {
    awk -v r="$1" -v i="$2" -v d="$3" -v k="$4" -v s="$(field secs "$5")" \
        -v n=$((${7:-0} - ${6:-0})) -v c0="$8" -v c1="$9" 'BEGIN {
        printf "guest-bench: %s %s round %s rep %s: %s s, %d retransmitted segments, %.2f s vhost worker CPU\n",
            i, d, r, k, s, n, c1 - c0 }'
}

round=1
while [ $round -le "$ROUNDS" ]; do
    for impl in $(echo "${GUEST_BENCH_IMPLS:-c,ours,novhost}" | tr ',' ' '); do
        name=b$impl
        [ $impl = novhost ] && vh=off || vh=on,vhostforce=on
        load $impl || { echo "guest-bench: loading $impl failed"; fail=1; continue; }
        [ "$PROF" = 1 ] && ksyms
        qemu_start $name \
            -netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=$vh \
            -device virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56$DEV \
            -name $name,debug-threads=on
        i=0
        while [ ! -e /sys/class/net/tap0 ] && [ $i -lt 120 ]; do usleep 250000; i=$((i + 1)); done
        ip addr add 198.18.0.1/24 dev tap0
        ip link set tap0 up
        if gwait $name 1200; then
            eth=$(guest_if $name 52:54:00:12:34:56)
            g $name "ip addr add 198.18.0.2/24 dev $eth && ip link set $eth up" >/dev/null
            # VIRTIO_F_IN_ORDER (bit 35 of the features the driver took)
            in_order=$(g $name "cat /sys/class/net/$eth/device/features" | tr -d '\r' | cut -c36)
            [ "$in_order" = 1 ] || in_order=0
            [ $round != 1 ] || echo "guest-bench: $impl: VIRTIO_F_IN_ORDER negotiated: $in_order"
            if [ "$TSO" != 0 ]; then
                echo "$TSO" > /proc/sys/net/ipv4/tcp_min_tso_segs
                g $name "echo $TSO > /proc/sys/net/ipv4/tcp_min_tso_segs" >/dev/null
            fi
            # warm up ARP and the TCP paths
            ping -c 2 -W 5 198.18.0.2 >/dev/null 2>&1
            [ "$PIN" = 1 ] && pin $name
            rep=1
            while [ $rep -le "$REPS" ]; do
                seed=$((round * 100 + rep))
                # guest -> host
                r0=$(g $name "$RETRANS") c0=$(worker_cpu $name)
                nettool tcp-recv 5002 $seed > /tmp/r 2>&1 &
                rp=$!
                mark start
                g $name "nettool tcp-send 198.18.0.1 5002 $((MB << 20)) $seed" >/dev/null
                wait $rp
                mark stop $round $impl qemu_g2h
                recv=$(cat /tmp/r)
                row $round $impl qemu_g2h "$recv" &&
                    note $round $impl g2h $rep "$recv" "$r0" "$(g $name "$RETRANS")" "$c0" "$(worker_cpu $name)"
                # host -> guest
                r0=$(retrans) c0=$(worker_cpu $name)
                g $name "nettool tcp-recv 5001 $seed > /tmp/r 2>&1 &" >/dev/null
                usleep 300000
                mark start
                nettool tcp-send 198.18.0.2 5001 $((MB << 20)) $seed >/dev/null
                usleep 500000
                mark stop $round $impl qemu_h2g
                recv=$(g $name "cat /tmp/r")
                row $round $impl qemu_h2g "$recv" &&
                    note $round $impl h2g $rep "$recv" "$r0" "$(retrans)" "$c0" "$(worker_cpu $name)"
                rep=$((rep + 1))
            done
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
