/**
 * Revocation and network-key rotation, owner side: tombstones, the next epoch's key delivered to
 * everyone who stays, the owner's records re-encrypted under it, the network record moved to it,
 * and the revoked identities' records deleted. Every step after the tombstones can be run again
 * and does only what is left: a rotation the DWN cut short (it stopped answering at 100 devices)
 * is finished by the owner's daemon (`finishRotation`) instead of leaving the network half
 * rotated — with node records that stop counting once the previous epoch's grace ends.
 */
import { inParallel } from '../util/parallel.js';
import { DwnError } from '../errors.js';
import { activeNodes, currentPolicy, currentRelays, isNodeActive, memberRecords, nodeRecords } from './model.js';
import type { Decoded } from './reader.js';
import { x25519OfDid, type NetworkSession } from './session.js';

/** Parallel DWN writes per batch: enough to hide round trips, few enough to be polite. */
export const WRITE_WIDTH = 8;
/** A pruning delete may take this long (the DWN deletes the record's whole subtree). */
const PRUNE_TIMEOUT_MS = 300_000;
/** Tries of one write of a key rotation when the DWN does not answer in time. */
const ROTATION_TRIES = 3;
/**
 * How long one write of a key rotation waits for the DWN: the rotation is the DWN's busiest
 * moment (at 100 devices ~200 writes, each fanned out to every device, and every device reading
 * them), so a slow answer is expected there and is not a dead DWN.
 */
const ROTATION_WRITE_TIMEOUT_MS = 30_000;

export interface RemovePeerResult {
  /** Every DID revoked (a member's devices go with the member). */
  removed: string[];
  /** The network key epoch after rotation. */
  epoch: number;
  /** The rotation runs on in the owner's daemon (the revocation is done). */
  rotating?: true;
}

/** The owner's key delivery to `did`: one record per recipient, rewritten at each rotation. */
function deliveryTo(s: NetworkSession, did: string): Decoded<'keyDelivery'> | undefined {
  let best: Decoded<'keyDelivery'> | undefined;
  for (const d of s.set.keyDelivery) {
    if (d.recipient === did && d.author === s.joined.anchor && (!best || d.timestamp > best.timestamp)) best = d;
  }
  return best;
}

/** Deliver the network key of `epoch` to `did` (a device or a member); nothing when it has it. */
export async function deliverKey(s: NetworkSession, did: string, epoch: number): Promise<void> {
  const key = s.acc.keyring.networkKey(epoch)!;
  const data = { epoch, networkKey: Buffer.from(key).toString('base64url') };
  const recipients = s.acc.keyring.privateRecipients(x25519OfDid(did));
  const existing = deliveryTo(s, did);
  if (existing?.data.epoch === epoch) return;
  if (existing) await s.update(existing, data, recipients);
  else await s.writeNew('keyDelivery', data, { parentContextId: s.joined.networkId, recipient: did, recipients });
}

export function hasDelivery(s: NetworkSession, did: string, epoch: number): boolean {
  return deliveryTo(s, did)?.data.epoch === epoch;
}

/**
 * One write of a key rotation, tried again (at most ROTATION_TRIES in all) when the DWN did not
 * answer in time or a gateway in front of it said it is unavailable (HTTP 502/503/504), or the
 * connection failed: at 100 devices the DWN is busiest just then and one slow answer must not
 * leave the rotation half done. Each write is a new version of its record, so one that did land
 * is merely superseded.
 */
async function rotationWrite(s: NetworkSession, fn: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await fn();
      return;
    } catch (e) {
      if (!passing(e) || attempt >= ROTATION_TRIES) throw e;
      s.ctx.progress?.(`the DWN did not answer (${(e as Error).message}); trying that write again (${attempt + 1}/${ROTATION_TRIES})`);
      await new Promise((res) => setTimeout(res, 1000 * attempt));
    }
  }
}

/** A DWN failure that may pass: no answer in time, no connection, a gateway's 502/503/504. */
function passing(e: unknown): boolean {
  if (!(e instanceof DwnError)) return false;
  return e.code === 'E_DWN_TIMEOUT' || e.code === 'E_DWN_UNREACHABLE' || (e.code === 'E_DWN_REJECTED' && [502, 503, 504].includes(e.status ?? 0));
}

