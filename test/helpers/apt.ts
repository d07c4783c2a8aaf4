// Real Debian tools for the grants/index tests: dpkg-deb builds packages, gpg makes throwaway keys,
// apt-get runs against a temp root (every Dir:: option points under it, and APT_CONFIG names a file
// of the temp root, so not even /etc/apt/apt.conf.d is read: the machine's apt state is never read or
// written); apt-file searches the Contents that apt-get update fetched into it.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { requireTool } from './tools.ts';

for (const [p, pkg] of [['dpkg-deb', 'dpkg'], ['apt-get', 'apt'], ['apt-ftparchive', 'apt-utils'], ['gpg', 'gnupg'], ['gpgv', 'gpgv'], ['curl', 'curl'], ['apt-file', 'apt-file']]) requireTool(p!, pkg!);

/** A tiny package holding /usr/bin/NAME (a shell script printing `hello VERSION`). */
export function makeDeb(dir: string, o: { pkg: string; version: string; arch: string; fileName?: string; files?: Record<string, string> }): string {
  const root = path.join(dir, `build-${o.pkg}-${o.version}-${o.arch}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(path.join(root, 'DEBIAN'), { recursive: true });
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  writeFileSync(path.join(root, 'DEBIAN/control'), `Package: ${o.pkg}\nVersion: ${o.version}\nArchitecture: ${o.arch}\nMaintainer: releng tests <test@example.invalid>\nDescription: releng test package\n`);
  writeFileSync(path.join(root, `usr/bin/${o.pkg}`), `#!/bin/sh\necho "${o.pkg} ${o.version}"\n`);
  chmodSync(path.join(root, `usr/bin/${o.pkg}`), 0o755);
  for (const [f, body] of Object.entries(o.files ?? {})) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    writeFileSync(path.join(root, f), body);
  }
  const out = path.join(dir, o.fileName ?? `${o.pkg}_${o.version}_${o.arch}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, out], { stdio: 'pipe' });
  return out;
}

/** A GNUPGHOME with one passphrase-less ed25519 signing key; returns its fingerprint. */
export function makeGpgHome(home: string, uid: string): string {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  execFileSync('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'sign', 'never'], { stdio: 'pipe' });
  const out = execFileSync('gpg', ['--homedir', home, '--with-colons', '--list-secret-keys'], { encoding: 'utf8' });
  return out.split('\n').find((l) => l.startsWith('fpr:'))!.split(':')[9]!;
}

/** The public key as a binary keyring file (what apt's signed-by reads). */
export function exportKey(home: string, file: string): string {
  execFileSync('gpg', ['--homedir', home, '--batch', '--yes', '--output', file, '--export'], { stdio: 'pipe' });
  return file;
}

export interface AptRoot {
  dir: string;
  /** Runs apt-get with every Dir:: under the temp root; returns code and output. */
  aptGet(args: string[]): { code: number; out: string };
  /** Runs apt-file with the same configuration (it reads the Contents apt-get update fetched). */
  aptFile(args: string[]): { code: number; out: string };
  /** Where dpkg installs (--root). */
  installRoot: string;
}

/**
 * apt-file's index target (the shape Debian's apt-file ships in /etc/apt/apt.conf.d/50apt-file.conf):
 * apt-get update then fetches COMPONENT/Contents-ARCH (and Contents-all) as the Release lists them.
 */
const CONTENTS_TARGET = `Acquire::IndexTargets::deb::Contents-deb {
  MetaKey "$(COMPONENT)/Contents-$(ARCHITECTURE)";
  ShortDescription "Contents-$(ARCHITECTURE)";
  Description "$(RELEASE)/$(COMPONENT) $(ARCHITECTURE) Contents (deb)";
  flatMetaKey "Contents-$(ARCHITECTURE)";
  flatDescription "$(RELEASE) Contents (deb)";
  KeepCompressed "true";
};
`;

/**
 * A private apt: sources.list with one `deb [signed-by=KEY] URL SUITE COMPONENT` line (or, with
 * `sourcesFile`, a deb822 .sources file in sources.list.d instead). `contents` adds apt-file's index target.
 */
export function aptRoot(dir: string, source: string, arch: string, o: { contents?: boolean; sourcesFile?: string } = {}): AptRoot {
  const installRoot = path.join(dir, 'root');
  for (const d of ['etc/apt/sources.list.d', 'etc/apt/preferences.d', 'etc/apt/apt.conf.d', 'etc/apt/trusted.gpg.d', 'var/lib/apt/lists/partial', 'var/cache/apt/archives/partial', 'var/log/apt',
    'root/var/lib/dpkg/info', 'root/var/lib/dpkg/updates', 'root/var/lib/dpkg/triggers', 'root/var/lib/dpkg/alternatives', 'root/usr/bin', 'root/var/log']) {
    mkdirSync(path.join(dir, d), { recursive: true });
  }
  writeFileSync(path.join(dir, 'etc/apt/sources.list'), o.sourcesFile ? '' : `${source}\n`);
  if (o.sourcesFile) writeFileSync(path.join(dir, 'etc/apt/sources.list.d/repository.sources'), o.sourcesFile);
  if (o.contents) writeFileSync(path.join(dir, 'etc/apt/apt.conf.d/50contents.conf'), CONTENTS_TARGET);
  // Read before the command line and instead of /etc/apt: so /etc/apt/apt.conf.d (apt-file's target, say) stays out.
  writeFileSync(path.join(dir, 'apt.conf'), `Dir "${dir}/";\nDir::Etc "${dir}/etc/apt/";\nDir::Etc::main "${dir}/etc/apt/apt.conf";\nDir::Etc::parts "${dir}/etc/apt/apt.conf.d";\nDir::State::status "${installRoot}/var/lib/dpkg/status";\nAPT::Architecture "${arch}";\nAPT::Architectures { "${arch}"; };\n`);
  writeFileSync(path.join(installRoot, 'var/lib/dpkg/status'), '');
  writeFileSync(path.join(installRoot, 'var/lib/dpkg/available'), '');
  const opts = [
    '-o', `Dir=${dir}`, '-o', `Dir::Etc=${dir}/etc/apt`, '-o', `Dir::Etc::sourcelist=${dir}/etc/apt/sources.list`,
    '-o', `Dir::Etc::sourceparts=${dir}/etc/apt/sources.list.d`, '-o', `Dir::Etc::trusted=${dir}/etc/apt/trusted.gpg`,
    '-o', `Dir::Etc::trustedparts=${dir}/etc/apt/trusted.gpg.d`, '-o', `Dir::Etc::preferencesparts=${dir}/etc/apt/preferences.d`,
    '-o', `Dir::Etc::parts=${dir}/etc/apt/apt.conf.d`,
    '-o', `Dir::State=${dir}/var/lib/apt`, '-o', `Dir::State::status=${installRoot}/var/lib/dpkg/status`,
    '-o', `Dir::Cache=${dir}/var/cache/apt`, '-o', `Dir::Log=${dir}/var/log/apt`,
    '-o', `APT::Architecture=${arch}`, '-o', 'APT::Architectures::=', '-o', `APT::Architectures::=${arch}`,
    '-o', 'Debug::NoLocking=1', '-o', 'APT::Sandbox::User=root', '-o', 'Acquire::Retries=0',
    '-o', `DPkg::Options::=--root=${installRoot}`, '-o', `DPkg::Options::=--admindir=${installRoot}/var/lib/dpkg`,
    '-o', 'DPkg::Options::=--force-not-root', '-o', 'DPkg::Options::=--force-script-chrootless', '-o', `DPkg::Options::=--log=${installRoot}/var/log/dpkg.log`,
    '-o', 'DPkg::Use-Pty=0', '-o', 'Dpkg::Chroot-Directory=/', '-o', 'DPkg::Pre-Invoke::=', '-o', 'DPkg::Post-Invoke::=',
  ];
  return {
    dir, installRoot,
    aptGet(args) {
      const r = spawnSync('apt-get', [...opts, '-q', '-y', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf'), DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' } });
      return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
    },
    aptFile(args) {
      const o2 = opts.flatMap((v, i) => (opts[i - 1] === '-o' && /^Dir/.test(v) ? ['-o', v] : []));
      const r = spawnSync('apt-file', [...o2, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, APT_CONFIG: path.join(dir, 'apt.conf'), LC_ALL: 'C' } });
      return { code: r.status ?? -1, out: `${r.stdout}\n${r.stderr}` };
    },
  };
}
