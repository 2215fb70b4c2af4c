/**
 * The DWN transport against small loopback servers that misbehave on purpose: rate limits,
 * hanging requests, errors, unreachable ports; and the reconnect delays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { DwnError } from '../../src/errors.js';
import { backoffDelay } from '../../src/util/backoff.js';
import { DwnHttpRpc, expectOk, headerJson, normalizeEndpoint, parseRetryAfter } from '../../src/dwn/rpc-http.js';
import { DwnSubscriber, type SubscriberStatus } from '../../src/dwn/subscriber.js';
import { WebSocketServer, type WebSocket as WsSocket } from 'ws';

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const ok = { jsonrpc: '2.0', id: '1', result: { reply: { status: { code: 200, detail: 'OK' }, entries: [] } } };

test('backoff: 1 s doubling to 30 s, jittered downwards by at most half', () => {
  assert.equal(backoffDelay(0, {}, () => 0), 1000);
  assert.equal(backoffDelay(1, {}, () => 0), 2000);
  assert.equal(backoffDelay(5, {}, () => 0), 30_000);
  assert.equal(backoffDelay(50, {}, () => 0), 30_000);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (n, r) => {
      const d = backoffDelay(n, {}, () => r);
      const base = Math.min(30_000, 1000 * 2 ** n);
      assert.ok(d >= base / 2 - 1 && d <= base, `${n} ${r} ${d}`);
    }),
  );
});

test('Retry-After: seconds or an HTTP date', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  const now = Date.parse('2025-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now), 5000);
});

test('the request rides in the dwn-request header, data in the body; non-ASCII is escaped', async () => {
  let seen: { header: unknown; body: Buffer; type: string | undefined } | undefined;
  const s = await serve((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen = { header: JSON.parse(String(req.headers['dwn-request'])), body: Buffer.concat(chunks), type: req.headers['content-type'] };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(ok));
    });
  });
  try {
    const rpc = new DwnHttpRpc(s.url);
    const r = await rpc.processMessage('did:jwk:x', { descriptor: { note: 'grüße' } }, new Uint8Array([1, 2, 3]));
    assert.equal(r.reply.status.code, 200);
    const h = seen!.header as { method: string; params: { target: string; message: { descriptor: { note: string } } } };
    assert.equal(h.method, 'dwn.processMessage');
    assert.equal(h.params.target, 'did:jwk:x');
    assert.equal(h.params.message.descriptor.note, 'grüße');
    assert.deepEqual([...seen!.body], [1, 2, 3]);
    assert.equal(seen!.type, 'application/octet-stream');
    assert.ok(!/[^\x20-\x7e]/.test(headerJson({ a: 'grüße\u2028' })));
  } finally {
    await s.close();
  }
});

test('HTTP 429 is honoured with Retry-After, then the call succeeds', async () => {
  const times: number[] = [];
  const s = await serve((_req, res) => {
    times.push(Date.now());
    if (times.length < 3) {
      res.statusCode = 429;
      res.setHeader('retry-after', '1');
      res.end('slow down');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(ok));
  });
  try {
    const r = await new DwnHttpRpc(s.url, { timeoutMs: 10_000 }).processMessage('t', {});
    assert.equal(r.reply.status.code, 200);
    assert.equal(times.length, 3);
    assert.ok(times[1]! - times[0]! >= 950, `waited ${times[1]! - times[0]!} ms`);
  } finally {
    await s.close();
  }
});

test('429 beyond the deadline: E_DWN_REJECTED with status 429', async () => {
  const s = await serve((_req, res) => {
    res.statusCode = 429;
    res.setHeader('retry-after', '60');
    res.end();
  });
  try {
    await assert.rejects(new DwnHttpRpc(s.url, { timeoutMs: 2000 }).processMessage('t', {}), (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_REJECTED' && e.status === 429);
  } finally {
    await s.close();
  }
});

test('a hanging server times out with E_DWN_TIMEOUT naming the endpoint', async () => {
  const s = await serve(() => {
    /* never answers, like an unknown JSON-RPC method */
  });
  try {
    const t0 = Date.now();
    await assert.rejects(new DwnHttpRpc(s.url, { timeoutMs: 300 }).processMessage('t', {}), (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_TIMEOUT' && e.message.includes(s.url));
    assert.ok(Date.now() - t0 < 2000);
  } finally {
    await s.close();
  }
});

