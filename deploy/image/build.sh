#!/usr/bin/env bash
# Builds the gatecache container image without a registry:
#
#   deploy/image/build.sh TAG [ARCH]      ARCH: amd64 (default), arm64 or arm (ARMv7)
#
# `go build` makes the static binary (CGO_ENABLED=0) on this machine, and
# `podman build` packs it with the machine's CA bundle on scratch
# (deploy/Containerfile). Nothing is pulled: scratch is no image, and the
# Containerfile has no RUN step, so an arm64 or armv7 image builds on any
# machine without emulation. Prints TAG. Save it for a gateway with
# `podman save TAG | gzip > gatecache.tar.gz` (load with `docker load`).
set -euo pipefail

usage() { echo "usage: $0 TAG [amd64|arm64|arm]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || usage
tag=$1 arch=${2:-amd64}
case $arch in
amd64 | arm64) platform=linux/$arch goarm= ;;
arm) platform=linux/arm/v7 goarm=7 ;;
*) usage ;;
esac
root=$(cd "$(dirname "$0")/../.." && pwd)
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
for tool in go podman; do
	command -v $tool >/dev/null || { echo "$0: $tool not found (apt-get install podman)" >&2; exit 1; }
done
[ -s "$ca" ] || { echo "$0: no CA bundle at $ca (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$goarm \
	go build -trimpath -ldflags "-s -w" -o "$ctx/gatecache" ./cmd/gatecache)
install -m 0644 "$ca" "$ctx/ca-certificates.crt"
# The cache root and drive 1, as in deploy/Dockerfile: owned by uid 10001
# (COPY --chown) for those who run the container as that user.
install -d -m 0750 "$ctx/nginx"
install -d -m 0755 "$ctx/nginx/cache1"

epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
podman build --quiet --pull=never --platform "$platform" --timestamp "$epoch" \
	-f "$root/deploy/Containerfile" -t "$tag" "$ctx" >/dev/null
echo "$tag"
