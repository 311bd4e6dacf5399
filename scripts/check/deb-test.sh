#!/usr/bin/env bash
# The DKMS package on a fresh Debian 13 (make check; issue 25):
#  1. `make deb` (scripts/build/deb.sh);
#  2. a fresh Debian 13 root with what the package's Depends and
#     Recommends name (apt-get satisfy, from trixie: the toolchain must be
#     the one that built the kernel) and the trixie-backports kernel's
#     headers (linux-headers-amd64/trixie-backports), as a host running
#     that kernel has them. It is made once (from a cached mmdebstrap
#     tarball, with apt's .debs cached) into
#     $VHOST_CACHE/debian13-dkms-deps-<key> and never written again: each
#     run mounts it read-only under an overlay whose empty upper layer
#     takes every write (so a run starts from the same pristine root, at
#     no copying cost);
#  3. the .deb is installed: DKMS builds the Rust metadata and the module
#     in its postinst; /lib/modules/<kver>/updates/dkms/vhost_net_rs.ko
#     must exist (signed, with modprobe finding it and the package's
#     modprobe.d rules in force); it is copied out (DEB_TEST_KO, default
#     build/deb-test/vhost_net_rs.ko) for the VM stages;
#  4. remove (the module must go), then purge; what the run changed is
#     exactly the overlay's upper layer: every file there must be one
#     Debian itself keeps changing (listed below with the reason) or equal
#     to the pristine one.
# Usage: deb-test.sh [--prepare] [KVER]   (default: debian13.sh kver)
# --prepare: steps 1 and 2 only (make check runs that in the background
# while the test kernel compiles: it is mostly downloads and unpacking).
# Prints each phase's time ("# time ...").
set -euo pipefail
. "$(dirname "$0")/../build/env.sh"
prepare=0
[ "${1:-}" != --prepare ] || { prepare=1; shift; }
k=${1:-$("$REPO/scripts/build/debian13.sh" kver)}
MIRROR=${DEBIAN13_MIRROR:-http://deb.debian.org/debian}
out=$REPO/build/deb-test
ko_out=${DEB_TEST_KO:-$out/vhost_net_rs.ko}
mkdir -p "$out"
t() { echo "# time $1: $(( SECONDS - t0 )) s"; t0=$SECONDS; }
t0=$SECONDS

deb=$("$REPO/scripts/build/deb.sh")
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

# The root with the package's dependencies and the kernel's headers, keyed
# by the pristine root, the Depends and Recommends, and the kernel.
deps=$(dpkg-deb -f "$deb" Depends)
recs=$(dpkg-deb -f "$deb" Recommends)
lower=$VHOST_CACHE/debian13-dkms-deps-$(printf '%s\n' "$key" "$deps" "$recs" "$k" v2 | sha256sum | cut -c1-16)
archives=$VHOST_CACHE/debian13-apt-archives
mkdir -p "$archives/partial"
ch_in() { # ch_in ROOT CMD...: CMD in ROOT, apt's downloads in the cache
    unshare --mount --propagation private bash -euo pipefail -c '
        r=$1 a=$2; shift 2
        for d in proc sys dev; do mount --rbind /$d "$r/$d"; done
        mount --bind "$a" "$r/var/cache/apt/archives"
        exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive "$@"' _ "$@"
}
if [ ! -f "$lower/.vhost-complete" ]; then
    # Resumable: an interrupted run goes on with what it installed.
    if [ ! -f "$lower.tmp/.vhost-extracted" ]; then
        rm -rf "$lower.tmp"; mkdir -p "$lower.tmp"
        tar -C "$lower.tmp" -xf "$tarball"
        touch "$lower.tmp/.vhost-extracted"
    fi
    apt_=(apt-get -o APT::Sandbox::User=root -y -q)
    {
        ch_in "$lower.tmp" "$archives" "${apt_[@]}" update
        ch_in "$lower.tmp" "$archives" "${apt_[@]}" install linux-headers-amd64/trixie-backports
        [ -d "$lower.tmp/usr/src/linux-headers-$k" ] ||
            { echo "deb-test: linux-headers-amd64 of trixie-backports is not $k"; exit 1; }
        ch_in "$lower.tmp" "$archives" "${apt_[@]}" satisfy "$deps${recs:+, $recs}"
        # The kernel's own modules, as on a host running it (not the image:
        # no boot loader or initramfs here): depmod's index of them exists
        # before the package, as there. Without them DKMS's remove, seeing
        # modules.dep empty again, deletes the whole index (dkms's "removed
        # the last kernel module" clean-up), which no host would see.
        ch_in "$lower.tmp" "$archives" "${apt_[@]}" install "linux-modules-$k"
        [ -s "$lower.tmp/usr/lib/modules/$k/modules.dep" ] || { echo "deb-test: no modules.dep for $k"; exit 1; }
    } >"$out/apt.log" 2>&1 || { tail -n 30 "$out/apt.log" >&2; exit 1; }
    rm -f "$lower.tmp/.vhost-extracted"
    touch "$lower.tmp/.vhost-complete"
    mv "$lower.tmp" "$lower"
    t "the root with the package's Depends, Recommends and linux-headers-$k (once per machine and kernel)"
fi
[ "$prepare" = 0 ] || exit 0

# Debian's headers package of $k, as apt downloaded it for the root.
hdeb=$(ls "$archives/linux-headers-${k}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$hdeb" ] || { echo "deb-test: no linux-headers-${k}_*.deb in $archives" >&2; exit 1; }

run=$out/run
rm -rf "$run"; mkdir -p "$run"/{upper,work,root}
# All of the run in one private mount namespace: the overlay and the bind
# mounts go with it.
unshare --mount --propagation private bash -euo pipefail -c '
    lower=$1 run=$2 deb=$3 k=$4 out=$5 ko_out=$6 hdeb=$7
    root=$run/root
    mount -t overlay overlay -o "lowerdir=$lower,upperdir=$run/upper,workdir=$run/work" "$root"
    for d in proc sys dev; do mount --rbind /$d "$root/$d"; done
    mount -t tmpfs tmpfs "$root/tmp"
    mkdir -p "$root/tmp/deb"; cp "$deb" "$root/tmp/deb/"
    ch() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
               DEBIAN_FRONTEND=noninteractive "$@"; }
    t0=$SECONDS
    t() { echo "# time $1: $(( SECONDS - t0 )) s"; t0=$SECONDS; }

    # The package: installing it must pull nothing more (its Depends and
    # Recommends are all there) and build the module for $k in its postinst.
    if ! ch apt-get -o APT::Sandbox::User=root install -y "/tmp/deb/$(basename "$deb")" \
            >"$out/install.log" 2>&1; then
        tail -n 30 "$out/install.log" >&2
        tail -n 40 "$root"/var/lib/dkms/vhost-net-rs/*/build/make.log >&2 2>/dev/null || true
        exit 1
    fi
    t "install the .deb (DKMS: Rust metadata and module for $k)"
    grep -E "^[0-9]+ upgraded, [0-9]+ newly installed" "$out/install.log"
    grep -q "^0 upgraded, 1 newly installed" "$out/install.log" ||
        { echo "deb-test: installing the .deb pulled more than itself" >&2; exit 1; }
    # Compressed as the kernel'"'"'s own modules are (Debian'"'"'s: .ko.xz), by DKMS.
    ko=$(ls "$root/lib/modules/$k/updates/dkms/vhost_net_rs.ko"{,.xz,.zst} 2>/dev/null | head -n1 || true)
    [ -n "$ko" ] || { echo "deb-test: no vhost_net_rs.ko* in /lib/modules/$k/updates/dkms" >&2; exit 1; }
    ls -l "$ko" | sed "s|$root||"
    ch dkms status
    for f in version vermagic signer; do
        echo "modinfo $f: $(ch modinfo -F $f "${ko#"$root"}")"
    done
    [ -n "$(ch modinfo -F signer "${ko#"$root"}")" ] ||
        { echo "deb-test: the module is not signed" >&2; exit 1; }
    # depmod ran: modprobe finds it for $k by name; the rules are in force.
    ch modprobe -S "$k" --show-depends vhost_net_rs
    ch modprobe -S "$k" --show-depends vhost_net_rs | grep -q "updates/dkms/vhost_net_rs.ko"
    [ "$(ch modprobe -S "$k" -c | sort -u | grep -cE "^(install vhost_net /sbin/modprobe vhost_net_rs|alias (char_major_10_238|devname:vhost_net) vhost_net$)")" = 3 ] ||
        { echo "deb-test: the modprobe.d rules are not in force" >&2; ch modprobe -c | grep vhost >&2; exit 1; }
    ls -d "$root/var/lib/vhost-net-rs/$k/headers/rust" >/dev/null

    # A kernel upgrade: apt installs a kernel'"'"'s headers package, whose
    # postinst runs the kernel hooks (linux-run-hooks), among them DKMS'"'"'s
    # (/etc/kernel/header_postinst.d/dkms, for dkms.conf'"'"'s AUTOINSTALL).
    # trixie-backports publishes no newer 7.3 than $k, so the package is
    # $k'"'"'s own, reinstalled by apt from Debian'"'"'s .deb, with the module
    # unbuilt for $k first (still added): the hooks must build and install
    # it again, reusing the Rust metadata made above (no second build of it).
    ver=$(dpkg-deb -f "$deb" Version)
    ch dkms unbuild -m vhost-net-rs -v "$ver" -k "$k" >"$out/upgrade.log" 2>&1
    [ ! -e "$ko" ] || { echo "deb-test: dkms unbuild -k $k left $ko" >&2; exit 1; }
    cp "$hdeb" "$root/tmp/deb/"
    ch apt-get -o APT::Sandbox::User=root install -y --reinstall "/tmp/deb/$(basename "$hdeb")" \
            >>"$out/upgrade.log" 2>&1 || { tail -n 30 "$out/upgrade.log" >&2; exit 1; }
    grep -q "^0 upgraded, 0 newly installed, 1 reinstalled" "$out/upgrade.log" ||
        { echo "deb-test: reinstalling linux-headers-$k did more than that" >&2; tail -n 30 "$out/upgrade.log" >&2; exit 1; }
    # apt keeps a copy of a .deb given by path; that copy is the test'"'"'s.
    rm -f "$root/var/cache/apt/archives/$(basename "$hdeb")"
    [ -e "$ko" ] || { echo "deb-test: the headers package'"'"'s hooks did not rebuild $ko" >&2; tail -n 30 "$out/upgrade.log" >&2; exit 1; }
    log=$(ls "$root/var/lib/dkms/vhost-net-rs/$ver/$k"/*/log/make.log "$root/var/lib/dkms/vhost-net-rs/$ver/build/make.log" 2>/dev/null | head -n1 || true)
    [ -n "$log" ] && ! grep -q "rust-kbuild: building" "$log" ||
        { echo "deb-test: the Rust metadata was built a second time for $k (or no make.log: ${log:-none})" >&2; exit 1; }
    t "kernel upgrade: apt reinstalled linux-headers-$k, its postinst'"'"'s DKMS hook rebuilt the module (Rust metadata reused)"
    du -sh "$root/var/lib/vhost-net-rs" | sed "s|$root||;s/^/the Rust metadata cache: /"
    mkdir -p "$(dirname "$ko_out")"
    # The VM'"'"'s loader takes a plain .ko: the installed file, decompressed.
    case $ko in
        *.xz) xz -dc "$ko" >"$ko_out" ;;
        *.zst) zstd -q -dc "$ko" >"$ko_out" ;;
        *) cp "$ko" "$ko_out" ;;
    esac
    sha256sum "$ko" "$ko_out" | sed "s|$root||"

    # Remove (the module goes, the cache stays), then purge (all goes).
    ch apt-get -o APT::Sandbox::User=root remove -y vhost-net-rs-dkms >"$out/remove.log" 2>&1 ||
        { tail -n 30 "$out/remove.log" >&2; exit 1; }
    [ ! -e "$ko" ] || { echo "deb-test: $ko survived the remove" >&2; exit 1; }
    ch apt-get -o APT::Sandbox::User=root purge -y vhost-net-rs-dkms >"$out/purge.log" 2>&1 ||
        { tail -n 30 "$out/purge.log" >&2; exit 1; }
    t "remove and purge"
