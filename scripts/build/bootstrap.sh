#!/usr/bin/env bash
# Install everything the build, the test VM and the demo need, idempotently.
# Only Debian packages and crates.io (bindgen-cli, pinned, --locked) are used:
# the Rust toolchain is Debian 12's rustc-web/cargo-web (1.96, from
# bookworm-security), so no rustup is needed (one on PATH is used by the
# cargo commands as it is; the module's build names Debian's rustc).
# First it checks, one line each when one fails: the distribution (Debian
# 12), root or passwordless sudo (when something is to be installed), free
# disk. A long step says first how long it usually takes and where its log is.
set -euo pipefail

PKGS=(rustc-web cargo-web rust-web-src rust-web-clippy rustfmt-web clang-19 lld-19 llvm-19 libclang-19-dev
      flex bison bc rsync gcc-multilib libelf-dev libssl-dev cpio kmod zstd xz-utils
      qemu-system-x86 busybox-static linux-source-6.12 python3 python3-matplotlib gcc libc6-dev)
BINDGEN_VERSION=0.73.2
: "${VHOST_CACHE:=/var/cache/vhost-net-rs}"
BINDGEN_ROOT="$VHOST_CACHE/bindgen-$BINDGEN_VERSION"
. "$(dirname "$0")/env.sh"
say() { echo "bootstrap: $*" >&2; }

# Debian 12 (bookworm): the package names and versions below are its own.
os=$( (. "${VHOST_OS_RELEASE:-/etc/os-release}" && echo "${ID:-}:${VERSION_ID:-}:${PRETTY_NAME:-}") 2>/dev/null || echo "::")
if [ "${os%%:*}" != debian ] || [ "$(echo "$os" | cut -d: -f2)" != 12 ]; then
    say "this is ${os#*:*:}, not Debian 12 (bookworm), whose packages this project installs and builds with (VHOST_ANY_DISTRO=1 tries anyway)"
    [ "${VHOST_ANY_DISTRO:-0}" = 1 ] || exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
fi
need_root() { # need_root WHY
    [ "$SUDO" != none ] || { say "needs root or passwordless sudo to $1"; exit 1; }
}

if ! { mkdir -p "$VHOST_CACHE" 2>/dev/null && [ -w "$VHOST_CACHE" ]; }; then
    need_root "make $VHOST_CACHE, the cache of kernels and tools, writable (or set VHOST_CACHE to a directory of yours)"
    $SUDO mkdir -p "$VHOST_CACHE"
    [ "$(id -u)" -eq 0 ] || $SUDO chown "$(id -u):$(id -g)" "$VHOST_CACHE"
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    need_root "install Debian packages (${missing[*]})"
    # The whole list, with what it depends on, takes about 3 GiB (measured 2026-12-06).
    need_disk /usr 4 "bootstrap: Debian packages (about 3 GiB)"
    log=$VHOST_CACHE/bootstrap-apt.log
    say "installing ${#missing[@]} Debian packages (${missing[*]}); about 2 minutes on a fresh machine; log: $log"
    { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || { tail -n 20 "$log" >&2; say "apt-get failed; log: $log"; exit 1; }
fi

if [ ! -x "$BINDGEN_ROOT/bin/bindgen" ]; then
    log=$VHOST_CACHE/bindgen-build.log
    need_disk "$VHOST_CACHE" 1 "bootstrap: bindgen-cli"
    say "building bindgen-cli $BINDGEN_VERSION from crates.io (once per machine, about 2 minutes); log: $log"
    # Debian's cargo (cargo-web) when no rustup is installed.
    cargo=$(command -v cargo || echo /usr/bin/cargo)
    env LIBCLANG_PATH=/usr/lib/llvm-19/lib "$cargo" install --locked \
        --root "$BINDGEN_ROOT" bindgen-cli --version "$BINDGEN_VERSION" >"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; say "building bindgen-cli failed; log: $log"; exit 1; }
fi
