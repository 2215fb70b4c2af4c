/**
 * The real DataPlane (TUN, magic socket, WireGuard) taking configurations where some peers cannot
 * be applied: those are left out and reported, every other peer is applied, and peers missing
 * from a configuration are removed even when another peer of it fails. Runs
 * test/fixtures/dataplane-node.ts inside a network namespace this test creates and removes.
 *
 * The failing peers fail for real: one has this node's own public key, one has a disco key that
 * is a low-order X25519 point (the magic socket cannot derive a shared key from it).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { boxPublicKey, generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import type { DataPlanePeerFailure, DataPlaneStatus } from '../../src/engine/dataplane.js';
import { requirePrereqs } from '../helpers/prereqs.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/dataplane-node.js', import.meta.url));

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout: String(stdout), stderr: String(stderr) }));
  });
}

interface JsonPeer {
  publicKey: string;
  allowedIps: string[];
  discoKey?: string | null;
  endpoints?: string[];
}

type Event = { event: string; failed?: DataPlanePeerFailure[] } & Record<string, unknown>;

interface Node {
  publicKey: string;
  /** Write the node's config and make it apply it; resolves with the event that followed. */
  reconfigure(peers: JsonPeer[]): Promise<Event>;
  status(): DataPlaneStatus;
  routes(): Promise<string>;
  events: Event[];
}

async function startNode(t: TestContext, peers: (self: string) => JsonPeer[]): Promise<Node> {
  const ns = `meshd-seam-${process.pid}-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'meshd-dpcfg-'));
  const configFile = join(dir, 'config.json');
  const statusFile = join(dir, 'status.json');
  const wg = generateBoxKeyPair();
  const publicKey = b64(wg.publicKey);
  const write = (list: JsonPeer[]): void =>
    writeFileSync(configFile, JSON.stringify({ privateKey: b64(wg.privateKey), tunName: 'mdseam0', addresses: ['10.77.0.1/16'], config: { peers: list, relays: [] } }));
  write(peers(publicKey));
  const r = await run('ip', ['netns', 'add', ns]);
  if (r.code !== 0) throw new Error(`ip netns add: ${r.stderr}`);
  let child: ChildProcess | null = null;
  t.after(async () => {
    if (child !== null && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((res) => child!.once('exit', res));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((res) => setTimeout(res, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await run('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, FIXTURE, configFile, statusFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const events: Event[] = [];
  const waiters: Array<(e: Event) => void> = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    let e: Event;
    try {
      e = JSON.parse(line) as Event;
    } catch {
      return;
    }
    events.push(e);
    for (const w of waiters.splice(0)) w(e);
  });
  const next = (names: string[], timeoutMs = 20_000): Promise<Event> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${names.join('/')} event in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
      const wait = (e: Event): void => {
        if (names.includes(e.event)) {
          clearTimeout(timer);
          resolve(e);
        } else waiters.push(wait);
      };
      waiters.push(wait);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`data-plane node exited (${code}); stderr: ${stderr}`));
      });
    });
  await next(['ready']);
  return {
    publicKey,
    events,
    async reconfigure(list) {
      write(list);
      const applied = next(['config-applied', 'config-failed']);
      proc.kill('SIGHUP');
      return applied;
    },
    status: () => JSON.parse(readFileSync(statusFile, 'utf8')) as DataPlaneStatus,
    routes: async () => (await run('ip', ['-n', ns, 'route', 'show'])).stdout,
  };
}

function key(): string {
  return b64(generateBoxKeyPair().publicKey);
}

function disco(): string {
  return b64(boxPublicKey(generateBoxKeyPair().privateKey));
}

/** The all-zero point: a well-formed 32-byte key no shared secret can come from. */
const LOW_ORDER_DISCO = b64(new Uint8Array(32));

test('DataPlane.setConfig: a peer that fails is skipped, the others apply, removals always happen', { timeout: 90_000 }, async (t) => {
  if (!requirePrereqs(t, ['root', 'netns', 'ip', 'tun'])) return;
  const plainA = { publicKey: key(), allowedIps: ['10.77.0.2/32'], endpoints: ['192.0.2.1:51820'] };
  const magicB = { publicKey: key(), allowedIps: ['10.77.0.3/32'], discoKey: disco(), endpoints: ['192.0.2.2:41641'] };
  const routedC = { publicKey: key(), allowedIps: ['10.77.0.4/32', '10.99.0.0/24'], discoKey: disco(), endpoints: [] };
  const lowOrder = { publicKey: key(), allowedIps: ['10.77.0.5/32', '10.98.0.0/24'], discoKey: LOW_ORDER_DISCO, endpoints: [] };
  let ownKey = '';
  const selfPeer = (): JsonPeer => ({ publicKey: ownKey, allowedIps: ['10.77.0.9/32'], endpoints: [] });

  const node = await startNode(t, (self) => {
    ownKey = self;
    return [plainA, selfPeer(), magicB, lowOrder];
  });
  const peersOf = (): string[] => node.status().peers.map((p) => p.publicKey).sort();

  // 1. The first config: A and B apply; our own key and the low-order disco key are skipped.
  const first = node.events.find((e) => e.event === 'config-peers-failed');
  assert.ok(first, 'the first config reports its failed peers');
  assert.deepEqual(first.failed!.map((f) => f.publicKey).sort(), [ownKey, lowOrder.publicKey].sort());
  assert.deepEqual(peersOf(), [plainA.publicKey, magicB.publicKey].sort());
  assert.equal(node.status().counters.config.peerFailures, 2);
  assert.doesNotMatch(await node.routes(), /10\.98\.0\.0/, 'no route for a peer that was skipped');

  // 2. A is gone from the config while our own key is still in it: A is removed anyway, and C
  //    (new) is added with its route.
  let r = await node.reconfigure([selfPeer(), magicB, routedC]);
  assert.equal(r.event, 'config-applied');
  assert.deepEqual(r.failed!.map((f) => f.publicKey), [ownKey]);
  assert.match(r.failed![0]!.error, /own public key/);
  assert.deepEqual(peersOf(), [magicB.publicKey, routedC.publicKey].sort());
  assert.match(await node.routes(), /10\.99\.0\.0\/24/);

  // 3. B changes to a disco key that cannot be used: B goes (a peer is fully configured or
  //    absent), C is untouched, and C's route stays.
  r = await node.reconfigure([{ ...magicB, discoKey: LOW_ORDER_DISCO }, routedC]);
  assert.equal(r.event, 'config-applied');
  assert.deepEqual(r.failed!.map((f) => f.publicKey), [magicB.publicKey]);
  assert.deepEqual(peersOf(), [routedC.publicKey]);
  assert.match(await node.routes(), /10\.99\.0\.0\/24/);

  // 4. A config without failures: C removed, A back, C's route gone.
  r = await node.reconfigure([plainA]);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(peersOf(), [plainA.publicKey]);
  assert.doesNotMatch(await node.routes(), /10\.99\.0\.0/);
  assert.equal(node.status().counters.config.peerFailures, 4);
});
