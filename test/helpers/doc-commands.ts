// Every releng command line the documentation shows: README.md and docs/*.md (fenced and indented
// code blocks, and inline code spans) and the examples of each command's --help (lib/cli/commands.ts).
// Each comes back as the argv releng would receive, with where it was found, so a test can parse
// it through the real program (test/unit/cli/documented-commands.test.ts).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { commands } from '../../lib/cli/commands.ts';
import { repoRoot } from './project.ts';

export interface DocCommand {
  /** file:line (or `help of COMMAND`). */
  where: string;
  /** The text as written. */
  text: string;
  /** What follows `releng` on the line, as the shell would split it. */
  argv: string[];
  /** A usage synopsis (`[--flag]`, `(a | b)`, `FILE...`, `<command>`), not a command line to run. */
  synopsis: boolean;
}

/** Shell words of one command, up to a comment, redirection, pipe or list operator; quotes removed. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      cur = (cur ?? '') + line.slice(i + 1, end < 0 ? line.length : end);
      i = end < 0 ? line.length : end;
    } else if (c === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (cur !== undefined) { words.push(cur); cur = undefined; }
    } else if (cur === undefined && (c === '#' || c === '>' || c === '|' || c === ';' || c === '&')) {
      break;
    } else if (cur !== undefined && /^[0-9]$/.test(cur) && c === '>') {
      cur = undefined; // 2>&1
      break;
    } else cur = (cur ?? '') + c;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

const launcher = /(?:^|[\s;&|(])((?:[\w./-]*\/)?(?:bin\/)?releng|nix run \.#releng --|nix run (?:--impure )?\.#release --)(?=\s|$)/;

/** The releng command lines in one line of shell (several when it chains commands with ; or &&). */
function commandsIn(line: string): { text: string; argv: string[]; synopsis: boolean }[] {
  const out: { text: string; argv: string[]; synopsis: boolean }[] = [];
  const code = withoutComment(line);
  const synopsis = synopsisMarks.test(code);
  // A chain: each command on its own (`cd X && releng serve`, `rc=0; releng build ...`); a synopsis's
  // `|` separates alternatives, not commands.
  for (const part of synopsis ? [code] : code.split(/&&|;|\|\||(?<![\\])\|(?!\|)/)) {
    const m = launcher.exec(part);
    if (!m) continue;
    const text = part.slice(m.index).trim();
    const rest = part.slice(m.index + m[0].length);
    let argv = shellWords(rest);
    if (/\.#release --$/.test(m[1]!)) argv = ['release', ...argv]; // scripts/release.mjs: check, then release with the same flags
    out.push({ text, argv, synopsis });
  }
  return out;
}

/** The line up to a shell comment (an unquoted `#` at the start of a word). */
function withoutComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) { if (c === quote) quote = undefined; continue; }
    if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

const synopsisMarks = /\[|\]|\(|\)|<[a-z]|\.\.\.|…|\\\|/;

function docFiles(): string[] {
  return ['README.md', ...readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
}

/** Lines of code in a markdown file: fenced blocks, indented blocks, inline spans; with line numbers. */
function codeOf(text: string): { line: number; code: string }[] {
  const out: { line: number; code: string }[] = [];
  const lines = text.split('\n');
  let fence = false;
  let pending = '';
  lines.forEach((raw, i) => {
    if (/^\s*```/.test(raw)) { fence = !fence; return; }
    const indented = /^( {4}|\t)/.test(raw) && !/^\s*[-*] /.test(raw.trim() ? raw : 'x');
    if (fence || indented) {
      // A continued shell line (`\` at the end) is one command.
      const code = pending + raw.replace(/\\$/, ' ');
      if (/\\$/.test(raw)) { pending = code; return; }
      pending = '';
      out.push({ line: i + 1, code });
      return;
    }
    for (const m of raw.matchAll(/(?<!`)`([^`]+?)(?<!\\)`(?!`)/g)) out.push({ line: i + 1, code: m[1]! });
  });
  return out;
}

/** Every documented releng command line. */
export function documentedCommands(): DocCommand[] {
  const found: DocCommand[] = [];
  for (const file of docFiles()) {
    for (const { line, code } of codeOf(readFileSync(path.join(repoRoot, file), 'utf8'))) {
      for (const c of commandsIn(code)) {
        found.push({ where: `${file}:${line}`, ...c });
      }
    }
  }
  for (const def of commands) {
    for (const e of def.examples ?? []) {
      for (const c of commandsIn(e)) found.push({ where: `help of ${def.name}`, ...c });
    }
    if (def.usage) for (const c of commandsIn(def.usage)) found.push({ where: `usage of ${def.name}`, ...c, synopsis: true });
  }
  return found;
}
