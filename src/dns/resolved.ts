/**
 * systemd-resolved: per-link DNS for the mesh's TUN device. The link gets the mesh server as
 * its DNS server and the suffix (and the mesh reverse zones) as routing-only domains (`~…`),
 * and is no default route for DNS: only mesh names go to meshd, the host's own resolvers keep
 * everything else. resolved forgets a link's settings when the link goes away, so a killed
 * meshd leaves nothing behind; `revert` undoes them on a clean stop.
 */
import { existsSync, readlinkSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { MeshdError } from '../errors.js';

/** resolved's varlink socket: present while systemd-resolved runs. */
export const RESOLVED_SOCKET = '/run/systemd/resolve/io.systemd.Resolve';

/**
 * True when systemd-resolved runs and can see our link: it lives in the host's first network
 * namespace, and a link inside another namespace (`ip netns exec`, containers) is not its to
 * configure — `resolvectl` would name a link of the host with the same index instead.
 */
export function resolvedRunning(socket = RESOLVED_SOCKET): boolean {
  return existsSync(socket) && inInitialNetns();
}

/** True when this process shares pid 1's network namespace (or that cannot be told). */
export function inInitialNetns(): boolean {
  try {
    return readlinkSync('/proc/self/ns/net') === readlinkSync('/proc/1/ns/net');
  } catch {
    return true;
  }
}

/** The resolvectl commands that point `link` at `server` for `suffix` and `reverseZones`. */
export function resolvectlApply(link: string, server: string, suffix: string, reverseZones: readonly string[]): string[][] {
  return [
    ['resolvectl', 'dns', link, server],
    ['resolvectl', 'domain', link, `~${suffix}`, ...reverseZones.map((z) => `~${z}`)],
    ['resolvectl', 'default-route', link, 'false'],
  ];
}

/** The resolvectl command that drops every setting of `link`. */
export function resolvectlRevert(link: string): string[] {
  return ['resolvectl', 'revert', link];
}

/** Run one command; fails with E_DNS and resolvectl's own message. */
export function runCommand(argv: readonly string[], timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: timeoutMs }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(new MeshdError('E_DNS', `${argv.join(' ')} failed: ${(stderr || err.message).trim().slice(0, 300)}`, { hint: 'check `systemctl status systemd-resolved`' }));
    });
  });
}
