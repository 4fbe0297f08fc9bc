#!/usr/bin/env bash
# Prints the package version, the first that applies:
#   GATECACHE_VERSION from the environment (release automation);
#   a git tag vX.Y.Z on HEAD: X.Y.Z;
#   a tag vX.Y.Z N commits back: X.Y.Z+N.gHASH;
#   the VERSION file at the repository root, plus +gitDATE.HASH of the
#   commit when in a git checkout (so that every commit's package
#   upgrades the one before it), or alone in a source tree without git.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
valid='^[0-9][A-Za-z0-9.+~]*$'   # a Debian upstream version without a revision

version=${GATECACHE_VERSION:-}
if [ -z "$version" ] && git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	if tag=$(git -C "$root" describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		version=${tag#v}
	elif desc=$(git -C "$root" describe --tags --long --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0
		base=${desc%-*-g*}
		rest=${desc#"$base"-}
		version=${base#v}+${rest%%-*}.g${rest#*-g}
	elif [ -f "$root/VERSION" ]; then
		date=$(TZ=UTC git -C "$root" log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
		hash=$(git -C "$root" rev-parse --short=7 HEAD)
		version=$(tr -d ' \n' < "$root/VERSION")+git$date.$hash
	fi
fi
if [ -z "$version" ] && [ -f "$root/VERSION" ]; then
	version=$(tr -d ' \n' < "$root/VERSION")
fi
if ! [[ $version =~ $valid ]]; then
	echo "version.sh: no usable version (got \"$version\"): tag vX.Y.Z, write VERSION, or set GATECACHE_VERSION" >&2
	exit 1
fi
echo "$version"
