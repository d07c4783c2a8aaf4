// OCI actions: plain data planned by lib/upload/images.ts, executed only by apply.ts through an OciWriter.
import type { ApplyEnv, HandlerMap } from '../core/apply.ts';
import { ReleaseError } from '../core/errors.ts';
import { RegistryError } from './registry.ts';

/** Push one per-system image, untagged, by the digest planning computed (skopeo --preserve-digests). */
export interface OciPush {
  kind: 'oci.push';
  registry: string;
  repository: string;
  /** sha256:HEX of the image manifest. */
  digest: string;
  /** The dir: image prepared from the tarball (release/oci/TARBALL-SHA256). */
  dir: string;
  system: string;
  platform: string;
}

/** PUT the image index under one tag (after every child manifest is in the registry). */
export interface OciIndex {
  kind: 'oci.index';
  registry: string;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  /** The exact bytes to PUT (their sha256 is `digest`). */
  body: string;
  entries: number;
  /** new, or the digest the tag pointed at before (moving tags; a forced version tag). */
  reason: 'new' | { moves: string };
}

/** Copy one manifest (and its blobs) registry → registry by digest, unchanged (promote, issue 11). */
export interface OciCopy {
  kind: 'oci.copy';
  fromRegistry: string;
  fromRepository: string;
  registry: string;
  repository: string;
  digest: string;
  /** e.g. linux/amd64 (for the log). */
  platform: string;
}

export type OciAction = OciPush | OciIndex | OciCopy;

/** The registry writes apply may make. */
export interface OciWriter {
  push(a: { registry: string; repository: string; digest: string; dir: string }): Promise<void>;
  /** Returns the digest the registry reports for the PUT. */
  putIndex(a: { registry: string; repository: string; tag: string; body: Buffer; mediaType: string }): Promise<string>;
  /** Registry → registry by digest (skopeo copy --preserve-digests); promote's writer has it. */
  copy?(a: { fromRegistry: string; fromRepository: string; registry: string; repository: string; digest: string }): Promise<void>;
}

const short = (d: string) => d.slice(0, 'sha256:'.length + 12);

export const ociRenderers = {
  'oci.push': (a: OciPush) => `oci push ${a.registry}/${a.repository}@${a.digest} (${a.system}, ${a.platform}, untagged)`,
  'oci.copy': (a: OciCopy) => `oci copy ${a.fromRegistry}/${a.fromRepository}@${a.digest} -> ${a.registry}/${a.repository}@${a.digest} (${a.platform}, untagged)`,
  'oci.index': (a: OciIndex) => `oci index ${a.registry}/${a.repository}:${a.tag} -> ${a.digest} (${a.entries} image${a.entries === 1 ? '' : 's'}, ${a.reason === 'new' ? 'new' : `moves from ${short(a.reason.moves)}`})`,
};

/** The writer registry actions use. */
export interface OciWriters {
  oci?: OciWriter;
}

function writer(env: ApplyEnv<OciWriters>): OciWriter {
  if (!env.writers.oci) throw new Error('internal: plan has OCI actions but apply got no OCI writer');
  return env.writers.oci;
}

export const ociHandlers: HandlerMap<OciAction, OciWriters> = {
  'oci.push': (a, env) => writer(env).push(a),
  'oci.copy': async (a, env) => {
    const w = writer(env);
    if (!w.copy) throw new Error('internal: plan has oci.copy actions but the OCI writer cannot copy');
    await w.copy(a);
  },
  'oci.index': async (a, env) => {
    let got: string;
    try {
      got = await writer(env).putIndex({ registry: a.registry, repository: a.repository, tag: a.tag, body: Buffer.from(a.body, 'utf8'), mediaType: a.mediaType });
    } catch (e) {
      // Retry only on 404: a registry that just accepted the children may not see them yet
      // (eventual consistency). Any other failure stops the run (issue 4).
      if (e instanceof RegistryError && e.status === 404) throw Object.assign(e, { retryable: true });
      if (e && typeof e === 'object') Object.assign(e, { retryable: false });
      throw e;
    }
    if (got && got !== a.digest) {
      throw new ReleaseError(`registry ${a.registry} stored ${a.repository}:${a.tag} as ${got}, not the planned ${a.digest}`, 'the registry rewrote the index; report this, it breaks the skip-if-published check');
    }
  },
};
