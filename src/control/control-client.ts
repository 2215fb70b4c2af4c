/**
 * The control client: DWN records in, network maps out, live.
 *
 * It subscribes (one WebSocket, one subscription per record kind this identity follows, as its
 * role) and reads what each event names — one record, not the whole kind — debouncing bursts
 * (≈250 ms after the last event, at most 1 s after the first; a slot that changes many times in
 * a burst is read once). A heartbeat re-write of bytes it already holds costs no read. After
 * every (re)connect it re-queries everything. A key rotation costs what changed: the records
 * re-encrypted under the new key come as events like any change, and what arrived before its
 * key is read again once the key delivery is read (session.ts). A map whose hash changed is
 * emitted and cached on disk. With the DWN unreachable it keeps (and at start, emits) the last
 * good map from the cache. Run by the owner, it also revokes devices whose expiry has come.
 */
import type { RecordEvent, RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { DwnError, MeshdError } from '../errors.js';
import { backoffDelay } from '../util/backoff.js';
import { systemClock } from '../util/clock.js';
import { DwnSubscriber, type SubscriberStatus, type SubscriptionSpec } from '../dwn/subscriber.js';
import { myNodeRecord, ownRecordsBehind, publishEndpoint, publishNodeInfo, reencryptOwnRecords, touchEndpoint } from './device-records.js';
import { markRemoved, readCachedMap, readJoinedNetwork, removedError, requireJoinedNetwork } from './local-state.js';
import { EventQueue } from './event-queue.js';
import { MapCacheWriter } from './map-cache-writer.js';
import { OwnReencryption } from './own-reencryption.js';
import { OwnerDuties } from './owner-duties.js';
import { currentNetwork } from './model.js';
import type { ControlClientOptions, ControlEvent, ControlStats } from './control-client-types.js';
import { withOnline } from './map-time.js';
import { MapTimeTimer } from './map-time-timer.js';
import { ENDPOINT_HEARTBEAT_MS, buildNetworkMap, mapHash, touchPeersWith, wireguardKeyOf, type MapPeer, type NetworkMap, type NodeLookup } from './netmap.js';
import { PROTOCOL_URI, kindOfPath } from './protocol.js';
import { queryFor, readableKinds } from './reader.js';
import type { EndpointRecord, NodeInfoRecord } from './records.js';
import { isRoleRefused, NetworkSession, networkDir } from './session.js';

export type { ControlClientOptions, ControlEvent, ControlStats } from './control-client-types.js';

export class ControlClient {
  readonly session: NetworkSession;
  private readonly opts: Required<Pick<ControlClientOptions, 'debounceMs' | 'maxDelayMs' | 'heartbeatMs'>> & ControlClientOptions;
  private readonly listeners = new Set<(e: ControlEvent) => void>();
  private subscriber: DwnSubscriber | undefined;
  private current: NetworkMap | undefined;
  private source: 'cache' | 'dwn' | null = null;
  /** Records named by events since the last flush, and the slots whose junk made them wait. */
  private readonly queue: EventQueue;
  private fullLoadWanted = false;
  private firstDirtyAt: number | undefined;
  /** Expiry and admissions, on the owner's daemon. */
  private readonly duties: OwnerDuties;
  private flushTimer: NodeJS.Timeout | undefined;
  /** A failed refresh is tried again (what it was to read stays pending) when this fires. */
  private retryTimer: NodeJS.Timeout | undefined;
  /** When this device re-writes its own records after a key rotation. */
  private readonly reencryption: OwnReencryption;
  /** Refreshes failed in a row (the retry backoff's attempt). */
  private refreshFailures = 0;
  /** Fires at the next moment the map changes with time alone (a peer's online flag, an expiry). */
  private readonly timeTimer: MapTimeTimer;
  /** The session's node indexes, as touchPeers looks nodes up. */
  private readonly nodeLookup: NodeLookup;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private lastEndpoint: Omit<EndpointRecord, 'updatedAt'> | undefined;
  private loadedOnce = false;
  private stopped = false;
  private readonly counters = { refreshes: 0, events: 0, eventReads: 0, fullLoads: 0, keyLoads: 0, writes: 0, rebuilds: 0, reencrypted: 0 };
  private lastRefreshAt: string | null = null;
  private lastError: string | null = null;
  private revoked = false;
  /** Writes maps to the cache after they are handed on, at most once a second. */
  private readonly cacheWriter: MapCacheWriter;

  /** WireGuard keys by DID: the Ed25519→X25519 map is costly, and maps are rebuilt often. */
  private readonly wgKeys = new Map<string, string>();
  private readonly keyOf = (did: string): string => {
    let k = this.wgKeys.get(did);
    if (k === undefined) {
      k = wireguardKeyOf(did);
      if (this.wgKeys.size >= 10_000) this.wgKeys.clear();
      this.wgKeys.set(did, k);
    }
    return k;
  };
  /** A refresh is queued and has not started: later events join it instead of queueing more. */
  private refreshQueued = false;
  /** Endpoint writes go on their own chain: they never wait behind reads. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(session: NetworkSession, opts: ControlClientOptions) {
    this.session = session;
    this.duties = new OwnerDuties({
      session,
      now: () => this.now(),
      inTurn: (fn) => void (this.running = this.running.then(fn).catch(() => {})),
      emit: (e) => this.emit(e),
      rebuild: () => this.rebuild(),
    });
    this.opts = { debounceMs: 250, maxDelayMs: 1000, heartbeatMs: ENDPOINT_HEARTBEAT_MS, ...opts };
    this.reencryption = new OwnReencryption(session.epochs.epoch, {
      onDue: () => this.refreshAgain(),
      ...(opts.reencryptWithinMs !== undefined ? { withinMs: opts.reencryptWithinMs } : {}),
    });
    session.now = () => this.now();
    this.timeTimer = new MapTimeTimer({
      liveMap: () => (this.source === 'dwn' && !this.stopped && !this.revoked ? this.current : undefined),
      now: () => this.now(),
      due: (map, expired, now) => (expired ? this.rebuild() : this.setMap(withOnline(map, now), 'dwn', true)),
    });
    this.nodeLookup = { nodeByContext: (c) => session.nodeIndex().byContext.get(c), activeNodeOf: (r) => session.activeNodeOf(r) };
    session.onRevoked = () => this.rebuild();
    this.queue = new EventQueue(
      () => this.now(),
      () => this.schedule(false),
    );
    this.cacheWriter = new MapCacheWriter(networkDir(session.ctx), (e) => this.emit({ type: 'error', error: e, during: 'writing the map cache' }));
  }

  /** Open the profile's joined network as a device (or as the owner, who is a device too). */
  static async open(opts: ControlClientOptions): Promise<ControlClient> {
    const joined = opts.joined ?? requireJoinedNetwork(networkDir(opts.ctx));
    if (joined.removedAt && !joined.roles.includes('owner')) throw removedError(joined);
    const role = joined.roles.includes('owner') ? 'owner' : joined.roles.includes('node') ? 'node' : undefined;
    if (!role) throw new MeshdError('E_NO_NETWORK', 'this identity is a member, not a device, of the network', { hint: 'devices are added with `meshd peer add DID`' });
    const session = await NetworkSession.forNetwork(opts.ctx, joined, role);
    return new ControlClient(session, opts);
  }

  private now(): number {
    return (this.opts.clock ?? systemClock).wallMs();
  }

  /** Listen to maps, connection changes and errors; returns an unsubscribe function. */
  on(listener: (e: ControlEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: ControlEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  get map(): NetworkMap | undefined {
    return this.current;
  }

  get stats(): ControlStats {
    return {
      networkId: this.session.joined.networkId,
      role: this.session.role,
      connected: this.subscriber?.connected ?? false,
      mapHash: this.current?.hash ?? null,
      mapSource: this.source,
      refreshes: this.counters.refreshes,
      events: this.counters.events,
      rebuilds: this.counters.rebuilds,
      contentRewrites: this.session.contentRewrites,
      reencrypted: this.counters.reencrypted,
      lastRefreshAt: this.lastRefreshAt,
      lastError: this.lastError,
      skipped: { ...this.session.skips.counters },
      revoked: this.revoked,
      requests: { eventReads: this.counters.eventReads, batchQueries: this.session.eventReads.batchQueries, fullLoads: this.counters.fullLoads, keyLoads: this.counters.keyLoads, writes: this.counters.writes },
      expired: this.duties.expiredCount,
      finishedRotations: this.duties.finishedRotations,
      rotationLeft: this.duties.rotationLeft,
    };
  }

  /**
   * Emit the cached map (if any) and start following the DWN. Returns the cached map, or
   * undefined when there is none; the first map from the DWN follows as an event.
   */
  start(): NetworkMap | undefined {
    this.stopped = false;
    const joined = this.session.joined;
    if (this.opts.cache !== false) {
      try {
        const cached = readCachedMap(networkDir(this.session.ctx), joined.networkId);
        if (cached) this.setMap(cached, 'cache', false);
      } catch (e) {
        this.emit({ type: 'error', error: e as Error, during: 'reading the map cache' });
      }
    }
    this.subscriber = new DwnSubscriber(this.session.client.endpoint, this.subscriptions(), (s) => this.onStatus(s), {
      timeoutMs: this.session.ctx.timeoutMs ?? 10_000,
      ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}),
    });
    this.subscriber.start();
    return this.current;
  }

  /** A local address went away: the DWN connection may be dead; reconnect (and re-query) now. */
  reconnect(): void {
    this.subscriber?.reconnect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.flushTimer);
    clearTimeout(this.retryTimer);
    this.timeTimer.stop();
    clearInterval(this.heartbeatTimer);
    this.duties.stop();
    this.reencryption.stop();
    this.queue.stop();
    await this.subscriber?.stop();
    await this.running.catch(() => {});
    await this.writing.catch(() => {});
    this.cacheWriter.flush(); // the last map goes to the cache before the daemon ends
    await this.session.close();
  }

  /** Resolve with the first map from the DWN (or the cache when `allowCache`) within `timeoutMs`. */
  waitForMap(timeoutMs: number, allowCache = true): Promise<NetworkMap> {
    if (this.current && (allowCache || this.source === 'dwn')) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new MeshdError('E_TIMEOUT', `no network map within ${timeoutMs} ms${this.lastError ? ` (${this.lastError})` : ''}`));
      }, timeoutMs);
      const off = this.on((e) => {
        if (e.type === 'map' && (allowCache || e.source === 'dwn')) {
          clearTimeout(timer);
          off();
          resolve(e.map);
        }
      });
    });
  }

  private subscriptions(): SubscriptionSpec[] {
    const s = this.session;
    const target = s.joined.anchor;
    const onEvent = (e: RecordEvent) => this.onRecordEvent(e);
    if (s.role === 'owner') {
      return [{ key: 'wireguard-mesh', target, build: () => s.client.subscribeMessage({ protocol: PROTOCOL_URI, contextId: s.joined.networkId }), onEvent }];
    }
    return readableKinds(s.role).map((kind) => {
      const { filter, protocolRole } = queryFor(s.acc, kind);
      return { key: kind, target, build: () => s.client.subscribeMessage(filter, protocolRole), onEvent };
    });
  }

  private onStatus(st: SubscriberStatus): void {
    if (st.type === 'up') {
      this.emit({ type: 'connection', up: true, reconnect: st.reconnect });
      // the subscription may have missed events: the full re-query is the truth
      this.fullLoadWanted = true;
      this.schedule(true);
    } else if (st.type === 'down') {
      this.lastError = st.error.message;
      this.emit({ type: 'connection', up: false, retryInMs: st.retryInMs, error: st.error.message });
    } else {
      this.lastError = st.error.message;
      this.emit({ type: 'error', error: st.error, during: `subscribing to ${st.key}` });
      if (st.error instanceof DwnError && st.error.status === 401) this.markRevoked();
    }
  }

  private onRecordEvent(e: RecordEvent): void {
    this.counters.events++;
    const msg = e.message as RecordsWriteMessage;
    const path = (msg.descriptor as { protocolPath?: string }).protocolPath;
    const kind = path ? kindOfPath(path) : undefined;
    if (!kind || msg.descriptor.method !== 'Write' || typeof msg.recordId !== 'string') {
      // a delete (only the owner is told of them; a prune takes a subtree): re-query everything
      this.fullLoadWanted = true;
    } else {
      const r = this.queue.add(kind, msg, e.initialWrite);
      if (r === 'deferred') return;
      if (r === 'overflow') this.fullLoadWanted = true;
    }
    this.schedule(false);
  }

  /**
   * A refresh failed (a read timed out, the DWN answered 5xx…): what it was to read is not lost
   * with it — the records its events named go back to pending (unless a newer event for the slot
   * came meanwhile), a failed full re-query is wanted again — and it runs again after a backoff.
   * Without this, one event whose read failed left that record (a new device's endpoint, say)
   * out of this device's map until the next heartbeat re-write minutes later.
   */
  private retryRefresh(messages: RecordsWriteMessage[] | undefined): void {
    if (this.stopped || this.revoked || this.subscriber === undefined) return;
    if (messages === undefined) this.fullLoadWanted = true;
    else this.queue.requeue(messages);
    const delay = backoffDelay(this.refreshFailures++, this.opts.backoff ?? {});
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.schedule(true);
    }, delay);
    this.retryTimer.unref();
  }

  /** A refresh with no new records, in turn with the others (a wait of the refresh's own ended). */
  private refreshAgain(): void {
    if (this.stopped) return;
    this.running = this.running.then(() => this.refresh([])).then(
      () => undefined,
      () => undefined,
    );
  }

  private schedule(immediate: boolean): void {
    if (this.stopped) return;
    const now = this.now();
    this.firstDirtyAt ??= now;
    clearTimeout(this.flushTimer);
    const wait = immediate ? 0 : Math.max(0, Math.min(this.opts.debounceMs, this.firstDirtyAt + this.opts.maxDelayMs - now));
    this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.firstDirtyAt = undefined;
    if (this.refreshQueued) return; // the queued refresh takes everything pending when it starts
    if (!this.fullLoadWanted && this.loadedOnce && this.queue.size === 0) return;
    this.refreshQueued = true;
    this.running = this.running
      .then(async () => {
        this.refreshQueued = false;
        const full = this.fullLoadWanted || !this.loadedOnce;
        const messages = this.queue.take();
        this.fullLoadWanted = false;
        if (full || messages.length > 0) await this.refresh(full ? undefined : messages);
      })
      .catch(() => {});
  }

  /**
   * Read what `messages` name (default: re-query everything) and rebuild the map. A key
   * delivery, or a network record under a key not held yet, makes it re-query everything: the
   * network key rotated. Errors are reported, not thrown.
   */
  async refresh(messages?: RecordsWriteMessage[]): Promise<NetworkMap | undefined> {
    if (this.stopped) return this.current;
    const s = this.session;
    const all = readableKinds(s.role);
    try {
      let full = messages === undefined;
      /** The map is current with the records already (no rebuild at the end). */
      let current = false;
      if (!full) {
        const readsBefore = s.reads;
        const keysBefore = s.keysLearned;
        const changed = await s.ingest(messages!);
        this.queue.notePenalties(messages!, s.failedSlots);
        // a removal (tombstone) reaches the data plane now, not after the re-reads a rotation needs;
        // endpoint heartbeats (newer times, same bytes) only touch their peers
        if (this.loadedOnce) current = changed.size === 0 || this.touch(changed, messages!) || (this.rebuild(), true);
        if (s.role !== 'owner') {
          // The network key rotated: what the owner and the devices re-encrypt under the new key
          // arrives as events, read one by one like any change; only what did not open under the
          // keys held is read again once the key comes. A record under a key not held asks for
          // this device's key deliveries (one query) when no new key came with it.
          if (s.waitedInLastIngest > 0 && s.keysLearned === keysBefore) {
            current = false;
            this.counters.keyLoads++;
            await s.load(['keyDelivery']);
          }
          if (s.keyRetryDue) {
            current = false;
            const again = await s.retryWaitingForKey();
            for (const k of again.changed) changed.add(k);
            this.queue.notePenalties(again.retried, s.failedSlots); // a record that waited for its key was no junk
          }
        }
        this.counters.eventReads += s.reads - readsBefore;
        const net = currentNetwork(s.set, s.joined.networkId, s.joined.anchor);
        // a network record this device still cannot open: read everything (the old way)
        full = !net || (s.role !== 'owner' && !s.acc.keyring.hasEpoch(net.data.epoch));
      }
      if (full) {
        current = false;
        this.counters.fullLoads++;
        await s.load(all);
        const net = currentNetwork(s.set, s.joined.networkId, s.joined.anchor);
        if (s.role !== 'owner' && (!net || !s.acc.keyring.hasEpoch(net.data.epoch))) await s.load(all);
      }
      this.loadedOnce = true;
      this.refreshFailures = 0;
      this.counters.refreshes++;
      this.lastRefreshAt = new Date(this.now()).toISOString();
      this.lastError = null;
      const ownNode = s.role === 'owner' ? undefined : s.nodeIndex().byDid.get(s.me);
      if (ownNode?.data.status === 'revoked') {
        // the owner's revocation of this device, read from an event: no request need be refused
        this.markRevoked();
        return this.current;
      }
      if (this.revoked || !current) {
        this.revoked = false;
        this.rebuild();
      }
      const net = currentNetwork(s.set, s.joined.networkId, s.joined.anchor);
      if (net && ownNode) {
        // after a key rotation, this device re-writes its own records under the new key — not at
        // once but after a wait spread over minutes (own-reencryption.ts) — and it counts as done
        // once written, not merely once a refresh saw the new epoch: a refresh that failed after
        // reading the new network record must not leave them under the old key
        const epoch = net.data.epoch;
        if (!ownRecordsBehind(s, ownNode)) this.reencryption.done(epoch);
        else if (this.reencryption.due(epoch)) {
          // in turn with this device's endpoint writes: two versions of one record signed at once
          // would have the DWN refuse one (409)
          const written = this.writing.then(() => reencryptOwnRecords(s));
          this.writing = written.then(
            () => undefined,
            () => undefined,
          );
          await written.then(
            (n) => {
              this.counters.reencrypted += n;
              if (s.acc.keyring.hasEpoch(epoch)) this.reencryption.done(epoch);
            },
            (e: Error) => this.emit({ type: 'error', error: e, during: 're-encrypting own records' }),
          );
        }
      }
      if (s.role === 'owner') {
        this.duties.scheduleExpiry();
        if (s.set.joinRequest.length > 0) await this.duties.admitJoins();
        await this.duties.checkRotation();
      }
    } catch (e) {
      this.lastError = (e as Error).message;
      this.emit({ type: 'error', error: e as Error, during: 'refreshing the network map' });
      if (isRoleRefused(e) || (e instanceof MeshdError && e.code === 'E_NO_NETWORK' && s.role !== 'owner' && readJoinedNetwork(networkDir(s.ctx))?.removedAt)) this.markRevoked();
      else this.retryRefresh(messages);
    }
    return this.current;
  }

  /**
   * The records ingested changed only their nodes' endpoint times (heartbeats): put those peers
   * in place in the current map — no rebuild, no new hash. False when that does not hold.
   */
  private touch(changed: ReadonlySet<string>, messages: RecordsWriteMessage[]): boolean {
    if (this.revoked || !this.current || changed.size !== 1 || !changed.has('endpoint')) return false;
    const nodes = new Set<string>();
    for (const m of messages) {
      if (kindOfPath(m.descriptor?.protocolPath ?? '') !== 'endpoint' || typeof m.contextId !== 'string') return false;
      const cut = m.contextId.lastIndexOf('/');
      if (cut <= 0) return false;
      nodes.add(m.contextId.slice(0, cut));
    }
    const s = this.session;
    const t = touchPeersWith(this.current, s.set, nodes, this.now(), this.keyOf, this.nodeLookup);
    if (!t) return false;
    this.setMap(t.map, 'dwn', true, t.touched);
    return true;
  }

  /** Rebuild from the records already read. */
  private rebuild(): void {
    if (!this.loadedOnce || this.revoked) return;
    const s = this.session;
    this.counters.rebuilds++;
    const m = buildNetworkMap({ set: s.set, networkId: s.joined.networkId, anchor: s.joined.anchor, selfDid: s.me, now: this.now(), keyOf: this.keyOf });
    if (m) this.setMap(m, 'dwn', true);
  }

  /** `touched`: only these peers changed since the map before (what moves with time, in place). */
  private setMap(m: NetworkMap, source: 'cache' | 'dwn', save: boolean, touched?: readonly MapPeer[]): void {
    const changed = this.current?.hash !== m.hash;
    const firstFromDwn = source === 'dwn' && this.source !== 'dwn';
    this.current = m;
    this.source = source;
    this.timeTimer.schedule(touched);
    if (!changed && !firstFromDwn) return;
    this.emit({ type: 'map', map: m, source });
    if (save && this.opts.cache !== false) this.cacheWriter.save(m);
  }

  /** This identity lost its role on the DWN (it was removed): an empty map, and say so. */
  private markRevoked(): void {
    if (this.revoked || !this.current) return;
    this.revoked = true;
    try {
      markRemoved(networkDir(this.session.ctx), new Date(this.now()).toISOString());
    } catch (e) {
      this.emit({ type: 'error', error: e as Error, during: 'noting the removal' });
    }
    const { hash: _h, generatedAt: _g, ...rest } = this.current;
    const body = { ...rest, self: null, peers: [], relays: [], filter: { policyVersion: null, defaultAction: 'drop' as const, rules: [] } };
    const m: NetworkMap = { ...body, hash: mapHash(body), generatedAt: new Date(this.now()).toISOString() };
    this.current = m;
    this.source = 'dwn';
    this.emit({ type: 'revoked' });
    this.emit({ type: 'map', map: m, source: 'dwn' });
  }

  /**
   * Run an owner operation (`peer add/approve/remove` through the daemon) on this client's
   * session, which events keep current: no re-read of the network per command. Runs in order
   * with map refreshes; the map is rebuilt after it.
   */
  ownerOp<T>(fn: (s: NetworkSession) => Promise<T>): Promise<T> {
    if (this.session.role !== 'owner') {
      return Promise.reject(new MeshdError('E_NOT_OWNER', 'this device is not the network owner', { hint: `the owner is ${this.session.joined.anchor}` }));
    }
    const p = this.running.then(async () => {
      await this.ensureLoaded();
      try {
        const r = await fn(this.session);
        this.rebuild();
        this.duties.scheduleExpiry();
        return r;
      } finally {
        await this.duties.checkRotation(); // a `peer remove` the DWN cut short is finished later
      }
    });
    this.running = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** Run what is left of a key rotation next (after an owner operation that only revoked). */
  finishRotationNow(): void {
    this.duties.finishNow();
  }

  private async ensureLoaded(): Promise<void> {
    if (!this.loadedOnce) await this.session.load(readableKinds(this.session.role));
    this.loadedOnce = true;
  }

  /**
   * Publish this device's endpoints now (and keep them fresh with a heartbeat). Unchanged
   * endpoints are re-written as the same bytes, which readers take without reading anything.
   */
  async publishEndpoint(ep: Omit<EndpointRecord, 'updatedAt'>): Promise<void> {
    const write = async () => {
      await this.ensureLoaded();
      this.counters.writes++;
      const same = this.lastEndpoint !== undefined && JSON.stringify(this.lastEndpoint) === JSON.stringify(ep);
      if (!(same && (await touchEndpoint(this.session)))) {
        await publishEndpoint(this.session, { ...ep, updatedAt: new Date(this.now()).toISOString() });
        this.rebuild(); // this device's own entry (its event brings nothing new)
      }
      this.lastEndpoint = ep; // only once written: a heartbeat re-writes what peers have
    };
    const p = this.writing.then(write);
    this.writing = p.catch(() => {});
    await p;
    if (!this.heartbeatTimer) {
      this.heartbeatTimer = setInterval(() => {
        if (!this.lastEndpoint || this.stopped) return;
        this.publishEndpoint(this.lastEndpoint).catch((e: Error) => this.emit({ type: 'error', error: e, during: 'endpoint heartbeat' }));
      }, this.opts.heartbeatMs);
      this.heartbeatTimer.unref();
    }
  }

  async publishNodeInfo(info: NodeInfoRecord): Promise<void> {
    const p = this.running.then(async () => {
      await this.ensureLoaded();
      myNodeRecord(this.session);
      await publishNodeInfo(this.session, info);
      this.rebuild(); // the record is in the session: its own event will bring nothing new
    });
    this.running = p.catch(() => {});
    await p;
  }
}
