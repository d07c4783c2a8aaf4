// How releng talks to people: on a terminal, this module drives one ora spinner (phases) and one
// cli-progress MultiBar (transfers), one at a time, under the log lines (never two renderers
// fighting over the cursor, as ora's "Multiple concurrent spinners detected" warned when each
// phase had its own spinner); a finished bar collapses to one summary line and lines are cut to
// the terminal's width, numbers kept whole. Without a terminal (CI, Hydra, pipes): plain timestamped lines.
// Colours: off with NO_COLOR or without a terminal, on with FORCE_COLOR (https://no-color.org).
// Everything goes to stderr; stdout is for --json.
import type { Colour, Logger, RunRecord } from '../core/log.ts';
import { humanBytes } from '../core/log.ts';
// The types every layer uses live in lib/core/log.ts; re-exported for the CLI's callers.
export type { Colour, Logger, Phase, Progress, RunRecord } from '../core/log.ts';
export { humanBytes } from '../core/log.ts';
import { redact } from '../core/secrets.ts';

const ansi: Record<Colour, number> = { red: 31, green: 32, yellow: 33, blue: 34, magenta: 35, cyan: 36, white: 37 };

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

// The dots spinner (as cli-spinners' "dots"), coloured by us so NO_COLOR / FORCE_COLOR decide, not chalk.
const spinnerFrames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

type OraModule = typeof import('ora');
type CliProgressModule = typeof import('cli-progress');
type MultiBar = import('cli-progress').MultiBar;
type SingleBar = import('cli-progress').SingleBar;

/** A phase drawing a spinner: its current text. */
interface LivePhase { text: string }

/** A transfer drawing a bar: how to draw its line at a width, and its cli-progress bar once created. */
interface LiveBar {
  line(width: number, bar: (size: number) => string): string;
  value(): number;
  total(): number;
  cli?: SingleBar;
}

/**
 * The one renderer of a terminal, driving a single ora (spinners of phases) and one cli-progress
 * MultiBar (transfers), never both at once: while a bar draws the spinner rests, and comes back
 * when the last bar is done. ora's frames are drawn by this module's own (unref'd) timer through
 * `render()` / `clear()`, so no second spinner ever starts (ora warned "Multiple concurrent
 * spinners detected" when each phase had its own), no stream is hooked, and a forgotten phase
 * never keeps the process alive. Both libraries load on the first phase or bar (`--help` and
 * plain runs never pay for them).
 */
class TerminalRenderer {
  private phases: LivePhase[] = [];
  private bars: LiveBar[] = [];
  private ora?: import('ora').Ora;
  private multibar?: MultiBar;
  private oraModule?: OraModule;
  private cliProgress?: CliProgressModule;
  private loading?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private cursorHidden = false;
  private exitHooked = false;
  private readonly onExit = () => this.close();

  constructor(
    private readonly stream: NodeJS.WritableStream & { columns?: number; isTTY?: boolean },
    private readonly colour: (c: Colour | undefined, text: string) => string,
  ) {}

  /** Columns a line may take (one less than the terminal: the last column would wrap on some terminals). */
  width(): number {
    return Math.max(20, (this.stream.columns ?? 80) - 1);
  }

  /** Loads ora and cli-progress now (they load on the first phase or bar anyway). */
  ready(): Promise<void> {
    this.load();
    return this.loading!;
  }

  private load(): void {
    if (this.loading) return;
    // Loaded on first use; every state change calls sync(), which draws with what is loaded.
    this.loading = Promise.all([import('ora'), import('cli-progress')]).then(([o, c]) => {
      this.oraModule = o;
      this.cliProgress = ((c as { default?: CliProgressModule }).default ?? c) as CliProgressModule;
      this.sync();
    }, (e: Error) => {
      this.stream.write(`warning: cannot load the terminal renderer (${e.message}); run \`npm ci\`\n`);
    });
  }

  private spinnerText(): string {
    const text = this.phases.map((p) => p.text).join(' › ');
    return fitToWidth(text, this.width() - 2);
  }

  private hideCursor(hidden: boolean): void {
    if (hidden === this.cursorHidden) return;
    this.cursorHidden = hidden;
    this.stream.write(hidden ? '\x1b[?25l' : '\x1b[?25h');
  }

