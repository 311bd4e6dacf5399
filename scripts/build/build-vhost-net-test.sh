#!/usr/bin/env bash
# Build upstream's tools/virtio/vhost_net_test (static) from the kernel
# source tree of the test kernel, for the in-VM suite (tests/vmtest,
# src/tests/upstream.rs runs it as /bin/vhost_net_test).
#
# Usage: build-vhost-net-test.sh KDIR OUTDIR
#   KDIR    kernel build directory (`make -s kdir`); KDIR/.vhost-source holds
#           the source tree, KDIR/usr/include the installed uapi headers
#   OUTDIR  work directory; the binary is OUTDIR/vhost_net_test
#
# The source tree is not modified: OUTDIR/tree mirrors it with symlinks
# (include/, drivers/, tools/include/, usr/include -> KDIR/usr/include) and
# a copy of tools/virtio, where the objects are built. Fixes this tree needs
# to build the tools outside the kernel:
#   - usr/include: the uapi headers (the Makefile's -I ../../usr/include);
#   - tools/virtio/linux/compiler-context-analysis.h, a copy of the kernel's
#     (include/linux/compiler_types.h includes it; the tools' include path
#     has no such file), when the tree has it;
#   - -D'data_race(e)=(e)' -D'MODULE_DESCRIPTION(x)=' (kernel macros that
#     drivers/virtio/virtio_ring.c uses and the tools' headers lack; data_race
#     only when tools/virtio/linux/compiler.h lacks it: 7.3's has it, and a
#     redefinition is an error under -Werror);
#   - tools/virtio/linux/device-id/virtio.h, when the kernel's
#     include/linux/virtio.h includes <linux/device-id/virtio.h> (7.x): a
#     stub including the tools' linux/mod_devicetable.h, which defines the
#     same struct virtio_device_id (the kernel's header beside it would
#     redefine it; the tools' include path has neither);
#   - -include linux/compiler.h (tools/virtio's, which includes the kernel's
#     compiler_types.h) ahead of everything: vhost_net_test.c includes
#     <sys/stat.h>, which reaches tools/include/linux/types.h and its empty
#     __user first, and compiler_types.h then redefines __user as
#     BTF_TYPE_TAG(user) ("__user redefined", an error under -Werror);
#     types.h only defines __user when it is not defined yet.
# Nothing is rebuilt when the inputs (sources, headers, this script, the
# compiler) are unchanged. Prints the binary's path on stdout.
set -euo pipefail
[ $# -eq 2 ] || { sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KDIR=$(realpath -m -- "$1")
OUT=$(realpath -m -- "$2")
CC=${CC_VHOST_NET_TEST:-gcc}
[ -f "$KDIR/.vhost-source" ] || { echo "build-vhost-net-test: $KDIR/.vhost-source: no such file" >&2; exit 2; }
SRC=$(cat "$KDIR/.vhost-source")
[ -f "$SRC/tools/virtio/vhost_net_test.c" ] ||
    { echo "build-vhost-net-test: $SRC/tools/virtio/vhost_net_test.c: no such file" >&2; exit 1; }
[ -d "$KDIR/usr/include/linux" ] ||
    { echo "build-vhost-net-test: $KDIR/usr/include: no uapi headers (make headers_install)" >&2; exit 1; }
command -v "$CC" >/dev/null || { echo "build-vhost-net-test: $CC not found (scripts/build/bootstrap.sh)" >&2; exit 1; }

BIN=$OUT/vhost_net_test
STAMP=$OUT/vhost_net_test.inputs
inputs() {
    sha256sum "$0" | cut -d' ' -f1
    echo "src=$SRC kdir=$KDIR"
    "$CC" --version | head -n1
    # Everything the build can read: the test, the ring code, the tools'
    # headers, the kernel's and the uapi headers.
    find -L "$SRC/tools/virtio" "$SRC/tools/include" "$SRC/include" \
        "$SRC/drivers/virtio/virtio_ring.c" "$KDIR/usr/include" \
        -type f -printf '%p %s %T@\n' 2>/dev/null | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}
new_inputs=$(inputs)
if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$new_inputs" ]; then
    echo "$BIN"
    exit 0
fi

T=$OUT/tree
rm -rf "$T"
mkdir -p "$T/tools" "$T/usr" "$T/drivers"
ln -s "$SRC/include" "$T/include"
ln -s "$SRC/arch" "$T/arch"
ln -s "$SRC/drivers/virtio" "$T/drivers/virtio"
ln -s "$SRC/drivers/vhost" "$T/drivers/vhost"
ln -s "$SRC/tools/include" "$T/tools/include"
ln -s "$SRC/tools/arch" "$T/tools/arch"
ln -s "$KDIR/usr/include" "$T/usr/include"
cp -a "$SRC/tools/virtio" "$T/tools/virtio"
chmod -R u+w "$T/tools/virtio"
if [ -f "$SRC/include/linux/compiler-context-analysis.h" ]; then
    cp "$SRC/include/linux/compiler-context-analysis.h" "$T/tools/virtio/linux/"
fi

if [ -f "$SRC/include/linux/device-id/virtio.h" ] && [ ! -e "$T/tools/virtio/linux/device-id/virtio.h" ]; then
    mkdir -p "$T/tools/virtio/linux/device-id"
    printf '%s\n' '/* vhost-net-rs: see scripts/build/build-vhost-net-test.sh */' \
        '#include <linux/mod_devicetable.h>' > "$T/tools/virtio/linux/device-id/virtio.h"
fi
DEFS="-D'MODULE_DESCRIPTION(x)='"
grep -q 'define data_race' "$T/tools/virtio/linux/compiler.h" || DEFS="-D'data_race(e)=(e)' $DEFS"

rm -f "$BIN" "$STAMP"
log=$OUT/build.log
PRE="-include ../../include/linux/kconfig.h -include linux/compiler.h"
# The Makefile appends to CFLAGS/LDFLAGS (+=): pass ours in the environment.
if ! CC=$CC CFLAGS="$DEFS $PRE" LDFLAGS="-static" \
        make -C "$T/tools/virtio" vhost_net_test >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "build-vhost-net-test: build failed; log at $log" >&2
    exit 1
fi
cp "$T/tools/virtio/vhost_net_test" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
printf '%s\n' "$new_inputs" > "$STAMP"
echo "$BIN"
