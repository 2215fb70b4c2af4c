/**
 * The paths bench/throughput.ts compares, each built in two fresh namespaces over one veth link
 * (a = sender, b = receiver): the bare link, wireguard-go ↔ wireguard-go, meshd ↔ meshd (as is,
 * with MESHD_NO_OFFLOAD=1, with MESHD_PURE_TS=1) and meshd with wireguard-go in both directions.
 * openPath() returns a src/lab BenchPath (whose tunnel processes are CPU-metered) with the
 * handshake done, and a close() that stops the tunnel and removes the namespaces.
 */
import { ping, twoHostsDirect, wireguardGoPair, WireguardGo, wgKeyPair, LabError, type BenchPath, type PathProcess, type TwoHosts } from '../../src/lab/index.js';
import type { Prereq } from '../helpers/prereqs.js';
import { MeshdNode } from './wg-engine-node.js';

export type PathId = 'veth' | 'wg-go' | 'meshd' | 'meshd-no-offload' | 'meshd-pure-ts' | 'meshd-to-wg-go' | 'wg-go-to-meshd';

export interface PathSpec {
  id: PathId;
  label: string;
  needs: Prereq[];
}

const TUNNEL: Prereq[] = ['root', 'netns', 'ip', 'tun'];
const WG: Prereq[] = [...TUNNEL, 'wireguard-go', 'wg'];

/** In the order a run measures them: the reference first, so every later row has its ratio. */
export const PATHS: readonly PathSpec[] = [
  { id: 'wg-go', label: 'wireguard-go ↔ wireguard-go', needs: WG },
  { id: 'veth', label: 'veth (no tunnel)', needs: ['root', 'netns', 'ip'] },
  { id: 'meshd', label: 'meshd ↔ meshd', needs: TUNNEL },
  { id: 'meshd-no-offload', label: 'meshd ↔ meshd NO_OFFLOAD', needs: TUNNEL },
  { id: 'meshd-pure-ts', label: 'meshd ↔ meshd PURE_TS', needs: TUNNEL },
  { id: 'meshd-to-wg-go', label: 'meshd → wireguard-go', needs: WG },
  { id: 'wg-go-to-meshd', label: 'wireguard-go → meshd', needs: WG },
];

const TUNNEL_MTU = 1420;
const VETH_MTU = 1500;
const A_IP = '10.77.0.1';
const B_IP = '10.77.0.2';

export interface OpenPath {
  path: BenchPath;
  close(): Promise<void>;
}

export interface OpenPathOptions {
  /** meshd ↔ meshd only: write V8 CPU profiles of both engines here. */
  cpuProfileDir?: string;
}

function meshdEnv(id: PathId): Record<string, string> {
  if (id === 'meshd-no-offload') return { MESHD_NO_OFFLOAD: '1' };
  if (id === 'meshd-pure-ts') return { MESHD_PURE_TS: '1' };
  return {};
}

async function meshdPair(net: TwoHosts, env: Record<string, string>, cpuProfileDir: string | undefined): Promise<[MeshdNode, MeshdNode]> {
  const ka = wgKeyPair();
  const kb = wgKeyPair();
  const prof = cpuProfileDir ? { cpuProfileDir } : {};
  const a = await MeshdNode.start(net.a.ns, {
    address: `${A_IP}/24`,
    env,
    keys: ka,
    peers: [{ publicKey: kb.publicKey, allowedIps: [`${B_IP}/32`], endpoint: `${net.b.addr}:51820` }],
    ...prof,
  });
  const b = await MeshdNode.start(net.b.ns, { address: `${B_IP}/24`, env, keys: kb, peers: [{ publicKey: ka.publicKey, allowedIps: [`${A_IP}/32`] }], ...prof });
  return [a, b];
}

