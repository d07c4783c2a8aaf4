// The APT repository format (Debian wiki DebianRepository/Format): pool/ layout, Packages stanzas,
// compressed indexes, by-hash names, and the OpenPGP side (gpg): signing Release, exporting the key.
// The Release text itself is lib/index/release.ts, Contents lib/index/contents.ts.
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { aptSuites, type AptRepository } from '../config/grants.ts';
import { MissingToolError, ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

// Missing programs fail naming their Debian package (lib/core/exec.ts debianPackageOf).
const tool = run;

/** The control fields `index` checks against where a .deb was uploaded. */
export interface DebFields {
  Package: string;
  Version: string;
  Architecture: string;
}

/** `dpkg-deb -f FILE Package Version Architecture`. */
export async function debFields(file: string): Promise<DebFields> {
  let out: string;
  try {
    out = (await tool('dpkg-deb', ['-f', '--', file, 'Package', 'Version', 'Architecture'])).stdout;
  } catch (e: any) {
    if (e?.name === 'MissingToolError') throw e;
    throw new ReleaseError(`not a Debian package (dpkg-deb -f failed): ${(e.message as string).split('\n').slice(-1)[0]}`);
  }
  const fields: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (m) fields[m[1]!] = m[2]!.trim();
  }
  if (!fields.Package || !fields.Version || !fields.Architecture) throw new ReleaseError('the package has no Package, Version or Architecture field');
  return { Package: fields.Package, Version: fields.Version, Architecture: fields.Architecture };
}

/** The version as it appears in file names: without the epoch. */
export function fileVersion(version: string): string {
  return version.replace(/^\d+:/, '');
}

/** `pool/COMPONENT/p/PKG/PKG_VER_ARCH.deb` (lib* packages under `libX/`), as Debian lays it out. */
export function poolPath(component: string, f: DebFields): string {
  const dir = f.Package.startsWith('lib') && f.Package.length > 3 ? f.Package.slice(0, 4) : f.Package[0]!;
  return `pool/${component}/${dir}/${f.Package}/${f.Package}_${fileVersion(f.Version)}_${f.Architecture}.deb`;
}

/** A Packages stanza kept as its text, with the fields that identify it. */
export interface Stanza {
  text: string;
  Package: string;
  Version: string;
  Architecture: string;
  Filename: string;
  Size: number;
  SHA256: string;
}

/** Splits a Packages file into stanzas (blank-line separated, RFC822-style fields). */
export function parsePackages(text: string): Stanza[] {
  const out: Stanza[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const t = block.replace(/^\n+|\n+$/g, '');
    if (!t) continue;
    const field = (n: string) => new RegExp(`^${n}:\\s*(.*)$`, 'm').exec(t)?.[1]?.trim() ?? '';
    out.push({ text: t, Package: field('Package'), Version: field('Version'), Architecture: field('Architecture'), Filename: field('Filename'), Size: Number(field('Size')), SHA256: field('SHA256') });
  }
  return out;
}

/** Packages text: stanzas sorted by package, version, architecture; one blank line between. */
export function renderPackages(stanzas: Stanza[]): string {
  const sorted = [...stanzas].sort((a, b) => (a.Package + '\0' + a.Version + '\0' + a.Architecture < b.Package + '\0' + b.Version + '\0' + b.Architecture ? -1 : 1));
  return sorted.map((s) => `${s.text}\n`).join('\n');
}

