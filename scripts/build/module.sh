#!/usr/bin/env bash
# Build vhost_net_rs.ko at the repository root.
# Usage: module.sh [KDIR]   (default: the cached test kernel)
# Lints: CLIPPY=1 with the kernel's lint set, Rust and C warnings are errors.
set -euo pipefail
. "$(dirname "$0")/env.sh"
kdir=${1:-$(kernel_dir release)}
[ -f "$kdir/Makefile" ] || { echo "module: no kernel build at $kdir" >&2; exit 1; }
# Objects built against another kernel must go: kbuild's dependency files
# name the old tree's headers, so it would not notice the change itself.
stamp=$REPO/.vhost-kdir
if [ "$(cat "$stamp" 2>/dev/null)" != "$kdir" ]; then
    make -C "$kdir" M="$REPO" "${KMAKE_ARGS[@]}" clean >/dev/null
    echo "$kdir" > "$stamp"
fi
make -C "$kdir" M="$REPO" "${KMAKE_ARGS[@]}" CLIPPY=1 \
    KCFLAGS=-Werror KRUSTFLAGS=-Dwarnings -j"$NPROC" modules
