#!/usr/bin/env bash
# Boot the test kernel with an initramfs under QEMU, run one command in it,
# and judge the run.
#
# Usage: vm.sh -k KDIR -i INITRAMFS [-t SECONDS] [-c CMD] [-a KERNEL_ARGS]
#              [-l LOGFILE] [-I]
#   -k KDIR       kernel build directory (KDIR/arch/x86/boot/bzImage), or
#                 a Debian kernel dir (scripts/build/debian13.sh kernel),
#                 where that path is a link to Debian's own vmlinuz
#   -i INITRAMFS  image from scripts/vm/initramfs.sh
#   -t SECONDS    hard timeout of the whole run (default 600): QEMU is killed
#                 and the run fails when it expires
#   -c CMD        command the guest's /init runs (passed base64-encoded as
#                 vmtest.cmd=); without it, the image's baked-in command
#   -a ARGS       extra kernel command line arguments
#   -l LOGFILE    where the console log goes (kept); by default a file under
#                 build/vm/ that is deleted after a successful run and kept
#                 (its path printed) after a failed one
#   -I            interactive: a shell on the console instead of the command
#                 (stdin is attached; exit the shell to end the VM)
# Environment: VMTEST_ACCEL=auto|tcg|kvm (default auto: KVM only if a cached
#   probe boot proved that it works), VM_MEM (MiB, 2048), VM_SMP (2),
#   VHOST_CACHE (/var/cache/vhost-net-rs, where the probe result is cached),
#   VM_TSC=0 (do not pass the host's TSC frequency, see below),
#   VM_BOOT_RETRIES (1: boots again once if the kernel crashed before it
#   ran /init, see below),
#   VM_QEMU_ARGS (extra QEMU arguments, split on spaces: bench/bench
#   passes a TCG plugin with --profile).
#
# The serial console is streamed to stdout and to the log; vm.sh's own
# messages go to stderr. Exit status 0 only if the guest command exited 0
# (reported by /init as "vmtest-exit-status=N") and the kernel log has no
# report (scripts/vm/check-kernel-log.sh); 1 otherwise; 2 on usage errors.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
: "${VHOST_CACHE:=/var/cache/vhost-net-rs}"
: "${VMTEST_ACCEL:=auto}"
: "${VM_MEM:=2048}"
: "${VM_SMP:=2}"
QEMU=${QEMU:-qemu-system-x86_64}

KDIR="" INITRD="" TIMEOUT=600 CMD="" APPEND="" LOG="" KEEP_LOG=0 INTERACTIVE=0
while getopts "k:i:t:c:a:l:Ih" opt; do
    case $opt in
        k) KDIR=$OPTARG ;;
        i) INITRD=$OPTARG ;;
        t) TIMEOUT=$OPTARG ;;
        c) CMD=$OPTARG ;;
        a) APPEND=$OPTARG ;;
        l) LOG=$OPTARG; KEEP_LOG=1 ;;
        I) INTERACTIVE=1 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d' >&2; exit 2 ;;
    esac
done
[ -n "$KDIR" ] && [ -n "$INITRD" ] || { echo "vm.sh: -k KDIR and -i INITRAMFS are required" >&2; exit 2; }
BZIMAGE=$KDIR/arch/x86/boot/bzImage
[ -f "$BZIMAGE" ] || { echo "vm.sh: $BZIMAGE: no such file" >&2; exit 2; }
[ -f "$INITRD" ] || { echo "vm.sh: $INITRD: no such file" >&2; exit 2; }
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || { echo "vm.sh: -t wants seconds" >&2; exit 2; }

