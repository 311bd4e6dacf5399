#!/usr/bin/env bash
# The DKMS package on a fresh Debian 13 (make check; issue 25):
#  1. `make deb` (scripts/build/deb.sh);
#  2. a pristine Debian 13 root (a cached mmdebstrap tarball, unpacked
#     afresh each run), with trixie-backports;
#  3. what the package's Depends name (apt-get satisfy, from trixie-
#     backports) and Debian's headers of the backports kernel are installed
#     (apt's .debs cached, so a warm run downloads nothing); the root's
#     file list is taken (A);
#  4. the .deb is installed: DKMS builds the Rust metadata and the module
#     in its postinst; /lib/modules/<kver>/updates/dkms/vhost_net_rs.ko
#     must exist, with the package's version in modinfo, and the
#     modprobe.d rules must be the package's; the .ko is copied out
#     (DEB_TEST_KO, default build/deb-test/vhost_net_rs.ko) for the VM
#     stages;
#  5. remove, then purge; the file list (B) must equal A but for the
#     files Debian itself keeps changing (listed below with the reason).
# Usage: deb-test.sh [KVER]   (default: debian13.sh kver)
# Prints each phase's time ("# time ...").
set -euo pipefail
. "$(dirname "$0")/../build/env.sh"
k=${1:-$("$REPO/scripts/build/debian13.sh" kver)}
MIRROR=${DEBIAN13_MIRROR:-http://deb.debian.org/debian}
out=$REPO/build/deb-test
ko_out=${DEB_TEST_KO:-$out/vhost_net_rs.ko}
mkdir -p "$out"
t() { echo "# time $1: $(( SECONDS - t0 )) s"; t0=$SECONDS; }
t0=$SECONDS

deb=$("$REPO/scripts/build/deb.sh")
ver=$(dpkg-deb -f "$deb" Version)
t "make deb"

# The pristine root: mmdebstrap's apt variant (essential + apt), keyed by
# the mirror; made once per machine.
key=$(echo "$MIRROR v1" | sha256sum | cut -c1-16)
tarball=$VHOST_CACHE/debian13-pristine-$key.tar
if [ ! -f "$tarball" ]; then
    command -v mmdebstrap >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
    sources=$(mktemp)
    printf 'deb %s trixie main\ndeb %s trixie-backports main\n' "$MIRROR" "$MIRROR" >"$sources"
    mmdebstrap --variant=apt trixie "${tarball%.tar}.tmp.tar" "$sources" >"$out/mmdebstrap.log" 2>&1 ||
        { tail -n 20 "$out/mmdebstrap.log" >&2; rm -f "$sources" "${tarball%.tar}.tmp.tar"; exit 1; }
    rm -f "$sources"
    mv "${tarball%.tar}.tmp.tar" "$tarball"
    t "pristine Debian 13 tarball (once per machine)"
fi
root=$out/root
rm -rf "$root"; mkdir -p "$root"
tar -C "$root" -xf "$tarball"
t "unpack the pristine root"

# apt's downloads, kept across runs.
archives=$VHOST_CACHE/debian13-apt-archives
mkdir -p "$archives/partial"

# All of the root's work in one private mount namespace: the mounts go with it.
unshare --mount --propagation private bash -euo pipefail -c '
    root=$1 archives=$2 deb=$3 k=$4 ver=$5 out=$6 ko_out=$7
    for d in proc sys dev; do mount --rbind /$d "$root/$d"; done
    mount --bind "$archives" "$root/var/cache/apt/archives"
    mkdir -p "$root/tmp/deb"; cp "$deb" "$root/tmp/deb/"
    ch() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
               DEBIAN_FRONTEND=noninteractive "$@"; }
    t0=$SECONDS
    t() { echo "# time $1: $(( SECONDS - t0 )) s"; t0=$SECONDS; }
    # Every file of the root but the mounts and apt/dpkg scratch, with a
    # checksum of its content (a link: its target).
    snapshot() {
        (cd "$root" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \
              -o -path ./var/cache/apt/archives -o -path ./tmp/deb \) -prune -o -print0 |
         sort -z | while IFS= read -r -d "" f; do
             if [ -L "$f" ]; then echo "L ${f#.} -> $(readlink "$f")"
             elif [ -f "$f" ]; then echo "F ${f#.} $(md5sum <"$f" | cut -c1-32)"
             else echo "D ${f#.}"; fi
         done)
    }
    ch apt-get -o APT::Sandbox::User=root update -qq >"$out/apt.log" 2>&1
    t "apt-get update"
    deps=$(dpkg-deb -f "$deb" Depends)
    # The backports kernel'"'"'s headers (as a host running it has them, through
    # the metapackage), then the package'"'"'s Depends from trixie: the
    # toolchain must be the one that built the kernel (rustc 1.85.1, not
    # trixie-backports'"'"' newer one).
    ch apt-get -o APT::Sandbox::User=root install -y -q linux-headers-amd64/trixie-backports \
        >>"$out/apt.log" 2>&1
    [ -d "$root/usr/src/linux-headers-$k" ] || { echo "deb-test: linux-headers-amd64 of trixie-backports is not $k" >&2; exit 1; }
    ch apt-get -o APT::Sandbox::User=root satisfy -y -q "$deps" >>"$out/apt.log" 2>&1
    t "install the package'"'"'s Depends and linux-headers-$k (apt .debs cached in $archives)"
    snapshot >"$out/files-before"

    # The package: installing it must pull nothing more (its Depends are
    # all there) and build the module for $k in its postinst.
    ch apt-get -o APT::Sandbox::User=root install -y "/tmp/deb/$(basename "$deb")" >"$out/install.log" 2>&1 ||
        { tail -n 40 "$out/install.log" >&2; cat "$root"/var/lib/dkms/vhost-net-rs/*/build/make.log >&2 2>/dev/null || true; exit 1; }
    t "install the .deb (DKMS: Rust metadata and module for $k)"
    grep -E "^[0-9]+ upgraded, [0-9]+ newly installed" "$out/install.log"
    grep -q "^0 upgraded, 1 newly installed" "$out/install.log" ||
        { echo "deb-test: installing the .deb pulled more than itself" >&2; exit 1; }
    ko=$root/lib/modules/$k/updates/dkms/vhost_net_rs.ko
    ls -l "$ko" || { ls -lR "$root/lib/modules/$k" >&2; exit 1; }
    ch dkms status
    mv_=$(ch modinfo -F version "/lib/modules/$k/updates/dkms/vhost_net_rs.ko" || true)
    echo "modinfo version: ${mv_:-(none)}"
    ch modinfo -F vermagic "/lib/modules/$k/updates/dkms/vhost_net_rs.ko"
    ch modinfo -F signer "/lib/modules/$k/updates/dkms/vhost_net_rs.ko" || true
    # depmod ran: modprobe finds it for $k by name.
    ch modprobe -S "$k" --show-depends vhost_net_rs
    ch modprobe -S "$k" -c | grep -E "^(install vhost_net|alias (char-major-10-238|devname:vhost-net) )"
    ls -d "$root/var/lib/vhost-net-rs/$k/headers/rust" >/dev/null
    du -sh "$root/var/lib/vhost-net-rs" | sed "s/^/Rust metadata cache: /"
    mkdir -p "$(dirname "$ko_out")"
    cp "$ko" "$ko_out"
    sha256sum "$ko" "$ko_out" | sed "s|$root||"

    # Remove (the module goes, the cache stays), then purge (all goes).
    ch apt-get -o APT::Sandbox::User=root remove -y vhost-net-rs-dkms >"$out/remove.log" 2>&1 ||
        { tail -n 30 "$out/remove.log" >&2; exit 1; }
    [ ! -e "$ko" ] || { echo "deb-test: $ko survived the remove" >&2; exit 1; }
    ch apt-get -o APT::Sandbox::User=root purge -y vhost-net-rs-dkms >"$out/purge.log" 2>&1 ||
        { tail -n 30 "$out/purge.log" >&2; exit 1; }
    t "remove and purge"
    snapshot >"$out/files-after"
' _ "$root" "$archives" "$deb" "$k" "$ver" "$out" "$ko_out"

# What may differ between before the install and after the purge, and why:
#   /var/lib/dpkg/{status,status-old,available,diversions*,statoverride*,
#     lock*,triggers/*}: dpkg's own database, which records that the
#     package came and went (its per-package files, info/vhost-net-rs-dkms.*,
#     are NOT excepted: they must be gone);
#   /var/lib/apt/extended_states: apt's record of automatic installs;
#   /var/cache/apt/*.bin: apt's caches, rebuilt after the local .deb;
#   /var/log/{dpkg.log,apt/*,alternatives.log}: Debian's logs;
#   /var/cache/debconf/*: debconf's database (templates of the run);
#   /var/lib/dkms/mok.key, mok.pub: DKMS's module signing key, made by
#     dkms (not this package) at its first signed build and kept for
#     every DKMS module (its certificate is what one enrolls with mokutil).
except='^[FLD] /(var/lib/dpkg/(status|status-old|available|diversions|diversions-old|statoverride|statoverride-old|lock|lock-frontend|triggers/[^ ]*)|var/lib/apt/extended_states|var/cache/apt/[^/ ]*\.bin|var/log/(dpkg\.log|alternatives\.log|apt/[^ ]*)|var/cache/debconf/[^ ]*|var/lib/dkms/mok\.(key|pub))( |$)'
diff <(grep -Ev "$except" "$out/files-before") <(grep -Ev "$except" "$out/files-after") >"$out/files-diff" || true
echo "# excepted differences (Debian's own state):"
diff "$out/files-before" "$out/files-after" | grep -E '^[<>]' | grep -E "${except/^/^[<>] }" | sed 's/^/#   /' || true
if [ -s "$out/files-diff" ]; then
    echo "deb-test: after the purge the root differs from before the install:" >&2
    cat "$out/files-diff" >&2
    exit 1
fi
echo "remove and purge left no file: $(wc -l <"$out/files-before") entries before = after"
rm -rf "$out/root"
echo "module for the VM: $ko_out"
