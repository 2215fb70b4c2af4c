/**
 * Ready-made topologies. Each takes an existing Lab or makes its own; `close()` closes that lab
 * (everything in it, including what else was built in it).
 */
import { Internet } from './internet.js';
import type { Host } from './host.js';
import { Lab, type LabOptions } from './lab.js';
import { natRouter, type NatKind, type NatRouter } from './nat-router.js';

export interface TwoHosts {
  lab: Lab;
  /** 198.51.100.1/24 on eth0 */
  a: Host;
  /** 198.51.100.2/24 on eth0 */
  b: Host;
  close(): Promise<void>;
}

export interface TopologyOptions {
  /** Build in this lab instead of a new one. */
  lab?: Lab;
  /** Options for the new lab. */
  labOptions?: LabOptions;
}

/** Two namespaces on one veth link, nothing else: WireGuard interop and throughput. */
export async function twoHostsDirect(opts: TopologyOptions & { mtu?: number } = {}): Promise<TwoHosts> {
  const lab = opts.lab ?? (await Lab.create(opts.labOptions));
  try {
    const na = await lab.addNamespace('a');
    const nb = await lab.addNamespace('b');
    await lab.veth(na, 'eth0', nb, 'eth0', opts.mtu === undefined ? {} : { mtu: opts.mtu });
    const host = (role: string, ns: typeof na, addr: string): Host => ({
      role,
      ns,
      addr,
      prefixLen: 24,
      ifname: 'eth0',
      gateway: undefined,
      router: undefined,
    });
    await na.ip('addr', 'add', '198.51.100.1/24', 'dev', 'eth0');
    await nb.ip('addr', 'add', '198.51.100.2/24', 'dev', 'eth0');
    return { lab, a: host('a', na, '198.51.100.1'), b: host('b', nb, '198.51.100.2'), close: () => lab.close() };
  } catch (e) {
    if (!opts.lab) await lab.close();
    throw e;
  }
}

/** What stands between a host and the internet. */
export type NatSpec = NatKind | 'none';

export interface NatLab {
  lab: Lab;
  internet: Internet;
  /** Public server host (relay, STUN, DWN) on 198.51.100.0/24. */
  relay: Host;
  /** Behind routers.a (LAN 192.168.1.0/24), or on 203.0.113.0/24 directly for 'none'. */
  a: Host;
  /** Behind routers.b (next LAN), or on 203.0.113.0/24 directly for 'none'. */
  b: Host;
  routers: { a: NatRouter | undefined; b: NatRouter | undefined };
  close(): Promise<void>;
}

/**
 * Two hosts, each behind its own NAT router (or none), on a shared internet with a public
 * relay/STUN host:
 *
 *   a ─ lan ─ [router-a] ─ wan ┐                ┌ relay 198.51.100.10
 *                              ├─ internet br0 ─┤
 *   b ─ lan ─ [router-b] ─ wan ┘                └ (routers' WANs 203.0.113.10, .11, …)
 */
export async function natLab(spec: { a: NatSpec; b: NatSpec }, opts: TopologyOptions = {}): Promise<NatLab> {
  const lab = opts.lab ?? (await Lab.create(opts.labOptions));
  try {
    const internet = await Internet.create(lab);
    const relay = await internet.addHost('relay', { network: 'public' });
    const side = async (name: 'a' | 'b', kind: NatSpec): Promise<[Host, NatRouter | undefined]> => {
      if (kind === 'none') return [await internet.addHost(name, { network: 'isp' }), undefined];
      const router = await natRouter(internet, kind, { role: `router-${name}` });
      return [await router.addHost(name), router];
    };
    const [a, ra] = await side('a', spec.a);
    const [b, rb] = await side('b', spec.b);
    return { lab, internet, relay, a, b, routers: { a: ra, b: rb }, close: () => lab.close() };
  } catch (e) {
    if (!opts.lab) await lab.close();
    throw e;
  }
}