# Does KVM work here? /dev/kvm may be a hypervisor that cannot run a stock
# guest, so only a real boot answers. Cached per QEMU version and kernel.
kvm_works() {
    local key cache dir rc
    key=$( { "$QEMU" --version | head -n1; realpath "$BZIMAGE"; stat -c '%s %Y' "$BZIMAGE"; } |
           sha256sum | cut -c1-16)
    cache=$VHOST_CACHE/kvm-probe-$key
    if [ -f "$cache" ]; then
        [ "$(cat "$cache")" = kvm ]
        return
    fi
    local result=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        echo "vm.sh: probing KVM (once per QEMU version and kernel)" >&2
        dir=$(mktemp -d)
        mkdir -p "$dir/root/bin" "$dir/root/dev"
        cp /bin/busybox "$dir/root/bin/busybox"
        mknod "$dir/root/dev/console" c 5 1 2>/dev/null || true
        printf '%s\n' '#!/bin/busybox sh' \
            '/bin/busybox mount -t devtmpfs devtmpfs /dev' \
            '/bin/busybox echo VMTEST-KVM-PROBE-OK' \
            '/bin/busybox echo VMTEST-KVM-PROBE-OK > /dev/kmsg' \
            '/bin/busybox reboot -f' > "$dir/root/init"
        chmod 755 "$dir/root/init"
        (cd "$dir/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/probe.cpio.gz"
        rc=0
        timeout -k 5 30 "$QEMU" -accel kvm -cpu host -m 256 -smp 1 -nographic -monitor none \
            -no-reboot -nic none -kernel "$BZIMAGE" -initrd "$dir/probe.cpio.gz" \
            -append "console=ttyS0 panic=-1" </dev/null >"$dir/probe.log" 2>&1 || rc=$?
        if grep -q VMTEST-KVM-PROBE-OK "$dir/probe.log"; then
            result=kvm
        else
            echo "vm.sh: KVM probe failed (rc $rc): using TCG" >&2
        fi
        rm -rf "$dir"
    fi
    mkdir -p "$VHOST_CACHE" && echo "$result" > "$cache.tmp" && mv "$cache.tmp" "$cache" || true
    [ "$result" = kvm ]
}

case $VMTEST_ACCEL in
    tcg) accel=tcg ;;
    kvm) accel=kvm ;;
    auto) if kvm_works; then accel=kvm; else accel=tcg; fi ;;
    *) echo "vm.sh: VMTEST_ACCEL must be auto, tcg or kvm" >&2; exit 2 ;;
esac
if [ "$accel" = kvm ]; then
    ACCEL_ARGS=(-accel kvm -cpu host)
else
    ACCEL_ARGS=(-accel tcg,thread=multi -cpu max)
fi

if [ -z "$LOG" ]; then
    mkdir -p "$REPO/build/vm"
    LOG=$REPO/build/vm/console-$(date +%Y%m%d-%H%M%S)-$$.log
else
    mkdir -p "$(dirname "$LOG")"
fi

# no5lvl: with -cpu max the kernel turns on 5-level paging, and the debug
# kernel's KASAN then reports a "wild-memory-access" when an interrupt
# comes while identify_cpu() has cleared the CPU feature bits (LA57
# included), because the shadow range depends on that bit (seen
# 2026-11-30, at 3 s into boot, before any module was loaded). Four-level
# paging is what hosts run anyway.
KARGS="console=ttyS0 panic=-1 printk.devkmsg=on no5lvl"
if [ -n "$CMD" ]; then
    enc=$(printf '%s' "$CMD" | base64 -w0)
    [ "${#enc}" -le 1500 ] || { echo "vm.sh: -c command too long for the kernel command line; bake it in with initramfs.sh -c" >&2; exit 2; }
    KARGS+=" vmtest.cmd=$enc"
fi
# -cpu max under TCG matters most for Debian's kernel: with QEMU's default
# CPU model its mitigations and feature fallbacks made vhost_net_test 4-7x
# slower (measured on Debian 7.3.4, 2026-12-05); the test kernel is fine either way.
# Under TCG the guest's TSC is the host's, but the kernel calibrates it
# against the emulated PIT, which on a loaded host gives a clock several
# times too fast (timeouts fire early, throughput is wrong). Tell it the
# host's frequency when the host knows it (tests/guest/lib.sh passes it on
# to nested guests).
if [ "$accel" = tcg ] && [ "${VM_TSC:-1}" = 1 ] &&
    grep -qw tsc_known_freq /proc/cpuinfo && grep -qw constant_tsc /proc/cpuinfo; then
    khz=$(awk -F': ' '/^cpu MHz/ { printf "%d", $2 * 1000; exit }' /proc/cpuinfo)
    [ -z "$khz" ] || KARGS+=" tsc_early_khz=$khz tsc=reliable"
fi
[ -z "$APPEND" ] || KARGS+=" $APPEND"
STDIN=/dev/null
if [ "$INTERACTIVE" = 1 ]; then
    KARGS+=" vmtest.shell=1"
    STDIN=/dev/stdin
fi

