/** What the demo needs from the machine, as human-readable reasons. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function missingDemoPrereqs(): string[] {
  const out: string[] = [];
  if (process.platform !== 'linux') out.push('needs Linux');
  if (process.getuid?.() !== 0) out.push('needs root');
  if (!existsSync('/dev/net/tun')) out.push('needs /dev/net/tun');
  for (const b of ['ip', 'iptables']) if (!onPath(b)) out.push(`needs ${b}`);
  return out;
}
