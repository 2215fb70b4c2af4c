/**
 * The records a session has read, one per slot (reader.ts slotOf), and the records in force: the
 * same with the epoch rules applied (a RecordSet). A change to one slot changes the set by that
 * slot alone — no pass over every record — and a full derive runs only when the rules themselves
 * may have moved:
 *  - a network record changed (it names the epoch);
 *  - a record in the set under another epoch than the current one (in force only for the
 *    previous epoch's grace, EpochGuard.usable) is no longer usable: the grace ended;
 *  - the clock went back (a record the grace had let go might be usable again);
 *  - a caller replaced what it knew of a whole kind (a re-query: `invalidate`).
 * Records under the current epoch are usable whatever the time, and a record the grace let go
 * does not come back as time goes on, so nothing else can change with time alone.
 *
 * The set is what a full derive gives, array order included (the slots' order, as a Map keeps
 * it: a new slot goes last). Its arrays are never changed once handed out: a change makes a new
 * array for its kind (a copy of pointers) and a new RecordSet object, so code holding `set`
 * across a write keeps a consistent snapshot and lookups may be memoised on an array.
 */
import type { EpochGuard } from './epochs.js';
import { currentNetwork, emptyRecordSet, nodeRecordsByDid, type ActiveNode, type RecordSet } from './model.js';
import { MEMBER_READABLE, type RecordKind } from './protocol.js';
import { nodeSlot, recordSkip, type Decoded, type SkipLog } from './reader.js';

export interface RecordSlotsOptions {
  epochs: EpochGuard;
  networkId: string;
  anchor: string;
  skips: SkipLog;
  /** The current network record names this epoch (called on every full derive that finds one). */
  onEpoch?: (epoch: number) => void;
}

/** The node records in force (model.ts nodeRecordsByDid), by device DID and by contextId. */
export interface NodeIndex {
  byDid: ReadonlyMap<string, Decoded<'node'>>;
  byContext: ReadonlyMap<string, Decoded<'node'>>;
}

type Ords = { [K in RecordKind]: number[] };

function emptyOrds(): Ords {
  return { network: [], node: [], member: [], nodeInfo: [], endpoint: [], aclPolicy: [], relay: [], relayProposal: [], nodeRequest: [], keyDelivery: [], invite: [], joinRequest: [] };
}

const KINDS = Object.keys(emptyOrds()) as RecordKind[];
const NONE: ReadonlySet<RecordKind> = new Set();

/** Index of `x` in ascending `xs`, or ~(where it would go). */
function search(xs: readonly number[], x: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = xs[mid]!;
    if (v === x) return mid;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return ~lo;
}

export class RecordSlots {
  /** Every record read, by slot; `ord` orders slots as the Map does (a new slot gets the next). */
  private readonly slots = new Map<string, { rec: Decoded; ord: number }>();
  private nextOrd = 0;
  private current: RecordSet = emptyRecordSet();
  /** The slots' ords of each in-force array, element for element (ascending). */
  private readonly ords: Ords = emptyOrds();
  /** In-force records by slot. */
  private readonly inForce = new Map<string, Decoded>();
  /** In-force member-readable records under an epoch other than the current one: usable for a grace only. */
  private readonly grace = new Map<string, Decoded>();
  /** The next `settle` derives everything. */
  private stale = false;
  /** The latest time a decision was taken at. */
  private seenNow = -Infinity;
  private nodeMemo: { of: Decoded<'node'>[]; index: NodeIndex } | undefined;
  /** Full derives run (for tests and benches: they should be rare). */
  fullDerives = 0;

  constructor(private readonly o: RecordSlotsOptions) {}

  /** The records in force. */
  get set(): RecordSet {
    return this.current;
  }

  get size(): number {
    return this.slots.size;
  }

  /** The record read in `slot`, in force or not. */
  get(slot: string): Decoded | undefined {
    return this.slots.get(slot)?.rec;
  }