/** The stanza apt-ftparchive writes for one .deb placed at its pool path. */
export async function stanzaOf(debFile: string, pool: string): Promise<Stanza> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'releng-stanza-'));
  try {
    await mkdir(path.join(dir, path.dirname(pool)), { recursive: true });
    await copyFile(debFile, path.join(dir, pool));
    const { stdout } = await tool('apt-ftparchive', ['packages', 'pool'], { cwd: dir });
    const [s] = parsePackages(stdout);
    if (!s || s.Filename !== pool) throw new ReleaseError(`apt-ftparchive did not describe ${pool}`);
    return s;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Packages, Packages.gz and Packages.xz of one text (deterministic: gzip without a name or time). */
export async function compressedIndexes(text: string): Promise<{ name: string; body: Buffer }[]> {
  const raw = Buffer.from(text, 'utf8');
  const xz = await execa('xz', ['-c', '-6', '-T1', '--check=crc64'], { input: raw, encoding: 'buffer', stripFinalNewline: false }).catch((e: any) => {
    if (e?.code === 'ENOENT') throw new MissingToolError('xz', 'xz-utils');
    throw e;
  });
  return [
    { name: 'Packages', body: raw },
    { name: 'Packages.gz', body: gzipSync(raw, { level: 9 }) },
    { name: 'Packages.xz', body: Buffer.from(xz.stdout as Uint8Array) },
  ];
}

/** Which secret key signs, and with which GNUPGHOME. */
export interface Signer {
  gnupgHome?: string;
  keyId?: string;
}

function gpgArgs(s: Signer): string[] {
  return [...(s.gnupgHome ? ['--homedir', s.gnupgHome] : []), '--batch', '--yes', '--no-tty', '--pinentry-mode', 'loopback'];
}

/** Whether a gpg-agent already serves this GNUPGHOME (asked without starting one). */
export async function gpgAgentRunning(home: string | undefined): Promise<boolean> {
  try {
    // Exit 0 either way: a running agent answers its pid ("D 1234"), none prints a warning.
    const { stdout } = await tool('gpg-connect-agent', [...(home ? ['--homedir', home] : []), '--no-autostart', 'GETINFO pid', '/bye']);
    return /^D \d+/m.test(stdout);
  } catch (e: any) {
    if (e?.name === 'MissingToolError') return true; // cannot tell: leave whatever runs alone
    return false;
  }
}

/**
 * gpg starts an agent for the secret key and leaves it running after the command. One releng
 * started is stopped when the run ends (a daemon left behind holds a socket in the key's directory:
 * the quick start's local key is under the project's .releng/); an agent that ran before is kept.
 */
export async function stopGpgAgent(home: string | undefined): Promise<void> {
  await tool('gpgconf', [...(home ? ['--homedir', home] : []), '--kill', 'gpg-agent']).catch(() => undefined);
}

/** A throwaway passphrase-less signing key in an empty GNUPGHOME (the local environment only). */
export async function generateLocalKey(home: string, uid: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  await tool('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never']);
}

/** The key that will sign: the configured one, or the only secret key of the home; refuses otherwise. */
export async function resolveSigner(s: Signer, field: string): Promise<Signer & { fingerprint: string }> {
  let out: string;
  try {
    out = (await tool('gpg', [...gpgArgs(s), '--with-colons', '--list-secret-keys', ...(s.keyId ? ['--', s.keyId] : [])])).stdout;
  } catch (e: any) {
    if (e?.name === 'MissingToolError') throw e;
    throw new ReleaseError(`no OpenPGP secret key ${s.keyId ? `"${s.keyId}" ` : ''}in ${s.gnupgHome ?? 'the default GNUPGHOME'} (${field})`,
      `import the repository's signing key there (gpg --import), or fix ${field} in releng.json`);
  }
  const fprs = out.split('\n').filter((l) => l.startsWith('sec:')).map((_, i) => out.split('\n').filter((l) => l.startsWith('fpr:'))[i]?.split(':')[9]).filter(Boolean) as string[];
  if (fprs.length === 0) throw new ReleaseError(`no OpenPGP secret key in ${s.gnupgHome ?? 'the default GNUPGHOME'} (${field})`, `import the repository's signing key (gpg --import), or fix ${field}`);
  if (fprs.length > 1 && !s.keyId) throw new ReleaseError(`${s.gnupgHome ?? 'GNUPGHOME'} holds ${fprs.length} secret keys and ${field}.keyId does not say which signs`, `set ${field}.keyId to one of: ${fprs.join(', ')}`);
  return { ...s, fingerprint: fprs[0]! };
}

