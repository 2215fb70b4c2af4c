/** `meshd acl set FILE`, `meshd acl show`. */
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';

export function registerAcl(program: Command, io: Io): void {
  const acl = subcommand(program, 'acl', 'packet filter policy of the network');

  action(subcommand(acl, 'set <file>', 'set the ACL policy from a JSON file (owner); without "version" it gets the next one'), io, async (ctx, file: string) => {
    const { readPolicyFile, setAcl } = await import('../../control/acl-ops.js');
    const { policy, bump } = readPolicyFile(file); // validate before touching the network
    const r = await setAcl(controlContext(ctx), policy, { bump });
    ctx.print(r, `ACL policy version ${r.version} set (${r.rules} rule${r.rules === 1 ? '' : 's'}).`);
  });

  action(subcommand(acl, 'show', 'show the ACL policy in force'), io, async (ctx) => {
    const { showAcl } = await import('../../control/acl-ops.js');
    const r = await showAcl(controlContext(ctx));
    ctx.print(r, () => (r.policy ? JSON.stringify(r.policy, null, 2) : 'No ACL policy: every device may reach every other.'));
  });
}
