/**
 * The mesh DNS server for real on loopback (UDP and TCP), with a little upstream server: mesh
 * names answered here, other names forwarded, malformed input dropped and counted (property
 * tests with arbitrary and mutated messages), memory bounded under a flood.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Socket } from 'node:net';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { buildNameTable } from '../../src/dns/names.js';
import { DnsServer, MAX_PENDING } from '../../src/dns/server.js';

const TABLE = buildNameTable(
  'lab.internal',
  [
    { did: 'did:a', hostname: 'laptop', ipv4: '10.200.0.1', ipv6: 'fd7a:115c:a1e0::1' },
    { did: 'did:b', hostname: 'laptop', ipv4: '10.200.0.2', ipv6: 'fd7a:115c:a1e0::2' },
  ],
  ['10.200.0.0/16', 'fd7a:115c:a1e0::/48'],
);

/** A little upstream: answers A for *.example.test with 192.0.2.55; `silent` answers nothing. */
async function upstream(silent = false): Promise<{ sock: UdpSocket; port: number; seen: string[] }> {
  const sock = createSocket('udp4');
  const seen: string[] = [];
  sock.on('message', (msg, r) => {
    const q = dnsPacket.decode(msg);
    const name = q.questions?.[0]?.name ?? '';
    seen.push(name);
    if (silent) return;
    const ok = name.endsWith('example.test');
    const answer = dnsPacket.encode({
      type: 'response',
      id: q.id ?? 0,
      flags: ok ? 0 : 3,
      questions: q.questions ?? [],
      answers: ok ? [{ type: 'A', name, ttl: 30, data: '192.0.2.55' }] : [],
    });
    sock.send(answer, r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { sock, port: sock.address().port, seen };
}

interface Reply {
  id: number;
  rcode: string;
  aa: boolean;
  /** The answers' data. */
  data: unknown[];
}

function reply(m: Buffer): Reply {
  const d = dnsPacket.decode(m) as dnsPacket.DecodedPacket & { rcode: string };
  return { id: d.id ?? -1, rcode: d.rcode, aa: d.flag_aa, data: (d.answers ?? []).map((a) => (a as { data?: unknown }).data) };
}

function query(name: string, type: dnsPacket.RecordType = 'A', id = 4242): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

function udpAsk(port: number, msg: Buffer, timeoutMs = 3000): Promise<Reply | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(null);
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(reply(m));
    });
    s.send(msg, port, '127.0.0.1');
  });
}

function tcpAsk(port: number, msg: Buffer): Promise<Reply | null> {
  return new Promise((resolve) => {
    const s = new Socket();
    let buf = Buffer.alloc(0);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= buf.readUInt16BE(0) + 2) {
        s.destroy();
        resolve(reply(buf.subarray(2)));
      }
    });
    s.on('close', () => resolve(null));
    s.on('error', () => resolve(null));
    s.connect(port, '127.0.0.1', () => s.write(dnsPacket.streamEncode(dnsPacket.decode(msg))));
  });
}

