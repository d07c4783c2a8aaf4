// How releng talks to people: on a terminal, one renderer draws every spinner and progress bar
// in a live block under the log (never two renderers fighting over the cursor, as ora's
// "Multiple concurrent spinners" warned); a finished bar collapses to one summary line and lines
// are cut to the terminal's width. Without a terminal (CI, Hydra, pipes): plain timestamped lines.
// Colours: off with NO_COLOR or without a terminal, on with FORCE_COLOR (https://no-color.org).
// Everything goes to stderr; stdout is for --json.
import type { Skip, Step } from './actions.ts';
import { redact } from './secrets.ts';

export type Colour = 'blue' | 'green' | 'red' | 'yellow' | 'magenta' | 'cyan' | 'white';
const ansi: Record<Colour, number> = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, white: 37 };

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
  /** The run's id and what it planned (lib/apply.ts records a dry run's steps here). */
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
}

export interface LoggerOptions {
  verbose?: boolean;
  /** Force plain lines (default: plain unless stderr is a TTY and CI is unset). */
  plain?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Drop everything but warnings (tests). */
  quiet?: boolean;
  /** The run's id (default: "-"). */
  runId?: string;
  /** Environment variables deciding colours (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Colours on or off: FORCE_COLOR (not "0") forces them, NO_COLOR (non-empty) turns them off, else only on a terminal. */
export function coloursEnabled(isTerminal: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  if (env.NO_COLOR) return false;
  return isTerminal;
}

// eslint-disable-next-line no-control-regex
const escapes = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** Visible length of a string (escape sequences take no columns). */
export function visibleLength(s: string): number {
  return [...s.replace(escapes, '')].length;
}

/** Cuts a line to `width` visible columns, keeping escape sequences whole. */
export function fitToWidth(s: string, width: number): string {
  if (visibleLength(s) <= width) return s;
  let out = '';
  let seen = 0;
  for (let i = 0; i < s.length && seen < width - 1;) {
    const m = s[i] === '\x1b' ? /^\x1b\[[0-9;?]*[A-Za-z]/.exec(s.slice(i)) : null;
    if (m) { out += m[0]; i += m[0].length; continue; }
    const ch = String.fromCodePoint(s.codePointAt(i)!);
    out += ch;
    i += ch.length;
    seen++;
  }
  return `${out}…${s.includes('\x1b[') ? '\x1b[0m' : ''}`;
}

const spinnerFrames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

interface Live {
  line(frame: number, width: number): string;
}

/** The one renderer of a terminal: log lines above, a redrawn block of live spinners and bars below. */
class TerminalRenderer {
  private live: Live[] = [];
  private drawn = 0;
  private frame = 0;
  private timer?: NodeJS.Timeout;
  private readonly onExit = () => this.close();

  constructor(private readonly stream: NodeJS.WritableStream & { columns?: number }) {}

  private width(): number {
    return Math.max(20, (this.stream.columns ?? 80) - 1);
  }

  private clear(): string {
    return this.drawn ? `\x1b[${this.drawn}A\r\x1b[J` : '';
  }

  private block(): string {
    const w = this.width();
    const lines = this.live.map((l) => fitToWidth(l.line(this.frame, w), w));
    this.drawn = lines.length;
    return lines.map((l) => `${l}\n`).join('');
  }

  /** Writes finished lines above the live block. */
  print(text: string): void {
    const w = this.width();
    const lines = text.split('\n').map((l) => fitToWidth(l, w));
    const out = this.clear() + lines.map((l) => `\x1b[2K${l}\n`).join('');
    this.drawn = 0;
    this.stream.write(out + this.block());
  }

  add(item: Live): void {
    this.live.push(item);
    if (!this.timer) {
      this.stream.write('\x1b[?25l');
      process.once('exit', this.onExit);
      this.timer = setInterval(() => this.redraw(), 100);
      this.timer.unref();
    }
    this.redraw();
  }

  remove(item: Live, finalLine?: string | ((width: number) => string)): void {
    this.live = this.live.filter((l) => l !== item);
    if (finalLine !== undefined) this.print(typeof finalLine === 'string' ? finalLine : finalLine(this.width()));
    else this.redraw();
    if (!this.live.length) this.stopTimer();
  }

  redraw(): void {
    this.frame++;
    this.stream.write(this.clear() + this.block());
  }

  private stopTimer(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    process.removeListener('exit', this.onExit);
    this.stream.write('\x1b[?25h');
  }

  close(): void {
    if (this.live.length) {
      this.stream.write(this.clear());
      this.drawn = 0;
      this.live = [];
    }
    this.stopTimer();
  }
}

/** Builds the logger for a run: interactive only on a TTY outside CI/Hydra. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const env = opts.env ?? process.env;
  // A pty with no size (e.g. under `script` with no terminal) makes redrawing loop: plain lines there.
  const interactive = !opts.plain && !!stream.isTTY && (stream.columns ?? 0) > 0 && !env.CI && !env.HYDRA_JSON;
  const useColour = coloursEnabled(!!stream.isTTY && !opts.plain, env);
  const renderer = interactive && !opts.quiet ? new TerminalRenderer(stream) : undefined;
  const write = (text: string) => {
    if (opts.quiet) return;
    if (renderer) renderer.print(redact(text));
    else stream.write(redact(text) + '\n');
  };
  const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const line = (msg: string) => write(interactive ? msg : `[${stamp()}] ${msg}`);
  const colour = (c: Colour | undefined, text: string) => (useColour && c ? `\x1b[${ansi[c]}m${text}\x1b[0m` : text);
  const tick = colour('green', '✔');
  const cross = colour('red', '✖');
  const run: RunRecord = { id: opts.runId ?? '-', plan: [], skipped: [] };

  return {
    interactive,
    run,
    info: (m) => line(m),
    warn: (m) => { if (opts.quiet) stream.write(redact(`warning: ${m}`) + '\n'); else line(colour('yellow', `warning: ${m}`)); },
    debug: (m) => { if (opts.verbose) line(`  ${m}`); },
    skip: (what, reason) => line(`skip ${what}: ${reason}`),
    colour,
    close: () => renderer?.close(),
    phase(title, phaseOpts) {
      if (renderer && phaseOpts?.still) {
        // A progress bar draws this step and collapses into its summary line: no second line on success.
        return { succeed: (t) => { if (t) write(`${tick} ${t}`); }, fail: (t) => write(`${cross} ${t ?? title}`), update: () => {} };
      }
      if (renderer) {
        let text = redact(title);
        const item: Live = { line: (frame) => `${colour('cyan', spinnerFrames[frame % spinnerFrames.length]!)} ${text}` };
        renderer.add(item);
        return {
          succeed: (t) => renderer.remove(item, `${tick} ${redact(t ?? title)}`),
          fail: (t) => renderer.remove(item, `${cross} ${redact(t ?? title)}`),
          update: (t) => { text = redact(t); },
        };
      }
      if (opts.quiet) return { succeed: () => {}, fail: () => {}, update: () => {} };
      line(`==> ${title}`);
      return {
        succeed: (t) => line(`ok  ${t ?? title}`),
        fail: (t) => line(`FAIL ${t ?? title}`),
        update: (t) => opts.verbose && line(`    ${t}`),
      };
    },
    progress(title, total, unit, items = 0) {
      let itemsDone = 0;
      let done = 0;
      let all = total;
      const started = Date.now();
      const fmt = (n: number) => (unit === 'bytes' ? humanBytes(n) : `${n}`);
      const speed = () => fmt(Math.round(done / Math.max((Date.now() - started) / 1000, 0.001)));
      const filesText = () => (items ? ` ${itemsDone}/${items} files` : '');
      if (renderer) {
        // title [=====     ]  45% 12.0 MiB/30.0 MiB 3/10 files 5.1 MiB/s — the bar takes what the numbers leave.
        const item: Live = {
          line: (_frame, width) => {
            const pct = all > 0 ? Math.min(100, Math.floor((done / all) * 100)) : 100;
            const numbers = ` ${String(pct).padStart(3)}% ${fmt(done)}/${fmt(all)}${filesText()} ${speed()}/s`;
            const room = width - numbers.length - 3;
            const shownTitle = fitToWidth(redact(title), Math.max(8, Math.floor(room / 2)));
            const barWidth = Math.max(5, room - visibleLength(shownTitle));
            const filled = Math.round((pct / 100) * barWidth);
            return `${shownTitle} [${'='.repeat(filled)}${' '.repeat(barWidth - filled)}]${numbers}`;
          },
        };
        renderer.add(item);
        let stopped = false;
        return {
          tick(n) { done += n; },
          item() { itemsDone++; },
          addTotal(n) { all += n; },
          stop() {
            if (stopped) return;
            stopped = true;
            const secs = (Date.now() - started) / 1000;
            // The numbers stay whole; the title gives way when the line is wider than the terminal.
            const numbers = `: ${fmt(done)}${items ? `, ${itemsDone} files` : ''} in ${secs.toFixed(1)} s (${speed()}/s)`;
            renderer.remove(item, (width) => `${tick} ${fitToWidth(redact(title), Math.max(8, width - numbers.length - 2))}${numbers}`);
          },
        };
      }
      // Plain mode: one line at start, at most one every 5 s, one at the end.
      let last = started;
      const report = () => line(`    ${title}: ${fmt(done)}/${fmt(all)}${items ? ` | ${itemsDone}/${items} files` : ''} (${speed()}/s)`);
      if (all > 0) line(`    ${title}: ${fmt(all)} to do`);
      return {
        tick(n) { done += n; if (Date.now() - last > 5000) { last = Date.now(); report(); } },
        item() { itemsDone++; },
        addTotal(n) { all += n; },
        stop() { if (all > 0) report(); },
      };
    },
  };
}
