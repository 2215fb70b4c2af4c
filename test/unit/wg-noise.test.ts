/**
 * The handshake and message codecs: known-answer vectors (test/vectors/wg-handshake.json) checked
 * against both the implementation and a line-by-line derivation from the paper; codecs for
 * initiation (148 bytes), response (92), cookie reply (64) and the transport header (16); mac1,
 * mac2 and cookies; replayed, flooding and tampered handshakes refused.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { NodeCryptoAeadBatch, createAeadBatch } from '../../src/engine/crypto/aead-batch.js';
import { CookieChecker, CookieGenerator } from '../../src/engine/wireguard/cookie.js';
import {
  decodeCookieReply,
  decodeInitiation,
  decodeResponse,
  encodeCookieReply,
  encodeInitiation,
  encodeResponse,
  messageType,
  transportCounter,
  transportReceiver,
  writeTransportHeader,
} from '../../src/engine/wireguard/messages.js';
import {
  Handshake,
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSession,
  openInitiation,
  staticIdentity,
} from '../../src/engine/wireguard/noise.js';
import { tai64n, compareBytes, kdf2, hash } from '../../src/engine/wireguard/noise-crypto.js';
import { PacketBatch } from '../../src/engine/packet-batch.js';
import { referenceHandshake, type HandshakeInputs } from './wg-reference-handshake.js';

const vec = JSON.parse(readFileSync(new URL('../../../test/vectors/wg-handshake.json', import.meta.url), 'utf8')) as {
  inputs: Record<string, string | number>;
  outputs: Record<string, string>;
};
const hx = (s: string | number): Uint8Array => new Uint8Array(Buffer.from(String(s), 'hex'));
const inputs: HandshakeInputs = {
  initiatorStatic: hx(vec.inputs.initiatorStatic!),
  responderStatic: hx(vec.inputs.responderStatic!),
  initiatorEphemeral: hx(vec.inputs.initiatorEphemeral!),
  responderEphemeral: hx(vec.inputs.responderEphemeral!),
  presharedKey: hx(vec.inputs.presharedKey!),
  timestamp: hx(vec.inputs.timestamp!),
  initiatorIndex: Number(vec.inputs.initiatorIndex),
  responderIndex: Number(vec.inputs.responderIndex),
  cookieSecret: hx(vec.inputs.cookieSecret!),
  cookieNonce: hx(vec.inputs.cookieNonce!),
  source: hx(vec.inputs.source!),
  payload: hx(vec.inputs.payload!),
};
const want = Object.fromEntries(Object.entries(vec.outputs).map(([k, v]) => [k, hx(v)])) as Record<string, Uint8Array>;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A scripted random source: hands out the given byte strings in order. */
function scripted(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  return (n) => {
    const c = chunks.shift();
    assert.ok(c && c.length === n, `unexpected rng request for ${n} bytes`);
    return c;
  };
}

/** Run the implementation through the whole exchange with the vector inputs. */
function implementationRun() {
  let now = 1000;
  const clock = () => now;
  const I = staticIdentity(inputs.initiatorStatic);
  const R = staticIdentity(inputs.responderStatic);
  const hsI = new Handshake(R.publicKey);
  hsI.presharedKey = inputs.presharedKey;
  hsI.precompute(I);
  const genI = new CookieGenerator(R.publicKey, clock, 120_000);
  const msg1 = createInitiation(I, hsI, inputs.initiatorEphemeral, inputs.timestamp, inputs.initiatorIndex)!;
  genI.addMacs(msg1);

  const checker = new CookieChecker(R.publicKey, scripted(inputs.cookieSecret, inputs.cookieNonce), clock, 120_000);
  assert.equal(checker.checkMac1(msg1), true);
  const reply = encodeCookieReply(checker.createReply(msg1, inputs.source));
  assert.equal(genI.consumeReply(reply), true);
  const msg1b = new Uint8Array(msg1);
  genI.addMacs(msg1b);
  assert.equal(checker.checkMac2(msg1b, inputs.source), true);
  assert.equal(checker.checkMac2(msg1b, new Uint8Array(18)), false, 'mac2 is bound to the source address');

  const opened = openInitiation(R, msg1)!;
  assert.equal(hex(opened.peerPublic), hex(I.publicKey));
  const hsR = new Handshake(I.publicKey);
  hsR.presharedKey = inputs.presharedKey;
  hsR.precompute(R);
  assert.equal(consumeInitiation(opened, msg1, hsR, now, 50), 'ok');
  const msg2 = createResponse(hsR, inputs.responderEphemeral, inputs.responderIndex)!;
  new CookieGenerator(I.publicKey, clock, 120_000).addMacs(msg2);
  assert.equal(new CookieChecker(I.publicKey, scripted(), clock, 120_000).checkMac1(msg2), true);
  assert.equal(consumeResponse(I, hsI, msg2), true);
  const keysI = deriveSession(hsI)!;
  const keysR = deriveSession(hsR)!;
  now += 1;
  return { msg1, msg1b, reply, msg2, keysI, keysR };
}

