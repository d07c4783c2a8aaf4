// manifest.nix: what `nix upgrade-nix` reads. { SYSTEM = "/nix/store/...-PROJECT-VERSION"; ... }
import { ReleaseError } from '../errors.ts';
import { run } from '../exec.ts';

/** Renders the manifest, systems sorted, one per line (golden-tested). */
export function renderManifest(paths: Record<string, string>): string {
  const lines = Object.keys(paths).sort().map((s) => `  ${s} = "${paths[s]}";`);
  return `{\n${lines.join('\n')}\n}\n`;
}

/** Reads a manifest.nix back with Nix itself: the check that it says what we meant. */
export async function readManifestWithNix(file: string): Promise<Record<string, string>> {
  const { stdout } = await run('nix-instantiate', ['--eval', '--strict', '--json', file]);
  const data = JSON.parse(stdout);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ReleaseError(`${file} does not evaluate to an attribute set`);
  return data as Record<string, string>;
}
