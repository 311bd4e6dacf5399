# Shared settings for every script: sourced, not run.
# The Debian toolchain is named explicitly everywhere; rustup's rustc may be
# first on PATH and has no rust-src, so PATH order must never matter.
: "${VHOST_CACHE:=/var/cache/vhost-net-rs}"
BINDGEN_VERSION=$(sed -n 's/^BINDGEN_VERSION=//p' "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh")
BINDGEN=$VHOST_CACHE/bindgen-$BINDGEN_VERSION/bin/bindgen
LLVM_SUFFIX=-19
KMAKE_ARGS=(LLVM=$LLVM_SUFFIX RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
            HOSTRUSTC=/usr/bin/rustc CLIPPY_DRIVER=/usr/bin/clippy-driver
            BINDGEN="$BINDGEN")
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NPROC=$(( $(nproc) + 1 ))

# The key of a cached kernel build: everything it was built from.
# $1: variant (release|debug)
kernel_key() {
    local variant=$1
    {
        dpkg-query -W -f='${Version}\n' linux-source-6.12
        cat "$REPO/kconfig/base.config"
        [ "$variant" = debug ] && cat "$REPO/kconfig/debug.config"
        /usr/bin/rustc --version
        /usr/bin/clang$LLVM_SUFFIX --version | head -n1
        echo "bindgen $BINDGEN_VERSION"
    } | sha256sum | cut -c1-16
}

# Absolute path of the cached kernel build directory of a variant.
kernel_dir() {
    echo "$VHOST_CACHE/kbuild-$1-$(kernel_key "$1")"
}

# Fails with one line unless the file system of DIR (or of its nearest
# existing parent) has GIB GiB free. $1: DIR; $2: GIB; $3: who needs it.
need_disk() {
    local dir=$1 gib=$2 free
    while [ ! -d "$dir" ]; do dir=$(dirname "$dir"); done
    free=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
    [ "$free" -ge "$gib" ] || {
        echo "$3: needs about $gib GiB free in $dir, which has $free GiB" >&2
        return 1
    }
}
