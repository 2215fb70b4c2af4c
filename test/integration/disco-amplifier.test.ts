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
import { waitFor } from '../helpers/derp-raw.js';
import { childRelay } from '../helpers/relay-child.js';

const b64 = (k: Uint8Array): string => Buffer.from(k).toString('base64');

/** Third-party addresses (TEST-NET-2 / benchmarking ranges: nothing answers). */
function thirdParty(n: number, offset: number): IpPort[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `198.18.${((i + offset) >> 8) & 0xff}.${(i + offset) & 0xff}`, port: 1024 + ((i + offset) % 60000) }));
}

describe('disco: no amplification', () => {
  let relay: Awaited<ReturnType<typeof childRelay>>;
  let victim: MagicSock;
  let attackerWg: BoxKeyPair;
  let attackerDisco: BoxKeyPair;
  let attacker: RelayClient;

  const cmm = (endpoints: IpPort[], from = attackerDisco): Uint8Array =>
    sealDiscoPacket({ type: 'call-me-maybe', endpoints }, from.publicKey, discoSharedKey(from.privateKey, victim.discoPublicKey));

  before(async () => {
    // The relay runs in its own process: the event loop measured below is the victim's.
    relay = await childRelay(['--insecure-http']);
    victim = await MagicSock.open({ privateKey: generateBoxKeyPair().privateKey, address: '127.0.0.1' });
    victim.start(() => undefined);
    victim.setNetwork({ relays: [{ url: relay.url }] });
    attackerWg = generateBoxKeyPair();
    attackerDisco = generateBoxKeyPair();
    victim.upsertPeer({ publicKey: attackerWg.publicKey, discoKey: attackerDisco.publicKey, endpoints: [] });
    attacker = new RelayClient({ url: relay.url, privateKey: attackerWg.privateKey });
    await attacker.waitConnected(3000);
    await waitFor(() => victim.status().relays.some((r) => r.state === 'connected'), 'victim on the relay');
    // Warm-up (JIT): one empty call-me-maybe, which costs no ping.
    attacker.send(victim.publicKey, cmm([]));
    await waitFor(() => victim.status().counters.relayDiscoReceived === 1, 'warm-up');
  });

  after(async () => {
    await attacker.stop();
    await victim.close();
    await relay.stop();
  });


  test('5 call-me-maybe frames of 64 KiB and 20 of the largest decodable: ≤ 64 pings per 5 s, no event-loop stall over 50 ms', async (t) => {
    const ep = victim.peerEndpoint(b64(attackerWg.publicKey))!;
    // The attacker's sealing runs in this process too: done before the delay monitor starts.
    const bigs = Array.from({ length: 5 }, (_, i) => cmm(thirdParty(3636, i * 3636)));
    const fulls = Array.from({ length: 20 }, (_, i) => cmm(thirdParty(MAX_DECODED_ENDPOINTS, 20_000 + i * MAX_DECODED_ENDPOINTS)));
    assert.ok(bigs[0]!.length > 65_000 && bigs[0]!.length <= 65_536, `${bigs[0]!.length} bytes`);
    await sleep(50);
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    const t0 = performance.now();
    for (const f of [...bigs, ...fulls]) attacker.send(victim.publicKey, f);
    await waitFor(() => victim.status().counters.relayDiscoReceived >= 26, 'all frames delivered');
    await sleep(200);
    const elapsed = performance.now() - t0;
    h.disable();
    assert.ok(elapsed < 5000);
    assert.ok(ep.counters.pingsSent <= 64, `${ep.counters.pingsSent} pings`);
    assert.ok(ep.counters.pingsSent > 0, 'the decodable ones did cause (bounded) pings');
    assert.ok(ep.candidates.size <= 64, `${ep.candidates.size} candidates`);
    assert.equal(victim.status().counters.discoBad, 5, 'the 64 KiB ones are refused undecoded');
    const maxStallMs = h.max / 1e6;
    t.diagnostic(`longest event-loop delay ${maxStallMs.toFixed(1)} ms; ${ep.counters.pingsSent} pings, ${ep.counters.pingsLimited} limited`);
    assert.ok(maxStallMs < 50, `event loop stalled ${maxStallMs.toFixed(1)} ms`);
  });

  test('a call-me-maybe from a disco key outside the map, or relayed by another key, is dropped', async () => {
    const before = victim.status().counters;
    const stranger = generateBoxKeyPair();
    attacker.send(victim.publicKey, cmm(thirdParty(4, 50_000), stranger));
    await waitFor(() => victim.status().counters.discoUnknownSender === before.discoUnknownSender + 1, 'unknown sender');
    // A known disco key, but the relay says the packet came from another WireGuard key.
    const other = generateBoxKeyPair();
    const otherClient = new RelayClient({ url: relay.url, privateKey: other.privateKey });
    try {
      await otherClient.waitConnected(3000);
      otherClient.send(victim.publicKey, cmm(thirdParty(4, 51_000)));
      await waitFor(() => victim.status().counters.discoBad === before.discoBad + 1, 'relayed by another key');
    } finally {
      await otherClient.stop();
    }
  });
});