/** meshd on host `meshdSide`, wireguard-go on the other; meshd initiates. */
async function meshdAndWireguardGo(net: TwoHosts, meshdSide: 'a' | 'b'): Promise<{ meshd: MeshdNode; wg: WireguardGo }> {
  const m = meshdSide === 'a' ? net.a : net.b;
  const w = meshdSide === 'a' ? net.b : net.a;
  const mIp = meshdSide === 'a' ? A_IP : B_IP;
  const wIp = meshdSide === 'a' ? B_IP : A_IP;
  const wg = await WireguardGo.start(w.ns, { address: `${wIp}/24`, mtu: TUNNEL_MTU });
  const keys = wgKeyPair();
  const meshd = await MeshdNode.start(m.ns, {
    address: `${mIp}/24`,
    keys,
    peers: [{ publicKey: wg.publicKey, allowedIps: [`${wIp}/32`], endpoint: `${w.addr}:${wg.listenPort}` }],
  });
  await wg.setPeer({ publicKey: keys.publicKey, allowedIps: [`${mIp}/32`], endpoint: `${m.addr}:${meshd.listenPort}` });
  return { meshd, wg };
}

async function build(net: TwoHosts, id: PathId, opts: OpenPathOptions): Promise<{ processes: PathProcess[]; stop: () => Promise<void> }> {
  const meshdProc = (n: MeshdNode, side: PathProcess['side']): PathProcess => ({ label: 'meshd', pid: n.proc.pid, side });
  const wgProc = (w: WireguardGo, side: PathProcess['side']): PathProcess => ({ label: 'wireguard-go', pid: w.process.pid, side });
  switch (id) {
    case 'veth':
      return { processes: [], stop: async () => {} };
    case 'wg-go': {
      const { a, b } = await wireguardGoPair(net, { mtu: TUNNEL_MTU });
      return { processes: [wgProc(a, 'sender'), wgProc(b, 'receiver')], stop: async () => void (await Promise.all([a.stop(), b.stop()])) };
    }
    case 'meshd':
    case 'meshd-no-offload':
    case 'meshd-pure-ts': {
      const [a, b] = await meshdPair(net, meshdEnv(id), id === 'meshd' ? opts.cpuProfileDir : undefined);
      return { processes: [meshdProc(a, 'sender'), meshdProc(b, 'receiver')], stop: async () => void (await Promise.all([a.proc.stop(5000), b.proc.stop(5000)])) };
    }
    case 'meshd-to-wg-go': {
      const { meshd, wg } = await meshdAndWireguardGo(net, 'a');
      return { processes: [meshdProc(meshd, 'sender'), wgProc(wg, 'receiver')], stop: async () => void (await Promise.all([meshd.proc.stop(5000), wg.stop()])) };
    }
    case 'wg-go-to-meshd': {
      const { meshd, wg } = await meshdAndWireguardGo(net, 'b');
      return { processes: [wgProc(wg, 'sender'), meshdProc(meshd, 'receiver')], stop: async () => void (await Promise.all([meshd.proc.stop(5000), wg.stop()])) };
    }
  }
}

export function pathSpec(id: PathId): PathSpec {
  const s = PATHS.find((p) => p.id === id);
  if (!s) throw new LabError('E_LAB', `unknown path ${String(id)}`);
  return s;
}

/** Builds path `id` in a lab of its own; the first handshake is done before it returns. */
export async function openPath(id: PathId, opts: OpenPathOptions = {}): Promise<OpenPath> {
  const spec = pathSpec(id);
  const net = await twoHostsDirect();
  try {
    const tunnel = await build(net, id, opts);
    const target = id === 'veth' ? net.b.addr : B_IP;
    const p = await ping(net.a.ns, target, { count: 1, timeoutMs: 5000, method: 'icmp' });
    if (!p.ok) throw new LabError('E_LAB', `${spec.label}: no answer from ${target} through the path after 5 s (no handshake?)`);
    const path: BenchPath = {
      label: spec.label,
      client: net.a.ns,
      server: net.b.ns,
      serverAddr: target,
      mtu: id === 'veth' ? VETH_MTU : TUNNEL_MTU,
      processes: tunnel.processes,
    };
    let closed = false;
    return {
      path,
      close: async () => {
        if (closed) return;
        closed = true;
        try {
          await tunnel.stop();
        } finally {
          await net.close();
        }
      },
    };
  } catch (e) {
    await net.close();
    throw e;
  }
}
