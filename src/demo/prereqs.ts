/** What the demo needs from the machine, as human-readable reasons. */
import { onPath } from '../util/which.js';
import { existsSync } from 'node:fs';

export function missingDemoPrereqs(): string[] {
  const out: string[] = [];
  if (process.platform !== 'linux') out.push('needs Linux');
  if (process.getuid?.() !== 0) out.push('needs root');
  if (!existsSync('/dev/net/tun')) out.push('needs /dev/net/tun');
  for (const b of ['ip', 'iptables']) if (!onPath(b)) out.push(`needs ${b}`);
  return out;
}
