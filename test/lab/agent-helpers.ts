/**
 * Shared by the agent lab tests and bench/agent-startup.ts: hosts on the lab internet, each
 * running the real `meshd` CLI (bin/meshd.js) inside its namespace with its own home, brought
 * into one network by the README quick start:
 *
 *   owner:  meshd up --create NAME --dwn-listen 0.0.0.0     (embedded DWN on OWNER:8787)
 *   other:  meshd init                                      (prints its DID)
 *   owner:  meshd peer add DID
 *   other:  meshd up --endpoint http://OWNER:8787 --anchor OWNER_DID --network ID
 *
 * Daemons run detached inside the namespaces; the lab kills whatever is left in them by pid.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { AgentStatus } from '../../src/daemon/agent-types.js';
import { exec, Internet, Lab, type ExecResult, type Host, type LabProcess, type Netns } from '../../src/lab/index.js';
import type { Prereq } from '../helpers/prereqs.js';

export const AGENT_PREREQS: Prereq[] = ['root', 'netns', 'tun', 'native', 'iptables'];
export const MESHD_BIN = fileURLToPath(new URL('../../../bin/meshd.js', import.meta.url));
export const WG_TRANSFER = fileURLToPath(new URL('./fixtures/wg-transfer.js', import.meta.url));
export const DWN_PORT = 8787;

/** A host of the lab with a meshd home. */
export interface MeshNode {
  name: string;
  host: Host;
  ns: Netns;
  home: string;
  did: string;
  meshIP: string;
  meshIP6: string;
  wireguardKey: string;
  /** Extra environment for every meshd run for this node (and so for its daemon). */
  env?: Record<string, string>;
}

export interface Mesh {
  lab: Lab;
  internet: Internet;
  /** nodes[0] is the owner (embedded DWN). */
  nodes: MeshNode[];
  owner: MeshNode;
  networkId: string;
  /** The DWN endpoint the other nodes use. */
  endpoint: string;
  close(): Promise<void>;
}

export type DaemonStatus = AgentStatus & { state: string; pid: number; source?: string };

/** Where and how meshd runs for a node: its namespace, its home, extra environment. */
export interface MeshdTarget {
  ns: Netns;
  home: string;
  name?: string;
  env?: Record<string, string>;
}

/** Runs `meshd --home HOME …args` inside the host's namespace. */
export function meshd(node: MeshdTarget, args: string[], timeoutMs = 90_000): Promise<ExecResult> {
  return node.ns.exec([process.execPath, MESHD_BIN, '--home', node.home, ...args], { timeoutMs, env: { MESHD_DEBUG: '', ...node.env } });
}

/** Like meshd() but a non-zero exit fails with the command's stderr. */
export async function meshdOk(node: MeshdTarget, args: string[], timeoutMs?: number): Promise<string> {
  const r = await meshd(node, args, timeoutMs);
  if (r.code !== 0) {
    const log = join(node.home, 'meshd.log');
    throw new Error(`meshd ${args.join(' ')} on ${node.name ?? node.ns.name} exited ${r.code ?? r.signal}: ${r.stderr.trim()}${existsSync(log) ? ` (log ${log})` : ''}`);
  }
  return r.stdout;
}

export async function meshdJson<T>(node: MeshdTarget, args: string[], timeoutMs?: number): Promise<T> {
  const out = await meshdOk(node, [...args, '--json'], timeoutMs);
  try {
    return JSON.parse(out) as T;
  } catch {
    throw new Error(`meshd ${args.join(' ')}: stdout is not JSON: ${out.slice(0, 400)}`);
  }
}

/** `meshd status --json` from the running daemon (fails when it is the records view). */
export async function daemonStatus(node: MeshNode): Promise<DaemonStatus> {
  const s = await meshdJson<DaemonStatus>(node, ['status']);
  assert.equal(s.source, 'daemon', `${node.name}: status did not come from the daemon`);
  return s;
}

