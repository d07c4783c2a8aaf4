// `build --from-hydra` (issue 15): fetch the release jobs' output closures from the Hydra's binary
// cache into the local store with Nix, trusting only the keys releng.json names for that cache
// (`--option trusted-public-keys` replaces nix.conf's list for this one command; require-sigs on).
import { ReleaseError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { nixFeatureArgs } from './eval.ts';

/** The `nix copy --from` arguments (exported for the test that reads them back). */
export function fetchArgs(cache: string, trustedPublicKeys: string[], paths: string[]): string[] {
  return [...nixFeatureArgs, 'copy', '--from', cache,
    '--option', 'trusted-public-keys', trustedPublicKeys.join(' '), '--option', 'require-sigs', 'true',
    // The cache as it is now: no narinfo remembered from an earlier run (Nix keeps misses for an hour, hits for a month).
    '--option', 'narinfo-cache-negative-ttl', '0', '--option', 'narinfo-cache-positive-ttl', '0', '--', ...paths];
}

/** Copies `paths` and their closures from `cache`; a clear error for an untrusted signature or a missing path. */
export async function fetchFromCache(cache: string, trustedPublicKeys: string[], paths: string[]): Promise<void> {
  if (!paths.length) return;
  try {
    await run('nix', fetchArgs(cache, trustedPublicKeys, paths));
  } catch (e) {
    const msg = (e as Error).message;
    if (/lacks a valid signature|no signature|not signed/i.test(msg)) {
      throw new ReleaseError(`the binary cache ${cache} serves release paths not signed by a key in hydra.trustedPublicKeys (${trustedPublicKeys.join(', ')}):\n  ${msg.split('\n').slice(-3).join('\n  ')}`,
        'check that hydra.cache is the Hydra\'s own cache and hydra.trustedPublicKeys its public key; nothing was written to release/', { cause: e });
    }
    if (/does not exist|is not valid|not available|no such|404|no substituter that can build it/i.test(msg)) {
      throw new ReleaseError(`the binary cache ${cache} lacks a path of the release (has Hydra finished uploading, or garbage-collected it?):\n  ${msg.split('\n').slice(-3).join('\n  ')}`,
        'wait for Hydra to upload its outputs, or restart the build on Hydra; nothing was written to release/', { cause: e });
    }
    throw new ReleaseError(`cannot fetch the release paths from ${cache}: ${msg}`, 'check hydra.cache and the network; nothing was written to release/', { cause: e });
  }
}
