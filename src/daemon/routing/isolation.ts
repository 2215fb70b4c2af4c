/**
 * No forwarding between two meshd networks: a host in several networks (one TUN each) must not
 * carry one network's packets into another, whatever its forwarding settings or the subnet
 * router / exit node rules (router.ts: an exit node accepts everything from its tunnel to any
 * other device). Every meshd TUN is in one device group (host-tuns.ts); one rule in the mangle
 * table's FORWARD chain — traversed before the filter table, so no ACCEPT of ours or anyone's
 * comes first — drops what would go from one device of the group to another.
 */
import { runCommand, type Command } from './command.js';
import type { Journal } from './journal.js';

export interface IsolationPlan {
  /** meshd's device group. */
  group: number;
}

/** The rule (pure; tests read it). */
export function isolationRule(p: IsolationPlan): string[] {
  return ['-m', 'devgroup', '--src-group', String(p.group), '--dst-group', String(p.group), '-j', 'DROP'];
}

const ipt = (...args: string[]): Command => ({ tool: 'iptables', args });

/** Insert the rule (recorded: deleted on undo). Each daemon inserts and deletes its own copy. */
export async function applyIsolation(j: Journal, p: IsolationPlan): Promise<void> {
  const rule = isolationRule(p);
  j.record({ run: ipt('-t', 'mangle', '-D', 'FORWARD', ...rule) });
  await runCommand(ipt('-t', 'mangle', '-I', 'FORWARD', '1', ...rule));
}