# The test kernel has no ACPI, so it finds its CPUs in SeaBIOS's MP table,
# which lists one CPU per package: -smp N alone (one package of N cores)
# would boot a single CPU. One package per CPU lists them all (checked
# after the run). Debian's kernel reads ACPI's MADT instead and brings up
# the same N CPUs from this topology ("smp: Brought up 1 node, 2 CPUs";
# its /init's reboot -f goes through ACPI and QEMU exits on -no-reboot as
# with the test kernel, about 15 ms after the exit status).
SMP_ARGS="$VM_SMP,sockets=$VM_SMP,cores=1,threads=1"
# A kernel that crashes before it runs /init ran nothing of ours (our
# module and the base modules are loaded by /init) and no test. Debian's
# 7.3 has twice (2026-12) taken, under multi-threaded TCG, an
# "Oops: int3" in sched_clock_cpu at "sched_clock: Marking stable": a
# vCPU still ran the breakpoint that live text patching (the static key
# flip) had already replaced. Such a boot is tried again, once
# (VM_BOOT_RETRIES), saying so; its log is kept beside the run's
# (LOG.bootN). A crash after "Run /init", or a second one, fails as ever.
boot_retries=${VM_BOOT_RETRIES:-1}
attempt=1
while :; do
echo "vm.sh: booting $BZIMAGE ($accel, ${VM_SMP} CPUs, ${VM_MEM} MiB, timeout ${TIMEOUT}s), log $LOG" >&2
start=$(date +%s%N)
qrc=0
timeout -k 10 "$TIMEOUT" "$QEMU" "${ACCEL_ARGS[@]}" -m "$VM_MEM" -smp "$SMP_ARGS" \
    -nographic -monitor none -no-reboot -nic none \
    -kernel "$BZIMAGE" -initrd "$INITRD" -append "$KARGS" \
    -chardev "stdio,id=con,signal=off,logfile=$LOG" -serial chardev:con \
    ${VM_QEMU_ARGS:-} <"$STDIN" || qrc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
secs=$((ms / 1000)).$(( (ms % 1000) / 100 ))
if [ "$attempt" -le "$boot_retries" ] && [ "$INTERACTIVE" = 0 ] &&
    ! tr -d '\r' < "$LOG" | grep -q 'Run /init as init process' &&
    ! "$HERE/check-kernel-log.sh" "$LOG" > /dev/null 2>&1; then
    first=$(tr -d '\r' < "$LOG" | grep -m1 -E 'Oops|BUG:|WARNING:|Kernel panic' || true)
    mv "$LOG" "$LOG.boot$attempt"
    echo "vm.sh: the kernel crashed before it ran /init (nothing of ours had run; ${secs}s): ${first:-see the log}; log kept at $LOG.boot$attempt; booting again" >&2
    attempt=$((attempt + 1))
    continue
fi
break
done

fail=()
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    fail+=("timed out after ${TIMEOUT}s (QEMU killed)")
elif [ "$qrc" != 0 ]; then
    fail+=("QEMU exited with status $qrc")
fi
status=$(tr -d '\r' < "$LOG" | sed -n 's/.*vmtest-exit-status=\([0-9]*\).*/\1/p' | tail -n1)
if [ -z "$status" ]; then
    [ "${#fail[@]}" -gt 0 ] || fail+=("the guest did not report an exit status (crash or panic?)")
elif [ "$status" != 0 ]; then
    fail+=("the guest command exited with status $status")
fi
if ! "$HERE/check-kernel-log.sh" "$LOG" >&2; then
    fail+=("kernel reports in the console log")
fi
cpus=$(tr -d '\r' < "$LOG" | sed -n 's/.*smp: Brought up [0-9]* nodes*, \([0-9]*\) CPUs*.*/\1/p' | head -n1)
[ -z "$status" ] || [ "$cpus" = "$VM_SMP" ] ||
    fail+=("the guest brought up ${cpus:-an unknown number of} CPUs, not $VM_SMP")

echo "vm.sh: run took ${secs}s ($accel)" >&2
if [ "${#fail[@]}" -gt 0 ]; then
    for f in "${fail[@]}"; do echo "vm.sh: FAIL: $f" >&2; done
    echo "vm.sh: console log kept at $LOG" >&2
    exit 1
fi
[ "$KEEP_LOG" = 1 ] || [ "${VM_KEEP_LOG:-0}" = 1 ] || rm -f "$LOG"
exit 0
