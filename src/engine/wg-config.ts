/**
 * Parser for the wg-quick configuration format:
 *
 *   [Interface]  PrivateKey, ListenPort, Address, MTU   (DNS, Table, FwMark, SaveConfig and the
 *                Pre/Post Up/Down hooks are accepted and reported as ignored)
 *   [Peer]       PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive
 *
 * Keys are case-insensitive, `#` starts a comment, list values are comma-separated and repeated
 * list keys accumulate. Any malformed input gives a MeshdError E_CONFIG_INVALID naming the line;
 * nothing else is ever thrown.
 */
import { splitHostPort } from '../util/host-port.js';
import { MeshdError } from '../errors.js';
import { formatIp, parseIp } from '../util/ip.js';
import { formatPrefix, parseInterfaceAddress, PrefixError, tryParsePrefix, type IpPrefix } from '../util/prefix.js';

export interface InterfaceAddress {
  /** The interface's own address (host bits kept), 4 or 16 bytes. */
  readonly ip: Uint8Array;
  readonly bits: number;
}

export interface WgInterfaceConfig {
  privateKey: Uint8Array;
  listenPort: number | null;
  addresses: InterfaceAddress[];
  mtu: number | null;
}

export interface WgPeerConfig {
  publicKey: Uint8Array;
  presharedKey: Uint8Array | null;
  allowedIps: IpPrefix[];
  /** "host:port" or "[v6]:port" as written; host may be a name to resolve. */
  endpoint: string | null;
  /** Seconds; 0 = off. */
  persistentKeepalive: number;
}

export interface WgConfig {
  interface: WgInterfaceConfig;
  peers: WgPeerConfig[];
  /** wg-quick keys that were recognised but are not acted on, e.g. ["DNS", "PostUp"]. */
  ignored: string[];
}

const IGNORED_INTERFACE_KEYS = new Map(
  ['DNS', 'Table', 'FwMark', 'SaveConfig', 'PreUp', 'PostUp', 'PreDown', 'PostDown'].map((k) => [k.toLowerCase(), k]),
);

function fail(line: number, msg: string): never {
  throw new MeshdError('E_CONFIG_INVALID', line > 0 ? `config line ${line}: ${msg}` : `config: ${msg}`);
}

