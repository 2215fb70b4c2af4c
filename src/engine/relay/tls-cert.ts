/**
 * TLS for relays without a certificate authority: a self-signed ECDSA P-256 certificate, made
 * with node:crypto and a minimal DER encoder (node:crypto signs and parses X.509 but does not
 * build it), and the pin that replaces CA verification — the SHA-256 of the certificate's
 * SubjectPublicKeyInfo, base64url (43 characters). The relay record carries that pin; clients
 * compare it with the certificate the relay presents (dial.ts). The pin names the key, not the
 * certificate, so a relay may re-issue its certificate with the same key.
 *
 * The certificate: X.509 v3, random 128-bit serial, subject = issuer = CN, valid from a day ago
 * for 20 years (pinned keys make expiry meaningless), basicConstraints CA:FALSE, keyUsage
 * digitalSignature, extKeyUsage serverAuth, subjectAltName with the given DNS names and IPs.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { MeshdError } from '../../errors.js';

export class RelayCertError extends MeshdError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('E_RELAY', `relay certificate: ${message}`, options);
  }
}

// ----------------------------------------------------------------------------- DER

function derLength(n: number): Uint8Array {
  if (n < 0x80) return Uint8Array.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

/** One DER TLV: tag, definite length, contents. */
export function derTlv(tag: number, ...parts: Uint8Array[]): Buffer {
  const body = Buffer.concat(parts);
  return Buffer.concat([Uint8Array.of(tag), derLength(body.length), body]);
}

const seq = (...parts: Uint8Array[]): Buffer => derTlv(0x30, ...parts);
const set = (...parts: Uint8Array[]): Buffer => derTlv(0x31, ...parts);

/** A non-negative INTEGER from big-endian bytes (a leading zero keeps it positive). */
function derUint(bytes: Uint8Array): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const b = bytes.subarray(i);
  return derTlv(0x02, b[0]! & 0x80 ? Uint8Array.of(0, ...b) : b);
}

export function derOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [arcs[0]! * 40 + arcs[1]!];
  for (const arc of arcs.slice(2)) {
    const chunk: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return derTlv(0x06, Uint8Array.from(out));
}

