/**
 * The daemon process: takes the home's lock, serves the control socket, runs the agent, and
 * stops cleanly on SIGINT/SIGTERM or `POST /v0/shutdown` — tunnel device, routes, socket and
 * lock removed on every exit path it can see.
 */
import { MeshdError } from '../errors.js';
import { RawResponse, startApiServer, type ApiServer, type Handler } from './api.js';
import { acquireDaemonLock, type DaemonLock } from './lock.js';
import type { Logger } from './log.js';

/** What the daemon runs: the control loop joined to the engine. */
export interface AgentLike {
  start(): Promise<void>;
  status(): unknown;
  /** The status after checking which peers are there (liveness): `GET /v0/status?live=1`. */
  liveStatus?(): Promise<unknown>;
  stop(): Promise<void>;
  /** Extra control-socket routes ("GET /v0/peers" → handler). */
  routes?(): Record<string, Handler>;
}

export type DaemonState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface DaemonHandle {
  readonly stopped: Promise<void>;
  stop(reason: string): Promise<void>;
  state(): DaemonState;
}

export async function runDaemon(opts: {
  home: string;
  log: Logger;
  agent: AgentLike;
  handleSignals?: boolean;
  /** Also serve the agent's `GET /metrics` route over plain HTTP here (`--metrics-listen`). */
  metricsListen?: { host: string; port: number } | undefined;
}): Promise<DaemonHandle> {
  const { home, log, agent } = opts;
  const lock: DaemonLock = acquireDaemonLock(home);
  let state: DaemonState = 'starting';
  let failure: string | undefined;
  let api: ApiServer | undefined;
  let metricsServer: { close(): Promise<void> } | undefined;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | undefined;

  const stop = (reason: string): Promise<void> => {
    if (stopping) return stopping;
    state = 'stopping';
    log.info('daemon.stopping', { reason });
    stopping = (async () => {
      try {
        await agent.stop();
      } catch (e) {
        log.error('agent.stop-failed', { error: (e as Error).message });
      }
      await api?.close().catch(() => undefined);
      await metricsServer?.close().catch(() => undefined);
      lock.release();
      state = 'stopped';
      log.info('daemon.stopped', { reason });
      if (opts.handleSignals !== false) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onSignal);
        process.off('unhandledRejection', onRejection);
        process.off('uncaughtException', onException);
      }
      resolveStopped();
    })();
    return stopping;
  };
  const onSignal = (sig: NodeJS.Signals) => void stop(sig);
  // A rejected promise nobody handled is a bug to log, not a reason to drop every tunnel. An
  // uncaught exception leaves state unknown: stop cleanly (device, routes, lock) and exit 1.
  const onRejection = (e: unknown) => log.error('daemon.unhandled-rejection', { error: e instanceof Error ? e.message : String(e), stack: e instanceof Error ? e.stack : undefined });
  const onException = (e: Error) => {
    log.error('daemon.uncaught-exception', { error: e.message, stack: e.stack });
    process.exitCode = 1;
    void stop('uncaught exception');
  };
  if (opts.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
    process.on('unhandledRejection', onRejection);
    process.on('uncaughtException', onException);
  }

  try {
    api = await startApiServer(home, {
      'GET /v0/status': () => ({ state, error: failure, pid: process.pid, ...(state === 'running' ? (agent.status() as object) : {}) }),
      // what `meshd status` shows: the peers not heard from just now are pinged first
      'GET /v0/status/live': async () => {
        const s = state === 'running' ? ((await (agent.liveStatus?.() ?? agent.status())) as object) : {};
        return { state, error: failure, pid: process.pid, ...s };
      },
      'POST /v0/shutdown': () => {
        setImmediate(() => void stop('shutdown requested'));
        return { stopping: true };
      },
      ...(agent.routes?.() ?? {}),
    });
    log.info('daemon.starting', { pid: process.pid, home });
    const metricsRoute = agent.routes?.()['GET /metrics'];
    if (opts.metricsListen && metricsRoute) {
      const { serveMetrics } = await import('./metrics.js');
      const render = async () => {
        const r = await metricsRoute(undefined);
        return r instanceof RawResponse ? r : new RawResponse('application/json', JSON.stringify(r));
      };
      const m = await serveMetrics(opts.metricsListen, render);
      metricsServer = m;
      log.info('metrics.serving', { host: opts.metricsListen.host, port: m.port });
    }
    await agent.start();
    state = 'running';
    log.info('daemon.running', { pid: process.pid });
  } catch (e) {
    failure = (e as Error).message;
    state = 'failed';
    log.error('daemon.start-failed', { error: failure, code: e instanceof MeshdError ? e.code : undefined });
    await stop('start failed');
    throw e;
  }
  return { stopped, stop, state: () => state };
}
