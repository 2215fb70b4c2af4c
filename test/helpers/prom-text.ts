/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4), for tests:
 * it throws on anything a Prometheus server would refuse or misread — bad names, bad label
 * syntax or escapes, values that are not numbers, TYPE/HELP twice or after the samples of
 * their family, a family's samples split apart, the same series twice, no final newline.
 * (prom-client writes the format but has no parser.)
 */
export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface PromFamily {
  name: string;
  type: PromType;
  help: string | null;
  samples: PromSample[];
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function fail(line: number, what: string): never {
  throw new Error(`exposition line ${line}: ${what}`);
}

function parseValue(s: string, line: number): number {
  if (s === 'NaN') return NaN;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) fail(line, `"${s}" is not a number`);
  return Number(s);
}

/** `{a="x",b="y"}` starting at s[i] === '{'; returns the labels and the index after '}'. */
function parseLabels(s: string, i: number, line: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  i++;
  for (;;) {
    if (s[i] === '}') return [labels, i + 1];
    const eq = s.indexOf('=', i);
    if (eq < 0) fail(line, 'label without "="');
    const name = s.slice(i, eq).trim();
    if (!LABEL.test(name)) fail(line, `bad label name "${name}"`);
    if (name in labels) fail(line, `label "${name}" twice`);
    i = eq + 1;
    if (s[i] !== '"') fail(line, `label "${name}": value not quoted`);
    i++;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) fail(line, `label "${name}": unterminated value`);
      if (c === '"') break;
      if (c === '\\') {
        const n = s[i + 1];
        if (n === '\\') v += '\\';
        else if (n === '"') v += '"';
        else if (n === 'n') v += '\n';
        else fail(line, `label "${name}": bad escape "\\${n ?? ''}"`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    labels[name] = v;
    i++;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') fail(line, `label "${name}": expected "," or "}"`);
  }
}

/** The family a sample name belongs to (histogram/summary suffixes included). */
function familyOf(name: string, families: Map<string, PromFamily>): PromFamily | undefined {
  if (families.has(name)) return families.get(name);
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    }
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, PromFamily> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map<string, PromFamily>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: PromFamily | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC.test(name)) fail(n, `bad metric name "${name}"`);
      let f = families.get(name);
      if (f && f.samples.length > 0) fail(n, `${kind} of ${name} after its samples`);
      if (!f) {
        if (closed.has(name)) fail(n, `${name} appears twice`);
        f = { name, type: 'untyped', help: null, samples: [] };
        families.set(name, f);
      }
      if (current && current !== f) closed.add(current.name);
      current = f;
      if (kind === 'TYPE') {
        if (!rest || !TYPES.has(rest)) fail(n, `bad type "${rest ?? ''}"`);
        if ((f as PromFamily & { typed?: boolean }).typed) fail(n, `TYPE of ${name} twice`);
        f.type = rest as PromType;
        (f as PromFamily & { typed?: boolean }).typed = true;
      } else {
        if (f.help !== null) fail(n, `HELP of ${name} twice`);
        f.help = rest ?? '';
      }
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(raw);
    if (!nm) fail(n, 'a sample must start with a metric name');
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (raw[i] === '{') [labels, i] = parseLabels(raw, i, n);
    const rest = raw.slice(i);
    const vm = /^ +(\S+)(?: +(-?\d+))? *$/.exec(rest);
    if (!vm) fail(n, `expected " VALUE [TIMESTAMP]" after ${name}, got "${rest}"`);
    const value = parseValue(vm[1]!, n);
    let f = familyOf(name, families);
    if (!f) {
      if (closed.has(name)) fail(n, `${name} appears twice`);
      f = { name, type: 'untyped', help: null, samples: [] };
      families.set(name, f);
    }
    if (current !== f) {
      if (current) closed.add(current.name);
      if (closed.has(f.name)) fail(n, `samples of ${f.name} are not together`);
      current = f;
    }
    if (f.type === 'counter' && !(value >= 0)) fail(n, `counter ${name} is ${value}`);
    const key = `${name}{${Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (series.has(key)) fail(n, `series ${key} twice`);
    series.add(key);
    f.samples.push({ name, labels, value });
  });
  return families;
}

/** The value of one series (labels must match exactly those given, others ignored), or undefined. */
export function sampleValue(families: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}
