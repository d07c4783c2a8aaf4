// zod schemas of the Hydra JSON releng reads (Builds.pm as_json, JobsetEvals, RunCommand's HYDRA_JSON).
// Unknown fields are ignored (Hydra adds fields over time); the fields we use are checked.
import { z } from 'zod';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');
// Hydra serves booleans as 0/1 in some versions and true/false in others.
const flag = z.union([z.boolean(), z.number().int()]).transform((v) => v === true || v === 1);
const storePath = z.string().regex(/^\/nix\/store\/[0-9a-z]{32}-[^/\0\n]+(\/.*)?$/s, 'expected a /nix/store path');

/** One entry of a build's `buildproducts` (file products have a size and sha256; others null). */
export const buildProductSchema = z.object({
  type: z.string(),
  subtype: z.string().nullable().default(''),
  name: z.string().nullable().default(''),
  filesize: z.number().int().nonnegative().nullable().default(null),
  sha256hash: sha256Hex.nullable().default(null),
  path: storePath,
  defaultpath: z.string().nullable().optional(),
});

/** GET /build/ID. */
export const buildSchema = z.object({
  id: z.number().int().positive(),
  finished: flag,
  buildstatus: z.number().int().nullable(),
  nixname: z.string().min(1, 'must not be empty'),
  project: z.string(),
  jobset: z.string(),
  job: z.string(),
  system: z.string().optional(),
  timestamp: z.number().optional(),
  stoptime: z.number().nullable().optional(),
  /** The derivation Hydra built (Builds.pm as_json `drvpath`). */
  drvpath: z.string().nullable().optional(),
  jobsetevals: z.array(z.number().int().positive()).min(1, 'the build belongs to no evaluation'),
  buildoutputs: z.record(z.string(), z.object({ path: storePath })).default({}),
  buildproducts: z.record(z.string(), buildProductSchema).default({}),
});

/** One input of an evaluation (`jobsetevalinputs.<name>`). */
export const evalInputSchema = z.object({
  type: z.string().nullable().optional(),
  uri: z.string().nullable().optional(),
  revision: z.string().nullable().optional(),
  value: z.string().nullable().optional(),
});

/** GET /eval/ID. */
export const evalSchema = z.object({
  id: z.number().int().positive(),
  timestamp: z.number().optional(),
  checkouttime: z.number().nullable().optional(),
  hasnewbuilds: flag.optional(),
  flake: z.string().nullable().optional(),
  builds: z.array(z.number().int()).optional(),
  jobsetevalinputs: z.record(z.string(), evalInputSchema).default({}),
});

/** GET /eval/ID/builds (JobsetEval.pm all_builds): every build of the evaluation, each as GET /build/ID. */
export const evalBuildsSchema = z.array(buildSchema);

/** GET /eval/ID/store-paths. */
export const storePathsSchema = z.array(storePath);

/** The file Hydra's RunCommand plugin names in $HYDRA_JSON (Plugin/RunCommand.pm makeJsonPayload). */
export const runCommandSchema = z.object({
  event: z.string().optional(),
  build: z.number().int().positive(),
  finished: flag,
  buildStatus: z.number().int().nullable(),
  nixName: z.string().min(1, 'must not be empty'),
  project: z.string(),
  jobset: z.string(),
  job: z.string(),
  outputs: z.array(z.object({ name: z.string(), path: storePath })).default([]),
  products: z.array(z.object({
    productNr: z.number().int(),
    type: z.string(),
    subtype: z.string().nullable(),
    fileSize: z.number().nullable(),
    sha256hash: sha256Hex.nullable(),
    path: storePath,
    name: z.string().nullable(),
    defaultPath: z.string().nullable().optional(),
  })).default([]),
});

export type HydraBuild = z.infer<typeof buildSchema>;
export type HydraProduct = z.infer<typeof buildProductSchema>;
export type HydraEval = z.infer<typeof evalSchema>;
export type RunCommandJson = z.infer<typeof runCommandSchema>;
