# Shared functions of the outer VM's nested-QEMU scripts (sourced by
# /bin/guest-demo.sh and /bin/guest-check.sh; busybox sh).
#
# A guest NAME is a QEMU process running the same bzImage with the inner
# initramfs (tests/guest/agent.sh serving commands on its ttyS1). Files:
#   /tmp/NAME.in, .out   the control pipe (QEMU -chardev pipe)
#   /tmp/NAME.log        everything the agent printed
#   /tmp/NAME.console    the inner kernel's console (ttyS0)
#   /tmp/NAME.qemu.log   QEMU's stdout and stderr
#   /tmp/NAME.mon        QEMU's human monitor (unix socket; nettool hmp)
#   /tmp/NAME.pid        QEMU's pid

# The command counter lives in a file: g runs in $(...) subshells too.
echo 0 > /tmp/gseq
QEMU=/usr/bin/qemu-system-x86_64
# /usr/bin links to /bin in the image, and QEMU looks for its modules and
# firmware relative to the directory of its executable (/bin/../lib/...):
# name the real places.
export QEMU_MODULE_DIR=/usr/lib/x86_64-linux-gnu/qemu
QEMU_FW="-L /usr/share/qemu -L /usr/share/seabios"
# The outer VM's clock options (tsc_early_khz=, tsc=, from scripts/vm/vm.sh -a)
# hold for the inner guests too: under TCG, nested or not, the guest's TSC
# is the host's, and calibrating it against the emulated PIT on a loaded
# machine gives a clock that runs several times too fast.
TSC_ARGS=$(tr ' ' '\n' < /proc/cmdline | grep -E '^tsc(_early_khz)?=' | tr '\n' ' ')
# Nested TCG on a loaded machine starves the inner guests' vCPU for tens of
# seconds: their soft-lockup and RCU-stall detectors would report that (it
# says nothing about vhost, which runs in the outer kernel, whose log
# scripts/vm/vm.sh checks). Real reports (BUG, WARNING, Oops) still count.
# no_timer_check: the IO-APIC timer check counts ticks while the vCPU may
# be starved; Debian's kernel once panicked there ("IO-APIC + timer
# doesn't work!", section a's C run, 2026-12-07).
INNER_ARGS="$TSC_ARGS nowatchdog rcupdate.rcu_cpu_stall_suppress=1 no_timer_check"
# The guests' RAM is 256 MiB and 8 KiB, not 256 MiB: a work-around for a
# QEMU bug that corrupts live-migrated TCG guests. QEMU before 9.0 (commit
# 03bfc2188f, "physmem: Fix migration dirty bitmap coherency with TCG memory
# access"; the test VM runs Debian's 7.2) clears a RAM block's migration
# dirty bits without resetting the TCG TLB's not-dirty marks whenever the
# block's length is a multiple of 64 pages, so later stores through cached
# TLB entries are never sent and the destination gets stale pages (its
# kernel then dies in slab or page-table code). That happened with vhost=off
# too, so it is not vhost's. A length that is not a multiple of 256 KiB
# takes QEMU's per-page path, which resets the TLB marks.
: "${GUEST_MEM:=262152k}"

now() { cut -d' ' -f1 /proc/uptime; }
# elapsed START: seconds since START (a now() value), one decimal
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# qemu_start NAME QEMU-ARGS...: start a guest in the background (with
# GUEST_APPEND, if set, added to its kernel command line)
qemu_start() {
    local name=$1
    shift
    rm -f /tmp/$name.in /tmp/$name.out
    mkfifo /tmp/$name.in /tmp/$name.out
    : > /tmp/$name.log
    cat /tmp/$name.out >> /tmp/$name.log &
    $QEMU $QEMU_FW -accel tcg ${GUESTCHECK_CPU:+-cpu $GUESTCHECK_CPU} -m "$GUEST_MEM" -smp 1 -nodefaults -display none -no-reboot \
        -kernel /guest/bzImage -initrd /guest/initramfs.cpio.gz \
        -append "console=ttyS0 panic=-1 printk.devkmsg=on $INNER_ARGS${GUEST_APPEND:+ $GUEST_APPEND}" \
        -serial file:/tmp/$name.console \
        -chardev pipe,id=ctl,path=/tmp/$name -serial chardev:ctl \
        -monitor unix:/tmp/$name.mon,server=on,wait=off \
        "$@" >/tmp/$name.qemu.log 2>&1 &
    echo $! > /tmp/$name.pid
}

qpid() { cat /tmp/$1.pid; }
alive() { kill -0 "$(qpid "$1")" 2>/dev/null; }

