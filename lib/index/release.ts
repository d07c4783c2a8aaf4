// The Release files of a suite (Debian wiki DebianRepository/Format, "Release files"): the top-level
// dists/SUITE/Release that InRelease and Release.gpg sign, and the per-architecture
// dists/SUITE/COMPONENT/binary-ARCH/Release that older tools read. Written here rather than by
// `apt-ftparchive release`, which cannot write `No-Support-for-Architecture-all` and takes its
// Valid-Until from the clock; test/unit/index/release.test.ts checks the checksum sections against it.
import { createHash } from 'node:crypto';

/** The fields of a suite's Release before its checksums, in the order Debian's archive writes them. */
export interface ReleaseFields {
  origin?: string;
  label?: string;
  suite: string;
  codename: string;
  date: Date;
  /** Seconds after `date` the Release stays valid (Valid-Until); apt refuses it after that. */
  validFor: number;
  /** `No-Support-for-Architecture-all: Packages` (arch:all packages are in every binary-ARCH as well). */
  noSupportForArchitectureAll: boolean;
  architectures: string[];
  components: string[];
  description?: string;
}

/** RFC 1123 date as Release files carry it (`Sat, 07 Dec 2024 16:53:49 UTC`), to the second. */
export function releaseDate(d: Date): string {
  return d.toUTCString().replace('GMT', 'UTC');
}

/** Release text: header fields, then MD5Sum and SHA256 of each file (path relative to dists/SUITE/), as Debian's archive lists them. */
export function renderRelease(f: ReleaseFields, files: Map<string, Buffer>): string {
  const date = new Date(Math.floor(f.date.getTime() / 1000) * 1000);
  const lines: string[] = [];
  const field = (k: string, v: string | undefined) => { if (v) lines.push(`${k}: ${v}`); };
  field('Origin', f.origin);
  field('Label', f.label);
  field('Suite', f.suite);
  field('Codename', f.codename);
  field('Date', releaseDate(date));
  field('Valid-Until', releaseDate(new Date(date.getTime() + f.validFor * 1000)));
  field('Acquire-By-Hash', 'yes');
  if (f.noSupportForArchitectureAll) field('No-Support-for-Architecture-all', 'Packages');
  field('Architectures', f.architectures.join(' '));
  field('Components', f.components.join(' '));
  field('Description', f.description);
  const names = [...files.keys()].sort();
  for (const [title, algo] of [['MD5Sum', 'md5'], ['SHA256', 'sha256']] as const) {
    lines.push(`${title}:`);
    for (const n of names) {
      const body = files.get(n)!;
      lines.push(` ${createHash(algo).update(body).digest('hex')} ${String(body.length).padStart(16)} ${n}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** The per-architecture Release of dists/SUITE/COMPONENT/binary-ARCH/ (what it describes, no checksums). */
export function renderArchRelease(f: { suite: string; origin?: string; label?: string; component: string; architecture: string }): string {
  const lines = [`Archive: ${f.suite}`];
  if (f.origin) lines.push(`Origin: ${f.origin}`);
  if (f.label) lines.push(`Label: ${f.label}`);
  lines.push('Acquire-By-Hash: yes', `Component: ${f.component}`, `Architecture: ${f.architecture}`);
  return `${lines.join('\n')}\n`;
}

/** One header field of a Release (undefined when absent). */
export function releaseField(text: string, name: string): string | undefined {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim();
}

/** A Release date field as a Date (undefined when absent or unreadable). */
export function releaseTime(text: string, name: 'Date' | 'Valid-Until'): Date | undefined {
  const v = releaseField(text, name);
  if (!v) return undefined;
  const t = Date.parse(v.replace(/ UTC$/, ' GMT'));
  return Number.isNaN(t) ? undefined : new Date(t);
}

/** The same Release with a new Date and Valid-Until (`releng index --refresh`: nothing else changes). */
export function redateRelease(text: string, date: Date, validFor: number): string {
  const d = new Date(Math.floor(date.getTime() / 1000) * 1000);
  const until = releaseDate(new Date(d.getTime() + validFor * 1000));
  let out = text.replace(/^Date:.*$/m, `Date: ${releaseDate(d)}`);
  out = /^Valid-Until:/m.test(out) ? out.replace(/^Valid-Until:.*$/m, `Valid-Until: ${until}`) : out.replace(/^(Date:.*)$/m, `$1\nValid-Until: ${until}`);
  return out;
}

/** A Release without its Date and Valid-Until: what must be the same for a published Release to be kept. */
export function releaseWithoutDates(text: string): string {
  return text.replace(/^(Date|Valid-Until):.*\n/gm, '');
}
