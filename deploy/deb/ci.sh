#!/usr/bin/env bash
# CI step for the Debian package (as root, run by .ci/run): builds
# gatecache_VERSION_ARCH.deb for amd64, arm64 and armhf, checks each one's
# contents (deploy/deb_test.go), then installs this machine's with dpkg -i,
# checks files, user and `systemd-analyze verify`, serves a request through
# the installed binary with the installed defaults, upgrades and purges it
# (deploy/debinstall_test.go).
set -euo pipefail
cd "$(dirname "$0")/../.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
debs=()
for arch in amd64 arm64 armhf; do
	start=$SECONDS
	deb=$(deploy/deb/build.sh "$arch" "$out")
	debs+=("$deb")
	echo "deb: built $(basename "$deb"), $(stat -c %s "$deb") bytes, in $((SECONDS - start)) s"
done
GATECACHE_DEBS="${debs[*]}" go test -count=1 -run '^TestDebPackageContents$' ./deploy/

host=$(dpkg --print-architecture)
deb=$(printf '%s\n' "${debs[@]}" | grep "_${host}.deb$")
GATECACHE_DEB_INSTALL=$deb go test -count=1 -v -run '^TestDebInstall$' ./deploy/
