#!/bin/sh
# The inner guest's command (baked into its initramfs as /bin/agent.sh; run
# by the vmtest /init of scripts/vm/initramfs.sh). It serves commands from the
# outer VM on the second serial port (ttyS1; the console is ttyS0):
#   in:  "@@CMD <seq> <base64 of a shell command>"
#   out: the command's output, then "@@END <seq> <exit status>"
#   "@@CMD <seq> <base64 of 'exit'>" ends the agent (and the guest: /init
#   reboots, QEMU runs with -no-reboot).
# "@@READY" is printed once at start.
tty=/dev/ttyS1
stty -F $tty raw -echo 2>/dev/null
exec <$tty >$tty 2>&1
echo "@@READY $(cat /proc/uptime)"
while IFS= read -r line; do
    set -- $line
    [ "$1" = "@@CMD" ] && [ $# = 3 ] || continue
    cmd=$(echo "$3" | base64 -d)
    if [ "$cmd" = exit ]; then
        echo "@@END $2 0"
        exit 0
    fi
    # A subshell, not sh -c into a file and cat: under nested TCG every
    # fork and exec is slow, and this runs for each of the outer VM's
    # commands. A command's background jobs redirect their output.
    (eval "$cmd") </dev/null 2>&1
    echo "@@END $2 $?"
done
