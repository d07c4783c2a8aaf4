// releng.json's `lock` section (issue 29): where `releng lock` keeps its reviews (one branch or
// Gerrit change per update stream), the review metadata it sends, opt-in ref bumps, commit signing.
import { z } from 'zod';

/** A git branch name (git check-ref-format's rules, the ones a config can get wrong). */
const branchName = z.string().min(1, 'must not be empty').superRefine((b, ctx) => {
  const bad = /[\s~^:?*[\\\x00-\x1f\x7f]/.test(b) || b.includes('..') || b.includes('@{') || b.includes('//')
    || /^[/.-]|[/.]$|\.lock$|\/\./.test(b);
  if (bad) ctx.addIssue({ code: 'custom', message: `"${b}" is not a valid git branch name (git check-ref-format)` });
});

/** One push option value or trailer value: one line, no commas (Gerrit splits `%` options on them). */
const word = z.string().regex(/^[^\s,]+$/, 'one word: no spaces, commas or newlines');

/** A Gerrit label vote as Gerrit's push option takes it: `Verified+1`, `Code-Review-1`, or `Verified` (+1). */
const label = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]*?([+-]\d+)?$/, 'expected LABEL+N, LABEL-N or LABEL (Gerrit\'s l= push option, e.g. Verified+1)');

/** A pattern a ref bump compares refs with: a regular expression matched against the whole ref
 *  name, whose capture groups are the version (compared numerically where they are numbers). */
const refPattern = z.string().min(1).superRefine((p, ctx) => {
  let re: RegExp;
  try { re = new RegExp(`^(?:${p})$`); } catch (e) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(e as Error).message}` });
    return;
  }
  if (new RegExp(`${re.source}|`).exec('')!.length < 2) {
    ctx.addIssue({ code: 'custom', message: 'needs a capture group for the version, e.g. "nixos-(\\\\d\\\\d)\\\\.(\\\\d\\\\d)"' });
  }
});

export const lockSettingsSchema = z.object({
  $comment: z.union([z.string(), z.array(z.string())]).optional(),
  /** The branch of the update stream (all inputs together): one review, kept current. */
  branch: branchName.default('releng/lock'),
  /** The branch of one input's stream with --per-input; `{input}` is the input path (`/` → `.`). */
  inputBranch: branchName.refine((b) => b.includes('{input}'), 'must contain {input}').default('releng/lock-{input}'),
  /** Gerrit: the change's topic (`-o topic=`); branches: a `Topic:` trailer. */
  topic: word.optional(),
  /** Gerrit: hashtags (`-o hashtag=`); branches: `Hashtag:` trailers (e.g. for the forge's labels). */
  hashtags: z.array(word).default([]),
  /** Gerrit: reviewers (`-o r=`); branches: `Reviewer:` trailers. Account e-mail or user name. */
  reviewers: z.array(word).default([]),
  /** Gerrit: CCs (`-o cc=`); branches: `Cc:` trailers. */
  cc: z.array(word).default([]),
  /** Gerrit only: votes the bot casts on its change (`-o l=`), e.g. Verified+1; Gerrit refuses a
   *  label or value the bot's account may not vote. */
  labels: z.array(label).default([]),
  /** Opt-in ref bumps: input name → pattern of its ref. The input moves to the newest existing ref
   *  on its remote matching the pattern (flake.nix and flake.lock change together); others never. */
  refBumps: z.record(z.string().regex(/^[A-Za-z_][\w'-]*$/, 'a flake input name'), refPattern).default({}),
  /** Sign lock commits: SSH (ssh-keygen -Y sign, git's gpg.format=ssh) or OpenPGP (gpg). */
  signing: z.discriminatedUnion('format', [
    /** `key`: a private key file, or a public key file whose private key is in ssh-agent (relative to releng.json). */
    z.object({ format: z.literal('ssh'), key: z.string().min(1) }).strict(),
    /** `key`: key id or fingerprint in `gnupgHome` (relative to releng.json; default gpg's own). */
    z.object({ format: z.literal('openpgp'), key: z.string().min(1), gnupgHome: z.string().min(1).optional() }).strict(),
  ]).optional(),
}).strict().superRefine((s, ctx) => {
  // refs/heads/releng/lock and refs/heads/releng/lock/x cannot both exist (a file and a directory).
  if (s.inputBranch.startsWith(`${s.branch}/`)) {
    ctx.addIssue({ code: 'custom', path: ['inputBranch'], message: `"${s.inputBranch}" is inside lock.branch "${s.branch}/": git cannot have both branches; use e.g. "${s.branch}-{input}"` });
  }
});

export type LockSettings = z.infer<typeof lockSettingsSchema>;
