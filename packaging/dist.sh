#!/usr/bin/env bash
# Builds chatops-executor's release artifacts into dist/: the static binary, a tarball,
# .deb and .rpm packages (nfpm, packaging/nfpm.yaml) and SHA256SUMS over all of them.
# Called by `make dist`, which passes GO, NFPM, VERSION, COMMIT and DATE.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${GO:=go}" "${NFPM:?NFPM must name the nfpm binary}"
: "${VERSION:?}" "${COMMIT:?}" "${DATE:?}"
arch=$("$GO" env GOARCH)

# Package versions must start with a digit and sort right: v1.2.3 is 1.2.3; an untagged
# build sorts before the next release (~ sorts low in dpkg and rpm).
if [[ $VERSION =~ ^v?([0-9]+\.[0-9]+\.[0-9]+.*)$ ]]; then
  pkgversion=${BASH_REMATCH[1]}
else
  pkgversion="0.0.0~git$(date -u -d "$DATE" +%Y%m%d%H%M%S).${COMMIT:0:12}"
  [[ $VERSION != *-dirty ]] || pkgversion+="~dirty"
fi
pkgversion=${pkgversion//-/\~}

out=dist
rm -rf "$out"
mkdir -p "$out/build"
bin="$out/build/chatops-executor"
CGO_ENABLED=0 "$GO" build -trimpath \
  -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.date=$DATE" \
  -o "$bin" ./executor
"$bin" --version

# The tarball: the binary and everything the packages install, at the paths a person
# unpacking it would look for them.
base="chatops-executor_${pkgversion}_linux_${arch}"
stage="$out/build/$base"
mkdir -p "$stage/packaging/systemd"
cp "$bin" README.md LICENSE CHANGELOG.md config.example.toml slack-app-manifest.yml "$stage/"
cp packaging/config.toml packaging/logrotate "$stage/packaging/"
cp packaging/systemd/* "$stage/packaging/systemd/"
# The same commit gives the same bytes: every timestamp is the commit's (nfpm reads
# SOURCE_DATE_EPOCH), and gzip records no name or time.
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(date -u -d "$DATE" +%s)
tar -C "$out/build" --owner=0 --group=0 --numeric-owner --sort=name \
  --mtime="@$SOURCE_DATE_EPOCH" -cf - "$base" | gzip -n -9 >"$out/$base.tar.gz"

for pkg in deb rpm; do
  VERSION=$pkgversion ARCH=$arch "$NFPM" package \
    --config packaging/nfpm.yaml --packager "$pkg" --target "$out/"
done

rm -rf "$out/build"
(cd "$out" && sha256sum -- * > SHA256SUMS)
echo "dist: built in $out/:"
(cd "$out" && ls -l)