function parseKey(v: string, line: number, what: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(v)) fail(line, `${what} is not a base64 WireGuard key`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function parseInteger(v: string, line: number, what: string, min: number, max: number): number {
  if (!/^\d{1,6}$/.test(v)) fail(line, `${what} must be a number`);
  const n = Number(v);
  if (n < min || n > max) fail(line, `${what} must be between ${min} and ${max}`);
  return n;
}

function splitList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Validate "host:port" / "[v6]:port" where host is an IP or a DNS name. */
function parseEndpoint(v: string, line: number): string {
  const hp = splitHostPort(v);
  if (hp === null || hp.host === '') fail(line, `Endpoint "${v}" is not host:port or [IPv6]:port with a port 1-65535`);
  const host = hp.host;
  if (host.includes(':')) {
    if (parseIp(host) === null) fail(line, `Endpoint "${v}" has a bad IPv6 address`);
  } else if (/^[\d.]+$/.test(host) ? parseIp(host) === null : !DNS_NAME.test(host)) {
    fail(line, `Endpoint "${v}" has a bad host`);
  }
  return v;
}

const DNS_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export function parseWgConfig(text: string): WgConfig {
  if (typeof text !== 'string') fail(0, 'not text');
  let section: 'none' | 'interface' | 'peer' = 'none';
  let iface: Partial<WgInterfaceConfig> & { addresses: InterfaceAddress[] } | null = null;
  const peers: WgPeerConfig[] = [];
  let peer: (Partial<WgPeerConfig> & { allowedIps: IpPrefix[]; line: number }) | null = null;
  const ignored = new Set<string>();
  const seen = new Set<string>();

  const finishPeer = (): void => {
    if (peer === null) return;
    if (peer.publicKey === undefined) fail(peer.line, '[Peer] without PublicKey');
    peers.push({
      publicKey: peer.publicKey,
      presharedKey: peer.presharedKey ?? null,
      allowedIps: peer.allowedIps,
      endpoint: peer.endpoint ?? null,
      persistentKeepalive: peer.persistentKeepalive ?? 0,
    });
    peer = null;
  };

  const lines = text.split(/\r?\n/);
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const hash = lines[idx]!.indexOf('#');
    const raw = (hash === -1 ? lines[idx]! : lines[idx]!.slice(0, hash)).trim();
    if (raw === '') continue;
    if (raw.startsWith('[')) {
      const name = raw.toLowerCase();
      if (name === '[interface]') {
        if (iface !== null) fail(lineNo, 'more than one [Interface] section');
        finishPeer();
        section = 'interface';
        iface = { addresses: [] };
        seen.clear();
      } else if (name === '[peer]') {
        finishPeer();
        section = 'peer';
        peer = { allowedIps: [], line: lineNo };
        seen.clear();
      } else {
        fail(lineNo, `unknown section ${raw}`);
      }
      continue;
    }
    const eq = raw.indexOf('=');
    if (eq <= 0) fail(lineNo, 'expected "Key = Value"');
    const key = raw.slice(0, eq).trim().toLowerCase();
    const value = raw.slice(eq + 1).trim();
    if (section === 'none') fail(lineNo, 'setting outside a section');
    const single = !['address', 'allowedips', 'dns', 'preup', 'postup', 'predown', 'postdown'].includes(key);
    if (single && seen.has(key)) fail(lineNo, `${raw.slice(0, eq).trim()} given twice`);
    seen.add(key);

    if (section === 'interface') {
      const i = iface!;
      switch (key) {
        case 'privatekey':
          i.privateKey = parseKey(value, lineNo, 'PrivateKey');
          break;
        case 'listenport':
          i.listenPort = parseInteger(value, lineNo, 'ListenPort', 0, 65535);
          break;
        case 'mtu':
          i.mtu = parseInteger(value, lineNo, 'MTU', 576, 65535);
          break;
        case 'address':
          for (const item of splitList(value)) {
            try {
              const a = parseInterfaceAddress(item, { bare: 'host' });
              i.addresses.push({ ip: a.addr, bits: a.prefix.bits });
            } catch (e) {
              if (e instanceof PrefixError) fail(lineNo, `Address: ${e.message}`);
              throw e;
            }
          }
          break;
        default: {
          const name = IGNORED_INTERFACE_KEYS.get(key);
          if (name === undefined) fail(lineNo, `unknown [Interface] key ${raw.slice(0, eq).trim()}`);
          ignored.add(name);
        }
      }
    } else {
      const p = peer!;
      switch (key) {
        case 'publickey':
          p.publicKey = parseKey(value, lineNo, 'PublicKey');
          break;
        case 'presharedkey':
          p.presharedKey = parseKey(value, lineNo, 'PresharedKey');
          break;
        case 'allowedips':
          for (const item of splitList(value)) {
            // host bits are masked, as wg(8) does
            const pre = item.includes('/') ? tryParsePrefix(item, { hostBits: 'mask' }) : null;
            if (pre === null) fail(lineNo, `AllowedIPs "${item}" is not an address/prefix`);
            p.allowedIps.push(pre);
          }
          break;
        case 'endpoint':
          p.endpoint = parseEndpoint(value, lineNo);
          break;
        case 'persistentkeepalive':
          p.persistentKeepalive = value.toLowerCase() === 'off' ? 0 : parseInteger(value, lineNo, 'PersistentKeepalive', 0, 65535);
          break;
        default:
          fail(lineNo, `unknown [Peer] key ${raw.slice(0, eq).trim()}`);
      }
    }
  }
  finishPeer();
  if (iface === null) fail(0, 'no [Interface] section');
  if (iface.privateKey === undefined) fail(0, '[Interface] without PrivateKey');
  const keys = new Set<string>();
  for (const p of peers) {
    const k = Buffer.from(p.publicKey).toString('base64');
    if (keys.has(k)) fail(0, `peer ${k} appears twice`);
    keys.add(k);
  }
  return {
    interface: { privateKey: iface.privateKey, listenPort: iface.listenPort ?? null, addresses: iface.addresses, mtu: iface.mtu ?? null },
    peers,
    ignored: [...ignored],
  };
}

/** Write a config back in wg-quick form (what the round-trip tests and `meshd` tooling emit). */
export function formatWgConfig(c: WgConfig): string {
  const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');
  const out: string[] = ['[Interface]', `PrivateKey = ${b64(c.interface.privateKey)}`];
  if (c.interface.listenPort !== null) out.push(`ListenPort = ${c.interface.listenPort}`);
  if (c.interface.addresses.length > 0) out.push(`Address = ${c.interface.addresses.map((a) => `${formatIp(a.ip)}/${a.bits}`).join(', ')}`);
  if (c.interface.mtu !== null) out.push(`MTU = ${c.interface.mtu}`);
  for (const p of c.peers) {
    out.push('', '[Peer]', `PublicKey = ${b64(p.publicKey)}`);
    if (p.presharedKey !== null) out.push(`PresharedKey = ${b64(p.presharedKey)}`);
    if (p.allowedIps.length > 0) out.push(`AllowedIPs = ${p.allowedIps.map(formatPrefix).join(', ')}`);
    if (p.endpoint !== null) out.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive > 0) out.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return out.join('\n') + '\n';
}
