/**
 * Our STUN client against a real STUN server (coturn's turnserver, STUN only, on loopback), and
 * our own responder (the relay's STUN port) answering the same request the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer } from 'node:net';
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

/** A loopback port free for both UDP and TCP right now (coturn listens on both). */
async function freePort(): Promise<number> {
  for (;;) {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    const port = s.address().port;
    const tcp = createServer();
    const tcpFree = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (tcpFree) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    await new Promise<void>((resolve) => s.close(() => resolve()));
    if (tcpFree) return port;
  }
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

interface Coturn {
  proc: ChildProcess;
  port: number;
  txId: Uint8Array;
  answer: Buffer;
}

/** Stops a turnserver started here, by its pid; SIGKILL after 3 s. */
async function stopCoturn(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const gone = new Promise((resolve) => proc.once('exit', resolve));
  process.kill(proc.pid, 'SIGTERM');
  const timer = setTimeout(() => proc.pid !== undefined && proc.exitCode === null && process.kill(proc.pid, 'SIGKILL'), 3000);
  await gone;
  clearTimeout(timer);
}

/**
 * Starts coturn (STUN only) on a free loopback port and asks it until it answers. Another test
 * may take the port between our probe and coturn's bind (coturn then retries forever): that
 * attempt is stopped and the next one gets a new port.
 */
async function startCoturn(dir: string, sock: UdpSocket, started: ChildProcess[]): Promise<Coturn> {
  let log = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    log = '';
    const proc = spawn(
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
        '--pidfile', join(dir, `turnserver-${attempt}.pid`),
        '--userdb', join(dir, `turndb-${attempt}`),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push(proc);
    proc.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<null>((resolve) => proc.once('exit', () => resolve(null)));
    // coturn takes a moment to open its listener: ask until it answers, exits or cannot bind.
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !log.includes('Address already in use')) {
      const r = await Promise.race([ask(sock, port, 300), exited]);
      if (r === null) assert.fail(`turnserver exited early:\n${log.slice(-2000)}`);
      if (r.answer) return { proc, port, txId: r.txId, answer: r.answer };
    }
    await stopCoturn(proc);
    if (!log.includes('Address already in use')) break;
  }
  assert.fail(`coturn did not answer within 10 s:\n${log.slice(-2000)}`);
}

test('coturn and our responder both answer our binding request with our own address and port', async (t) => {
  if (!requirePrereqs(t, ['turnserver'])) return;
  const dir = mkdtempSync(join(tmpdir(), `meshd-stun-${process.pid}-${Math.random().toString(36).slice(2, 8)}-`));
  const started: ChildProcess[] = [];
  const sock = await bound();
  const relay = await startRelayServer({ httpPort: 0, stunPort: 0, host: '127.0.0.1' });
  try {
    const { port, txId, answer } = await startCoturn(dir, sock, started);

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
    for (const proc of started) await stopCoturn(proc);
    rmSync(dir, { recursive: true, force: true });
  }
});
