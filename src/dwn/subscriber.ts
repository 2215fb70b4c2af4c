/**
 * DWN subscriptions over one WebSocket. JSON-RPC `rpc.subscribe.dwn.processMessage`
 * with a top-level `subscription: {id}`; events come back as `{id: <subscription id>,
 * result: {event}}`. The connection is kept: when it drops (or goes silent past the server's
 * 30 s pings) it reconnects with backoff and jitter and re-subscribes with freshly signed
 * messages, then reports `up` with `reconnect: true` so the owner re-queries everything — the
 * subscription may have missed events while it was down.
 */
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import type { GenericMessage, RecordEvent } from '@tbd54566975/dwn-sdk-js';
import { DwnError } from '../errors.js';
import { backoffDelay, type BackoffOptions } from '../util/backoff.js';
import { normalizeEndpoint, type DwnReply } from './rpc-http.js';

export interface SubscriptionSpec {
  /** A name for status reports (e.g. the protocol path). */
  key: string;
  /** Tenant DID. */
  target: string;
  /** Builds a freshly signed RecordsSubscribe message; called on every (re)subscribe. */
  build: () => Promise<GenericMessage>;
  onEvent: (event: RecordEvent) => void;
}

export type SubscriberStatus =
  | { type: 'up'; reconnect: boolean }
  | { type: 'down'; error: DwnError; retryInMs: number }
  | { type: 'rejected'; key: string; error: DwnError };

export interface SubscriberOptions {
  /** Timeout for the connection and each subscribe request. Default 10 s. */
  timeoutMs?: number;
  backoff?: BackoffOptions;
  /** Treat the connection as dead after this long without any frame or ping. Default 75 s. */
  idleTimeoutMs?: number;
}

