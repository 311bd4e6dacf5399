#!/usr/bin/env bash
# `make deb`: build/deb/vhost-net-rs-dkms_<version>_all.deb, the DKMS
# package (packaging/): the module's sources (Kbuild, src/, as tracked by
# git) with a dkms.conf and a VERSION file under
# /usr/src/vhost-net-rs-<version>, the build scripts under
# /usr/lib/vhost-net-rs (scripts/build/rust-kbuild.sh, shared with
# debian13.sh kdir; packaging/build-module), the modprobe.d rules under
# /usr/lib/modprobe.d. Built by Debian 13's dpkg-deb inside the Debian 13
# root (scripts/build/debian13.sh). Prints the .deb's path.
# The version: $VHOST_NET_RS_VERSION, else 0~git<commit date>.<commit>.
set -euo pipefail
. "$(dirname "$0")/env.sh"
cd "$REPO"
ver=${VHOST_NET_RS_VERSION:-0~git$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git rev-parse --short=12 HEAD)}
out=$REPO/build/deb
st=$out/stage
rm -rf "$st"; mkdir -p "$st/DEBIAN"
src=$st/usr/src/vhost-net-rs-$ver
mkdir -p "$src" "$st/usr/lib/vhost-net-rs" "$st/usr/lib/modprobe.d" "$st/usr/share/doc/vhost-net-rs-dkms"
git ls-files -z Kbuild src | xargs -0 cp --parents -t "$src"
sed "s/@VERSION@/$ver/" packaging/dkms.conf >"$src/dkms.conf"
echo "$ver" >"$src/VERSION"
install -m755 scripts/build/rust-kbuild.sh "$st/usr/lib/vhost-net-rs/rust-kbuild"
install -m755 packaging/build-module "$st/usr/lib/vhost-net-rs/build-module"
install -m644 packaging/modprobe.conf "$st/usr/lib/modprobe.d/vhost-net-rs.conf"
install -m644 packaging/debian/copyright "$st/usr/share/doc/vhost-net-rs-dkms/copyright"
for f in postinst prerm postrm; do
    sed "s/@VERSION@/$ver/g" "packaging/debian/$f" >"$st/DEBIAN/$f"; chmod 755 "$st/DEBIAN/$f"
done
size=$(du -sk --exclude=DEBIAN "$st" | cut -f1)
sed -e "s/@VERSION@/$ver/" -e "s/@SIZE@/$size/" packaging/debian/control.in >"$st/DEBIAN/control"
(cd "$st" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$st/DEBIAN/md5sums"
chmod -R u+rwX,go+rX,go-w "$st"
deb=$out/vhost-net-rs-dkms_${ver}_all.deb
rm -f "$out"/vhost-net-rs-dkms_*_all.deb
"$REPO/scripts/build/debian13.sh" run dpkg-deb --root-owner-group -Zxz --build "$st" "$deb" >&2
rm -rf "$st"
echo "$deb"
