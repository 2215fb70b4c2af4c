/**
 * Reference throughput measured in the same run as meshd's own numbers, so benchmarks print
 * ratios rather than absolutes from another day: wireguard-go ↔ wireguard-go over a veth link, and
 * the bare veth link.
 */
import type { Lab } from './lab.js';
import { measureIperf3, type Iperf3Result } from './ref-iperf3.js';
import { WireguardGo } from './ref-wireguard-go.js';
import { twoHostsDirect, type TwoHosts } from './topology.js';
import { ping } from './ping.js';
import { LabError } from './errors.js';

export interface ThroughputBaseline extends Iperf3Result {
  label: string;
}

export interface BaselineOptions {
  /** iperf3 test length (default 5 s). */
  seconds?: number;
  /** Tunnel MTU (default 1420). */
  mtu?: number;
  /** Build in this lab (left open) instead of a private one (closed afterwards). */
  lab?: Lab;
}

export interface WireguardGoPair {
  a: WireguardGo;
  b: WireguardGo;
}

/**
 * wireguard-go on both hosts of a TwoHosts topology, peered with each other over the link
 * (tunnel a = 10.77.0.1/24, b = 10.77.0.2/24, port 51820), handshake done.
 */
export async function wireguardGoPair(net: TwoHosts, opts: { mtu?: number } = {}): Promise<WireguardGoPair> {
  const mtu = opts.mtu ?? 1420;
  const a = await WireguardGo.start(net.a.ns, { address: '10.77.0.1/24', mtu });
  const b = await WireguardGo.start(net.b.ns, { address: '10.77.0.2/24', mtu });
  await a.setPeer({ publicKey: b.publicKey, endpoint: `${net.b.addr}:${b.listenPort}`, allowedIps: [`${b.ip}/32`] });
  await b.setPeer({ publicKey: a.publicKey, endpoint: `${net.a.addr}:${a.listenPort}`, allowedIps: [`${a.ip}/32`] });
  const p = await ping(net.a.ns, b.ip, { count: 1, timeoutMs: 5000 });
  if (!p.ok) throw new LabError('E_LAB', 'wireguard-go pair: no answer through the tunnel');
  return { a, b };
}

async function inTwoHosts<T>(opts: BaselineOptions, fn: (net: TwoHosts) => Promise<T>): Promise<T> {
  const net = await twoHostsDirect(opts.lab ? { lab: opts.lab } : {});
  try {
    return await fn(net);
  } finally {
    if (!opts.lab) await net.close();
  }
}

/** iperf3 (one TCP stream) a → b through wireguard-go ↔ wireguard-go. */
export function measureWireguardGoThroughput(opts: BaselineOptions = {}): Promise<ThroughputBaseline> {
  return inTwoHosts(opts, async (net) => {
    const { a, b } = await wireguardGoPair(net, opts.mtu === undefined ? {} : { mtu: opts.mtu });
    const r = await measureIperf3(net.b.ns, b.ip, net.a.ns, { seconds: opts.seconds ?? 5 });
    if (opts.lab) await Promise.all([a.stop(), b.stop()]);
    return { label: 'wireguard-go ↔ wireguard-go', ...r };
  });
}

/** iperf3 (one TCP stream) a → b over the bare veth link. */
export function measureVethThroughput(opts: BaselineOptions = {}): Promise<ThroughputBaseline> {
  return inTwoHosts(opts, async (net) => {
    const r = await measureIperf3(net.b.ns, net.b.addr, net.a.ns, { seconds: opts.seconds ?? 5 });
    return { label: 'veth', ...r };
  });
}
