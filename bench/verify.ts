/**
 * Record verification: the SDK path (RecordsWrite.parse + authenticate, pure-JS Ed25519) against
 * src/dwn/verify.ts (the same checks, Ed25519 through node:crypto), measured in the same run on
 * the same records. Every record has its own author and is verified once per path, as a reader
 * meets them (the SDK caches signature results, so a record seen twice would flatter it).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/verify.js
 */
import { authenticate, Message, RecordsWrite, type RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { DidJwk, DidResolverCacheNoop, UniversalResolver } from '@web5/dids';
import { PROTOCOL_URI } from '../src/control/protocol.js';
import { deviceSigner } from '../src/dwn/signer.js';
import { verifyRecordsWriteMessage } from '../src/dwn/verify.js';
import { formatDidJwk } from '../src/identity/did-jwk.js';
import { ed25519PublicFromSeed, generateEd25519Seed } from '../src/identity/keys.js';

const RECORDS = Number(process.env.BENCH_RECORDS ?? '300');
const WARMUP = 50;

const resolver = new UniversalResolver({ didResolvers: [DidJwk], cache: DidResolverCacheNoop });

async function sdkVerify(m: RecordsWriteMessage): Promise<string> {
  await RecordsWrite.parse(m);
  await authenticate(m.authorization, resolver);
  return Message.getAuthor(m)!;
}

async function records(n: number): Promise<RecordsWriteMessage[]> {
  const out: RecordsWriteMessage[] = [];
  for (let i = 0; i < n; i++) {
    const edSeed = generateEd25519Seed();
    const did = formatDidJwk(ed25519PublicFromSeed(edSeed));
    const w = await RecordsWrite.create({
      protocol: PROTOCOL_URI,
      protocolPath: 'network/device',
      parentContextId: 'bafyreicff3m6wdntzofpsebtpxfoavgr2oqncnjxx7u5kxnu2fvbwjtgca',
      data: new Uint8Array(600).fill(i & 0xff),
      dataFormat: 'application/octet-stream',
      tags: { device: `d${i}` },
      signer: deviceSigner({ did, edSeed }),
    });
    out.push(w.message);
  }
  return out;
}

async function rate(name: string, msgs: RecordsWriteMessage[], f: (m: RecordsWriteMessage) => Promise<string>): Promise<number> {
  const start = process.hrtime.bigint();
  for (const m of msgs) await f(m);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const perSecond = msgs.length / seconds;
  console.log(`${name.padEnd(34)} ${perSecond.toFixed(0).padStart(7)} records/s  ${((seconds * 1e3) / msgs.length).toFixed(3)} ms/record`);
  return perSecond;
}

const [warm, sdkSet, fastSet] = await Promise.all([records(WARMUP), records(RECORDS), records(RECORDS)]);
for (const m of warm) {
  await sdkVerify(m);
  await verifyRecordsWriteMessage(m);
}
console.log(`${RECORDS} records, each with its own author, verified once per path`);
const sdk = await rate('SDK (parse + authenticate)', sdkSet, sdkVerify);
const fast = await rate('meshd verify (node:crypto)', fastSet, verifyRecordsWriteMessage);
console.log(`speed-up: ${(fast / sdk).toFixed(1)}x`);