export function peerOf(s: AgentStatus, who: MeshNode): AgentStatus['peers'][number] | undefined {
  return s.peers.find((p) => p.did === who.did);
}

/** Polls `cond` every `intervalMs` until it returns a truthy value or `timeoutMs` passes. */
export async function waitUntil<T>(cond: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs: number, intervalMs = 100): Promise<T | undefined> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= until) return undefined;
    await sleep(intervalMs);
  }
}

/** One ICMP echo; true when answered within `waitS` seconds. */
export async function pingOnce(ns: Netns, addr: string, opts: { waitS?: number; source?: string } = {}): Promise<boolean> {
  const args = ['ping', '-n', '-q', '-c', '1', '-W', String(opts.waitS ?? 1)];
  if (opts.source) args.push('-I', opts.source);
  const r = await ns.exec([...args, addr], { timeoutMs: (opts.waitS ?? 1) * 1000 + 5000 });
  return r.code === 0 && / 1 received/.test(r.stdout);
}

/** Pings until the first answer; resolves with the ms it took, or null after `timeoutMs`. */
export async function pingUntil(ns: Netns, addr: string, timeoutMs: number): Promise<number | null> {
  const start = Date.now();
  const ok = await waitUntil(() => pingOnce(ns, addr, { waitS: 1 }), timeoutMs, 50);
  return ok ? Date.now() - start : null;
}

/** `count` echoes at `intervalS`; returns the number answered. */
export async function pingCount(ns: Netns, addr: string, count: number, opts: { intervalS?: number; waitS?: number; source?: string } = {}): Promise<number> {
  const args = ['ping', '-n', '-q', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.waitS ?? 1)];
  if (opts.source) args.push('-I', opts.source);
  const r = await ns.exec([...args, addr], { timeoutMs: count * 1000 + 10_000 });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  return m ? Number(m[2]) : 0;
}

/**
 * A background `ping -D` (timestamped) from `ns` to `addr`; `answers()` lists the wall-clock ms of
 * every answered echo so far. Stop it with `proc.stop()`.
 */
export function pingMonitor(ns: Netns, addr: string, intervalS = 0.1): { proc: LabProcess; answers(): number[] } {
  const proc = ns.spawn(['ping', '-n', '-D', '-O', '-i', String(intervalS), '-W', '1', addr], { label: `ping-${addr}` });
  return {
    proc,
    answers: () => {
      const out: number[] = [];
      for (const m of proc.stdout().matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) out.push(Math.round(Number(m[1]) * 1000));
      return out;
    },
  };
}

/** A TCP transfer of `bytes` from one node to another's mesh IP; both sides' byte counts and SHA-256. */
export async function tcpTransfer(from: MeshNode, to: MeshNode, bytes: number, port = 5201): Promise<{ sent: { bytes: number; sha256: string }; received: { bytes: number; sha256: string } }> {
  const recv = to.ns.node(WG_TRANSFER, ['recv', '--bind', `${to.meshIP}:${port}`], { label: 'wg-transfer-recv' });
  try {
    await recv.waitFor('"event":"ready"', 10_000);
    const r = await from.ns.exec([process.execPath, WG_TRANSFER, 'send', '--to', `${to.meshIP}:${port}`, '--bytes', String(bytes), '--seed', `${from.name}-${to.name}`], {
      timeoutMs: 60_000,
    });
    const sent = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { event: string; bytes: number; sha256: string; message?: string };
    assert.equal(sent.event, 'done', `sender: ${r.stdout}${r.stderr}`);
    const m = await recv.waitFor(/\{"event":"(?:done|error)".*\}/, 20_000);
    const received = JSON.parse(m[0]) as { event: string; bytes: number; sha256: string };
    assert.equal(received.event, 'done', `receiver: ${m[0]}`);
    return { sent, received };
  } finally {
    await recv.stop(500);
  }
}

