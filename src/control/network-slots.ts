/**
 * One identity in several networks: every network a profile joined has a slot, the directories
 * that hold its state and the files of the daemon that runs it (one daemon per network).
 *
 *   primary slot   state in the profile directory (network.json, netmap-cache.json,
 *                  network-epoch.json); daemon files in the home (meshd.sock, meshd.lock,
 *                  meshd.log, dns/, routing-state.json) — the layout of a home with one network,
 *                  so a home from before several networks were possible is used as it is
 *   other slots    <profile>/networks/<12 hex digits of SHA-256(network id)>/ holds both
 *
 * A network joined or created goes to the primary slot when that is free, else to its own slot.
 * Commands pick a slot by `--network NAME|ID`; without it, the only network there is.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import type { Profile } from '../identity/profile.js';
import { parseIpv4Cidr } from '../identity/mesh-address.js';
import { readCachedMap, readJoinedNetwork, type JoinedNetwork } from './local-state.js';
import { compareText } from '../util/compare.js';

export interface NetworkSlot {
  /** 'primary', or the slot directory's name. */
  key: string;
  primary: boolean;
  /** network.json, the map cache and the epoch floor. */
  stateDir: string;
  /** The daemon's socket, lock, log, DNS and routing state. */
  runDir: string;
}

export interface JoinedSlot extends NetworkSlot {
  joined: JoinedNetwork;
  /** The network's name (remembered at join, else from the cached map), or null. */
  name: string | null;
  /** Its IPv4 mesh prefix (remembered at join, else from the cached map), or null. */
  meshCIDR: string | null;
}

const SLOT_DIR = /^[0-9a-f]{12}$/;

export function primarySlot(home: string, profile: Profile): NetworkSlot {
  return { key: 'primary', primary: true, stateDir: profile.dir, runDir: home };
}

function extraSlot(profile: Profile, key: string): NetworkSlot {
  const dir = join(profile.dir, 'networks', key);
  return { key, primary: false, stateDir: dir, runDir: dir };
}

/** The slot directory name of a network (short: the control socket path must fit 108 bytes). */
export function slotKey(networkId: string): string {
  return createHash('sha256').update(networkId, 'utf8').digest('hex').slice(0, 12);
}

function describeSlot(slot: NetworkSlot): JoinedSlot | undefined {
  const joined = readJoinedNetwork(slot.stateDir);
  if (!joined) return undefined;
  let cached: ReturnType<typeof readCachedMap>;
  try {
    cached = joined.name && joined.meshCIDR ? undefined : readCachedMap(slot.stateDir, joined.networkId);
  } catch {
    cached = undefined; // a damaged cache is reported by the commands that read it
  }
  return { ...slot, joined, name: joined.name ?? cached?.network.name ?? null, meshCIDR: joined.meshCIDR ?? cached?.network.meshCIDR ?? null };
}

/** Every network the profile is in: the primary slot first, then the others by join date. */
export function joinedSlots(home: string, profile: Profile): JoinedSlot[] {
  const out: JoinedSlot[] = [];
  const first = describeSlot(primarySlot(home, profile));
  if (first) out.push(first);
  const root = join(profile.dir, 'networks');
  if (!existsSync(root)) return out;
  const others: JoinedSlot[] = [];
  for (const d of readdirSync(root, { withFileTypes: true })) {
    if (!d.isDirectory() || !SLOT_DIR.test(d.name)) continue;
    const s = describeSlot(extraSlot(profile, d.name));
    if (s) others.push(s);
  }
  others.sort((a, b) => compareText(a.joined.joinedAt, b.joined.joinedAt) || compareText(a.key, b.key));
  return [...out, ...others];
}

/** The slot of `networkId`: the one it is in, else the primary when free, else its own. */
export function slotFor(home: string, profile: Profile, networkId: string): NetworkSlot {
  const found = joinedSlots(home, profile).find((s) => s.joined.networkId === networkId);
  if (found) return found;
  const primary = primarySlot(home, profile);
  return readJoinedNetwork(primary.stateDir) ? extraSlot(profile, slotKey(networkId)) : primary;
}

