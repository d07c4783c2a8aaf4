// Types shared by apply.ts and the per-domain action modules (kept apart to avoid import cycles).
import type { RepoWriter } from './git/actions.ts';
import type { Logger } from './log.ts';
import type { GitWriter } from './git/push.ts';
import type { OciWriter } from './oci/actions.ts';
import type { PostWriter } from './grants/actions.ts';
import type { S3Store, S3Writer } from './s3/store.ts';

/** The write interfaces apply may use. A phase passes only those its plan needs. */
export interface Writers {
  s3?: S3Writer;
  /** Where s3.transfer actions read from (promote's source environment; reads only). */
  s3Source?: S3Store;
  /** The local repository (prepare, tag). */
  repo?: RepoWriter;
  git?: GitWriter;
  /** Registry pushes and image index PUTs (lib/oci). */
  oci?: OciWriter;
  /** Presigned POST uploads (releng contribute with a presigned-post grant). */
  post?: PostWriter;
}

/** What a handler gets besides its action. */
export interface ApplyEnv {
  writers: Writers;
  log: Logger;
  /** Report transferred bytes to the progress bar. */
  onBytes: (n: number) => void;
}

/** One handler per action kind of a domain. */
export type HandlerMap<A extends { kind: string }> = {
  [K in A['kind']]: (action: Extract<A, { kind: K }>, env: ApplyEnv) => Promise<void>;
};
