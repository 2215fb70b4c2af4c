/**
 * A man-in-the-middle DWN operator for security tests and benchmarks: an HTTP + WebSocket proxy
 * in front of a real dwn-server that forwards everything and lets a test watch and lie.
 *
 *   const proxy = await DwnProxy.start({ upstream: dwn.url });      // clients use proxy.url
 *   proxy.requests()      every JSON-RPC request seen (method, target, interface/method,
 *                         protocolPath, filter, author DID from the JWS kid, time), bounded
 *   proxy.counters()      totals by author, by DWN method, by author and method
 *   proxy.captured(pred)  RecordsQuery entries / RecordsRead replies / subscription events the
 *                         server really sent (message + data bytes), bounded, for replay later
 *   proxy.onReply(hook)   rewrite an HTTP reply before the client gets it (see replayHook,
 *                         filterEntriesHook; `forAuthor` makes a hook per client)
 *   proxy.refuse(p)       answer HTTP requests matching a predicate with a 503 without forwarding
 *                         them (a DWN that stopped taking writes)
 *   proxy.dropEvents(p)   drop subscription events (WebSocket) matching a predicate
 *   proxy.rewriteEvents(f) send a subscription event as `f` rewrites it (undefined: unchanged)
 *   proxy.close()         closes the listener, every connection and the upstream agent
 *
 * Run as a program it serves in a network namespace (see `main` at the bottom): optionally it
 * starts the upstream dwn-server itself, prints one JSON line `{"event":"ready",…}`, and answers
 * a line `counters <id>` on stdin with `{"event":"counters","id":…,…}`.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { headerJson, type DwnReply } from '../../src/dwn/rpc-http.js';
import { DWN_MAX_HTTP_HEADER_SIZE, startDwnServer, type RunningDwnServer } from '../../src/dwn/server.js';

/** One JSON-RPC request as the proxy saw it. */
export interface ProxyRequest {
  /** Sequence number in this proxy (1, 2, …). */
  seq: number;
  /** Wall-clock ms when it arrived. */
  at: number;
  transport: 'http' | 'ws';
  /** JSON-RPC id. */
  rpcId: string | undefined;
  /** JSON-RPC method, e.g. 'dwn.processMessage' or 'rpc.subscribe.dwn.processMessage'. */
  method: string;
  /** params.target (the tenant DID). */
  target: string | undefined;
  /** descriptor.interface + descriptor.method, e.g. 'RecordsQuery' ('' when not a DWN message). */
  dwnMethod: string;
  protocolPath: string | undefined;
  /** The record a RecordsWrite/Read/Delete is about (recordId or filter.recordId). */
  recordId: string | undefined;
  filter: Record<string, unknown> | undefined;
  /** Signer's DID: the JWS kid of authorization.signature without its fragment. */
  author: string | undefined;
  /** Bytes of record data sent with the request. */
  dataBytes: number;
  /** The signed message itself. */
  message: Record<string, unknown> | undefined;
  /** Subscription id of an rpc.subscribe request. */
  subscriptionId: string | undefined;
}

/** One reply (after rewriting) as the client received it. */
export interface ProxyReplyRecord {
  request: ProxyRequest;
  at: number;
  httpStatus: number | undefined;
  /** DWN status code of the reply, when there is one. */
  status: number | undefined;
  entries: number | undefined;
  rewritten: boolean;
}

export interface ReplyContext {
  request: ProxyRequest;
  /** The DWN reply (a copy: hooks may change it or return a new one). */
  reply: DwnReply;
  /** Record data sent along with a RecordsRead reply. */
  data: Uint8Array | undefined;
}

export interface ReplyRewrite {
  reply: DwnReply;
  /** Data to send with the reply (RecordsRead); omitted keeps the current data. */
  data?: Uint8Array;
}

export type ReplyHook = (ctx: ReplyContext) => ReplyRewrite | undefined | void | Promise<ReplyRewrite | undefined | void>;

