/**
 * Per-profile network state on disk (in the profile's private directory):
 *
 *   network.json        the network this device joined: id, owner, DWN endpoint, roles
 *   netmap-cache.json   the last good network map, so a restarted node can bring its tunnels
 *                       back while the DWN is unreachable
 *   network-epoch.json  the highest network-key epoch accepted (never goes down)
 *
 * Both are written atomically; a damaged file is an error, never silently replaced.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError, StateError } from '../errors.js';
import { ensurePrivateDir, readJsonFile, writeJsonFile } from '../identity/state-files.js';
import { isNetworkMap, type NetworkMap } from './netmap.js';
import type { ActorRole } from './reader.js';

export interface JoinedNetwork {
  version: 1;
  networkId: string;
  /** The network owner's DID (the DWN tenant holding the records). */
  anchor: string;
  /** DWN endpoint URL. */
  endpoint: string;
  /** What this identity is in the network: owner, node (a device), member (a person). */
  roles: ActorRole[];
  /** True when the endpoint is this machine's embedded DWN (meshd starts it when needed). */
  embedded: boolean;
  /** Where the embedded DWN listens when the daemon runs it (remembered from `--dwn-listen`). */
  dwnListen?: string;
  /** The name peers see for this device (remembered from `--hostname`). */
  hostname?: string;
  /** The network's name and IPv4 mesh prefix when it was joined (to tell networks apart offline). */
  name?: string;
  meshCIDR?: string;
  /** When this device learned that the owner removed it (the DWN refused its role). */
  removedAt?: string;
  joinedAt: string;
}

export function networkFile(profileDir: string): string {
  return join(profileDir, 'network.json');
}

export function mapCacheFile(profileDir: string): string {
  return join(profileDir, 'netmap-cache.json');
}

const ROLES = new Set(['owner', 'node', 'member']);

export function readJoinedNetwork(profileDir: string): JoinedNetwork | undefined {
  const path = networkFile(profileDir);
  const v = readJsonFile<Partial<JoinedNetwork>>(path);
  if (v === undefined) return undefined;
  if (
    typeof v !== 'object' || v === null || v.version !== 1 || typeof v.networkId !== 'string' || typeof v.anchor !== 'string' ||
    typeof v.endpoint !== 'string' || !Array.isArray(v.roles) || !v.roles.every((r) => ROLES.has(r))
  ) {
    throw new StateError('E_STATE_CORRUPT', path, `state file ${path} is corrupt (unexpected content)`, {
      hint: 'remove it deliberately and join the network again',
    });
  }
  const dwnListen = typeof v.dwnListen === 'string' && v.dwnListen.length <= 64 ? { dwnListen: v.dwnListen } : {};
  const removedAt = typeof v.removedAt === 'string' && v.removedAt.length <= 40 ? { removedAt: v.removedAt } : {};
  const hostname = typeof v.hostname === 'string' && v.hostname.length <= 253 ? { hostname: v.hostname } : {};
  const name = typeof v.name === 'string' && v.name.length <= 253 ? { name: v.name } : {};
  const meshCIDR = typeof v.meshCIDR === 'string' && v.meshCIDR.length <= 43 ? { meshCIDR: v.meshCIDR } : {};
  const { dwnListen: _d, removedAt: _r, hostname: _h, name: _n, meshCIDR: _m, ...rest } = v;
  return { ...rest, ...dwnListen, ...removedAt, ...hostname, ...name, ...meshCIDR, embedded: v.embedded === true, joinedAt: typeof v.joinedAt === 'string' ? v.joinedAt : '' } as JoinedNetwork;
}

/** The joined network, or a one-line error saying what to run. */
export function requireJoinedNetwork(profileDir: string): JoinedNetwork {
  const j = readJoinedNetwork(profileDir);
  if (!j) {
    throw new MeshdError('E_NO_NETWORK', 'this device has not joined a network', {
      hint: 'run `meshd network create NAME` or `meshd network join --anchor DID --network ID`',
    });
  }
  return j;
}

/** What every command says on a device the owner removed. */
export function removedError(j: JoinedNetwork): MeshdError {
  return new MeshdError('E_NO_NETWORK', `this device was removed from network ${j.networkId} by its owner`, {
    hint: 'run `meshd network leave --force`, then join again with a new invite from the owner (`meshd up <invite>`)',
  });
}

/**
 * The owner removed this device (the DWN refuses its role): remember it, and drop the cached
 * map, which would otherwise bring the old tunnels back at the next start.
 */
export function markRemoved(profileDir: string, at: string): JoinedNetwork | undefined {
  const j = readJoinedNetwork(profileDir);
  if (!j) return undefined;
  rmSync(mapCacheFile(profileDir), { force: true });
  if (j.removedAt) return j;
  const next = { ...j, removedAt: at };
  writeJoinedNetwork(profileDir, next);
  return next;
}

export function writeJoinedNetwork(profileDir: string, j: JoinedNetwork): void {
  ensurePrivateDir(profileDir);
  writeJsonFile(networkFile(profileDir), j);
}

export function forgetNetwork(profileDir: string): void {
  rmSync(networkFile(profileDir), { force: true });
  rmSync(mapCacheFile(profileDir), { force: true });
  rmSync(epochFile(profileDir), { force: true });
}

interface CacheFile {
  version: 1;
  savedAt: string;
  map: NetworkMap;
}

/** The cached map for `networkId`, or undefined when there is none (or it is for another network). */
export function readCachedMap(profileDir: string, networkId: string): NetworkMap | undefined {
  const path = mapCacheFile(profileDir);
  const c = readJsonFile<Partial<CacheFile>>(path);
  if (c === undefined) return undefined;
  if (typeof c !== 'object' || c === null || c.version !== 1 || !isNetworkMap(c.map)) {
    throw new StateError('E_STATE_CORRUPT', path, `network map cache ${path} is corrupt`, { hint: 'remove it; it is rebuilt from the DWN' });
  }
  return c.map.networkId === networkId ? c.map : undefined;
}

export function writeCachedMap(profileDir: string, map: NetworkMap): void {
  ensurePrivateDir(profileDir);
  writeJsonFile(mapCacheFile(profileDir), { version: 1, savedAt: new Date().toISOString(), map } satisfies CacheFile);
}

interface EpochFile {
  version: 1;
  networkId: string;
  epoch: number;
}

export function epochFile(profileDir: string): string {
  return join(profileDir, 'network-epoch.json');
}

/**
 * The highest network-key epoch this device has accepted for `networkId` (0 when none): a
 * network record with a lower epoch is a replay and is refused, across restarts too.
 */
export function readEpochFloor(profileDir: string, networkId: string): number {
  const path = epochFile(profileDir);
  const v = readJsonFile<Partial<EpochFile>>(path);
  if (v === undefined) return 0;
  if (typeof v !== 'object' || v === null || v.version !== 1 || typeof v.networkId !== 'string' || !Number.isInteger(v.epoch) || (v.epoch as number) < 0) {
    throw new StateError('E_STATE_CORRUPT', path, `state file ${path} is corrupt`, { hint: 'remove it deliberately; the device then trusts the next network record it reads' });
  }
  return v.networkId === networkId ? (v.epoch as number) : 0;
}

export function writeEpochFloor(profileDir: string, networkId: string, epoch: number): void {
  ensurePrivateDir(profileDir);
  writeJsonFile(epochFile(profileDir), { version: 1, networkId, epoch } satisfies EpochFile);
}
