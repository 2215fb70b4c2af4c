/**
 * The records in force kept slot by slot (control/record-slots.ts) must be exactly what a full
 * derive gives — array order, node lookups, epoch and skip counts included — whatever comes:
 * random sequences of records of every epoch, network records moving the epoch (and rolling it
 * back), deletions, re-queries, time passing the grace, the clock going back. And the everyday
 * change (a heartbeat, a same-content re-write) must not derive everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EpochGuard } from '../../src/control/epochs.js';
import { activeNodeOf, nodeRecordsByDid } from '../../src/control/model.js';
import type { RecordKind } from '../../src/control/protocol.js';
import { newSkipLog, slotOf, type Decoded } from '../../src/control/reader.js';
import { RecordSlots } from '../../src/control/record-slots.js';

const NET = 'bafynet';
const OWNER = 'did:jwk:owner';
const GRACE = 1000;
/** A device's own records keep the previous epoch longer. */
const DEVICE_GRACE = 3000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const devices = [0, 1, 2, 3].map((i) => `did:jwk:dev${i}`);

function slots(): { s: RecordSlots; epochs: EpochGuard; skips: ReturnType<typeof newSkipLog> } {
  const epochs = new EpochGuard(undefined, NET, GRACE, DEVICE_GRACE);
  const skips = newSkipLog();
  return { s: new RecordSlots({ epochs, networkId: NET, anchor: OWNER, skips }), epochs, skips };
}

let seq = 0;
function decoded<K extends RecordKind>(kind: K, o: { id: string; parent: string; author: string; recipient?: string; epoch: number | undefined; at: number; data: unknown }): Decoded<K> {
  const contextId = o.parent ? `${o.parent}/${o.id}` : o.id;
  return {
    kind,
    recordId: o.id,
    contextId,
    parentContextId: o.parent,
    parentId: undefined,
    author: o.author,
    recipient: o.recipient,
    dateCreated: new Date(T0).toISOString(),
    timestamp: new Date(o.at).toISOString(),
    epoch: o.epoch,
    dataCid: `cid${++seq}`,
    data: o.data as Decoded<K>['data'],
  };
}

/** Node records n0…n3 (device i ↔ node i mod 4; a second record for a DID when ≥ 4). */
const nodeCtx = (n: number) => `${NET}/n${n}`;

type Op =
  | { op: 'network'; id: 0 | 1; dataEpoch: number; keyEpoch: number }
  | { op: 'node'; n: number; epoch: number | undefined; status: 'active' | 'revoked'; author: 0 | 1 }
  | { op: 'own'; kind: 'nodeInfo' | 'endpoint'; n: number; dev: number; epoch: number | undefined; other: number }
  | { op: 'other'; kind: 'keyDelivery' | 'relay' | 'aclPolicy'; k: number; epoch: number | undefined }
  | { op: 'delete'; pick: number }
  | { op: 'time'; ms: number }
  | { op: 'back'; ms: number }
  | { op: 'requery' };

const epochArb = fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    // mostly the network record proper, encrypted under the epoch it names (the others never count)
    arbitrary: fc
      .record({ id: fc.constantFrom(0 as const, 0 as const, 0 as const, 1 as const), dataEpoch: fc.integer({ min: 0, max: 4 }), keyMatches: fc.constantFrom(true, true, true, false), keyEpoch: fc.integer({ min: 0, max: 4 }) })
      .map(({ id, dataEpoch, keyMatches, keyEpoch }) => ({ op: 'network' as const, id, dataEpoch, keyEpoch: keyMatches ? dataEpoch : keyEpoch })),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant('node' as const), n: fc.integer({ min: 0, max: 6 }), epoch: epochArb, status: fc.constantFrom('active' as const, 'revoked' as const), author: fc.constantFrom(0 as const, 1 as const) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('own' as const), kind: fc.constantFrom('nodeInfo' as const, 'endpoint' as const), n: fc.integer({ min: 0, max: 6 }), dev: fc.integer({ min: 0, max: 3 }), epoch: epochArb, other: fc.integer({ min: 0, max: 9 }) }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('other' as const), kind: fc.constantFrom('keyDelivery' as const, 'relay' as const, 'aclPolicy' as const), k: fc.integer({ min: 0, max: 3 }), epoch: epochArb }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('time' as const), ms: fc.integer({ min: 0, max: 2 * GRACE }) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('back' as const), ms: fc.integer({ min: 1, max: GRACE }) }), weight: 1 },
  { arbitrary: fc.constant({ op: 'requery' as const }), weight: 1 },
);