interface Pending {
  resolve: (reply: DwnReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export function websocketUrl(endpoint: string): string {
  const u = new URL(normalizeEndpoint(endpoint));
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

export class DwnSubscriber {
  readonly endpoint: string;
  private readonly url: string;
  private readonly specs: SubscriptionSpec[];
  private readonly onStatus: (s: SubscriberStatus) => void;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly backoff: BackoffOptions;
  private ws: WebSocket | undefined;
  private stopped = true;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly handlers = new Map<string, (e: RecordEvent) => void>();
  private isUp = false;

  constructor(endpoint: string, specs: SubscriptionSpec[], onStatus: (s: SubscriberStatus) => void, opts: SubscriberOptions = {}) {
    this.endpoint = normalizeEndpoint(endpoint);
    this.url = websocketUrl(endpoint);
    this.specs = specs;
    this.onStatus = onStatus;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 75_000;
    this.backoff = opts.backoff ?? {};
  }

  get connected(): boolean {
    return this.isUp;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  /**
   * Drop the connection now and connect again (after the first backoff step, then re-subscribe
   * and report `up`): for when it is known to be dead, e.g. the local address it was bound to
   * went away — waiting for the idle timeout would take up to a minute. No-op when stopped.
   */
  reconnect(): void {
    if (this.stopped) return;
    this.ws?.terminate();
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    this.ws?.terminate();
    await this.loop;
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let everUp = false;
    while (!this.stopped) {
      let error: DwnError;
      try {
        const { closed } = await this.connectOnce();
        attempt = 0;
        this.isUp = true;
        this.safeStatus({ type: 'up', reconnect: everUp });
        everUp = true;
        error = await closed;
      } catch (e) {
        error = e instanceof DwnError ? e : new DwnError('E_DWN_UNREACHABLE', `subscription to the DWN at ${this.endpoint} failed: ${(e as Error).message}`, { cause: e });
      }
      this.isUp = false;
      this.ws?.terminate();
      this.ws = undefined;
      this.failPending(error);
      if (this.stopped) break;
      const retryInMs = backoffDelay(attempt++, this.backoff);
      this.safeStatus({ type: 'down', error, retryInMs });
      await new Promise<void>((r) => {
        const t = setTimeout(r, retryInMs);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
  }

  private safeStatus(s: SubscriberStatus): void {
    try {
      this.onStatus(s);
    } catch {
      // a status listener's failure must not stop the subscriber
    }
  }

  /** Open the socket and subscribe every spec; resolves with a promise of the close reason. */
  private async connectOnce(): Promise<{ closed: Promise<DwnError> }> {
    const ws = new WebSocket(this.url, { handshakeTimeout: this.timeoutMs });
    this.ws = ws;
    this.handlers.clear();
    let idleTimer: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => ws.terminate(), this.idleTimeoutMs);
    };
    const closed = new Promise<DwnError>((resolve) => {
      ws.once('close', () => {
        clearTimeout(idleTimer);
        resolve(new DwnError('E_DWN_UNREACHABLE', `lost the subscription connection to the DWN at ${this.endpoint}`));
      });
    });
    await new Promise<void>((resolve, reject) => {
      let opened = false;
      // one listener for the socket's whole life: an 'error' without a listener would crash us
      ws.on('error', (e: Error) => {
        if (opened) {
          ws.terminate();
          return;
        }
        reject(new DwnError('E_DWN_UNREACHABLE', `cannot reach the DWN at ${this.endpoint} (${(e as NodeJS.ErrnoException).code ?? e.message})`, { cause: e }));
      });
      ws.once('close', () => {
        if (!opened) reject(new DwnError('E_DWN_UNREACHABLE', `cannot reach the DWN at ${this.endpoint} (connection closed)`));
      });
      ws.once('open', () => {
        opened = true;
        resolve();
      });
    });
    touch();
    ws.on('ping', touch);
    ws.on('message', (raw) => {
      touch();
      this.onFrame(raw.toString());
    });
    for (const spec of this.specs) {
      const subscriptionId = randomUUID();
      const message = await spec.build();
      this.handlers.set(subscriptionId, spec.onEvent);
      let reply: DwnReply;
      try {
        reply = await this.request({
          jsonrpc: '2.0',
          id: randomUUID(),
          method: 'rpc.subscribe.dwn.processMessage',
          params: { target: spec.target, message },
          subscription: { id: subscriptionId },
        });
      } catch (e) {
        this.handlers.delete(subscriptionId);
        if (e instanceof DwnError && e.code === 'E_DWN_REJECTED') {
          this.safeStatus({ type: 'rejected', key: spec.key, error: e });
          continue;
        }
        throw e;
      }
      if (reply.status.code < 200 || reply.status.code >= 300) {
        this.handlers.delete(subscriptionId);
        this.safeStatus({
          type: 'rejected',
          key: spec.key,
          error: new DwnError('E_DWN_REJECTED', `subscription to ${spec.key} refused by the DWN at ${this.endpoint}: ${reply.status.code} ${reply.status.detail}`, {
            status: reply.status.code,
            detail: reply.status.detail,
          }),
        });
      }
    }
    return { closed };
  }

  private request(body: { id: string } & Record<string, unknown>): Promise<DwnReply> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new DwnError('E_DWN_UNREACHABLE', `not connected to the DWN at ${this.endpoint}`));
    }
    return new Promise<DwnReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(body.id);
        reject(new DwnError('E_DWN_TIMEOUT', `the DWN at ${this.endpoint} did not answer a subscription within ${this.timeoutMs} ms`));
        ws.terminate();
      }, this.timeoutMs);
      this.pending.set(body.id, { resolve, reject, timer });
      ws.send(JSON.stringify(body), (err) => {
        if (err) {
          clearTimeout(timer);
          this.pending.delete(body.id);
          reject(new DwnError('E_DWN_UNREACHABLE', `cannot send to the DWN at ${this.endpoint}: ${err.message}`));
        }
      });
    });
  }

  private onFrame(text: string): void {
    let msg: { id?: unknown; result?: { reply?: DwnReply; event?: RecordEvent }; error?: { code?: number; message?: string } };
    try {
      msg = JSON.parse(text) as typeof msg;
    } catch {
      return; // not JSON: ignore
    }
    if (typeof msg !== 'object' || msg === null || typeof msg.id !== 'string') return;
    const pending = this.pending.get(msg.id);
    if (pending) {
      this.pending.delete(msg.id);
      clearTimeout(pending.timer);
      if (msg.error) {
        pending.reject(new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} refused a subscription: ${msg.error.message ?? 'error'}`, { detail: msg.error.message }));
      } else if (msg.result?.reply && typeof msg.result.reply.status?.code === 'number') {
        pending.resolve(msg.result.reply);
      } else {
        pending.reject(new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} sent a subscription reply without a status`));
      }
      return;
    }
    const handler = this.handlers.get(msg.id);
    const event = msg.result?.event;
    if (handler && event && typeof event === 'object' && event.message) {
      try {
        handler(event);
      } catch {
        // a handler's failure must not break the connection
      }
    }
  }

  private failPending(e: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(e);
      this.pending.delete(id);
    }
  }
}