/** Something the server really sent (before any hook), kept for replay. */
export interface Capture {
  seq: number;
  at: number;
  kind: 'query-entry' | 'read' | 'event';
  request: ProxyRequest;
  recordId: string | undefined;
  protocolPath: string | undefined;
  /** descriptor.messageTimestamp of the record version. */
  messageTimestamp: string | undefined;
  /** The RecordsWrite message (for 'query-entry' the whole entry, encodedData included). */
  message: Record<string, unknown>;
  /** initialWrite, when the server sent one. */
  initialWrite: Record<string, unknown> | undefined;
  /** Record data: the body of a RecordsRead, or the entry's encodedData decoded. */
  data: Uint8Array | undefined;
  /** 'read': the whole reply; 'event': the whole event. */
  raw: unknown;
}

export interface EventContext {
  /** The rpc.subscribe request that opened the subscription. */
  request: ProxyRequest;
  event: { message?: Record<string, unknown>; initialWrite?: Record<string, unknown> } & Record<string, unknown>;
}

export interface ProxyCounters {
  total: number;
  byAuthor: Record<string, number>;
  byMethod: Record<string, number>;
  /** author → dwnMethod → count */
  byAuthorMethod: Record<string, Record<string, number>>;
  /** Subscription events passed to clients / dropped. */
  eventsForwarded: number;
  eventsDropped: number;
}

export interface DwnProxyOptions {
  /** Base URL of the real dwn-server, e.g. http://127.0.0.1:8787 */
  upstream: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: a free one). */
  port?: number;
  /** Requests and replies kept in the log (default 20,000 each). */
  maxLog?: number;
  /** Captures kept (default 5,000); the oldest go first. */
  maxCaptures?: number;
  /** Record data bytes kept per capture (default 1 MiB; longer data is not captured). */
  maxCaptureBytes?: number;
}

const UNKNOWN_AUTHOR = '(unsigned)';
/** Hop-by-hop headers and those recomputed here. */
const SKIP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'upgrade', 'proxy-connection']);

class Ring<T> {
  private items: T[] = [];
  constructor(private readonly max: number) {}
  push(x: T): void {
    this.items.push(x);
    if (this.items.length > this.max * 1.25) this.items = this.items.slice(-this.max);
  }
  all(): T[] {
    return this.items.length > this.max ? this.items.slice(-this.max) : [...this.items];
  }
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

/** The signer's DID of a DWN message: kid of the first signature's protected header, before '#'. */
export function authorOf(message: unknown): string | undefined {
  const sig = asObject(asObject(asObject(message)?.authorization)?.signature);
  const first = asObject((sig?.signatures as unknown[] | undefined)?.[0]);
  const prot = str(first?.protected);
  if (!prot) return undefined;
  try {
    const header = JSON.parse(Buffer.from(prot, 'base64url').toString('utf8')) as { kid?: unknown };
    return typeof header.kid === 'string' ? header.kid.split('#')[0] : undefined;
  } catch {
    return undefined;
  }
}

/** What the request says about itself (without recording it). */
export function describeRequest(rpc: unknown, transport: 'http' | 'ws', dataBytes: number): Omit<ProxyRequest, 'seq' | 'at'> {
  const o = asObject(rpc) ?? {};
  const params = asObject(o.params);
  const message = asObject(params?.message);
  const d = asObject(message?.descriptor);
  const filter = asObject(d?.filter);
  const rpcId = o.id;
  return {
    transport,
    rpcId: typeof rpcId === 'string' || typeof rpcId === 'number' ? String(rpcId) : undefined,
    method: str(o.method) ?? '',
    target: str(params?.target),
    dwnMethod: d ? `${str(d.interface) ?? ''}${str(d.method) ?? ''}` : '',
    protocolPath: str(d?.protocolPath) ?? str(filter?.protocolPath),
    recordId: str(message?.recordId) ?? str(d?.recordId) ?? str(filter?.recordId),
    filter,
    author: message ? authorOf(message) : undefined,
    dataBytes,
    message,
    subscriptionId: str(asObject(o.subscription)?.id),
  };
}

function bump(m: Record<string, number>, k: string): void {
  m[k] = (m[k] ?? 0) + 1;
}

/** counters(b) − counters(a): what happened between two snapshots. */
export function diffCounters(a: ProxyCounters, b: ProxyCounters): ProxyCounters {
  const sub = (x: Record<string, number>, y: Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(y)) {
      const d = v - (x[k] ?? 0);
      if (d !== 0) out[k] = d;
    }
    return out;
  };
  const byAuthorMethod: Record<string, Record<string, number>> = {};
  for (const [k, v] of Object.entries(b.byAuthorMethod)) {
    const d = sub(a.byAuthorMethod[k] ?? {}, v);
    if (Object.keys(d).length > 0) byAuthorMethod[k] = d;
  }
  return {
    total: b.total - a.total,
    byAuthor: sub(a.byAuthor, b.byAuthor),
    byMethod: sub(a.byMethod, b.byMethod),
    byAuthorMethod,
    eventsForwarded: b.eventsForwarded - a.eventsForwarded,
    eventsDropped: b.eventsDropped - a.eventsDropped,
  };
}

