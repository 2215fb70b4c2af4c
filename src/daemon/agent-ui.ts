/**
 * The agent's side of `meshd ui`: the dashboard's loopback server (loaded only when asked for),
 * fed by the agent's status and events, its owner actions going through the same control-socket
 * routes as the CLI's.
 */
import type { ControlClient } from '../control/control-client.js';
import type { DataPlane } from '../engine/dataplane.js';
import type { AgentStatus } from './agent-types.js';
import type { Logger } from './log.js';
import type { RecentEvents } from './recent-events.js';
import type { UiActionKind, UiServer } from './ui-server.js';

type Route = (body: unknown) => unknown;

export interface AgentUiDeps {
  log: Logger;
  routes: Record<'POST /v0/peers/approve' | 'POST /v0/peers/remove' | 'POST /v0/invites/revoke', Route>;
  /** The identity the daemon runs (owner requests name it). */
  as: string;
  dataplane: () => DataPlane | undefined;
  control: () => ControlClient | undefined;
  status: (silent: ReadonlySet<string>) => AgentStatus;
  hostname: () => string | null;
  events: () => ReturnType<RecentEvents['last']>;
}

export async function startAgentUi(d: AgentUiDeps): Promise<UiServer> {
  const [{ startUiServer }, { buildUiView, UiLiveness }] = await Promise.all([import('./ui-server.js'), import('./ui-view.js')]);
  const liveness = new UiLiveness();
  const { as, routes } = d;
  const handlers: Record<UiActionKind, (id: string) => unknown> = {
    approve: (id) => routes['POST /v0/peers/approve']({ as, dids: [id] }),
    remove: (id) => routes['POST /v0/peers/remove']({ as, dids: [id] }),
    'revoke-invite': (id) => routes['POST /v0/invites/revoke']({ as, id }),
  };
  return startUiServer({
    log: d.log,
    backend: {
      view: () =>
        buildUiView({
          status: d.status(liveness.tick(d.dataplane())),
          hostname: d.hostname(),
          control: d.control(),
          events: d.events(),
          now: Date.now(),
        }),
      action: async (kind, id) => handlers[kind](id),
    },
  });
}
