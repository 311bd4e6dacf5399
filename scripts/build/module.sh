#!/usr/bin/env bash
# Build vhost_net_rs.ko at the repository root.
# Usage: module.sh [KDIR]      against a kernel build tree (default: the
#                              cached test kernel)
#        module.sh debian13 [DIR]
#                              against Debian 13's trixie-backports kernel:
#                              Debian's headers (with the Rust metadata
#                              rebuilt, scripts/build/debian13.sh) and Debian
#                              13's own toolchain, inside the Debian 13 root;
#                              with DIR (under the repository), in a copy of
#                              the sources there, so that the test kernel's
#                              module at the root stays (make check holds both)
# Lints: CLIPPY=1 with the kernel's lint set, Rust and C warnings are errors
# (make check); VHOST_STRICT=0 (make KERNEL=test|debian13) builds without
# Clippy and with warnings as warnings.
# The version modinfo shows: VHOST_NET_RS_VERSION if set, else as Kbuild
# finds it (a VERSION file, else git describe of this checkout); passed
# explicitly here because the Debian 13 build runs where there is no git.
set -euo pipefail
. "$(dirname "$0")/env.sh"
target=${1:-$(kernel_dir release)}
if [ "${VHOST_STRICT:-1}" = 1 ]; then
    lint=(CLIPPY=1 KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings)
else
    lint=()
fi
: "${VHOST_NET_RS_VERSION:=$(cat "$REPO/VERSION" 2>/dev/null || git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)}"
lint+=(VHOST_NET_RS_VERSION="$VHOST_NET_RS_VERSION")

# Objects built against another kernel must go: kbuild's dependency files
# name the old tree's headers, so it would not notice the change itself.
# $1: the module's source tree; $2: the kernel tree (as the stamp names
# it); the rest: how to run make in it.
clean_if_other() {
    local stamp=$1/.vhost-kdir tree=$2; shift 2
    if [ "$(cat "$stamp" 2>/dev/null)" != "$tree" ]; then
        # kbuild's clean pass needs no configuration: any tree cleans.
        "$@" clean >/dev/null
        echo "$tree" > "$stamp"
    fi
}

if [ "$target" = debian13 ]; then
    tree=$REPO
    if [ -n "${2:-}" ]; then
        mkdir -p "$2"; tree=$(realpath "$2")
        case $tree in "$REPO"/*) ;; *) echo "module: $2 must be under $REPO (the Debian 13 root sees only it)" >&2; exit 2 ;; esac
        rsync -a --delete --exclude='*.o' --exclude='.*.cmd' --exclude='*.ko' "$REPO/Kbuild" "$REPO/src" "$tree/"
    fi
    host_kdir=$("$REPO/scripts/build/debian13.sh" kdir)
    root=$("$REPO/scripts/build/debian13.sh" root)
    kdir=${host_kdir#"$root"}
    # Debian's kernel is built with gcc-14 and rustc 1.85.1: the module must
    # be too (the Rust metadata is that compiler's).
    dmake=("$REPO/scripts/build/debian13.sh" run make -C "$kdir" M="$tree"
           CC=gcc-14 HOSTCC=gcc-14 RUSTC=rustc BINDGEN=bindgen CLIPPY_DRIVER=clippy-driver)
    clean_if_other "$tree" "$host_kdir" "${dmake[@]}"
    "${dmake[@]}" "${lint[@]}" -j"$NPROC" modules
    # Every Rust symbol the module imports must be one Debian's kernel
    # exports (modpost checks against the rebuilt tree's view; this checks
    # against Debian's own Module.symvers, so metadata of another build of
    # the kernel cannot slip through).
    missing=$(comm -23 <(nm -u "$tree/vhost_net_rs.ko" | awk '$2 ~ /^_R/ {print $2}' | sort -u) \
                       <(awk '$2 ~ /^_R/ {print $2}' "$host_kdir/Module.symvers" | sort -u))
    if [ -n "$missing" ]; then
        echo "module: vhost_net_rs.ko imports Rust symbols Debian's kernel does not export ($(echo "$missing" | wc -l), first: $(echo "$missing" | head -n1)); the Rust metadata is not that kernel's: remove $host_kdir and rebuild" >&2
        rm -f "$tree/vhost_net_rs.ko"
        exit 1
    fi
    exit 0
fi

kdir=$target
[ -f "$kdir/Makefile" ] || { echo "module: no kernel build at $kdir" >&2; exit 1; }
clean_if_other "$REPO" "$kdir" make -C "$kdir" M="$REPO" "${KMAKE_ARGS[@]}"
make -C "$kdir" M="$REPO" "${KMAKE_ARGS[@]}" "${lint[@]}" -j"$NPROC" modules
