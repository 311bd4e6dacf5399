#!/bin/sh
# `make demo`, inside the test VM (baked in as /bin/guest-demo.sh): load our
# module, start a real QEMU whose guest's virtio-net NIC is backed by
# /dev/vhost-net (vhost=on,vhostforce=on), and move traffic through it.
. /lib/guest/lib.sh
say() { printf '\n=== %s\n' "$*"; }
MB=${DEMO_MB:-64}
fail=0

say "loading vhost_net_rs (our Rust module)"
insmod /lib/vhost/vhost_net_rs.ko
grep vhost_net_rs /proc/modules
ls -l /dev/vhost-net
printf 'misc minor: '; grep vhost-net /proc/misc

say "starting QEMU $($QEMU --version | head -n1 | cut -d' ' -f4) with a virtio-net NIC on tap0, vhost=on,vhostforce=on"
t0=$(now)
qemu_start demo \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=on,vhostforce=on \
    -device virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56${GUESTCHECK_DEV:+,$GUESTCHECK_DEV}
# QEMU creates tap0 and opens /dev/vhost-net before the guest boots.
i=0
while [ ! -e /sys/class/net/tap0 ] && [ $i -lt 120 ]; do usleep 250000; i=$((i + 1)); done
ip addr add 198.18.0.1/24 dev tap0
ip link set tap0 up
echo "QEMU pid $(qpid demo); outer side: tap0 198.18.0.1/24"
echo "booting the inner guest (same kernel, nested TCG: about a minute)..."
if ! gwait demo 1200; then
    echo "the inner guest did not come up"
    exit 1
fi
echo "inner guest up after $(elapsed "$t0") s"
eth=$(guest_if demo 52:54:00:12:34:56)
g demo "ip addr add 198.18.0.2/24 dev $eth && ip link set $eth up && ip -4 addr show dev $eth | grep inet && echo features: \$(cat /sys/class/net/$eth/device/features)"
case ${GUESTCHECK_DEV:-} in
*in_order=on*)
    f=$(g demo "cat /sys/class/net/$eth/device/features")
    if [ "$(echo "$f" | cut -c36)" = 1 ]; then
        echo "VIRTIO_F_IN_ORDER (bit 35) negotiated by the guest: yes"
    else
        echo "VIRTIO_F_IN_ORDER (bit 35) negotiated by the guest: NO"; fail=1
    fi ;;
esac
stat0=$(tapstat tap0)

say "ping: outer VM -> inner guest"
ping -c 5 -W 5 198.18.0.2 || fail=1
say "ping: inner guest -> outer VM"
g demo "ping -c 5 -W 5 198.18.0.1" || fail=1

say "TCP bulk transfer, ${MB} MB: outer VM -> inner guest (checksums compared)"
g demo "nettool tcp-recv 5001 11 > /tmp/r1 2>&1 &"
s=$(nettool tcp-send 198.18.0.2 5001 $((MB << 20)) 11) || fail=1
usleep 500000
r=$(g demo "cat /tmp/r1")
echo "outer sent:    $s"
echo "guest got:     $r"
if stream_ok "$s" "$r"; then
    echo "checksums match: $(field fnv "$s")"
else
    echo "CHECKSUM MISMATCH"; fail=1
fi

say "TCP bulk transfer, ${MB} MB: inner guest -> outer VM (checksums compared)"
nettool tcp-recv 5002 12 > /tmp/r2 2>&1 &
rp=$!
s=$(g demo "nettool tcp-send 198.18.0.1 5002 $((MB << 20)) 12") || fail=1
wait $rp
r=$(cat /tmp/r2)
echo "guest sent:    $s"
echo "outer got:     $r"
if stream_ok "$s" "$r"; then
    echo "checksums match: $(field fnv "$s")"
else
    echo "CHECKSUM MISMATCH"; fail=1
fi

say "proof that the traffic went through vhost_net_rs"
pid=$(qpid demo)
echo "threads of QEMU (pid $pid):"
for t in /proc/$pid/task/*; do printf '  %-6s %s\n' "${t##*/}" "$(cat $t/comm)"; done
echo "vhost worker(s), CPU time (user+system) so far:"
vhost_threads demo | while read -r tid comm cpu; do echo "  $comm (tid $tid): ${cpu} s"; done
echo "/sys/module/vhost_net_rs/refcnt = $(cat /sys/module/vhost_net_rs/refcnt) (one per open /dev/vhost-net)"
echo "QEMU's open /dev/vhost-net: $(ls -l /proc/$pid/fd 2>/dev/null | grep -c /dev/vhost-net)"
lsmod | grep -E '^(vhost|Module)' || true
set -- $stat0
a="$1 $2 $3 $4"
set -- $(tapstat tap0)
echo "tap0 during the demo: rx $(( $1 - $(echo $a | cut -d' ' -f1) )) packets / $(( ($2 - $(echo $a | cut -d' ' -f2)) >> 20 )) MiB (from the guest),"
echo "                      tx $(( $3 - $(echo $a | cut -d' ' -f3) )) packets / $(( ($4 - $(echo $a | cut -d' ' -f4)) >> 20 )) MiB (to the guest)"
[ "$(vhost_threads demo | wc -l)" -ge 1 ] || { echo "NO vhost worker thread in QEMU"; fail=1; }

say "shutting the inner guest down, unloading"
gquit demo
r=$(console_reports /tmp/demo.console) && { echo "inner kernel reports:"; echo "$r"; fail=1; }
echo "refcnt after QEMU exited: $(cat /sys/module/vhost_net_rs/refcnt)"
rmmod vhost_net_rs
if [ $fail = 0 ]; then
    echo "done: a real QEMU guest's network ran on vhost_net_rs"
else
    echo "demo FAILED (see above); QEMU's log:"; cat /tmp/demo.qemu.log
fi
exit $fail
