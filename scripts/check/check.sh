#!/usr/bin/env bash
# `make check`: set-up, kernel (cached), module with lints, formatting, host
# tests, the VM suite against both modules. The last line is the totals:
# "<n> passed, <m> failed". Exits non-zero on any failure.
set -uo pipefail
. "$(dirname "$0")/../build/env.sh"
cd "$REPO"
passed=0
failed=0
start=$(date +%s)

step() { # step NAME CMD...: one pass or one fail
    local name=$1; shift
    echo "=== $name"
    local t0=$SECONDS
    if "$@"; then
        echo "ok - $name"; passed=$((passed + 1))
    else
        echo "not ok - $name"; failed=$((failed + 1))
    fi
    echo "# took $((SECONDS - t0)) s"
}

finish() {
    echo "# make check took $(( $(date +%s) - start )) s"
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
}

step bootstrap scripts/build/bootstrap.sh || true
# Debian 13's root, kernel image and Rust metadata, and the DKMS test's
# dependency root, are made (once per machine, cached) in the background
# while the test kernel compiles: on a fresh machine most of their time is
# downloads and unpacking, which leave the CPUs to the compiler. The
# foreground steps below run the same commands (then cache hits) and are
# what counts: a failure here shows there again, with its log.
mkdir -p build
( scripts/build/debian13.sh kernel && scripts/build/debian13.sh kdir &&
    scripts/check/deb-test.sh --prepare ) >build/debian13-prep.log 2>&1 &
prep=$!
t0=$SECONDS
if ! kdir=$(scripts/build/kernel.sh release); then
    failed=$((failed + 1)); echo "not ok - test kernel"; finish
fi
passed=$((passed + 1)); echo "ok - test kernel ($kdir)"
echo "# took $((SECONDS - t0)) s"

step "Kbuild and Makefile: clean pass, refusals (x86-64, CONFIG_RUST, Rust metadata, CONFIG_VHOST_NET=y, version), make help, version, make clean" scripts/build/kbuild-test.sh "$kdir"
step "module (CLIPPY=1, warnings are errors)" scripts/build/module.sh "$kdir"
# Debian 13's stock kernel (trixie-backports): the root, the Rust metadata
# and Debian's kernel image and modules are made once per machine and
# kernel (scripts/build/debian13.sh); the module is built with Debian 13's
# rustc 1.85.1 (the minimum supported) in a copy of the sources.
t0=$SECONDS
wait "$prep" || echo "# the background Debian 13 preparation failed (build/debian13-prep.log); the steps below say why"
echo "# waited $((SECONDS - t0)) s for the background Debian 13 preparation"
if dkdir=$(scripts/build/debian13.sh kernel) && scripts/build/debian13.sh kdir >/dev/null; then
    passed=$((passed + 1)); echo "ok - Debian 13 kernel $(scripts/build/debian13.sh kver) ($dkdir)"
else
    failed=$((failed + 1)); echo "not ok - Debian 13 kernel (root, Rust metadata, Debian's image)"; dkdir=""
fi
echo "# took $((SECONDS - t0)) s"
dko=$REPO/build/debian13/vhost_net_rs.ko
rm -f "$dko"
[ -z "$dkdir" ] ||
    step "module for Debian 13's kernel (rustc 1.85.1, gcc-14, its Clippy set, warnings are errors; imports in Debian's Module.symvers)" \
        scripts/build/module.sh debian13 "$REPO/build/debian13"
[ ! -f "$dko" ] ||
    step "make modules_install for Debian's kernel: signed with the kernel's configured key (a throw-away one), depmod, unsigned without a key" \
        scripts/check/sign-test.sh "$REPO/build/debian13"
# The DKMS package (make deb) installed on a fresh Debian 13 root; the .ko
# DKMS built there is the one the guests on Debian's kernel run on below.
dkms_ko=$REPO/build/deb-test/vhost_net_rs.ko
rm -f "$dkms_ko"
[ -z "$dkdir" ] || step "DKMS package: installed on a fresh Debian 13 root, builds for $(scripts/build/debian13.sh kver); remove and purge leave no file" \
    env DEB_TEST_KO="$dkms_ko" scripts/check/deb-test.sh
step "rustfmt --check" scripts/build/fmt.sh check
step "shell scripts parse (bash -n; busybox sh -n for the test VM's)" scripts/check/sh-parse.sh