/** A new namespace on the lab internet (public network, 198.51.100.10 and up). */
export function addHost(internet: Internet, name: string): Promise<Host> {
  return internet.addHost(name, { network: 'public' });
}

function nodeFrom(name: string, host: Host, home: string, id: { did: string; meshIP: string; meshIP6: string; wireguardKey: string }, env?: Record<string, string>): MeshNode {
  return { name, host, ns: host.ns, home, did: id.did, meshIP: id.meshIP, meshIP6: id.meshIP6, wireguardKey: id.wireguardKey, ...(env ? { env } : {}) };
}

interface UpJson {
  identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string };
  network: { id: string; endpoint: string };
}

/** Owner: `meshd up --create NAME --dwn-listen 0.0.0.0` (the embedded DWN reachable by the others). */
export async function createOwner(internet: Internet, name = 'a', network = 'lab'): Promise<{ owner: MeshNode; networkId: string; endpoint: string }> {
  const host = await addHost(internet, name);
  const home = join(internet.lab.workDir, `home-${name}`);
  const up = await meshdJson<UpJson>({ ns: host.ns, home, name }, ['up', '--create', network, '--dwn-listen', '0.0.0.0']);
  return {
    owner: nodeFrom(name, host, home, up.identity),
    networkId: up.network.id,
    endpoint: `http://${host.addr}:${DWN_PORT}`,
  };
}

/** A joining node up to (not including) `meshd up`: host, `meshd init`, owner's `meshd peer add`. */
export async function prepareJoiner(mesh: Pick<Mesh, 'internet' | 'owner'>, name: string, host?: Host): Promise<{ host: Host; home: string; did: string }> {
  const h = host ?? (await addHost(mesh.internet, name));
  const home = join(mesh.internet.lab.workDir, `home-${name}`);
  const init = await meshdJson<{ did: string }>({ ns: h.ns, home, name }, ['init']);
  await meshdOk(mesh.owner, ['peer', 'add', init.did]);
  return { host: h, home, did: init.did };
}

/** The joining `meshd up` of the quick start (`env`: for meshd and so for the daemon). */
export async function upJoiner(
  mesh: Pick<Mesh, 'owner' | 'networkId' | 'endpoint'>,
  name: string,
  p: { host: Host; home: string; env?: Record<string, string> },
): Promise<MeshNode> {
  const target = { ns: p.host.ns, home: p.home, name, ...(p.env ? { env: p.env } : {}) };
  const up = await meshdJson<UpJson>(target, ['up', '--endpoint', mesh.endpoint, '--anchor', mesh.owner.did, '--network', mesh.networkId]);
  return nodeFrom(name, p.host, p.home, up.identity, p.env);
}

export async function joinNode(mesh: Pick<Mesh, 'internet' | 'owner' | 'networkId' | 'endpoint'>, name: string): Promise<MeshNode> {
  return upJoiner(mesh, name, await prepareJoiner(mesh, name));
}

/** N hosts (N ≥ 1) on one internet, all in one network by the quick start; nodes[0] owns it. */
export async function buildMesh(n: number, opts: { lab?: Lab; names?: string[] } = {}): Promise<Mesh> {
  const lab = opts.lab ?? (await Lab.create());
  try {
    const names = opts.names ?? ['a', 'b', 'c', 'd', 'e', 'f'].slice(0, n);
    const internet = await Internet.create(lab);
    const { owner, networkId, endpoint } = await createOwner(internet, names[0]);
    const mesh: Mesh = { lab, internet, owner, nodes: [owner], networkId, endpoint, close: () => lab.close() };
    // Hosts, identities and `peer add` one by one (the owner's DWN writes), then the `up`s together.
    const prepared = [];
    for (const name of names.slice(1)) prepared.push({ name, p: await prepareJoiner(mesh, name) });
    const joined = await Promise.all(prepared.map(({ name, p }) => upJoiner(mesh, name, p)));
    mesh.nodes.push(...joined);
    return mesh;
  } catch (e) {
    if (!opts.lab) await lab.close();
    throw e;
  }
}