/** The record an op puts (undefined: the op puts none). */
function recordOf(o: Op, at: number): Decoded | undefined {
  switch (o.op) {
    case 'network':
      return decoded('network', { id: o.id === 0 ? NET : 'bafyother', parent: '', author: OWNER, epoch: o.keyEpoch, at, data: { name: 'n', meshCIDR: '10.200.0.0/16', epoch: o.dataEpoch } });
    case 'node': {
      const did = devices[o.n % 4]!;
      return decoded('node', {
        id: `n${o.n}`,
        parent: NET,
        author: o.author === 0 ? OWNER : devices[1]!,
        recipient: did,
        epoch: o.epoch,
        at,
        data: { did, meshIP: `10.200.0.${o.n + 1}`, meshIP6: `fd00::${o.n + 1}`, owner: OWNER, status: o.status, addedAt: new Date(T0).toISOString() },
      });
    }
    case 'own':
      return decoded(o.kind, { id: `${o.kind}${o.other}`, parent: nodeCtx(o.n), author: devices[o.dev]!, epoch: o.epoch, at, data: { v: o.other } });
    case 'other':
      return decoded(o.kind, { id: `${o.kind}${o.k}`, parent: NET, author: OWNER, recipient: devices[o.k]!, epoch: o.epoch, at, data: { v: o.k } });
    default:
      return undefined;
  }
}

function slotOfRecord(r: Decoded): string {
  return slotOf(r.kind, r.recordId, r.contextId);
}

/** Everything a reader takes from the set, compared between the incremental and the full derive. */
function assertSame(a: ReturnType<typeof slots>, b: ReturnType<typeof slots>, step: number): void {
  assert.deepEqual(a.s.set, b.s.set, `step ${step}: the set`);
  assert.equal(a.epochs.epoch, b.epochs.epoch, `step ${step}: the epoch`);
  assert.equal(a.epochs.highest, b.epochs.highest, `step ${step}: the floor`);
  assert.deepEqual(a.skips.counters, b.skips.counters, `step ${step}: skip counters`);
  const byDid = nodeRecordsByDid(b.s.set, NET, OWNER);
  assert.deepEqual(a.s.nodeIndex().byDid, byDid, `step ${step}: node records by DID`);
  assert.deepEqual(a.s.nodeIndex().byContext, new Map([...byDid.values()].map((r) => [r.contextId, r])), `step ${step}: node records by context`);
  for (const n of b.s.set.node) assert.deepEqual(a.s.activeNodeOf(n), activeNodeOf(b.s.set, n), `step ${step}: activeNodeOf ${n.recordId}`);
}

test('records in force kept slot by slot equal a full derive after every change (random sequences)', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 80 }), (ops) => {
      const a = slots(); // incremental
      const b = slots(); // a full derive after every change, as before
      let now = T0;
      let at = T0;
      ops.forEach((o, step) => {
        if (o.op === 'time') now += o.ms;
        else if (o.op === 'back') now -= o.ms;
        else if (o.op === 'requery') a.s.invalidate();
        else if (o.op === 'delete') {
          const all = [...b.s.entries()];
          if (all.length > 0) {
            const [slot] = all[o.pick % all.length]!;
            assert.equal(a.s.delete(slot, now), true);
            b.s.delete(slot, now);
          }
        } else {
          const r = recordOf(o, (at += 1));
          if (r) {
            a.s.put(slotOfRecord(r), r, now);
            b.s.put(slotOfRecord(r), r, now);
          }
        }
        a.s.settle(now);
        b.s.derive(now);
        assertSame(a, b, step);
      });
    }),
    { numRuns: 1000 },
  );
});

