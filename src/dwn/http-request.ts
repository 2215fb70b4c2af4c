/**
 * One HTTP(S) request through node:http — what the DWN client sends every message with, and the
 * embedded DWN's health probe. Not fetch:
 * Node's fetch (undici) compiles its HTTP parser to WebAssembly and loads a second HTTP stack,
 * about 10 MiB more resident memory in a daemon that idles most of the time. Each request has a
 * connection of its own (see below), so none meets a connection the server or an address change
 * has killed.
 */
import { request as plainRequest, type IncomingHttpHeaders } from 'node:http';
import { request as tlsRequest } from 'node:https';

/** The largest reply taken in (a DWN's answer to one query page is far smaller): more is an error, not memory. */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;

export interface HttpReply {
  status: number;
  /** A response header's value (joined with ", " when repeated), or null. */
  header(name: string): string | null;
  body: Uint8Array;
}

/** POST `body` to `url` (httpRequest). */
export function httpPost(url: string, headers: Record<string, string>, body: Uint8Array | undefined, signal: AbortSignal): Promise<HttpReply> {
  return httpRequest('POST', url, headers, body, signal);
}

/** GET `url` (httpRequest). */
export function httpGet(url: string, signal: AbortSignal): Promise<HttpReply> {
  return httpRequest('GET', url, {}, undefined, signal);
}

/**
 * Send one request; resolves with the whole reply. Rejects with the socket's error (its
 * `code`, e.g. ECONNREFUSED) or, once `signal` aborts, an error named AbortError.
 */
export function httpRequest(method: 'GET' | 'POST', url: string, headers: Record<string, string>, body: Uint8Array | undefined, signal: AbortSignal): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const send = u.protocol === 'https:' ? tlsRequest : plainRequest;
    const length = method === 'POST' ? { 'content-length': String(body?.length ?? 0) } : {};
    // a connection per request: a kept-alive one outlives a change of this host's address (its
    // source address gone, a request on it waits out its whole timeout), and a DWN request is rare
    const req = send(u, { method, headers: { ...headers, ...length }, signal, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_REPLY_BYTES) return void req.destroy(Object.assign(new Error(`the reply is larger than ${MAX_REPLY_BYTES} bytes`), { code: 'EMSGSIZE' }));
        chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        if (!res.complete) return reject(Object.assign(new Error('the connection closed before the reply was complete'), { code: 'ECONNRESET' }));
        resolve({ status: res.statusCode ?? 0, header: (name) => headerValue(res.headers, name), body: new Uint8Array(Buffer.concat(chunks)) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | null {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(', ') : v;
}
