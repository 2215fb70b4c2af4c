/**
 * NAT routers: a namespace with a WAN leg on the lab internet (isp network) and a LAN bridge
 * (192.168.N.0/24, router at .1, hosts from .10) behind iptables NAT.
 *
 *   cone       MASQUERADE: Linux keeps the source port when it is free, so one inside
 *              address:port maps to the same outside port for every destination
 *              (endpoint-independent mapping).
 *   symmetric  MASQUERADE --random-fully: every new flow (each destination) gets a random port.
 *
 * Both drop NEW connections arriving on the WAN for the router itself
 * (`INPUT -i wan -m conntrack --ctstate NEW -j DROP`): without it an early punch packet from the
 * far side creates a conntrack entry that steals the port our own outgoing flow needs, and hole
 * punching fails. Unsolicited inbound flows are not forwarded to the LAN either.
 *
 * Mappings are dropped without the `conntrack` tool: removing the WAN address makes the kernel
 * flush every masqueraded flow on that address (the masquerade address notifier).
 */
import type { Host } from './host.js';
import type { Netns } from './lab.js';
import { INTERNET_NETWORKS, type Internet } from './internet.js';

export type NatKind = 'cone' | 'symmetric';

export const NAT_WAN_IF = 'wan';
export const NAT_LAN_IF = 'lan';

export interface NatRulesOptions {
  lanIf: string;
  wanIf: string;
  kind: NatKind;
}

function masqueradeArgs(wanIf: string, kind: NatKind): string[] {
  return ['-t', 'nat', '-A', 'POSTROUTING', '-o', wanIf, '-j', 'MASQUERADE', ...(kind === 'symmetric' ? ['--random-fully'] : [])];
}

/** Turns `ns` into a NAT router between two of its interfaces (forwarding on, iptables rules). */
export async function applyNatRules(ns: Netns, o: NatRulesOptions): Promise<void> {
  await ns.sysctl('net.ipv4.ip_forward', '1');
  await ns.iptables(...masqueradeArgs(o.wanIf, o.kind));
  await ns.iptables('-A', 'INPUT', '-i', o.wanIf, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
  await ns.iptables('-A', 'FORWARD', '-i', o.wanIf, '-o', o.lanIf, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP');
}

export class NatRouter {
  readonly lanIf = NAT_LAN_IF;
  readonly wanIf = NAT_WAN_IF;
  private wan: string;
  private natKind: NatKind;
  private udpDropped = false;
  private hostSeq = 0;

  constructor(
    readonly internet: Internet,
    readonly ns: Netns,
    kind: NatKind,
    wanAddr: string,
    /** e.g. '192.168.1' */
    readonly lanPrefix: string,
  ) {
    this.natKind = kind;
    this.wan = wanAddr;
  }

  get kind(): NatKind {
    return this.natKind;
  }
  /** The router's current public address (changes with rebind()). */
  get wanAddr(): string {
    return this.wan;
  }
  get lanAddr(): string {
    return `${this.lanPrefix}.1`;
  }
  get lanSubnet(): string {
    return `${this.lanPrefix}.0/24`;
  }
  get udpBlocked(): boolean {
    return this.udpDropped;
  }

  /** A new host namespace on this router's LAN, default route via the router. */
  async addHost(role: string): Promise<Host> {
    const lab = this.internet.lab;
    const ns = await lab.addNamespace(role);
    const n = this.hostSeq++;
    const addr = `${this.lanPrefix}.${10 + n}`;
    const port = `h${n}`;
    await lab.veth(this.ns, port, ns, 'eth0');
    await this.ns.ip('link', 'set', port, 'master', this.lanIf);
    await ns.ip('addr', 'add', `${addr}/24`, 'dev', 'eth0');
    await ns.ip('route', 'replace', 'default', 'via', this.lanAddr);
    return { role, ns, addr, prefixLen: 24, ifname: 'eth0', gateway: this.lanAddr, router: this };
  }

  /** Drops all forwarded UDP (both directions); TCP still passes. */
  async blockUdp(): Promise<void> {
    if (this.udpDropped) return;
    await this.ns.iptables('-I', 'FORWARD', '1', '-p', 'udp', '-j', 'DROP');
    this.udpDropped = true;
  }

  async unblockUdp(): Promise<void> {
    if (!this.udpDropped) return;
    await this.ns.iptables('-D', 'FORWARD', '-p', 'udp', '-j', 'DROP');
    this.udpDropped = false;
  }

  /** Switches the mapping behaviour; existing mappings are dropped. */
  async setKind(kind: NatKind): Promise<void> {
    await this.ns.iptables('-t', 'nat', '-F', 'POSTROUTING');
    await this.ns.iptables(...masqueradeArgs(this.wanIf, kind));
    this.natKind = kind;
    await this.flushMappings();
  }

  /**
   * Forgets every NAT mapping (as after a router reboot or a mapping time-out): the next packet
   * of any flow gets a new mapping. A cone NAT hands out the same port again when it is free;
   * use rebind() for a different public address.
   */
  async flushMappings(): Promise<void> {
    await this.readdress(this.wan);
  }

  /** Moves the WAN to a new public address (mappings are lost); resolves with it. */
  async rebind(): Promise<string> {
    await this.readdress(this.internet.allocate('isp'));
    return this.wan;
  }

  private async readdress(next: string): Promise<void> {
    const old = this.wan;
    await this.ns.ip('addr', 'del', `${old}/24`, 'dev', this.wanIf);
    await this.waitMappingsGone(old);
    await this.ns.ip('addr', 'add', `${next}/24`, 'dev', this.wanIf);
    await this.ns.ip('route', 'replace', 'default', 'via', INTERNET_NETWORKS.isp.gateway);
    this.wan = next;
  }

  /** The router's conntrack table (/proc/net/nf_conntrack lines), for diagnosis. */
  async conntrack(): Promise<string[]> {
    const text = await this.ns.run(['sh', '-c', 'cat /proc/net/nf_conntrack 2>/dev/null || true']);
    return text.split('\n').filter((l) => l.length > 0);
  }

  /** The kernel flushes masqueraded flows from a work queue: wait until it has. */
  private async waitMappingsGone(addr: string): Promise<void> {
    const until = Date.now() + 2000;
    const needle = `dst=${addr} `;
    while (Date.now() < until) {
      const lines = await this.conntrack();
      if (!lines.some((l) => l.includes(needle))) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** A NAT router on the internet with an empty LAN; add hosts with router.addHost(role). */
export async function natRouter(internet: Internet, kind: NatKind, opts: { role?: string } = {}): Promise<NatRouter> {
  const lab = internet.lab;
  const ns = await lab.addNamespace(opts.role ?? 'router');
  const wan = await internet.attach(ns, { network: 'isp', ifname: NAT_WAN_IF });
  const lanPrefix = `192.168.${internet.allocateLan()}`;
  await ns.ip('link', 'add', NAT_LAN_IF, 'type', 'bridge');
  await ns.ip('link', 'set', NAT_LAN_IF, 'up');
  await ns.ip('addr', 'add', `${lanPrefix}.1/24`, 'dev', NAT_LAN_IF);
  await applyNatRules(ns, { lanIf: NAT_LAN_IF, wanIf: NAT_WAN_IF, kind });
  return new NatRouter(internet, ns, kind, wan.addr, lanPrefix);
}
