/**
 * Link, address and route configuration through iproute2 (`ip`), run with execFile and an
 * argument array (no shell). Every input is validated before it reaches the command line.
 * `netns` runs the command in a named network namespace (`ip -n NAME …`), for the test lab.
 */
import { execFile } from 'node:child_process';
import { MeshdError } from '../../errors.js';
import { formatIp } from '../../util/ip.js';
import { parseInterfaceAddress, PrefixError } from '../../util/prefix.js';

export interface IpOptions {
  /** Run in this network namespace (ip -n). */
  netns?: string;
  /** The ip binary (default: `ip` on PATH). */
  ipPath?: string;
}

const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const NETNS = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$/;

/** Linux interface names: 1–15 characters, no slash, colon, space or leading dash. */
export function isValidInterfaceName(name: string): boolean {
  return IFNAME.test(name) && name !== '.' && name !== '..';
}

export function checkInterfaceName(name: string): void {
  if (!isValidInterfaceName(name)) {
    throw new MeshdError('E_TUN', `bad interface name ${JSON.stringify(name)}`, {
      hint: 'use 1 to 15 letters, digits, "_", "." or "-"',
    });
  }
}

/**
 * An interface address or route such as 10.99.0.1/24 or fd7a::1/64 (host bits allowed: it is an
 * address); returns it normalised, throws E_TUN otherwise.
 */
export function checkCidr(cidr: string): string {
  try {
    const a = parseInterfaceAddress(cidr);
    return `${formatIp(a.addr)}/${a.prefix.bits}`;
  } catch (e) {
    if (!(e instanceof PrefixError)) throw e;
    throw new MeshdError('E_TUN', `bad address prefix ${JSON.stringify(cidr)}`, { hint: 'expected ADDRESS/BITS' });
  }
}

function baseArgs(opts: IpOptions): string[] {
  if (opts.netns === undefined) return [];
  if (!NETNS.test(opts.netns)) throw new MeshdError('E_TUN', `bad namespace name ${JSON.stringify(opts.netns)}`);
  return ['-n', opts.netns];
}

/** Run `ip ARGS…`; resolves stdout, rejects with E_TUN carrying ip's own message. */
export function runIp(args: string[], opts: IpOptions = {}): Promise<string> {
  const full = [...baseArgs(opts), ...args];
  return new Promise((resolve, reject) => {
    execFile(opts.ipPath ?? 'ip', full, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim() || err.message;
        reject(
          new MeshdError('E_TUN', `ip ${full.join(' ')}: ${detail}`, {
            cause: err,
            hint: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'install iproute2' : undefined,
          }),
        );
        return;
      }
      resolve(String(stdout));
    });
  });
}

export async function setLinkMtu(dev: string, mtu: number, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new MeshdError('E_TUN', `bad MTU ${mtu}`);
  await runIp(['link', 'set', 'dev', dev, 'mtu', String(mtu)], opts);
}

export async function setLinkUp(dev: string, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  await runIp(['link', 'set', 'dev', dev, 'up'], opts);
}

/** Add an address (idempotent: `ip addr replace`). */
export async function addAddress(dev: string, cidr: string, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  await runIp(['addr', 'replace', checkCidr(cidr), 'dev', dev], opts);
}

/** Route a prefix into the device (idempotent: `ip route replace`). */
export async function addRoute(dev: string, cidr: string, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  const prefix = checkCidr(cidr);
  await runIp([prefix.includes(':') ? '-6' : '-4', 'route', 'replace', prefix, 'dev', dev], opts);
}

export async function removeRoute(dev: string, cidr: string, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  const prefix = checkCidr(cidr);
  await runIp([prefix.includes(':') ? '-6' : '-4', 'route', 'del', prefix, 'dev', dev], opts);
}

/** The link's kind ('tun', 'tap', 'veth', … or '' for plain devices), or null when there is no such link. */
export async function linkKind(dev: string, opts: IpOptions = {}): Promise<string | null> {
  return (await linkInfo(dev, opts))?.kind ?? null;
}

/** Kind of link (as linkKind) and, for TUN devices, whether it is persistent. */
export async function linkInfo(dev: string, opts: IpOptions = {}): Promise<{ kind: string; persistent: boolean } | null> {
  checkInterfaceName(dev);
  let out: string;
  try {
    out = await runIp(['-d', '-j', 'link', 'show', 'dev', dev], opts);
  } catch (e) {
    if (e instanceof MeshdError && /does not exist|Cannot find device/i.test(e.message)) return null;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new MeshdError('E_TUN', `ip -j link show ${dev}: output is not JSON`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) return null;
  const info = (parsed[0] as { linkinfo?: { info_kind?: unknown; info_data?: { type?: unknown; persist?: unknown } } }).linkinfo;
  if (typeof info?.info_kind !== 'string') return { kind: '', persistent: false };
  const persistent = info.info_data?.persist === true;
  // TAP devices are also of kind "tun"; tell them apart.
  if (info.info_kind === 'tun' && info.info_data?.type === 'tap') return { kind: 'tap', persistent };
  return { kind: info.info_kind, persistent };
}

export async function linkExists(dev: string, opts: IpOptions = {}): Promise<boolean> {
  return (await linkKind(dev, opts)) !== null;
}

export async function deleteLink(dev: string, opts: IpOptions = {}): Promise<void> {
  checkInterfaceName(dev);
  await runIp(['link', 'del', 'dev', dev], opts);
}

/**
 * Crash recovery: remove a persistent TUN device called `name` left behind. meshd's own devices
 * are not persistent — the kernel removes them with the last fd, even after kill -9 — so a
 * non-persistent one belongs to a live process and is left alone (opening it then fails with
 * EBUSY). Returns true if one was removed. A link by that name that is not a TUN device is never
 * touched: that is an E_TUN error.
 */
export async function removeStaleTun(name: string, opts: IpOptions = {}): Promise<boolean> {
  const link = await linkInfo(name, opts);
  if (link === null) return false;
  if (link.kind !== 'tun') {
    throw new MeshdError('E_TUN', `interface ${name} exists and is not a TUN device (kind ${link.kind || 'none'})`, {
      hint: 'choose another interface name',
    });
  }
  if (!link.persistent) return false;
  try {
    await deleteLink(name, opts);
  } catch (e) {
    // It may have vanished on its own between the check and the delete (its owner exited).
    if ((await linkKind(name, opts)) === null) return true;
    throw e;
  }
  return true;
}
