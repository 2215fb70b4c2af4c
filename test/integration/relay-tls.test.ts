/**
 * Relays over TLS on 127.0.0.1: a self-signed certificate (tls-cert.ts, checked by node:crypto
 * and, when present, openssl) pinned by its key fingerprint; the DERP upgrade and WebSocket
 * both work with the right pin; a relay presenting another key is refused, visibly.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelayServer } from '../../src/engine/relay/server.js';
import { RelayClient, RelayPinError } from '../../src/engine/relay/client.js';
import { generateBoxKeyPair } from '../../src/engine/crypto/nacl-box.js';
import { certificateFingerprint, isFingerprint, loadOrCreateRelayCertificate, selfSignedCertificate } from '../../src/engine/relay/tls-cert.js';
import { waitFor } from '../helpers/derp-raw.js';
import { RelaySet, normalizeRelayUrl } from '../../src/engine/magicsock/relay-set.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('relay TLS', () => {
  test('the self-signed certificate parses, verifies, has the names; fingerprint = SHA-256 of its SPKI; openssl agrees', () => {
    const c = selfSignedCertificate({ commonName: 'meshd-relay', altNames: ['relay.test', '127.0.0.1', 'fd00::1'] });
    const x = new X509Certificate(c.certPem);
    assert.ok(x.verify(x.publicKey));
    assert.equal(x.subject, 'CN=meshd-relay');
    assert.match(x.subjectAltName ?? '', /DNS:relay\.test, IP Address:127\.0\.0\.1, IP Address:FD00:0:0:0:0:0:0:1/);
    assert.equal(x.ca, false);
    assert.ok(isFingerprint(c.fingerprint));
    assert.equal(certificateFingerprint(c.certPem), c.fingerprint);
    if (hasOpenssl()) {
      const dir = mkdtempSync(join(tmpdir(), 'meshd-cert-'));
      try {
        writeFileSync(join(dir, 'c.pem'), c.certPem);
        const text = execFileSync('openssl', ['x509', '-in', join(dir, 'c.pem'), '-noout', '-text'], { encoding: 'utf8' });
        assert.match(text, /Version: 3/);
        assert.match(text, /ecdsa-with-SHA256/);
        assert.match(text, /CA:FALSE/);
        assert.match(text, /TLS Web Server Authentication/);
        const spki = execFileSync('sh', ['-c', `openssl x509 -in ${join(dir, 'c.pem')} -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='`], { encoding: 'utf8' }).trim();
        assert.equal(spki, c.fingerprint);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  test('the certificate is kept in the state directory: same pin across restarts, re-issued for the same key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshd-relay-state-'));
    try {
      const a = loadOrCreateRelayCertificate(dir, { commonName: 'meshd-relay' });
      const b = loadOrCreateRelayCertificate(dir, { commonName: 'meshd-relay' });
      assert.equal(a.created, true);
      assert.equal(b.created, false);
      assert.equal(a.fingerprint, b.fingerprint);
      rmSync(join(dir, 'relay-cert.pem'));
      const c = loadOrCreateRelayCertificate(dir, { commonName: 'meshd-relay' });
      assert.equal(c.created, true);
      assert.equal(c.fingerprint, a.fingerprint);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('HTTPS and WSS with the pinned key carry packets; another key is refused with a visible error; no pin → CA verification fails', async () => {
    const cert = selfSignedCertificate({ commonName: 'meshd-relay', altNames: ['127.0.0.1'] });
    const other = selfSignedCertificate({ commonName: 'meshd-relay', altNames: ['127.0.0.1'] });
    const s = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1', tls: { cert: cert.certPem, key: cert.keyPem } });
    const clients: RelayClient[] = [];
    const mk = (url: string, fp: string | undefined, onPacket?: (src: Uint8Array, p: Uint8Array) => void): RelayClient => {
      const k = generateBoxKeyPair();
      const c = new RelayClient({ url, privateKey: k.privateKey, backoffMinMs: 50, backoffMaxMs: 200, ...(fp ? { tlsFingerprint: fp } : {}), ...(onPacket ? { onPacket } : {}) });
      clients.push(c);
      return c;
    };
    try {
      const url = s.address().url;
      assert.match(url, /^https:/);
      const got: string[] = [];
      const a = mk(url, cert.fingerprint);
      const b = mk(url.replace('https:', 'wss:'), cert.fingerprint, (_src, p) => got.push(Buffer.from(p).toString()));
      await Promise.all([a.waitConnected(3000), b.waitConnected(3000)]);
      a.send(b.publicKey, Buffer.from('over tls'));
      await waitFor(() => got.length === 1, 'packet over TLS');
      assert.deepEqual(got, ['over tls']);

      for (const wrong of [mk(url, other.fingerprint), mk(url.replace('https:', 'wss:'), other.fingerprint)]) {
        wrong.start();
        await waitFor(() => wrong.stats().connectFailures > 0, 'refused');
        assert.match(wrong.stats().lastError ?? '', /relay certificate refused: its key fingerprint .* is not the pinned/);
        assert.notEqual(wrong.state, 'connected');
      }
      const unpinned = mk(url, undefined);
      unpinned.start();
      await waitFor(() => unpinned.stats().connectFailures > 0, 'unverified');
      assert.match(unpinned.stats().lastError ?? '', /self[- ]signed/i);
      assert.equal(s.stats().currentClients, 2);
      assert.ok(new RelayPinError('x', null).message.includes('no certificate'));
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
      await s.stop();
    }
  });

  test('the magic socket\'s relay set pins from the relay config; a wrong pin shows in its relay status', async () => {
    const cert = selfSignedCertificate({ commonName: 'meshd-relay' });
    const s = await startRelayServer({ httpPort: 0, stunPort: null, host: '127.0.0.1', tls: { cert: cert.certPem, key: cert.keyPem } });
    const k = generateBoxKeyPair();
    const set = new RelaySet({ privateKey: k.privateKey, publicKey: k.publicKey, onPacket: () => undefined });
    try {
      const url = s.address().url;
      set.setRelays([{ url, fingerprint: selfSignedCertificate({ commonName: 'other' }).fingerprint }]);
      set.setHome(url);
      await waitFor(() => (set.status()[0]?.lastError ?? '').includes('certificate refused'), 'refusal in the status');
      assert.notEqual(set.status()[0]!.state, 'connected');
      // The record's pin is corrected: a new connection with the right pin.
      set.setRelays([{ url, fingerprint: cert.fingerprint }]);
      await waitFor(() => set.isConnected(normalizeRelayUrl(url)), 'connected with the right pin');
    } finally {
      await set.stop();
      await s.stop();
    }
  });
});
