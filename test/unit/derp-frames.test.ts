import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_MAX_FRAME_LEN,
  DerpFrameError,
  FrameParser,
  FrameType,
  FRAME_HEADER_LEN,
  MAX_LOGIN_FRAME_LEN,
  frame,
  MAX_PACKET_SIZE,
  PeerGoneReason,
  decodeFrame,
  encodeFrame,
  encodeRecvPacket,
  encodeSendPacket,
  type DerpFrame,
} from '../../src/engine/relay/frames.js';
import { generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import {
  RelayLoginError,
  encodeLoginChallenge,
  openClientInfo,
  openServerInfo,
  parseLoginChallenge,
  sealClientInfo,
  sealServerInfo,
} from '../../src/engine/relay/login.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
/** 32-byte keys with recognisable contents. */
const KEY_A = h('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
const KEY_B = h('a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf');
const SEALED = h('1111111111111111111111111111111111111111111111112222222222222222222222222222222233'); // 24 nonce + 16 tag + 1

function parseAll(bytes: Uint8Array, max = DEFAULT_MAX_FRAME_LEN): { type: number; payload: Buffer }[] {
  const out: { type: number; payload: Buffer }[] = [];
  new FrameParser(max).push(bytes, (type, payload) => out.push({ type, payload: Buffer.from(payload) }));
  return out;
}

describe('DERP frames: known-answer bytes (type ‖ u32 BE length ‖ payload)', () => {
  const cases: { name: string; frame: DerpFrame; hex: string }[] = [
    {
      name: 'ServerKey = magic "DERP🔑" ‖ key',
      frame: { type: 'server-key', key: KEY_A },
      hex: '01 00000028 44455250 f09f9491' + KEY_A.toString('hex'),
    },
    {
      name: 'ClientInfo = client key ‖ nonce ‖ box',
      frame: { type: 'client-info', key: KEY_B, sealed: SEALED },
      hex: '02 00000049' + KEY_B.toString('hex') + SEALED.toString('hex'),
    },
    { name: 'ServerInfo = nonce ‖ box', frame: { type: 'server-info', sealed: SEALED }, hex: '03 00000029' + SEALED.toString('hex') },
    {
      name: 'SendPacket = destination key ‖ packet',
      frame: { type: 'send-packet', dst: KEY_B, packet: Buffer.from('hello') },
      hex: '04 00000025' + KEY_B.toString('hex') + '68656c6c6f',
    },
    {
      name: 'RecvPacket = source key ‖ packet',
      frame: { type: 'recv-packet', src: KEY_A, packet: Buffer.from('hi') },
      hex: '05 00000022' + KEY_A.toString('hex') + '6869',
    },
    { name: 'KeepAlive has no payload', frame: { type: 'keep-alive' }, hex: '06 00000000' },
    { name: 'NotePreferred(true) is one byte 01', frame: { type: 'note-preferred', preferred: true }, hex: '07 00000001 01' },
    { name: 'NotePreferred(false) is one byte 00', frame: { type: 'note-preferred', preferred: false }, hex: '07 00000001 00' },
    {
      name: 'PeerGone = key ‖ reason (1 = not here)',
      frame: { type: 'peer-gone', key: KEY_A, reason: PeerGoneReason.NotHere },
      hex: '08 00000021' + KEY_A.toString('hex') + '01',
    },
    {
      name: 'PeerGone reason 0 = disconnected',
      frame: { type: 'peer-gone', key: KEY_B, reason: PeerGoneReason.Disconnected },
      hex: '08 00000021' + KEY_B.toString('hex') + '00',
    },
    {
      name: 'PeerPresent = key ‖ 16-byte IP ‖ port ‖ flags',
      frame: { type: 'peer-present', key: KEY_A, ip16: h('00000000000000000000ffffc0000201'), port: 3478, flags: 1 },
      hex: '09 00000033' + KEY_A.toString('hex') + '00000000000000000000ffffc0000201' + '0d96' + '01',
    },
    { name: 'PeerPresent with the key only', frame: { type: 'peer-present', key: KEY_B }, hex: '09 00000020' + KEY_B.toString('hex') },
    { name: 'Ping = 8 bytes', frame: { type: 'ping', data: h('0102030405060708') }, hex: '12 00000008 0102030405060708' },
    { name: 'Pong = 8 bytes echoed', frame: { type: 'pong', data: h('0102030405060708') }, hex: '13 00000008 0102030405060708' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const want = h(c.hex);
      assert.equal(Buffer.from(encodeFrame(c.frame)).toString('hex'), want.toString('hex'));
      const got = parseAll(want);
      assert.equal(got.length, 1);
      assert.deepEqual(normalize(decodeFrame(got[0]!.type, got[0]!.payload)), normalize(c.frame));
    });
  }

  test('the hot-path encoders give the same bytes as encodeFrame', () => {
    const p = Buffer.from('payload bytes');
    assert.deepEqual(encodeSendPacket(KEY_A, p), encodeFrame({ type: 'send-packet', dst: KEY_A, packet: p }));
    assert.deepEqual(encodeRecvPacket(KEY_B, p), encodeFrame({ type: 'recv-packet', src: KEY_B, packet: p }));
  });

  test('frame type codes are the protocol constants', () => {
    assert.deepEqual(
      [FrameType.ServerKey, FrameType.ClientInfo, FrameType.ServerInfo, FrameType.SendPacket, FrameType.RecvPacket, FrameType.KeepAlive],
      [1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual([FrameType.NotePreferred, FrameType.PeerGone, FrameType.PeerPresent, FrameType.Ping, FrameType.Pong], [7, 8, 9, 0x12, 0x13]);
  });
});

describe('DERP frames: validation', () => {
  test('a server key frame without the magic is rejected', () => {
    const bad = Buffer.concat([Buffer.from('DERP!!!!'), KEY_A]);
    assert.throws(() => decodeFrame(FrameType.ServerKey, bad), (e) => e instanceof DerpFrameError && e.reason === 'bad-magic');
  });
  test('wrong sizes for known types are malformed', () => {
    const bad: [number, number][] = [
      [FrameType.NotePreferred, 0],
      [FrameType.NotePreferred, 2],
      [FrameType.SendPacket, 31],
      [FrameType.RecvPacket, 5],
      [FrameType.PeerGone, 31],
      [FrameType.Ping, 7],
      [FrameType.Ping, 1001],
      [FrameType.ClientInfo, 32 + 24 + 15],
      [FrameType.ServerInfo, 39],
      [FrameType.ClosePeer, 33],
      [FrameType.WatchConns, 1],
    ];
    for (const [type, n] of bad) {
      assert.throws(() => decodeFrame(type, new Uint8Array(n)), (e) => e instanceof DerpFrameError && e.reason === 'malformed', `type ${type} len ${n}`);
    }
  });
  test('packets above 64 KiB are refused by the encoder and the decoder', () => {
    assert.throws(() => encodeSendPacket(KEY_A, new Uint8Array(MAX_PACKET_SIZE + 1)), DerpFrameError);
    assert.throws(() => decodeFrame(FrameType.SendPacket, new Uint8Array(32 + MAX_PACKET_SIZE + 1)), DerpFrameError);
    assert.equal(encodeSendPacket(KEY_A, new Uint8Array(MAX_PACKET_SIZE)).length, 5 + 32 + MAX_PACKET_SIZE);
  });
  test('unknown frame types decode as unknown (peers skip them)', () => {
    const f = decodeFrame(0x7f, Buffer.from('xyz'));
    assert.equal(f.type, 'unknown');
  });
  test('a PeerGone from an old server (key only) means disconnected', () => {
    const f = decodeFrame(FrameType.PeerGone, KEY_A);
    assert.deepEqual(normalize(f), normalize({ type: 'peer-gone', key: KEY_A, reason: 0 }));
  });
});

describe('FrameParser: oversize lengths', () => {
  test('a declared length above the limit throws oversize before buffering, then the parser is failed', () => {
    const p = new FrameParser(1000);
    const frames: number[] = [];
    const hdr = h('04 000003e9'); // 1001
    assert.throws(() => p.push(hdr, (t) => frames.push(t)), (e) => e instanceof DerpFrameError && e.reason === 'oversize');
    assert.equal(p.failed, true);
    assert.equal(p.buffered, 0);
    assert.throws(() => p.push(h('06 00000000'), (t) => frames.push(t)), (e) => e instanceof DerpFrameError && e.reason === 'failed');
    assert.deepEqual(frames, []);
  });
  test('the limit itself is accepted', () => {
    const got = parseAll(Buffer.concat([h('04 000003e8'), Buffer.alloc(1000)]), 1000);
    assert.equal(got.length, 1);
    assert.equal(got[0]!.payload.length, 1000);
  });
  test('an oversize header split across chunks is still caught', () => {
    const p = new FrameParser();
    p.push(h('04 7f'), () => undefined);
    assert.throws(() => p.push(h('ffffff'), () => undefined), (e) => e instanceof DerpFrameError && e.reason === 'oversize');
  });
  test('frames before an oversize header in the same chunk are delivered', () => {
    const p = new FrameParser(100);
    const types: number[] = [];
    assert.throws(() => p.push(h('06 00000000 07 00000001 01 04 ffffffff'), (t) => types.push(t)), DerpFrameError);
    assert.deepEqual(types, [6, 7]);
  });
});

// -------------------------------------------------------------------------------------------
// Property tests

const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
const bytes = (max: number) => fc.uint8Array({ maxLength: max });
const frameArb: fc.Arbitrary<DerpFrame> = fc.oneof(
  key.map((k) => ({ type: 'server-key', key: k }) as const),
  fc.record({ key, sealed: fc.uint8Array({ minLength: 40, maxLength: 200 }) }).map((r) => ({ type: 'client-info', ...r }) as const),
  fc.uint8Array({ minLength: 40, maxLength: 200 }).map((s) => ({ type: 'server-info', sealed: s }) as const),
  fc.record({ dst: key, packet: bytes(3000) }).map((r) => ({ type: 'send-packet', ...r }) as const),
  fc.record({ src: key, packet: bytes(3000) }).map((r) => ({ type: 'recv-packet', ...r }) as const),
  fc.constant({ type: 'keep-alive' } as const),
  fc.boolean().map((b) => ({ type: 'note-preferred', preferred: b }) as const),
  fc.record({ key, reason: fc.integer({ min: 0, max: 255 }) }).map((r) => ({ type: 'peer-gone', ...r }) as const),
  fc
    .record({ key, ip16: fc.uint8Array({ minLength: 16, maxLength: 16 }), port: fc.integer({ min: 0, max: 65535 }), flags: fc.integer({ min: 0, max: 255 }) })
    .map((r) => ({ type: 'peer-present', ...r }) as const),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ type: 'ping', data: d }) as const),
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((d) => ({ type: 'pong', data: d }) as const),
  fc.string({ maxLength: 40 }).map((s) => ({ type: 'health', problem: s }) as const),
  fc
    .record({ reconnectInMs: fc.integer({ min: 0, max: 0xffffffff }), tryForMs: fc.integer({ min: 0, max: 0xffffffff }) })
    .map((r) => ({ type: 'restarting', ...r }) as const),
  fc
    .record({ frameType: fc.integer({ min: 0x16, max: 0xff }), payload: bytes(100) })
    .map((r) => ({ type: 'unknown', ...r }) as const),
);

