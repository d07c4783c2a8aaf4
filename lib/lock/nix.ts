// Updating flake inputs with the Nix that is installed (issue 13). Nix 2.19 replaced
// `nix flake lock --update-input X` with `nix flake update X` (NixOS/nix#8817; Lix, forked after
// it, has the new form too), so the version decides the argument array.
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

const features = ['--extra-experimental-features', 'nix-command flakes'];

/** What `releng lock` asks of Nix (injected: tests may pass another). */
export interface FlakeUpdater {
  /** `nix --version`, e.g. `nix (Nix) 2.8.0` or `nix (Lix, like Nix) 2.91.1`. */
  version(): Promise<string>;
  /** Updates `inputs` of the flake in `dir` (its flake.lock is rewritten); throws with Nix's message. */
  update(dir: string, inputs: string[], style: UpdateStyle): Promise<void>;
}

export type UpdateStyle = 'lock --update-input' | 'update INPUT';

/** Parses `nix --version` output into [major, minor, patch]. */
export function parseNixVersion(text: string): { version: string; lix: boolean; parts: number[] } {
  const m = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) throw new ReleaseError(`cannot read the Nix version from \`nix --version\`: ${JSON.stringify(text.slice(0, 80))}`, 'install Nix 2.8 or later (Debian: apt-get install -y nix-bin)');
  return { version: m[0], lix: /\blix\b/i.test(text), parts: [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] };
}

/** Which command updates single inputs on this Nix. */
export function updateStyleFor(versionText: string): UpdateStyle {
  const { parts, lix } = parseNixVersion(versionText);
  const [major, minor] = parts as [number, number];
  if (major < 2 || (major === 2 && minor < 4)) {
    throw new ReleaseError(`Nix ${parts.join('.')} has no flakes`, 'install Nix 2.8 or later');
  }
  return lix || major > 2 || minor >= 19 ? 'update INPUT' : 'lock --update-input';
}

/** The argument array for `nix`, one source of truth for what runs and what is logged. */
export function updateArgs(inputs: string[], style: UpdateStyle): string[] {
  return style === 'update INPUT'
    ? [...features, 'flake', 'update', ...inputs]
    : [...features, 'flake', 'lock', ...inputs.flatMap((i) => ['--update-input', i])];
}

/** Nix's own message from a failed run (its stderr, and git's when a fetch failed), without our
 *  command line, the dirty-tree warnings and the --show-trace hint. */
export function nixMessage(e: unknown): string {
  const text = (e as Error).message ?? String(e);
  const lines = text.split('\n').slice(1).map((l) => l.replace(/^ {2}/, ''));
  const picked = lines.filter((l) => l.trim() && !/^warning: Git tree '.*' is dirty$/.test(l) && !/^\(use '--show-trace'/.test(l));
  return picked.join('\n') || text;
}

/** The FlakeUpdater over the `nix` program. */
export const nixUpdater: FlakeUpdater = {
  async version() { return (await run('nix', ['--version'])).stdout.trim(); },
  async update(dir, inputs, style) {
    await run('nix', updateArgs(inputs, style), { cwd: dir });
  },
};
