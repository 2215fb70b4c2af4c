/**
 * Shared by bench/scale.ts and test/lab/control-scale.test.ts: a network whose owner's DWN sits
 * behind the counting proxy (test/helpers/dwn-proxy.ts), run as a program in the owner's
 * namespace. It listens on OWNER:8787 (and so 127.0.0.1:8787, where the owner's daemon finds its
 * "embedded" DWN already answering) and forwards to a dwn-server it starts on 127.0.0.1:8788, so
 * every DWN request of every node, the owner's included, is counted by signer DID.
 *
 * Plus what both measure with: a bounded-concurrency map, process CPU ticks and RSS from /proc,
 * and per-node request counts between two proxy counter snapshots.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host, Internet, Lab, LabProcess } from '../../src/lab/index.js';
import type { ProxyCounters } from '../helpers/dwn-proxy.js';
import { addHost, DWN_PORT, meshdJson, type MeshNode } from './agent-helpers.js';

export const PROXY_JS = fileURLToPath(new URL('../helpers/dwn-proxy.js', import.meta.url));
export const UPSTREAM_PORT = 8788;

/** `fn` over `items`, at most `limit` at a time; results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return out;
}

/** The `p`th percentile (nearest rank); NaN for none. */
export function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

export const CLK_TCK = 100;

/** utime + stime of a process, in clock ticks. */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** The proxy program in the owner's namespace; `counters()` asks it over stdin. */
export class ProxyHandle {
  private seq = 0;
  constructor(
    readonly proc: LabProcess,
    readonly dwnPid: number,
  ) {}
  async counters(): Promise<ProxyCounters> {
    const id = `c${++this.seq}x${Date.now()}`;
    this.proc.stdin!.write(`counters ${id}\n`);
    const m = await this.proc.waitFor(new RegExp(`\\{"event":"counters","id":"${id}".*\\}`), 10_000);
    return (JSON.parse(m[0]) as { counters: ProxyCounters }).counters;
  }
}

export interface ProxiedNetwork {
  owner: MeshNode;
  networkId: string;
  /** The DWN endpoint the other nodes use (the proxy). */
  endpoint: string;
  proxy: ProxyHandle;
}

/**
 * The owner host: the proxy (and its dwn-server) in its namespace, then `meshd up --create`.
 * `env` goes to every meshd the owner runs (and so to its daemon).
 */
export async function startProxiedOwner(lab: Lab, internet: Internet, opts: { network?: string; env?: Record<string, string> } = {}): Promise<ProxiedNetwork> {
  const host = await addHost(internet, 'owner');
  const home = join(lab.workDir, 'home-owner');
  const proc = host.ns.node(PROXY_JS, ['--listen', `0.0.0.0:${DWN_PORT}`, '--serve', join(lab.workDir, 'owner-dwn'), '--serve-port', String(UPSTREAM_PORT)], {
    label: 'dwn-proxy',
    stdin: 'pipe',
  });
  const ready = JSON.parse((await proc.waitFor(/\{"event":"ready".*\}/, 60_000))[0]) as { dwnPid: number };
  const base = { ns: host.ns, home, name: 'owner', ...(opts.env ? { env: opts.env } : {}) };
  const up = await meshdJson<{ identity: { did: string; wireguardKey: string; meshIP: string; meshIP6: string }; network: { id: string } }>(base, [
    'up',
    '--create',
    opts.network ?? 'scale',
  ]);
  const owner: MeshNode = { ...base, host, ...up.identity };
  return { owner, networkId: up.network.id, endpoint: `http://${host.addr}:${DWN_PORT}`, proxy: new ProxyHandle(proc, ready.dwnPid) };
}

/** A host with a meshd identity (`meshd init`), not yet added or up. */
export interface Prepared {
  name: string;
  host: Host;
  home: string;
  did: string;
  env?: Record<string, string>;
}

/** Hosts (one by one: they share the lab's bridge) and `meshd init` on each, `concurrency` at a time. */
export async function prepareHosts(internet: Internet, names: string[], concurrency: number, env?: Record<string, string>): Promise<Prepared[]> {
  const hosts: Host[] = [];
  for (const name of names) hosts.push(await addHost(internet, name));
  return mapLimit(names, concurrency, async (name, i): Promise<Prepared> => {
    const home = join(internet.lab.workDir, `home-${name}`);
    const p = { name, host: hosts[i]!, home, ...(env ? { env } : {}) };
    const init = await meshdJson<{ did: string }>({ ...p, ns: p.host.ns }, ['init']);
    return { ...p, did: init.did };
  });
}

/** DWN requests of one node in a counters difference (diffCounters), by DWN method. */
export interface NodeRequests {
  total: number;
  byMethod: Record<string, number>;
}

export function requestsOf(diff: ProxyCounters, did: string): NodeRequests {
  const byMethod = diff.byAuthorMethod[did] ?? {};
  return { total: Object.values(byMethod).reduce((x, y) => x + y, 0), byMethod };
}
