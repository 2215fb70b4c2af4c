/**
 * Host: a machine of the lab as Internet.addHost and NatRouter.addHost hand it out. Its own
 * module so that lab.ts, internet.ts and nat-router.ts can all name it without importing each
 * other in a circle; the router in front of a host is described by what a host's user reads of
 * it, which NatRouter provides.
 */
import type { Netns } from './lab.js';

/** A machine of the lab: a namespace with one address on one link. */
export interface Host {
  readonly role: string;
  readonly ns: Netns;
  /** IPv4 address on its link (a LAN address when behind a NAT router). */
  readonly addr: string;
  readonly prefixLen: number;
  /** Interface that carries `addr`. */
  readonly ifname: string;
  /** Default gateway, when it has one. */
  readonly gateway: string | undefined;
  /** The NAT router in front of it, when there is one (a NatRouter). */
  readonly router: HostRouter | undefined;
}

/** What a host sees of the NAT router in front of it. */
export interface HostRouter {
  readonly ns: Netns;
  readonly kind: 'cone' | 'symmetric';
  /** The router's current public address. */
  readonly wanAddr: string;
  readonly lanAddr: string;
  readonly lanSubnet: string;
}
