// Terminal output (issue 14) under a real pseudo-terminal of 80 columns (util-linux `script`):
// one renderer for spinners and bars, nothing wider than the terminal, a finished bar collapses
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

/** A small terminal: applies text, CR/LF, cursor up, erase line / below; fails on a line wider than the screen. */
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
      'warning: a warning',
      'done',
    ]);
  });

  it('a narrow terminal (40 columns) still fits every line', () => {
    const shown = screen(underPty(40, { NO_COLOR: '1' }), 40);
    expect(shown.at(-1)).toBe('done');
  });

  it('FORCE_COLOR turns colours on', () => {
    const raw = underPty(80, { FORCE_COLOR: '1' });
    expect(raw).toContain('\x1b[32m✔\x1b[0m');
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