# Host tests: every cargo test counts.
cargo_tests() { # cargo_tests DIR TITLE
    echo "=== host tests ($1: $2)"
    local out rc p f t0=$SECONDS
    out=$(cd "$1" && cargo test --quiet 2>&1); rc=$?
    echo "$out" | grep -E '^test result:|FAILED|panicked' || true
    p=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' | paste -sd+ | bc)
    f=$(echo "$out" | sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' | paste -sd+ | bc)
    passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
    if [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ]; then
        echo "$out" | tail -n 30; failed=$((failed + 1))
    fi
    echo "# took $((SECONDS - t0)) s"
}
cargo_tests tests/unit "src/vcore, property tests, no_std build with kernel lints"
cargo_tests tests/vmtest "harness, comparison, uapi layout"
# The module's unsafe blocks are linted by the kernel's Clippy set above;
# the test crate's (libc calls, deliberately bad pointers) by Clippy's
# default set plus this lint.
for crate in tests/vmtest bench/vbench; do
    step "$crate: clippy clean, and every unsafe block says why it is sound (clippy::undocumented_unsafe_blocks)" \
        sh -c "cd $crate && cargo clippy --quiet --release --target x86_64-unknown-linux-gnu --all-targets -- -D warnings -D clippy::undocumented_unsafe_blocks"
done
step "bench/report.py: its statistics (median confidence interval, pairing by round) on known answers" \
    /usr/bin/python3 bench/report.py --self-test
# Fuzzing src/vcore (desc_chain, interval_map, iotlb_msg), bounded (make soak
# runs long).
step "cargo fuzz, ${VHOST_FUZZ_SECS:-20} s per target (ASan)" tests/fuzz/run.sh "${VHOST_FUZZ_SECS:-20}"

# A sub-suite whose last line is its own "<n> passed, <m> failed" totals:
# they are added; a failed run that counted no failure (boot, timeout,
# kernel report) counts as one.
suite() { # suite TITLE CMD...
    local title=$1; shift
    echo "=== $title"
    local log rc totals p f t0=$SECONDS
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"; rc=${PIPESTATUS[0]}
    totals=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    rm -f "$log"
    p=${totals%% *}; f=${totals#*, }; f=${f%% *}
    [ -n "$totals" ] || { p=0; f=0; }
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $title (boot, timeout or kernel report)"; failed=$((failed + 1))
    fi
    echo "# took $((SECONDS - t0)) s"
}

if [ ! -f vhost_net_rs.ko ]; then
    echo "not ok - the module was not built: no VM stage can run"; failed=$((failed + 1))
    finish
fi
ko=$REPO/vhost_net_rs.ko

# Every test against ours and the C vhost_net, same boot: on Debian's own
# 7.3 kernel against Debian's own C module, all of them; on the 6.12 test
# kernel all but the hostile_* and process_* tests, which run on its debug
# build below (KASAN, lockdep, kmemleak), C and ours, instead (with
# VHOST_CHECK_DEBUG=0 they run here).
t612=""
[ "${VHOST_CHECK_DEBUG:-1}" = 0 ] || t612="--skip hostile_ --skip process_"
suite "VM suite on the 6.12 test kernel (ours and the C vhost_net, same boot${t612:+; hostile_*/process_* on the debug kernel})" \
    env VMTEST_ARGS="${VMTEST_ARGS:-} $t612" scripts/vm/vmcheck.sh "$kdir" "$ko"
if [ -f "$dko" ]; then
    suite "VM suite on Debian's 7.3 kernel (ours and Debian's C vhost_net, same boot)" \
        env VMCHECK_OUT="$REPO/build/vmcheck-debian13" scripts/vm/vmcheck.sh "$dkdir" "$dko"
else
    echo "not ok - no module for Debian's kernel: its VM stages cannot run"; failed=$((failed + 1))
fi
[ ! -f "$dkms_ko" ] ||
    suite "which module answers /dev/vhost-net on Debian's 7.3 kernel (the package's modprobe.d, Debian's kmod; ours built, then not)" \
        scripts/vm/modprobe-test.sh "$dkdir" "$dkms_ko" "$(ls -t "$REPO"/build/deb/vhost-net-rs-dkms_*_all.deb | head -n 1)"
step "bench smoke test (bench/bench --quick: runs, well-formed output)" \
    bench/bench --quick --out "$REPO/build/bench-quick" "$kdir" "$ko"
[ ! -f "$dko" ] ||
    step "bench smoke test on Debian's 7.3 kernel (ours and Debian's C vhost_net; VIRTIO_F_IN_ORDER where offered)" \
        bench/bench --quick --out "$REPO/build/bench-quick-debian13" "$dkdir" "$dko"
step "profile smoke test (make profile --quick: every row counted, both modules)" \
    bench/bench --quick --profile --profile-top 5 --out "$REPO/build/profile-quick" "$kdir" "$ko"
# C and ours only: the vhost=off guest adds a boot and no vhost code.
step "nested QEMU rows smoke test (make profile-qemu at 1 MiB: a row per transfer, both modules counted)" \
    bench/bench --quick --profile --qemu-only --qemu-rounds 1 --qemu-mb 1 --qemu-reps 1 --qemu-impls c,ours \
    --qemu-pin --qemu-tso 44 --profile-top 5 --out "$REPO/build/profile-quick" "$kdir" "$ko"
# Hostile-guest/process tests on the debug kernel (KASAN, lockdep,
# kmemleak, UBSAN), both modules. VHOST_CHECK_DEBUG=0 skips them. Before
# the guests: the debug kernel is built (and cached) early in a cold run.
if [ "${VHOST_CHECK_DEBUG:-1}" != 0 ]; then
    suite "hostile tests on the debug kernel (VHOST_CHECK_DEBUG=0 skips)" scripts/check/check-debug.sh --hostile
fi
# Real QEMU guests on /dev/vhost-net (nested), C and ours: the longest stage.
suite "guests (real QEMU with vhost=on in the VM, C and ours)" scripts/vm/guestcheck.sh "$kdir" "$ko"
# On Debian's kernel: Debian 13's QEMU 10 and Debian's kernel in the guest,
# which negotiates VIRTIO_F_IN_ORDER; section a (ping, MTU sweep, TCP,
# UDP) with guest A, then section i with guest I behind an emulated Intel
# IOMMU (vhost's device IOTLB; the test kernel has no IOMMU driver),
# booted once A is shut down (their nested boots are the stage's cost).
[ ! -f "$dko" ] ||
    suite "guests on Debian's 7.3 kernel (QEMU 10, in_order=on, C and ours; sections ${VHOST_D13_GUEST_SECTIONS:-ai})" \
        env GUESTCHECK_OUT="$REPO/build/guestcheck-debian13" GUESTCHECK_SECTIONS="${VHOST_D13_GUEST_SECTIONS:-ai}" \
        scripts/vm/guestcheck.sh "$dkdir" "$([ -f "$dkms_ko" ] && echo "$dkms_ko" || echo "$dko")"
finish