# gwait NAME SECONDS: wait for the agent's @@READY; 1 if QEMU died or timed out
gwait() {
    local name=$1 t=$2 i=0
    while ! grep -q '^@@READY' /tmp/$name.log; do
        if ! alive "$name"; then
            echo "# $name: QEMU exited before the guest was ready:"
            sed 's/^/#   /' /tmp/$name.qemu.log
            tail -n 20 /tmp/$name.console | sed 's/^/#   console: /'
            return 1
        fi
        i=$((i + 1))
        [ $i -le $((t * 2)) ] || { echo "# $name: not ready after ${t}s"; tail -n 20 /tmp/$name.console | sed 's/^/#   console: /'; return 1; }
        usleep 500000
    done
}

# g NAME 'COMMAND' [TIMEOUT]: run a shell command in the guest, print its
# output, return its exit status (255: no answer).
g() {
    local name=$1 cmd=$2 t=${3:-120} start enc i=0 GSEQ
    GSEQ=$(($(cat /tmp/gseq) + 1))
    echo $GSEQ > /tmp/gseq
    start=$(wc -l < /tmp/$name.log)
    enc=$(printf '%s' "$cmd" | base64 -w0)
    timeout 10 sh -c "echo '@@CMD $GSEQ $enc' > /tmp/$name.in" ||
        { echo "# g $name: cannot write the control pipe"; return 255; }
    while ! grep -q "^@@END $GSEQ " /tmp/$name.log; do
        i=$((i + 1))
        if [ $i -gt $((t * 5)) ] || ! alive "$name"; then
            echo "# g $name: no answer to: $cmd"
            return 255
        fi
        usleep 200000
    done
    tail -n +$((start + 1)) /tmp/$name.log | sed -n "/^@@END $GSEQ /q;p"
    return "$(sed -n "s/^@@END $GSEQ \([0-9]*\).*/\1/p" /tmp/$name.log | tail -n1)"
}

# gquit NAME: end the guest (the agent exits, /init reboots, QEMU exits)
gquit() {
    local name=$1 i=0
    g "$name" exit 30 >/dev/null
    while alive "$name"; do
        i=$((i + 1))
        if [ $i -gt 120 ]; then
            echo "# $name: QEMU still running 60 s after the guest's exit; killing it"
            kill "$(qpid "$name")"
            return 1
        fi
        usleep 500000
    done
}

# vhost_threads NAME: "tid comm utime+stime(seconds)" for each vhost worker
# (a thread of QEMU's process named vhost-<pid>)
vhost_threads() {
    local pid t
    pid=$(qpid "$1")
    for t in /proc/$pid/task/*; do
        case $(cat $t/comm 2>/dev/null) in
            vhost-*) awk '{ printf "%s %s %.2f\n", $1, substr($2, 2, length($2) - 2), ($14 + $15) / 100 }' $t/stat ;;
        esac
    done
}

# guest_if NAME MAC: the guest's interface with that MAC
guest_if() {
    g "$1" "for i in /sys/class/net/*; do [ \"\$(cat \$i/address)\" = $2 ] && echo \${i##*/}; done; true"
}

# tapstat IFACE: "rx_packets rx_bytes tx_packets tx_bytes"
tapstat() {
    local s=/sys/class/net/$1/statistics
    echo "$(cat $s/rx_packets) $(cat $s/rx_bytes) $(cat $s/tx_packets) $(cat $s/tx_bytes)"
}

# ping_loss OUTPUT: the loss percentage ping printed
ping_loss() { echo "$1" | sed -n 's/.* \([0-9.]*\)% packet loss.*/\1/p'; }

# field KEY LINE: the value of KEY=value in a nettool line
field() { echo "$2" | tr ' ' '\n' | sed -n "s|^$1=||p" | head -n1; }
# stream_ok SEND-LINE RECV-LINE: nettool's sender and receiver saw the same
# stream (same FNV hash) and the receiver verified every byte
stream_ok() {
    [ -n "$(field fnv "$1")" ] && [ "$(field fnv "$1")" = "$(field fnv "$2")" ] &&
        [ "$(field verify "$2")" = ok ]
}

# Kernel reports in an inner console log (the markers of
# scripts/vm/check-kernel-log.sh).
console_reports() {
    tr -d '\r' < "$1" | grep -E 'WARNING: CPU|BUG: |kernel BUG at|Oops: |general protection fault|KASAN: |UBSAN: |Kernel panic|Call Trace:|INFO: task .* blocked|rcu: INFO: .*detected stall|unreferenced object'
}
