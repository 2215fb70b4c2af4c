/**
 * What this host has of IPv6, for the routing plans: whether the kernel has IPv6 at all (a
 * client with none has nothing to keep out of the tunnel), and whether the host has an IPv6
 * default route in its main table (an exit node without one cannot carry IPv6 for its clients).
 */
import { existsSync } from 'node:fs';
import { runCommand } from './command.js';

/** Whether the kernel has IPv6 (not built without it, not booted with ipv6.disable=1). */
export function kernelHasIPv6(): boolean {
  return existsSync('/proc/sys/net/ipv6/conf/all');
}

/**
 * Whether the host's main table has an IPv6 default route (its IPv6 uplink). False when the
 * kernel has no IPv6 or `ip` cannot tell.
 */
export async function hasIPv6DefaultRoute(): Promise<boolean> {
  if (!kernelHasIPv6()) return false;
  try {
    const out = await runCommand({ tool: 'ip', args: ['-6', 'route', 'show', 'default', 'table', 'main'] });
    // an `unreachable default` / `blackhole default` line starts with its type: not an uplink
    return out.split('\n').some((l) => /^default\s/.test(l.trim()));
  } catch {
    return false;
  }
}
