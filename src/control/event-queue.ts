/**
 * The records named by subscription events and not read yet: the newest message per slot (a
 * slot changed many times in a burst is read once), and the slots that gave junk, whose events
 * wait out a penalty (5 s doubling to 60 s; a good record forgives) so that a member flooding its
 * own slots costs each reader a few reads, not one per record. Bounded: past MAX_PENDING slots
 * the caller re-queries everything instead.
 */
import type { RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { backoffDelay } from '../util/backoff.js';
import { kindOfPath, type RecordKind } from './protocol.js';
import { slotOf } from './reader.js';

/** Pending event slots kept at most; past that a full re-query replaces them. */
export const MAX_PENDING = 10_000;

export type AddResult = 'queued' | 'deferred' | 'overflow';

export class EventQueue {
  private pending = new Map<string, RecordsWriteMessage>();
  private readonly penalty = new Map<string, { until: number; strikes: number }>();
  private readonly deferred = new Map<string, RecordsWriteMessage>();
  private deferTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** `onReady`: deferred events came due and are pending now. */
  constructor(
    private readonly now: () => number,
    private readonly onReady: () => void,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  /** An event's record: pending (newest per slot), deferred while its slot is penalised, or — past the bound — 'overflow' (all pending dropped). */
  add(kind: RecordKind, msg: RecordsWriteMessage, initialWrite?: unknown): AddResult {
    const slot = slotOf(kind, msg.recordId, msg.contextId);
    // the event's initial write goes with its message, deferred or not: it is checked with it
    const full = initialWrite ? ({ ...msg, initialWrite } as RecordsWriteMessage) : msg;
    const pen = this.penalty.get(slot);
    if (pen && pen.until > this.now()) {
      const d = this.deferred.get(slot);
      if (!d || d.descriptor.messageTimestamp < msg.descriptor.messageTimestamp) this.deferred.set(slot, full);
      this.scheduleDeferred();
      return 'deferred';
    }
    const prev = this.pending.get(slot);
    if (!prev || prev.descriptor.messageTimestamp < msg.descriptor.messageTimestamp) this.pending.set(slot, full);
    if (this.pending.size > MAX_PENDING) {
      this.pending.clear();
      return 'overflow';
    }
    return 'queued';
  }

  /** A refresh that failed gives its messages back, unless a newer event for the slot came meanwhile. */
  requeue(messages: RecordsWriteMessage[]): void {
    for (const m of messages) {
      const slot = slotOfMessage(m);
      if (slot === undefined) continue;
      const cur = this.pending.get(slot);
      if (!cur || cur.descriptor.messageTimestamp < m.descriptor.messageTimestamp) this.pending.set(slot, m);
    }
  }

  /** Everything pending, taken out. */
  take(): RecordsWriteMessage[] {
    const messages = [...this.pending.values()];
    this.pending.clear();
    return messages;
  }

  /** After an ingest: slots that gave junk (`failed`) wait longer each time; good ones are forgiven. */
  notePenalties(messages: RecordsWriteMessage[], failed: ReadonlySet<string>): void {
    const now = this.now();
    for (const m of messages) {
      const slot = slotOfMessage(m);
      if (slot === undefined) continue;
      if (failed.has(slot)) {
        const strikes = (this.penalty.get(slot)?.strikes ?? 0) + 1;
        this.penalty.set(slot, { until: now + backoffDelay(strikes - 1, { initialMs: 5000, maxMs: 60_000, jitter: 0 }), strikes });
        if (this.penalty.size > MAX_PENDING) this.penalty.delete(this.penalty.keys().next().value!);
      } else {
        this.penalty.delete(slot);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
  }

  /** Move deferred events whose slot's penalty ended back to pending. */
  private scheduleDeferred(): void {
    if (this.deferTimer || this.stopped) return;
    let next = Infinity;
    for (const slot of this.deferred.keys()) next = Math.min(next, this.penalty.get(slot)?.until ?? 0);
    this.deferTimer = setTimeout(() => {
      this.deferTimer = undefined;
      const now = this.now();
      for (const [slot, msg] of this.deferred) {
        if ((this.penalty.get(slot)?.until ?? 0) > now) continue;
        this.deferred.delete(slot);
        this.pending.set(slot, msg);
      }
      if (this.pending.size > 0) this.onReady();
      if (this.deferred.size > 0) this.scheduleDeferred();
    }, Math.max(0, next - this.now()));
    this.deferTimer.unref();
  }
}

function slotOfMessage(m: RecordsWriteMessage): string | undefined {
  const kind = kindOfPath(m.descriptor?.protocolPath ?? '');
  return kind ? slotOf(kind, m.recordId, m.contextId) : undefined;
}
