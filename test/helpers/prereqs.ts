/**
 * Tests that need root, namespaces or Debian tools call `requirePrereqs`. Where a prerequisite
 * is missing the test is skipped with the reason — unless MESHD_REQUIRE_PREREQS=1 (set by CI),
 * where a missing prerequisite fails the test, so nothing skipped can pass for tested.
 */
import { onPath } from '../../src/util/which.js';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

export type Prereq =
  | 'root'
  | 'netns'
  | 'tun'
  | 'ip'
  | 'iptables'
  | 'wg'
  | 'wireguard-go'
  | 'turnserver'
  | 'iperf3'
  | 'native'
  | 'postgres'
  | 'systemd-analyze';

const BINARIES: Partial<Record<Prereq, string>> = {
  ip: 'ip',
  iptables: 'iptables',
  wg: 'wg',
  'wireguard-go': 'wireguard-go',
  turnserver: 'turnserver',
  iperf3: 'iperf3',
  'systemd-analyze': 'systemd-analyze',
};

function missing(p: Prereq): string | null {
  switch (p) {
    case 'root':
      return process.getuid?.() === 0 ? null : 'needs root';
    case 'netns':
      return process.getuid?.() === 0 && onPath('ip') ? null : 'needs root and iproute2 for network namespaces';
    case 'tun':
      return existsSync('/dev/net/tun') ? null : 'needs /dev/net/tun';
    case 'postgres':
      if (!process.env.MESHD_TEST_POSTGRES_URL) return 'needs MESHD_TEST_POSTGRES_URL (a PostgreSQL role that may create databases)';
      return onPath('psql') ? null : 'needs psql (Debian package postgresql-client)';
    case 'native':
      return existsSync(new URL('../../../native/build/Release/meshd_native.node', import.meta.url))
        ? null
        : 'needs the native addon (npm run build:native)';
    default: {
      const bin = BINARIES[p];
      return bin && onPath(bin) ? null : `needs ${bin ?? p} (Debian package)`;
    }
  }
}

/** Names of the prerequisites that are missing here. */
export function missingPrereqs(needs: Prereq[]): string[] {
  return needs.map(missing).filter((m): m is string => m !== null);
}

export const prereqsRequired = process.env.MESHD_REQUIRE_PREREQS === '1';

/**
 * True when every prerequisite is present. Otherwise skips the test (returns false) or, with
 * MESHD_REQUIRE_PREREQS=1, throws so the test fails.
 */
export function requirePrereqs(t: TestContext, needs: Prereq[]): boolean {
  const m = missingPrereqs(needs);
  if (m.length === 0) return true;
  const reason = m.join('; ');
  if (prereqsRequired) throw new Error(`missing prerequisite in CI: ${reason}`);
  t.skip(reason);
  return false;
}
