// How releng talks to people: spinners, progress bars and colours on a terminal; plain
// timestamped lines in CI or under Hydra (no TTY). Everything goes to stderr; stdout is for --json.
import ora, { type Ora } from 'ora';
import cliProgress from 'cli-progress';
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
  stop(): void;
}

export interface Phase {
  succeed(text?: string): void;
  fail(text?: string): void;
  update(text: string): void;
}

export interface Logger {
  readonly interactive: boolean;
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
}

export interface LoggerOptions {
  verbose?: boolean;
  /** Force plain lines (default: plain unless stderr is a TTY and CI is unset). */
  plain?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Drop everything but warnings (tests). */
  quiet?: boolean;
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Builds the logger for a run: interactive only on a TTY outside CI/Hydra. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  // A pty with no size (e.g. under `script` with no terminal) makes spinners loop redrawing: plain lines there.
  const interactive = !opts.plain && !!stream.isTTY && ((stream as any).columns ?? 0) > 0 && !process.env.CI && !process.env.HYDRA_JSON;
  const write = (line: string) => { if (!opts.quiet) stream.write(redact(line) + '\n'); };
  const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const line = (msg: string) => write(interactive ? msg : `[${stamp()}] ${msg}`);
  const colour = (c: Colour | undefined, text: string) => (interactive && c ? `\x1b[${ansi[c]}m${text}\x1b[0m` : text);

  return {
    interactive,
    info: (m) => line(m),
    warn: (m) => { if (opts.quiet) stream.write(redact(`warning: ${m}`) + '\n'); else line(colour('yellow', `warning: ${m}`)); },
    debug: (m) => { if (opts.verbose) line(`  ${m}`); },
    skip: (what, reason) => line(`skip ${what}: ${reason}`),
    colour,
    phase(title, phaseOpts) {
      if (interactive && !opts.quiet && phaseOpts?.still) {
        return {
          succeed: (t) => write(`${colour('green', '✔')} ${t ?? title}`),
          fail: (t) => write(`${colour('red', '✖')} ${t ?? title}`),
          update: () => {},
        };
      }
      if (interactive && !opts.quiet) {
        const s: Ora = ora({ text: title, stream: stream as any, discardStdin: false }).start();
        return {
          succeed: (t) => s.succeed(redact(t ?? title)),
          fail: (t) => s.fail(redact(t ?? title)),
          update: (t) => { s.text = redact(t); },
        };
      }
      line(`==> ${title}`);
      return {
        succeed: (t) => line(`ok  ${t ?? title}`),
        fail: (t) => line(`FAIL ${t ?? title}`),
        update: (t) => opts.verbose && line(`    ${t}`),
      };
    },
    progress(title, total, unit, items = 0) {
      let itemsDone = 0;
      const filesText = () => (items ? ` | ${itemsDone}/${items} files` : '');
      const fmt = (n: number) => (unit === 'bytes' ? humanBytes(n) : `${n}`);
      if (interactive && !opts.quiet) {
        const bar = new cliProgress.SingleBar({
          stream: stream as any,
          format: `${title} [{bar}] {percentage}% | {done}/{all}{files} | {speed}/s`,
          hideCursor: true,
          clearOnComplete: false,
        }, cliProgress.Presets.shades_classic);
        let done = 0;
        let all = total;
        const started = Date.now();
        const payload = () => ({ done: fmt(done), all: fmt(all), files: filesText(), speed: fmt(Math.round(done / Math.max((Date.now() - started) / 1000, 0.001))) });
        bar.start(all, 0, payload());
        return {
          tick(n) { done += n; bar.update(done, payload()); },
          item() { itemsDone++; bar.update(done, payload()); },
          addTotal(n) { all += n; bar.setTotal(all); bar.update(done, payload()); },
          stop() { bar.stop(); },
        };
      }
      // Plain mode: one line at start, at most one every 5 s, one at the end.
      let done = 0;
      let all = total;
      const started = Date.now();
      let last = started;
      const report = () => {
        const secs = Math.max((Date.now() - started) / 1000, 0.001);
        line(`    ${title}: ${fmt(done)}/${fmt(all)}${filesText()} (${fmt(Math.round(done / secs))}/s)`);
      };
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
