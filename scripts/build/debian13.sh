#!/usr/bin/env bash
# Debian 13's stock kernel (trixie-backports) as a build and test target.
# Everything is cached under $VHOST_CACHE, keyed by what it was made from.
#
# Usage: debian13.sh root      the Debian 13 root (toolchain, QEMU 10)
#        debian13.sh kver      the newest trixie-backports kernel ABI name
#        debian13.sh kdir      Debian's headers tree, with the Rust metadata
#                              Debian does not ship rebuilt from its source
#        debian13.sh kernel    Debian's own kernel image and modules, unpacked
#        debian13.sh run CMD…  run CMD inside the root (the repository and
#                              the cache are visible at the same paths)
# Each prints the path (or the name) it made on stdout; logs go to stderr.
# The route is ../shared/debian13.md, verified by hand first.
set -euo pipefail
. "$(dirname "$0")/env.sh"

MIRROR=${DEBIAN13_MIRROR:-http://deb.debian.org/debian}
# Debian 13's toolchain is the kernel's own (rustc 1.85.1, bindgen 0.71.1,
# gcc-14): the Rust metadata must be built by the very compiler that built
# the kernel, or the crate hashes differ and nothing links.
ROOT_PKGS=(gcc-14 gcc make flex bison bc libelf-dev libssl-dev cpio kmod python3
           rustc rust-src rust-clippy bindgen libclang-dev clang lld dwarves xz-utils
           zstd rsync ca-certificates qemu-system-x86 busybox-static)
root_key() {
    { echo "$MIRROR"; echo "${ROOT_PKGS[*]}"; echo v1; } | sha256sum | cut -c1-16
}
ROOT=$VHOST_CACHE/debian13-root-$(root_key)

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# Runs a command in the root, in a private mount namespace so that the bind
# mounts go away with it whatever happens.
in_root() {
    sudo_ unshare --mount --propagation private bash -c '
        set -e; r=$1; shift
        for d in proc sys dev; do mount --rbind /$d "$r/$d"; done
        for d in "$VHOST_REPO" "$VHOST_CACHE"; do mkdir -p "$r$d"; mount --bind "$d" "$r$d"; done
        exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive "$@"' _ "$ROOT" "$@"
}
export VHOST_REPO=$REPO VHOST_CACHE

make_root() {
    [ -f "$ROOT/.vhost-complete" ] && return 0
    command -v mmdebstrap >/dev/null || {
        echo "debian13: installing mmdebstrap" >&2
        sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    }
    need_disk "$VHOST_CACHE" 4 "debian13: the Debian 13 root (3 GiB)"
    echo "debian13: making the Debian 13 root in $ROOT (once per machine, 1-3 minutes; log: $VHOST_CACHE/debian13-root.log)" >&2
    local tmp=$ROOT.tmp
    sudo_ rm -rf "$tmp"
    local sources
    sources=$(mktemp)
    printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$MIRROR" "$MIRROR" >"$sources"
    local pkgs
    pkgs=$(IFS=,; echo "${ROOT_PKGS[*]}")
    sudo_ mkdir -p "$VHOST_CACHE"
    if ! sudo_ mmdebstrap --variant=apt --include="$pkgs" trixie "$tmp" "$sources" \
            >"$VHOST_CACHE/debian13-root.log" 2>&1; then
        tail -n 30 "$VHOST_CACHE/debian13-root.log" >&2
        rm -f "$sources"
        exit 1
    fi
    rm -f "$sources"
    sudo_ touch "$tmp/.vhost-complete"
    sudo_ mv "$tmp" "$ROOT"
}

# The newest kernel of trixie-backports, by its ABI name (7.3.4+deb13-amd64),
# as its metapackage linux-image-amd64 names it. Without the network the
# newest kernel already installed in the root answers.
kver() {
    make_root
    local dep
    if in_root apt-get update -qq >/dev/null 2>&1; then
        dep=$(in_root apt-cache depends -t trixie-backports linux-image-amd64 2>/dev/null |
              sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -n1)
        [ -n "$dep" ] && { echo "$dep"; return; }
    fi
    dep=$(ls -d "$ROOT"/usr/src/linux-headers-*-amd64 2>/dev/null | sed 's|.*/linux-headers-||' | sort -V | tail -n1)
    [ -n "$dep" ] || { echo "debian13: cannot resolve the trixie-backports kernel (no network, nothing cached)" >&2; exit 1; }
    echo "$dep"
}

# Debian's headers, linux-source and the Rust metadata, for kernel $1.
make_kdir() {
    local k=$1
    local upstream
    upstream=$(echo "$k" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')    # 7.3.4+deb13-amd64 -> 7.3
    # Keyed by the headers package's version too: a rebuild of the same
    # kernel version (a new ~bpo13+N) gets its own metadata.
    local ver
    ver=$(in_root apt-cache show "linux-headers-$k" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1)
    [ -n "$ver" ] || ver=$(in_root dpkg-query -W -f='${Version}' "linux-headers-$k" 2>/dev/null || true)
    [ -n "$ver" ] || { echo "debian13: no linux-headers-$k in the archive or the root" >&2; exit 1; }
    local out=/usr/src/vhost-net-rs-kbuild-${k}_$ver
    if [ ! -f "$ROOT$out/.vhost-complete" ]; then
        need_disk "$VHOST_CACHE" 2 "debian13: Debian's headers, source and Rust metadata of $k"
        echo "debian13: installing Debian's headers and source of $k (log: $VHOST_CACHE/debian13-kdir-$k.log)" >&2
        in_root apt-get install -y -qq -t trixie-backports "linux-headers-$k=$ver" "linux-source-$upstream" \
            >"$VHOST_CACHE/debian13-kdir-$k.log" 2>&1 || { tail -n 30 "$VHOST_CACHE/debian13-kdir-$k.log" >&2; exit 1; }
        echo "debian13: building the Rust metadata of $k from Debian's source and .config (once per kernel, 2-5 minutes; log: $VHOST_CACHE/debian13-kdir-$k.log)" >&2
        # scripts/build/rust-kbuild.sh: the same script the
        # vhost-net-rs-dkms package installs and runs (packaging/).
        in_root "$REPO/scripts/build/rust-kbuild.sh" "$k" "$out" >/dev/null 2>>"$VHOST_CACHE/debian13-kdir-$k.log" ||
            { tail -n 40 "$VHOST_CACHE/debian13-kdir-$k.log" >&2; exit 1; }
    fi
    echo "$ROOT$out/headers"
}

# Debian's own kernel image and modules (linux-binary-*, linux-modules-*),
# unpacked, never rebuilt, as a "kernel dir" the VM scripts take like the
# test kernel's build directory (scripts/vm/vmcheck.sh, vm.sh, initramfs.sh):
#   root/                 the packages' files (dpkg-deb -x), untouched:
#                         root/usr/lib/modules/$k/{vmlinuz,kernel/**/*.ko.xz}
#   arch/x86/boot/bzImage a link to root/usr/lib/modules/$k/vmlinuz, where
#                         vm.sh looks for the image in a build directory
#   source/               Debian's linux-source of the same version
#                         (.vhost-source names it: build-vhost-net-test.sh)
#   usr/include           its uapi headers (make headers_install; the
#                         compat32 client and vhost_net_test build on them)
#   .vhost-debian         "$k $version": tells the scripts what kernel it is
#   .vhost-complete       written last
# Keyed by the packages' version (7.3.4-1~bpo13+1): a new upload of the same
# ABI gets a new directory. Without the network, the newest one made for
# the ABI answers.
make_kernel() {
    local k=$1
    local upstream ver
    upstream=$(echo "$k" | sed -E 's/^([0-9]+\.[0-9]+).*/\1/')    # 7.3.4+deb13-amd64 -> 7.3
    ver=$(in_root apt-cache policy "linux-binary-$k" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1)
    if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
        local have
        have=$(ls -d "$VHOST_CACHE/debian13-kernel-$k"_*/.vhost-complete 2>/dev/null | sort -V | tail -n1)
        [ -n "$have" ] || { echo "debian13: no version of linux-binary-$k known (no network, nothing cached)" >&2; exit 1; }
        dirname "$have"
        return
    fi
    local out=$VHOST_CACHE/debian13-kernel-${k}_$ver
    if [ ! -f "$out/.vhost-complete" ]; then
        local log=$VHOST_CACHE/debian13-kernel-$k.log
        need_disk "$VHOST_CACHE" 3 "debian13: Debian's kernel $k, its modules and source (2 GiB)"
        echo "debian13: fetching Debian's kernel $k ($ver), its modules and source (once per version, 1-2 minutes; log: $log)" >&2
        rm -rf "$out.tmp"; mkdir -p "$out.tmp/debs"
        # apt's sandbox user cannot write into the cache: download as root.
        in_root bash -c 'cd "$1" && apt-get download -o APT::Sandbox::User=root \
                "linux-binary-$2=$4" "linux-modules-$2=$4" "linux-source-$3=$4"' \
            _ "$out.tmp/debs" "$k" "$upstream" "$ver" >"$log" 2>&1 ||
            { tail -n 20 "$log" >&2; exit 1; }
        for d in "$out.tmp"/debs/linux-binary-*.deb "$out.tmp"/debs/linux-modules-*.deb; do
            dpkg-deb -x "$d" "$out.tmp/root"
        done
        local img=$out.tmp/root/usr/lib/modules/$k/vmlinuz
        [ -f "$img" ] || img=$(ls "$out.tmp"/root/boot/vmlinuz-"$k" 2>/dev/null || true)
        [ -n "$img" ] && [ -f "$img" ] || { echo "debian13: no vmlinuz in linux-binary-$k" >&2; exit 1; }
        mkdir -p "$out.tmp/arch/x86/boot"
        # Relative (../../../root/...): the directory can move.
        ln -s "../../../${img#"$out.tmp/"}" "$out.tmp/arch/x86/boot/bzImage"
        echo "debian13: unpacking linux-source-$upstream and installing its uapi headers" >&2
        dpkg-deb -x "$out.tmp"/debs/linux-source-*.deb "$out.tmp/src-deb"
        mkdir -p "$out.tmp/source"
        tar -C "$out.tmp/source" -xf "$out.tmp/src-deb/usr/src/linux-source-$upstream.tar.xz" --strip-components=1
        rm -rf "$out.tmp/src-deb" "$out.tmp/debs"
        # The source tree stays clean: objects go to obj/, headers to usr/.
        make -C "$out.tmp/source" O="$out.tmp/obj" INSTALL_HDR_PATH="$out.tmp/usr" \
            headers_install >>"$log" 2>&1 || { tail -n 20 "$log" >&2; exit 1; }
        rm -rf "$out.tmp/obj"
        echo "$out/source" >"$out.tmp/.vhost-source"
        echo "$k $ver" >"$out.tmp/.vhost-debian"
        touch "$out.tmp/.vhost-complete"
        rm -rf "$out"; mv "$out.tmp" "$out"
    fi
    echo "$out"
}

case ${1:-} in
    root) make_root; echo "$ROOT" ;;
    kver) kver ;;
    kdir) make_kdir "${2:-$(kver)}" ;;
    kernel) make_kernel "${2:-$(kver)}" ;;
    run) shift; make_root; in_root "$@" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
