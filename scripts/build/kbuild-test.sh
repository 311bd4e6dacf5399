#!/usr/bin/env bash
# Kbuild's refusals and the Makefile's out-of-tree conventions, in copies of
# the sources (the checkout's own build products are not touched):
#  - kbuild's clean pass, which reads Kbuild without the kernel's
#    configuration, must succeed (a fresh clone's first module build runs it);
#  - a kernel it cannot serve is refused by Kbuild, by name, in one line:
#    without CONFIG_X86_64, without CONFIG_RUST, without the Rust metadata
#    of its build (Debian's headers), with the C vhost_net built in
#    (CONFIG_VHOST_NET=y), of another version (6.1); the configuration is
#    overridden on make's command line, as a kernel configured so would
#    have it, and nothing is compiled;
#  - `make` with a KDIR that is no kernel tree says so in one line;
#    `make help` names the targets and variables;
#  - a build with the caller's toolchain (`make KDIR=...`, no Clippy, no
#    -Werror) of a tree without .git takes its version from the VERSION
#    file (as the DKMS package's sources) and VHOST_NET_RS_VERSION over it,
#    and `modinfo -F version` shows it; then `make clean` leaves exactly
#    the files that were there before the build.
# Usage: kbuild-test.sh KDIR
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "kbuild-test: $*"; exit 1; }

mkdir "$tmp/kb"
cp "$REPO/Kbuild" "$tmp/kb/"
km() { make -C "$kdir" M="$tmp/kb" "${KMAKE_ARGS[@]}" "$@" 2>&1; }
out=$(km clean) || { echo "$out" | tail -n 5; fail "the clean pass failed"; }

refused() { # refused WHAT EXPECTED-MESSAGE MAKE-VARIABLES...
    local what=$1 msg=$2; shift 2
    if out=$(km "$@" modules); then
        fail "a kernel $what was not refused"
    fi
    local lines
    lines=$(echo "$out" | grep -c 'vhost_net_rs:' || true)
    grep -q "vhost_net_rs: $msg" <<<"$out" && [ "$lines" = 1 ] \
        || { echo "$out" | tail -n 5; fail "a kernel $what: refused, but not in one line by its guard ('$msg')"; }
}
refused "without CONFIG_X86_64" "x86-64 only" CONFIG_X86_64=n
refused "without CONFIG_RUST" "this kernel has no CONFIG_RUST" CONFIG_RUST=n
refused "with CONFIG_VHOST_NET=y" "this kernel has the C vhost_net built in" CONFIG_VHOST_NET=y
refused "without Rust metadata" "this kernel tree has no Rust metadata" vhost_rust_meta="$tmp/no-such.rmeta"
refused "of version 6.1" "Linux 6.1 is not supported" VERSION=6 PATCHLEVEL=1

# The Makefile: a missing kernel tree, make help.
mkdir "$tmp/src"
cp -a "$REPO/Kbuild" "$REPO/Makefile" "$REPO/src" "$tmp/src/"
(cd "$tmp/src" && make clean)
if out=$(make -C "$tmp/src" --no-print-directory KDIR="$tmp/no-such-kernel" 2>&1); then
    fail "make with a KDIR that does not exist succeeded"
fi
[ "$(echo "$out" | wc -l)" = 1 ] && grep -q "no kernel build tree at $tmp/no-such-kernel" <<<"$out" \
    || { echo "$out"; fail "make with a missing KDIR: not one clear line"; }
out=$(make -C "$tmp/src" --no-print-directory help)
# Here-strings, not `echo "$out" | grep -q`: bash's echo writes a line at a
# time, and once grep -q has matched, a later line's write can meet the
# closed pipe (SIGPIPE), which pipefail turns into a failure (a fresh
# machine's make check, 2026-12-07: "make help does not name CC").
for w in modules_install clean KDIR KERNEL LLVM RUSTC BINDGEN CC INSTALL_MOD_PATH VHOST_NET_RS_VERSION demo check; do
    grep -qw -- "$w" <<<"$out" || fail "make help does not name $w"
done

# A build the way a package builds it, its version, and make clean.
(cd "$tmp/src" && find . | sort) > "$tmp/before"
echo 0.0~kbuild-test > "$tmp/src/VERSION"
make -C "$tmp/src" --no-print-directory -s KDIR="$kdir" "${KMAKE_ARGS[@]}" -j"$NPROC" >"$tmp/build.log" 2>&1 \
    || { tail -n 20 "$tmp/build.log"; fail "make KDIR=... failed"; }
v=$(/sbin/modinfo -F version "$tmp/src/vhost_net_rs.ko")
[ "$v" = 0.0~kbuild-test ] || fail "modinfo -F version is '$v', not the VERSION file's 0.0~kbuild-test"
make -C "$tmp/src" --no-print-directory -s KDIR="$kdir" "${KMAKE_ARGS[@]}" VHOST_NET_RS_VERSION=1.2-x >"$tmp/build.log" 2>&1 \
    || { tail -n 20 "$tmp/build.log"; fail "make KDIR=... VHOST_NET_RS_VERSION=... failed"; }
v=$(/sbin/modinfo -F version "$tmp/src/vhost_net_rs.ko")
[ "$v" = 1.2-x ] || fail "modinfo -F version is '$v', not VHOST_NET_RS_VERSION's 1.2-x"
rm "$tmp/src/VERSION"
make -C "$tmp/src" --no-print-directory clean
(cd "$tmp/src" && find . | sort) > "$tmp/after"
left=$(comm -13 "$tmp/before" "$tmp/after")
[ -z "$left" ] || fail "make clean left $(echo "$left" | wc -l) build products, first: $(echo "$left" | head -n1)"

echo "kbuild-test: clean pass ok; refused in one line each: non-x86-64, no CONFIG_RUST, no Rust metadata, CONFIG_VHOST_NET=y, Linux 6.1;" \
     "a missing KDIR said in one line; make help complete; version from VERSION and VHOST_NET_RS_VERSION; make clean leaves nothing"
