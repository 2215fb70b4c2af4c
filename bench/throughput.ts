/**
 * Tunnel throughput between two lab namespaces over a veth link, iperf3 with one TCP stream,
 * all measured in the same run: wireguard-go ↔ wireguard-go (the reference), meshd ↔ meshd (native
 * crypto and MESHD_PURE_TS=1), meshd → wireguard-go and wireguard-go → meshd. Prints Mbit/s for
 * each and the ratio to wireguard-go ↔ wireguard-go (target ≥ 0.7). Needs root, iproute2,
 * iperf3, wireguard-go, wg.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/throughput.js
 *   BENCH_SECONDS=10 (default 5)   BENCH_PROFILE=DIR: CPU profiles of the meshd↔meshd engines
 *   (one .cpuprofile per engine, open in Chrome DevTools)
 */
import { measureWireguardGoThroughput, measureIperf3, twoHostsDirect, WireguardGo, wgKeyPair, type TwoHosts } from '../src/lab/index.js';
import { MeshdNode } from '../test/lab/wg-engine-node.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '5');
const PROFILE_DIR = process.env.BENCH_PROFILE;

interface Row {
  label: string;
  mbps: number;
  retransmits: number | undefined;
}

async function withHosts<T>(fn: (net: TwoHosts) => Promise<T>): Promise<T> {
  const net = await twoHostsDirect();
  try {
    return await fn(net);
  } finally {
    await net.close();
  }
}

async function meshdPair(env: Record<string, string>, label: string, profile: boolean): Promise<Row> {
  return withHosts(async (net) => {
    const ka = wgKeyPair();
    const kb = wgKeyPair();
    const prof = profile && PROFILE_DIR ? { cpuProfileDir: PROFILE_DIR } : {};
    const a = await MeshdNode.start(net.a.ns, {
      address: '10.77.0.1/24',
      env,
      keys: ka,
      peers: [{ publicKey: kb.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${net.b.addr}:51820` }],
      ...prof,
    });
    const b = await MeshdNode.start(net.b.ns, { address: '10.77.0.2/24', env, keys: kb, peers: [{ publicKey: ka.publicKey, allowedIps: ['10.77.0.1/32'] }], ...prof });
    try {
      const r = await measureIperf3(net.b.ns, '10.77.0.2', net.a.ns, { seconds: SECONDS });
      return { label, mbps: r.mbps, retransmits: r.retransmits };
    } finally {
      await Promise.all([a.proc.stop(5000), b.proc.stop(5000)]);
    }
  });
}

async function meshdWithWireguardGo(meshdSends: boolean): Promise<Row> {
  return withHosts(async (net) => {
    const wg = await WireguardGo.start(net.b.ns, { address: '10.77.0.2/24' });
    const keys = wgKeyPair();
    const meshd = await MeshdNode.start(net.a.ns, {
      address: '10.77.0.1/24',
      keys,
      peers: [{ publicKey: wg.publicKey, allowedIps: ['10.77.0.2/32'], endpoint: `${net.b.addr}:51820` }],
    });
    await wg.setPeer({ publicKey: keys.publicKey, allowedIps: ['10.77.0.1/32'], endpoint: `${net.a.addr}:51820` });
    try {
      const r = meshdSends
        ? await measureIperf3(net.b.ns, '10.77.0.2', net.a.ns, { seconds: SECONDS })
        : await measureIperf3(net.a.ns, '10.77.0.1', net.b.ns, { seconds: SECONDS });
      return { label: meshdSends ? 'meshd → wireguard-go' : 'wireguard-go → meshd', mbps: r.mbps, retransmits: r.retransmits };
    } finally {
      await meshd.proc.stop(5000);
      await wg.stop();
    }
  });
}

const rows: Row[] = [];
const ref = await measureWireguardGoThroughput({ seconds: SECONDS });
rows.push({ label: 'wireguard-go ↔ wireguard-go', mbps: ref.mbps, retransmits: ref.retransmits });
rows.push(await meshdPair({}, 'meshd ↔ meshd (native crypto)', true));
rows.push(await meshdPair({ MESHD_NO_OFFLOAD: '1' }, 'meshd ↔ meshd (MESHD_NO_OFFLOAD=1)', false));
rows.push(await meshdPair({ MESHD_PURE_TS: '1' }, 'meshd ↔ meshd (MESHD_PURE_TS=1)', false));
rows.push(await meshdWithWireguardGo(true));
rows.push(await meshdWithWireguardGo(false));

console.log(`iperf3, 1 TCP stream, ${SECONDS} s each, two namespaces over veth, MTU 1420`);
for (const r of rows) {
  const ratio = r.mbps / ref.mbps;
  console.log(`${r.label.padEnd(36)} ${r.mbps.toFixed(0).padStart(6)} Mbit/s   ratio ${ratio.toFixed(2)}   retransmits ${r.retransmits ?? '-'}`);
}
const main = rows[1]!;
console.log(`meshd/wireguard-go = ${(main.mbps / ref.mbps).toFixed(2)} (target ≥ 0.70)`);
if (PROFILE_DIR) console.log(`CPU profiles of the meshd engines: ${PROFILE_DIR}`);
