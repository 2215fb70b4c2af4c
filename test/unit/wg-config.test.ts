/** The wg-quick parser: the documented keys, errors with line numbers, fast-check round trips and garbage. */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MeshdError } from '../../src/errors.js';
import { formatWgConfig, parseWgConfig, type WgConfig } from '../../src/engine/wg-config.js';
import { formatIp } from '../../src/util/ip.js';
import { formatPrefix, makePrefix } from '../../src/util/prefix.js';

const K1 = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';
const K2 = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const K3 = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';

function configError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof MeshdError && e.code === 'E_CONFIG_INVALID' && re.test(e.message));
}

describe('wg-quick config', () => {
  test('a typical file', () => {
    const c = parseWgConfig(`
# a comment
[Interface]
PrivateKey = ${K1}
ListenPort = 51820
Address = 10.200.0.1/16, fd0d:e100:d3c5::1/48   # trailing comment
MTU = 1380
DNS = 1.1.1.1
PostUp = echo hi

[Peer]
PublicKey = ${K2}
PresharedKey = ${K3}
AllowedIPs = 10.200.0.2/32, fd0d:e100:d3c5::2/128
AllowedIPs = 192.168.5.0/24
Endpoint = 198.51.100.2:51820
PersistentKeepalive = 25

[peer]
publickey = ${K3}
endpoint = [2001:db8::1]:51821
persistentkeepalive = off
`);
    assert.equal(Buffer.from(c.interface.privateKey).toString('base64'), K1);
    assert.equal(c.interface.listenPort, 51820);
    assert.equal(c.interface.mtu, 1380);
    assert.deepEqual(
      c.interface.addresses.map((a) => `${formatIp(a.ip)}/${a.bits}`),
      ['10.200.0.1/16', 'fd0d:e100:d3c5::1/48'],
    );
    assert.deepEqual(c.ignored.sort(), ['DNS', 'PostUp']);
    assert.equal(c.peers.length, 2);
    const [p, q] = c.peers as [WgConfig['peers'][0], WgConfig['peers'][0]];
    assert.equal(Buffer.from(p.publicKey).toString('base64'), K2);
    assert.equal(Buffer.from(p.presharedKey!).toString('base64'), K3);
    assert.deepEqual(p.allowedIps.map(formatPrefix), ['10.200.0.2/32', 'fd0d:e100:d3c5::2/128', '192.168.5.0/24']);
    assert.equal(p.endpoint, '198.51.100.2:51820');
    assert.equal(p.persistentKeepalive, 25);
    assert.equal(q.endpoint, '[2001:db8::1]:51821');
    assert.equal(q.persistentKeepalive, 0);
    assert.equal(q.presharedKey, null);
    assert.deepEqual(q.allowedIps, []);
  });

  test('hostnames are allowed in Endpoint (resolved by the caller)', () => {
    const c = parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\nEndpoint = vpn.example.org:51820\n`);
    assert.equal(c.peers[0]!.endpoint, 'vpn.example.org:51820');
  });

  test('errors name the line', () => {
    configError(() => parseWgConfig('PrivateKey = x'), /line 1: setting outside a section/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = nope`), /line 2: PrivateKey is not a base64/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\nListenPort = 70000`), /line 3: ListenPort must be between/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\nBogus = 1`), /line 3: unknown \[Interface\] key Bogus/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nAllowedIPs = 10.0.0.0/33\nPublicKey = ${K2}`), /line 4: AllowedIPs/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nEndpoint = 1.2.3.4`), /line 4: Endpoint/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nEndpoint = 1.2.3.4:1`), /line 3: \[Peer\] without PublicKey/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\nPrivateKey = ${K1}`), /line 3: PrivateKey given twice/);
    configError(() => parseWgConfig(`[Interface]\nListenPort = 1`), /without PrivateKey/);
    configError(() => parseWgConfig(''), /no \[Interface\]/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Peer]\nPublicKey = ${K2}\n[Peer]\nPublicKey = ${K2}`), /appears twice/);
    configError(() => parseWgConfig(`[Interface]\nPrivateKey = ${K1}\n[Wat]`), /line 3: unknown section/);
  });

  const key = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const v4 = fc.uint8Array({ minLength: 4, maxLength: 4 });
  const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
  const addr = fc.oneof(
    fc.tuple(v4, fc.integer({ min: 0, max: 32 })),
    fc.tuple(v6, fc.integer({ min: 0, max: 128 })),
  );
  const ipText = fc.oneof(
    fc.ipV4(),
    fc.ipV6().map((s) => `[${s}]`),
  );
  const config: fc.Arbitrary<WgConfig> = fc.record({
    interface: fc.record({
      privateKey: key,
      listenPort: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: null }),
      addresses: fc.array(addr.map(([ip, bits]) => ({ ip, bits })), { maxLength: 3 }),
      mtu: fc.option(fc.integer({ min: 576, max: 9000 }), { nil: null }),
    }, { noNullPrototype: true }),
    peers: fc.uniqueArray(
      fc.record({
        publicKey: key,
        presharedKey: fc.option(key, { nil: null }),
        allowedIps: fc.array(addr.map(([a, bits]) => makePrefix(a, bits)), { maxLength: 4 }),
        endpoint: fc.option(fc.tuple(ipText, fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`), { nil: null }),
        persistentKeepalive: fc.integer({ min: 0, max: 65535 }),
      }, { noNullPrototype: true }),
      { maxLength: 4, selector: (p) => Buffer.from(p.publicKey).toString('hex') },
    ),
    ignored: fc.constant([]),
  }, { noNullPrototype: true });

  test('fast-check: format → parse is the identity', () => {
    fc.assert(
      fc.property(config, (c) => {
        const parsed = parseWgConfig(formatWgConfig(c));
        // endpoints are kept as written; IPv6 addresses may be written differently
        assert.deepEqual(parsed, c);
      }),
      { numRuns: 300 },
    );
  });

  test('fast-check: arbitrary text only ever yields a config or E_CONFIG_INVALID', () => {
    const lines = fc.array(
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom('[Interface]', '[Peer]', `PrivateKey = ${K1}`, `PublicKey = ${K2}`, 'AllowedIPs = 10.0.0.0/8', 'Endpoint = 1.2.3.4:5', 'MTU = 1420', 'ListenPort = 1'),
        fc.tuple(fc.constantFrom('PrivateKey', 'ListenPort', 'Address', 'MTU', 'PublicKey', 'AllowedIPs', 'Endpoint', 'PersistentKeepalive', 'PresharedKey'), fc.string({ maxLength: 30 })).map(([k, v]) => `${k} = ${v}`),
      ),
      { maxLength: 12 },
    );
    fc.assert(
      fc.property(lines, (ls) => {
        try {
          parseWgConfig(ls.join('\n'));
        } catch (e) {
          assert.ok(e instanceof MeshdError && e.code === 'E_CONFIG_INVALID', String(e));
        }
      }),
      { numRuns: 1000 },
    );
  });
});
