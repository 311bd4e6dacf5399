#!/usr/bin/env bash
# Real QEMU guests on /dev/vhost-net, against the C vhost_net and ours: one
# test-VM boot per module, in which tests/guest/outer-check.sh starts real
# QEMU guests (nested TCG) with -netdev tap,vhost=on,vhostforce=on and runs
# the scenarios (ping across MTUs, TCP and UDP both ways, offloads off, two
# NICs, multiqueue, a bridge between guests, VLAN, live migration, shutdown
# and module reload). Then the two runs are compared.
#
# Usage: guestcheck.sh KDIR MODULE.ko
# Environment:
#   GUESTCHECK_OUT      work directory (default build/guestcheck in the repo)
#   GUESTCHECK_TIMEOUT  hard timeout of each VM run in seconds (default 2700;
#                       a run took 1400-1700 s on a slow 2-core machine)
#   GUESTCHECK_IMPLS    which modules, in order (default "c ours")
#   GUESTCHECK_SECTIONS scenario sections of tests/guest/outer-check.sh
#                       (default abcdef; "ce": multiqueue and migration; "i",
#                       a guest behind an emulated Intel IOMMU, needs a guest
#                       kernel with CONFIG_INTEL_IOMMU: Debian's)
#   GUESTCHECK_MIGRATE  the guest migrated in section e: B (default, one
#                       NIC) or A (two NICs, one multiqueue; see testing.rst)
#   GUESTCHECK_MIG_ROUNDS migrations in a row in section m (default 4; m is
#                       not in the default sections)
#   GUESTCHECK_DEV      more virtio-net-pci properties for the guests' NICs
#                       (default: in_order=on on Debian's kernel, whose
#                       vhost_net offers VIRTIO_F_IN_ORDER, none otherwise)
#   GUESTCHECK_CPU      the inner guests' -cpu (default: max for Debian's
#                       kernel, whose boot under TCG is several times
#                       slower on QEMU's default model; none otherwise)
#   GUESTCHECK_VHOST    on (default) or off: off runs the guests on QEMU's
#                       userspace virtio-net (to tell vhost's faults from
#                       QEMU's; the vhost checks then fail)
#   VM_MEM (default here 3072), VM_SMP, VMTEST_ACCEL: see scripts/vm/vm.sh
#
# Prints both runs' TAP lines and "# metric" lines, then a side-by-side
# table of the metrics. The runs must have the same test names and the same
# value for the metrics that do not depend on timing (negotiated features,
# vhost workers, reference counts, channels, migration status); any
# difference is one more failure. The last line is "<n> passed, <m> failed"
# over both runs plus the comparison. Exit status 0 only if nothing failed.
# Console logs: OUT/console-{c,ours}.log (kept).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
[ $# -eq 2 ] || { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$1 MODULE=$2
OUT=${GUESTCHECK_OUT:-$REPO/build/guestcheck}
[ -f "$KDIR/.vhost-complete" ] || { echo "guestcheck: $KDIR is not a complete kernel build" >&2; exit 2; }
[ -f "$MODULE" ] || { echo "guestcheck: $MODULE: no such file" >&2; exit 2; }
mkdir -p "$OUT"
dev_default="" cpu_default=""
[ ! -f "$KDIR/.vhost-debian" ] || { dev_default=in_order=on; cpu_default=max; }
GUESTCHECK_DEV=${GUESTCHECK_DEV-$dev_default}
GUESTCHECK_CPU=${GUESTCHECK_CPU-$cpu_default}

if ! img=$("$HERE/guest-image.sh" "$KDIR" "$OUT" "$(realpath "$MODULE")"); then
    echo "# guestcheck: building the images failed"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0 failed=0
for impl in ${GUESTCHECK_IMPLS:-c ours}; do
    log=$OUT/console-$impl.log
    echo "# ---- guests on the $impl module ($( [ $impl = c ] && echo vhost_net || echo vhost_net_rs ))"
    start=$(date +%s)
    VM_MEM=${VM_MEM:-3072} "$HERE/vm.sh" -k "$KDIR" -i "$img" -t "${GUESTCHECK_TIMEOUT:-2700}" \
        -l "$log" -c "GUESTCHECK_SECTIONS=${GUESTCHECK_SECTIONS:-abcdef} GUESTCHECK_MIGRATE=${GUESTCHECK_MIGRATE:-B} GUESTCHECK_MIG_ROUNDS=${GUESTCHECK_MIG_ROUNDS:-4} GUESTCHECK_VHOST=${GUESTCHECK_VHOST:-on} GUESTCHECK_DEV=$GUESTCHECK_DEV GUESTCHECK_CPU=$GUESTCHECK_CPU /bin/guest-check.sh $impl" 2>&1 |
        stdbuf -oL tr -d '\r' | grep --line-buffered -E '^(ok|not ok) |^# |^vm\.sh: |^[0-9]+ passed, [0-9]+ failed$'
    rc=${PIPESTATUS[0]}
    echo "# $impl: $(( $(date +%s) - start )) s"
    totals=$(tr -d '\r' < "$log" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)
    if [ -n "$totals" ]; then
        p=${totals%% *}; f=${totals#*, }; f=${f%% *}
        passed=$((passed + p)); failed=$((failed + f))
    fi
    if [ "$rc" != 0 ] && { [ -z "$totals" ] || [ "${f:-0}" = 0 ]; }; then
        echo "not ok - $impl: the VM run failed (boot, timeout or kernel report; see above)"
        failed=$((failed + 1))
    fi
done

# Comparison (only when both ran).
c=$OUT/console-c.log o=$OUT/console-ours.log
# (" c ours " has " c " and " ours " sharing a space: test each alone)
case " ${GUESTCHECK_IMPLS:-c ours} " in *" c "*) ;; *) c="" ;; esac
case " ${GUESTCHECK_IMPLS:-c ours} " in *" ours "*) ;; *) c="" ;; esac
if [ -n "$c" ] && [ -f "$c" ] && [ -f "$o" ]; then
    metrics() { tr -d '\r' < "$1" | sed -n 's/^# metric \([^ ]*\) \(.*\)$/\1\t\2/p'; }
    names() { # the test names, without measurements and module names
        tr -d '\r' < "$1" | sed -n 's/^\(not \)\{0,1\}ok [0-9]* - //p' |
            sed 's/ (.*//; s/vhost_net_rs/MODULE/g; s/vhost_net/MODULE/g'
    }
    echo "# ---- comparison: C vhost_net | vhost_net_rs"
    join -t $'\t' -a1 -a2 -e '-' -o 0,1.2,2.2 <(metrics "$c" | sort -k1,1) <(metrics "$o" | sort -k1,1) |
        awk -F'\t' '{ printf "#   %-26s %-28s | %s\n", $1, $2, $3 }'
    diffs=0
    exact='^(vhost_threads_|refcnt_|features_|channels_|migration_status|iommu_domain_|dmar_faults_)'
    while IFS=$'\t' read -r k a b; do
        if [[ $k =~ $exact ]] && [ "$a" != "$b" ]; then
            echo "#   DIFFERENT: $k: c=$a ours=$b"; diffs=$((diffs + 1))
        fi
    done < <(join -t $'\t' -a1 -a2 -e '-' -o 0,1.2,2.2 <(metrics "$c" | sort -k1,1) <(metrics "$o" | sort -k1,1))
    if ! diff <(names "$c") <(names "$o") >/dev/null; then
        echo "#   DIFFERENT: the test lists differ:"; diff <(names "$c") <(names "$o") | sed 's/^/#     /'
        diffs=$((diffs + 1))
    fi
    if [ "$diffs" = 0 ]; then
        echo "ok - C and ours agree on features, workers, references, channels, migration, test list"
        passed=$((passed + 1))
    else
        echo "not ok - C and ours differ ($diffs)"
        failed=$((failed + 1))
    fi
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
