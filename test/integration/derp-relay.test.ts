/**
 * A real DERP relay on 127.0.0.1 with real clients: two over the HTTP upgrade, one over
 * WebSocket, plus hand-rolled raw sockets for misbehaving clients.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { request } from 'node:http';
import { once } from 'node:events';
import { startRelayServer, type RelayServer } from '../../src/engine/relay/server.js';
import { RelayClient, type RelayClientOptions } from '../../src/engine/relay/client.js';
import { generateBoxKeyPair, type BoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { FrameParser, FrameType, PeerGoneReason, decodeFrame, encodeFrame, frame, type DerpFrame } from '../../src/engine/relay/frames.js';
import { openServerInfo, parseLoginChallenge, sealClientInfo, sealServerInfo } from '../../src/engine/relay/login.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function waitFor(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Received {
  src: string;
  data: string;
}

/** A RelayClient that records what it receives. */
function client(url: string, keys: BoxKeyPair, extra?: Partial<RelayClientOptions>) {
  const got: Received[] = [];
  const gone: { peer: string; reason: number }[] = [];
  const c = new RelayClient({
    url,
    privateKey: keys.privateKey,
    onPacket: (src, p) => got.push({ src: hex(src), data: Buffer.from(p).toString('latin1') }),
    onPeerGone: (peer, reason) => gone.push({ peer: hex(peer), reason }),
    backoffMinMs: 30,
    backoffMaxMs: 200,
    ...extra,
  });
  return { c, got, gone, keys };
}

/** A hand-written DERP client on a raw socket: HTTP upgrade by hand, then frames. */
async function rawClient(port: number, opts: { login: boolean; keys?: BoxKeyPair; legacy?: boolean; clientInfo?: Uint8Array }) {
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  sock.write('GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n');
  const frames: DerpFrame[] = [];
  const parser = new FrameParser();
  let head = Buffer.alloc(0);
  let headers = '';
  const closed = once(sock, 'close');
  sock.on('error', () => undefined);
  sock.on('data', (chunk: Buffer) => {
    if (!headers) {
      head = Buffer.concat([head, chunk]);
      const i = head.indexOf('\r\n\r\n');
      if (i === -1) return;
      headers = head.subarray(0, i).toString('latin1');
      chunk = head.subarray(i + 4);
    }
    parser.push(chunk, (t, p) => frames.push(decodeFrame(t, Buffer.from(p))));
  });
  await waitFor(() => frames.some((f) => f.type === 'server-key'), 'server key');
  const sk = frames.find((f) => f.type === 'server-key') as { key: Uint8Array; extra?: Uint8Array };
  const serverKey = sk.key;
  const challenge = parseLoginChallenge(sk.extra);
  const keys = opts.keys ?? generateBoxKeyPair();
  let clientInfo: Uint8Array | null = null;
  if (opts.clientInfo) {
    // A captured login frame, replayed as is.
    sock.write(opts.clientInfo);
  } else if (opts.login) {
    const info = opts.legacy || challenge === null ? {} : { serverNonce: challenge };
    clientInfo = frame(FrameType.ClientInfo, keys.publicKey, sealClientInfo(keys.privateKey, serverKey, info));
    sock.write(clientInfo);
    await waitFor(() => frames.some((f) => f.type === 'server-info'), 'server info');
  }
  return { sock, frames, headers, serverKey, challenge, keys, closed, clientInfo };
}

async function withServer(fn: (s: RelayServer) => Promise<void>, opts?: Parameters<typeof startRelayServer>[0]): Promise<void> {
  const s = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1', ...opts });
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
}