test('unreachable endpoint: E_DWN_UNREACHABLE naming it; JSON-RPC errors and bad replies are E_DWN_REJECTED', async () => {
  const s = await serve((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/') {
      res.statusCode = 500;
      res.end(JSON.stringify({ jsonrpc: '2.0', id: '1', error: { code: -32603, message: 'boom' } }));
    }
  });
  const url = s.url;
  try {
    await assert.rejects(new DwnHttpRpc(url).processMessage('t', {}), (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_REJECTED' && e.status === 500 && e.detail === 'boom');
  } finally {
    await s.close();
  }
  await assert.rejects(new DwnHttpRpc(url, { timeoutMs: 2000 }).processMessage('t', {}), (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_UNREACHABLE' && e.message.includes(url) && /ECONNREFUSED/.test(e.message));
  const garbage = await serve((_req, res) => res.end('<html>'));
  try {
    await assert.rejects(new DwnHttpRpc(garbage.url).processMessage('t', {}), (e: unknown) => e instanceof DwnError && e.code === 'E_DWN_REJECTED');
  } finally {
    await garbage.close();
  }
});

test('expectOk maps a DWN status to E_DWN_REJECTED with status and detail', () => {
  assert.doesNotThrow(() => expectOk({ status: { code: 202, detail: 'Accepted' } }, 'http://x', 'w'));
  assert.throws(
    () => expectOk({ status: { code: 401, detail: 'ProtocolAuthorizationActionNotAllowed: nope\nmore' } }, 'http://x', 'writing network'),
    (e: unknown) => e instanceof DwnError && e.status === 401 && e.detail!.startsWith('ProtocolAuthorization') && !e.message.includes('\n') && e.message.includes('http://x'),
  );
});

test('endpoints: http(s) only, normalised', () => {
  assert.equal(normalizeEndpoint('http://127.0.0.1:8787/'), 'http://127.0.0.1:8787');
  assert.throws(() => normalizeEndpoint('ftp://x'), /http or https/);
  assert.throws(() => normalizeEndpoint('not a url'), /invalid DWN endpoint/);
});

test('property: Retry-After never throws and never goes negative', () => {
  fc.assert(
    fc.property(fc.option(fc.string(), { nil: null }), (v) => {
      const ms = parseRetryAfter(v);
      assert.ok(ms === undefined || (Number.isFinite(ms) && ms >= 0));
    }),
  );
});

test('property: any reply body becomes a reply or a DwnError, never anything else', async () => {
  let body: Buffer = Buffer.alloc(0);
  let status = 200;
  let header: string | undefined;
  const s = await serve((_req, res) => {
    res.statusCode = status;
    if (header !== undefined) res.setHeader('dwn-response', header);
    res.end(body);
  });
  try {
    const rpc = new DwnHttpRpc(s.url, { timeoutMs: 2000 });
    const replyish = fc.oneof(
      fc.jsonValue(),
      fc.record({ jsonrpc: fc.constant('2.0'), id: fc.string(), result: fc.record({ reply: fc.record({ status: fc.record({ code: fc.integer(), detail: fc.string() }) }) }) }),
      fc.record({ error: fc.record({ code: fc.integer(), message: fc.string() }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 64 }), replyish.map((v) => new TextEncoder().encode(JSON.stringify(v)))), fc.constantFrom(200, 400, 500), fc.boolean(), async (b, st, inHeader) => {
        body = Buffer.from(b);
        status = st;
        header = inHeader ? Buffer.from(b).toString('latin1').replace(/[^\x20-\x7e]/g, '') : undefined;
        try {
          const r = await rpc.processMessage('t', {});
          assert.equal(typeof r.reply.status.code, 'number');
        } catch (e) {
          assert.ok(e instanceof DwnError, String(e));
        }
      }),
      { numRuns: 150 },
    );
  } finally {
    await s.close();
  }
});

test('subscriber: subscribes, delivers events, ignores garbage, reconnects and re-subscribes with fresh messages', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  const requests: { method: string; subscription?: { id: string }; params?: { message: { n: number } } }[] = [];
  let connections = 0;
  wss.on('connection', (sock: WsSocket) => {
    connections++;
    const mine = connections;
    sock.on('message', (raw) => {
      const req = JSON.parse(raw.toString()) as { id: string; method: string; subscription: { id: string }; params: { message: { n: number } } };
      requests.push(req);
      sock.send(JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { reply: { status: { code: 200, detail: 'OK' } } } }));
      sock.send('not json');
      sock.send(JSON.stringify({ id: 'unknown-subscription', result: { event: { message: {} } } }));
      sock.send(JSON.stringify({ jsonrpc: '2.0', id: req.subscription.id, result: { event: { message: { descriptor: { protocolPath: `p${mine}` } } } } }));
      if (mine === 1) setTimeout(() => sock.close(), 50);
    });
  });
  const events: string[] = [];
  const statuses: SubscriberStatus[] = [];
  let built = 0;
  const sub = new DwnSubscriber(
    url,
    [{ key: 'k', target: 'did:x', build: async () => ({ n: ++built }) as never, onEvent: (e) => events.push((e.message.descriptor as { protocolPath: string }).protocolPath) }],
    (st) => statuses.push(st),
    { backoff: { initialMs: 50, maxMs: 100 }, timeoutMs: 2000 },
  );
  sub.start();
  try {
    const deadline = Date.now() + 5000;
    while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(events, ['p1', 'p2']);
    assert.deepEqual(statuses.filter((x) => x.type === 'up').map((x) => (x as { reconnect: boolean }).reconnect), [false, true]);
    assert.ok(statuses.some((x) => x.type === 'down'));
    assert.equal(requests.length, 2);
    assert.equal(requests[0]!.method, 'rpc.subscribe.dwn.processMessage');
    assert.notEqual(requests[0]!.subscription!.id, requests[1]!.subscription!.id);
    assert.deepEqual(requests.map((r) => r.params!.message.n), [1, 2]); // a fresh message per subscribe
    assert.equal(sub.connected, true);
  } finally {
    await sub.stop();
    await new Promise<void>((r) => wss.close(() => r()));
  }
});

test('subscriber: a server that never answers a subscribe times out and is retried', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  let connections = 0;
  wss.on('connection', () => connections++);
  const statuses: SubscriberStatus[] = [];
  const sub = new DwnSubscriber(url, [{ key: 'k', target: 't', build: async () => ({}) as never, onEvent: () => {} }], (st) => statuses.push(st), {
    backoff: { initialMs: 20, maxMs: 40 },
    timeoutMs: 150,
  });
  sub.start();
  try {
    const deadline = Date.now() + 3000;
    while (connections < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(connections >= 2, `reconnected ${connections} times`);
    const down = statuses.find((x) => x.type === 'down') as { error: DwnError } | undefined;
    assert.equal(down?.error.code, 'E_DWN_TIMEOUT');
    assert.equal(sub.connected, false);
  } finally {
    await sub.stop();
    await new Promise<void>((r) => wss.close(() => r()));
  }
});
