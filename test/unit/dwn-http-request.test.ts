/**
 * The DWN client's HTTP: node:http, not fetch (whose second HTTP stack, undici with its
 * WebAssembly parser, costs a daemon about 10 MiB); each request has a connection of its own
 * (a kept-alive one outlived an address change); a refused connection keeps its code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { httpPost, MAX_REPLY_BYTES } from '../../src/dwn/http-request.js';

function listen(s: Server): Promise<string> {
  return new Promise((resolve) => s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as { port: number }).port}`)));
}

test('a DWN request does not load Node fetch (undici)', () => {
  const rpc = pathToFileURL(new URL('../../src/dwn/rpc-http.js', import.meta.url).pathname).href;
  const code = `
    import { createServer } from 'node:http';
    const { DwnHttpRpc } = await import(${JSON.stringify(rpc)});
    const s = createServer((q, r) => r.end(JSON.stringify({ jsonrpc: '2.0', id: '1', result: { reply: { status: { code: 200, detail: 'OK' } } } })));
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    const out = await new DwnHttpRpc('http://127.0.0.1:' + s.address().port).processMessage('t', {});
    s.close();
    process.stdout.write(JSON.stringify({ code: out.reply.status.code, undici: process.moduleLoadList.filter((m) => /undici/.test(m)) }));
    process.exit(0);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const o = JSON.parse(r.stdout) as { code: number; undici: string[] };
  assert.equal(o.code, 200);
  assert.deepEqual(o.undici, [], 'undici was loaded');
});

test('httpPost: each request on a connection of its own (a server that kills reused ones answers all); headers and body both ways', async () => {
  const served = new WeakSet<Socket>();
  let connections = 0;
  const s = createServer((req, res) => {
    if (served.has(req.socket)) return void req.socket.destroy(); // a reused connection is killed, unanswered
    served.add(req.socket);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('x-echo', String(req.headers['x-test']));
      res.end(Buffer.concat(chunks));
    });
  });
  s.on('connection', () => connections++);
  const url = await listen(s);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await httpPost(url, { 'x-test': `t${i}` }, new Uint8Array([1, 2, i]), AbortSignal.timeout(5000));
      assert.equal(r.status, 200);
      assert.equal(r.header('x-echo'), `t${i}`);
      assert.equal(r.header('X-Missing'), null);
      assert.deepEqual([...r.body], [1, 2, i]);
    }
    assert.equal(connections, 3, 'a connection was reused');
  } finally {
    s.closeAllConnections();
    s.close();
  }
});

test('httpPost: a refused connection rejects with its code; an abort with AbortError', async () => {
  const s = createServer(() => undefined); // never answers
  const url = await listen(s);
  try {
    await assert.rejects(httpPost(url, {}, undefined, AbortSignal.timeout(200)), (e: Error) => e.name === 'AbortError' || e.name === 'TimeoutError');
  } finally {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  await assert.rejects(httpPost(url, {}, undefined, AbortSignal.timeout(2000)), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
});

test('a reply larger than MAX_REPLY_BYTES is an error, not memory', async () => {
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let sent = 0;
  const s = createServer((_q, r) => {
    const more = (): void => {
      while (sent < MAX_REPLY_BYTES + 4 * chunk.length) {
        sent += chunk.length;
        if (!r.write(chunk)) return void r.once('drain', more);
      }
      r.end();
    };
    more();
  });
  const url = await listen(s);
  try {
    await assert.rejects(httpPost(url, {}, undefined, AbortSignal.timeout(30_000)), (e: NodeJS.ErrnoException) => e.code === 'EMSGSIZE');
  } finally {
    s.closeAllConnections();
    s.close();
  }
});