' _ "$lower" "$run" "$deb" "$k" "$out" "$ko_out" "$hdeb"

# What the run changed: the upper layer. A whiteout (a character device
# 0:0) is a deleted file; a directory that the pristine root has is only
# the path to a change; a file or link equal to the pristine one is no
# change (depmod rewrote its index as it was).
(cd "$run/upper" && find . -mindepth 1 -print0 | sort -z | while IFS= read -r -d "" f; do
    p=${f#.}
    if [ -c "$f" ] && [ "$(stat -c %t:%T "$f")" = 0:0 ]; then echo "deleted $p"
    elif [ -d "$f" ] && [ ! -L "$f" ]; then [ -d "$lower$p" ] || echo "new-dir $p"
    elif [ ! -e "$lower$p" ] && [ ! -L "$lower$p" ]; then echo "new $p"
    elif [ -L "$f" ]; then [ "$(readlink "$f")" = "$(readlink "$lower$p")" ] || echo "changed $p"
    else cmp -s "$f" "$lower$p" || echo "changed $p"; fi
done) >"$out/changes"
# Excepted, and why:
#   /var/lib/dpkg/{status,status-old,available,lock*,triggers/*}: dpkg's own
#     database, which records that the package came and went (its
#     per-package files, info/vhost-net-rs-dkms.*, are NOT excepted: they
#     must be gone);
#   /var/cache/apt/*.bin: apt's caches, rebuilt after a local .deb;
#   /var/log/{dpkg.log,apt/*,alternatives.log}: Debian's logs;
#   /var/cache/debconf/*: debconf's database (rewritten by every run);
#   /var/lib/dkms/mok.key, mok.pub: DKMS's module signing key, made by
#     dkms (not this package) at its first signed build and kept for every
#     DKMS module (its certificate is what one enrolls with mokutil).
except='^[a-z-]+ /(var/lib/dpkg/(status|status-old|available|lock|lock-frontend|triggers/[^ ]*)|var/cache/apt/[^/ ]*\.bin|var/log/(dpkg\.log|alternatives\.log|apt|apt/[^ ]*)|var/cache/debconf/[^ ]*|var/lib/dkms/mok\.(key|pub))$'
echo "# what the run changed that is Debian's own state (excepted):"
grep -E "$except" "$out/changes" | sed 's/^/#   /' || true
if grep -Ev "$except" "$out/changes" >"$out/changes-left"; then
    echo "deb-test: after the purge the root differs from before the install:" >&2
    cat "$out/changes-left" >&2
    exit 1
fi
echo "remove and purge left no file of the package ($(wc -l <"$out/changes") changed paths, all Debian's own state)"
rm -rf "$run"
echo "module for the VM: $ko_out"
