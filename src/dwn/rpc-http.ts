/**
 * JSON-RPC over HTTP as @web5/dwn-server expects it: `POST /` with the request in
 * the `dwn-request` header and record data as the raw body; the reply comes back in the JSON
 * body, or in the `dwn-response` header when the body carries record data (RecordsRead).
 *
 * Every call has a timeout (an unknown method hangs the server's side forever), HTTP 429 is
 * honoured with Retry-After, and every failure becomes a DwnError naming the endpoint.
 */
import { randomUUID } from 'node:crypto';
import { DwnError, UsageError } from '../errors.js';
import { backoffDelay } from '../util/backoff.js';
import { httpPost, type HttpReply } from './http-request.js';

export interface DwnStatus {
  code: number;
  detail: string;
}

/** The DWN's reply to one message; fields beyond `status` depend on the method. */
export interface DwnReply {
  status: DwnStatus;
  entries?: unknown[];
  cursor?: unknown;
  record?: unknown;
  entry?: unknown;
  [key: string]: unknown;
}

export interface HttpRpcOptions {
  /** Per-call timeout, including retries after 429. Default 10 s. */
  timeoutMs?: number;
  /** How many times a 429 is retried before giving up. Default 4. */
  maxRateLimitRetries?: number;
  /** Longest single wait honoured from Retry-After. Default 30 s. */
  maxRetryAfterMs?: number;
}

export interface RpcResult {
  reply: DwnReply;
  /** Record data when the server streamed it in the body (RecordsRead). */
  data?: Uint8Array;
}

const NON_ASCII = /[\u007f-\uffff]/g;

/** JSON that is safe in an HTTP header: every non-ASCII character escaped. */
export function headerJson(value: unknown): string {
  return JSON.stringify(value).replace(NON_ASCII, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Milliseconds to wait from a Retry-After value (seconds or an HTTP date); undefined if absent/bad. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Describe a network-level failure (its code, e.g. ECONNREFUSED, or its cause's). */
function networkReason(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return e instanceof Error ? e.message : String(e);
}

export class DwnHttpRpc {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly maxRetryAfterMs: number;

  constructor(endpoint: string, opts: HttpRpcOptions = {}) {
    this.endpoint = normalizeEndpoint(endpoint);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxRetries = opts.maxRateLimitRetries ?? 4;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 30_000;
  }

  /**
   * Send one DWN message to `target`'s tenant; `data` is the record data for RecordsWrite.
   * `timeoutMs` replaces the client's for this call (a prune of a large subtree takes longer).
   */
  async processMessage(target: string, message: unknown, data?: Uint8Array, timeoutMs = this.timeoutMs): Promise<RpcResult> {
    const deadline = Date.now() + timeoutMs;
    const request = { jsonrpc: '2.0', id: randomUUID(), method: 'dwn.processMessage', params: { target, message } };
    const header = headerJson(request);
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw this.timeout(timeoutMs, message);
      let res: HttpReply;
      try {
        res = await httpPost(this.endpoint, { 'dwn-request': header, ...(data ? { 'content-type': 'application/octet-stream' } : {}) }, data, AbortSignal.timeout(remaining));
      } catch (e) {
        if ((e as Error).name === 'TimeoutError' || (e as Error).name === 'AbortError') throw this.timeout(timeoutMs, message);
        throw new DwnError('E_DWN_UNREACHABLE', `cannot reach the DWN at ${this.endpoint} (${networkReason(e)})`, {
          cause: e,
          hint: 'check the endpoint and that the DWN server is running',
        });
      }
      if (res.status === 429) {
        const wait = Math.min(parseRetryAfter(res.header('retry-after')) ?? backoffDelay(attempt, { initialMs: 1000, maxMs: Infinity, jitter: 0 }), this.maxRetryAfterMs);
        if (attempt >= this.maxRetries || Date.now() + wait > deadline) {
          throw new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} is rate limiting requests (HTTP 429)`, {
            status: 429,
            detail: 'Too Many Requests',
            hint: 'try again later',
          });
        }
        await sleep(wait + Math.random() * 100);
        continue;
      }
      return this.decode(res);
    }
  }

  private decode(res: HttpReply): RpcResult {
    const body = res.body;
    const headerReply = res.header('dwn-response');
    let rpc: unknown;
    let data: Uint8Array | undefined;
    try {
      if (headerReply !== null) {
        rpc = JSON.parse(headerReply);
        data = body;
      } else {
        rpc = JSON.parse(Buffer.from(body).toString('utf8'));
      }
    } catch {
      throw new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} sent an unreadable reply (HTTP ${res.status})`, {
        status: res.status,
        detail: Buffer.from(body.subarray(0, 200)).toString('utf8'),
      });
    }
    const o = (typeof rpc === 'object' && rpc !== null ? rpc : {}) as {
      error?: { code?: number; message?: string };
      result?: { reply?: DwnReply };
    };
    if (o.error) {
      throw new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} refused the request: ${o.error.message ?? 'error'} (JSON-RPC ${o.error.code ?? '?'})`, {
        status: res.status,
        detail: o.error.message,
      });
    }
    const reply = o.result?.reply;
    if (!reply || typeof reply.status?.code !== 'number') {
      throw new DwnError('E_DWN_REJECTED', `the DWN at ${this.endpoint} sent a reply without a status (HTTP ${res.status})`, {
        status: res.status,
      });
    }
    return data === undefined ? { reply } : { reply, data };
  }

  private timeout(timeoutMs: number, message: unknown): DwnError {
    return new DwnError('E_DWN_TIMEOUT', `the DWN at ${this.endpoint} did not answer ${messageKind(message)} within ${timeoutMs} ms`, {
      hint: 'check the endpoint and that the DWN server is running',
    });
  }
}

/** "a RecordsWrite" (what the message asks for), or "a request" when it does not say. */
function messageKind(message: unknown): string {
  const d = (message as { descriptor?: { interface?: unknown; method?: unknown } } | null)?.descriptor;
  return typeof d?.interface === 'string' && typeof d.method === 'string' && /^[A-Za-z]{1,32}$/.test(d.interface + d.method) ? `a ${d.interface}${d.method}` : 'a request';
}

/** `http://host:port` without a trailing slash; throws for anything that is not http(s). */
export function normalizeEndpoint(endpoint: string): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new UsageError(`invalid DWN endpoint "${endpoint}"`, { hint: 'use a URL such as http://127.0.0.1:8787' });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new UsageError(`invalid DWN endpoint "${endpoint}" (http or https only)`);
  }
  return u.toString().replace(/\/$/, '');
}

/** Throw a DwnError unless the reply's status is 2xx. */
export function expectOk(reply: DwnReply, endpoint: string, what: string): void {
  const { code, detail } = reply.status;
  if (code >= 200 && code < 300) return;
  throw new DwnError('E_DWN_REJECTED', `${what} refused by the DWN at ${endpoint}: ${code} ${firstLine(detail)}`, {
    status: code,
    detail,
  });
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0]!.slice(0, 300);
}
