// How every layer talks to people: the Logger a command is given (ctx.log). Only the interfaces
// live here; the implementation (spinners, progress bars, plain lines, colours) is the CLI's
// (lib/cli/log.ts), so no domain depends on a terminal library.
import type { Skip, Step } from './plan.ts';

export type Colour = 'blue' | 'green' | 'red' | 'yellow' | 'magenta' | 'cyan' | 'white';

export interface Progress {
  /** Adds done units (bytes or files). */
  tick(n: number, label?: string): void;
  /** Grows the total when work is discovered late. */
  addTotal(n: number): void;
  /** One more file (action) finished. */
  item(): void;
  /** Ends the bar; on a terminal it collapses into one summary line. */
  stop(): void;
}

export interface Phase {
  succeed(text?: string): void;
  fail(text?: string): void;
  update(text: string): void;
}

/** What a run records beyond its log lines: its id, and the plan a dry run printed (for --json). */
export interface RunRecord {
  id: string;
  plan: Step[];
  skipped: Skip[];
}

export interface Logger {
  readonly interactive: boolean;
  /** The run's id and what it planned (lib/core/apply.ts records a dry run's steps here). */
  readonly run: RunRecord;
  info(msg: string): void;
  warn(msg: string): void;
  /** Logged only with --verbose. */
  debug(msg: string): void;
  /** A skipped piece of work and why (never silent). */
  skip(what: string, reason: string): void;
  /** A spinner on a terminal, a start line and an end line otherwise. `still`: no spinner (a progress bar will draw). */
  phase(title: string, opts?: { still?: boolean }): Phase;
  /** A progress bar (bytes or files, throughput) on a terminal; a line every few seconds otherwise. */
  progress(title: string, total: number, unit: 'bytes' | 'files', items?: number): Progress;
  colour(c: Colour | undefined, text: string): string;
  /** Stops every spinner and bar still drawing (before an error is printed, or at exit). */
  close(): void;
  /** Resolves once the terminal renderer (ora, cli-progress; loaded on first use) is ready; at once in plain mode. */
  ready(): Promise<void>;
}

/** 1536 -> "1.5 KiB" (log lines, progress, summaries). */
export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}