  /** While anything is live, leaving the process clears it and shows the cursor again. */
  private hookExit(live: boolean): void {
    if (live === this.exitHooked) return;
    this.exitHooked = live;
    if (live) process.once('exit', this.onExit);
    else process.removeListener('exit', this.onExit);
  }

  /** Makes the screen show what is live: bars if any (spinner resting), else the spinner, else nothing. */
  private sync(): void {
    this.hookExit(this.phases.length + this.bars.length > 0);
    if ((this.phases.length || this.bars.length) && !(this.oraModule && this.cliProgress)) return this.load();
    if (this.bars.length) {
      this.stopSpinner();
      this.startBars();
      return;
    }
    this.stopBars();
    if (this.phases.length) this.startSpinner();
    else this.stopSpinner();
  }

  private startSpinner(): void {
    if (!this.ora) {
      this.ora = this.oraModule!.default({
        stream: this.stream as NodeJS.WriteStream,
        isEnabled: true,
        discardStdin: false,
        hideCursor: false,
        color: false,
        spinner: { frames: spinnerFrames.map((f) => this.colour('cyan', f)), interval: 80 },
      });
    }
    this.ora.text = this.spinnerText();
    this.hideCursor(true);
    this.ora.render();
    if (!this.timer) {
      this.timer = setInterval(() => this.ora?.render(), 80);
      this.timer.unref();
    }
  }

  private stopSpinner(): void {
    if (this.timer) { clearInterval(this.timer); this.timer = undefined; }
    this.ora?.clear();
    // cli-progress hides and shows the cursor itself while bars draw.
    this.hideCursor(false);
  }

  private startBars(): void {
    const cp = this.cliProgress!;
    if (!this.multibar) {
      this.multibar = new cp.MultiBar({
        stream: this.stream as NodeJS.WritableStream,
        hideCursor: true,
        clearOnComplete: true,
        linewrap: false,
        // Prerendered bar strings long enough for any computed size (the format picks the size).
        barsize: 400,
        barCompleteChar: '=',
        barIncompleteChar: ' ',
        // The format is computed at each redraw: the numbers stay whole, the bar takes the room left.
        format: (options, params, payload: { live: LiveBar }) => payload.live.line(this.width(),
          (size) => cp.Format.BarFormat(params.progress, { ...options, barsize: size })),
      });
      this.multibar.on('update-post', () => this.unrefBarTimer());
    }
    for (const b of this.bars) if (!b.cli) b.cli = this.multibar.create(b.total(), b.value(), { live: b });
    this.unrefBarTimer();
  }

  /** cli-progress redraws from a plain setTimeout: like the spinner's, it must not keep the process alive. */
  private unrefBarTimer(): void {
    (this.multibar as unknown as { timer?: NodeJS.Timeout | null }).timer?.unref?.();
  }

  private stopBars(): void {
    if (this.multibar?.isActive) this.multibar.stop();
  }

  /** Writes a finished line above whatever is live. */
  print(text: string): void {
    const w = this.width();
    const lines = text.split('\n').map((l) => fitToWidth(l, w)).join('\n');
    if (this.multibar?.isActive) {
      this.multibar.log(`${lines}\n`);
      this.multibar.update();
    } else if (this.timer && this.ora) {
      this.ora.clear();
      this.stream.write(`${lines}\n`);
      this.ora.render();
    } else {
      this.stream.write(`${lines}\n`);
    }
  }

  addPhase(p: LivePhase): void {
    this.phases.push(p);
    this.sync();
  }

  updatePhase(): void {
    if (this.ora && this.timer) this.ora.text = this.spinnerText();
  }

  /** Ends a phase; its final line goes above what stays live. */
  endPhase(p: LivePhase, finalLine: string): void {
    this.phases = this.phases.filter((x) => x !== p);
    if (this.ora && this.timer) this.ora.text = this.spinnerText();
    if (!this.phases.length) this.stopSpinner();
    this.print(finalLine);
    this.sync();
  }

  addBar(b: LiveBar): void {
    this.bars.push(b);
    this.sync();
  }

  updateBar(b: LiveBar): void {
    if (!b.cli) return;
    if (b.cli.getTotal() !== b.total()) b.cli.setTotal(b.total());
    b.cli.update(b.value());
  }

