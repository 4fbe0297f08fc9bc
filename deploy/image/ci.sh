#!/usr/bin/env bash
# CI step for the container image (as root, run by .ci/run): builds it
# offline with deploy/image/build.sh (podman build, no registry), for amd64
# and arm64, then runs the amd64 one with Microsoft's createOptions and
# checks content and summary on the mapped ports
# (deploy/imagerun_test.go; it says in its skip message when containers
# cannot run on the machine).
set -euo pipefail
cd "$(dirname "$0")/../.."

tag=localhost/gatecache:ci-$$
trap 'podman rmi -f "$tag" "$tag-arm64" >/dev/null 2>&1 || true' EXIT
for arch in amd64 arm64; do
	start=$SECONDS
	t=$tag
	[ "$arch" = amd64 ] || t=$tag-$arch
	deploy/image/build.sh "$t" "$arch" >/dev/null
	echo "image: built $t ($(podman image inspect --format '{{.Architecture}}, {{.Size}} bytes' "$t")) in $((SECONDS - start)) s"
done
GATECACHE_IMAGE=$tag go test -count=1 -v -run '^TestImageRunsWithSampleCreateOptions$' ./deploy/