describe('noise handshake: known answers', () => {
  test('the paper, written out with other primitives, gives the vectors', () => {
    const ref = referenceHandshake(inputs);
    for (const [k, v] of Object.entries(ref)) assert.equal(hex(v), hex(want[k]!), k);
  });

  test('the implementation gives the same bytes and keys', () => {
    const r = implementationRun();
    assert.equal(hex(r.msg1), hex(want.initiation!));
    assert.equal(hex(r.reply), hex(want.cookieReply!));
    assert.equal(hex(r.msg1b), hex(want.initiationWithMac2!));
    assert.equal(hex(r.msg2), hex(want.response!));
    assert.equal(hex(r.keysI.sendKey), hex(want.initiatorSendKey!));
    assert.equal(hex(r.keysI.receiveKey), hex(want.initiatorReceiveKey!));
    assert.equal(hex(r.keysR.sendKey), hex(want.initiatorReceiveKey!));
    assert.equal(hex(r.keysR.receiveKey), hex(want.initiatorSendKey!));
    assert.deepEqual([r.keysI.isInitiator, r.keysR.isInitiator], [true, false]);
    assert.deepEqual([r.keysI.localIndex, r.keysI.remoteIndex], [inputs.initiatorIndex, inputs.responderIndex]);
    assert.deepEqual([r.keysR.localIndex, r.keysR.remoteIndex], [inputs.responderIndex, inputs.initiatorIndex]);
  });

  for (const aead of [new NodeCryptoAeadBatch(), createAeadBatch()]) {
    test(`transport message sealed by the batch AEAD (${aead.kind}) matches`, () => {
      const { keysI } = implementationRun();
      const b = new PacketBatch(1);
      b.reset(16);
      b.push(inputs.payload, 16);
      writeTransportHeader(b.buf, 0, keysI.remoteIndex, 0);
      const ok = new Uint8Array(1);
      aead.seal(b, keysI.sendKey, null, new Uint32Array(2), ok);
      assert.equal(ok[0], 1);
      assert.equal(hex(b.buf.subarray(0, 16 + b.lengths[0]!)), hex(want.transport!));
    });
  }
});

