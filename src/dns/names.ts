/**
 * The mesh name table: which `<name>.<suffix>` answers with which addresses. Built from plain
 * node entries (DID, chosen host name, mesh IPs) the daemon takes from the network map, so that
 * every node of a network computes the same table from the same map:
 *
 *   - a host name becomes one DNS label: lower-cased, its first dot-separated part, characters
 *     other than a-z, 0-9 and '-' turned into '-', dashes trimmed, at most 63 characters; a node
 *     without a usable name is `node-<8 hex of its DID's SHA-256>`;
 *   - clashes: nodes are taken in DID order; the first node with a label keeps it, each later
 *     one gets the first free `<label>-2`, `<label>-3`, … (a label someone chose outright is
 *     never taken by a suffixed one). DID order is the same on every node and does not change
 *     while nodes come and go, so a name stays with its node as long as both exist;
 *   - the suffix: the network record's `magicDNSSuffix`, else `<network name as a label>.internal`
 *     (`.internal` is reserved for private use and never resolves on the internet).
 */
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { parseIp } from '../util/ip.js';
import { tryParsePrefix } from '../util/prefix.js';

/** What the daemon hands over for each node of the network (this one included). */
export interface NameSource {
  did: string;
  /** The host name the node published (nodeInfo), or null. */
  hostname: string | null;
  ipv4: string;
  ipv6: string;
}

export interface NameEntry {
  did: string;
  /** The DNS label: `<label>.<suffix>` is the node's name. */
  label: string;
  /** `<label>.<suffix>`, without the final dot. */
  fqdn: string;
  ipv4: string | null;
  ipv6: string | null;
}

export interface NameTable {
  /** Lower case, no leading or trailing dot. */
  suffix: string;
  entries: NameEntry[];
  /**
   * The reverse zones of the mesh prefixes (`200.10.in-addr.arpa`): PTR queries in them are
   * answered here (NXDOMAIN when no node has the address), never forwarded.
   */
  reverseZones: string[];
}

/** The top-level domain of the default suffix. */
export const DEFAULT_SUFFIX_TLD = 'internal';
const MAX_LABEL = 63;
const MAX_NAME = 253;

/** A string as one DNS label (a-z, 0-9, '-'; no leading/trailing '-'; ≤ 63), or '' when nothing is left. */
export function toLabel(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-+/, '')
    .slice(0, MAX_LABEL)
    .replace(/-+$/, '');
}

/** The label of a published host name: its first dot-separated part, as a label. */
export function hostLabel(hostname: string | null, did: string): string {
  const first = hostname?.split('.')[0] ?? '';
  const l = toLabel(first);
  return l !== '' ? l : `node-${createHash('sha256').update(did).digest('hex').slice(0, 8)}`;
}

/** A domain as given by the network owner, normalised; null when it is not a usable domain. */
export function normaliseSuffix(s: string): string | null {
  const d = s.trim().toLowerCase().replace(/^\.+|\.+$/g, '');
  if (d === '' || d.length > MAX_NAME - MAX_LABEL - 1) return null;
  const labels = d.split('.');
  const ok = labels.every((l) => l.length > 0 && l.length <= MAX_LABEL && /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(l));
  return ok ? d : null;
}

/** The suffix of a network: its `magicDNSSuffix` when usable, else `<network name>.internal`. */
export function meshSuffix(magicDNSSuffix: string | null, networkName: string): string {
  const own = magicDNSSuffix === null ? null : normaliseSuffix(magicDNSSuffix);
  if (own !== null) return own;
  return `${toLabel(networkName) || 'mesh'}.${DEFAULT_SUFFIX_TLD}`;
}

