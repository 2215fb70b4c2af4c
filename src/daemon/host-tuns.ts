/**
 * The other meshd tunnels on this host, for a daemon that shares the host with them (several
 * networks of one identity, or several homes): which TUN name is free, whether a network's mesh
 * prefix overlaps a prefix already on another tunnel, and which addresses are another tunnel's
 * (never announced as this network's endpoints).
 *
 * Every meshd TUN device is put in the device group MESHD_DEVICE_GROUP, so that one firewall
 * rule (routing/isolation.ts) keeps traffic from being forwarded between two of them, whatever
 * their names.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { MeshdError } from '../errors.js';
import { overlaps, tryParsePrefix } from '../util/prefix.js';
import { linkInfo } from '../engine/tun/ip-command.js';
import { runCommand } from './routing/command.js';

/** The interface group (ip link … group N) of every meshd TUN device. */
export const MESHD_DEVICE_GROUP = 5283;

/** How many meshdN names are tried before giving up. */
const MAX_AUTO_TUNS = 64;

function sysfs(dev: string, file: string): string | null {
  if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(dev)) return null;
  try {
    return readFileSync(`/sys/class/net/${dev}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

function isTun(dev: string): boolean {
  return sysfs(dev, 'tun_flags') !== null;
}

function isMeshdTun(dev: string): boolean {
  const g = sysfs(dev, 'netdev_group');
  return g !== null && Number(g) === MESHD_DEVICE_GROUP && isTun(dev);
}

/** The other TUN devices of the host (any tool's) with their addresses as prefixes. */
export function otherTuns(self: string): Array<{ dev: string; meshd: boolean; prefixes: string[] }> {
  const out: Array<{ dev: string; meshd: boolean; prefixes: string[] }> = [];
  for (const [dev, list] of Object.entries(networkInterfaces())) {
    if (dev === self || !list || !isTun(dev)) continue;
    out.push({ dev, meshd: isMeshdTun(dev), prefixes: list.filter((a) => !a.internal && a.cidr).map((a) => a.cidr!) });
  }
  return out;
}

/** The addresses on the host's other meshd tunnels. */
export function otherMeshdAddresses(self: string): Set<string> {
  const out = new Set<string>();
  for (const t of otherTuns(self)) if (t.meshd) for (const p of t.prefixes) out.add(p.split('/')[0]!);
  return out;
}

/** The first other TUN with an address prefix overlapping `prefix`, or null. */
export function tunPrefixClash(self: string, prefix: string): { dev: string; prefix: string } | null {
  // what the user asks for is checked elsewhere; the kernel's interface addresses carry host bits
  const p = tryParsePrefix(prefix, { hostBits: 'mask' });
  if (p === null) return null;
  for (const t of otherTuns(self)) {
    for (const q of t.prefixes) {
      const qp = tryParsePrefix(q, { hostBits: 'mask' });
      if (qp !== null && overlaps(p, qp)) return { dev: t.dev, prefix: q };
    }
  }
  return null;
}

/**
 * A TUN name for a daemon given none: the first meshdN that is free — no such link, or a
 * persistent TUN a crashed run left (removed before use). A live TUN is another daemon's.
 */
export async function pickTunName(): Promise<string> {
  for (let i = 0; i < MAX_AUTO_TUNS; i++) {
    const name = `meshd${i}`;
    const link = await linkInfo(name);
    if (link === null || (link.kind === 'tun' && link.persistent)) return name;
  }
  throw new MeshdError('E_TUN', `meshd0 to meshd${MAX_AUTO_TUNS - 1} are all in use`, { hint: 'stop a network you do not need (`meshd down --network NAME`), or name a device with --tun' });
}

/** Put our TUN device into meshd's device group (see routing/isolation.ts). */
export async function joinDeviceGroup(tun: string): Promise<void> {
  await runCommand({ tool: 'ip', args: ['link', 'set', 'dev', tun, 'group', String(MESHD_DEVICE_GROUP)] });
}
