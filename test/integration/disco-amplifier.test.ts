/**
 * Disco cannot be turned into an amplifier, against a real magic socket and a real relay on
 * 127.0.0.1: a peer of the map (the worst case: it holds its own keys) sends call-me-maybe
 * frames of 64 KiB (3,636 endpoints each) and many of the largest decodable ones, all naming
 * third-party addresses. The victim sends at most 64 pings in 5 s to them and its event loop
 * never stalls 50 ms. A call-me-maybe from a key outside the map, or relayed by another key
 * than the disco key's owner, is dropped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateBoxKeyPair, type BoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { MagicSock } from '../../src/engine/magicsock/magicsock.js';
import { MAX_DECODED_ENDPOINTS, discoSharedKey, sealDiscoPacket } from '../../src/engine/magicsock/disco.js';
import type { IpPort } from '../../src/engine/magicsock/stun.js';
import { RelayClient } from '../../src/engine/relay/client.js';
import { startRelayServer, type RelayServer } from '../../src/engine/relay/server.js';
import { waitFor } from '../helpers/derp-raw.js';

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

/** Third-party addresses (TEST-NET-2 / benchmarking ranges: nothing answers). */
function thirdParty(n: number, offset: number): IpPort[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `198.18.${((i + offset) >> 8) & 0xff}.${(i + offset) & 0xff}`, port: 1024 + ((i + offset) % 60000) }));
}

describe('disco: no amplification', () => {
  let relay: RelayServer;
  let victim: MagicSock;
  let attackerWg: BoxKeyPair;
  let attackerDisco: BoxKeyPair;
  let attacker: RelayClient;

  before(async () => {
    relay = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1' });
    victim = await MagicSock.open({ privateKey: generateBoxKeyPair().privateKey, address: '127.0.0.1' });
    victim.start(() => undefined);
    victim.setNetwork({ relays: [{ url: relay.address().url }] });
    attackerWg = generateBoxKeyPair();
    attackerDisco = generateBoxKeyPair();
    victim.upsertPeer({ publicKey: attackerWg.publicKey, discoKey: attackerDisco.publicKey, endpoints: [] });
    attacker = new RelayClient({ url: relay.address().url, privateKey: attackerWg.privateKey });
    await attacker.waitConnected(3000);
    await waitFor(() => relay.stats().currentClients === 2, 'victim on the relay');
  });

  after(async () => {
    await attacker.stop();
    await victim.close();
    await relay.stop();
  });

  const cmm = (endpoints: IpPort[], from = attackerDisco): Uint8Array =>
    sealDiscoPacket({ type: 'call-me-maybe', endpoints }, from.publicKey, discoSharedKey(from.privateKey, victim.discoPublicKey));

  test('5 call-me-maybe frames of 64 KiB and 20 of the largest decodable: ≤ 64 pings per 5 s, no event-loop stall over 50 ms', async () => {
    const ep = victim.peerEndpoint(b64(attackerWg.publicKey))!;
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const t0 = performance.now();
    const big = cmm(thirdParty(3636, 0));
    assert.ok(big.length > 65_000 && big.length <= 65_536, `${big.length} bytes`);
    for (let i = 0; i < 5; i++) attacker.send(victim.publicKey, cmm(thirdParty(3636, i * 3636)));
    for (let i = 0; i < 20; i++) attacker.send(victim.publicKey, cmm(thirdParty(MAX_DECODED_ENDPOINTS, 20_000 + i * MAX_DECODED_ENDPOINTS)));
    await waitFor(() => victim.status().counters.relayDiscoReceived >= 25, 'all frames delivered');
    await sleep(200);
    const elapsed = performance.now() - t0;
    h.disable();
    assert.ok(elapsed < 5000);
    assert.ok(ep.counters.pingsSent <= 64, `${ep.counters.pingsSent} pings`);
    assert.ok(ep.counters.pingsSent > 0, 'the decodable ones did cause (bounded) pings');
    assert.ok(ep.candidates.size <= 64, `${ep.candidates.size} candidates`);
    assert.equal(victim.status().counters.discoBad, 5, 'the 64 KiB ones are refused undecoded');
    const maxStallMs = h.max / 1e6;
    assert.ok(maxStallMs < 50, `event loop stalled ${maxStallMs.toFixed(1)} ms`);
  });

  test('a call-me-maybe from a disco key outside the map, or relayed by another key, is dropped', async () => {
    const before = victim.status().counters;
    const stranger = generateBoxKeyPair();
    attacker.send(victim.publicKey, cmm(thirdParty(4, 50_000), stranger));
    await waitFor(() => victim.status().counters.discoUnknownSender === before.discoUnknownSender + 1, 'unknown sender');
    // A known disco key, but the relay says the packet came from another WireGuard key.
    const other = generateBoxKeyPair();
    const otherClient = new RelayClient({ url: relay.address().url, privateKey: other.privateKey });
    try {
      await otherClient.waitConnected(3000);
      otherClient.send(victim.publicKey, cmm(thirdParty(4, 51_000)));
      await waitFor(() => victim.status().counters.discoBad === before.discoBad + 1, 'relayed by another key');
    } finally {
      await otherClient.stop();
    }
  });
});
