/**
 * The daemon's recent events for the dashboard: the last info/warn/error log records, kept in a
 * bounded ring (nothing on disk, nothing global), and a logger that writes to the daemon's
 * logger and also to the ring.
 */
import type { LogFields, Logger, LogLevel } from '../util/log.js';

export interface RecentEvent {
  ts: string;
  level: LogLevel;
  component: string;
  event: string;
  fields: LogFields;
}

const KEPT: ReadonlySet<LogLevel> = new Set(['info', 'warn', 'error']);
/** A field longer than this (in its JSON) is cut: the dashboard shows a line, not a dump. */
const MAX_FIELD_CHARS = 300;

function trimFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    let text: string | undefined;
    try {
      text = typeof v === 'string' ? v : JSON.stringify(v);
    } catch {
      text = String(v);
    }
    if (text === undefined) continue;
    out[k] = text.length > MAX_FIELD_CHARS ? `${text.slice(0, MAX_FIELD_CHARS)}…` : v;
  }
  return out;
}

export class RecentEvents {
  private readonly ring: RecentEvent[] = [];
  private seq = 0;

  constructor(
    private readonly capacity = 200,
    private readonly wallMs: () => number = Date.now,
  ) {}

  add(level: LogLevel, component: string, event: string, fields: LogFields): void {
    if (!KEPT.has(level)) return;
    this.ring.push({ ts: new Date(this.wallMs()).toISOString(), level, component, event, fields: trimFields(fields) });
    if (this.ring.length > this.capacity) this.ring.shift();
    this.seq++;
  }

  /** How many events were ever added (changes whenever a new one comes). */
  get count(): number {
    return this.seq;
  }

  /** The newest `n` events, newest last. */
  last(n = this.capacity): RecentEvent[] {
    return this.ring.slice(-n);
  }

  /** `base`, also writing its info and louder records (its children's too) here. */
  tee(base: Logger): Logger {
    const add = (level: LogLevel, component: string, event: string, fields: LogFields) => this.add(level, component, event, fields);
    const wrap = (inner: Logger): Logger => {
      const log = (level: LogLevel, event: string, fields: LogFields = {}): void => {
        inner.log(level, event, fields);
        add(level, inner.component, event, fields);
      };
      return {
        component: inner.component,
        log,
        debug: (e, f) => inner.debug(e, f),
        info: (e, f) => log('info', e, f),
        warn: (e, f) => log('warn', e, f),
        error: (e, f) => log('error', e, f),
        enabled: (level) => inner.enabled(level),
        child: (name) => wrap(inner.child(name)),
        flush: () => inner.flush(),
      };
    };
    return wrap(base);
  }
}