test('a heartbeat or a same-content re-write changes its slot only: no full derive, other kinds keep their arrays', () => {
  const { s, epochs } = slots();
  let at = T0;
  const now = T0;
  s.put(`network|${NET}`, recordOf({ op: 'network', id: 0, dataEpoch: 2, keyEpoch: 2 }, at++)!, now);
  for (let n = 0; n < 4; n++) {
    for (const r of [
      recordOf({ op: 'node', n, epoch: 2, status: 'active', author: 0 }, at++)!,
      recordOf({ op: 'own', kind: 'nodeInfo', n, dev: n, epoch: 2, other: n }, at++)!,
      recordOf({ op: 'own', kind: 'endpoint', n, dev: n, epoch: 2, other: n }, at++)!,
    ])
      s.put(slotOfRecord(r), r, now);
  }
  s.settle(now);
  assert.equal(epochs.epoch, 2);
  const derives = s.fullDerives;
  const nodes = s.set.node;
  const index = s.nodeIndex();
  for (let i = 0; i < 100; i++) {
    const n = i % 4;
    const hb = recordOf({ op: 'own', kind: 'endpoint', n, dev: n, epoch: 2, other: n }, at++)!;
    s.put(slotOfRecord(hb), hb, now + i);
    assert.equal(s.settle(now + i).size, 0);
    assert.equal(s.activeNodeOf(index.byContext.get(nodeCtx(n))!).endpoint, hb, 'the heartbeat is in force at once');
  }
  const re = recordOf({ op: 'node', n: 1, epoch: 2, status: 'active', author: 0 }, at)!;
  s.put(slotOfRecord(re), re, now + 200);
  s.settle(now + 200);
  assert.equal(s.fullDerives, derives, 'no full derive for heartbeats and re-writes');
  assert.equal(s.set.endpoint.length, 4);
  assert.notEqual(s.set.node, nodes, 'a node re-write makes a new node array');
  assert.equal(s.nodeIndex().byContext.get(nodeCtx(1)), re);
  assert.equal(nodes[1]!.recordId, 'n1', 'arrays handed out are not changed');
  assert.notEqual(nodes[1], re);
});

test("the previous epoch's records leave at the first settle after the grace, which names their kinds", () => {
  const { s, epochs } = slots();
  let at = T0;
  s.put(`network|${NET}`, recordOf({ op: 'network', id: 0, dataEpoch: 1, keyEpoch: 1 }, at++)!, T0);
  const old = recordOf({ op: 'own', kind: 'endpoint', n: 0, dev: 0, epoch: 1, other: 0 }, at++)!;
  s.put(slotOfRecord(old), old, T0);
  s.settle(T0);
  s.put(`network|${NET}`, recordOf({ op: 'network', id: 0, dataEpoch: 2, keyEpoch: 2 }, at++)!, T0 + 10);
  assert.ok(s.settle(T0 + 10).has('network'));
  assert.equal(epochs.epoch, 2);
  assert.deepEqual(s.set.endpoint, [old], 'under the previous epoch: in force for the grace');
  assert.equal(s.settle(T0 + 10 + GRACE).size, 0, "a device's own record keeps the longer grace");
  assert.equal(s.settle(T0 + 10 + DEVICE_GRACE - 1).size, 0);
  assert.deepEqual([...s.settle(T0 + 10 + DEVICE_GRACE)], ['endpoint'], 'the grace ended: the endpoint left');
  assert.deepEqual(s.set.endpoint, []);
  assert.deepEqual([...s.settle(T0 + 10 + DEVICE_GRACE - 5)], ['endpoint'], 'the clock went back into the grace: the endpoint is in force again');
  assert.deepEqual(s.set.endpoint, [old]);
  assert.deepEqual([...s.settle(T0 + 10 + DEVICE_GRACE)], ['endpoint']);
  const derives = s.fullDerives;
  const fresh = recordOf({ op: 'own', kind: 'endpoint', n: 0, dev: 0, epoch: 2, other: 0 }, at)!;
  s.put(slotOfRecord(fresh), fresh, T0 + 2 * DEVICE_GRACE);
  s.settle(T0 + 2 * DEVICE_GRACE);
  assert.deepEqual(s.set.endpoint, [fresh], 're-encrypted under the new epoch: in force again');
  assert.equal(s.fullDerives, derives);
});
