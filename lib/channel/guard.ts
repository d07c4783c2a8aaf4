// The rollback guard: a channel never moves to an older release. Reads the channel object's
// x-amz-website-redirect-location and orders releases with Nix's compareVersions(parseDrvName).
// Fails closed: anything but "no channel yet" that cannot be read or parsed stops the run.
import { EXIT_WOULD_GO_BACK, NothingToDo, ReleaseError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { compareVersions, parseDrvName } from '../nix/versions.ts';
import type { S3Reader } from '../s3/store.ts';

export type GuardDecision =
  | { verdict: 'first'; reason: string }
  | { verdict: 'newer'; current: string; reason: string }
  | { verdict: 'same'; current: string; reason: string }
  | { verdict: 'forced'; current: string; reason: string };

/** The release name a redirect location points at: its last path segment. */
export function releaseNameOfRedirect(location: string): string | undefined {
  const path = location.split(/[?#]/)[0]!.replace(/\/+$/, '');
  const last = path.split('/').at(-1);
  if (!last) return undefined;
  try { return decodeURIComponent(last); } catch { return undefined; } // undecodable: the caller fails closed naming the redirect
}

/** Decides whether moving `channel` to `next` is allowed; throws when it would go back in time (unless forced). */
export async function checkChannelGuard(opts: {
  reader: S3Reader; bucket: string; key: string; channel: string; next: string; force: boolean; log: Logger;
}): Promise<GuardDecision> {
  const { reader, bucket, key, channel, next, force, log } = opts;
  const where = `s3://${bucket}/${key}`;
  const head = await reader.head(bucket, key); // throws (fail closed) on anything but 404
  if (!head) return { verdict: 'first', reason: `no channel object at ${where} yet: this is the channel's first release` };
  if (!head.redirect) {
    throw new ReleaseError(`the channel object ${where} exists but has no x-amz-website-redirect-location, so its current release is unknown`,
      'refusing to publish (fail closed): inspect the object; delete it only if the channel is meant to start afresh');
  }
  const current = releaseNameOfRedirect(head.redirect);
  const curVersion = current ? parseDrvName(current).version : '';
  if (!current || !curVersion) {
    throw new ReleaseError(`cannot parse the current release of ${channel} from ${where} (redirect ${JSON.stringify(head.redirect)}): no version in ${JSON.stringify(current ?? '')}`,
      'refusing to publish (fail closed; --force does not override this): fix the redirect object by hand');
  }
  const order = compareVersions(curVersion, parseDrvName(next).version);
  if (order === 0 && !force) return { verdict: 'same', current, reason: `channel ${channel} is already at ${current}: nothing to do` };
  if (order < 0) return { verdict: 'newer', current, reason: `${channel}: ${current} → ${next}` };
  if (!force) {
    throw new NothingToDo(`channel ${channel} would go back in time from ${current} to ${next}; refusing`,
      'nothing to do until Hydra has a newer evaluation; pass --force only if the channel must really move back (it is logged)', EXIT_WOULD_GO_BACK,
      { channel, verdict: 'older', previous: current, release: next });
  }
  const reason = order === 0
    ? `--force: re-publishing ${channel} at the same version (${current} → ${next})`
    : `--force: moving ${channel} BACK IN TIME from ${current} to ${next}`;
  log.warn(`${'!'.repeat(8)} ${reason} ${'!'.repeat(8)}`);
  return { verdict: 'forced', current, reason };
}
