/**
 * Our STUN client against a real STUN server (coturn's turnserver, STUN only, on loopback), and
 * our own responder (the relay's STUN port) answering the same request the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePrereqs } from '../helpers/prereqs.js';
import {
  StunClient,
  classifyNatMapping,
  decodeBindingResponse,
  decodeStunMessage,
  encodeBindingRequest,
  isStunPacket,
  newTxId,
} from '../../src/engine/magicsock/stun.js';
import { startRelayServer } from '../../src/engine/relay/server.js';

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function bound(): Promise<UdpSocket> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  return s;
}

/** One binding request from sock to port; the raw answer, or null after timeoutMs. */
function ask(sock: UdpSocket, port: number, timeoutMs: number): Promise<{ txId: Uint8Array; answer: Buffer | null }> {
  const txId = newTxId();
  return new Promise((resolve) => {
    const onMsg = (msg: Buffer) => {
      if (!isStunPacket(msg) || Buffer.compare(msg.subarray(8, 20), Buffer.from(txId)) !== 0) return;
      clearTimeout(t);
      sock.off('message', onMsg);
      resolve({ txId, answer: msg });
    };
    const t = setTimeout(() => {
      sock.off('message', onMsg);
      resolve({ txId, answer: null });
    }, timeoutMs);
    sock.on('message', onMsg);
    sock.send(encodeBindingRequest(txId), port, '127.0.0.1');
  });
}

test('coturn and our responder both answer our binding request with our own address and port', async (t) => {
  if (!requirePrereqs(t, ['turnserver'])) return;
  const dir = mkdtempSync(join(tmpdir(), `meshd-stun-${process.pid}-${Math.random().toString(36).slice(2, 8)}-`));
  const port = await freeUdpPort();
  let turn: ChildProcess | null = null;
  const sock = await bound();
  const relay = await startRelayServer({ httpPort: 0, stunPort: 0, host: '127.0.0.1' });
  let log = '';
  try {
    turn = spawn(
      'turnserver',
      [
        '-n', // no config file: everything from the command line
        '--stun-only',
        '-L', '127.0.0.1',
        '-p', String(port),
        '--no-cli',
        '--no-tls',
        '--no-dtls',
        '--log-file', 'stdout',
        '--simple-log',
        '--pidfile', join(dir, 'turnserver.pid'),
        '--userdb', join(dir, 'turndb'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    turn.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    turn.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((resolve) => turn!.once('exit', (code) => resolve(code)));

    // coturn takes a moment to open its listener: ask until it answers (or exits).
    let answer: Buffer | null = null;
    let txId: Uint8Array = new Uint8Array(12);
    const deadline = Date.now() + 10_000;
    while (answer === null && Date.now() < deadline) {
      const r = await Promise.race([ask(sock, port, 300), exited.then(() => null)]);
      if (r === null) assert.fail(`turnserver exited early:\n${log.slice(-2000)}`);
      ({ answer, txId } = r);
    }
    assert.ok(answer, `coturn did not answer within 10 s:\n${log.slice(-2000)}`);

    const me = sock.address();
    const fromCoturn = decodeBindingResponse(answer);
    assert.equal(Buffer.from(fromCoturn.txId).toString('hex'), Buffer.from(txId).toString('hex'));
    assert.deepEqual(fromCoturn.mapped, { family: 4, ip: '127.0.0.1', port: me.port });
    // coturn sends both forms; they must agree.
    const m = decodeStunMessage(answer);
    assert.deepEqual(m.xorMappedAddress, m.mappedAddress);

    // Our responder, asked the same way from the same socket, says the same.
    const ours = await ask(sock, relay.address().stunPort!, 2000);
    assert.ok(ours.answer, 'our STUN responder did not answer');
    assert.deepEqual(decodeBindingResponse(ours.answer).mapped, fromCoturn.mapped);
    assert.equal(relay.stats().stunResponses, 1);

    // The StunClient, sending through the socket it does not own, against both servers: no NAT
    // on loopback, so the mapping is endpoint-independent.
    const client = new StunClient({ send: (p, prt, host) => sock.send(p, prt, host), timeoutMs: 2000 });
    sock.on('message', (msg) => client.handlePacket(msg));
    const results = await Promise.all([
      client.request({ host: '127.0.0.1', port }),
      client.request({ host: '127.0.0.1', port: relay.address().stunPort! }),
    ]);
    for (const r of results) assert.deepEqual(r.mapped, { family: 4, ip: '127.0.0.1', port: me.port });
    assert.equal(classifyNatMapping(results), 'endpoint-independent');
    client.close();
  } finally {
    sock.close();
    await relay.stop();
    if (turn && turn.exitCode === null && turn.pid !== undefined) {
      const gone = new Promise((resolve) => turn!.once('exit', resolve));
      process.kill(turn.pid, 'SIGTERM');
      const timer = setTimeout(() => turn!.pid !== undefined && turn!.exitCode === null && process.kill(turn!.pid, 'SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
