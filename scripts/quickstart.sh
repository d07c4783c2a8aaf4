#!/usr/bin/env bash
# The quick start: a full release of examples/hello (prepare → tag → build → upload) into the local environment (embedded S3,
# local registry, bare git remote). The example is copied into a scratch git repository of its
# own under .releng/quickstart/, so its tags and source tarball are the example's, not releng's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
. "$here/scripts/env.sh"

work="$here/.releng/quickstart"
rm -rf "$work"
mkdir -p "$work"
cp -r "$here/examples/hello" "$work/hello"
git init -q --bare -b main "$work/remote.git"
cd "$work/hello"
git init -q -b main
git config user.name "releng quick start"
git config user.email "quickstart@example.invalid"
git add -A
git commit -q -m "hello: initial import"
git remote add origin "$work/remote.git"
git push -q origin main

# The whole flow on a clean repository: prepare (notes) → tag → build → upload.
"$here/bin/releng" release "$@"
# An outside builder's contribution (docs/grants-and-index.md): the maintainer grants the upload of
# one .deb, the builder uploads it with the grant alone, and the index run publishes it as a signed
# APT repository. The .deb is a release job, so it is already built.
version=$(git describe --tags)
deb=$(nix-build release.nix -A deb.x86_64-linux --no-out-link)/hello_${version}_amd64.deb
"$here/bin/releng" grant deb --version "$version" --output "$work/grant-deb.json"
(cd "$work" && "$here/bin/releng" contribute --grant grant-deb.json "$deb")
"$here/bin/releng" index

echo
echo "Released examples/hello $(git describe --tags) into $work/hello/.releng/local (run '$here/bin/releng serve' in $work/hello to browse it)."
echo "Release notes: $work/hello/doc/manual/src/release-notes/; tag record: $work/hello/release/tag.json."
echo "APT repository: http://127.0.0.1:4566/local-releases/apt (while 'releng serve' runs), key $work/hello/.releng/local/apt-repository-key.gpg."