/** Typed arrays → hex so deepEqual compares contents, not buffer identity. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

/** Split bytes at the given cut points (any values; taken modulo length, sorted). */
function split(b: Uint8Array, cuts: number[]): Uint8Array[] {
  const pts = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % (b.length + 1))))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of pts) {
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

describe('FrameParser: properties', () => {
  test('valid frames, concatenated and split at random points, come back identical', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
        const stream = Buffer.concat(frames.map((f) => encodeFrame(f)));
        const p = new FrameParser();
        const got: DerpFrame[] = [];
        for (const chunk of split(stream, cuts)) p.push(chunk, (t, payload) => got.push(decodeFrame(t, Buffer.from(payload))));
        assert.deepEqual(got.map(normalize), frames.map(normalize));
        assert.equal(p.buffered, 0);
      }),
      { numRuns: 300 },
    );
  });

  test('random byte streams split anywhere never crash: only DerpFrameError, same frames as unsplit', () => {
    fc.assert(
      fc.property(bytes(400), fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 0, max: 300 }), (stream, cuts, max) => {
        const whole: string[] = [];
        let wholeErr: unknown = null;
        try {
          new FrameParser(max).push(stream, (t, pl) => {
            whole.push(`${t}:${Buffer.from(pl).toString('hex')}`);
            try {
              decodeFrame(t, pl);
            } catch (e) {
              if (!(e instanceof DerpFrameError)) throw e;
            }
          });
        } catch (e) {
          wholeErr = e;
          assert.ok(e instanceof DerpFrameError, `unexpected ${String(e)}`);
        }
        const pieces: string[] = [];
        let pieceErr: unknown = null;
        const p = new FrameParser(max);
        try {
          for (const c of split(stream, cuts)) p.push(c, (t, pl) => pieces.push(`${t}:${Buffer.from(pl).toString('hex')}`));
        } catch (e) {
          pieceErr = e;
          assert.ok(e instanceof DerpFrameError);
        }
        assert.deepEqual(pieces, whole);
        assert.equal(pieceErr === null, wholeErr === null);
      }),
      { numRuns: 500 },
    );
  });

  test('decodeFrame on arbitrary (type, payload) throws only DerpFrameError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), bytes(200), (t, payload) => {
        try {
          decodeFrame(t, payload);
        } catch (e) {
          assert.ok(e instanceof DerpFrameError, `unexpected ${String(e)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('FrameParser: the pre-login limit (properties)', () => {
  test('with the login limit, arbitrary input never makes the parser hold more than a ClientInfo', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 2000 }), { maxLength: 20 }), (chunks) => {
        const p = new FrameParser(MAX_LOGIN_FRAME_LEN);
        try {
          for (const c of chunks) {
            p.push(c, () => undefined);
            assert.ok(p.buffered <= FRAME_HEADER_LEN + MAX_LOGIN_FRAME_LEN);
          }
        } catch (e) {
          assert.ok(e instanceof DerpFrameError);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('raising the limit after the login applies to the frames that follow', () => {
    const p = new FrameParser(MAX_LOGIN_FRAME_LEN);
    const got: number[] = [];
    p.push(frame(FrameType.KeepAlive), (t) => got.push(t));
    p.maxFrameLength = DEFAULT_MAX_FRAME_LEN;
    p.push(frame(FrameType.SendPacket, new Uint8Array(32), new Uint8Array(60_000)), (t) => got.push(t));
    assert.deepEqual(got, [FrameType.KeepAlive, FrameType.SendPacket]);
  });
});

describe('DERP login challenge', () => {
  test('the challenge rides in the ServerKey extra bytes and in the ClientInfo box; anything else is no challenge (fast-check)', () => {
    const server = generateBoxKeyPair();
    const client = generateBoxKeyPair();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 80 }), (nonce, junk) => {
        const extra = encodeLoginChallenge(nonce);
        const f = decodeFrame(FrameType.ServerKey, encodeFrame({ type: 'server-key', key: server.publicKey, extra }).subarray(5));
        assert.ok(f.type === 'server-key');
        assert.deepEqual(parseLoginChallenge(f.extra), nonce);
        const junkIsChallenge = junk.length >= 36 && Buffer.from(junk.subarray(0, 4)).toString('latin1') === 'MSHD';
        assert.equal(parseLoginChallenge(junk) !== null, junkIsChallenge);
        const info = openClientInfo(server.privateKey, client.publicKey, sealClientInfo(client.privateKey, server.publicKey, { serverNonce: nonce }));
        assert.deepEqual(info.serverNonce, nonce);
      }),
      { numRuns: 100 },
    );
    const plain = openClientInfo(server.privateKey, client.publicKey, sealClientInfo(client.privateKey, server.publicKey));
    assert.equal(plain.serverNonce, undefined);
  });
});

describe('DERP login boxes', () => {
  test('client info seals to the server key and opens only with it', () => {
    const server = generateBoxKeyPair();
    const client = generateBoxKeyPair();
    const other = generateBoxKeyPair();
    const sealed = sealClientInfo(client.privateKey, server.publicKey, { canAckPings: true });
    assert.equal(sealed.length > 24 + 16, true);
    const info = openClientInfo(server.privateKey, client.publicKey, sealed);
    assert.equal(info.version, 2);
    assert.equal(info.canAckPings, true);
    // A client claiming someone else's key cannot produce a box that opens.
    assert.throws(() => openClientInfo(server.privateKey, other.publicKey, sealed), RelayLoginError);
    const flipped = Uint8Array.from(sealed);
    flipped[flipped.length - 1]! ^= 1;
    assert.throws(() => openClientInfo(server.privateKey, client.publicKey, flipped), RelayLoginError);
  });
  test('server info round trip', () => {
    const server = generateBoxKeyPair();
    const client = generateBoxKeyPair();
    const sealed = sealServerInfo(server.privateKey, client.publicKey, { version: 2, tokenBucketBytesPerSecond: 1000 });
    assert.deepEqual(openServerInfo(client.privateKey, server.publicKey, sealed), {
      version: 2,
      tokenBucketBytesPerSecond: 1000,
      tokenBucketBytesBurst: undefined,
    });
  });
});
