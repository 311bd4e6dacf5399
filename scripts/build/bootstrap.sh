#!/usr/bin/env bash
# Install everything the build, the test VM and the demo need, idempotently.
# Only Debian packages and crates.io (bindgen-cli, pinned, --locked) are used.
set -euo pipefail

PKGS=(rustc-web rust-web-src rust-web-clippy rustfmt-web clang-19 lld-19 llvm-19 libclang-19-dev
      flex bison bc rsync gcc-multilib libelf-dev libssl-dev cpio kmod zstd xz-utils
      qemu-system-x86 busybox-static linux-source-6.12 python3 python3-matplotlib gcc libc6-dev)
BINDGEN_VERSION=0.73.2
: "${VHOST_CACHE:=/var/cache/vhost-net-rs}"
BINDGEN_ROOT="$VHOST_CACHE/bindgen-$BINDGEN_VERSION"

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$BINDGEN_ROOT/bin/bindgen" ]; then
    echo "bootstrap: building bindgen-cli $BINDGEN_VERSION (once per machine)"
    $SUDO mkdir -p "$VHOST_CACHE"
    $SUDO env LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --quiet --locked \
        --root "$BINDGEN_ROOT" bindgen-cli --version "$BINDGEN_VERSION"
fi