  /** Ends a bar: it is cleared and its summary line takes its place (one line per finished bar). */
  endBar(b: LiveBar, summary: (width: number) => string): void {
    this.bars = this.bars.filter((x) => x !== b);
    const line = fitToWidth(summary(this.width()), this.width());
    if (b.cli && this.multibar?.isActive) {
      this.multibar.log(`${line}\n`);
      this.multibar.remove(b.cli);
      if (!this.bars.length) this.multibar.stop();
    } else {
      this.print(line);
    }
    this.sync();
  }

  /** Clears every spinner and bar still drawing (before an error is printed, or at exit). */
  close(): void {
    this.phases = [];
    this.bars = [];
    this.stopBars();
    this.stopSpinner();
    this.hideCursor(false);
    this.hookExit(false);
  }
}

/** Builds the logger for a run: interactive only on a TTY outside CI/Hydra. */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stderr;
  const env = opts.env ?? process.env;
  // A pty with no size (e.g. under `script` with no terminal) makes redrawing loop: plain lines there.
  const interactive = !opts.plain && !!stream.isTTY && (stream.columns ?? 0) > 0 && !env.CI && !env.HYDRA_JSON;
  // CI and Hydra logs get plain lines even when a terminal is attached (FORCE_COLOR still forces colours).
  const useColour = coloursEnabled(interactive, env);
  const colour = (c: Colour | undefined, text: string) => (useColour && c ? `\x1b[${ansi[c]}m${text}\x1b[0m` : text);
  const renderer = interactive && !opts.quiet ? new TerminalRenderer(stream, colour) : undefined;
  const write = (text: string) => {
    if (opts.quiet) return;
    if (renderer) renderer.print(redact(text));
    else stream.write(redact(text) + '\n');
  };
  const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const line = (msg: string) => write(interactive ? msg : `[${stamp()}] ${msg}`);
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
    ready: () => renderer?.ready() ?? Promise.resolve(),
    phase(title, phaseOpts) {
      if (renderer && phaseOpts?.still) {
        // A progress bar draws this step and collapses into its summary line: no second line on success.
        return { succeed: (t) => { if (t) write(`${tick} ${t}`); }, fail: (t) => write(`${cross} ${t ?? title}`), update: () => {} };
      }
      if (renderer) {
        const item: LivePhase = { text: redact(title) };
        renderer.addPhase(item);
        let ended = false;
        const end = (line: string) => { if (!ended) { ended = true; renderer.endPhase(item, line); } };
        return {
          succeed: (t) => end(`${tick} ${redact(t ?? title)}`),
          fail: (t) => end(`${cross} ${redact(t ?? title)}`),
          update: (t) => { item.text = redact(t); renderer.updatePhase(); },
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
        // title [=====     ]  45% 12.0 MiB/30.0 MiB 3/10 files 5.1 MiB/s — computed at each redraw:
        // the numbers stay whole and the bar (cli-progress's, of a computed size) takes what they leave.
        const shownTitle = redact(title);
        const item: LiveBar = {
          value: () => done,
          total: () => all,
          line: (width, bar) => {
            const pct = all > 0 ? Math.min(100, Math.floor((done / all) * 100)) : 100;
            const numbers = ` ${String(pct).padStart(3)}% ${fmt(done)}/${fmt(all)}${filesText()} ${speed()}/s`;
            const room = width - numbers.length - 3;
            // Too narrow for a useful bar: the title (cut) and the numbers.
            if (room < 13) return fitToWidth(`${fitToWidth(shownTitle, Math.max(8, width - numbers.length))}${numbers}`, width);
            // The title takes what it needs while the bar keeps 20 columns, and never less than half.
            const cut = fitToWidth(shownTitle, Math.max(8, Math.floor(room / 2), room - 20));
            return `${cut} [${bar(room - visibleLength(cut))}]${numbers}`;
          },
        };
        renderer.addBar(item);
        let stopped = false;
        return {
          tick(n) { done += n; renderer.updateBar(item); },
          item() { itemsDone++; renderer.updateBar(item); },
          addTotal(n) { all += n; renderer.updateBar(item); },
          stop() {
            if (stopped) return;
            stopped = true;
            const secs = (Date.now() - started) / 1000;
            // The numbers stay whole; the title gives way when the line is wider than the terminal.
            const numbers = `: ${fmt(done)}${items ? `, ${itemsDone} files` : ''} in ${secs.toFixed(1)} s (${speed()}/s)`;
            renderer.endBar(item, (width) => `${tick} ${fitToWidth(shownTitle, Math.max(8, width - numbers.length - 2))}${numbers}`);
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