describe('mesh DNS server', () => {
  let up: Awaited<ReturnType<typeof upstream>>;
  let srv: DnsServer;
  let port: number;

  before(async () => {
    up = await upstream();
    srv = await DnsServer.start({ host: '127.0.0.1', port: 0, table: TABLE, upstreams: [{ host: '127.0.0.1', port: up.port }] });
    port = srv.address().port;
  });
  after(async () => {
    await srv.stop();
    up.sock.close();
  });

  test('A, AAAA and PTR for mesh names (clash: -2), case-insensitive; NXDOMAIN and NODATA in the zone', async () => {
    const a = await udpAsk(port, query('LAPTOP.lab.internal'));
    assert.equal(a?.rcode, 'NOERROR');
    assert.equal(a?.id, 4242);
    assert.ok(a?.aa);
    assert.deepEqual(a?.data, ['10.200.0.1']);
    const b6 = await udpAsk(port, query('laptop-2.lab.internal', 'AAAA'));
    assert.deepEqual(b6?.data, ['fd7a:115c:a1e0::2']);
    const ptr = await udpAsk(port, query('2.0.200.10.in-addr.arpa', 'PTR'));
    assert.deepEqual(ptr?.data, ['laptop-2.lab.internal']);
    const nx = await udpAsk(port, query('nobody.lab.internal'));
    assert.equal(nx?.rcode, 'NXDOMAIN');
    const nxPtr = await udpAsk(port, query('9.9.200.10.in-addr.arpa', 'PTR'));
    assert.equal(nxPtr?.rcode, 'NXDOMAIN', 'a mesh reverse name nobody has is answered here, not forwarded');
    const mx = await udpAsk(port, query('laptop.lab.internal', 'MX'));
    assert.equal(mx?.rcode, 'NOERROR');
    assert.equal(mx?.data.length, 0);
    assert.ok(!up.seen.some((n) => n.endsWith('lab.internal') || n.endsWith('200.10.in-addr.arpa')), `mesh names leaked upstream: ${up.seen.join(', ')}`);
  });

  test('other names are forwarded upstream, over UDP and TCP; the answer comes back under the client’s id', async () => {
    const r = await udpAsk(port, query('files.example.test', 'A', 7));
    assert.equal(r?.id, 7);
    assert.deepEqual(r?.data, ['192.0.2.55']);
    const t = await tcpAsk(port, query('files.example.test', 'A', 8));
    assert.equal(t?.id, 8);
    assert.deepEqual(t?.data, ['192.0.2.55']);
    const m = await tcpAsk(port, query('laptop.lab.internal'));
    assert.deepEqual(m?.data, ['10.200.0.1']);
    const nx = await udpAsk(port, query('nothing.invalid'));
    assert.equal(nx?.rcode, 'NXDOMAIN');
    assert.ok(up.seen.includes('files.example.test'));
  });

  test('a new table takes effect at once', async () => {
    srv.setTable(buildNameTable('lab.internal', [{ did: 'did:a', hostname: 'studio', ipv4: '10.200.0.1', ipv6: 'fd7a:115c:a1e0::1' }], ['10.200.0.0/16']));
    try {
      assert.deepEqual((await udpAsk(port, query('studio.lab.internal')))?.data, ['10.200.0.1']);
      assert.equal((await udpAsk(port, query('laptop-2.lab.internal')))?.rcode, 'NXDOMAIN');
    } finally {
      srv.setTable(TABLE);
    }
  });

  test('property: any bytes, and mutations of real queries, give an answer or a counted drop, never a throw', async (t) => {
    // its own server with a short upstream timeout: mutated names the upstream ignores would
    // otherwise wait the full default each, minutes over 3000 runs
    const srv = await DnsServer.start({ host: '127.0.0.1', port: 0, table: TABLE, upstreams: [{ host: '127.0.0.1', port: up.port }], upstreamTimeoutMs: 100 });
    t.after(() => srv.stop());
    const port = srv.address().port;
    const before = srv.counters();
    const seeds = [query('laptop.lab.internal'), query('2.0.200.10.in-addr.arpa', 'PTR'), query('lab.internal', 'AAAA'), query('x.example.test', 'TXT')];
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(80), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(40))
      .map(([s, flips, cut]) => {
        const b = Buffer.from(s);
        for (const [i, v] of flips) if (i < b.length) b[i] = v;
        return b.subarray(0, Math.max(0, b.length - (cut > 30 ? cut - 30 : 0)));
      });
    let drops = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)), mutated), fc.boolean(), async (msg, tcp) => {
        const r = await srv.handle(msg, tcp ? 'tcp' : 'udp', '127.0.0.1');
        if (r === null) {
          drops++;
          return;
        }
        const d = dnsPacket.decode(r);
        assert.equal(d.type, 'response');
        assert.equal(d.id, msg.readUInt16BE(0));
      }),
      { numRuns: 3000 },
    );
    const after = srv.counters();
    assert.ok(drops > 0);
    assert.equal(after.malformed - before.malformed + (after.overloaded - before.overloaded), drops);
    // and it still answers
    assert.deepEqual((await udpAsk(port, query('laptop.lab.internal')))?.data, ['10.200.0.1']);
  });

  test('garbage over the wire: datagrams dropped and counted, a TCP stream with a bad message closed', async () => {
    const before = srv.counters().malformed;
    const s = createSocket('udp4');
    for (let i = 0; i < 50; i++) s.send(Buffer.from(`garbage ${i}`.padEnd(20, 'x')), port, '127.0.0.1');
    s.send(Buffer.alloc(5000, 1), port, '127.0.0.1');
    const ok = await udpAsk(port, query('laptop.lab.internal'));
    s.close();
    assert.deepEqual(ok?.data, ['10.200.0.1']);
    assert.ok(srv.counters().malformed - before >= 51, `malformed ${srv.counters().malformed - before}`);
    const closed = await new Promise<boolean>((resolve) => {
      const c = new Socket();
      c.on('close', () => resolve(true));
      c.on('error', () => undefined);
      c.connect(port, '127.0.0.1', () => c.write(Buffer.concat([Buffer.from([0, 14]), Buffer.from('not a message!')])));
      setTimeout(() => resolve(false), 3000).unref();
    });
    assert.ok(closed, 'the TCP connection with a malformed message stayed open');
  });
});