/** Waits until every pair of nodes answers a ping (each direction); fails naming the pair. */
export async function assertFullMesh(nodes: MeshNode[], timeoutMs = 10_000): Promise<void> {
  const pairs: [MeshNode, MeshNode][] = [];
  for (const x of nodes) for (const y of nodes) if (x !== y) pairs.push([x, y]);
  const results = await Promise.all(pairs.map(([x, y]) => pingUntil(x.ns, y.meshIP, timeoutMs)));
  const failed = pairs.filter((_, i) => results[i] === null).map(([x, y]) => `${x.name}→${y.name}`);
  assert.deepEqual(failed, [], `no ping answer within ${timeoutMs} ms\n${failed.length > 0 ? diagnose(nodes) : ''}`);
}

/** The last lines of every node's daemon log, for a failure message that can be acted on. */
function diagnose(nodes: MeshNode[], lines = 25): string {
  return nodes
    .map((n) => {
      let log: string[];
      try {
        log = readFileSync(join(n.home, 'meshd.log'), 'utf8').trimEnd().split('\n').slice(-lines);
      } catch (e) {
        log = [`(no log: ${(e as Error).message})`];
      }
      return `--- ${n.name} ${n.meshIP} meshd.log ---\n${log.join('\n')}`;
    })
    .join('\n');
}

/** True when a DWN answers `GET /health` at `endpoint`, asked from inside `ns`. */
export async function dwnHealthy(ns: Netns, endpoint: string): Promise<boolean> {
  const script = 'fetch(new URL("/health", process.argv[1]), { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))';
  const r = await ns.exec([process.execPath, '-e', script, endpoint], { timeoutMs: 10_000 });
  return r.code === 0;
}

/** The pids of the processes whose parent is `pid`, inside `ns`. */
export async function childPids(ns: Netns, pid: number): Promise<number[]> {
  const r = await ns.exec(['ps', '-o', 'pid=', '--ppid', String(pid)]);
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** The pids still running in a namespace. */
export async function pidsIn(ns: Netns): Promise<number[]> {
  const r = await exec(null, ['ip', 'netns', 'pids', ns.name]).catch(() => ({ stdout: '' }));
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** SIGKILL a node's daemon (a crash) and wait until it is gone. */
export async function killDaemon(node: MeshNode): Promise<void> {
  const s = await daemonStatus(node);
  process.kill(s.pid, 'SIGKILL');
  const gone = await waitUntil(() => {
    try {
      process.kill(s.pid, 0);
      return false;
    } catch {
      return true;
    }
  }, 5000);
  assert.ok(gone, `${node.name}: daemon ${s.pid} still alive after SIGKILL`);
}

/** A TCP transfer from a mesh node to an address (either family) that runs no meshd; both SHA-256. */
export async function tcpTo(from: MeshNode, toNs: Netns, addr: string, bytes: number, seed = 'routes'): Promise<{ sent: string; received: string; bytes: number }> {
  const recv = toNs.node(WG_TRANSFER, ['recv', '--bind', `${addr}:5201`], { label: 'wg-transfer-recv' });
  try {
    await recv.waitFor('"event":"ready"', 10_000);
    const r = await from.ns.exec([process.execPath, WG_TRANSFER, 'send', '--to', `${addr}:5201`, '--bytes', String(bytes), '--seed', seed], { timeoutMs: 60_000 });
    const sent = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { event: string; sha256: string };
    assert.equal(sent.event, 'done', `sender: ${r.stdout}${r.stderr}`);
    const m = await recv.waitFor(/\{"event":"(?:done|error)".*\}/, 20_000);
    const received = JSON.parse(m[0]) as { event: string; bytes: number; sha256: string };
    assert.equal(received.event, 'done', `receiver: ${m[0]}`);
    return { sent: sent.sha256, received: received.sha256, bytes: received.bytes };
  } finally {
    await recv.stop(500);
  }
}
