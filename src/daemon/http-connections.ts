/**
 * Dropping fetch()'s pooled HTTP connections. After a local address goes away, a kept-alive
 * connection bound to it is dead but looks open: the next DWN request on it would hang until its
 * timeout. Node's fetch (undici) takes its connection pool from the global dispatcher, which
 * undici keeps under a registered symbol precisely so that other copies of it can replace it;
 * a fresh one of the same class starts with no connections, and destroying the old one fails
 * its in-flight requests at once (their callers retry) instead of after a timeout.
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

interface Dispatcher {
  destroy(): Promise<void>;
}

/** Replace fetch's connection pool with an empty one; false when fetch has not made one yet. */
export function resetHttpConnections(): boolean {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const current = g[GLOBAL_DISPATCHER] as (Dispatcher & { constructor: new () => Dispatcher }) | undefined;
  if (!current || typeof current.destroy !== 'function') return false;
  g[GLOBAL_DISPATCHER] = new current.constructor();
  current.destroy().catch(() => undefined);
  return true;
}
