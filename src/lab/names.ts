/**
 * Names of everything the lab creates outside its own process: network namespaces, WireGuard
 * interfaces (their UAPI sockets in /var/run/wireguard are shared by all namespaces) and work
 * directories. Every name carries the creating process's pid, so a later run can tell leftovers of
 * a crashed run (pid dead) from those of a run still going (pid alive), and a random run tag, so
 * two labs never collide. All names fit Linux interface names (at most 15 characters).
 *
 *   namespace:      mdl<pid36>-<tag3><seq36><role…>   e.g. mdl2n9c-k3xa0rt
 *   wg interface:   mdw<pid36>-<tag3><seq36>          e.g. mdw2n9c-k3xa3
 *   work directory: mdl<pid36>-<tag3>                  (under the OS temp directory)
 */
import { randomInt } from 'node:crypto';

export const NETNS_PREFIX = 'mdl';
export const WG_IF_PREFIX = 'mdw';
/** Linux IFNAMSIZ − 1. */
export const MAX_IFNAME = 15;

const TAG_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';
const NAME_RE = /^md[lw]([0-9a-z]{1,7})-([0-9a-z]{3})/;

/** A run tag: pid in base 36, a dash, three random base-36 characters. */
export function newRunTag(pid: number = process.pid): string {
  let r = '';
  for (let i = 0; i < 3; i++) r += TAG_ALPHABET[randomInt(36)];
  return `${pid.toString(36)}-${r}`;
}

function sanitizeRole(role: string): string {
  return role.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/** Namespace name for the seq-th namespace of a run; as much of the role as fits is appended. */
export function netnsName(runTag: string, seq: number, role: string): string {
  const base = `${NETNS_PREFIX}${runTag}${seq.toString(36)}`;
  return (base + sanitizeRole(role)).slice(0, Math.max(base.length, MAX_IFNAME));
}

/** WireGuard interface name for the seq-th interface of a run. */
export function wgIfName(runTag: string, seq: number): string {
  return `${WG_IF_PREFIX}${runTag}${seq.toString(36)}`;
}

export interface ParsedLabName {
  /** 'netns' for mdl…, 'wg' for mdw… */
  kind: 'netns' | 'wg';
  pid: number;
  /** The run tag (pid36-tag3). */
  runTag: string;
}

/** Parses a name made by this module; undefined for any other name. */
export function parseLabName(name: string): ParsedLabName | undefined {
  const m = NAME_RE.exec(name);
  if (!m) return undefined;
  const pid = parseInt(m[1]!, 36);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 0x3fffffff) return undefined;
  return { kind: name[2] === 'l' ? 'netns' : 'wg', pid, runTag: `${m[1]}-${m[2]}` };
}
