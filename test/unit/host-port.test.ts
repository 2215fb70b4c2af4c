import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { joinHostPort, splitHostPort } from '../../src/util/host-port.js';

test('splitHostPort: IPv4, IPv6 in brackets, names, defaults, and malformed input', () => {
  assert.deepEqual(splitHostPort('192.0.2.1:51820'), { host: '192.0.2.1', port: 51820 });
  assert.deepEqual(splitHostPort('[2001:db8::1]:443'), { host: '2001:db8::1', port: 443 });
  assert.deepEqual(splitHostPort('relay.example:3340'), { host: 'relay.example', port: 3340 });
  assert.deepEqual(splitHostPort(':3340'), { host: '', port: 3340 });
  assert.deepEqual(splitHostPort('relay', { defaultPort: 3478 }), { host: 'relay', port: 3478 });
  assert.deepEqual(splitHostPort('2001:db8::1', { defaultPort: 3478 }), { host: '2001:db8::1', port: 3478 });
  assert.deepEqual(splitHostPort('[2001:db8::1]', { defaultPort: 1 }), { host: '2001:db8::1', port: 1 });
  assert.deepEqual(splitHostPort('0.0.0.0:0', { allowZeroPort: true }), { host: '0.0.0.0', port: 0 });
  for (const bad of ['', 'host', '1.2.3.4:', '1.2.3.4:0', '1.2.3.4:65536', '1.2.3.4:+1', '[::1', '[::1]x', '[1.2.3.4]:5', '2001:db8::1', 'a:1:2x']) {
    assert.equal(splitHostPort(bad), null, bad);
  }
});

test('joinHostPort and splitHostPort round trip', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()), fc.integer({ min: 1, max: 65535 }), (host, port) => {
      assert.deepEqual(splitHostPort(joinHostPort(host, port)), { host, port });
    }),
  );
  fc.assert(
    fc.property(fc.string(), (s) => {
      const r = splitHostPort(s, { defaultPort: 7 });
      if (r) assert.ok(r.port >= 1 && r.port <= 65535);
    }),
  );
});