describe('noise handshake: refusals', () => {
  function setup() {
    const I = staticIdentity(inputs.initiatorStatic);
    const R = staticIdentity(inputs.responderStatic);
    const hsI = new Handshake(R.publicKey);
    hsI.precompute(I);
    const hsR = new Handshake(I.publicKey);
    hsR.precompute(R);
    return { I, R, hsI, hsR };
  }
  const ts = (ms: number) => tai64n(BigInt(1_700_000_000_000 + ms) * 1_000_000n);

  test('replayed initiation (same or older timestamp) and floods are refused', () => {
    const { I, R, hsI, hsR } = setup();
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1000), 1)!;
    assert.equal(consumeInitiation(openInitiation(R, m1)!, m1, hsR, 0, 50), 'ok');
    assert.equal(consumeInitiation(openInitiation(R, m1)!, m1, hsR, 1000, 50), 'replay');
    const older = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(500), 2)!;
    assert.equal(consumeInitiation(openInitiation(R, older)!, older, hsR, 2000, 50), 'replay');
    const newer = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(2000), 3)!;
    assert.equal(consumeInitiation(openInitiation(R, newer)!, newer, hsR, 30, 50), 'flood', 'within 50 ms of the last accepted one');
    assert.equal(consumeInitiation(openInitiation(R, newer)!, newer, hsR, 100, 50), 'ok');
  });

  test('TAI64N: 12 bytes, 2^62+10 epoch, nanoseconds whitened, ordered', () => {
    const t = tai64n(1_700_000_000_123_456_789n);
    assert.equal(t.length, 12);
    assert.equal(hex(t.subarray(0, 8)), (0x400000000000000an + 1_700_000_000n).toString(16).padStart(16, '0'));
    assert.equal(new DataView(t.buffer).getUint32(8) % 0x1000000, 0);
    assert.ok(compareBytes(tai64n(2_000_000_000_000_000_000n), t) > 0);
  });

  test('initiation to the wrong responder, or tampered, does not open', () => {
    const { I, hsI } = setup();
    const other = staticIdentity(hash(new TextEncoder().encode('someone else')));
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1), 1)!;
    assert.equal(openInitiation(other, m1), null);
    const { R } = setup();
    for (const byte of [8, 40, 87]) {
      const t = new Uint8Array(m1);
      t[byte]! ^= 1;
      assert.equal(openInitiation(R, t), null, `flip at ${byte}`);
    }
  });

  test('tampered response, or a response without our initiation, is refused', () => {
    const { I, R, hsI, hsR } = setup();
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1), 1)!;
    consumeInitiation(openInitiation(R, m1)!, m1, hsR, 0, 50);
    const m2 = createResponse(hsR, inputs.responderEphemeral, 2)!;
    for (const byte of [12, 44, 59]) {
      const t = new Uint8Array(m2);
      t[byte]! ^= 0x80;
      const copy = Object.assign(new Handshake(hsI.remoteStatic), hsI);
      assert.equal(consumeResponse(I, copy, t), false, `flip at ${byte}`);
    }
    assert.equal(consumeResponse(I, hsI, m2), true);
    assert.equal(consumeResponse(I, hsI, m2), false, 'state moved on');
  });

  test('a different preshared key makes the response fail', () => {
    const { I, R, hsI, hsR } = setup();
    hsI.presharedKey = new Uint8Array(32).fill(7);
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1), 1)!;
    consumeInitiation(openInitiation(R, m1)!, m1, hsR, 0, 50);
    const m2 = createResponse(hsR, inputs.responderEphemeral, 2)!;
    assert.equal(consumeResponse(I, hsI, m2), false);
  });

  test('mac1 keyed with another key is refused; cookie reply for another message is refused', () => {
    const { I, R, hsI } = setup();
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1), 1)!;
    new CookieGenerator(I.publicKey, () => 0, 120_000).addMacs(m1); // wrong key: initiator's own
    const checker = new CookieChecker(R.publicKey, scripted(inputs.cookieSecret, inputs.cookieNonce), () => 0, 120_000);
    assert.equal(checker.checkMac1(m1), false);
    const gen = new CookieGenerator(R.publicKey, () => 0, 120_000);
    gen.addMacs(m1);
    assert.equal(checker.checkMac1(m1), true);
    const reply = encodeCookieReply(checker.createReply(m1, inputs.source));
    const m1other = new Uint8Array(m1);
    m1other[9]! ^= 1;
    gen.addMacs(m1other); // our last mac1 is now another message's
    assert.equal(gen.consumeReply(reply), false);
  });

  test('cookie secret rotates: mac2 made with an old cookie stops verifying after 2 minutes', () => {
    let now = 0;
    const { I, R, hsI } = setup();
    const checker = new CookieChecker(R.publicKey, (n) => new Uint8Array(n).fill(now & 0xff), () => now, 120_000);
    const gen = new CookieGenerator(R.publicKey, () => now, 120_000);
    const m1 = createInitiation(I, hsI, inputs.initiatorEphemeral, ts(1), 1)!;
    gen.addMacs(m1);
    assert.equal(gen.consumeReply(encodeCookieReply(checker.createReply(m1, inputs.source))), true);
    gen.addMacs(m1);
    assert.equal(checker.checkMac2(m1, inputs.source), true);
    now = 121_000;
    assert.equal(checker.checkMac2(m1, inputs.source), false);
    assert.equal(gen.hasFreshCookie(), false);
  });
});

