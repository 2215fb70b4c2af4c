/**
 * CPU time of lab processes, from /proc/PID/stat: user + system time of the whole process (all
 * its threads), in seconds. A meter samples a set of pids before and after a measurement, so a
 * benchmark can say how many CPU seconds a tunnel's processes spent on it.
 */
import { readFileSync } from 'node:fs';
import { LabError } from './errors.js';
import { execSync } from './exec.js';

export interface ProcStatCpu {
  /** Field 14: user time of the process (all threads), clock ticks. */
  utimeTicks: number;
  /** Field 15: system time, clock ticks. */
  stimeTicks: number;
}

/**
 * Parses the utime and stime fields of a /proc/PID/stat line. The command name (field 2) is in
 * parentheses and may itself hold spaces and parentheses, so fields are counted from the last ')'.
 */
export function parseProcStatCpu(text: string): ProcStatCpu {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new LabError('E_LAB', '/proc/PID/stat: no command name in parentheses');
  // after ") ": field 3 (state) is index 0, so field N is index N - 3
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const at = (field: number): number => {
    const raw = fields[field - 3];
    const v = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(v)) throw new LabError('E_LAB', `/proc/PID/stat: field ${field} is not a tick count: ${raw ?? '(missing)'}`);
    return v;
  };
  return { utimeTicks: at(14), stimeTicks: at(15) };
}

/** Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when getconf cannot say). */
export function clockTicksPerSecond(): number {
  const r = execSync(null, ['getconf', 'CLK_TCK'], { timeoutMs: 5000 });
  const n = Number(r.stdout.trim());
  return r.code === 0 && Number.isSafeInteger(n) && n > 0 ? n : 100;
}

/** CPU seconds (user + system) that process `pid` has used so far. */
export function processCpuSeconds(pid: number, ticksPerSecond: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (e) {
    throw new LabError('E_LAB', `cannot read the CPU time of pid ${pid} (has it exited?): ${(e as Error).message}`, { cause: e });
  }
  const s = parseProcStatCpu(text);
  return (s.utimeTicks + s.stimeTicks) / ticksPerSecond;
}

export interface MeteredProcess {
  /** What it is, e.g. 'meshd' or 'wireguard-go'. */
  label: string;
  pid: number;
}

export interface CpuUse extends MeteredProcess {
  /** CPU seconds used between start and stop. */
  cpuSeconds: number;
}

/** CPU seconds of a set of processes between `CpuMeter.start` and `stop()`. */
export class CpuMeter {
  private constructor(
    private readonly procs: readonly MeteredProcess[],
    private readonly ticksPerSecond: number,
    private readonly before: readonly number[],
  ) {}

  static start(procs: readonly MeteredProcess[], ticksPerSecond: number = clockTicksPerSecond()): CpuMeter {
    return new CpuMeter([...procs], ticksPerSecond, procs.map((p) => processCpuSeconds(p.pid, ticksPerSecond)));
  }

  stop(): CpuUse[] {
    return this.procs.map((p, i) => ({ ...p, cpuSeconds: processCpuSeconds(p.pid, this.ticksPerSecond) - this.before[i]! }));
  }
}
