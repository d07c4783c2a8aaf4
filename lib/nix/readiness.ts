// Can this machine's Nix build? `releng check` asks before a release does (issue 23): on a fresh
// Debian machine, nix-bin without nix-setup-systemd has no group nixbld, and as root every build
// then fails with "the group 'nixbld' specified in 'build-users-group' does not exist". Reads
// Nix's own configuration (`nix show-config`) and the system; builds nothing, writes nothing.
import { access, constants } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { run } from '../core/exec.ts';

export interface NixReadiness {
  ok: boolean;
  /** What was found (ok), or what is wrong and how to fix it. */
  detail: string;
}

/** Members of a group in /etc/group, or undefined when there is no such group. */
async function groupMembers(name: string, groupFile = '/etc/group'): Promise<string[] | undefined> {
  const text = await readFile(groupFile, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [group, , , members] = line.split(':');
    if (group === name) return (members ?? '').split(',').map((m) => m.trim()).filter(Boolean);
  }
  return undefined;
}

const writable = (p: string) => access(p, constants.W_OK).then(() => true, () => false);

/** Whether Nix can build here as this user; never throws (a Nix that cannot be asked is a problem line). */
export async function nixBuildReadiness(env: NodeJS.ProcessEnv = process.env): Promise<NixReadiness> {
  let settings: Record<string, { value: unknown }>;
  try {
    const { stdout } = await run('nix', ['--extra-experimental-features', 'nix-command', 'show-config', '--json'], { timeout: 20_000, env });
    settings = JSON.parse(stdout);
  } catch (e: any) {
    return { ok: false, detail: `cannot read Nix's configuration (nix show-config): ${e?.message ?? e}` };
  }
  const setting = (k: string) => settings[k]?.value;
  const store = String(setting('store') ?? 'auto');
  const root = process.getuid?.() === 0;
  const daemonSocket = '/nix/var/nix/daemon-socket/socket';
  const local = store === 'local' || store.startsWith('/') || (store === 'auto' && (root || await writable('/nix/var/nix/db')));
  if (store === 'daemon' || store.startsWith('unix://') || (store === 'auto' && !local)) {
    if (await access(daemonSocket).then(() => true, () => false)) return { ok: true, detail: 'builds through the nix-daemon' };
    return { ok: false, detail: `the Nix store is not writable by this user and no nix-daemon answers at ${daemonSocket}: run releng as root (single-user Nix), or start nix-daemon (Debian: nix-setup-systemd)` };
  }
  if (store !== 'auto' && store !== 'local' && !store.startsWith('/')) return { ok: true, detail: `store ${store}` };
  for (const dir of ['/nix/store', '/nix/var/nix']) {
    if (!(await writable(dir))) return { ok: false, detail: `${dir} is not writable by this user: run releng as the user that owns the Nix store (root for Debian's single-user nix-bin)` };
  }
  const group = String(setting('build-users-group') ?? '');
  if (root && group) {
    const members = await groupMembers(group);
    if (members === undefined) {
      const create = group === 'nixbld' ? 'install Debian\'s nix-setup-systemd (it creates nixbld and nixbld1..10)' : `create group ${group} with build users (groupadd, useradd -G ${group})`;
      return { ok: false, detail: `builds run as the members of group ${group} (build-users-group), and there is no such group: ${create}, or set \`build-users-group =\` in /etc/nix/nix.conf to build as root` };
    }
    if (members.length === 0) {
      return { ok: false, detail: `group ${group} (build-users-group) has no members, so Nix has no build user: add users to it (Debian's nix-setup-systemd creates ${group}1..10), or set \`build-users-group =\` in /etc/nix/nix.conf` };
    }
    return { ok: true, detail: `local store, builds as ${members.length} users of group ${group}, sandbox ${setting('sandbox') ? 'on' : 'off'}` };
  }
  return { ok: true, detail: `local store, builds as ${root ? 'root' : 'this user'}, sandbox ${setting('sandbox') ? 'on' : 'off'}` };
}
