#!/usr/bin/env bash
# Scan a kernel console log for kernel reports (warnings, BUGs, oopses,
# sanitizer and lockdep reports, hung tasks, kmemleak, panics).
#
# Usage: check-kernel-log.sh LOGFILE     exit 0: clean; 1: reports found (the
#                                        matching lines are printed); 2: usage
#        check-kernel-log.sh --self-test check the patterns on sample lines
#
# Only real report markers are matched, not words such as "lockdep" or
# "kmemleak" that a debug kernel prints in its banner, nor the taint
# notices every load of our module prints on Debian's kernel (out-of-tree,
# and unsigned under CONFIG_MODULE_SIG without MODULE_SIG_FORCE): these
# are the expected state of a module built outside the kernel, not a
# report (the self-test keeps them clean). A report on a tainted kernel
# still shows its own marker line (WARNING: CPU..., BUG: ...).
set -euo pipefail

# Extended regular expressions, one per line.
PATTERNS='WARNING: CPU
WARNING: (possible|suspicious|inconsistent|bad unlock balance|lock held|held lock freed|Nested lock was not taken|at kernel/)
BUG: 
BUG [^ ]+ \(.*\): 
kernel BUG at
Oops: 
general protection fault
KASAN: 
UBSAN: 
KFENCE: 
KMSAN: 
possible circular locking
possible recursive locking
inconsistent lock state
suspicious RCU usage
INFO: task .* blocked for more than
rcu: INFO: .*detected stall
detected stalls on CPUs
unreferenced object
Kernel panic
Call Trace:'

scan() { # stdin: log; stdout: matching lines, numbered
    tr -d '\r' | grep -n -E -f <(printf '%s\n' "$PATTERNS") || true
}

self_test() {
    local bad=0 line out
    local -a positive=(
        '[    3.141592] WARNING: CPU: 1 PID: 57 at drivers/vhost/vhost.c:1234 vhost_dev_cleanup+0x1/0x2 [vhost]'
        '[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008'
        '[    1.000000] BUG: KASAN: slab-use-after-free in vhost_net_release+0x10/0x20'
        '[    1.000000] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:283'
        '[    1.000000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [vmtest:80]'
        '[    1.000000] BUG kmalloc-64 (Not tainted): Poison overwritten'
        '[    1.000000] kernel BUG at mm/slub.c:123!'
        '[    1.000000] Oops: general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP'
        '[    1.000000] Oops: 0002 [#1] PREEMPT SMP'
        '[    1.000000] general protection fault, probably for non-canonical address 0x1: 0000 [#1]'
        '[    1.000000] UBSAN: array-index-out-of-bounds in drivers/vhost/net.c:100:5'
        '[    1.000000] WARNING: possible circular locking dependency detected'
        '[    1.000000] WARNING: possible recursive locking detected'
        '[    1.000000] WARNING: inconsistent lock state'
        '[    1.000000] WARNING: suspicious RCU usage'
        '[    1.000000] WARNING: bad unlock balance detected!'
        '[    1.000000] INFO: task vmtest:81 blocked for more than 61 seconds.'
        '[    1.000000] rcu: INFO: rcu_sched self-detected stall on CPU'
        'unreferenced object 0xffff888003a8c000 (size 64):'
        '[    1.000000] Kernel panic - not syncing: Fatal exception'
        '[    1.000000]  Call Trace:'
        '[    9.000000] WARNING: CPU: 0 PID: 80 at drivers/vhost/net.c:1 vhost_net_ioctl+0x1/0x2 [vhost_net_rs]'
        '[    9.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [vhost-80:81]'
        '[    1.000000] Call Trace:'
    )
    local -a negative=(
        '[    0.000000] Lock dependency validator: Copyright (c) 2006 Red Hat, Inc., Ingo Molnar'
        '[    0.000000] ... MAX_LOCKDEP_SUBCLASSES:  8'
        '[    0.000000] RCU lockdep checking is enabled.'
        '[    0.100000] kmemleak: Kernel memory leak detector initialized (mem pool available: 15000)'
        '[    0.100000] kmemleak: Automatic memory scanning thread started'
        '[    0.200000] kasan: KernelAddressSanitizer initialized (generic)'
        '[    0.300000] printk: console [ttyS0] enabled'
        '[    1.000000] tun: Universal TUN/TAP device driver, 1.6'
        '[    1.000000] vhost_net_rs: refusing to load: misc minor 238 (/dev/vhost-net) is taken'
        '[    1.000000] x86/fpu: Supporting XSAVE feature 0x001: '"'"'x87 floating point registers'"'"''
        'ok 3 set_owner_twice'
        'not ok 4 reset_owner'
        '# c: RESET_OWNER before owner = -1 EPERM(1)'
        '12 passed, 0 failed'
        '[    2.000000] reboot: Power down'
        '[    5.000000] vhost_net_rs: loading out-of-tree module taints kernel.'
        '[    5.000000] vhost_net_rs: module verification failed: signature and/or required key missing - tainting kernel'
        '[    2.000000] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!'
        '[    1.400000] PCI: Using host bridge windows from ACPI; if necessary, use "pci=nocrs" and report a bug'
        '[    5.400000] ACPI: PM: Preparing to enter system sleep state S5'
    )
    for line in "${positive[@]}"; do
        out=$(printf '%s\r\n' "$line" | scan)
        [ -n "$out" ] || { echo "self-test: NOT matched (should be): $line"; bad=1; }
    done
    for line in "${negative[@]}"; do
        out=$(printf '%s\r\n' "$line" | scan)
        [ -z "$out" ] || { echo "self-test: matched (should not be): $line"; bad=1; }
    done
    if [ "$bad" = 0 ]; then
        echo "check-kernel-log: self-test ok (${#positive[@]} reports found, ${#negative[@]} clean lines passed)"
    fi
    return "$bad"
}

case "${1:-}" in
    --self-test) self_test; exit $? ;;
    ""|-h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
LOG=$1
[ -f "$LOG" ] || { echo "check-kernel-log: $LOG: no such file" >&2; exit 2; }
hits=$(scan < "$LOG")
if [ -n "$hits" ]; then
    n=$(printf '%s\n' "$hits" | wc -l)
    echo "check-kernel-log: $n kernel report line(s) in $LOG:"
    printf '%s\n' "$hits" | head -n 40 | sed 's/^/  line /'
    [ "$n" -le 40 ] || echo "  ..."
    exit 1
fi
exit 0
