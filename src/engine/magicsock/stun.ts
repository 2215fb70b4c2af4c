/**
 * STUN (RFC 8489, formerly 5389) as meshd uses it: Binding requests and responses only, with
 * XOR-MAPPED-ADDRESS / MAPPED-ADDRESS for IPv4 and IPv6 and an optional FINGERPRINT. No
 * authentication, no TURN.
 *
 * Three parts share the codec:
 * - `stunRespond` — a stateless responder (the relay's STUN port answers with it);
 * - `StunClient` — produces requests and consumes responses for a socket it does not own (the
 *   magic socket sends and receives; STUN must leave from the WireGuard socket so the mapping it
 *   learns is the one WireGuard uses);
 * - `classifyNatMapping` — endpoint-independent vs endpoint-dependent mapping from the answers of
 *   two or more servers.
 */
import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { crc32 } from 'node:zlib';
import { MeshdError } from '../../errors.js';
import { backoffDelay } from '../../util/backoff.js';
import { systemClock, type Clock, type Ticker } from '../../util/clock.js';
import { formatIPv4, formatIPv6, formatIp16, isV4MappedAt, parseIp16At, parseIpZoned } from '../../util/ip.js';

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_LEN = 20;
export const STUN_TXID_LEN = 12;
export const STUN_DEFAULT_PORT = 3478;

export const STUN_BINDING_REQUEST = 0x0001;
export const STUN_BINDING_SUCCESS = 0x0101;
export const STUN_BINDING_ERROR = 0x0111;

export const ATTR_MAPPED_ADDRESS = 0x0001;
export const ATTR_ERROR_CODE = 0x0009;
export const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
/** Pre-RFC 5389 drafts used 0x8020; some servers still send it. */
export const ATTR_XOR_MAPPED_ADDRESS_OLD = 0x8020;
export const ATTR_SOFTWARE = 0x8022;
export const ATTR_FINGERPRINT = 0x8028;

const FINGERPRINT_XOR = 0x5354554e;
const FAMILY_V4 = 0x01;
const FAMILY_V6 = 0x02;

export type StunErrorReason =
  | 'short'
  | 'not-stun'
  | 'bad-length'
  | 'bad-attribute'
  | 'bad-address'
  | 'bad-fingerprint'
  | 'not-binding-response'
  | 'error-response'
  | 'no-address'
  | 'timeout'
  | 'closed'
  | 'send-failed';

export class StunError extends MeshdError {
  readonly reason: StunErrorReason;
  constructor(reason: StunErrorReason, message: string, options?: { cause?: unknown }) {
    super(reason === 'timeout' ? 'E_TIMEOUT' : 'E_ENGINE', `STUN: ${message}`, options);
    this.reason = reason;
  }
}

// ---------------------------------------------------------------------------------------------
// IP addresses as bytes

export interface IpPort {
  readonly ip: string;
  readonly port: number;
}

export interface StunAddress extends IpPort {
  readonly family: 4 | 6;
}

/** 4 bytes for an IPv4 address, 16 for IPv6 (zone stripped); null when ip is not an address. */
export function ipToBytes(ip: string): Uint8Array | null {
  return parseIpZoned(ip);
}

/** 16 bytes, IPv4 as the IPv4-mapped IPv6 address ::ffff:a.b.c.d (disco's and DERP's layout). */
export function ipToBytes16(ip: string): Uint8Array | null {
  const out = new Uint8Array(16);
  return parseIp16At(ip, out, 0) ? out : null;
}

/** Text form of 4 or 16 address bytes at b[off..]; IPv6 in RFC 5952 form, IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIp(b: Uint8Array, off = 0, len = b.length - off): string {
  if (len === 4) return formatIPv4(b, off);
  if (isV4MappedAt(b, off)) return `::ffff:${formatIPv4(b, off + 12)}`;
  return formatIPv6(b, off);
}

/** 16 wire bytes → address text, IPv4-mapped addresses unmapped to dotted quads. */
export function ipFromBytes16(b: Uint8Array, off = 0): string {
  return formatIp16(b, off);
}

// ---------------------------------------------------------------------------------------------
// Demultiplexing

