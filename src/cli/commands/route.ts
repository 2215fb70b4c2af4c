/** `meshd route list|approve|remove`: subnet routes and exit nodes, approved by the owner. */
import { daemonDir } from './network-target.js';
import type { Command } from 'commander';
import { action, subcommand, type Io } from '../program.js';
import { controlContext } from './network.js';
import type { RouteChange, RouteRow } from '../../control/route-ops.js';
import { MeshdError } from '../../errors.js';

/**
 * A route operation through this home's running daemon (its session is loaded and current);
 * undefined when none runs here or it runs another identity: the command does the work itself.
 */
async function viaDaemon<T>(home: string, method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<T | undefined> {
  const [{ runningDaemonPid }, { callDaemon }] = await Promise.all([import('../../daemon/lock.js'), import('../../daemon/api.js')]);
  if (runningDaemonPid(home) === null) return undefined;
  try {
    return await callDaemon<T>(home, method, path, body, 60_000);
  } catch (e) {
    if (e instanceof MeshdError && (e.code === 'E_WRONG_PROFILE' || e.code === 'E_NO_DAEMON' || e.code === 'E_NOT_OWNER')) return undefined;
    throw e;
  }
}

function formatRoutes(rows: RouteRow[]): string {
  const withRoutes = rows.filter((r) => r.advertised.length > 0 || r.approved.length > 0 || r.advertisesExitNode);
  if (withRoutes.length === 0) return 'No device advertises routes. A device offers them with `meshd up --advertise-routes CIDR,…` or `--advertise-exit-node`.';
  const lines: string[] = [];
  for (const r of withRoutes) {
    lines.push(`${r.hostname ?? '?'} ${r.meshIP} ${r.did}`);
    const all = new Set([...r.advertised, ...r.approved.filter((x) => x !== '0.0.0.0/0')]);
    for (const route of [...all].sort()) {
      const state = r.inUse.includes(route) ? 'approved, in use' : r.advertised.includes(route) ? 'waiting for approval' : 'approved, not advertised';
      lines.push(`  ${route.padEnd(20)} ${state}`);
    }
    if (r.advertisesExitNode || r.approved.includes('0.0.0.0/0')) {
      const state = r.exitNode ? 'approved, in use' : r.advertisesExitNode ? 'waiting for approval' : 'approved, not advertised';
      const families = r.advertisesExitNode ? (r.advertisesExitNodeIPv6 ? ' (IPv4 and IPv6)' : ' (IPv4 only: its clients get no IPv6 beyond the mesh)') : '';
      lines.push(`  ${'exit node'.padEnd(20)} ${state}${families}`);
    }
  }
  const waiting = withRoutes.some((r) => r.advertised.some((x) => !r.approved.includes(x)) || (r.advertisesExitNode && !r.exitNode));
  if (waiting) lines.push('', 'Approve with: meshd route approve DID CIDR   (exit node: meshd route approve DID exit-node)');
  return lines.join('\n');
}

function describeChange(r: RouteChange, approve: boolean): string {
  const what = r.route === '0.0.0.0/0' ? 'exit node' : `route ${r.route}`;
  if (!approve) return `Removed ${what} of ${r.did}. Peers stop using it within seconds.`;
  const head = r.changed ? `Approved ${what} of ${r.did}.` : `${what[0]!.toUpperCase()}${what.slice(1)} of ${r.did} was already approved.`;
  return r.advertised ? head : `${head}\nThe device does not advertise it yet; it is used once it does.`;
}

export function registerRoute(program: Command, io: Io): void {
  const route = subcommand(program, 'route', 'subnet routes and exit nodes the devices offer, approved by the owner');

  action(subcommand(route, 'list', 'list the routes devices advertise and which are approved'), io, async (ctx) => {
    const cc = controlContext(ctx);
    let rows = (await viaDaemon<{ routes: RouteRow[] }>(daemonDir(ctx), 'GET', '/v0/routes'))?.routes;
    if (rows === undefined) {
      const { listRoutes } = await import('../../control/route-ops.js');
      rows = await listRoutes(cc);
    }
    const list = rows;
    ctx.print({ routes: list }, () => formatRoutes(list));
  });

  for (const op of ['approve', 'remove'] as const) {
    const desc = op === 'approve' ? 'approve a route (or exit-node) a device advertises (owner)' : 'withdraw the approval of a route (or exit-node) (owner)';
    action(subcommand(route, `${op} <did> <cidr>`, desc), io, async (ctx, did: string, cidr: string) => {
      const cc = controlContext(ctx);
      const ops = await import('../../control/route-ops.js');
      const r =
        (await viaDaemon<RouteChange>(daemonDir(ctx), 'POST', `/v0/routes/${op}`, { as: cc.profile.did, did, route: cidr })) ??
        (await (op === 'approve' ? ops.approveRoute(cc, did, cidr) : ops.removeRoute(cc, did, cidr)));
      ctx.print(r, () => describeChange(r, op === 'approve'));
    });
  }
}
