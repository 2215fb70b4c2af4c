/**
 * The handshake against vectors nobody here derived (test/vectors/wg-handshake-external.json):
 * the Noise test suite's Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s vector, run through the same
 * message functions the WireGuard handshake uses (noise.ts: writeMessage1 … splitKeys), and
 * wireguard-go's KDF outputs. The self-derived vectors (wg-handshake.json) cover WireGuard's own
 * prologue, payloads and message layout; these fix the Noise core to an outside reference.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONSTRUCTION, IDENTIFIER } from '../../src/engine/wireguard/constants.js';
import {
  WIREGUARD_START,
  noiseStart,
  readMessage1Payload,
  readMessage1Static,
  readMessage2,
  splitKeys,
  staticIdentity,
  writeMessage1,
  writeMessage2,
} from '../../src/engine/wireguard/noise.js';
import { aeadOpen, aeadSeal, dh, kdf1, kdf2, kdf3, privateKeyObject } from '../../src/engine/wireguard/noise-crypto.js';

interface External {
  noise: {
    protocol_name: string;
    init_prologue: string;
    init_psks: string[];
    init_static: string;
    init_ephemeral: string;
    init_remote_static: string;
    resp_static: string;
    resp_ephemeral: string;
    handshake_hash: string;
    messages: { payload: string; ciphertext: string }[];
  };
  hkdf: { key: string; input: string; t0: string; t1: string; t2: string }[];
}

const ext = JSON.parse(readFileSync(new URL('../../../test/vectors/wg-handshake-external.json', import.meta.url), 'utf8')) as External;
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

describe('WireGuard handshake: external vectors', () => {
  const v = ext.noise;
  const start = noiseStart(v.protocol_name, bytes(v.init_prologue));
  const initiator = staticIdentity(bytes(v.init_static));
  const responder = staticIdentity(bytes(v.resp_static));
  const psk = bytes(v.init_psks[0]!);
  const [m1, m2, ...transport] = v.messages;

  test('the vector is for our construction, and WireGuard starts as Noise does with its identifier as prologue', () => {
    assert.equal(v.protocol_name, CONSTRUCTION);
    assert.deepEqual(noiseStart(CONSTRUCTION, new TextEncoder().encode(IDENTIFIER)), WIREGUARD_START);
    assert.equal(hex(responder.publicKey), v.init_remote_static, 'X25519 public key of the responder');
  });

  test('Noise test suite: handshake messages, handshake hash and transport messages', () => {
    // -> e, es, s, ss, {payload}
    const ss = dh(initiator.privateKey, responder.publicKey)!;
    const w1 = writeMessage1(start, initiator, responder.publicKey, ss, privateKeyObject(bytes(v.init_ephemeral)), bytes(m1!.payload));
    assert.ok(w1 !== null);
    assert.equal(hex(w1.ephemeral) + hex(w1.encryptedStatic) + hex(w1.encryptedPayload), m1!.ciphertext, 'message 1');

    // the responder reads it back: the initiator's static key and the payload
    const c1 = bytes(m1!.ciphertext);
    const s1 = readMessage1Static(start, responder, c1.subarray(0, 32), c1.subarray(32, 80));
    assert.ok(s1 !== null);
    assert.deepEqual(s1.peerPublic, initiator.publicKey);
    const r1 = readMessage1Payload(s1, dh(responder.privateKey, s1.peerPublic)!, c1.subarray(80));
    assert.ok(r1 !== null);
    assert.equal(hex(r1.payload), m1!.payload);
    assert.deepEqual(r1.hash, w1.hash);

    // <- e, ee, se, psk, {payload}
    const w2 = writeMessage2(r1, privateKeyObject(bytes(v.resp_ephemeral)), w1.ephemeral, initiator.publicKey, psk, bytes(m2!.payload));
    assert.ok(w2 !== null);
    assert.equal(hex(w2.ephemeral) + hex(w2.encryptedPayload), m2!.ciphertext, 'message 2');
    const c2 = bytes(m2!.ciphertext);
    const r2 = readMessage2(w1, initiator, privateKeyObject(bytes(v.init_ephemeral)), c2.subarray(0, 32), psk, c2.subarray(32));
    assert.ok(r2 !== null);
    assert.equal(hex(r2.payload), m2!.payload);
    assert.equal(hex(r2.hash), v.handshake_hash, 'handshake hash (initiator)');
    assert.equal(hex(w2.hash), v.handshake_hash, 'handshake hash (responder)');

    // transport: initiator → responder with the first key, back with the second, counters from 0
    const [toResponder, toInitiator] = splitKeys(r2.chainKey);
    const counters = [0, 0];
    transport.forEach((m, i) => {
      const fromInitiator = i % 2 === 0;
      const key = fromInitiator ? toResponder : toInitiator;
      const n = counters[i % 2]!++;
      assert.equal(hex(aeadSeal(key, n, bytes(m.payload), new Uint8Array(0))), m.ciphertext, `transport message ${i + 3}`);
      assert.equal(hex(aeadOpen(key, n, bytes(m.ciphertext), new Uint8Array(0))!), m.payload);
    });
    assert.deepEqual(splitKeys(w2.chainKey), [toResponder, toInitiator], 'both sides split the same keys');
  });

  test('a different pre-shared key, or a flipped bit, fails message 2', () => {
    const ss = dh(initiator.privateKey, responder.publicKey)!;
    const w1 = writeMessage1(start, initiator, responder.publicKey, ss, privateKeyObject(bytes(v.init_ephemeral)), bytes(m1!.payload))!;
    const c2 = bytes(m2!.ciphertext);
    const eph = privateKeyObject(bytes(v.init_ephemeral));
    assert.equal(readMessage2(w1, initiator, eph, c2.subarray(0, 32), new Uint8Array(32), c2.subarray(32)), null);
    const flipped = new Uint8Array(c2);
    flipped[40]! ^= 1;
    assert.equal(readMessage2(w1, initiator, eph, flipped.subarray(0, 32), psk, flipped.subarray(32)), null);
  });

  test('wireguard-go KDF1/KDF2/KDF3 outputs', () => {
    for (const k of ext.hkdf) {
      const key = bytes(k.key);
      const input = bytes(k.input);
      assert.equal(hex(kdf1(key, input)), k.t0);
      assert.deepEqual(kdf2(key, input).map(hex), [k.t0, k.t1]);
      assert.deepEqual(kdf3(key, input).map(hex), [k.t0, k.t1, k.t2]);
    }
  });
});
