#!/usr/bin/env zx
// The quick start (run by scripts/quickstart.sh once setup.sh has installed zx): a full release
// of examples/hello (prepare → tag → build → upload) into the local environment (embedded S3,
// local registry, bare git remote). The example is copied into a scratch git repository of its
// own under .releng/quickstart/, so its tags and source tarball are the example's, not releng's.
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const releng = `${here}/bin/releng`;
// No substituter is reachable offline, and flakes are experimental in Debian's Nix (scripts/env.sh).
process.env.NIX_CONFIG ??= 'substituters =\nexperimental-features = nix-command flakes';
$.verbose = false;
const args = process.argv.slice(process.argv.findIndex((a) => a.endsWith('quickstart.mjs')) + 1);

const work = `${here}/.releng/quickstart`;
await fs.remove(work);
await fs.mkdirp(work);
await fs.copy(`${here}/examples/hello`, `${work}/hello`);
await $`git init -q --bare -b main ${work}/remote.git`;
cd(`${work}/hello`);
await $`git init -q -b main`;
await $`git config user.name ${'releng quick start'}`;
await $`git config user.email quickstart@example.invalid`;
await $`git add -A`;
await $`git commit -q -m ${'hello: initial import'}`;
await $`git remote add origin ${work}/remote.git`;
await $`git push -q origin main`;

// The whole flow on a clean repository: prepare (notes) → tag → build → upload.
await $({ stdio: 'inherit' })`${releng} release ${args}`;
const version = (await $`git describe --tags`).stdout.trim();
// An outside builder's contribution (docs/grants-and-index.md): the maintainer grants the upload of
// one .deb, the builder uploads it with the grant alone, and the index run publishes it as a signed
// APT repository. The .deb is a release job, so it is already built.
const debDir = (await $`nix-build release.nix -A deb.x86_64-linux --no-out-link`).stdout.trim();
const deb = `${debDir}/hello_${version}_amd64.deb`;
await $({ stdio: 'inherit' })`${releng} grant deb --version ${version} --output ${work}/grant-deb.json`;
await $({ stdio: 'inherit', cwd: work })`${releng} contribute --grant grant-deb.json ${deb}`;
await $({ stdio: 'inherit' })`${releng} index`;
echo('');
echo(`Released examples/hello ${version} into ${work}/hello/.releng/local (run '${releng} serve' in ${work}/hello to browse it).`);
echo(`Release notes: ${work}/hello/doc/manual/src/release-notes/; tag record: ${work}/hello/release/tag.json.`);
echo(`APT repository: http://127.0.0.1:4566/local-releases/apt (while 'releng serve' runs), key ${work}/hello/.releng/local/apt-repository-key.gpg.`);