test('forwarding: a silent upstream hands over to the next; none answering is SERVFAIL; pending forwards are bounded', async () => {
  const silent = await upstream(true);
  const good = await upstream();
  const srv = await DnsServer.start({ host: '127.0.0.1', port: 0, table: TABLE, upstreams: [{ host: '127.0.0.1', port: silent.port }, { host: '127.0.0.1', port: good.port }], upstreamTimeoutMs: 300 });
  try {
    const r = await udpAsk(srv.address().port, query('a.example.test'));
    assert.deepEqual(r?.data, ['192.0.2.55']);
    assert.ok(silent.seen.includes('a.example.test'));
    srv.setUpstreams([{ host: '127.0.0.1', port: silent.port }]);
    const fail = await udpAsk(srv.address().port, query('b.example.test'));
    assert.equal(fail?.rcode, 'SERVFAIL');
    // a flood: at most MAX_PENDING in flight, the rest dropped and counted
    const flood = Array.from({ length: MAX_PENDING + 40 }, (_, i) => srv.handle(query(`f${i}.example.test`, 'A', i), 'udp', '127.0.0.1'));
    const results = await Promise.all(flood);
    assert.equal(results.filter((x) => x === null).length, 40);
    assert.equal(srv.counters().overloaded, 40);
  } finally {
    await srv.stop();
    silent.sock.close();
    good.sock.close();
  }
});

test('forwarding only for allowed clients: others get mesh names and REFUSED', async () => {
  const good = await upstream();
  const srv = await DnsServer.start({ host: '127.0.0.1', port: 0, table: TABLE, upstreams: [{ host: '127.0.0.1', port: good.port }], mayForward: (c) => c === '10.0.0.1' });
  try {
    assert.equal((await udpAsk(srv.address().port, query('a.example.test')))?.rcode, 'REFUSED');
    assert.deepEqual((await udpAsk(srv.address().port, query('laptop.lab.internal')))?.data, ['10.200.0.1']);
    assert.equal(good.seen.length, 0);
  } finally {
    await srv.stop();
    good.sock.close();
  }
});

test('a port that is taken is a clear E_DNS error', async () => {
  const s = await DnsServer.start({ host: '127.0.0.1', port: 0, table: TABLE });
  try {
    await assert.rejects(DnsServer.start({ host: '127.0.0.1', port: s.address().port, table: TABLE }), (e: Error & { code?: string }) => e.code === 'E_DNS' && /cannot serve DNS/.test(e.message));
  } finally {
    await s.stop();
  }
});