/** The name table of a network (see the module comment for the rules). */
export function buildNameTable(suffix: string, nodes: readonly NameSource[], meshPrefixes: readonly string[] = []): NameTable {
  const sorted = [...nodes].sort((a, b) => (a.did < b.did ? -1 : a.did > b.did ? 1 : 0));
  const wanted = sorted.map((n) => hostLabel(n.hostname, n.did));
  const taken = new Set<string>();
  const labels: (string | undefined)[] = [];
  // first pass: the first holder of each label keeps it
  wanted.forEach((w, i) => {
    if (!taken.has(w)) {
      taken.add(w);
      labels[i] = w;
    }
  });
  // second pass: the others get the first free -N
  wanted.forEach((w, i) => {
    if (labels[i] !== undefined) return;
    for (let k = 2; ; k++) {
      const tail = `-${k}`;
      const cand = `${w.slice(0, MAX_LABEL - tail.length).replace(/-+$/, '')}${tail}`;
      if (!taken.has(cand)) {
        taken.add(cand);
        labels[i] = cand;
        return;
      }
    }
  });
  const entries = sorted.map((n, i) => {
    const label = labels[i]!;
    return {
      did: n.did,
      label,
      fqdn: `${label}.${suffix}`,
      ipv4: isIPv4(n.ipv4) ? n.ipv4 : null,
      ipv6: isIPv6(n.ipv6) ? n.ipv6 : null,
    };
  });
  return { suffix, entries, reverseZones: meshPrefixes.flatMap(reverseZones) };
}

/**
 * The reverse zones that together cover exactly `cidr` ("10.200.0.0/16" → 200.10.in-addr.arpa):
 * a prefix that does not end on an octet (IPv4) or nibble (IPv6) is split into the zones of the
 * next boundary; [] when that would be more than 16 zones, or `cidr` is malformed.
 */
export function reverseZones(cidr: string): string[] {
  const p = tryParsePrefix(cidr, { hostBits: 'mask', bare: 'reject' });
  if (!p) return [];
  const { addr: b, bits } = p;
  const v4 = b.length === 4;
  const unit = v4 ? 8 : 4;
  const parts = Math.ceil(bits / unit);
  const spread = parts * unit - bits;
  if (parts === 0 || spread > 4) return [];
  const digits: number[] = [];
  for (let i = 0; i < parts; i++) digits.push(v4 ? b[i]! : (b[i >> 1]! >> (i % 2 === 0 ? 4 : 0)) & 0xf);
  const out: string[] = [];
  for (let k = 0; k < 1 << spread; k++) {
    const d = [...digits];
    d[parts - 1] = (d[parts - 1]! & ~((1 << spread) - 1)) | k;
    out.push(`${d.reverse().map((x) => (v4 ? String(x) : x.toString(16))).join('.')}.${v4 ? 'in-addr.arpa' : 'ip6.arpa'}`);
  }
  return out;
}

/** The reverse-lookup name of an address (`4.3.2.1.in-addr.arpa`, nibbles under `ip6.arpa`). */
export function reverseName(ip: string): string | null {
  const b = parseIp(ip);
  if (!b) return null;
  if (b.length === 4) return `${[...b].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = b.length - 1; i >= 0; i--) {
    const v = b[i]!;
    nibbles.push((v & 0xf).toString(16), (v >> 4).toString(16));
  }
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** Fast lookups over a table: by name (lower case) and by reverse name. */
export class NameIndex {
  readonly table: NameTable;
  private readonly byName = new Map<string, NameEntry>();
  private readonly byReverse = new Map<string, NameEntry>();
  private readonly byDid = new Map<string, NameEntry>();

  constructor(table: NameTable) {
    this.table = table;
    for (const e of table.entries) {
      this.byName.set(e.fqdn, e);
      this.byDid.set(e.did, e);
      for (const ip of [e.ipv4, e.ipv6]) {
        const r = ip === null ? null : reverseName(ip);
        if (r !== null) this.byReverse.set(r, e);
      }
    }
  }

  /** True when `name` (lower case, no final dot) is the suffix or under it. */
  inZone(name: string): boolean {
    const s = this.table.suffix;
    return name === s || name.endsWith(`.${s}`);
  }

  /** True when `name` is in one of the mesh reverse zones. */
  inReverseZone(name: string): boolean {
    return this.table.reverseZones.some((z) => name === z || name.endsWith(`.${z}`));
  }

  lookup(name: string): NameEntry | undefined {
    return this.byName.get(name);
  }

  reverse(name: string): NameEntry | undefined {
    return this.byReverse.get(name);
  }

  /** The name of a DID in this table (for status output). */
  nameOf(did: string): string | null {
    return this.byDid.get(did)?.fqdn ?? null;
  }
}
