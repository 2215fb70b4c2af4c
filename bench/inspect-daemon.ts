/**
 * Profile a running Node process for a while, from inside its network namespace (root; used by
 * bench/scale.ts `--profile`): SIGUSR1 opens its inspector on 127.0.0.1:9229, then over the
 * DevTools protocol a CPU profile of `seconds` and the process's own memory figures.
 *
 *   node dist/bench/inspect-daemon.js PID SECONDS OUT.cpuprofile
 *
 * Prints one JSON line: samples, the functions with the most self time (ms, with file:line),
 * and process.memoryUsage() in MiB. The profile file opens in Chrome DevTools.
 */
import { writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

async function inspectorUrl(): Promise<string> {
  for (let i = 0; i < 50; i++) {
    try {
      const r = await fetch('http://127.0.0.1:9229/json/list');
      const list = (await r.json()) as { webSocketDebuggerUrl: string }[];
      if (list[0]) return list[0].webSocketDebuggerUrl;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }
  throw new Error('no inspector on 127.0.0.1:9229');
}

/** Self time by function (ms), most first. */
export function selfTimes(p: Profile, top = 25): { fn: string; ms: number }[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!);
    if (!n) continue;
    const f = n.callFrame;
    const file = f.url.replace(/^.*\/(node_modules|dist)\//, '$1/');
    const key = `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}`;
    ms.set(key, (ms.get(key) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  return [...ms]
    .map(([fn, v]) => ({ fn, ms: Math.round(v * 10) / 10 }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, top);
}

async function main(): Promise<void> {
  const [pidText, secondsText, out] = process.argv.slice(2);
  const pid = Number(pidText);
  const seconds = Number(secondsText);
  if (!Number.isInteger(pid) || !(seconds > 0) || !out) throw new Error('usage: inspect-daemon PID SECONDS OUT.cpuprofile');
  process.kill(pid, 'SIGUSR1');
  const ws = new WebSocket(await inspectorUrl());
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let seq = 0;
  const waiting = new Map<number, (r: unknown) => void>();
  ws.on('message', (m) => {
    const msg = JSON.parse(m.toString()) as { id?: number; result?: unknown; error?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.error ? Promise.reject(new Error(JSON.stringify(msg.error))) : msg.result);
  });
  const call = <T>(method: string, params: Record<string, unknown> = {}): Promise<T> =>
    new Promise<T>((resolve) => {
      const id = ++seq;
      waiting.set(id, resolve as (r: unknown) => void);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 1000 });
  await call('Profiler.start');
  await sleep(seconds * 1000);
  const { profile } = await call<{ profile: Profile }>('Profiler.stop');
  const mem = await call<{ result: { value: Record<string, number> } }>('Runtime.evaluate', { expression: 'process.memoryUsage()', returnByValue: true });
  writeFileSync(out, JSON.stringify(profile));
  ws.close();
  const mib = Object.fromEntries(Object.entries(mem.result.value).map(([k, v]) => [k, Math.round((v / 1048576) * 10) / 10]));
  const sampledMs = profile.timeDeltas.reduce((a, b) => a + b, 0) / 1000;
  const idle = selfTimes(profile, 1000)
    .filter((x) => /^\((idle|program|garbage collector)\)/.test(x.fn))
    .reduce((a, x) => ({ ...a, [x.fn.split(' ')[0]!]: x.ms }), {});
  process.stdout.write(JSON.stringify({ pid, seconds, sampledMs, samples: profile.samples.length, special: idle, memoryMiB: mib, top: selfTimes(profile).filter((x) => x.fn !== '(idle) :0') }) + '\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`inspect-daemon: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
