/**
 * The routing journal: every change the routing module makes to the host (a sysctl, an iptables
 * chain or jump, a policy rule, a routing table) is written here with the step that undoes it
 * BEFORE the change is made. `meshd down`, a later `meshd up` after a crash, or `meshd down`
 * with no daemon running undo the steps in reverse order and remove the file.
 *
 * File: HOME/routing-state.json, `{ "version": 1, "undo": [step, …] }`, written atomically.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../../errors.js';
import { describeCommand, runCommand, type Command } from './command.js';

/** One undo step: a command to run, or a /proc/sys value to put back. */
export type UndoStep = { run: Command } | { sysctl: string; value: string };

interface JournalFile {
  version: 1;
  undo: UndoStep[];
}

export function journalPath(home: string): string {
  return join(home, 'routing-state.json');
}

const SYSCTL_PATH = /^\/proc\/sys\/net\/[a-z0-9_/.-]+$/;
const TOOLS = new Set(['ip', 'iptables', 'ip6tables']);

function isStep(v: unknown): v is UndoStep {
  const s = v as Partial<{ run: Partial<Command>; sysctl: unknown; value: unknown }> | null;
  if (typeof s !== 'object' || s === null) return false;
  if (s.run !== undefined) {
    return typeof s.run === 'object' && s.run !== null && TOOLS.has(s.run.tool as string) && Array.isArray(s.run.args) && s.run.args.every((a) => typeof a === 'string');
  }
  return typeof s.sysctl === 'string' && SYSCTL_PATH.test(s.sysctl) && !s.sysctl.includes('..') && typeof s.value === 'string' && /^[0-9]{1,3}$/.test(s.value);
}

/** The undo steps recorded in HOME (oldest first); [] when there is no journal. */
export function readJournal(home: string): UndoStep[] {
  const path = journalPath(home);
  if (!existsSync(path)) return [];
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new MeshdError('E_STATE_CORRUPT', `${path} is not readable JSON: ${(e as Error).message}`, {
      hint: 'check the host routes and firewall by hand (ip rule, ip -6 rule, ip route, iptables-save, ip6tables-save), then delete the file',
    });
  }
  const f = v as Partial<JournalFile> | null;
  if (typeof f !== 'object' || f === null || f.version !== 1 || !Array.isArray(f.undo) || !f.undo.every(isStep)) {
    throw new MeshdError('E_STATE_CORRUPT', `${path} is not a routing journal this meshd understands`, {
      hint: 'check the host routes and firewall by hand (ip rule, ip -6 rule, ip route, iptables-save, ip6tables-save), then delete the file',
    });
  }
  return f.undo;
}

function writeJournal(home: string, undo: UndoStep[]): void {
  const path = journalPath(home);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ version: 1, undo } satisfies JournalFile, null, 1)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
}

export type JournalLog = (event: string, fields: Record<string, unknown>) => void;

/** Appends undo steps as changes are made; `undoAll` reverts them. One per home. */
export class Journal {
  private undo: UndoStep[];

  constructor(
    private readonly home: string,
    private readonly log: JournalLog,
  ) {
    this.undo = readJournal(home);
  }

  /** Steps recorded and not yet undone. */
  get pending(): number {
    return this.undo.length;
  }

  /** Record how to undo a change, durably, before making it. */
  record(step: UndoStep): UndoStep {
    this.undo.push(step);
    writeJournal(this.home, this.undo);
    return step;
  }

  /**
   * Undo every recorded change but the newest `keep`, newest first (as undoAll), leaving those
   * in the journal. Returns the number of steps that failed.
   */
  async undoAllBut(keep: number): Promise<number> {
    const kept = this.undo.slice(this.undo.length - keep);
    this.undo = this.undo.slice(0, this.undo.length - keep);
    const failed = await this.undoAll();
    for (const step of kept) this.record(step);
    return failed;
  }

  /** Undo one recorded change now (a step `record` returned) and forget it. */
  async undoStep(step: UndoStep): Promise<void> {
    const i = this.undo.indexOf(step);
    if (i < 0) return;
    await this.run(step);
    this.undo.splice(i, 1);
    if (this.undo.length > 0) writeJournal(this.home, this.undo);
    else rmSync(journalPath(this.home), { force: true });
  }

  private async run(step: UndoStep): Promise<void> {
    if ('run' in step) await runCommand(step.run);
    else writeFileSync(step.sysctl, `${step.value}\n`);
  }

  /**
   * Undo every recorded change, newest first. A step that fails (the rule is already gone, the
   * device went away and took its routes) is logged and skipped; the journal is removed at the
   * end. Returns the number of steps that failed.
   */
  async undoAll(): Promise<number> {
    let failed = 0;
    for (const step of [...this.undo].reverse()) {
      try {
        await this.run(step);
      } catch (e) {
        failed++;
        this.log('routing.undo-step-failed', { step: 'run' in step ? describeCommand(step.run) : `${step.sysctl}=${step.value}`, error: (e as Error).message });
      }
    }
    this.undo = [];
    rmSync(journalPath(this.home), { force: true });
    return failed;
  }
}
