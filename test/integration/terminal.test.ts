// Terminal output (issue 14) under a real pseudo-terminal of 80 columns (util-linux `script`):
// lib/cli/log.ts drives one ora spinner and one cli-progress MultiBar, nothing wider than the terminal, a finished bar collapses
// to one line, each step shows once, no ora warnings; NO_COLOR turns colours off, FORCE_COLOR
// on, and without a terminal the lines are plain and timestamped.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/project.ts';
import { requireTool } from '../helpers/tools.ts';

const driver = path.join(repoRoot, 'test', 'fixtures', 'terminal', 'render.ts');
const tsx = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');

/** Runs the driver on a pty of `cols` columns; returns the raw bytes the terminal received. */
function underPty(cols: number, env: Record<string, string>): string {
  requireTool('script', 'bsdutils');
  const { CI, HYDRA_JSON, NO_COLOR, FORCE_COLOR, ...rest } = process.env;
  void CI; void HYDRA_JSON; void NO_COLOR; void FORCE_COLOR;
  const cmd = `stty cols ${cols} rows 30; exec node --import ${tsx} ${driver} 2>&1`;
  return execFileSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...rest, TERM: 'xterm', ...env }, timeout: 60_000 });
}

/** A small terminal: applies text, CR/LF, cursor up/down/column (what ora and cli-progress send through readline), erase line / below; fails on a line wider than the screen. */
function screen(raw: string, cols: number): string[] {
  const lines: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (ch: string) => {
    if (col >= cols) throw new Error(`line ${row} wider than ${cols} columns: ${lines[row]}${ch}`);
    const l = [...(lines[row] ?? '')];
    while (l.length < col) l.push(' ');
    l[col] = ch;
    lines[row] = l.join('');
    col++;
  };
  for (let i = 0; i < raw.length;) {
    const esc = /^\x1b\[(\??)(\d*)(;\d+)*([A-Za-z])/.exec(raw.slice(i));
    if (esc) {
      const n = Number(esc[2] || '1');
      if (esc[4] === 'A') row = Math.max(0, row - n);
      else if (esc[4] === 'B') { row += n; while (lines.length <= row) lines.push(''); }
      else if (esc[4] === 'G') col = n - 1;
      else if (esc[4] === 'C') col += n;
      else if (esc[4] === 'D') col = Math.max(0, col - n);
      else if (esc[4] === 'H' || esc[4] === 'f') throw new Error('absolute cursor positioning: the renderer must only move relative to its own lines');
      else if (esc[4] === 'J') lines.splice(row + 1), (lines[row] = [...lines[row]!].slice(0, col).join(''));
      else if (esc[4] === 'K') lines[row] = esc[2] === '2' ? '' : [...lines[row]!].slice(0, col).join('');
      i += esc[0].length;
      continue;
    }
    const ch = String.fromCodePoint(raw.codePointAt(i)!);
    i += ch.length;
    if (ch === '\r') col = 0;
    else if (ch === '\n') { row++; if (lines.length <= row) lines.push(''); }
    else put(ch);
  }
  return lines.map((l) => l.trimEnd()).filter((l, i, all) => l !== '' || i < all.length - 1);
}

describe('terminal rendering', () => {
  it('at 80 columns with NO_COLOR: no colours, nothing wider than 80, each step once, the bar collapsed', () => {
    const raw = underPty(80, { NO_COLOR: '1' });
    expect(raw).toContain('interactive=true');
    expect(raw).not.toMatch(/\x1b\[[0-9;]*m/); // no SGR (colour) sequence at all
    expect(raw).not.toContain('Multiple concurrent spinners');
    expect(raw).toMatch(/\[=+ *\]/); // a bar was drawn while the work ran
    const shown = screen(raw, 80);
    expect(shown).toEqual([
      'interactive=true',
      '✔ environment local: S3 http://127.0.0.1:1234',
      '✔ staged 12 store paths in release/cache/local',
      '✔ planned 30 writes',
      'a log line while the bar draws',
      // the title gives way to the numbers at 80 columns
      expect.stringMatching(/^✔ release files of hello-1\.0\.0 to s3:\/\/.*…: 3\.0 MiB, 3 files in \d+\.\d s \(.+\/s\)$/),
      // two bars at once: each collapses to one line, in the order they finished
      expect.stringMatching(/^✔ images of hello-1\.0\.0 to the local.*: 2\.0 MiB, 2 files in \d+\.\d s \(.+\/s\)$/),
      expect.stringMatching(/^✔ verifying hello 1\.0\.0 in local: 4 in \d+\.\d s \(\d+\/s\)$/),
      '✔ the phase ended after the bars',
      'warning: a warning',
      'done',
    ]);
  });

  it('one ora spinner and cli-progress bars: frames drawn, every bar line within 80 columns with its numbers whole', () => {
    const raw = underPty(80, { NO_COLOR: '1' });
    expect(raw).not.toMatch(/\[ora\]|Multiple concurrent spinners/);
    // ora's frames (the dots spinner) for the phases that lasted long enough to draw
    expect(raw).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] planning upload › staging the signed binary cache/);
    expect(raw).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] a phase the error interrupts/);
    // every bar cli-progress drew: cursor to column 1, the line, erase to the right
    const drawn = [...raw.matchAll(/\x1b\[1G([^\x1b\r\n]*\d+% [^\x1b\r\n]*)\x1b\[0K/g)].map((m) => m[1]!);
    expect(drawn.length).toBeGreaterThan(5);
    for (const line of drawn) {
      expect([...line].length, line).toBeLessThanOrEqual(79);
      expect(line).toMatch(/ \[=* *\] +\d+% [\d.]+( B| KiB| MiB)?\/[\d.]+( B| KiB| MiB)?( \d+\/\d+ files)? [\d.]+( B| KiB| MiB)?\/s$/);
    }
    expect(drawn.some((l) => l.startsWith('verifying hello 1.0.0 in local ['))).toBe(true);
    expect(drawn.some((l) => /^images of hello-.* 1\.0 MiB\/2\.0 MiB 1\/2 files/.test(l))).toBe(true);
  });

  it('in CI or under Hydra, even on a terminal: plain timestamped lines, no spinner frames, no escape sequences', () => {
    for (const env of [{ CI: 'true' }, { HYDRA_JSON: '/tmp/hydra.json' }] as Record<string, string>[]) {
      const raw = underPty(80, env);
      expect(raw).toContain('interactive=false');
      expect(raw).not.toContain('\x1b');
      expect(raw).not.toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]/);
      expect(raw).toMatch(/^\[[\dTZ:-]+\] ok {2}the phase ended after the bars\r?$/m);
      expect(raw).toMatch(/^\[[\dTZ:-]+\] {5}images of hello-1\.0\.0 to the local registry: 2\.0 MiB\/2\.0 MiB \| 2\/2 files/m);
    }
  });

  it('leaving without close() (an error path): the process ends, the bar is cleared, the cursor shown again', () => {
    const raw = underPty(80, { NO_COLOR: '1', RENDER_LEAVE: '1' });
    expect(raw).toMatch(/a transfer that never stops \[=+ +\] +10% 10 B\/100 B/);
    const end = raw.slice(raw.lastIndexOf('leaving without close'));
    expect(end).toContain('\x1b[?25h'); // cursor shown
    expect(end).toContain('\x1b[?7h'); // line wrapping back on
    expect(screen(raw, 80)).toEqual(['interactive=true', 'leaving without close']);
  });

  it('a narrow terminal (40 columns) still fits every line', () => {
    const shown = screen(underPty(40, { NO_COLOR: '1' }), 40);
    expect(shown.at(-1)).toBe('done');
  });

  it('FORCE_COLOR turns colours on', () => {
    const raw = underPty(80, { FORCE_COLOR: '1' });
    expect(raw).toContain('\x1b[32m✔\x1b[0m');
    expect(raw).toMatch(/\x1b\[36m[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]\x1b\[0m a phase the error interrupts/); // ora's frame, coloured
    expect(raw).toContain('\x1b[33mwarning: a warning\x1b[0m');
    expect(raw).not.toContain('Multiple concurrent spinners');
    // colours take no columns: the screen still fits 80 columns and shows each step once
    const shown = screen(raw.replace(/\x1b\[[0-9;]*m/g, ''), 80);
    expect(shown.filter((l) => l.startsWith('✔ release files of hello-1.0.0'))).toHaveLength(1);
    expect(shown.at(-1)).toBe('done');
  });

  it('without a terminal: plain timestamped lines, no escape sequences', () => {
    const { CI, NO_COLOR, FORCE_COLOR, ...rest } = process.env;
    void CI; void NO_COLOR; void FORCE_COLOR;
    const out = execFileSync('node', ['--import', tsx, driver], { encoding: 'utf8', env: rest, stdio: ['ignore', 'pipe', 'pipe'] });
    const err = execFileSync('sh', ['-c', `node --import ${tsx} ${driver} 2>&1 >/dev/null`], { encoding: 'utf8', env: rest });
    expect(out).toBe('');
    expect(err).not.toContain('\x1b');
    expect(err).toMatch(/^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] interactive=false$/m);
    expect(err).toMatch(/ok {2}planned 30 writes/);
  });
});
