/**
 * The subnet router and exit node side, for each IP family it has work in: forwarding on, forwarding
 * allowed from the tunnel only towards the approved routes (everything for an approved exit
 * node), replies back, and masquerading of mesh sources (unless `snat` is off for subnet routes).
 * All rules live in two chains of our own per family (iptables for IPv4, ip6tables for IPv6),
 * jumped to from FORWARD and nat POSTROUTING, so undoing is: remove the jumps, flush and delete
 * the chains, put the forwarding sysctl back. A family with nothing to route is not touched (an
 * IPv4-only router never runs ip6tables).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { runCommand, type Command } from './command.js';
import type { Journal } from './journal.js';

export interface RouterPlan {
  tun: string;
  /** The mesh's IPv4 prefix (sources that are masqueraded). */
  meshCIDR: string;
  /** The mesh's IPv6 prefix (sources that are masqueraded over IPv6). */
  meshCIDR6: string;
  /** Approved subnet routes, IPv4 and IPv6. */
  routes: string[];
  /** Approved exit node: forward and masquerade everything IPv4 from the tunnel. */
  exitNode: boolean;
  /** Approved exit node that carries IPv6 too (the host has an IPv6 uplink): the same for IPv6. */
  exitNode6: boolean;
  /** Masquerade traffic to subnet routes (default true; `--snat-subnet-routes=false`). */
  snat: boolean;
}

export type Family = 4 | 6;

const FORWARDING: Record<Family, string> = {
  4: '/proc/sys/net/ipv4/ip_forward',
  6: '/proc/sys/net/ipv6/conf/all/forwarding',
};

/** Our chain names for this tunnel (at most 25 characters: iptables allows 28). */
export function chainNames(tun: string): { fwd: string; nat: string } {
  return { fwd: `meshd-fwd-${tun}`, nat: `meshd-nat-${tun}` };
}

const ipt = (family: Family, ...args: string[]): Command => ({ tool: family === 4 ? 'iptables' : 'ip6tables', args });

/** Whether a plan has anything to forward in a family. */
export function routesFamily(p: RouterPlan, family: Family): boolean {
  return (family === 4 ? p.exitNode : p.exitNode6) || p.routes.some((r) => r.includes(':') === (family === 6));
}

/** The rules of our two chains of one family for a plan (pure; tests read it). */
export function routerRules(p: RouterPlan, family: Family = 4): { fwd: string[][]; nat: string[][] } {
  const routes = p.routes.filter((r) => r.includes(':') === (family === 6));
  const exitNode = family === 4 ? p.exitNode : p.exitNode6;
  const meshCIDR = family === 4 ? p.meshCIDR : p.meshCIDR6;
  const fwd: string[][] = [];
  const nat: string[][] = [];
  if (exitNode) fwd.push(['-i', p.tun, '!', '-o', p.tun, '-j', 'ACCEPT']);
  else for (const r of routes) fwd.push(['-i', p.tun, '-d', r, '-j', 'ACCEPT']);
  fwd.push(['-o', p.tun, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
  // without SNAT the LAN sees mesh addresses and may open connections to the mesh itself
  if (!p.snat) for (const r of routes) fwd.push(['-o', p.tun, '-s', r, '-j', 'ACCEPT']);
  // nothing else from the tunnel is forwarded: only approved routes are used
  fwd.push(['-i', p.tun, '-j', 'DROP']);
  if (!p.snat) for (const r of routes) nat.push(['-d', r, '-j', 'RETURN']);
  if (exitNode) nat.push(['-s', meshCIDR, '!', '-o', p.tun, '-j', 'MASQUERADE']);
  else if (p.snat) for (const r of routes) nat.push(['-s', meshCIDR, '-d', r, '-j', 'MASQUERADE']);
  return { fwd, nat };
}

async function setSysctl(j: Journal, path: string, value: string): Promise<void> {
  const old = readFileSync(path, 'utf8').trim();
  if (old === value) return;
  j.record({ sysctl: path, value: old });
  writeFileSync(path, `${value}\n`);
}

/** Create a chain of ours (recorded: flushed and deleted on undo) and fill it. */
async function chain(j: Journal, family: Family, table: 'filter' | 'nat', name: string, from: string, rules: string[][]): Promise<void> {
  const t = ['-t', table];
  j.record({ run: ipt(family, ...t, '-X', name) });
  j.record({ run: ipt(family, ...t, '-F', name) });
  await runCommand(ipt(family, ...t, '-N', name));
  for (const r of rules) await runCommand(ipt(family, ...t, '-A', name, ...r));
  j.record({ run: ipt(family, ...t, '-D', from, '-j', name) });
  await runCommand(ipt(family, ...t, '-I', from, '1', '-j', name));
}

/** Apply a plan from a clean state (the caller undid the previous one). */
export async function applyRouter(j: Journal, p: RouterPlan): Promise<void> {
  const names = chainNames(p.tun);
  for (const family of [4, 6] as const) {
    if (!routesFamily(p, family)) continue;
    const { fwd, nat } = routerRules(p, family);
    await setSysctl(j, FORWARDING[family], '1');
    await chain(j, family, 'filter', names.fwd, 'FORWARD', fwd);
    if (nat.length > 0) await chain(j, family, 'nat', names.nat, 'POSTROUTING', nat);
  }
}
