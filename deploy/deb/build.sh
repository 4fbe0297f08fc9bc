#!/usr/bin/env bash
# Builds the gatecache Debian package with Debian's own dpkg-deb:
#
#   deploy/deb/build.sh ARCH OUTDIR      ARCH: amd64, arm64 or armhf
#
# and prints the path of OUTDIR/gatecache_VERSION_ARCH.deb. Needs go and
# dpkg-deb, no root (file owners come from --root-owner-group), no network
# beyond what `go build` already has in its module cache. The binary is
# static (CGO_ENABLED=0), so one package fits every Debian, Ubuntu and
# Raspberry Pi OS release of that architecture; armhf is built for ARMv7
# (GOARM=7, Debian's armhf baseline; set GOARM=6 for ARMv6 boards such as
# the Raspberry Pi Zero and 1).
#
# Contents: /usr/bin/gatecache; deploy/systemd/gatecache.service, and
# gatecache.socket when the tree has one, in /usr/lib/systemd/system with
# the drop-in gatecache.service.d/debian.conf; /etc/default/gatecache
# (conffile); the READMEs in /usr/share/doc/gatecache. The maintainer
# scripts create the gatecache system user and /var/cache/gatecache.
# DEB_MAINTAINER sets the Maintainer field; the version comes from
# deploy/deb/version.sh.
set -euo pipefail

usage() { echo "usage: $0 amd64|arm64|armhf OUTDIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
arch=$1 out=$2
case $arch in
amd64) goarch=amd64 goarm= ;;
arm64) goarch=arm64 goarm= ;;
armhf) goarch=arm goarm=${GOARM:-7} ;;
*) usage ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
systemd_dir=$root/deploy/systemd
for tool in go dpkg-deb gzip; do
	command -v $tool >/dev/null || { echo "$0: $tool not found" >&2; exit 1; }
done
[ -f "$systemd_dir/gatecache.service" ] || { echo "$0: $systemd_dir/gatecache.service missing" >&2; exit 1; }

version=$("$here/version.sh")
maintainer=${DEB_MAINTAINER:-gatecache maintainers <maintainers@gatecache.invalid>}
mkdir -p "$out"
out=$(cd "$out" && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/pkg
install -d -m 0755 "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/lib/systemd/system/gatecache.service.d" \
	"$pkg/etc/default" "$pkg/usr/share/doc/gatecache"

(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm \
	go build -trimpath -ldflags "-s -w" -o "$pkg/usr/bin/gatecache" ./cmd/gatecache)
chmod 0755 "$pkg/usr/bin/gatecache"

# The units as the repository has them; the drop-in says what Debian changes.
units=gatecache.service
install -m 0644 "$systemd_dir/gatecache.service" "$pkg/usr/lib/systemd/system/"
if [ -f "$systemd_dir/gatecache.socket" ]; then
	install -m 0644 "$systemd_dir/gatecache.socket" "$pkg/usr/lib/systemd/system/"
	units="gatecache.socket gatecache.service"
fi
install -m 0644 "$here/gatecache.service.d.conf" "$pkg/usr/lib/systemd/system/gatecache.service.d/debian.conf"
install -m 0600 "$here/default" "$pkg/etc/default/gatecache"

doc=$pkg/usr/share/doc/gatecache
install -m 0644 "$root/README.md" "$doc/README.md"
install -m 0644 "$root/deploy/README.md" "$doc/README.deploy.md"
commit_time=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$commit_time}
{
	echo "gatecache ($version) unstable; urgency=medium"
	echo
	echo "  * Built from $(git -C "$root" rev-parse HEAD 2>/dev/null || echo "a source tree") by deploy/deb/build.sh."
	echo
	echo " -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

for script in postinst prerm postrm; do
	sed "s/@UNITS@/$units/" "$here/$script" > "$pkg/DEBIAN/$script"
	chmod 0755 "$pkg/DEBIAN/$script"
done
echo /etc/default/gatecache > "$pkg/DEBIAN/conffiles"
installed_kib=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: gatecache
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_kib
Depends: adduser | passwd
Section: net
Priority: optional
Description: transparent cache for software updates on edge gateways
 gatecache caches Device Update images, Delivery Optimization content and
 package-repository files (apt and others) for the devices behind a
 gateway, so that every byte crosses the uplink once. It speaks the
 interface of Microsoft Connected Cache for IoT Edge and also works as a
 plain forward proxy for apt.
 .
 This package runs it as a hardened systemd service (gatecache.service)
 under the gatecache system user, with the cache in /var/cache/gatecache
 and the settings in /etc/default/gatecache.
CONTROL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles" "$pkg/DEBIAN/md5sums"
# Same bytes for the same commit: file times clamped to the commit's.
find "$pkg" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

deb=$out/gatecache_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
