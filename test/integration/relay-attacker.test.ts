/**
 * The relay server on 127.0.0.1 against an attacker: replayed logins, churn of throwaway keys,
 * floods of idle unauthenticated connections, oversized frames before the login, senders over
 * their rate. The attacker speaks DERP by hand (test/helpers/derp-raw.ts); the victims are real
 * clients or raw ones.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { startRelayServer, type RelayServer, type RelayServerOptions } from '../../src/engine/relay/server.js';
import { RelayClient } from '../../src/engine/relay/client.js';
import { generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { FrameType, PeerGoneReason } from '../../src/engine/relay/frames.js';
import { rawClient, waitFor, type RawClient } from '../helpers/derp-raw.js';
import { childRelay } from '../helpers/relay-child.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

async function withServer(fn: (s: RelayServer) => Promise<void>, opts?: Partial<RelayServerOptions>): Promise<void> {
  const s = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1', ...opts });
  try {
    await fn(s);
  } finally {
    await s.stop();
  }
}

describe('relay under attack', () => {
  test('a captured login replayed on a new connection is refused: nothing for the victim reaches the replayer, the victim keeps receiving', async () => {
    await withServer(async (s) => {
      const port = s.address().httpPort;
      const victim = await rawClient(port, { login: true });
      assert.ok(victim.challenge, 'a meshd relay sends a login challenge');
      assert.ok(victim.clientInfo);
      const sender = await rawClient(port, { login: true });
      sender.send(victim.keys.publicKey, 'before');
      await waitFor(() => victim.packetsFrom(hex(sender.keys.publicKey)).length === 1, 'first packet');

      // The attacker replays the victim's ClientInfo frame byte for byte on its own connection.
      const attacker = await rawClient(port, { login: false, replay: victim.clientInfo });
      await attacker.closed;
      assert.equal(s.stats().loginReplays, 1);
      assert.ok(!attacker.frames.some((f) => f.type === 'server-info' || f.type === 'recv-packet'));

      sender.send(victim.keys.publicKey, 'after');
      await waitFor(() => victim.packetsFrom(hex(sender.keys.publicKey)).length === 2, 'second packet');
      assert.deepEqual(victim.packetsFrom(hex(sender.keys.publicKey)), ['before', 'after']);
      assert.equal(victim.isClosed, false);

      // A login without the challenge (a standard DERP client) is refused by default...
      const legacy = await rawClient(port, { login: true, legacy: true });
      await legacy.closed;
      assert.equal(s.stats().legacyLoginsRefused, 1);
      for (const c of [victim, sender]) c.sock.destroy();
    });
    // ...and accepted when the relay opts in (counted).
    await withServer(
      async (s) => {
        const legacy = await rawClient(s.address().httpPort, { login: true, legacy: true });
        assert.ok(legacy.frames.some((f) => f.type === 'server-info'));
        assert.equal(s.stats().legacyLogins, 1);
        legacy.sock.destroy();
      },
      { allowLegacyLogin: true },
    );
  });

  test('a real meshd client logs in with the challenge; a replay of a real client login is refused', async () => {
    await withServer(async (s) => {
      const k = generateBoxKeyPair();
      const c = new RelayClient({ url: s.address().url, privateKey: k.privateKey });
      try {
        await c.waitConnected(3000);
        assert.equal(s.stats().loginReplays + s.stats().legacyLoginsRefused + s.stats().loginFailures, 0);
      } finally {
        await c.stop();
      }
    });
  });

  test('300 throwaway keys send once to a long-lived client and leave; a source reconnecting 3 times → 3 of 3 PeerGone; relay RSS grows < 5 MB', async () => {
    const relay = await childRelay(['--insecure-http']);
    try {
      const port = relay.port;
      const long = await rawClient(port, { login: true });
      const peerGones = (key: Uint8Array): number =>
        long.frames.filter((f) => f.type === 'peer-gone' && f.reason === PeerGoneReason.Disconnected && hex(f.key) === hex(key)).length;
      const churn = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i += 25) {
          const batch = await Promise.all(Array.from({ length: Math.min(25, n - i) }, () => rawClient(port, { login: true })));
          for (const t of batch) t.send(long.keys.publicKey, 'x');
          await waitFor(() => batch.every((t) => long.packetsFrom(hex(t.keys.publicKey)).length === 1), 'throwaway packets');
          for (const t of batch) t.sock.destroy();
          await Promise.all(batch.map((t) => t.closed));
          await waitFor(() => batch.every((t) => peerGones(t.keys.publicKey) === 1), 'throwaway PeerGone');
        }
        long.frames.length = 0;
      };
      await churn(100); // warm-up: JIT, buffers
      const before = relay.rss();
      await churn(300);
      const st = await relay.stats();
      assert.equal(st.watchedKeys, 0, 'no key is remembered for PeerGone once it left');
      assert.equal(st.peerGoneDisconnectedSent, 400);
      const growth = relay.rss() - before;
      assert.ok(growth < 5 << 20, `relay RSS grew by ${(growth / 1048576).toFixed(2)} MB`);

      // One source reconnects three times, sending each time: three PeerGone.
      const src = generateBoxKeyPair();
      for (let round = 1; round <= 3; round++) {
        const c = await rawClient(port, { login: true, keys: src });
        c.send(long.keys.publicKey, `round ${round}`);
        await waitFor(() => long.packetsFrom(hex(src.publicKey)).length === round, `packet of round ${round}`);
        c.sock.destroy();
        await c.closed;
        await waitFor(() => peerGones(src.publicKey) === round, `PeerGone of round ${round}`);
      }
      assert.equal(peerGones(src.publicKey), 3);
      long.sock.destroy();
    } finally {
      await relay.stop();
    }
  });

  test('a client remembers a bounded number of sources: the oldest is forgotten and counted', async () => {
    await withServer(
      async (s) => {
        const port = s.address().httpPort;
        const long = await rawClient(port, { login: true });
        const senders: RawClient[] = [];
        for (let i = 0; i < 6; i++) {
          const t = await rawClient(port, { login: true });
          t.send(long.keys.publicKey, 'x');
          senders.push(t);
        }
        await waitFor(() => long.frames.filter((f) => f.type === 'recv-packet').length === 6, 'packets');
        assert.equal(s.stats().watchEvictions, 2);
        assert.equal(s.watchedKeys, 4);
        for (const t of senders) t.sock.destroy();
        await waitFor(() => s.watchedKeys === 0, 'watchers cleaned');
        long.sock.destroy();
      },
      { maxWatchedPerConn: 4 },
    );
  });

  test('2,000 idle unauthenticated connections cost < 10 KB each and are closed after the login timeout', async (t) => {
    const loginTimeoutMs = 8000;
    const relay = await childRelay(['--insecure-http', '--login-timeout', String(loginTimeoutMs), '--max-conns-per-ip', '64', '--max-conns', '2000']);
    const socks: Socket[] = [];
    try {
      const port = relay.port;
      await new Promise((r) => setTimeout(r, 300));
      const before = relay.rss();
      const open = async (localAddress: string, upgrade: boolean): Promise<void> => {
        const sock = connect({ port, host: '127.0.0.1', localAddress });
        sock.on('error', () => undefined);
        await once(sock, 'connect');
        if (upgrade) sock.write('GET /derp HTTP/1.1\r\nHost: x\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n');
        socks.push(sock);
      };
      const started = performance.now();
      // 2,000 connections from 40 loopback addresses (50 each, under the per-address cap of 64):
      // half stay plain TCP, half upgrade to DERP and never log in.
      // In waves of 250, under the listen backlog (a dropped SYN would retry a second later).
      for (let wave = 0; wave < 8; wave++) {
        await Promise.all(Array.from({ length: 5 }, (_, a) => Promise.all(Array.from({ length: 50 }, (_, i) => open(`127.0.1.${wave * 5 + a + 1}`, i % 2 === 0)))));
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitFor(() => relay.latest().currentConnections === 2000, 'the relay to hold 2000 connections', loginTimeoutMs);
      const perConn = (relay.rss() - before) / 2000;
      t.diagnostic(`${perConn.toFixed(0)} bytes of relay RSS per idle connection`);
      assert.ok(perConn < 10 * 1024, `${perConn.toFixed(0)} bytes of relay RSS per idle connection`);

      // All of them are closed once the login timeout passed.
      await waitFor(() => relay.latest().currentConnections === 0, 'all closed', loginTimeoutMs + 6000);
      const end = relay.latest();
      assert.equal((end.upgradeTimeouts ?? 0) + (end.loginTimeouts ?? 0), 2000);
      assert.equal(end.loginTimeouts, 1000);
      const took = performance.now() - started;
      assert.ok(took < loginTimeoutMs + 6000, `closed after ${took.toFixed(0)} ms`);
    } finally {
      for (const sock of socks) sock.destroy();
      await relay.stop();
    }
  });

  test('caps: the connection over the per-address limit and the one over the total are refused at accept, and counted', async () => {
    await withServer(
      async (s) => {
        const port = s.address().httpPort;
        const socks: Socket[] = [];
        const open = async (localAddress: string): Promise<Socket> => {
          const sock = connect({ port, host: '127.0.0.1', localAddress });
          sock.on('error', () => undefined);
          await once(sock, 'connect');
          socks.push(sock);
          return sock;
        };
        for (let i = 0; i < 4; i++) await open('127.0.3.1');
        const fifth = await open('127.0.3.1');
        await once(fifth, 'close');
        assert.equal(s.stats().refusedPerIpCap, 1);
        for (let i = 0; i < 2; i++) await open('127.0.3.2');
        const overTotal = await open('127.0.3.3');
        await once(overTotal, 'close');
        assert.equal(s.stats().refusedTotalCap, 1);
        assert.equal(s.stats().currentConnections, 6);
        for (const x of socks) x.destroy();
        await waitFor(() => s.stats().currentConnections === 0, 'closed');
        // Freed slots are usable again.
        await open('127.0.3.1');
        await waitFor(() => s.stats().currentConnections === 1, 'accepted again');
        for (const x of socks) x.destroy();
      },
      { maxConnectionsPerIp: 4, maxConnections: 6 },
    );
  });

  test('before the login no frame longer than a ClientInfo is accepted (no 64 KiB buffer per connection)', async () => {
    await withServer(async (s) => {
      const c = await rawClient(s.address().httpPort, { login: false });
      c.sock.write(Buffer.from([FrameType.ClientInfo, 0x00, 0x00, 0xff, 0xff]));
      await c.closed;
      assert.equal(s.stats().oversizeFrames, 1);
    });
  });

  test('a sender over its rate is limited (dropped and counted); the limit is in its ServerInfo', async () => {
    await withServer(
      async (s) => {
        const port = s.address().httpPort;
        const dst = await rawClient(port, { login: true });
        const src = await rawClient(port, { login: true });
        const chunk = 'y'.repeat(10_000);
        for (let i = 0; i < 50; i++) src.send(dst.keys.publicKey, chunk);
        await waitFor(() => s.stats().packetsReceived + s.stats().droppedRateLimited >= 50, 'all counted');
        const st = s.stats();
        assert.ok(st.droppedRateLimited >= 35, `${st.droppedRateLimited} dropped`);
        assert.ok(st.packetsReceived <= 15);
        assert.equal(st.packetsDropped, st.droppedRateLimited);
        dst.sock.destroy();
        src.sock.destroy();
      },
      { sendRateBytesPerSec: 50_000, sendBurstBytes: 100_000 },
    );
  });
});