/** InRelease (clear-signed) and Release.gpg (detached, armored) of a Release text. */
export async function signRelease(release: string, s: Signer & { fingerprint: string }): Promise<{ inRelease: string; releaseGpg: string }> {
  const base = [...gpgArgs(s), '--digest-algo', 'SHA512', '--local-user', s.fingerprint, '--armor', '--output', '-'];
  const inRelease = (await tool('gpg', [...base, '--clearsign'], { input: release })).stdout + '\n';
  const releaseGpg = (await tool('gpg', [...base, '--detach-sign'], { input: release })).stdout + '\n';
  return { inRelease, releaseGpg };
}

/** The public key (binary keyring, what apt's `signed-by` and gpgv read). */
export async function exportPublicKey(s: Signer & { fingerprint: string }, file: string): Promise<void> {
  await tool('gpg', [...gpgArgs(s), '--output', file, '--export', '--', s.fingerprint]);
  const body = await readFile(file);
  if (body.length === 0) throw new ReleaseError(`gpg exported nothing for ${s.fingerprint}`);
}

/** The public key armored (`gpg --armor --export`), published beside the binary one as NAME.asc. */
export async function exportArmoredKey(s: Signer & { fingerprint: string }): Promise<string> {
  const { stdout } = await tool('gpg', [...gpgArgs(s), '--armor', '--export', s.fingerprint]);
  if (!stdout.includes('BEGIN PGP PUBLIC KEY BLOCK')) throw new ReleaseError(`gpg exported no armored key for ${s.fingerprint}`);
  return `${stdout}\n`;
}

/**
 * An armored key as a binary keyring file (what gpgv reads), in a throwaway GNUPGHOME removed after:
 * `gpg --dearmor` is a conversion, it starts no agent.
 */
export async function dearmorKey(armored: string, file: string): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'releng-dearmor-'));
  try {
    await tool('gpg', ['--homedir', home, '--batch', '--yes', '--no-tty', '--output', file, '--dearmor'], { input: armored });
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** The published key's base name: apt.keyName, default ORIGIN-archive-keyring (Debian's naming, e.g. debian-archive-keyring). */
export function aptKeyName(repo: Pick<AptRepository, 'keyName' | 'origin' | 'label'>): string {
  if (repo.keyName) return repo.keyName;
  const slug = (repo.origin ?? repo.label ?? 'apt').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'apt';
  return `${slug}-archive-keyring`;
}

/** dists/SUITE/ under the repository root, for each suite. */
export function suiteDirs(repo: AptRepository, rootPrefix: string): { suite: string; dists: string }[] {
  return aptSuites(repo).map((suite) => ({ suite, dists: `${rootPrefix}dists/${suite}/` }));
}

/** The `SHA256:` section of a Release: path → { sha256, size }. */
export function releaseSha256(text: string): Map<string, { sha256: string; size: number }> {
  const out = new Map<string, { sha256: string; size: number }>();
  const m = /^SHA256:\n((?: .*\n?)*)/m.exec(text);
  for (const line of (m?.[1] ?? '').split('\n')) {
    const p = /^ ([0-9a-f]{64})\s+(\d+)\s+(\S+)$/.exec(line);
    if (p) out.set(p[3]!, { sha256: p[1]!, size: Number(p[2]) });
  }
  return out;
}

/** The text a clear-signed message signs (RFC 4880 §7: dash-escaping undone). */
export function clearSignedText(inRelease: string): string | undefined {
  const m = /^-----BEGIN PGP SIGNED MESSAGE-----\n(?:[A-Za-z-]+: .*\n)*\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/m.exec(inRelease);
  if (!m) return undefined;
  return m[1]!.split('\n').map((l) => l.replace(/^- /, '')).join('\n') + '\n';
}
