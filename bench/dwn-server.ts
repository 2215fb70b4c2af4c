/**
 * The DWN server's CPU per request, its signature checks through node:crypto (the default,
 * src/dwn/server-ed25519.ts) against the SDK's pure-JS Ed25519 (MESHD_DWN_SDK_ED25519=1), in
 * the same run: one server of each kind, each sent the same mix a mesh sends it — records
 * queries by many distinct devices (every message is signed, so every one is checked) — 8 in
 * flight. Prints requests/s and the server process's CPU milliseconds per request.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/dwn-server.js      BENCH_REQUESTS=600 (default)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DwnClient } from '../src/dwn/client.js';
import { startDwnServer } from '../src/dwn/server.js';
import { formatDidJwk } from '../src/identity/did-jwk.js';
import { ed25519PublicFromSeed, generateEd25519Seed } from '../src/identity/keys.js';
import { PROTOCOL_URI } from '../src/control/protocol.js';
import { CLK_TCK, cpuTicks, mapLimit } from '../test/lab/scale-helpers.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? '600');
const DEVICES = 50;
const IN_FLIGHT = 8;

interface Result {
  label: string;
  perSecond: number;
  cpuMsPerRequest: number;
}

async function measure(label: string, sdkEd25519: boolean): Promise<Result> {
  const root = mkdtempSync(join(tmpdir(), 'meshd-bench-dwn-'));
  const saved = process.env.MESHD_DWN_SDK_ED25519;
  if (sdkEd25519) process.env.MESHD_DWN_SDK_ED25519 = '1';
  else delete process.env.MESHD_DWN_SDK_ED25519;
  const server = await startDwnServer({ dataDir: join(root, 'dwn'), port: 0, host: '127.0.0.1' });
  if (saved === undefined) delete process.env.MESHD_DWN_SDK_ED25519;
  else process.env.MESHD_DWN_SDK_ED25519 = saved;
  try {
    const tenantSeed = generateEd25519Seed();
    const tenant = formatDidJwk(ed25519PublicFromSeed(tenantSeed));
    const clients = Array.from({ length: DEVICES }, () => {
      const edSeed = generateEd25519Seed();
      return new DwnClient(server.url, tenant, { did: formatDidJwk(ed25519PublicFromSeed(edSeed)), edSeed });
    });
    const query = (i: number) => clients[i % DEVICES]!.query({ protocol: PROTOCOL_URI, protocolPath: 'network' }, { max: 1 });
    await mapLimit(Array.from({ length: 40 }, (_, i) => i), IN_FLIGHT, query); // warm-up
    const cpu0 = cpuTicks(server.pid);
    const t0 = performance.now();
    await mapLimit(Array.from({ length: REQUESTS }, (_, i) => i), IN_FLIGHT, query);
    const secs = (performance.now() - t0) / 1000;
    const cpuMs = ((cpuTicks(server.pid) - cpu0) * 1000) / CLK_TCK;
    return { label, perSecond: REQUESTS / secs, cpuMsPerRequest: cpuMs / REQUESTS };
  } finally {
    await server.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const sdk = await measure("the SDK's pure-JS Ed25519", true);
const native = await measure('node:crypto (default)', false);
for (const r of [sdk, native]) {
  console.log(`${r.label.padEnd(28)} ${r.perSecond.toFixed(0).padStart(6)} requests/s   ${r.cpuMsPerRequest.toFixed(2)} ms of server CPU per request`);
}
console.log(`node:crypto / SDK: ${(native.perSecond / sdk.perSecond).toFixed(2)}× requests/s, ${(sdk.cpuMsPerRequest / native.cpuMsPerRequest).toFixed(2)}× less CPU per request`);
