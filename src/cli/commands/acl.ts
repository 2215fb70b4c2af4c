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
    const [{ showAcl }, { cachedAcl }] = await Promise.all([import('../../control/acl-ops.js'), import('../../control/status-ops.js')]);
    const cc = controlContext(ctx);
    const r = await showAcl(cc).catch((e: unknown) => cachedAcl(cc, e));
    if ('warning' in r) {
      // the DWN is down: what this device last applied, saying so
      ctx.progress(`Warning: ${r.warning}`);
      const c = r.compiled;
      ctx.print(r, () =>
        c.policyVersion === null
          ? 'No ACL policy (as last applied): every device may reach every other.'
          : `ACL policy version ${c.policyVersion} as last applied: default ${c.defaultAction}, ${c.rules.length} compiled rule${c.rules.length === 1 ? '' : 's'} ` +
            '(the policy text needs the DWN).\n' +
            JSON.stringify(c.rules, null, 2),
      );
      return;
    }
    ctx.print(r, () => (r.policy ? JSON.stringify(r.policy, null, 2) : 'No ACL policy: every device may reach every other.'));
  });
}