  /** Every slot and its record, in slot order. */
  *entries(): IterableIterator<[string, Decoded]> {
    for (const [slot, e] of this.slots) yield [slot, e.rec];
  }

  /** Put `rec` in its slot (a new slot goes last) and into the set, if the rules let it in, as of `now`. */
  put(slot: string, rec: Decoded, now: number): void {
    let e = this.slots.get(slot);
    if (e) e.rec = rec;
    else this.slots.set(slot, (e = { rec, ord: this.nextOrd++ }));
    if (!this.fresh(now)) return;
    if (rec.kind === 'network') {
      this.stale = true;
      return;
    }
    const use = this.usable(rec, now);
    if (!use) this.skipStale(rec);
    this.place(slot, rec.kind, e.ord, use ? rec : undefined);
  }

  /** Empty a slot; false when it held nothing. */
  delete(slot: string, now: number): boolean {
    const e = this.slots.get(slot);
    if (!e) return false;
    this.slots.delete(slot);
    if (!this.fresh(now)) return true;
    if (e.rec.kind === 'network') this.stale = true;
    else this.place(slot, e.rec.kind, e.ord, undefined);
    return true;
  }

  /** Many slots change at once (a re-query): the next `settle` derives everything. */
  invalidate(): void {
    this.stale = true;
  }

  /**
   * Bring the set up to `now`: a full derive when the rules may have moved (see the top of the
   * file). Returns the kinds whose in-force records that derive changed (none when there was none).
   */
  settle(now: number): ReadonlySet<RecordKind> {
    if (this.fresh(now)) {
      let due = false;
      for (const r of this.grace.values()) {
        if (!this.usable(r, now)) {
          due = true;
          break;
        }
      }
      if (!due) return NONE;
    }
    return this.derive(now);
  }

  /**
   * Apply the epoch rules to every slot: the network record with the highest epoch not below the
   * floor sets the current epoch; member-readable records under another epoch (past the grace)
   * are left out. Returns the kinds whose in-force records changed.
   */
  derive(now: number): Set<RecordKind> {
    this.fullDerives++;
    this.stale = false;
    this.seenNow = now;
    const { epochs, skips } = this.o;
    const set = emptyRecordSet();
    const ords = emptyOrds();
    this.inForce.clear();
    this.grace.clear();
    for (const [slot, { rec, ord }] of this.slots) {
      if (rec.kind !== 'network') continue;
      const n = rec as Decoded<'network'>;
      if (!epochs.admits(n.data.epoch)) {
        recordSkip(skips, 'network', n.recordId, n.timestamp, 'rollback', `network record names epoch ${n.data.epoch}, below epoch ${epochs.highest} seen before`);
        continue;
      }
      set.network.push(n);
      ords.network.push(ord);
      this.inForce.set(slot, n);
    }
    const net = currentNetwork(set, this.o.networkId, this.o.anchor);
    if (net) {
      epochs.accept(net.data.epoch, now);
      this.o.onEpoch?.(net.data.epoch);
      // the floor rose past a network record just let in: the next derive leaves it out (as a
      // derive on every change did), so the next settle must derive
      if (set.network.some((n) => !epochs.admits(n.data.epoch))) this.stale = true;
    }
    for (const [slot, { rec, ord }] of this.slots) {
      if (rec.kind === 'network') continue;
      if (!this.usable(rec, now)) {
        this.skipStale(rec);
        continue;
      }
      (set[rec.kind] as Decoded[]).push(rec);
      ords[rec.kind].push(ord);
      this.inForce.set(slot, rec);
      if (this.inGrace(rec)) this.grace.set(slot, rec);
    }
    const changed = new Set<RecordKind>();
    for (const k of KINDS) {
      const before = this.current[k] as Decoded[];
      const after = set[k] as Decoded[];
      // an unchanged kind keeps its array (memos on it stay good)
      if (before.length === after.length && before.every((r, i) => r === after[i])) (set as Record<RecordKind, Decoded[]>)[k] = before;
      else changed.add(k);
      this.ords[k] = ords[k];
    }
    this.current = set;
    return changed;
  }

