/**
 * When this daemon learned of a peer's change, by its own clock: the time each endpoint of a
 * peer first appeared in a network map, the time a peer left the map, and when the data plane
 * was first configured with a map at least that new. `POST /v0/peer/changes` answers it, so a
 * benchmark (bench/scale.ts) can time a change across a hundred daemons from one small answer
 * each, instead of reading every daemon's full status until it shows the change.
 *
 * Bounded: the peers of the current map (16 endpoints each, the newest kept) and the last 256
 * that left it.
 */
import type { NetworkMap } from '../control/netmap.js';
import { MeshdError } from '../errors.js';
import { peerEndpoints } from './map-to-config.js';

/** Endpoints remembered per peer. */
const MAX_ENDPOINTS = 16;
/** Peers that left the map remembered (the oldest forgotten first). */
const MAX_GONE = 256;

/** One fact and its times (ms since the epoch, this daemon's wall clock). */
export interface ChangeTimes {
  /** A network map first had it. */
  mapAt: number;
  /** The data plane was first configured from a map that had it (null: not yet). */
  appliedAt: number | null;
}

export interface PeerChanges {
  did: string;
  /** In the current map. */
  inMap: boolean;
  /** Each endpoint ("ip:port") of the peer's current entry, with when it appeared. */
  endpoints: Record<string, ChangeTimes>;
  /** When the peer left the map (null: it has not, or it left too long ago to be remembered). */
  left: ChangeTimes | null;
}

export class PeerChangeLog {
  private readonly present = new Map<string, Map<string, ChangeTimes>>();
  private readonly gone = new Map<string, ChangeTimes>();
  /** Facts not yet applied to the data plane, with the number of the map that brought them. */
  private unapplied: Array<{ t: ChangeTimes; seq: number }> = [];
  /** Maps noted so far. */
  private maps = 0;

  constructor(private readonly wallMs: () => number = Date.now) {}

  /** How many maps were noted: what an apply that starts now covers (see noteApplied). */
  get seq(): number {
    return this.maps;
  }

  /** A map was received (before it is applied). */
  noteMap(map: NetworkMap): void {
    const now = this.wallMs();
    const seq = ++this.maps;
    const next = new Set<string>();
    for (const p of map.peers) {
      if (p.did === map.self?.did) continue;
      next.add(p.did);
      this.gone.delete(p.did);
      let eps = this.present.get(p.did);
      if (!eps) this.present.set(p.did, (eps = new Map()));
      const current = new Set(peerEndpoints(p));
      for (const e of eps.keys()) if (!current.has(e)) eps.delete(e);
      for (const e of current) {
        if (eps.has(e)) continue;
        const t: ChangeTimes = { mapAt: now, appliedAt: null };
        eps.set(e, t);
        this.unapplied.push({ t, seq });
        if (eps.size > MAX_ENDPOINTS) eps.delete(eps.keys().next().value!);
      }
    }
    for (const did of [...this.present.keys()]) {
      if (next.has(did)) continue;
      this.present.delete(did);
      const t: ChangeTimes = { mapAt: now, appliedAt: null };
      this.gone.set(did, t);
      this.unapplied.push({ t, seq });
      if (this.gone.size > MAX_GONE) this.gone.delete(this.gone.keys().next().value!);
    }
    // a fact still waiting when it is forgotten waits no longer
    if (this.unapplied.length > 4 * (MAX_GONE + this.present.size * MAX_ENDPOINTS)) this.unapplied = this.unapplied.slice(-MAX_GONE);
  }

  /** The data plane was configured from a map at least as new as the `seq`th noted (the seq read when that apply started). */
  noteApplied(seq: number): void {
    const now = this.wallMs();
    for (const u of this.unapplied) if (u.seq <= seq) u.t.appliedAt ??= now;
    this.unapplied = this.unapplied.filter((u) => u.seq > seq);
  }

  of(did: string): PeerChanges {
    const eps = this.present.get(did);
    const left = eps === undefined ? this.gone.get(did) : undefined;
    return {
      did,
      inMap: eps !== undefined,
      endpoints: Object.fromEntries([...(eps ?? [])].map(([e, t]) => [e, { ...t }])),
      left: left ? { ...left } : null,
    };
  }
}

/** `POST /v0/peer/changes` {"did": DID}: what `log` knows of that peer. */
export function peerChangesRoute(log: PeerChangeLog, body: unknown): PeerChanges {
  const did = (body as { did?: unknown } | null)?.did;
  if (typeof did !== 'string' || did === '') throw new MeshdError('E_USAGE', 'expected {"did": DID}');
  return log.of(did);
}
