import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  STUN_BINDING_REQUEST,
  StunClient,
  StunError,
  classifyNatMapping,
  decodeBindingResponse,
  decodeStunMessage,
  encodeBindingRequest,
  encodeBindingResponse,
  ipToBytes,
  isStunPacket,
  stunRespond,
  type StunBindingResult,
} from '../../src/engine/magicsock/stun.js';
import { generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { isDiscoPacket, sealDiscoTo } from '../../src/engine/magicsock/disco.js';

const h = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 5769 test vectors (sections 2.1–2.3). Short-term password "VOkJxbRl1RmTxUk/WvJxBt"
// (MESSAGE-INTEGRITY is not checked by meshd; FINGERPRINT is).
const RFC5769_REQUEST = h(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);
const RFC5769_IPV4_RESPONSE = h(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
const RFC5769_IPV6_RESPONSE = h(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);
const RFC5769_TXID = 'b7e7a701bc34d686fa87dfae';

describe('STUN codec against RFC 5769', () => {
  test('sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853, fingerprint verified', () => {
    const r = decodeBindingResponse(RFC5769_IPV4_RESPONSE);
    assert.equal(Buffer.from(r.txId).toString('hex'), RFC5769_TXID);
    assert.deepEqual(r.mapped, { family: 4, ip: '192.0.2.1', port: 32853 });
    const m = decodeStunMessage(RFC5769_IPV4_RESPONSE);
    assert.equal(m.software, 'test vector');
    assert.equal(m.hasFingerprint, true);
  });
  test('sample IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
    const r = decodeBindingResponse(RFC5769_IPV6_RESPONSE);
    assert.deepEqual(r.mapped, { family: 6, ip: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
  });
  test('sample request: a binding request whose padding and fingerprint parse', () => {
    const m = decodeStunMessage(RFC5769_REQUEST);
    assert.equal(m.type, STUN_BINDING_REQUEST);
    assert.equal(m.software, 'STUN test client');
    assert.equal(m.hasFingerprint, true);
    assert.equal(isStunPacket(RFC5769_REQUEST), true);
  });
  test('a flipped bit under the fingerprint is detected', () => {
    const bad = Buffer.from(RFC5769_IPV4_RESPONSE);
    bad[25]! ^= 0x20; // inside SOFTWARE
    assert.throws(() => decodeStunMessage(bad), (e) => e instanceof StunError && e.reason === 'bad-fingerprint');
  });
  test('MAPPED-ADDRESS (no XOR) is used when XOR-MAPPED-ADDRESS is absent', () => {
    const msg = h('0101 000c 2112a442 000000000000000000000001 0001 0008 0001 1f90 0a000001');
    assert.deepEqual(decodeBindingResponse(msg).mapped, { family: 4, ip: '10.0.0.1', port: 8080 });
  });
  test('our responder answers the RFC sample request, echoing its transaction id', () => {
    const res = stunRespond(RFC5769_REQUEST, '192.0.2.1', 32853)!;
    const r = decodeBindingResponse(res);
    assert.equal(Buffer.from(r.txId).toString('hex'), RFC5769_TXID);
    assert.deepEqual(r.mapped, { family: 4, ip: '192.0.2.1', port: 32853 });
    // The XOR-MAPPED-ADDRESS value bytes match the RFC's sample response for the same address.
    assert.ok(res.includes(h('0020 0008 0001 a147 e112a643')));
    const res6 = stunRespond(RFC5769_REQUEST, '2001:db8:1234:5678:11:2233:4455:6677', 32853)!;
    assert.ok(res6.includes(h('0020 0014 0002 a147 0113a9fa a5d3f179 bc25f4b5 bed2b9d9')));
    // IPv4-mapped source addresses (dual-stack sockets) are answered as IPv4.
    assert.deepEqual(decodeBindingResponse(stunRespond(RFC5769_REQUEST, '::ffff:198.51.100.2', 9)!).mapped, { family: 4, ip: '198.51.100.2', port: 9 });
  });
  test('the responder ignores responses, garbage and other methods', () => {
    assert.equal(stunRespond(RFC5769_IPV4_RESPONSE, '127.0.0.1', 1), null);
    assert.equal(stunRespond(h('0003 0000 2112a442 000000000000000000000000'), '127.0.0.1', 1), null);
    assert.equal(stunRespond(Buffer.from('hello'), '127.0.0.1', 1), null);
    assert.equal(stunRespond(encodeBindingRequest(), 'not-an-ip', 1), null);
  });
  test('binding request layout: header, random 12-byte txid, FINGERPRINT', () => {
    const tx = h('0102030405060708090a0b0c');
    const req = encodeBindingRequest(tx);
    assert.equal(req.toString('hex').slice(0, 40), '000100082112a442' + '0102030405060708090a0b0c');
    assert.equal(req.subarray(20, 24).toString('hex'), '80280004');
    assert.equal(decodeStunMessage(req).hasFingerprint, true);
    assert.equal(encodeBindingRequest(tx, { fingerprint: false }).toString('hex'), '000100002112a442' + '0102030405060708090a0b0c');
    const a = encodeBindingRequest();
    const b = encodeBindingRequest();
    assert.notEqual(a.subarray(8, 20).toString('hex'), b.subarray(8, 20).toString('hex'));
  });
  test('malformed messages are rejected with StunError', () => {
    const cases: [string, string][] = [
      ['0101', 'short'],
      ['4101 0000 2112a442 000000000000000000000000', 'not-stun'],
      ['0101 0000 2112a443 000000000000000000000000', 'not-stun'],
      ['0101 0004 2112a442 000000000000000000000000', 'bad-length'],
      ['0101 0002 2112a442 000000000000000000000000 0000', 'bad-length'],
      ['0101 0004 2112a442 000000000000000000000000 0020 0008', 'bad-attribute'],
      ['0101 000c 2112a442 000000000000000000000000 0020 0008 0003 0000 00000000', 'bad-address'],
      ['0101 0008 2112a442 000000000000000000000000 0020 0004 0001 0000', 'bad-address'],
      ['0101 000c 2112a442 000000000000000000000000 8028 0004 00000000 0001 0000', 'bad-fingerprint'],
    ];
    for (const [hex, reason] of cases) {
      assert.throws(() => decodeStunMessage(h(hex)), (e) => e instanceof StunError && e.reason === reason, `${hex} → ${reason}`);
    }
    assert.throws(() => decodeBindingResponse(encodeBindingRequest()), (e) => e instanceof StunError && e.reason === 'not-binding-response');
    assert.throws(() => decodeBindingResponse(h('0101 0000 2112a442 000000000000000000000000')), (e) => e instanceof StunError && e.reason === 'no-address');
  });
});

const ip4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((a) => a.join('.'));
const ip6 = fc.ipV6().filter((s) => !s.includes('.'));

describe('STUN codec properties', () => {
  test('response encode → decode gives the same address for any IPv4/IPv6, port and txid', () => {
    fc.assert(
      fc.property(fc.oneof(ip4, ip6), fc.integer({ min: 0, max: 65535 }), fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.boolean(), (ip, port, tx, fp) => {
        const r = decodeBindingResponse(encodeBindingResponse(tx, ip, port, { fingerprint: fp, software: 'meshd' }));
        assert.equal(Buffer.from(r.txId).toString('hex'), Buffer.from(tx).toString('hex'));
        assert.equal(r.mapped.port, port);
        assert.deepEqual(ipToBytes(r.mapped.ip), ipToBytes(ip));
      }),
      { numRuns: 300 },
    );
  });
  test('the decoder throws only StunError on arbitrary bytes and on mutated valid messages', () => {
    const valid = [RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE];
    const mutated = fc
      .tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }), fc.nat())
      .map(([b, edits, cut]) => {
        const c = Buffer.from(b);
        for (const [i, v] of edits) c[i % c.length] = v;
        return c.subarray(0, cut % (c.length + 1));
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 120 }), mutated), (b) => {
        try {
          decodeBindingResponse(b);
        } catch (e) {
          assert.ok(e instanceof StunError, `unexpected ${String(e)}`);
        }
        assert.ok(stunRespond(b, '127.0.0.1', 1) === null || isStunPacket(b));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('demultiplexing the shared socket by first bytes', () => {
  const wg = (type: number, len: number): Buffer => {
    const b = Buffer.alloc(len, 0xab);
    b[0] = type;
    b[1] = 0;
    b[2] = 0;
    b[3] = 0;
    return b;
  };
  const a = generateBoxKeyPair();
  const b = generateBoxKeyPair();
  const disco = sealDiscoTo({ type: 'ping', txId: new Uint8Array(12) }, a.privateKey, a.publicKey, b.publicKey);

  test('WireGuard messages are neither STUN nor disco', () => {
    for (const [t, n] of [
      [1, 148],
      [2, 92],
      [3, 64],
      [4, 32],
      [4, 1452],
    ] as const) {
      assert.equal(isStunPacket(wg(t, n)), false, `wg type ${t}`);
      assert.equal(isDiscoPacket(wg(t, n)), false, `wg type ${t}`);
    }
  });
  test('STUN binding requests and responses are STUN and not disco', () => {
    for (const p of [encodeBindingRequest(), RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, encodeBindingResponse(new Uint8Array(12), '127.0.0.1', 5)]) {
      assert.equal(isStunPacket(p), true);
      assert.equal(isDiscoPacket(p), false);
    }
  });
  test('disco packets are disco and not STUN', () => {
    assert.equal(isDiscoPacket(disco), true);
    assert.equal(isStunPacket(disco), false);
    assert.equal(isDiscoPacket(disco.subarray(0, 62)), false, 'too short to hold a box');
  });
  test('property: a WireGuard-shaped packet (type 1–4, three zero bytes) never matches STUN or disco', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.uint8Array({ minLength: 28, maxLength: 200 }), (t, rest) => {
        const p = Buffer.concat([Buffer.from([t, 0, 0, 0]), rest]);
        assert.equal(isStunPacket(p), false);
        assert.equal(isDiscoPacket(p), false);
      }),
    );
  });
});

describe('StunClient over a handed-in send function', () => {
  /** A fake network: every request is answered by stunRespond as seen from `seenAs`. */
  function loop(seenAs: (host: string) => { ip: string; port: number }, opts?: { drop?: number }) {
    let dropped = 0;
    const sent: string[] = [];
    const client: StunClient = new StunClient({
      send: (packet, port, host) => {
        sent.push(`${host}:${port}`);
        if (dropped < (opts?.drop ?? 0)) {
          dropped++;
          return;
        }
        const from = seenAs(host);
        const res = stunRespond(packet, from.ip, from.port);
        if (res) setImmediate(() => client.handlePacket(res));
      },
      retransmitMs: 20,
      timeoutMs: 400,
    });
    return { client, sent };
  }

  test('a request resolves with the address the server saw', async () => {
    const { client } = loop(() => ({ ip: '203.0.113.9', port: 41641 }));
    const r = await client.request({ host: '198.51.100.1', port: 3478 });
    assert.deepEqual(r.mapped, { family: 4, ip: '203.0.113.9', port: 41641 });
    assert.deepEqual(r.server, { host: '198.51.100.1', port: 3478 });
    assert.equal(client.pendingCount, 0);
  });
  test('lost requests are retransmitted with the same transaction id', async () => {
    const { client, sent } = loop(() => ({ ip: '203.0.113.9', port: 1 }), { drop: 2 });
    await client.request({ host: 's', port: 1 });
    assert.equal(sent.length, 3);
  });
  test('no answer → rejects with a timeout StunError (E_TIMEOUT)', async () => {
    const client = new StunClient({ send: () => undefined, timeoutMs: 50, retransmitMs: 10 });
    await assert.rejects(client.request({ host: 'x', port: 1 }), (e) => e instanceof StunError && e.reason === 'timeout' && e.code === 'E_TIMEOUT');
  });
  test('a send that throws fails the request', async () => {
    const client = new StunClient({
      send: () => {
        throw new Error('EHOSTUNREACH');
      },
    });
    await assert.rejects(client.request({ host: 'x', port: 1 }), (e) => e instanceof StunError && e.reason === 'send-failed');
  });
  test('responses with unknown transaction ids are not consumed; close rejects pending', async () => {
    const client = new StunClient({ send: () => undefined, timeoutMs: 5000 });
    const p = client.request({ host: 'x', port: 1 });
    assert.equal(client.handlePacket(RFC5769_IPV4_RESPONSE), false);
    assert.equal(client.handlePacket(Buffer.from('not stun at all')), false);
    client.close();
    await assert.rejects(p, (e) => e instanceof StunError && e.reason === 'closed');
  });
});

describe('NAT mapping classification', () => {
  const res = (host: string, ip: string, port: number): StunBindingResult => ({ server: { host, port: 3478 }, mapped: { family: 4, ip, port }, rttMs: 1 });
  test('same mapping from two servers → endpoint-independent', () => {
    assert.equal(classifyNatMapping([res('a', '203.0.113.1', 4000), res('b', '203.0.113.1', 4000)]), 'endpoint-independent');
  });
  test('a different port per server → endpoint-dependent', () => {
    assert.equal(classifyNatMapping([res('a', '203.0.113.1', 4000), res('b', '203.0.113.1', 4001)]), 'endpoint-dependent');
  });
  test('one server (even asked twice) → unknown', () => {
    assert.equal(classifyNatMapping([res('a', '203.0.113.1', 4000), res('a', '203.0.113.1', 4000)]), 'unknown');
    assert.equal(classifyNatMapping([]), 'unknown');
  });
});