  /** The node records in force by DID and by contextId (memoised while the node records stay the same). */
  nodeIndex(): NodeIndex {
    const of = this.current.node;
    if (this.nodeMemo?.of !== of) {
      const byDid = nodeRecordsByDid(this.current, this.o.networkId, this.o.anchor);
      const byContext = new Map<string, Decoded<'node'>>();
      for (const r of byDid.values()) byContext.set(r.contextId, r);
      this.nodeMemo = { of, index: { byDid, byContext } };
    }
    return this.nodeMemo.index;
  }

  /** model.ts activeNodeOf on the set, by slot (a node's nodeInfo and endpoint each have one). */
  activeNodeOf(record: Decoded<'node'>): ActiveNode {
    return { record, info: this.own('nodeInfo', record), endpoint: this.own('endpoint', record) };
  }

  private own<K extends 'nodeInfo' | 'endpoint'>(kind: K, record: Decoded<'node'>): Decoded<K> | undefined {
    const r = this.inForce.get(nodeSlot(kind, record.contextId)) as Decoded<K> | undefined;
    return r && r.parentContextId === record.contextId && r.author === record.data.did ? r : undefined;
  }

  /** False when the set must be derived in full before anything is decided at `now`. */
  private fresh(now: number): boolean {
    if (now < this.seenNow) this.stale = true;
    this.seenNow = now;
    return !this.stale;
  }

  /** May this record be in force at `now`? (Every rule on time is EpochGuard's.) */
  private usable(rec: Decoded, now: number): boolean {
    return !MEMBER_READABLE.has(rec.kind) || isTombstone(rec) || this.o.epochs.usable(rec.epoch, now, rec.kind);
  }

  /** In force only while the previous epoch's grace lasts (not the current or the next epoch, not a tombstone). */
  private inGrace(rec: Decoded): boolean {
    const current = this.o.epochs.epoch;
    return MEMBER_READABLE.has(rec.kind) && !isTombstone(rec) && (current === undefined || (rec.epoch !== current && rec.epoch !== current + 1));
  }

  private skipStale(rec: Decoded): void {
    const epochs = this.o.epochs;
    recordSkip(this.o.skips, rec.kind, rec.recordId, rec.timestamp, 'stale-epoch', `record is under epoch ${rec.epoch ?? 'unknown'}, not the current ${epochs.epoch ?? 'unknown'}`);
  }

  /** Put `rec` (undefined: nothing) in force for `slot`, at its place in its kind's array. */
  private place(slot: string, kind: RecordKind, ord: number, rec: Decoded | undefined): void {
    const ords = this.ords[kind];
    const arr = this.current[kind] as Decoded[];
    const i = search(ords, ord);
    let next: Decoded[];
    if (i >= 0) {
      if (arr[i] === rec) return;
      next = arr.slice();
      if (rec) next[i] = rec;
      else {
        next.splice(i, 1);
        ords.splice(i, 1);
      }
    } else {
      if (!rec) return;
      next = arr.slice();
      next.splice(~i, 0, rec);
      ords.splice(~i, 0, ord);
    }
    this.current = { ...this.current, [kind]: next } as RecordSet;
    if (rec) this.inForce.set(slot, rec);
    else this.inForce.delete(slot);
    if (rec && this.inGrace(rec)) this.grace.set(slot, rec);
    else this.grace.delete(slot);
  }
}

/**
 * A revoked node or member record counts under any epoch: it can only take someone out, and the
 * owner must still find it to delete it when a rotation was cut short past the epoch's grace.
 */
function isTombstone(r: Decoded): boolean {
  return (r.kind === 'node' || r.kind === 'member') && (r as Decoded<'node'>).data.status === 'revoked';
}
