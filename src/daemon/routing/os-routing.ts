/**
 * What the agent calls: the host routing this node needs for the network map in force — subnet
 * router / exit node forwarding (router.ts) and exit node client routes (exit-client.ts) — kept
 * in the journal so that `down`, a crash and the next start all end with the host as it was.
 *
 *   const r = new OsRouting(home, log);
 *   await r.recover();            // undo what a crashed run left (start of `up`)
 *   await r.apply({ router, exit });   // whenever the wanted state changes; a no-op otherwise
 *   await r.clear();              // `down`
 */
import { addExitGuard, applyExitClient, type ExitClientPlan } from './exit-client.js';
import { Journal, type JournalLog, type UndoStep } from './journal.js';
import { applyRouter, type RouterPlan } from './router.js';
import { applyIsolation, type IsolationPlan } from './isolation.js';

export interface RoutingPlan {
  router: RouterPlan | null;
  exit: ExitClientPlan | null;
  /** Drop forwarding between meshd tunnels (another meshd network runs on this host). */
  isolate?: IsolationPlan | null;
}

export class OsRouting {
  private readonly journal: Journal;
  private applied = 'null';
  /** Whether the applied plan has exit routes (a new one replacing them is guarded). */
  private appliedExit = false;

  constructor(
    home: string,
    private readonly log: JournalLog,
  ) {
    this.journal = new Journal(home, log);
  }

  /** Undo whatever an earlier run recorded and did not undo (it crashed or was killed). */
  async recover(): Promise<void> {
    const n = this.journal.pending;
    if (n === 0) return;
    const failed = await this.journal.undoAll();
    this.log('routing.recovered', { steps: n, failed });
  }

  /**
   * Make the host match `plan`: when it differs from the applied one, undo everything and apply
   * it afresh. On failure what was applied is undone (the host is left as it was) and the error
   * is thrown.
   */
  async apply(plan: RoutingPlan): Promise<boolean> {
    const key = JSON.stringify(plan.router === null && plan.exit === null && !plan.isolate ? null : plan);
    if (key === this.applied) return false;
    let guard: UndoStep[] = [];
    try {
      // exit routes replaced by other exit routes: nothing leaves outside the tunnel meanwhile
      if (plan.exit && this.appliedExit) guard = await addExitGuard(this.journal, plan.exit.ipv6 === null ? [4] : [4, 6]);
      await this.journal.undoAllBut(guard.length);
      this.applied = 'null';
      this.appliedExit = false;
      if (plan.router) await applyRouter(this.journal, plan.router);
      if (plan.exit) await applyExitClient(this.journal, plan.exit);
      if (plan.isolate) await applyIsolation(this.journal, plan.isolate);
      for (const g of guard) await this.journal.undoStep(g);
    } catch (e) {
      await this.journal.undoAll();
      this.applied = 'null';
      this.appliedExit = false;
      throw e;
    }
    this.applied = key;
    this.appliedExit = plan.exit !== null;
    return true;
  }

  /** Undo everything (meshd down). */
  async clear(): Promise<void> {
    await this.journal.undoAll();
    this.applied = 'null';
    this.appliedExit = false;
  }
}

/**
 * `meshd down` with no daemon running: undo what a killed daemon of this home left behind.
 * Returns the number of steps undone.
 */
export async function undoLeftoverRouting(home: string, log: JournalLog = () => undefined): Promise<number> {
  const j = new Journal(home, log);
  const n = j.pending;
  if (n > 0) await j.undoAll();
  return n;
}
