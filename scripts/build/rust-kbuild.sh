#!/bin/bash
# Debian's kernel headers with the Rust metadata Debian does not ship,
# rebuilt from Debian's own linux-source and .config with Debian's own
# rustc: what an out-of-tree Rust module needs to build against a Debian
# kernel. One script for both users:
#   - scripts/build/debian13.sh kdir (inside the Debian 13 root), and
#   - the vhost-net-rs-dkms package (installed as
#     /usr/lib/vhost-net-rs/rust-kbuild, called by DKMS once per kernel;
#     its output under /var/lib/vhost-net-rs/<kver>, removed on purge).
#
# Usage: rust-kbuild.sh KVER OUT [HEADERS]
#   KVER     the kernel's ABI name (7.3.4+deb13-amd64)
#   OUT      the output directory; OUT/headers is the tree to build against
#            (make -C OUT/headers M=...), made once: a complete OUT whose
#            key (the headers' .config and Module.symvers, rustc's version)
#            still matches is reused as it is
#   HEADERS  Debian's headers tree (default /usr/src/linux-headers-KVER)
# The source is /usr/src/linux-source-X.Y.tar.xz (package linux-source-X.Y),
# X.Y from KVER. Prints OUT/headers on stdout; the build's output goes to
# stderr. Needs: rustc, rust-src, bindgen, libclang, the kernel's C
# compiler (as its .config names it), make, flex, bison, bc, libelf-dev,
# libssl-dev, python3, xz-utils.
set -euo pipefail
k=${1:?usage: rust-kbuild.sh KVER OUT [HEADERS]}
out=${2:?usage: rust-kbuild.sh KVER OUT [HEADERS]}
hdr=$(readlink -f "${3:-/usr/src/linux-headers-$k}")
up=$(echo "$k" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')    # 7.3.4+deb13-amd64 -> 7.3
src=/usr/src/linux-source-$up.tar.xz

[ -f "$hdr/.config" ] && [ -f "$hdr/Module.symvers" ] ||
    { echo "rust-kbuild: no Debian headers of $k at $hdr (install linux-headers-$k)" >&2; exit 1; }
grep -q '^CONFIG_RUST=y' "$hdr/.config" ||
    { echo "rust-kbuild: kernel $k is built without CONFIG_RUST: no Rust module can be built for it" >&2; exit 1; }
[ -f "$src" ] || { echo "rust-kbuild: no $src (install linux-source-$up)" >&2; exit 1; }

# The kernel's own C compiler, as its .config names it ("gcc-14 (Debian
# 14.2.0-19) 14.2.0" -> gcc-14): the Rust metadata and the module must be
# built by the compilers that built the kernel.
cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$hdr/.config")
command -v "$cc" >/dev/null || { echo "rust-kbuild: the kernel's compiler ${cc:-?} is not installed" >&2; exit 1; }
# The Rust metadata must be made by the very rustc that built the kernel
# (crate hashes): Debian 13's 7.3 kernels were built by trixie's rustc
# 1.85.1, not by trixie-backports' newer one.
want=$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT="\(.*\)"$/\1/p' "$hdr/.config")
have=$(rustc --version 2>/dev/null || true)
[ "$have" = "$want" ] ||
    { echo "rust-kbuild: the kernel $k was built by \"$want\"; this rustc is \"${have:-none}\" (install that rustc and its rust-src)" >&2; exit 1; }
key=$({ cat "$hdr/.config" "$hdr/Module.symvers"; rustc --version; bindgen --version; } | sha256sum | cut -c1-16)
if [ -f "$out/.vhost-complete" ] && [ "$(cat "$out/.vhost-key" 2>/dev/null)" = "$key" ]; then
    echo "$out/headers"; exit 0
fi

{
    echo "rust-kbuild: building the Rust metadata of $k from $src and Debian's .config (once per kernel, a few minutes)"
    # Resumable: an interrupted build goes on where it stopped (same key).
    [ "$(cat "$out.tmp/.vhost-key" 2>/dev/null)" = "$key" ] || rm -rf "$out.tmp"
    mkdir -p "$out.tmp/kb"
    echo "$key" >"$out.tmp/.vhost-key"
    [ -f "$out.tmp/src/.vhost-extracted" ] || {
        rm -rf "$out.tmp/src"; mkdir -p "$out.tmp/src"
        tar -C "$out.tmp/src" -xf "$src" --strip-components=1
        touch "$out.tmp/src/.vhost-extracted"
    }
    cp "$hdr/.config" "$out.tmp/kb/.config"
    cd "$out.tmp/src"
    scripts/config --file "$out.tmp/kb/.config" --set-str SYSTEM_TRUSTED_KEYS "" \
        --set-str SYSTEM_REVOCATION_KEYS "" --set-str MODULE_SIG_KEY certs/signing_key.pem
    M=(O="$out.tmp/kb" CC="$cc" HOSTCC="$cc" RUSTC=rustc BINDGEN=bindgen)
    rustver=$(rustc --version | sed -E "s/rustc ([0-9.]+).*/\1/")
    export RUST_LIB_SRC=/usr/src/rustc-$rustver/library
    [ -d "$RUST_LIB_SRC" ] || { echo "rust-kbuild: no $RUST_LIB_SRC (install rust-src)"; exit 1; }
    jobs=$(( $(nproc) + 1 ))
    make "${M[@]}" olddefconfig rustavailable
    make "${M[@]}" -j"$jobs" prepare
    make "${M[@]}" -j"$jobs" rust/
    # The headers tree as Debian ships it, copied (the package stays
    # untouched; its relative links made absolute, its kbuild scripts
    # copied), plus what it lacks for an out-of-tree Rust module: the
    # metadata and the target specification.
    h=$out.tmp/headers
    rm -rf "$h"; cp -a "$hdr" "$h"
    for l in "$h"/*; do
        [ -L "$l" ] || continue
        t=$(readlink -f "$hdr/$(basename "$l")"); rm "$l"
        if [ "$(basename "$l")" = scripts ]; then cp -a "$t" "$l"; else ln -s "$t" "$l"; fi
    done
    sed -i "s|^KBUILD_OUTPUT=.*|KBUILD_OUTPUT=$out/headers|" "$h/Makefile"
    mkdir -p "$h/rust"
    cp "$out.tmp"/kb/rust/*.rmeta "$out.tmp"/kb/rust/*.so "$h/rust/"
    cp "$out.tmp/kb/scripts/target.json" "$h/scripts/"
    # The exported Rust symbols of the rebuilt kernel crate must be
    # Debian's, name for name, or the metadata is not its kernel's.
    grep -ho "^EXPORT_SYMBOL_RUST_GPL([^)]*)" "$out.tmp"/kb/rust/exports_*_generated.h |
        sed "s/.*(\(.*\))/\1/" | grep "^_R" | sort -u >"$out.tmp/rust-exports"
    awk '$3 ~ /^vmlinux$/ && $2 ~ /^_R/ {print $2}' "$h/Module.symvers" | sort -u >"$out.tmp/debian-rust-exports"
    if ! cmp -s "$out.tmp/rust-exports" "$out.tmp/debian-rust-exports"; then
        echo "rust-kbuild: the rebuilt Rust exports differ from Debian's Module.symvers:"
        diff "$out.tmp/rust-exports" "$out.tmp/debian-rust-exports" | head
        exit 1
    fi
    # Only the headers tree is kept (the source and the objects are large).
    rm -rf "$out.tmp/src" "$out.tmp/kb"
    touch "$out.tmp/.vhost-complete"
    rm -rf "$out"; mv "$out.tmp" "$out"
} >&2
echo "$out/headers"