/** Run `fn` with the session's writes waiting as long as a rotation's may. */
async function withRotationTimeout<T>(s: NetworkSession, fn: () => Promise<T>): Promise<T> {
  const before = s.writeTimeoutMs;
  s.writeTimeoutMs = Math.max(ROTATION_WRITE_TIMEOUT_MS, before ?? 0);
  try {
    return await fn();
  } finally {
    s.writeTimeoutMs = before;
  }
}

/**
 * Revoke devices and members in an owner session with everything loaded (`peer remove`, and the
 * owner's daemon when a device expires):
 *
 * 1. tombstones (status revoked, under the current key): every node drops the revoked ones on
 *    this one event — the revoked device may read it too, and learns only that it was removed;
 * 2. the next epoch's key to everyone who stays, in the one delivery record each has;
 * 3. the owner's records re-encrypted under the new key (readers take a record under the next
 *    epoch when they hold its key, so nothing blanks);
 * 4. the network record names the new epoch (readers then take the previous one only for a
 *    grace);
 * 5. the revoked node and member records deleted with everything under them (their nodeInfo,
 *    endpoint, requests: whatever they wrote, junk included), and their key deliveries deleted.
 *
 * The removed devices hold no key of the new epoch, and nothing is written under the old one.
 */
export function revoke(s: NetworkSession, nodeDids: string[], memberDids: string[], opts: { rotate?: boolean } = {}): Promise<RemovePeerResult> {
  return withRotationTimeout(s, async () => {
    const id = s.joined.networkId;
    const anchor = s.joined.anchor;
    const removed = new Set<string>([...nodeDids, ...memberDids]);
    const epoch = s.network().data.epoch + 1;
    s.ctx.progress?.(`revoking ${removed.size} identit${removed.size === 1 ? 'y' : 'ies'}; rotating the network key to epoch ${epoch}`);
    // tombstones first, under the key every node holds now: each drops the revoked ones on this
    // one event, before the rotation below makes every node re-read the network
    const current = s.recipients(s.network().data.epoch);
    const nodes = nodeRecords(s.set, id, anchor).filter((n) => removed.has(n.data.did) && n.data.status !== 'revoked');
    const members = memberRecords(s.set, id, anchor).filter((m) => removed.has(m.data.did) && m.data.status !== 'revoked');
    await inParallel(nodes, WRITE_WIDTH, (n) => rotationWrite(s, () => s.update(n, { ...n.data, status: 'revoked' }, current)));
    await inParallel(members, WRITE_WIDTH, (m) => rotationWrite(s, () => s.update(m, { ...m.data, status: 'revoked' }, current)));
    s.onRevoked?.();
    // the owner's daemon rotates after answering: `peer remove` returns once every device drops them
    if (opts.rotate === false) return { removed: [...removed].sort(), epoch, rotating: true };
    s.ctx.progress?.('revoked: every device drops them now; delivering the new key');
    await rotate(s, true);
    return { removed: [...removed].sort(), epoch };
  });
}

/** What is left of a rotation in an owner session with everything loaded (nothing: undefined). */
export function unfinishedRotation(s: NetworkSession): { bump: boolean; rewrites: number; deletions: number } | undefined {
  const bump = needsNewEpoch(s);
  const work = rotationWork(s, bump);
  if (!bump && work.rewrites.length === 0 && work.deletions.length === 0) return undefined;
  return { bump, rewrites: work.rewrites.length, deletions: work.deletions.length };
}

/**
 * Finish a rotation cut short (the owner's daemon, after a `peer remove` or an expiry the DWN
 * stopped answering): a new epoch when a revoked identity still holds the current one, the
 * owner's records still under an older epoch, the revoked identities' records. Returns false
 * when nothing was left.
 */
export function finishRotation(s: NetworkSession): Promise<boolean> {
  if (!unfinishedRotation(s)) return Promise.resolve(false);
  return withRotationTimeout(s, async () => {
    s.ctx.progress?.('finishing a key rotation that was cut short');
    await rotate(s, needsNewEpoch(s));
    return true;
  });
}

/**
 * A revoked identity still holds a delivery of the current epoch's key: its rotation stopped
 * before it moved the epoch.
 */
