#!/usr/bin/env bash
# Build the test kernel (once per machine and input), cached outside the repo.
# Usage: kernel.sh [release|debug]   Prints the build directory on stdout.
set -euo pipefail
. "$(dirname "$0")/env.sh"
variant=${1:-release}
out=$(kernel_dir "$variant")
if [ -f "$out/.vhost-complete" ]; then
    echo "$out"
    exit 0
fi

pkgver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
src=$VHOST_CACHE/linux-source-$pkgver
if [ ! -f "$src/.vhost-extracted" ]; then
    need_disk "$VHOST_CACHE" 3 "kernel: the source (1.7 GiB) and the build (0.4-0.6 GiB)"
    echo "kernel: extracting linux-source $pkgver into $src (once per machine, about 1 minute)" >&2
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    tar -C "$src.tmp" -xf /usr/src/linux-source-6.12.tar.xz --strip-components=1
    touch "$src.tmp/.vhost-extracted"
    mv "$src.tmp" "$src"
fi

need_disk "$VHOST_CACHE" 1 "kernel: the $variant build (0.4-0.6 GiB)"
echo "kernel: building the $variant kernel into $out (once per machine; usually 6-13 minutes on 2 cores; log: $out/build.log)" >&2
mkdir -p "$out"
frags=("$REPO/kconfig/base.config")
[ "$variant" = debug ] && frags+=("$REPO/kconfig/debug.config")
# An interrupted build resumes (make is incremental); the directory name
# already pins every input, so its configuration never needs redoing.
[ -f "$out/.vhost-configured" ] || {
    make -C "$src" O="$out" "${KMAKE_ARGS[@]}" tinyconfig
    # merge_config.sh warns about every tinyconfig value the fragment overrides.
    (cd "$out" && "$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" "${frags[@]}")
    make -C "$src" O="$out" "${KMAKE_ARGS[@]}" olddefconfig
    touch "$out/.vhost-configured"
} >"$out/config.log" 2>&1 || { cat "$out/config.log" >&2; exit 1; }

# Every line of a fragment must have survived olddefconfig, or the kernel is
# not what we think it is.
bad=0
for f in "${frags[@]}"; do
    while IFS= read -r line; do
        case "$line" in ''|'#'*) continue ;; esac
        key=${line%%=*}; val=${line#*=}
        if [ "$val" = n ]; then
            grep -q "^$key=" "$out/.config" && { echo "kernel: $key should be off" >&2; bad=1; }
        else
            grep -qx "$line" "$out/.config" || { echo "kernel: $line did not stick: $(grep "^$key=\|$key is not set" "$out/.config")" >&2; bad=1; }
        fi
    done <"$f"
done
[ "$bad" = 0 ] || exit 1

if ! make -C "$src" O="$out" "${KMAKE_ARGS[@]}" -j"$NPROC" bzImage modules >"$out/build.log" 2>&1; then
    tail -n 60 "$out/build.log" >&2
    exit 1
fi
# Headers for userspace tools built against this tree (vhost_net_test).
make -C "$src" O="$out" "${KMAKE_ARGS[@]}" headers_install >>"$out/build.log" 2>&1 || {
    tail -n 20 "$out/build.log" >&2; exit 1; }
echo "$src" >"$out/.vhost-source"
touch "$out/.vhost-complete"
echo "$out"
