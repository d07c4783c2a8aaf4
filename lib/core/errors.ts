// Errors the user can act on. Only lib/cli/main.ts prints them and sets the exit code.

/** A failure with what went wrong and what to do next (goreleaser style). Exit 1. */
export class ReleaseError extends Error {
  constructor(message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ReleaseError';
  }
}

/** Bad command line: unknown flag, missing argument. Exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A program releng needs is not installed; names the Debian package that provides it. */
export class MissingToolError extends ReleaseError {
  constructor(readonly tool: string, readonly debianPackage: string) {
    super(`required program '${tool}' is not on PATH`,
      `install it (Debian: apt-get install -y ${debianPackage}; Nix: use the flake's package, whose wrapper puts it on PATH)`);
    this.name = 'MissingToolError';
  }
}

/** Renders any thrown value as the lines the entry script prints. */
export function describeError(err: unknown): string {
  if (err instanceof ReleaseError) {
    return err.hint ? `${err.message}\n  hint: ${err.hint}` : err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * Error text as it is printed (issue 25): a value echoed back that is longer than 300 characters
 * (a 200 KB endpoint, a host, a body a server answered) keeps its first 200 and last 50 characters
 * and says how many it left out; the whole text is at most 16 KB. Messages quote what is wrong, but
 * must stay readable in a terminal and a CI log.
 */
export function capEchoedValues(text: string): string {
  const capped = text.replace(/\S{301,}/g, (v) => `${v.slice(0, 200)}…(${v.length - 250} characters left out)…${v.slice(-50)}`);
  return capped.length > 16_384 ? `${capped.slice(0, 16_000)}\n…(${capped.length - 16_000} more characters left out)` : capped;
}

/** Thrown by a phase when --dry-run has shown all it can before writing (build cannot plan further without building). */
export class DryRunStop extends Error {
  constructor() { super('dry run'); this.name = 'DryRunStop'; }
}

/**
 * Exit statuses other than 0/1/2: conditions a timer or a Hydra job treats as "nothing to do"
 * (SuccessExitStatus=3 4 in a systemd unit). Documented in docs/channel.md; 5 in docs/hydra.md.
 */
export const EXIT_ALREADY_PUBLISHED = 3;
export const EXIT_WOULD_GO_BACK = 4;
/** `build --from-hydra`: a release job of the evaluation has not finished yet; run again later (docs/hydra.md). */
export const EXIT_NOT_READY = 5;

/** Not a failure: there was nothing to publish. The entry script logs the message and exits with `exitStatus`. */
export class NothingToDo extends ReleaseError {
  constructor(message: string, hint: string | undefined, readonly exitStatus: number, readonly result?: unknown) {
    super(message, hint);
    this.name = 'NothingToDo';
  }
}
