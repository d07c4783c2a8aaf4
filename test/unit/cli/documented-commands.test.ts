// Every releng command line in README.md, docs/*.md and the commands' --help examples is parsed by
// the program bin/releng runs (lib/cli/main.ts parseCommandLine), and each flag and positional must
// reach the command the line names, with its value: none swallowed (as -V/--version once took
// `grant --version V` and printed releng's version), none unknown (issue 23). A synopsis
// (`[--flag]`, `(a | b)`, `FILE...`) must name only flags its command takes.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import pkg from '../../../package.json' with { type: 'json' };
import { parseCommandLine, type Parsed } from '../../../lib/cli/main.ts';
import { commandNamed, globalsOf, type FlagDef } from '../../../lib/cli/commands.ts';
import { documentedCommands, type DocCommand } from '../../helpers/doc-commands.ts';

function capture() {
  let text = '';
  const stream = Object.assign(new Writable({ write(c, _e, done) { text += String(c); done(); } }), { isTTY: false });
  return { stream, text: () => text };
}

function parse(argv: string[]) {
  const out = capture();
  const err = capture();
  const outcome = parseCommandLine(argv, { stdout: out.stream, stderr: err.stream });
  return { outcome, stdout: out.text(), stderr: err.text() };
}

/** Lines that look like a command to the collector but are not one, each with the reason. */
const notCommands: Record<string, string> = {
  'bin/releng            launcher: the bundle dist/lib/releng.mjs (`npm run build`) when present and': 'README.md\'s file tree describes bin/releng',
};

/** Documented on purpose as a mistake: the usage error it gets. */
const mistakes: Record<string, string> = {
  'releng biuld': 'Did you mean build?',
};

const flagsOf = (name: string): FlagDef[] => {
  const def = commandNamed(name)!;
  return [...def.flags, ...globalsOf(def).filter((g) => !def.flags.some((f) => f.name === g.name))];
};

/** The value a parsed command line holds for flag `name`, as the command reads it. */
function valueOf(p: Parsed, name: string): string | boolean | undefined {
  switch (name) {
    case 'config': return p.configFlag;
    case 'environment': return p.flags.environment;
    case 'profile': return p.flags.profile;
    case 'dry-run': return p.flags.dryRun;
    case 'json': return p.flags.json;
    case 'noconfirm': return p.flags.noconfirm;
    case 'verbose': return p.flags.verbose;
    case 'no-check-git': return p.flags.noCheckGit;
    default: return p.flags.extra[name];
  }
}

const all = documentedCommands().filter((d) => !(d.text in notCommands));
const helpOrVersion = (d: DocCommand) => d.argv.length === 0 || ['--help', '-h', '--version', '-V', 'help'].includes(d.argv[0]!) || d.argv.includes('--help') || d.argv.includes('-h');
const runnable = all.filter((d) => !d.synopsis && !helpOrVersion(d) && !(d.text in mistakes));

describe('documented command lines parse through the real program', () => {
  it('finds the documented lines (README, docs, help examples)', () => {
    expect(all.length).toBeGreaterThan(150);
    expect(all.some((d) => d.where.startsWith('README.md'))).toBe(true);
    expect(all.some((d) => d.where.startsWith('docs/grants-and-index.md'))).toBe(true);
    expect(all.some((d) => d.where.startsWith('help of'))).toBe(true);
    // The lines issue 23 found broken: a command's --version after the command.
    expect(runnable.map((d) => d.text)).toContain('releng grant installers --environment production --version 2.91.0 --ttl 2h');
  });

  it.each(runnable.map((d) => [`${d.where}: ${d.text}`, d] as const))('%s', (_name, d) => {
    const { outcome, stderr } = parse(d.argv);
    expect('parsed' in outcome, `${d.where}: \`${d.text}\` does not parse: ${stderr}`).toBe(true);
    const p = (outcome as { parsed: Parsed }).parsed;
    expect(p.command.name).toBe(d.argv[0]);
    const flags = flagsOf(p.command.name);
    const positionals: string[] = [];
    for (let i = 1; i < d.argv.length; i++) {
      const word = d.argv[i]!;
      if (!word.startsWith('--')) { positionals.push(word); continue; }
      const [name, inline] = word.slice(2).split(/=(.*)/s);
      const def = flags.find((f) => f.name === name);
      expect(def, `${d.where}: --${name} is not a flag of releng ${p.command.name}`).toBeDefined();
      if (def!.type === 'string') {
        const value = inline ?? d.argv[++i];
        expect(valueOf(p, name!), `${d.where}: --${name}`).toBe(value);
      } else {
        expect(valueOf(p, name!), `${d.where}: --${name}`).toBe(true);
      }
    }
    expect(p.positionals, `${d.where}: positionals`).toEqual(positionals);
  });

  it.each(all.filter(helpOrVersion).map((d) => [`${d.where}: ${d.text}`, d] as const))('%s answers with help or the version', (_name, d) => {
    if (d.synopsis) return; // `releng <command> --help`: each command's help is tested in test/integration/cli.test.ts
    const { outcome, stdout } = parse(d.argv);
    expect(outcome).toEqual({ exit: 0 });
    if (d.argv[0] === '--version' || d.argv[0] === '-V') expect(stdout.trim()).toBe(pkg.version);
    else expect(stdout).toContain('Usage: releng');
  });

  it.each(Object.entries(mistakes))('%s is the usage error the docs show it to be', (text, message) => {
    const d = all.find((x) => x.text === text);
    expect(d, `${text} is no longer documented: drop it from this list`).toBeDefined();
    const { outcome, stderr } = parse(d!.argv);
    expect(outcome).toEqual({ exit: 2 });
    expect(stderr).toContain(message);
  });

  it.each(all.filter((d) => d.synopsis && commandNamed(d.argv[0] ?? '')).map((d) => [`${d.where}: ${d.text}`, d] as const))('synopsis %s names only flags of its command', (_name, d) => {
    const names = flagsOf(d.argv[0]!).map((f) => f.name);
    for (const m of d.text.matchAll(/--([a-z][a-z0-9-]*)/g)) expect(names, `${d.where}: --${m[1]}`).toContain(m[1]);
  });
});

describe('global flags never shadow a command\'s', () => {
  it('`grant deb --version V --output F` reaches grant with both values', () => {
    const { outcome } = parse(['grant', 'deb', '--version', '1.0.0', '--output', 'grant.json']);
    expect('parsed' in outcome).toBe(true);
    const p = (outcome as { parsed: Parsed }).parsed;
    expect(p.command.name).toBe('grant');
    expect(p.flags.extra).toMatchObject({ version: '1.0.0', output: 'grant.json' });
  });

  it('`releng --version` and `releng -V` still print releng\'s version; after a command without the flag it is a usage error', () => {
    for (const v of ['--version', '-V']) {
      const { outcome, stdout } = parse([v]);
      expect(outcome).toEqual({ exit: 0 });
      expect(stdout.trim()).toBe(pkg.version);
    }
    const { outcome, stderr } = parse(['build', '--version']);
    expect(outcome).toEqual({ exit: 2 });
    expect(stderr).toContain("unknown option '--version'");
  });
});