interface WsPair {
  client: WebSocket;
  upstream: WebSocket;
  /** rpc id → request, for the reply. */
  pending: Map<string, ProxyRequest>;
  /** subscription id → the request that opened it. */
  subscriptions: Map<string, ProxyRequest>;
}

export class DwnProxy {
  readonly upstream: string;
  readonly host: string;
  readonly port: number;
  /** Base URL for clients. */
  readonly url: string;

  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly agent: http.Agent;
  private readonly upstreamUrl: URL;
  private readonly reqLog: Ring<ProxyRequest>;
  private readonly replyLog: Ring<ProxyReplyRecord>;
  private readonly captures: Ring<Capture>;
  private readonly maxCaptureBytes: number;
  private readonly hooks: ReplyHook[] = [];
  private readonly eventDrops: ((e: EventContext) => boolean)[] = [];
  private readonly refusals: ((r: ProxyRequest) => boolean)[] = [];
  private readonly eventRewrites: ((e: EventContext) => EventContext['event'] | undefined)[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<WsPair>();
  private seq = 0;
  private captureSeq = 0;
  private counts: ProxyCounters = { total: 0, byAuthor: {}, byMethod: {}, byAuthorMethod: {}, eventsForwarded: 0, eventsDropped: 0 };
  private closing: Promise<void> | undefined;

  private constructor(opts: DwnProxyOptions, server: http.Server, wss: WebSocketServer, port: number) {
    this.upstream = opts.upstream.replace(/\/$/, '');
    this.upstreamUrl = new URL(this.upstream);
    this.host = opts.host ?? '127.0.0.1';
    this.port = port;
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host === '::' ? '::1' : this.host;
    this.url = `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
    this.server = server;
    this.wss = wss;
    // a connection per request: a kept-alive one that the server closes just as it is reused
    // fails, and under load (100 daemons on 2 cores) that race is not rare
    this.agent = new http.Agent({ keepAlive: false, maxSockets: 64 });
    this.reqLog = new Ring(opts.maxLog ?? 20_000);
    this.replyLog = new Ring(opts.maxLog ?? 20_000);
    this.captures = new Ring(opts.maxCaptures ?? 5000);
    this.maxCaptureBytes = opts.maxCaptureBytes ?? 1 << 20;
  }

  static async start(opts: DwnProxyOptions): Promise<DwnProxy> {
    // Node's default limit (16 KiB) is too small: DWN messages travel in a header.
    const server = http.createServer({ maxHeaderSize: DWN_MAX_HTTP_HEADER_SIZE });
    const wss = new WebSocketServer({ noServer: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as AddressInfo).port;
    const proxy = new DwnProxy(opts, server, wss, port);
    proxy.attach();
    return proxy;
  }

  private attach(): void {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.server.on('request', (req, res) => {
      this.onHttp(req, res).catch((e: Error) => {
        const what = (() => {
          try {
            const m = JSON.parse(String(req.headers['dwn-request'] ?? '{}')).params?.message?.descriptor;
            return m ? ` (${m.interface}${m.method} ${m.protocolPath ?? ''})` : '';
          } catch {
            return '';
          }
        })();
        process.stderr.write(`dwn-proxy: 502 for ${req.method} ${req.url}${what}: ${e.message}\n`);
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`dwn-proxy: ${e.message}`);
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (client) => this.onWs(client, req));
    });
  }

  // ---- observation -------------------------------------------------------------------------

  /** Requests seen so far (the newest `maxLog`), oldest first, optionally filtered. */
  requests(pred?: (r: ProxyRequest) => boolean): ProxyRequest[] {
    const all = this.reqLog.all();
    return pred ? all.filter(pred) : all;
  }

  /** Replies sent so far (the newest `maxLog`), oldest first. */
  replies(pred?: (r: ProxyReplyRecord) => boolean): ProxyReplyRecord[] {
    const all = this.replyLog.all();
    return pred ? all.filter(pred) : all;
  }

  /** A snapshot of the counters (never reset: use diffCounters between two snapshots). */
  counters(): ProxyCounters {
    return clone(this.counts);
  }

  /** Captures (oldest first) matching `pred`. */
  captured(pred?: (c: Capture) => boolean): Capture[] {
    const all = this.captures.all();
    return pred ? all.filter(pred) : all;
  }

  // ---- interference ------------------------------------------------------------------------

  /** Adds a reply hook (run in order for every HTTP DWN reply); returns a function removing it. */
  onReply(hook: ReplyHook): () => void {
    this.hooks.push(hook);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  /** Answers HTTP requests for which `pred` is true with a 503, not forwarded; returns a function removing it. */
  refuse(pred: (r: ProxyRequest) => boolean): () => void {
    this.refusals.push(pred);
    return () => {
      const i = this.refusals.indexOf(pred);
      if (i >= 0) this.refusals.splice(i, 1);
    };
  }

  /** Drops subscription events for which `pred` is true; returns a function removing it. */
  dropEvents(pred: (e: EventContext) => boolean): () => void {
    this.eventDrops.push(pred);
    return () => {
      const i = this.eventDrops.indexOf(pred);
      if (i >= 0) this.eventDrops.splice(i, 1);
    };
  }

  /** Send subscription events as `f` rewrites them (it returns undefined to leave one as it is). */
  rewriteEvents(f: (e: EventContext) => EventContext['event'] | undefined): () => void {
    this.eventRewrites.push(f);
    return () => {
      const i = this.eventRewrites.indexOf(f);
      if (i >= 0) this.eventRewrites.splice(i, 1);
    };
  }

  /** Removes every hook and event filter. */
  clearHooks(): void {
    this.hooks.length = 0;
    this.eventDrops.length = 0;
    this.eventRewrites.length = 0;
  }

  /** Terminates every proxied WebSocket (clients see the connection drop and reconnect). */
  dropWebSockets(): void {
    for (const p of this.pairs) {
      p.client.terminate();
      p.upstream.terminate();
    }
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private record(rpc: unknown, transport: 'http' | 'ws', dataBytes: number): ProxyRequest {
    const r: ProxyRequest = { seq: ++this.seq, at: Date.now(), ...describeRequest(rpc, transport, dataBytes) };
    this.reqLog.push(r);
    const author = r.author ?? UNKNOWN_AUTHOR;
    const m = r.dwnMethod || r.method || '?';
    this.counts.total++;
    bump(this.counts.byAuthor, author);
    bump(this.counts.byMethod, m);
    bump((this.counts.byAuthorMethod[author] ??= {}), m);
    return r;
  }

  private capture(c: Omit<Capture, 'seq' | 'at'>): void {
    this.captures.push({ seq: ++this.captureSeq, at: Date.now(), ...c });
  }

  private captureReply(request: ProxyRequest, reply: DwnReply, data: Uint8Array | undefined): void {
    if (request.dwnMethod === 'RecordsQuery' && Array.isArray(reply.entries)) {
      for (const e of reply.entries) {
        const entry = asObject(e);
        if (!entry) continue;
        const d = asObject(entry.descriptor);
        const enc = str(entry.encodedData);
        this.capture({
          kind: 'query-entry',
          request,
          recordId: str(entry.recordId),
          protocolPath: str(d?.protocolPath),
          messageTimestamp: str(d?.messageTimestamp),
          message: clone(entry),
          initialWrite: asObject(entry.initialWrite) ? clone(asObject(entry.initialWrite)) : undefined,
          data: enc !== undefined ? new Uint8Array(Buffer.from(enc, 'base64url')) : undefined,
          raw: undefined,
        });
      }
    } else if (request.dwnMethod === 'RecordsRead') {
      const entry = asObject(reply.entry);
      const rw = asObject(entry?.recordsWrite);
      if (!rw) return;
      const d = asObject(rw.descriptor);
      this.capture({
        kind: 'read',
        request,
        recordId: str(rw.recordId),
        protocolPath: str(d?.protocolPath),
        messageTimestamp: str(d?.messageTimestamp),
        message: clone(rw),
        initialWrite: asObject(entry?.initialWrite) ? clone(asObject(entry?.initialWrite)) : undefined,
        data: data && data.length <= this.maxCaptureBytes ? new Uint8Array(data) : undefined,
        raw: clone(reply),
      });
    }
  }

  private async onHttp(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readAll(req);
    const headerRaw = req.headers['dwn-request'];
    let request: ProxyRequest | undefined;
    if (req.method === 'POST' && typeof headerRaw === 'string') {
      try {
        request = this.record(JSON.parse(headerRaw), 'http', body.length);
      } catch {
        // not JSON: the server will say so; forward as is
      }
    }
    if (request && this.refusals.some((p) => p(request!))) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('dwn-proxy: refused (injected)');
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!SKIP_HEADERS.has(k) && v !== undefined) headers[k] = v;
    headers.host = this.upstreamUrl.host;
    if (body.length > 0) headers['content-length'] = String(body.length);
    const up = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const r = http.request(
        {
          protocol: this.upstreamUrl.protocol,
          hostname: this.upstreamUrl.hostname.replace(/^\[|\]$/g, ''),
          port: this.upstreamUrl.port || 80,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
          maxHeaderSize: DWN_MAX_HTTP_HEADER_SIZE,
        },
        resolve,
      );
      r.once('error', reject);
      r.end(body.length > 0 ? body : undefined);
    });
    let upBody = await readAll(up);
    const outHeaders: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(up.headers)) if (!SKIP_HEADERS.has(k) && v !== undefined) outHeaders[k] = v;
    const status = up.statusCode ?? 502;
    if (request) {
      const out = await this.rewrite(request, up, upBody, status);
      if (out) {
        upBody = out.body;
        if (out.header !== undefined) outHeaders['dwn-response'] = out.header;
      }
    }
    outHeaders['content-length'] = String(upBody.length);
    res.writeHead(status, outHeaders);
    res.end(upBody);
  }

  /** Captures the reply, runs the hooks; returns the new body (and header) when one changed it. */
  private async rewrite(request: ProxyRequest, up: http.IncomingMessage, body: Buffer, httpStatus: number): Promise<{ body: Buffer; header?: string } | undefined> {
    const headerReply = up.headers['dwn-response'];
    let rpc: Record<string, unknown> | undefined;
    try {
      rpc = asObject(JSON.parse(typeof headerReply === 'string' ? headerReply : body.toString('utf8')));
    } catch {
      rpc = undefined;
    }
    const reply = asObject(asObject(rpc?.result)?.reply) as DwnReply | undefined;
    const inHeader = typeof headerReply === 'string';
    const data = inHeader ? new Uint8Array(body) : undefined;
    const log: ProxyReplyRecord = {
      request,
      at: Date.now(),
      httpStatus,
      status: reply?.status?.code,
      entries: Array.isArray(reply?.entries) ? reply.entries.length : undefined,
      rewritten: false,
    };
    this.replyLog.push(log);
    if (!rpc || !reply) return undefined;
    this.captureReply(request, reply, data);
    if (this.hooks.length === 0) return undefined;
    let cur: ReplyRewrite = { reply: clone(reply), ...(data ? { data } : {}) };
    let changed = false;
    for (const hook of [...this.hooks]) {
      const r = await hook({ request, reply: cur.reply, data: cur.data });
      if (r) {
        cur = { reply: r.reply, ...((r.data ?? cur.data) ? { data: r.data ?? cur.data } : {}) };
        changed = true;
      }
    }
    if (!changed) return undefined;
    log.rewritten = true;
    log.status = cur.reply.status?.code;
    log.entries = Array.isArray(cur.reply.entries) ? cur.reply.entries.length : undefined;
    const newRpc = { ...rpc, result: { ...asObject(rpc.result), reply: cur.reply } };
    if (inHeader) return { body: Buffer.from(cur.data ?? new Uint8Array()), header: headerJson(newRpc) };
    return { body: Buffer.from(JSON.stringify(newRpc)) };
  }

  // ---- WebSocket ---------------------------------------------------------------------------

  private onWs(client: WebSocket, req: http.IncomingMessage): void {
    const u = new URL(req.url ?? '/', this.upstream);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    const upstream = new WebSocket(u.toString(), { maxPayload: 100 * 1024 * 1024 });
    const pair: WsPair = { client, upstream, pending: new Map(), subscriptions: new Map() };
    this.pairs.add(pair);
    const queued: RawData[] = [];
    const end = (): void => {
      this.pairs.delete(pair);
      client.terminate();
      upstream.terminate();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    upstream.on('open', () => {
      for (const m of queued.splice(0)) upstream.send(m);
    });
    // The server's keep-alive pings reach the client (whose idle timer counts on them).
    upstream.on('ping', (d: Buffer) => {
      if (client.readyState === WebSocket.OPEN) client.ping(d);
    });
    client.on('message', (raw: RawData) => {
      const text = rawText(raw);
      try {
        const rpc = JSON.parse(text) as unknown;
        const r = this.record(rpc, 'ws', 0);
        if (r.rpcId !== undefined) pair.pending.set(r.rpcId, r);
        if (r.subscriptionId !== undefined) pair.subscriptions.set(r.subscriptionId, r);
      } catch {
        // not JSON: forwarded as is
      }
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else queued.push(Buffer.from(text));
    });
    upstream.on('message', (raw: RawData) => {
      let text = rawText(raw);
      let msg: Record<string, unknown> | undefined;
      try {
        msg = asObject(JSON.parse(text));
      } catch {
        msg = undefined;
      }
      const id = msg && (typeof msg.id === 'string' || typeof msg.id === 'number') ? String(msg.id) : undefined;
      const result = asObject(msg?.result);
      if (id !== undefined && pair.pending.has(id)) {
        const request = pair.pending.get(id)!;
        pair.pending.delete(id);
        const reply = asObject(result?.reply) as DwnReply | undefined;
        this.replyLog.push({ request, at: Date.now(), httpStatus: undefined, status: reply?.status?.code, entries: undefined, rewritten: false });
      } else if (id !== undefined && result?.event && pair.subscriptions.has(id)) {
        const request = pair.subscriptions.get(id)!;
        const event = asObject(result.event) as EventContext['event'];
        const message = asObject(event.message);
        const d = asObject(message?.descriptor);
        this.capture({
          kind: 'event',
          request,
          recordId: str(message?.recordId),
          protocolPath: str(d?.protocolPath),
          messageTimestamp: str(d?.messageTimestamp),
          message: clone(message ?? {}),
          initialWrite: asObject(event.initialWrite) ? clone(asObject(event.initialWrite)) : undefined,
          data: undefined,
          raw: clone(event),
        });
        if (this.eventDrops.some((p) => safePred(p, { request, event }))) {
          this.counts.eventsDropped++;
          return;
        }
        this.counts.eventsForwarded++;
        for (const f of this.eventRewrites) {
          const next = f({ request, event });
          if (next !== undefined) {
            text = JSON.stringify({ ...msg, result: { ...result, event: next } });
            break;
          }
        }
      }
      if (client.readyState === WebSocket.OPEN) client.send(text);
    });
  }

  // ---- life cycle --------------------------------------------------------------------------

  /** Stops listening and closes every connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.clearHooks();
      for (const p of this.pairs) {
        p.client.terminate();
        p.upstream.terminate();
      }
      this.pairs.clear();
      const closed = new Promise<void>((r) => this.server.close(() => r()));
      this.server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
      this.wss.close();
      this.agent.destroy();
      await closed;
    })();
    return this.closing;
  }
}

function safePred(p: (e: EventContext) => boolean, e: EventContext): boolean {
  try {
    return p(e);
  } catch {
    return false;
  }
}

function rawText(raw: RawData): string {
  if (Buffer.isBuffer(raw)) return raw.toString('utf8');
  if (Array.isArray(raw)) return Buffer.concat(raw).toString('utf8');
  return Buffer.from(raw).toString('utf8');
}

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

// ---- ready-made hooks ------------------------------------------------------------------------

export interface HookScope {
  /** Only for requests signed by this DID (one client lied to, the others not). */
  forAuthor?: string;
  /** Only for requests matching this. */
  match?: (r: ProxyRequest) => boolean;
}

function inScope(s: HookScope, r: ProxyRequest): boolean {
  if (s.forAuthor !== undefined && r.author !== s.forAuthor) return false;
  return s.match ? s.match(r) : true;
}

/**
 * REPLAY: serve captured (older) versions instead of the current ones. In a RecordsQuery reply
 * every entry whose recordId has a capture is replaced by the newest capture of that record
 * (records with a capture but absent from the reply are added); a RecordsRead of a captured
 * record gets the captured message and data.
 */
export function replayHook(captures: Capture[], scope: HookScope = {}): ReplyHook {
  const byRecord = new Map<string, Capture>();
  for (const c of captures) if (c.recordId !== undefined) byRecord.set(c.recordId, c);
  return ({ request, reply, data }) => {
    if (!inScope(scope, request)) return undefined;
    if (request.dwnMethod === 'RecordsQuery' && Array.isArray(reply.entries)) {
      const seen = new Set<string>();
      const entries = reply.entries.map((e) => {
        const id = str(asObject(e)?.recordId);
        const c = id !== undefined ? byRecord.get(id) : undefined;
        if (!id || !c) return e;
        seen.add(id);
        return queryEntryOf(c);
      });
      const wanted = (c: Capture): boolean => c.protocolPath === undefined || request.protocolPath === undefined || c.protocolPath === request.protocolPath;
      for (const [id, c] of byRecord) if (!seen.has(id) && wanted(c)) entries.push(queryEntryOf(c));
      return { reply: { ...reply, entries } };
    }
    if (request.dwnMethod === 'RecordsRead' && request.recordId !== undefined) {
      const c = byRecord.get(request.recordId);
      if (!c) return undefined;
      const { encodedData: _enc, initialWrite: _iw, ...rw } = c.message as Record<string, unknown> & { encodedData?: unknown; initialWrite?: unknown };
      const entry: Record<string, unknown> = { recordsWrite: rw };
      if (c.initialWrite) entry.initialWrite = c.initialWrite;
      return { reply: { ...reply, status: { code: 200, detail: 'OK' }, entry }, data: c.data ?? data ?? new Uint8Array() };
    }
    return undefined;
  };
}

/** The capture as a RecordsQuery reply entry (encodedData and initialWrite as the server sends them). */
function queryEntryOf(c: Capture): Record<string, unknown> {
  if (c.kind === 'query-entry') return clone(c.message);
  const e: Record<string, unknown> = clone(c.message);
  if (c.initialWrite) e.initialWrite = clone(c.initialWrite);
  if (c.data && c.data.length <= 30_000) e.encodedData = Buffer.from(c.data).toString('base64url');
  return e;
}

/**
 * FILTER: drop RecordsQuery entries for which `drop(entry)` is true, and answer a RecordsRead of
 * such a record with 404 — the client never learns it exists.
 */
export function filterEntriesHook(drop: (entry: Record<string, unknown>, request: ProxyRequest) => boolean, scope: HookScope = {}): ReplyHook {
  return ({ request, reply }) => {
    if (!inScope(scope, request)) return undefined;
    if (request.dwnMethod === 'RecordsQuery' && Array.isArray(reply.entries)) {
      const entries = reply.entries.filter((e) => !drop(asObject(e) ?? {}, request));
      if (entries.length === reply.entries.length) return undefined;
      return { reply: { ...reply, entries } };
    }
    if (request.dwnMethod === 'RecordsRead') {
      const rw = asObject(asObject(reply.entry)?.recordsWrite);
      if (rw && drop(rw, request)) return { reply: { status: { code: 404, detail: 'Not Found' } }, data: new Uint8Array() };
    }
    return undefined;
  };
}

// ---- as a program (inside a lab namespace) ---------------------------------------------------

/**
 *   node dist/test/helpers/dwn-proxy.js --listen HOST:PORT (--upstream URL | --serve DATA_DIR [--serve-port P])
 *
 * With --serve it first starts a dwn-server on 127.0.0.1:P (default 8788) over DATA_DIR.
 * Prints `{"event":"ready","url","upstream","dwnPid"}`; stdin `counters ID` prints
 * `{"event":"counters","id":ID,"counters":{…}}` (spawn it with stdin piped); exits on SIGTERM/SIGINT.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:0' },
      upstream: { type: 'string' },
      serve: { type: 'string' },
      'serve-port': { type: 'string', default: '8788' },
    },
  });
  const i = values.listen.lastIndexOf(':');
  const host = values.listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(values.listen.slice(i + 1));
  let dwn: RunningDwnServer | undefined;
  if (values.serve) dwn = await startDwnServer({ dataDir: values.serve, port: Number(values['serve-port']), host: '127.0.0.1' });
  const upstream = dwn?.url ?? values.upstream;
  if (!upstream) throw new Error('give --upstream URL or --serve DATA_DIR');
  const proxy = await DwnProxy.start({ upstream, host, port, maxCaptures: 200 });
  const out = (o: unknown): void => void process.stdout.write(JSON.stringify(o) + '\n');
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await proxy.close();
    await dwn?.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  let buf = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      const [cmd, id] = line.split(/\s+/);
      if (cmd === 'counters') out({ event: 'counters', id, counters: proxy.counters() });
    }
  });
  if (dwn) void dwn.exited.then(() => void stop());
  out({ event: 'ready', url: proxy.url, port: proxy.port, upstream, dwnPid: dwn?.pid });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`dwn-proxy: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
