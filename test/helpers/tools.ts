// A test whose program is missing fails naming the Debian package: never a skip.
import { execFileSync } from 'node:child_process';

export function requireTool(program: string, debianPackage: string): void {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`test needs '${program}': apt-get install -y ${debianPackage} (scripts/setup.sh installs it)`);
  }
}
