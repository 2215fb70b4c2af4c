/**
 * The exit node client side: every packet this host sends goes into the tunnel, except the
 * tunnel's own. Policy routing in the spirit of wg-quick's for 0.0.0.0/0 and ::/0, the same
 * rules for IPv4 (`ip -4`) and IPv6 (`ip -6`):
 *
 *   table T:   default dev TUN; throw routes for the DWN and relay addresses (their TCP
 *              connections keep the host's own route: a relayed tunnel inside itself would loop)
 *   pref 5210  fwmark 0x5282 lookup main             the WireGuard/disco/STUN socket's packets
 *              (or: ipproto udp sport PORT)           (marked with SO_MARK, else by source port)
 *   pref 5220  lookup main suppress_prefixlength 0     only with LAN access: the host's specific
 *                                                     routes (its LANs) win, its default does not
 *   pref 5230  lookup T                               everything else
 *
 * IPv6 when the exit node does not carry it: table T (IPv6) holds `unreachable default` instead
 * of the default into the TUN, plus the mesh's IPv6 prefix and the peers' IPv6 subnet routes
 * into the TUN, so that no IPv6 packet leaves the host outside the tunnel while the mesh's own
 * IPv6 keeps working (with LAN access, rule 5220 keeps the host's IPv6 LANs). Link-local
 * (fe80::/10) is thrown back to the main table in both cases: it never leaves the link.
 *
 * The tunnel's UDP is told apart by the SO_MARK on its socket, as wg-quick does; when the socket
 * could not be marked (node:dgram fallback, an addon built before udpSetMark) by its source port,
 * which our socket owns on this host (the kernel puts the bound port in the route lookup of an
 * unconnected socket's sendmsg). The main table — and with it the
 * host's default route — is never modified: removing the rules and table T restores routing.
 */
import { runCommand, type Command } from './command.js';
import type { Journal, UndoStep } from './journal.js';

export interface ExitClientPlan {
  tun: string;
  /** The tunnel's UDP port on this host. */
  listenPort: number;
  /** The SO_MARK the tunnel's UDP socket carries (0: none, told apart by its port instead). */
  socketMark: number;
  /** Addresses (IPv4 and IPv6) that keep the host's own routes (DWN, relays). */
  bypass: string[];
  /**
   * IPv6 while the exit node is used: 'exit' through it (it carries IPv6), 'block' unreachable
   * beyond the mesh (it does not: nothing may leak outside the tunnel), null the host has no
   * IPv6 (nothing to do).
   */
  ipv6: 'exit' | 'block' | null;
  /** IPv6 prefixes that stay routed into the TUN when IPv6 is blocked (the mesh's, peers' subnet routes). */
  tunRoutes6: string[];
  /** Keep the host's LANs (its specific routes) out of the tunnel. */
  allowLanAccess: boolean;
}

/** Routing table of the exit routes, and the preferences of our rules. */
export const EXIT_TABLE = 5282;
/** The SO_MARK put on the tunnel's UDP socket when an exit node is to be used. */
export const TUNNEL_SOCKET_MARK = 0x5282;
/** A rule that, while exit routes are being replaced by others, keeps traffic from leaving outside the tunnel. */
export const PREF_GUARD = 5200;
export const PREF_TUNNEL_UDP = 5210;
export const PREF_LAN = 5220;
export const PREF_EXIT = 5230;

const ip = (family: 4 | 6, ...args: string[]): Command => ({ tool: 'ip', args: [`-${family}`, ...args] });

/** The `ip rule` selectors of a plan, by preference (pure; tests read it). */
export function exitRules(p: ExitClientPlan): string[][] {
  const own = p.socketMark !== 0 ? ['fwmark', `0x${p.socketMark.toString(16)}`] : ['ipproto', 'udp', 'sport', String(p.listenPort)];
  const rules: string[][] = [['pref', String(PREF_TUNNEL_UDP), ...own, 'lookup', 'main']];
  if (p.allowLanAccess) rules.push(['pref', String(PREF_LAN), 'lookup', 'main', 'suppress_prefixlength', '0']);
  rules.push(['pref', String(PREF_EXIT), 'lookup', String(EXIT_TABLE)]);
  return rules;
}

/** The routes of table T of one family, as `ip route` arguments (pure; tests read it). */
export function exitRoutes(p: ExitClientPlan, family: 4 | 6): string[][] {
  const out: string[][] = [];
  if (family === 4 || p.ipv6 === 'exit') out.push(['default', 'dev', p.tun]);
  else {
    out.push(['unreachable', 'default']);
    for (const r of p.tunRoutes6) out.push([r, 'dev', p.tun]);
  }
  if (family === 6) out.push(['throw', 'fe80::/10']);
  for (const a of p.bypass) if (a.includes(':') === (family === 6)) out.push(['throw', `${a}/${family === 4 ? 32 : 128}`]);
  return out;
}

/** Apply a plan from a clean state (the caller undid the previous one). */
export async function applyExitClient(j: Journal, p: ExitClientPlan): Promise<void> {
  const table = String(EXIT_TABLE);
  for (const family of p.ipv6 === null ? ([4] as const) : ([4, 6] as const)) {
    j.record({ run: ip(family, 'route', 'flush', 'table', table) });
    for (const r of exitRoutes(p, family)) await runCommand(ip(family, 'route', 'replace', ...r, 'table', table));
    for (const r of exitRules(p)) {
      j.record({ run: ip(family, 'rule', 'del', ...r) });
      await runCommand(ip(family, 'rule', 'add', ...r));
    }
  }
}

/**
 * While one exit plan is replaced by another (its rules removed, the new ones added), nothing
 * may leave the host outside the tunnel: `unreachable` rules at PREF_GUARD for the families
 * given, ahead of all ours, recorded so that a crash in between takes them away too. Returns
 * their undo steps (the caller undoes them once the new plan is in).
 */
export async function addExitGuard(j: Journal, families: readonly (4 | 6)[]): Promise<UndoStep[]> {
  const steps: UndoStep[] = [];
  for (const family of families) {
    const rule = ['pref', String(PREF_GUARD), 'unreachable'];
    steps.push(j.record({ run: ip(family, 'rule', 'del', ...rule) }));
    await runCommand(ip(family, 'rule', 'add', ...rule));
  }
  return steps;
}
