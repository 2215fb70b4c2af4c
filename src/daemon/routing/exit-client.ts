/**
 * The exit node client side: every IPv4 packet this host sends goes into the tunnel, except the
 * tunnel's own. Policy routing in the spirit of wg-quick's for 0.0.0.0/0:
 *
 *   table T:   default dev TUN; throw routes for the DWN and relay addresses (their TCP
 *              connections keep the host's own route: a relayed tunnel inside itself would loop)
 *   pref 5210  fwmark 0x5282 lookup main             the WireGuard/disco/STUN socket's packets
 *              (or: ipproto udp sport PORT)           (marked with SO_MARK, else by source port)
 *   pref 5220  lookup main suppress_prefixlength 0     only with LAN access: the host's specific
 *                                                     routes (its LANs) win, its default does not
 *   pref 5230  lookup T                               everything else
 *
 * The tunnel's UDP is told apart by the SO_MARK on its socket, as wg-quick does; when the socket
 * could not be marked (node:dgram fallback, an addon built before udpSetMark) by its source port,
 * which our socket owns on this host (the kernel puts the bound port in the route lookup of an
 * unconnected socket's sendmsg). The main table — and with it the
 * host's default route — is never modified: removing the rules and table T restores routing.
 */
import { runCommand, type Command } from './command.js';
import type { Journal } from './journal.js';

export interface ExitClientPlan {
  tun: string;
  /** The tunnel's UDP port on this host. */
  listenPort: number;
  /** The SO_MARK the tunnel's UDP socket carries (0: none, told apart by its port instead). */
  socketMark: number;
  /** IPv4 addresses that keep the host's own routes (DWN, relays). */
  bypass: string[];
  /** Keep the host's LANs (its specific routes) out of the tunnel. */
  allowLanAccess: boolean;
}

/** Routing table of the exit routes, and the preferences of our rules. */
export const EXIT_TABLE = 5282;
/** The SO_MARK put on the tunnel's UDP socket when an exit node is to be used. */
export const TUNNEL_SOCKET_MARK = 0x5282;
export const PREF_TUNNEL_UDP = 5210;
export const PREF_LAN = 5220;
export const PREF_EXIT = 5230;

const ip = (...args: string[]): Command => ({ tool: 'ip', args: ['-4', ...args] });

/** The `ip rule` selectors of a plan, by preference (pure; tests read it). */
export function exitRules(p: ExitClientPlan): string[][] {
  const own = p.socketMark !== 0 ? ['fwmark', `0x${p.socketMark.toString(16)}`] : ['ipproto', 'udp', 'sport', String(p.listenPort)];
  const rules: string[][] = [['pref', String(PREF_TUNNEL_UDP), ...own, 'lookup', 'main']];
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
