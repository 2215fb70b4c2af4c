/**
 * The lab's "internet": one namespace holding a bridge (br0) that every public interface plugs
 * into, and routing between two documentation networks on it:
 *
 *   public  198.51.100.0/24  gateway 198.51.100.1  — servers: relay, STUN, DWN
 *   isp     203.0.113.0/24   gateway 203.0.113.1   — customers: NAT routers' WANs, hosts with no NAT
 *
 * These ranges exist only inside the lab's namespaces.
 */
import { LabError } from './errors.js';
import type { Host } from './host.js';
import type { Lab, Netns } from './lab.js';

export type InternetNetwork = 'public' | 'isp';

export const INTERNET_NETWORKS: Readonly<Record<InternetNetwork, { prefix: string; gateway: string; prefixLen: number }>> = {
  public: { prefix: '198.51.100', gateway: '198.51.100.1', prefixLen: 24 },
  isp: { prefix: '203.0.113', gateway: '203.0.113.1', prefixLen: 24 },
};

export interface Attachment {
  addr: string;
  prefixLen: number;
  gateway: string;
  ifname: string;
}

export interface AttachOptions {
  network?: InternetNetwork;
  /** Interface name inside the attached namespace (default 'eth0'). */
  ifname?: string;
  /** Address to use instead of the next free one of the network. */
  addr?: string;
  /** Install a default route via the network's gateway (default true). */
  defaultRoute?: boolean;
}

export class Internet {
  readonly bridge = 'br0';
  private readonly nextHost: Record<InternetNetwork, number> = { public: 10, isp: 10 };
  private portSeq = 0;
  private lanSeq = 0;

  private constructor(
    readonly lab: Lab,
    readonly ns: Netns,
  ) {}

  static async create(lab: Lab): Promise<Internet> {
    const ns = await lab.addNamespace('inet');
    await ns.ip('link', 'add', 'br0', 'type', 'bridge');
    await ns.ip('link', 'set', 'br0', 'up');
    for (const n of Object.values(INTERNET_NETWORKS)) {
      await ns.ip('addr', 'add', `${n.gateway}/${n.prefixLen}`, 'dev', 'br0');
    }
    await ns.sysctl('net.ipv4.ip_forward', '1');
    // Both networks share one wire: routing between them must not redirect hosts around us.
    await ns.sysctl('net.ipv4.conf.all.send_redirects', '0');
    await ns.sysctl('net.ipv4.conf.br0.send_redirects', '0');
    return new Internet(lab, ns);
  }

  /** The next unused address of a network. */
  allocate(network: InternetNetwork): string {
    const n = this.nextHost[network]++;
    if (n > 254) throw new LabError('E_LAB', `internet network ${network} is full`);
    return `${INTERNET_NETWORKS[network].prefix}.${n}`;
  }

  /** A fresh LAN index (1, 2, …) for a router's 192.168.N.0/24. */
  allocateLan(): number {
    const n = ++this.lanSeq;
    if (n > 254) throw new LabError('E_LAB', 'out of LAN subnets');
    return n;
  }

  /** Plugs `ns` into the internet with a veth and gives it an address (and a default route). */
  async attach(ns: Netns, opts: AttachOptions = {}): Promise<Attachment> {
    const net = INTERNET_NETWORKS[opts.network ?? 'public'];
    const ifname = opts.ifname ?? 'eth0';
    const addr = opts.addr ?? this.allocate(opts.network ?? 'public');
    const port = `p${this.portSeq++}`;
    await this.lab.veth(this.ns, port, ns, ifname);
    await this.ns.ip('link', 'set', port, 'master', this.bridge);
    await ns.ip('addr', 'add', `${addr}/${net.prefixLen}`, 'dev', ifname);
    if (opts.defaultRoute !== false) await ns.ip('route', 'replace', 'default', 'via', net.gateway);
    return { addr, prefixLen: net.prefixLen, gateway: net.gateway, ifname };
  }

  /** A new host namespace directly on the internet (no NAT). */
  async addHost(role: string, opts: { network?: InternetNetwork } = {}): Promise<Host> {
    const ns = await this.lab.addNamespace(role);
    const a = await this.attach(ns, { network: opts.network ?? 'public' });
    return { role, ns, addr: a.addr, prefixLen: a.prefixLen, ifname: a.ifname, gateway: a.gateway, router: undefined };
  }
}