/** One line per network, for messages that ask the user to choose. */
export function listSlots(slots: JoinedSlot[]): string {
  return slots.map((s) => `"${s.name ?? '?'}" ${s.joined.networkId}`).join(', ');
}

/**
 * The network a command acts on: `selector` is a network's name or id (or a unique start of its
 * id); without one, the only network of the profile (the primary slot, empty, when there is none).
 */
export function selectSlot(home: string, profile: Profile, selector?: string): JoinedSlot | NetworkSlot {
  const slots = joinedSlots(home, profile);
  if (selector === undefined || selector === '') {
    if (slots.length <= 1) return slots[0] ?? primarySlot(home, profile);
    throw new MeshdError('E_NETWORK_AMBIGUOUS', `this identity is in ${slots.length} networks: ${listSlots(slots)}`, {
      hint: 'say which with --network NAME|ID (`meshd status` lists them)',
    });
  }
  const byId = slots.filter((s) => s.joined.networkId === selector);
  const byName = slots.filter((s) => s.name === selector);
  const byPrefix = selector.length >= 6 ? slots.filter((s) => s.joined.networkId.startsWith(selector)) : [];
  const matches = byId.length > 0 ? byId : byName.length > 0 ? byName : byPrefix;
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) {
    throw new MeshdError('E_NETWORK_AMBIGUOUS', `"${selector.slice(0, 100)}" names ${matches.length} networks: ${listSlots(matches)}`, { hint: 'give the network id with --network ID' });
  }
  throw new MeshdError('E_NO_NETWORK', `this identity is in no network called "${selector.slice(0, 100)}"${slots.length > 0 ? ` (it is in: ${listSlots(slots)})` : ''}`, {
    hint: slots.length > 0 ? 'use one of those names or ids with --network' : 'join one with `meshd up <invite>` or create one with `meshd up --create NAME`',
  });
}

/** True when two IPv4 prefixes share an address. */
export function ipv4PrefixesOverlap(a: string, b: string): boolean {
  const x = parseIpv4Cidr(a);
  const y = parseIpv4Cidr(b);
  const bits = Math.min(x.bits, y.bits);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((x.base & mask) >>> 0) === ((y.base & mask) >>> 0);
}

/** A /16 in 10.200.0.0–10.255.255.255 that overlaps none of `taken` (for the advice in errors). */
export function freeMeshPrefix(taken: string[]): string {
  for (let second = 200; second <= 255; second++) {
    const candidate = `10.${second}.0.0/16`;
    if (!taken.some((t) => safeOverlap(candidate, t))) return candidate;
  }
  return '172.29.0.0/16';
}

function safeOverlap(a: string, b: string): boolean {
  try {
    return ipv4PrefixesOverlap(a, b);
  } catch {
    return false;
  }
}

/**
 * Refuse a mesh prefix that overlaps another network of this profile: two TUN devices with
 * overlapping prefixes on one host would route one network's traffic into the other.
 */
export function refuseOverlappingPrefix(home: string, profile: Profile, cidr: string, networkId?: string): void {
  const others = joinedSlots(home, profile).filter((s) => s.joined.networkId !== networkId && s.meshCIDR !== null);
  const clash = others.find((s) => safeOverlap(cidr, s.meshCIDR!));
  if (!clash) return;
  throw new MeshdError('E_CONFIG_INVALID', `mesh prefix ${cidr} overlaps ${clash.meshCIDR} of network "${clash.name ?? '?'}" ${clash.joined.networkId}, which this identity is also in`, {
    hint: networkId === undefined
      ? `create the network with another prefix: --cidr ${freeMeshPrefix(others.map((s) => s.meshCIDR!))}`
      : `its prefix was chosen by its owner at create time (--cidr); leave one of the two networks (\`meshd network leave --network NAME\`), or use another profile (--home)`,
  });
}