describe('message codecs', () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  const u32 = fc.integer({ min: 0, max: 0xffffffff });

  test('initiation: 148 bytes, round trip, type/reserved/length checked', () => {
    fc.assert(
      fc.property(u32, bytes(32), bytes(48), bytes(28), bytes(16), bytes(16), (sender, e, s, t, m1, m2) => {
        const b = encodeInitiation({ sender, ephemeral: e, encryptedStatic: s, encryptedTimestamp: t, mac1: m1, mac2: m2 });
        assert.equal(b.length, 148);
        assert.deepEqual([...b.subarray(0, 4)], [1, 0, 0, 0]);
        const d = decodeInitiation(b)!;
        assert.deepEqual(d, { sender, ephemeral: e, encryptedStatic: s, encryptedTimestamp: t, mac1: m1, mac2: m2 });
        assert.equal(decodeInitiation(b.subarray(0, 147)), null);
        const r = new Uint8Array(b);
        r[2] = 1;
        assert.equal(decodeInitiation(r), null);
      }),
    );
  });

  test('response: 92 bytes, round trip', () => {
    fc.assert(
      fc.property(u32, u32, bytes(32), bytes(16), bytes(16), bytes(16), (sender, receiver, e, n, m1, m2) => {
        const b = encodeResponse({ sender, receiver, ephemeral: e, encryptedNothing: n, mac1: m1, mac2: m2 });
        assert.equal(b.length, 92);
        assert.deepEqual(decodeResponse(b), { sender, receiver, ephemeral: e, encryptedNothing: n, mac1: m1, mac2: m2 });
        assert.equal(decodeResponse(new Uint8Array([...b, 0])), null);
        assert.equal(decodeInitiation(b), null);
      }),
    );
  });

  test('cookie reply: 64 bytes, round trip', () => {
    fc.assert(
      fc.property(u32, bytes(24), bytes(32), (receiver, nonce, c) => {
        const b = encodeCookieReply({ receiver, nonce, encryptedCookie: c });
        assert.equal(b.length, 64);
        assert.deepEqual(decodeCookieReply(b), { receiver, nonce, encryptedCookie: c });
      }),
    );
  });

  test('transport header: 16 bytes, receiver and 64-bit counter little-endian', () => {
    fc.assert(
      fc.property(u32, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (receiver, counter) => {
        const b = new Uint8Array(32);
        writeTransportHeader(b, 0, receiver, counter);
        assert.deepEqual([...b.subarray(0, 4)], [4, 0, 0, 0]);
        assert.equal(new DataView(b.buffer).getBigUint64(8, true), BigInt(counter));
        assert.equal(transportReceiver(b, 0), receiver);
        assert.equal(transportCounter(b, 0), counter);
        assert.equal(messageType(b, 0, 32), 4);
        assert.equal(messageType(b, 0, 31), 0);
      }),
    );
    const big = new Uint8Array(32);
    big[0] = 4;
    big[15] = 0x80;
    assert.equal(transportCounter(big, 0), -1, 'counters beyond 2^53 are reported as unusable');
  });

  test('messageType never throws and accepts only well-formed headers', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        const t = messageType(b, 0, b.length);
        if (t !== 0) {
          assert.deepEqual([...b.subarray(1, 4)], [0, 0, 0]);
          assert.equal(b[0], t);
          assert.ok({ 1: b.length === 148, 2: b.length === 92, 3: b.length === 64, 4: b.length >= 32 }[t]);
        }
      }),
    );
  });

  test('KDF2 and HASH are the BLAKE2s constructions (spot check against the construction hash)', () => {
    // HASH("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s") is the well-known initial chaining key
    assert.equal(hex(hash(new TextEncoder().encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s'))), '60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36');
    const [a, b] = kdf2(new Uint8Array(32), new Uint8Array(0));
    assert.equal(a.length, 32);
    assert.notEqual(hex(a), hex(b));
  });
});
