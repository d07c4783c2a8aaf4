// `releaseJobs.jobs` of releng.json (issue 17): which evaluated attribute holds each kind of release
// job and which output releng reads. The schema only; lib/nix/release-jobs.ts resolves and uses it.
import { z } from 'zod';

const jobRef = z.object({
  /** Attribute path in the evaluated jobs; `{system}` is each system of the profile. */
  attr: z.string().min(1, 'must not be empty'),
  /** Which output of that derivation (Lix's manual is the `doc` output of build.x86_64-linux). */
  output: z.string().min(1).default('out'),
}).strict();

/** `releaseJobs.jobs` in releng.json. Every field is optional: the defaults are the README's contract. */
export const releaseJobsMappingSchema = z.object({
  build: jobRef.optional(),
  binaryTarball: jobRef.optional(),
  /** `image`: what the job's output is: `tarball` (a docker-archive, *.tar or *.tar.gz, in it) or
   *  `nix2container` (an image description JSON, as Lix's dockerImage.SYSTEM on its Hydra, issue 26). */
  dockerImage: jobRef.extend({ image: z.enum(['tarball', 'nix2container']).default('tarball') }).optional(),
  /** `path`: where the HTML manual is inside that output (default: top-level manualPath, then share/doc/PROJECT/manual). */
  manual: jobRef.extend({ path: z.string().min(1).optional() }).optional(),
  /** One job whose output already holds every per-system file, named as Lix's release-jobs.nix names them. */
  aggregate: jobRef.optional(),
}).strict().superRefine((m, ctx) => {
  for (const k of ['binaryTarball', 'dockerImage'] as const) {
    if (m.aggregate && m[k]) ctx.addIssue({ code: 'custom', path: [k], message: `remove it: with "aggregate" the ${k} files come from the aggregate job's output` });
  }
});
export type ReleaseJobsMapping = z.infer<typeof releaseJobsMappingSchema>;
