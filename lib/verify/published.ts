// What other commands publish into an environment, checked by `releng verify` with the verifiers
// those commands use themselves: every channel in the channels bucket (`releng channel CHANNEL
// --verify`, lib/channel/verify.ts) and the installers and APT indexes (`releng index
// --verify-only`, lib/index/verify.ts). Each runs only where the environment declares it and
// something has been published; otherwise a not-checked line says why.
import { programsCheckOf, releasesUrlOf, verifyChannelRelease } from '../channel/verify.ts';
import { parseS3Url } from '../config/config.ts';
import { staticHead } from '../config/grants.ts';
import { verifyIndexesOf } from '../index/verify.ts';
import { count, emptyReport, type DestinationVerifier } from './types.ts';

/** The channel names in the channels bucket: top-level objects (their aliases live under NAME/). */
async function channelNames(t: Parameters<DestinationVerifier['verify']>[0]): Promise<string[]> {
  const ch = t.channels!;
  const names = new Set<string>();
  for (const o of await t.s3.list(ch.bucket, ch.prefix)) {
    const rest = o.key.slice(ch.prefix.length);
    if (rest && !rest.includes('/')) names.add(rest);
  }
  return [...names].sort();
}

export const channelsVerifier: DestinationVerifier = {
  name: 'channels',
  async verify(t, _release, scope) {
    const report = emptyReport();
    if (!t.channels || !t.environment?.channelsBucket) return report; // not declared: not this environment's destination
    const names = await scope.limit(() => channelNames(t));
    if (!names.length) {
      report.notChecked.push({ destination: this.name, what: `s3://${t.channels.bucket}/${t.channels.prefix}`, reason: 'no channel published yet' });
      return report;
    }
    for (const channel of names) {
      const r = await verifyChannelRelease({ reader: t.s3, releases: t.releases, channels: t.channels, channel, releasesUrl: releasesUrlOf(t.environment, t.releases),
        programs: programsCheckOf(t.channelsConfig, channel, t.cache) });
      count(report, 'channels');
      count(report, 'files hashed', r.checked.files);
      count(report, 'redirects', r.checked.redirects);
      for (const p of r.problems) {
        const where = /^(s3:\/\/\S+?)(?::| )/.exec(p)?.[1] ?? `channel ${channel}`;
        report.problems.push({ destination: this.name, where, what: `channel ${channel}: ${p.startsWith(where) ? p.slice(where.length).replace(/^:?\s*/, '') : p}`, repair: `publish the channel's release again: releng channel ${channel} --build URL --environment ${t.name} --force (check first: releng channel ${channel} --verify --environment ${t.name})` });
      }
    }
    return report;
  },
};

export const indexVerifier: DestinationVerifier = {
  name: 'index',
  async verify(t, _release, scope) {
    const report = emptyReport();
    const env = t.environment;
    const installers = Object.entries(env?.uploaders ?? {}).flatMap(([name, u]) => (u.kind === 'installers' ? [[name, u] as const] : []));
    if (!env || (!installers.length && !env.apt)) return report; // not declared
    // An index that was never generated is not wrong: `releng index` has not run here yet.
    const published = await scope.limit(async (): Promise<boolean | string> => {
      if (env.apt) {
        const root = parseS3Url(env.apt.root);
        if (await t.s3.head(root.bucket, `${root.prefix}dists/${env.apt.suite}/Release`)) return true;
      }
      for (const [name, u] of installers) {
        const ref = parseS3Url(u.bucket);
        if ((await t.s3.list(ref.bucket, ref.prefix + staticHead(u.publish, name))).length) return true;
      }
      return false;
    }).catch((e: Error) => `its buckets cannot be read: ${e.message}`);
    if (typeof published === 'string') {
      report.notChecked.push({ destination: this.name, what: `the indexes of ${t.name}`, reason: published });
      return report;
    }
    if (!published) {
      report.notChecked.push({ destination: this.name, what: `${installers.length ? 'installers' : ''}${installers.length && env.apt ? ' and ' : ''}${env.apt ? 'APT repository' : ''} of ${t.name}`, reason: 'nothing published yet (releng index has not run here)' });
      return report;
    }
    const repair = `releng index --environment ${t.name} (it regenerates, re-signs and re-uploads what differs)`;
    let problems;
    try {
      problems = await verifyIndexesOf(t.s3, env, t.root, { deep: scope.deep });
    } catch (e) {
      report.problems.push({ destination: this.name, where: t.name, what: `cannot check the indexes: ${(e as Error).message}`, repair: 'fix what the message names (the APT signing key), then `releng index --verify-only`' });
      return report;
    }
    count(report, 'indexes', 1);
    for (const p of problems) {
      const m = /^s3:\/\/([^/]+)\/(.*)$/.exec(p.where);
      report.problems.push({ destination: this.name, where: p.where, what: p.problem, repair, ...(m ? { bucket: m[1], key: m[2] } : {}) });
    }
    return report;
  },
};