function needsNewEpoch(s: NetworkSession): boolean {
  const epoch = s.network().data.epoch;
  const id = s.joined.networkId;
  const anchor = s.joined.anchor;
  return [...nodeRecords(s.set, id, anchor), ...memberRecords(s.set, id, anchor)].some((r) => r.data.status === 'revoked' && hasDelivery(s, r.data.did, epoch));
}

/**
 * Steps 2–5 of `revoke`, each skipping what is done already. The owner's records are re-written
 * under the new epoch *before* the network record names it: readers take a record under the
 * epoch after the current one (they hold its key only when the owner delivered it to them), so
 * until the network record moves every record counts under either key, and a rotation cut short
 * here leaves nothing that stops counting. Once the network record names the new epoch, the
 * previous one's short grace starts with the owner's records already moved.
 */
async function rotate(s: NetworkSession, bump: boolean): Promise<void> {
  const net = s.network();
  const epoch = bump ? net.data.epoch + 1 : net.data.epoch;
  const work = rotationWork(s, bump);
  // a rotation that moved the epoch delivered every key before it did: when finishing one, no
  // key is delivered (an identity the DWN operator re-served gets nothing)
  const keyed = bump ? work.stay.filter((d) => !hasDelivery(s, d, epoch)) : [];
  await inParallel(keyed, WRITE_WIDTH, (d) => rotationWrite(s, () => deliverKey(s, d, epoch)));
  if (keyed.length > 0) s.ctx.progress?.(`key of epoch ${epoch} delivered to ${keyed.length} identit${keyed.length === 1 ? 'y' : 'ies'}; re-encrypting the network's records`);
  const recipients = s.recipients(epoch);
  await inParallel(work.rewrites, WRITE_WIDTH, (r) => rotationWrite(s, () => s.update(r, r.data, recipients)));
  if (bump) await rotationWrite(s, () => s.update(net, { ...net.data, epoch }, recipients));
  s.ctx.progress?.(`${work.rewrites.length} records re-encrypted under epoch ${epoch}; deleting the removed identities' records`);
  await inParallel(work.deletions, WRITE_WIDTH, async (recordId) => {
    // a node record goes with everything under it, however much its device wrote (a flood of
    // junk records too): the DWN may take a while over it
    await s.client.delete(recordId, { prune: true, timeoutMs: PRUNE_TIMEOUT_MS });
    s.forget(recordId);
  });
}

/**
 * Who keeps the network key (active devices but the owner, active members), the owner's records
 * under an epoch older than the target one (all of them when the epoch moves), and the records
 * of revoked identities to delete.
 */
function rotationWork(s: NetworkSession, bump: boolean): { stay: string[]; rewrites: Decoded[]; deletions: string[] } {
  const id = s.joined.networkId;
  const anchor = s.joined.anchor;
  const now = Date.now();
  const net = s.network();
  const target = bump ? net.data.epoch + 1 : net.data.epoch;
  const nodes = nodeRecords(s.set, id, anchor);
  const members = memberRecords(s.set, id, anchor);
  const revoked = new Set([...nodes, ...members].filter((r) => r.data.status === 'revoked').map((r) => r.data.did));
  const stay = [
    ...new Set([
      ...nodes.filter((n) => isNodeActive(n.data, now) && n.data.did !== anchor).map((n) => n.data.did),
      ...members.filter((m) => m.data.status === 'active').map((m) => m.data.did),
    ]),
  ];
  const own = activeNodes(s.set, id, anchor, net.data.meshCIDR, now).active.find((a) => a.record.data.did === anchor);
  const policy = currentPolicy(s.set, id, anchor);
  const owners: Decoded[] = [
    ...nodes.filter((n) => n.data.status !== 'revoked'),
    ...members.filter((m) => m.data.status !== 'revoked'),
    ...currentRelays(s.set, id, anchor),
    ...(policy ? [policy] : []),
    ...(own?.info ? [own.info] : []),
    ...(own?.endpoint ? [own.endpoint] : []),
  ];
  return {
    stay,
    rewrites: owners.filter((r) => r.epoch === undefined || r.epoch < target),
    deletions: [
      ...[...nodes, ...members].filter((r) => r.data.status === 'revoked').map((r) => r.recordId),
      ...s.set.keyDelivery.filter((d) => d.recipient !== undefined && revoked.has(d.recipient)).map((d) => d.recordId),
    ],
  };
}
