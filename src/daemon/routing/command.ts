/**
 * Running `ip`, `iptables` and `ip6tables` for the routing module: execFile with an argument array (never a
 * shell), a timeout, and failures as MeshdError E_ROUTING carrying the tool's own message.
 */
import { execFile } from 'node:child_process';
import { MeshdError } from '../../errors.js';

export type Tool = 'ip' | 'iptables' | 'ip6tables';

/** The Debian/Ubuntu package that provides each tool. */
const PACKAGE: Record<Tool, string> = { ip: 'iproute2', iptables: 'iptables', ip6tables: 'iptables (it provides ip6tables)' };

/** One command: the tool and its arguments. */
export interface Command {
  tool: Tool;
  args: string[];
}

/** Run one command; resolves stdout, rejects E_ROUTING. */
export function runCommand(c: Command): Promise<string> {
  // -w: wait for the xtables lock instead of failing when another iptables runs
  const args = c.tool === 'ip' ? c.args : ['-w', ...c.args];
  return new Promise((resolve, reject) => {
    execFile(c.tool, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      if (err) {
        const detail = String(stderr).trim() || err.message;
        const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
        reject(
          new MeshdError('E_ROUTING', `${c.tool} ${args.join(' ')}: ${detail}`, {
            cause: err,
            hint: missing ? `install ${PACKAGE[c.tool]}` : 'run `meshd down` to undo what meshd changed, then check the host firewall and routes',
          }),
        );
        return;
      }
      resolve(String(stdout));
    });
  });
}

export function describeCommand(c: Command): string {
  return `${c.tool} ${c.args.join(' ')}`;
}
