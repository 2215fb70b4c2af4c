/**
 * The subnet router and exit node side: IPv4 forwarding on, forwarding allowed from the tunnel
 * only towards the approved routes (everything for an approved exit node), replies back, and
 * masquerading of mesh sources (unless `snat` is off for subnet routes). All rules live in two
 * chains of our own, jumped to from FORWARD and nat POSTROUTING, so undoing is: remove the jumps,
 * flush and delete the chains, put ip_forward back.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { runCommand, type Command } from './command.js';
import type { Journal } from './journal.js';

export interface RouterPlan {
  tun: string;
  /** The mesh's IPv4 prefix (sources that are masqueraded). */
  meshCIDR: string;
  /** Approved subnet routes (IPv4 ones are forwarded; IPv6 routing is not done here). */
  routes: string[];
  /** Approved exit node: forward and masquerade everything from the tunnel. */
  exitNode: boolean;
  /** Masquerade traffic to subnet routes (default true; `--snat-subnet-routes=false`). */
  snat: boolean;
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

/** Our chain names for this tunnel (at most 25 characters: iptables allows 28). */
export function chainNames(tun: string): { fwd: string; nat: string } {
  return { fwd: `meshd-fwd-${tun}`, nat: `meshd-nat-${tun}` };
}

const ipt = (...args: string[]): Command => ({ tool: 'iptables', args });

/** The rules of our two chains for a plan (pure; tests read it). */
export function routerRules(p: RouterPlan): { fwd: string[][]; nat: string[][] } {
  const v4 = p.routes.filter((r) => !r.includes(':'));
  const fwd: string[][] = [];
  const nat: string[][] = [];
  if (p.exitNode) fwd.push(['-i', p.tun, '!', '-o', p.tun, '-j', 'ACCEPT']);
  else for (const r of v4) fwd.push(['-i', p.tun, '-d', r, '-j', 'ACCEPT']);
  fwd.push(['-o', p.tun, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
  // without SNAT the LAN sees mesh addresses and may open connections to the mesh itself
  if (!p.snat) for (const r of v4) fwd.push(['-o', p.tun, '-s', r, '-j', 'ACCEPT']);
  // nothing else from the tunnel is forwarded: only approved routes are used
  fwd.push(['-i', p.tun, '-j', 'DROP']);
  if (!p.snat) for (const r of v4) nat.push(['-d', r, '-j', 'RETURN']);
  if (p.exitNode) nat.push(['-s', p.meshCIDR, '!', '-o', p.tun, '-j', 'MASQUERADE']);
  else if (p.snat) for (const r of v4) nat.push(['-s', p.meshCIDR, '-d', r, '-j', 'MASQUERADE']);
  return { fwd, nat };
}

async function setSysctl(j: Journal, path: string, value: string): Promise<void> {
  const old = readFileSync(path, 'utf8').trim();
  if (old === value) return;
  j.record({ sysctl: path, value: old });
  writeFileSync(path, `${value}\n`);
}

/** Create a chain of ours (recorded: flushed and deleted on undo) and fill it. */
async function chain(j: Journal, table: 'filter' | 'nat', name: string, from: string, rules: string[][]): Promise<void> {
  const t = ['-t', table];
  j.record({ run: ipt(...t, '-X', name) });
  j.record({ run: ipt(...t, '-F', name) });
  await runCommand(ipt(...t, '-N', name));
  for (const r of rules) await runCommand(ipt(...t, '-A', name, ...r));
  j.record({ run: ipt(...t, '-D', from, '-j', name) });
  await runCommand(ipt(...t, '-I', from, '1', '-j', name));
}

/** Apply a plan from a clean state (the caller undid the previous one). */
export async function applyRouter(j: Journal, p: RouterPlan): Promise<void> {
  const { fwd, nat } = routerRules(p);
  const names = chainNames(p.tun);
  await setSysctl(j, IP_FORWARD, '1');
  await chain(j, 'filter', names.fwd, 'FORWARD', fwd);
  if (nat.length > 0) await chain(j, 'nat', names.nat, 'POSTROUTING', nat);
}