function derTime(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  // UTCTime through 2049, GeneralizedTime after (RFC 5280 rule).
  return d.getUTCFullYear() < 2050 ? derTlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : derTlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_CN = '2.5.4.3';
const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_EXT_KEY_USAGE = '2.5.29.37';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';
const OID_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return Uint8Array.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function extension(oid: string, critical: boolean, value: Uint8Array): Buffer {
  return critical ? seq(derOid(oid), derTlv(0x01, Uint8Array.of(0xff)), derTlv(0x04, value)) : seq(derOid(oid), derTlv(0x04, value));
}

export interface SelfSignedOptions {
  /** Subject and issuer common name. */
  commonName: string;
  /** DNS names and IP addresses for subjectAltName. */
  altNames?: readonly string[];
  /** Validity start (default: a day ago). */
  notBefore?: Date;
  /** Validity length in days (default 20 years). */
  days?: number;
  /** The key (default: a fresh P-256 key). */
  privateKey?: KeyObject;
}

export interface RelayCertificate {
  certPem: string;
  keyPem: string;
  /** SHA-256 of the SubjectPublicKeyInfo, base64url. */
  fingerprint: string;
}

/** A self-signed ECDSA P-256 certificate for a relay. */
export function selfSignedCertificate(opts: SelfSignedOptions): RelayCertificate {
  const key = opts.privateKey ?? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  if (key.asymmetricKeyType !== 'ec') throw new RelayCertError('the key must be an ECDSA P-256 key');
  const spki = key.type === 'private' ? createPublicFrom(key) : key.export({ type: 'spki', format: 'der' });
  const name = seq(set(seq(derOid(OID_CN), derTlv(0x0c, Buffer.from(opts.commonName, 'utf8')))));
  const notBefore = opts.notBefore ?? new Date(Date.now() - 86_400_000);
  const notAfter = new Date(notBefore.getTime() + (opts.days ?? 20 * 365) * 86_400_000);
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  const sans = (opts.altNames ?? []).map((n) => (isIP(n) ? derTlv(0x87, ipBytes(n)) : derTlv(0x82, Buffer.from(n, 'ascii'))));
  const exts = [
    extension(OID_BASIC_CONSTRAINTS, true, seq()),
    extension(OID_KEY_USAGE, true, derTlv(0x03, Uint8Array.of(7, 0x80))),
    extension(OID_EXT_KEY_USAGE, false, seq(derOid(OID_SERVER_AUTH))),
    ...(sans.length > 0 ? [extension(OID_SUBJECT_ALT_NAME, false, seq(...sans))] : []),
  ];
  const sigAlg = seq(derOid(OID_ECDSA_SHA256));
  const tbs = seq(
    derTlv(0xa0, derUint(Uint8Array.of(2))),
    derUint(serial),
    sigAlg,
    name,
    seq(derTime(notBefore), derTime(notAfter)),
    name,
    spki,
    derTlv(0xa3, seq(...exts)),
  );
  const signature = sign('sha256', tbs, { key, dsaEncoding: 'der' });
  const der = seq(tbs, sigAlg, derTlv(0x03, Uint8Array.of(0), signature));
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { certPem, keyPem, fingerprint: spkiFingerprint(spki) };
}

function createPublicFrom(priv: KeyObject): Buffer {
  return createPublicKey(priv).export({ type: 'spki', format: 'der' });
}

/** base64url SHA-256 of a DER SubjectPublicKeyInfo. */
export function spkiFingerprint(spkiDer: Uint8Array): string {
  return createHash('sha256').update(spkiDer).digest('base64url');
}

/** The pin of a certificate (PEM or DER): the fingerprint of its public key. */
export function certificateFingerprint(cert: string | Uint8Array): string {
  let x: X509Certificate;
  try {
    x = new X509Certificate(typeof cert === 'string' ? cert : Buffer.from(cert));
  } catch (e) {
    throw new RelayCertError('not an X.509 certificate', { cause: e });
  }
  return spkiFingerprint(x.publicKey.export({ type: 'spki', format: 'der' }));
}

/** A base64url SHA-256 (32 bytes, 43 characters, no padding). */
export function isFingerprint(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9_-]{43}$/.test(s);
}

/** Checks that a PEM key parses (for --key). */
export function checkPrivateKeyPem(pem: string): void {
  try {
    createPrivateKey(pem);
  } catch (e) {
    throw new RelayCertError('the key file does not hold a private key', { cause: e });
  }
}

export const RELAY_CERT_FILE = 'relay-cert.pem';
export const RELAY_KEY_FILE = 'relay-key.pem';

/**
 * The relay's self-signed certificate in `dir`: loaded when there, else made and saved (key
 * 0600). A key without its certificate gets a new certificate for the same key (same pin).
 */
export function loadOrCreateRelayCertificate(dir: string, opts: Omit<SelfSignedOptions, 'privateKey'>): RelayCertificate & { created: boolean } {
  const certPath = join(dir, RELAY_CERT_FILE);
  const keyPath = join(dir, RELAY_KEY_FILE);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  let keyPem: string | null = null;
  try {
    keyPem = readFileSync(keyPath, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RelayCertError(`cannot read ${RELAY_KEY_FILE}`, { cause: e });
  }
  if (keyPem !== null) {
    let certPem: string | null = null;
    try {
      certPem = readFileSync(certPath, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new RelayCertError(`cannot read ${RELAY_CERT_FILE}`, { cause: e });
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(keyPem);
    } catch (e) {
      throw new RelayCertError(`${RELAY_KEY_FILE} does not hold a private key`, { cause: e });
    }
    const want = spkiFingerprint(createPublicKey(key).export({ type: 'spki', format: 'der' }));
    if (certPem !== null && certificateFingerprint(certPem) === want) return { certPem, keyPem, fingerprint: want, created: false };
    const c = selfSignedCertificate({ ...opts, privateKey: key });
    writeFileSync(certPath, c.certPem, { mode: 0o644 });
    return { ...c, created: true };
  }
  const c = selfSignedCertificate(opts);
  writeFileSync(keyPath, c.keyPem, { mode: 0o600 });
  writeFileSync(certPath, c.certPem, { mode: 0o644 });
  return { ...c, created: true };
}
