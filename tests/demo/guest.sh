#!/bin/sh
# Runs inside the test VM for `make demo` (baked in as /bin/demo-guest.sh).
# Shows our module serving /dev/vhost-net: load, device node, a real
# vhost-net client moving packets both ways through it, the worker thread.
set -e
say() { printf '\n=== %s\n' "$*"; }

say "loading vhost_net_rs (our Rust module)"
insmod /lib/vhost/vhost_net_rs.ko
grep vhost_net_rs /proc/modules
ls -l /dev/vhost-net
printf 'misc minor: '; grep vhost-net /proc/misc

say "upstream's tools/virtio/vhost_net_test, 200000 buffers each way, through our module"
/bin/vhost_net_test --buf-num 200000 &
pid=$!
usleep 300000
for t in /proc/$pid/task/*; do
    printf 'thread %s of the client: %s\n' "${t##*/}" "$(cat "$t/comm")"
done
wait $pid
echo "vhost_net_test exited with $?"

say "unloading"
rmmod vhost_net_rs
echo "done: /dev/vhost-net was served by vhost_net_rs"