/**
 * True when buf is a STUN binding message as the shared socket tells them apart: type 0x0001 or
 * 0x0101 (so byte 1 is 0x01) and the magic cookie at bytes 4–7.
 * WireGuard messages start with a type byte followed by three zero bytes, so never match.
 */
export function isStunPacket(buf: Uint8Array): boolean {
  return (
    buf.length >= STUN_HEADER_LEN &&
    (buf[0] === 0x00 || buf[0] === 0x01) &&
    buf[1] === 0x01 &&
    buf[4] === 0x21 &&
    buf[5] === 0x12 &&
    buf[6] === 0xa4 &&
    buf[7] === 0x42
  );
}

// ---------------------------------------------------------------------------------------------
// Codec

export interface StunAttribute {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface StunMessage {
  /** Message type: method and class bits, e.g. 0x0001 binding request, 0x0101 success. */
  readonly type: number;
  readonly txId: Uint8Array;
  readonly attributes: readonly StunAttribute[];
  readonly xorMappedAddress?: StunAddress | undefined;
  readonly mappedAddress?: StunAddress | undefined;
  readonly software?: string | undefined;
  readonly errorCode?: { readonly code: number; readonly reason: string } | undefined;
  /** True when a FINGERPRINT attribute was present (it is verified when present). */
  readonly hasFingerprint: boolean;
}

function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

function fingerprintOf(b: Uint8Array, end: number): number {
  return (crc32(b.subarray(0, end)) ^ FINGERPRINT_XOR) >>> 0;
}

/** Decodes (X)MAPPED-ADDRESS value v; header holds cookie ‖ txid (bytes 4–19 of the message). */
function decodeAddress(v: Uint8Array, xor: boolean, header: Uint8Array): StunAddress {
  if (v.length < 4) throw new StunError('bad-address', 'address attribute too short');
  const family = v[1];
  const xorPort = xor ? STUN_MAGIC_COOKIE >>> 16 : 0;
  const port = u16(v, 2) ^ xorPort;
  let n: number;
  if (family === FAMILY_V4) n = 4;
  else if (family === FAMILY_V6) n = 16;
  else throw new StunError('bad-address', `unknown address family ${family}`);
  if (v.length !== 4 + n) throw new StunError('bad-address', 'address attribute has the wrong length');
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = v[4 + i]! ^ (xor ? header[4 + i]! : 0);
  return { family: n === 4 ? 4 : 6, ip: formatIp(a, 0, n), port };
}

/**
 * Parses one STUN message (RFC 5389/8489 with the magic cookie). Throws StunError, and only
 * StunError, on anything malformed: wrong header, length not matching the datagram, truncated
 * or unpadded attributes, bad address attributes, a FINGERPRINT that is not last or wrong.
 */
export function decodeStunMessage(buf: Uint8Array): StunMessage {
  if (buf.length < STUN_HEADER_LEN) throw new StunError('short', 'message shorter than the 20-byte header');
  if ((buf[0]! & 0xc0) !== 0 || u32(buf, 4) !== STUN_MAGIC_COOKIE) throw new StunError('not-stun', 'not a STUN message');
  const bodyLen = u16(buf, 2);
  if (bodyLen % 4 !== 0 || STUN_HEADER_LEN + bodyLen !== buf.length) {
    throw new StunError('bad-length', `header length ${bodyLen} does not match the ${buf.length}-byte datagram`);
  }
  const header = buf.subarray(0, STUN_HEADER_LEN);
  const attributes: StunAttribute[] = [];
  let xorMapped: StunAddress | undefined;
  let mapped: StunAddress | undefined;
  let software: string | undefined;
  let errorCode: { code: number; reason: string } | undefined;
  let hasFingerprint = false;
  let off = STUN_HEADER_LEN;
  while (off < buf.length) {
    if (hasFingerprint) throw new StunError('bad-fingerprint', 'FINGERPRINT is not the last attribute');
    if (buf.length - off < 4) throw new StunError('bad-attribute', 'truncated attribute header');
    const type = u16(buf, off);
    const len = u16(buf, off + 2);
    const padded = (len + 3) & ~3;
    if (off + 4 + padded > buf.length) throw new StunError('bad-attribute', `attribute 0x${type.toString(16)} overruns the message`);
    const value = buf.subarray(off + 4, off + 4 + len);
    attributes.push({ type, value });
    switch (type) {
      case ATTR_XOR_MAPPED_ADDRESS:
      case ATTR_XOR_MAPPED_ADDRESS_OLD:
        xorMapped ??= decodeAddress(value, true, header);
        break;
      case ATTR_MAPPED_ADDRESS:
        mapped ??= decodeAddress(value, false, header);
        break;
      case ATTR_SOFTWARE:
        software ??= Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8');
        break;
      case ATTR_ERROR_CODE:
        if (len < 4) throw new StunError('bad-attribute', 'ERROR-CODE too short');
        errorCode ??= {
          code: (value[2]! & 0x07) * 100 + value[3]!,
          reason: Buffer.from(value.buffer, value.byteOffset + 4, len - 4).toString('utf8'),
        };
        break;
      case ATTR_FINGERPRINT:
        if (len !== 4) throw new StunError('bad-fingerprint', 'FINGERPRINT must be 4 bytes');
        if (u32(value, 0) !== fingerprintOf(buf, off)) throw new StunError('bad-fingerprint', 'FINGERPRINT does not match');
        hasFingerprint = true;
        break;
      default:
        break;
    }
    off += 4 + padded;
  }
  return {
    type: u16(buf, 0),
    txId: buf.slice(8, STUN_HEADER_LEN),
    attributes,
    xorMappedAddress: xorMapped,
    mappedAddress: mapped,
    software,
    errorCode,
    hasFingerprint,
  };
}

export interface BindingResponse {
  readonly txId: Uint8Array;
  /** Our address as the server saw it: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS. */
  readonly mapped: StunAddress;
}

/** Decodes a Binding success response; throws StunError for anything else. */
export function decodeBindingResponse(buf: Uint8Array): BindingResponse {
  const m = decodeStunMessage(buf);
  if (m.type === STUN_BINDING_ERROR) {
    const e = m.errorCode;
    throw new StunError('error-response', `server answered with error ${e ? `${e.code} ${e.reason}` : '(no code)'}`);
  }
  if (m.type !== STUN_BINDING_SUCCESS) throw new StunError('not-binding-response', `message type 0x${m.type.toString(16).padStart(4, '0')} is not a binding response`);
  const mapped = m.xorMappedAddress ?? m.mappedAddress;
  if (!mapped) throw new StunError('no-address', 'binding response carries no mapped address');
  return { txId: m.txId, mapped };
}

export function newTxId(): Uint8Array {
  return new Uint8Array(randomBytes(STUN_TXID_LEN));
}

interface EncodeAttr {
  type: number;
  value: Uint8Array;
}

function encodeMessage(type: number, txId: Uint8Array, attrs: EncodeAttr[], fingerprint: boolean): Buffer {
  if (txId.length !== STUN_TXID_LEN) throw new StunError('bad-length', 'transaction id must be 12 bytes');
  let len = 0;
  for (const a of attrs) len += 4 + ((a.value.length + 3) & ~3);
  if (fingerprint) len += 8;
  const out = Buffer.alloc(STUN_HEADER_LEN + len);
  putU16(out, 0, type);
  putU16(out, 2, len);
  putU32(out, 4, STUN_MAGIC_COOKIE);
  out.set(txId, 8);
  let off = STUN_HEADER_LEN;
  for (const a of attrs) {
    putU16(out, off, a.type);
    putU16(out, off + 2, a.value.length);
    out.set(a.value, off + 4);
    off += 4 + ((a.value.length + 3) & ~3);
  }
  if (fingerprint) {
    putU16(out, off, ATTR_FINGERPRINT);
    putU16(out, off + 2, 4);
    putU32(out, off + 4, fingerprintOf(out, off));
  }
  return out;
}

export interface EncodeOptions {
  /** Append a FINGERPRINT attribute (default true). */
  readonly fingerprint?: boolean;
  /** SOFTWARE attribute text (none by default). */
  readonly software?: string;
}

function softwareAttr(opts: EncodeOptions | undefined): EncodeAttr[] {
  return opts?.software ? [{ type: ATTR_SOFTWARE, value: Buffer.from(opts.software, 'utf8').subarray(0, 763) }] : [];
}

/** A Binding request with the given (or a fresh random) 12-byte transaction id. */
export function encodeBindingRequest(txId: Uint8Array = newTxId(), opts?: EncodeOptions): Buffer {
  return encodeMessage(STUN_BINDING_REQUEST, txId, softwareAttr(opts), opts?.fingerprint ?? true);
}

/** A Binding success response telling the requester it was seen at ip:port (XOR-MAPPED-ADDRESS). */
export function encodeBindingResponse(txId: Uint8Array, ip: string, port: number, opts?: EncodeOptions): Buffer {
  const raw = ipToBytes(ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip);
  if (raw === null) throw new StunError('bad-address', `not an IP address: ${ip}`);
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new StunError('bad-address', `bad port ${port}`);
  const v = new Uint8Array(4 + raw.length);
  v[1] = raw.length === 4 ? FAMILY_V4 : FAMILY_V6;
  putU16(v, 2, port ^ (STUN_MAGIC_COOKIE >>> 16));
  const key = new Uint8Array(16);
  putU32(key, 0, STUN_MAGIC_COOKIE);
  key.set(txId.subarray(0, 12), 4);
  for (let i = 0; i < raw.length; i++) v[4 + i] = raw[i]! ^ key[i]!;
  return encodeMessage(STUN_BINDING_SUCCESS, txId, [{ type: ATTR_XOR_MAPPED_ADDRESS, value: v }, ...softwareAttr(opts)], opts?.fingerprint ?? true);
}

/**
 * The tiny STUN server: the response to send back to srcIp:srcPort for a Binding request, or
 * null when req is not a well-formed Binding request. Never throws.
 */
export function stunRespond(req: Uint8Array, srcIp: string, srcPort: number, opts?: EncodeOptions): Buffer | null {
  if (!isStunPacket(req) || req[0] !== 0x00) return null;
  try {
    const m = decodeStunMessage(req);
    if (m.type !== STUN_BINDING_REQUEST) return null;
    return encodeBindingResponse(m.txId, srcIp, srcPort, opts);
  } catch (e) {
    if (e instanceof StunError) return null;
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Client over a socket it does not own

export interface StunServerAddress {
  readonly host: string;
  readonly port: number;
}

export interface StunBindingResult {
  readonly server: StunServerAddress;
  /** Our public address as this server saw it. */
  readonly mapped: StunAddress;
  readonly rttMs: number;
}

export interface StunClientOptions {
  /** Sends one datagram from the shared socket. May throw; the request then fails. */
  readonly send: (packet: Uint8Array, port: number, host: string) => void;
  /** Overall time to wait for an answer (default 3000 ms). */
  readonly timeoutMs?: number;
  /** First retransmission after this long, doubling each time (default 500 ms, RFC 8489 RTO). */
  readonly retransmitMs?: number;
  /** Retransmissions after the first send (default 2). */
  readonly maxRetransmits?: number;
  /** Default: the system clock. */
  readonly clock?: Clock;
}

interface Pending {
  readonly server: StunServerAddress;
  readonly packet: Uint8Array;
  readonly sentAt: number;
  readonly resolve: (r: StunBindingResult) => void;
  readonly reject: (e: Error) => void;
  retransmitTimer: Ticker | undefined;
  readonly deadline: Ticker;
}

/**
 * Sends Binding requests through a handed-in send function and matches responses by
 * transaction id. The owner of the socket passes every STUN datagram it receives to
 * `handlePacket`.
 */
export class StunClient {
  private readonly pending = new Map<string, Pending>();
  private readonly send: StunClientOptions['send'];
  private readonly timeoutMs: number;
  private readonly retransmitMs: number;
  private readonly maxRetransmits: number;
  private readonly clock: Clock;
  private closed = false;
  /** STUN datagrams handed in that matched no pending request or did not parse. */
  unmatched = 0;

  constructor(opts: StunClientOptions) {
    this.send = opts.send;
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.retransmitMs = opts.retransmitMs ?? 500;
    this.maxRetransmits = opts.maxRetransmits ?? 2;
    this.clock = opts.clock ?? systemClock;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Asks server for our mapped address. Rejects with StunError (timeout, send-failed, closed). */
  request(server: StunServerAddress, opts?: { timeoutMs?: number }): Promise<StunBindingResult> {
    if (this.closed) return Promise.reject(new StunError('closed', 'client is closed'));
    const txId = newTxId();
    const id = Buffer.from(txId).toString('hex');
    const packet = encodeBindingRequest(txId);
    return new Promise<StunBindingResult>((resolve, reject) => {
      const timeoutMs = opts?.timeoutMs ?? this.timeoutMs;
      const p: Pending = {
        server,
        packet,
        sentAt: this.clock.now(),
        resolve,
        reject,
        retransmitTimer: undefined,
        deadline: this.clock.after(timeoutMs, () => this.fail(id, new StunError('timeout', `no answer from ${server.host}:${server.port} within ${timeoutMs} ms`))),
      };
      this.pending.set(id, p);
      this.transmit(id, p, 0);
    });
  }

  private transmit(id: string, p: Pending, attempt: number): void {
    try {
      this.send(p.packet, p.server.port, p.server.host);
    } catch (cause) {
      this.fail(id, new StunError('send-failed', `could not send to ${p.server.host}:${p.server.port}`, { cause }));
      return;
    }
    if (attempt < this.maxRetransmits) {
      // RFC 8489 RTO: doubling, no jitter
      const wait = backoffDelay(attempt, { initialMs: this.retransmitMs, maxMs: Infinity, jitter: 0 });
      p.retransmitTimer = this.clock.after(wait, () => {
        if (this.pending.get(id) === p) this.transmit(id, p, attempt + 1);
      });
    }
  }

  private settle(id: string): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.deadline.cancel();
    p.retransmitTimer?.cancel();
    return p;
  }

  private fail(id: string, err: Error): void {
    this.settle(id)?.reject(err);
  }

  /**
   * Offers a received datagram. Returns true when it answered one of our pending requests
   * (consumed), false otherwise. Never throws on bad input.
   */
  handlePacket(buf: Uint8Array): boolean {
    const isResponse =
      buf.length >= STUN_HEADER_LEN && buf[0] === 0x01 && (buf[1] === 0x01 || buf[1] === 0x11) && u32(buf, 4) === STUN_MAGIC_COOKIE;
    if (!isResponse) return false;
    const id = Buffer.from(buf.buffer, buf.byteOffset + 8, STUN_TXID_LEN).toString('hex');
    if (!this.pending.has(id)) {
      this.unmatched++;
      return false;
    }
    let res: BindingResponse;
    try {
      res = decodeBindingResponse(buf);
    } catch (e) {
      if (!(e instanceof StunError)) throw e;
      if (e.reason === 'error-response') {
        this.fail(id, e);
        return true;
      }
      this.unmatched++;
      return false;
    }
    const p = this.settle(id)!;
    p.resolve({ server: p.server, mapped: res.mapped, rttMs: this.clock.now() - p.sentAt });
    return true;
  }

  /** Rejects every pending request and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const id of [...this.pending.keys()]) this.fail(id, new StunError('closed', 'client closed'));
  }
}

// ---------------------------------------------------------------------------------------------
// NAT mapping behaviour

export type NatMapping = 'endpoint-independent' | 'endpoint-dependent' | 'unknown';

/**
 * RFC 4787 mapping behaviour from Binding results against different servers: when every server
 * (of one address family) saw the same ip:port the mapping is endpoint-independent (hole
 * punching works); when they differ it is endpoint-dependent (a "hard" NAT). Fewer than two
 * distinct servers of one family: unknown.
 */
export function classifyNatMapping(results: readonly StunBindingResult[]): NatMapping {
  let verdict: NatMapping = 'unknown';
  for (const family of [4, 6] as const) {
    const byServer = new Map<string, string>();
    for (const r of results) {
      if (r.mapped.family !== family) continue;
      const key = `${r.server.host}|${r.server.port}`;
      if (!byServer.has(key)) byServer.set(key, `${r.mapped.ip}|${r.mapped.port}`);
    }
    if (byServer.size < 2) continue;
    const seen = new Set(byServer.values());
    if (seen.size > 1) return 'endpoint-dependent';
    verdict = 'endpoint-independent';
  }
  return verdict;
}
