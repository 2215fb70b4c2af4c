/**
 * The DWN server checks signatures with node:crypto (src/dwn/server-ed25519.ts) and resolves
 * did:jwk only: against a real server, a device's honest query is answered, and the attacker's
 * variants — a signature with one bit flipped, a message signed by another key under the
 * victim's kid, a sender named by a did:web (which the SDK's default would fetch) — get 401.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startTestDwn, type TestDwn } from '../helpers/dwn-server.js';
import { DwnHttpRpc } from '../../src/dwn/rpc-http.js';
import { createRecordsQuery } from '../../src/dwn/messages.js';
import { deviceSigner } from '../../src/dwn/signer.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { ed25519PublicFromSeed, ed25519Sign, generateEd25519Seed } from '../../src/identity/keys.js';
import { PROTOCOL_URI } from '../../src/control/protocol.js';

let dwn: TestDwn;
before(async () => {
  dwn = await startTestDwn();
});
after(async () => {
  await dwn?.stop();
});

function device() {
  const edSeed = generateEd25519Seed();
  return { did: formatDidJwk(ed25519PublicFromSeed(edSeed)), edSeed };
}

type Query = Awaited<ReturnType<typeof createRecordsQuery>>;
const query = (signer: ReturnType<typeof deviceSigner>): Promise<Query> => createRecordsQuery({ filter: { protocol: PROTOCOL_URI, protocolPath: 'network' }, signer });
const sigOf = (q: Query) => q.authorization!.signature.signatures[0]!;

test('the server answers honest messages and refuses forged signatures and foreign DID methods', async () => {
  const rpc = new DwnHttpRpc(dwn.url);
  const tenant = device();
  const victim = device();
  const honest = await query(deviceSigner(victim));
  assert.equal((await rpc.processMessage(tenant.did, honest)).reply.status.code, 200);

  // one bit of the signature flipped
  const flipped = structuredClone(await query(deviceSigner(victim)));
  const raw = Buffer.from(sigOf(flipped).signature, 'base64url');
  raw[5]! ^= 0x10;
  sigOf(flipped).signature = raw.toString('base64url');
  assert.equal((await rpc.processMessage(tenant.did, flipped)).reply.status.code, 401);

  // signed by the attacker's key under the victim's kid
  const attacker = device();
  const impostor = await query({ keyId: `${victim.did}#0`, algorithm: 'EdDSA', sign: async (c: Uint8Array) => ed25519Sign(attacker.edSeed, c) });
  assert.equal((await rpc.processMessage(tenant.did, impostor)).reply.status.code, 401);

  // a sender the SDK's default resolver would look up over the network: its did:web names a
  // listener here, which must see no connection (the default would fetch its did.json from it)
  const knocks: number[] = [];
  const listener = createServer((sock) => {
    knocks.push(Date.now());
    sock.destroy();
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (listener.address() as AddressInfo).port;
    const web = await query({ keyId: `did:web:127.0.0.1%3A${port}#0`, algorithm: 'EdDSA', sign: async (c: Uint8Array) => ed25519Sign(attacker.edSeed, c) });
    assert.equal((await rpc.processMessage(tenant.did, web)).reply.status.code, 401);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(knocks.length, 0, 'the server connected to the did:web host a sender named');
  } finally {
    listener.close();
  }

  // the native path is the one in use (the server says when it is not)
  const log = readFileSync(join(dwn.dataDir, 'dwn-server.log'), 'utf8');
  assert.doesNotMatch(log, /signatures checked by the SDK's pure-JS code/);
});
