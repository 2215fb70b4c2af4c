/**
 * The exit node client side: every IPv4 packet this host sends goes into the tunnel, except the
 * tunnel's own. Policy routing in the spirit of wg-quick's for 0.0.0.0/0:
 *
 *   table T:   default dev TUN; throw routes for the DWN and relay addresses (their TCP
 *              connections keep the host's own route: a relayed tunnel inside itself would loop)
 *   pref 5210  ipproto udp sport PORT lookup main     the WireGuard/disco/STUN socket's packets
 *   pref 5220  lookup main suppress_prefixlength 0     only with LAN access: the host's specific
 *                                                     routes (its LANs) win, its default does not
 *   pref 5230  lookup T                               everything else
 *
 * The tunnel's UDP is told apart by its source port, which our socket owns on this host (the
 * kernel puts the bound port in the route lookup of an unconnected socket's sendmsg), so this
 * works with every UDP implementation and needs no socket mark. The main table — and with it the
 * host's default route — is never modified: removing the rules and table T restores routing.
 */
import { runCommand, type Command } from './command.js';
import type { Journal } from './journal.js';

export interface ExitClientPlan {
  tun: string;
  /** The tunnel's UDP port on this host. */
  listenPort: number;
  /** IPv4 addresses that keep the host's own routes (DWN, relays). */
  bypass: string[];
  /** Keep the host's LANs (its specific routes) out of the tunnel. */
  allowLanAccess: boolean;
}

/** Routing table of the exit routes, and the preferences of our rules. */
export const EXIT_TABLE = 5282;
export const PREF_TUNNEL_UDP = 5210;
export const PREF_LAN = 5220;
export const PREF_EXIT = 5230;

const ip = (...args: string[]): Command => ({ tool: 'ip', args: ['-4', ...args] });

/** The `ip rule` selectors of a plan, by preference (pure; tests read it). */
export function exitRules(p: ExitClientPlan): string[][] {
  const rules: string[][] = [['pref', String(PREF_TUNNEL_UDP), 'ipproto', 'udp', 'sport', String(p.listenPort), 'lookup', 'main']];
  if (p.allowLanAccess) rules.push(['pref', String(PREF_LAN), 'lookup', 'main', 'suppress_prefixlength', '0']);
  rules.push(['pref', String(PREF_EXIT), 'lookup', String(EXIT_TABLE)]);
  return rules;
}

/** Apply a plan from a clean state (the caller undid the previous one). */
export async function applyExitClient(j: Journal, p: ExitClientPlan): Promise<void> {
  const table = String(EXIT_TABLE);
  j.record({ run: ip('route', 'flush', 'table', table) });
  await runCommand(ip('route', 'replace', 'default', 'dev', p.tun, 'table', table));
  for (const a of p.bypass) await runCommand(ip('route', 'replace', 'throw', `${a}/32`, 'table', table));
  for (const r of exitRules(p)) {
    j.record({ run: ip('rule', 'del', ...r) });
    await runCommand(ip('rule', 'add', ...r));
  }
}
