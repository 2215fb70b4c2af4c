/**
 * Keeps the embedded DWN this node hosts running: when its process dies it is started again
 * after 1 s, doubling to 30 s while it keeps dying (a server that ran for a minute starts
 * afresh). When another daemon of this home runs it (another network it owns), this one checks
 * that it answers and takes it over when that daemon goes (`meshd down --network OTHER`).
 * Nodes keep their tunnels meanwhile; their control clients reconnect and re-query.
 */
import { backoffDelay } from '../util/backoff.js';
import { isDwnUp, leaseEmbeddedDwn, type EmbeddedLease } from '../control/embedded.js';
import type { Logger } from './log.js';

/** How often a daemon using the DWN another daemon of its home runs checks that it is up. */
const SHARED_DWN_CHECK_MS = 2000;
/** Checks in a row it must miss (no answer within SHARED_DWN_ANSWER_MS) to count as stopped: a busy DWN is slow, not gone. */
const SHARED_DWN_MISSES = 3;
const SHARED_DWN_ANSWER_MS = 1500;

export class EmbeddedDwnKeeper {
  private lease: EmbeddedLease | undefined;
  private restarts = 0;
  private stopped = false;

  constructor(
    private readonly home: string,
    private readonly endpoint: string,
    private readonly listen: string,
    private readonly log: Logger,
  ) {}

  /** Lease the DWN (starting it when nothing answers); throws when it cannot start. */
  async start(): Promise<void> {
    const lease = await leaseEmbeddedDwn(this.home, this.endpoint, this.listen);
    this.lease = lease;
    const startedAt = Date.now();
    this.log.info('dwn.embedded', { endpoint: this.endpoint, started: lease.server !== undefined, pid: lease.server?.pid });
    void lease.server?.exited.then((code) => {
      if (this.stopped || this.lease !== lease) return;
      this.restarts = Date.now() - startedAt > 60_000 ? 0 : this.restarts + 1;
      this.restartLater(`exited (${code})`);
    });
    if (!lease.server) this.watchShared(lease);
  }

  /** Release the lease (stopping the server if this daemon started it and no other uses it). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.lease?.release();
  }

  private watchShared(lease: EmbeddedLease): void {
    let misses = 0;
    let checking = false;
    const timer = setInterval(() => {
      if (this.stopped || this.lease !== lease) return clearInterval(timer);
      if (checking) return;
      checking = true;
      void isDwnUp(this.endpoint, SHARED_DWN_ANSWER_MS).then((up) => {
        checking = false;
        misses = up ? 0 : misses + 1;
        if (up || misses < SHARED_DWN_MISSES || this.stopped || this.lease !== lease) return;
        clearInterval(timer);
        this.restartLater('the DWN this home shares between its networks stopped');
      });
    }, SHARED_DWN_CHECK_MS);
    timer.unref();
  }

  private restartLater(why: string): void {
    const delay = backoffDelay(this.restarts - 1, { initialMs: 1000, maxMs: 30_000, jitter: 0 });
    this.log.error('dwn.embedded-down', { why, restartInMs: delay });
    setTimeout(() => {
      if (this.stopped) return;
      this.start().catch((e: Error) => {
        this.restarts++;
        this.restartLater(e.message);
      });
    }, delay).unref();
  }
}