describe('DERP relay: real server, real clients on 127.0.0.1', () => {
  test('A→B arrives at B with source A and never at C (upgrade, upgrade, WebSocket); absent key → PeerGone(not-here)', async () => {
    await withServer(async (s) => {
      const url = s.address().url;
      const A = client(url, generateBoxKeyPair());
      const B = client(url, generateBoxKeyPair());
      const C = client(url.replace('http://', 'ws://'), generateBoxKeyPair());
      try {
        await Promise.all([A.c.waitConnected(3000), B.c.waitConnected(3000), C.c.waitConnected(3000)]);
        assert.equal(hex(A.c.serverPublicKey!), hex(s.publicKey));
        assert.equal(hex(C.c.serverPublicKey!), hex(s.publicKey));
        assert.equal(s.stats().websocketAccepts, 1);

        const sizes = [0, 1, 100, 1420, 65536];
        for (const n of sizes) assert.equal(A.c.send(B.keys.publicKey, Buffer.alloc(n, n % 251)), true);
        await waitFor(() => B.got.length === sizes.length, 'B to get every packet');
        assert.deepEqual(
          B.got.map((g) => [g.src, g.data.length]),
          sizes.map((n) => [hex(A.keys.publicKey), n]),
        );
        assert.equal(B.got[4]!.data, Buffer.alloc(65536, 65536 % 251).toString('latin1'));

        // The WebSocket client sends to and receives from the upgrade clients too.
        C.c.send(B.keys.publicKey, Buffer.from('from C'));
        B.c.send(C.keys.publicKey, Buffer.from('to C'));
        await waitFor(() => C.got.length === 1 && B.got.length === sizes.length + 1, 'C↔B');
        assert.deepEqual(C.got, [{ src: hex(B.keys.publicKey), data: 'to C' }]);
        assert.deepEqual(B.got.at(-1), { src: hex(C.keys.publicKey), data: 'from C' });
        // Nothing A sent to B reached C: C's only packet is the one from B.

        const absent = generateBoxKeyPair().publicKey;
        A.c.send(absent, Buffer.from('anyone?'));
        await waitFor(() => A.gone.length === 1, 'PeerGone at A');
        assert.deepEqual(A.gone, [{ peer: hex(absent), reason: PeerGoneReason.NotHere }]);
        assert.equal(s.stats().droppedUnknownDest, 1);

        // DERP ping/pong round trip through the server.
        const rtt = await C.c.ping(2000);
        assert.ok(rtt >= 0 && rtt < 2000);
      } finally {
        await Promise.all([A.c.stop(), B.c.stop(), C.c.stop()]);
      }
    });
  });

  test('HTTP: 426 without upgrade; 101 carries Derp-Version and Derp-Public-Key; server key frame follows', async () => {
    await withServer(async (s) => {
      const status = await new Promise<number>((resolve, reject) => {
        request({ host: '127.0.0.1', port: s.address().httpPort, path: '/derp' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
          .on('error', reject)
          .end();
      });
      assert.equal(status, 426);
      const r = await rawClient(s.address().httpPort, { login: true });
      assert.match(r.headers, /^HTTP\/1\.1 101 /);
      assert.match(r.headers, /\r\nDerp-Version: 2\r\n/i);
      assert.ok(r.headers.toLowerCase().includes(`derp-public-key: ${hex(s.publicKey)}`));
      assert.equal(hex(r.serverKey), hex(s.publicKey));
      const info = r.frames.find((f) => f.type === 'server-info') as { sealed: Uint8Array };
      assert.equal(openServerInfo(r.keys.privateKey, s.publicKey, info.sealed).version, 2);
      r.sock.destroy();
    });
  });

  test('a client sending garbage or an oversized frame is disconnected; the others keep working', async () => {
    await withServer(async (s) => {
      const url = s.address().url;
      const port = s.address().httpPort;
      const A = client(url, generateBoxKeyPair());
      const B = client(url.replace('http://', 'ws://'), generateBoxKeyPair());
      try {
        await Promise.all([A.c.waitConnected(3000), B.c.waitConnected(3000)]);

        // Logged in, then an HTTP request line where a frame header should be: type 'G',
        // length "ET /" = 1.1 GB → refused as oversized.
        const garbage = await rawClient(port, { login: true });
        garbage.sock.write('GET / HTTP/1.1\r\n\r\n');
        await garbage.closed;

        // Logged in, then a SendPacket header declaring 1 MiB.
        const big = await rawClient(port, { login: true });
        big.sock.write(Buffer.from([FrameType.SendPacket, 0x00, 0x10, 0x00, 0x00]));
        await big.closed;

        // Logged in, then a NotePreferred of the wrong size (malformed frame).
        const bad = await rawClient(port, { login: true });
        bad.sock.write(Buffer.from([FrameType.NotePreferred, 0, 0, 0, 2, 1, 1]));
        await bad.closed;

        // Not logged in: the first frame is not ClientInfo.
        const early = await rawClient(port, { login: false });
        early.sock.write(encodeFrame({ type: 'keep-alive' }));
        await early.closed;

        // A ClientInfo that does not open with the claimed key.
        const liar = await rawClient(port, { login: false });
        const someoneElse = generateBoxKeyPair();
        liar.sock.write(frame(FrameType.ClientInfo, someoneElse.publicKey, sealClientInfo(liar.keys.privateKey, liar.serverKey)));
        await liar.closed;

        const st = s.stats();
        assert.equal(st.oversizeFrames, 2);
        assert.equal(st.malformedFrames, 1);
        assert.equal(st.loginFailures, 2);

        // A and B never noticed.
        A.c.send(B.keys.publicKey, Buffer.from('still here'));
        await waitFor(() => B.got.length === 1, 'B after the bad clients');
        assert.deepEqual(B.got, [{ src: hex(A.keys.publicKey), data: 'still here' }]);
        assert.equal(A.c.stats().disconnects, 0);
        assert.equal(B.c.stats().disconnects, 0);
        assert.equal(A.c.state, 'connected');
      } finally {
        await Promise.all([A.c.stop(), B.c.stop()]);
      }
    });
  });

  test('unknown frame types are skipped, pings answered, NotePreferred accepted', async () => {
    await withServer(async (s) => {
      const r = await rawClient(s.address().httpPort, { login: true });
      r.sock.write(Buffer.concat([frame(0x7e, Buffer.from('future')), frame(FrameType.NotePreferred, Buffer.from([1])), frame(FrameType.Ping, Buffer.from('12345678'))]));
      await waitFor(() => r.frames.some((f) => f.type === 'pong'), 'pong');
      const pong = r.frames.find((f) => f.type === 'pong') as { data: Uint8Array };
      assert.equal(Buffer.from(pong.data).toString(), '12345678');
      assert.equal(s.stats().unknownFrames, 1);
      assert.equal(s.stats().homeClients, 1);
      r.sock.destroy();
      await r.closed;
      await waitFor(() => s.stats().homeClients === 0, 'home count to drop');
    });
  });

  test('server sends KeepAlive frames at its keepalive interval', async () => {
    await withServer(
      async (s) => {
        const r = await rawClient(s.address().httpPort, { login: true });
        await waitFor(() => r.frames.filter((f) => f.type === 'keep-alive').length >= 2, 'two keepalives', 3000);
        r.sock.destroy();
      },
      { httpPort: 0, stunPort: null, host: '127.0.0.1', keepAliveMs: 100 },
    );
  });

  test('PeerGone(disconnected) goes to the peers a leaving client had sent to', async () => {
    await withServer(async (s) => {
      const url = s.address().url;
      const A = client(url, generateBoxKeyPair());
      const B = client(url, generateBoxKeyPair());
      const C = client(url.replace('http://', 'ws://'), generateBoxKeyPair());
      try {
        await Promise.all([A.c.waitConnected(3000), B.c.waitConnected(3000), C.c.waitConnected(3000)]);
        A.c.send(B.keys.publicKey, Buffer.from('x'));
        await waitFor(() => B.got.length === 1, 'B to hear from A');
        await A.c.stop();
        await waitFor(() => B.gone.length === 1, 'PeerGone at B');
        assert.deepEqual(B.gone, [{ peer: hex(A.keys.publicKey), reason: PeerGoneReason.Disconnected }]);
        await new Promise((r) => setTimeout(r, 100));
        assert.deepEqual(C.gone, [], 'C never heard from A, so gets no PeerGone');
        assert.equal(s.stats().currentClients, 2);
      } finally {
        await Promise.all([A.c.stop(), B.c.stop(), C.c.stop()]);
      }
    });
  });

  test('a slow reader: its queue stays bounded, the excess is dropped and counted', async () => {
    await withServer(
      async (s) => {
        const A = client(s.address().url, generateBoxKeyPair(), { maxBufferedBytes: 64 << 20 });
        const slow = await rawClient(s.address().httpPort, { login: true });
        slow.sock.pause();
        try {
          await A.c.waitConnected(3000);
          const p = Buffer.alloc(60_000, 7);
          for (let i = 0; i < 400; i++) A.c.send(slow.keys.publicKey, p);
          await waitFor(() => s.stats().droppedQueueFull > 0, 'queue drops', 10_000);
          const st = s.stats();
          assert.ok(st.packetsDropped >= st.droppedQueueFull);
          assert.equal(A.c.state, 'connected');
        } finally {
          slow.sock.destroy();
          await A.c.stop();
        }
      },
      { httpPort: 0, stunPort: null, host: '127.0.0.1', sendQueueDepth: 4, writeTimeoutMs: 60_000 },
    );
  });

  test('server stop → clients reconnect when a server comes back on the same port', async () => {
    const key = generateBoxKeyPair().privateKey;
    let s = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1', serverKey: key });
    const port = s.address().httpPort;
    const url = s.address().url;
    const A = client(url, generateBoxKeyPair(), { serverPublicKey: s.publicKey });
    const B = client(url.replace('http://', 'ws://'), generateBoxKeyPair());
    const states: string[] = [];
    const A2 = client(url, generateBoxKeyPair(), { onStateChange: (st) => states.push(st) });
    try {
      await Promise.all([A.c.waitConnected(3000), B.c.waitConnected(3000), A2.c.waitConnected(3000)]);
      await s.stop();
      await waitFor(() => A.c.state !== 'connected' && B.c.state !== 'connected', 'clients to notice the stop');
      await new Promise((r) => setTimeout(r, 150)); // a few failed attempts against the closed port
      s = await startRelayServer({ httpPort: port, stunPort: null, host: '127.0.0.1', serverKey: key });
      await Promise.all([A.c.waitConnected(5000), B.c.waitConnected(5000)]);
      A.c.send(B.keys.publicKey, Buffer.from('after restart'));
      await waitFor(() => B.got.length === 1, 'packet after restart');
      assert.deepEqual(B.got, [{ src: hex(A.keys.publicKey), data: 'after restart' }]);
      assert.equal(A.c.stats().connects, 2);
      assert.ok(A.c.stats().connectFailures >= 1, 'attempts against the stopped server failed and were retried');
      assert.deepEqual(states.slice(0, 3), ['connecting', 'connected', 'backoff']);
    } finally {
      await Promise.all([A.c.stop(), B.c.stop(), A2.c.stop()]);
      await s.stop();
    }
  });

  test('a server that goes silent is detected by the unanswered ping; the client reconnects', async () => {
    // A fake relay that logs the client in and then ignores everything.
    const serverKeys = generateBoxKeyPair();
    const accepted: Socket[] = [];
    const fake = createServer((sock) => {
      accepted.push(sock);
      sock.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      let upgraded = false;
      const parser = new FrameParser();
      sock.on('data', (chunk: Buffer) => {
        if (!upgraded) {
          buf = Buffer.concat([buf, chunk]);
          if (buf.indexOf('\r\n\r\n') === -1) return;
          upgraded = true;
          sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nDerp-Version: 2\r\nDerp-Public-Key: ${hex(serverKeys.publicKey)}\r\n\r\n`);
          sock.write(encodeFrame({ type: 'server-key', key: serverKeys.publicKey }));
          chunk = buf.subarray(buf.indexOf('\r\n\r\n') + 4);
        }
        parser.push(chunk, (t, p) => {
          const f = decodeFrame(t, p);
          if (f.type === 'client-info') sock.write(frame(FrameType.ServerInfo, sealServerInfo(serverKeys.privateKey, f.key)));
        });
      });
    });
    fake.listen(0, '127.0.0.1');
    await once(fake, 'listening');
    const port = (fake.address() as { port: number }).port;
    const A = client(`http://127.0.0.1:${port}/derp`, generateBoxKeyPair(), { keepAliveMs: 100, pongTimeoutMs: 150 });
    try {
      await A.c.waitConnected(3000);
      await waitFor(() => A.c.stats().deadConnections >= 1, 'dead connection detection', 3000);
      assert.ok(A.c.stats().pingsSent >= 1);
      await waitFor(() => A.c.stats().connects >= 2, 'reconnect after the dead connection', 3000);
    } finally {
      await A.c.stop();
      for (const sck of accepted) sck.destroy();
      fake.close();
    }
  });

  test('idle close after idleTimeoutMs without sends, reopened by the next send', async () => {
    await withServer(async (s) => {
      const url = s.address().url;
      const A = client(url, generateBoxKeyPair(), { idleTimeoutMs: 200 });
      const B = client(url, generateBoxKeyPair());
      try {
        await Promise.all([A.c.waitConnected(3000), B.c.waitConnected(3000)]);
        await waitFor(() => A.c.state === 'idle', 'idle close', 3000);
        assert.equal(A.c.stats().idleCloses, 1);
        await waitFor(() => s.stats().currentClients === 1, 'server to see A leave');
        assert.equal(A.c.send(B.keys.publicKey, Buffer.from('wake up')), true);
        await waitFor(() => B.got.length === 1, 'packet sent while idle', 3000);
        assert.equal(B.got[0]!.data, 'wake up');
        assert.equal(A.c.stats().connects, 2);
      } finally {
        await Promise.all([A.c.stop(), B.c.stop()]);
      }
    });
  });
});
