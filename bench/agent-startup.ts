/**
 * Time from `meshd up` on a joining node to its first answered ping over the mesh, with the
 * real CLI in network namespaces (root): an owner (`meshd up --create`, embedded DWN) and, for
 * each run, a fresh identity on a second host (`meshd init`, the owner's `meshd peer add`, not
 * timed), then the timed `meshd up --endpoint … --anchor … --network …` while that host pings
 * the owner's mesh IP every 20 ms (timestamped, `ping -D`) until the first answer. Prints every
 * run and the median.
 *
 *   node dist/bench/agent-startup.js [RUNS]      (default 7, at least 5)
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { Internet, Lab } from '../src/lab/index.js';
import { addHost, createOwner, median, meshd, meshdJson, meshdOk, pingMonitor, waitUntil } from '../test/lab/agent-helpers.js';

export interface StartupRun {
  /** `meshd up` started → it returned (tunnel up, first map applied). */
  upMs: number;
  /** `meshd up` started → first ping answered. */
  firstPingMs: number;
}

export async function measureAgentStartup(runs: number): Promise<StartupRun[]> {
  const lab = await Lab.create();
  try {
    const internet = await Internet.create(lab);
    const { owner, networkId, endpoint } = await createOwner(internet, 'a');
    const host = await addHost(internet, 'b');
    const results: StartupRun[] = [];
    for (let i = 0; i < runs; i++) {
      const node = { ns: host.ns, home: join(lab.workDir, `home-b${i}`), name: `b${i}` };
      const { did } = await meshdJson<{ did: string }>(node, ['init']);
      await meshdOk(owner, ['peer', 'add', did]);
      await sleep(300); // let the owner's daemon settle after the write

      // A ping every 20 ms from before `up` starts: before the TUN exists they go unanswered
      // (out of the default route), so the first timestamped answer is the figure.
      const pinger = pingMonitor(host.ns, owner.meshIP, 0.02);
      await pinger.proc.waitFor(/PING /, 5000);
      const start = Date.now();
      const r = await meshd(node, ['up', '--endpoint', endpoint, '--anchor', owner.did, '--network', networkId]);
      const upMs = Date.now() - start;
      if (r.code !== 0) {
        await pinger.proc.stop(200);
        throw new Error(`meshd up failed: ${r.stderr.trim()}`);
      }
      await waitUntil(() => pinger.answers().some((ts) => ts >= start), 30_000, 20);
      await pinger.proc.stop(200);
      const first = pinger.answers().find((ts) => ts >= start);
      if (first === undefined) throw new Error('no ping answered within 30 s of `meshd up` returning');
      const firstPingMs = first - start;
      results.push({ upMs, firstPingMs });
      process.stderr.write(`run ${i + 1}: up returned ${upMs.toFixed(0)} ms, first ping ${firstPingMs.toFixed(0)} ms\n`);
      await meshdOk(node, ['down']);
    }
    return results;
  } finally {
    await lab.close();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/agent-startup: needs root (network namespaces, TUN)\n');
    process.exit(2);
  }
  const runs = Math.max(5, Number(process.argv[2] ?? '7') || 7);
  const r = await measureAgentStartup(runs);
  const first = r.map((x) => x.firstPingMs);
  const ups = r.map((x) => x.upMs);
  process.stdout.write(
    `meshd up (joining node) → first answered ping: median ${median(first).toFixed(0)} ms ` +
      `(min ${Math.min(...first).toFixed(0)}, max ${Math.max(...first).toFixed(0)}, ${runs} runs); ` +
      `\`meshd up\` itself returns after a median ${median(ups).toFixed(0)} ms\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench/agent-startup: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
