/**
 * DERP framing (Tailscale's derp/derp.go): every frame is
 *
 *   type (1 byte) ‖ length (4 bytes, big-endian, payload only) ‖ payload
 *
 * `FrameParser` is an explicit incremental state machine over a byte stream (TCP after the HTTP
 * upgrade, or the concatenated binary messages of a WebSocket): it takes chunks split anywhere
 * and yields (type, payload) pairs, refusing any frame longer than its limit. `decodeFrame`
 * gives the typed, validated form of one frame; `encodeFrame` the bytes of one.
 */
import { MeshdError } from '../../errors.js';

export const FRAME_HEADER_LEN = 5;
export const KEY_LEN = 32;
export const NONCE_LEN = 24;
/** Largest packet carried in a send/recv frame (bytes after the key). */
export const MAX_PACKET_SIZE = 64 << 10;
export const PROTOCOL_VERSION = 2;
/** "DERP🔑" */
export const DERP_MAGIC = Uint8Array.of(0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94, 0x91);
/** Default frame limit: a forward-packet frame (two keys + a maximal packet). */
export const DEFAULT_MAX_FRAME_LEN = MAX_PACKET_SIZE + 2 * KEY_LEN;
/** Ping bodies longer than this are refused (Tailscale: room for extensions, not much). */
export const MAX_PING_LEN = 1000;
/**
 * Largest frame a server accepts before the login: a ClientInfo (key, box nonce, tag and a JSON
 * of a few hundred bytes at most). No connection gets to make the server buffer more than this
 * before it proved it holds a key.
 */
export const MAX_LOGIN_FRAME_LEN = 1024;
/** Box tag length, for minimum sizes of the sealed login frames. */
const TAG_LEN = 16;

export const FrameType = {
  ServerKey: 0x01,
  ClientInfo: 0x02,
  ServerInfo: 0x03,
  SendPacket: 0x04,
  RecvPacket: 0x05,
  KeepAlive: 0x06,
  NotePreferred: 0x07,
  PeerGone: 0x08,
  PeerPresent: 0x09,
  ForwardPacket: 0x0a,
  WatchConns: 0x10,
  ClosePeer: 0x11,
  Ping: 0x12,
  Pong: 0x13,
  Health: 0x14,
  Restarting: 0x15,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

export const PeerGoneReason = {
  /** The peer disconnected from this server. */
  Disconnected: 0x00,
  /** The server does not know the destination. */
  NotHere: 0x01,
} as const;

export type DerpFrameErrorReason = 'oversize' | 'malformed' | 'bad-magic' | 'failed';

export class DerpFrameError extends MeshdError {
  readonly reason: DerpFrameErrorReason;
  constructor(reason: DerpFrameErrorReason, message: string) {
    super('E_RELAY', `DERP frame: ${message}`);
    this.reason = reason;
  }
}

export type DerpFrame =
  | { readonly type: 'server-key'; readonly key: Uint8Array; readonly extra?: Uint8Array }
  /** sealed = 24-byte nonce ‖ box of the client-info JSON */
  | { readonly type: 'client-info'; readonly key: Uint8Array; readonly sealed: Uint8Array }
  /** sealed = 24-byte nonce ‖ box of the server-info JSON */
  | { readonly type: 'server-info'; readonly sealed: Uint8Array }
  | { readonly type: 'send-packet'; readonly dst: Uint8Array; readonly packet: Uint8Array }
  | { readonly type: 'recv-packet'; readonly src: Uint8Array; readonly packet: Uint8Array }
  | { readonly type: 'forward-packet'; readonly src: Uint8Array; readonly dst: Uint8Array; readonly packet: Uint8Array }
  | { readonly type: 'keep-alive' }
  | { readonly type: 'note-preferred'; readonly preferred: boolean }
  | { readonly type: 'peer-gone'; readonly key: Uint8Array; readonly reason: number }
  /** ip16 is 16 bytes (IPv4-mapped for IPv4); address and flags are optional on the wire. */
  | {
      readonly type: 'peer-present';
      readonly key: Uint8Array;
      readonly ip16?: Uint8Array;
      readonly port?: number;
      readonly flags?: number;
    }
  | { readonly type: 'watch-conns' }
  | { readonly type: 'close-peer'; readonly key: Uint8Array }
  | { readonly type: 'ping'; readonly data: Uint8Array }
  | { readonly type: 'pong'; readonly data: Uint8Array }
  | { readonly type: 'health'; readonly problem: string }
  | { readonly type: 'restarting'; readonly reconnectInMs: number; readonly tryForMs: number }
  | { readonly type: 'unknown'; readonly frameType: number; readonly payload: Uint8Array };

const EMPTY = new Uint8Array(0);

function writeHeader(out: Uint8Array, type: number, len: number): void {
  out[0] = type;
  out[1] = (len >>> 24) & 0xff;
  out[2] = (len >>> 16) & 0xff;
  out[3] = (len >>> 8) & 0xff;
  out[4] = len & 0xff;
}

/** Header plus the given payload parts, in one buffer. */
export function frame(type: number, ...parts: Uint8Array[]): Buffer {
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > 0xffffffff) throw new DerpFrameError('oversize', 'frame payload too large');
  const out = Buffer.allocUnsafe(FRAME_HEADER_LEN + len);
  writeHeader(out, type, len);
  let off = FRAME_HEADER_LEN;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function needKey(k: Uint8Array, what: string): void {
  if (k.length !== KEY_LEN) throw new DerpFrameError('malformed', `${what} must be ${KEY_LEN} bytes`);
}

function needPacket(p: Uint8Array): void {
  if (p.length > MAX_PACKET_SIZE) throw new DerpFrameError('oversize', `packet of ${p.length} bytes exceeds ${MAX_PACKET_SIZE}`);
}

/** SendPacket: the hot path, one allocation. */
export function encodeSendPacket(dst: Uint8Array, packet: Uint8Array): Buffer {
  needKey(dst, 'destination key');
  needPacket(packet);
  return frame(FrameType.SendPacket, dst, packet);
}

/** RecvPacket: the hot path on the server, one allocation. */
export function encodeRecvPacket(src: Uint8Array, packet: Uint8Array): Buffer {
  needKey(src, 'source key');
  needPacket(packet);
  return frame(FrameType.RecvPacket, src, packet);
}

function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

function be32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  b[0] = (v >>> 24) & 0xff;
  b[1] = (v >>> 16) & 0xff;
  b[2] = (v >>> 8) & 0xff;
  b[3] = v & 0xff;
  return b;
}

/** The bytes of one frame. Throws DerpFrameError when a field has the wrong size. */
export function encodeFrame(f: DerpFrame): Buffer {
  switch (f.type) {
    case 'server-key':
      needKey(f.key, 'server key');
      return frame(FrameType.ServerKey, DERP_MAGIC, f.key, f.extra ?? EMPTY);
    case 'client-info':
      needKey(f.key, 'client key');
      if (f.sealed.length < NONCE_LEN + TAG_LEN) throw new DerpFrameError('malformed', 'client info box too short');
      return frame(FrameType.ClientInfo, f.key, f.sealed);
    case 'server-info':
      if (f.sealed.length < NONCE_LEN + TAG_LEN) throw new DerpFrameError('malformed', 'server info box too short');
      return frame(FrameType.ServerInfo, f.sealed);
    case 'send-packet':
      return encodeSendPacket(f.dst, f.packet);
    case 'recv-packet':
      return encodeRecvPacket(f.src, f.packet);
    case 'forward-packet':
      needKey(f.src, 'source key');
      needKey(f.dst, 'destination key');
      needPacket(f.packet);
      return frame(FrameType.ForwardPacket, f.src, f.dst, f.packet);
    case 'keep-alive':
      return frame(FrameType.KeepAlive);
    case 'note-preferred':
      return frame(FrameType.NotePreferred, Uint8Array.of(f.preferred ? 1 : 0));
    case 'peer-gone':
      needKey(f.key, 'peer key');
      return frame(FrameType.PeerGone, f.key, Uint8Array.of(f.reason & 0xff));
    case 'peer-present': {
      needKey(f.key, 'peer key');
      if (f.ip16 === undefined) return frame(FrameType.PeerPresent, f.key);
      if (f.ip16.length !== 16) throw new DerpFrameError('malformed', 'peer address must be 16 bytes');
      const port = f.port ?? 0;
      const tail = f.flags === undefined ? Uint8Array.of(port >>> 8, port & 0xff) : Uint8Array.of(port >>> 8, port & 0xff, f.flags & 0xff);
      return frame(FrameType.PeerPresent, f.key, f.ip16, tail);
    }
    case 'watch-conns':
      return frame(FrameType.WatchConns);
    case 'close-peer':
      needKey(f.key, 'peer key');
      return frame(FrameType.ClosePeer, f.key);
    case 'ping':
    case 'pong':
      if (f.data.length !== 8) throw new DerpFrameError('malformed', `${f.type} data must be 8 bytes`);
      return frame(f.type === 'ping' ? FrameType.Ping : FrameType.Pong, f.data);
    case 'health':
      return frame(FrameType.Health, Buffer.from(f.problem, 'utf8'));
    case 'restarting':
      return frame(FrameType.Restarting, be32(f.reconnectInMs), be32(f.tryForMs));
    case 'unknown':
      return frame(f.frameType, f.payload);
  }
}

const KNOWN_TYPES: ReadonlySet<number> = new Set(Object.values(FrameType));

/**
 * The typed form of one frame's payload. Throws DerpFrameError ('malformed' or 'bad-magic')
 * when a known frame type has an impossible length; unknown types come back as 'unknown' (peers
 * skip frames they do not know). Packet and key fields are views into payload.
 */
export function decodeFrame(type: number, payload: Uint8Array): DerpFrame {
  const n = payload.length;
  const bad = (what: string): never => {
    throw new DerpFrameError('malformed', `${what} (type 0x${type.toString(16).padStart(2, '0')}, ${n} bytes)`);
  };
  switch (type) {
    case FrameType.ServerKey: {
      if (n < DERP_MAGIC.length + KEY_LEN) bad('short server key frame');
      for (let i = 0; i < DERP_MAGIC.length; i++) {
        if (payload[i] !== DERP_MAGIC[i]) throw new DerpFrameError('bad-magic', 'server key frame without the DERP magic');
      }
      const key = payload.subarray(DERP_MAGIC.length, DERP_MAGIC.length + KEY_LEN);
      const extra = payload.subarray(DERP_MAGIC.length + KEY_LEN);
      return extra.length > 0 ? { type: 'server-key', key, extra } : { type: 'server-key', key };
    }
    case FrameType.ClientInfo:
      if (n < KEY_LEN + NONCE_LEN + TAG_LEN) bad('short client info');
      return { type: 'client-info', key: payload.subarray(0, KEY_LEN), sealed: payload.subarray(KEY_LEN) };
    case FrameType.ServerInfo:
      if (n < NONCE_LEN + TAG_LEN) bad('short server info');
      return { type: 'server-info', sealed: payload };
    case FrameType.SendPacket:
      if (n < KEY_LEN) bad('short send packet');
      if (n - KEY_LEN > MAX_PACKET_SIZE) bad('packet too large');
      return { type: 'send-packet', dst: payload.subarray(0, KEY_LEN), packet: payload.subarray(KEY_LEN) };
    case FrameType.RecvPacket:
      if (n < KEY_LEN) bad('short recv packet');
      if (n - KEY_LEN > MAX_PACKET_SIZE) bad('packet too large');
      return { type: 'recv-packet', src: payload.subarray(0, KEY_LEN), packet: payload.subarray(KEY_LEN) };
    case FrameType.ForwardPacket:
      if (n < 2 * KEY_LEN) bad('short forward packet');
      if (n - 2 * KEY_LEN > MAX_PACKET_SIZE) bad('packet too large');
      return {
        type: 'forward-packet',
        src: payload.subarray(0, KEY_LEN),
        dst: payload.subarray(KEY_LEN, 2 * KEY_LEN),
        packet: payload.subarray(2 * KEY_LEN),
      };
    case FrameType.KeepAlive:
      return { type: 'keep-alive' };
    case FrameType.NotePreferred:
      if (n !== 1) bad('note-preferred must be 1 byte');
      return { type: 'note-preferred', preferred: payload[0] !== 0 };
    case FrameType.PeerGone:
      if (n < KEY_LEN) bad('short peer gone');
      return { type: 'peer-gone', key: payload.subarray(0, KEY_LEN), reason: n > KEY_LEN ? payload[KEY_LEN]! : PeerGoneReason.Disconnected };
    case FrameType.PeerPresent: {
      if (n < KEY_LEN) bad('short peer present');
      const key = payload.subarray(0, KEY_LEN);
      if (n < KEY_LEN + 18) return { type: 'peer-present', key };
      const ip16 = payload.subarray(KEY_LEN, KEY_LEN + 16);
      const port = (payload[KEY_LEN + 16]! << 8) | payload[KEY_LEN + 17]!;
      if (n < KEY_LEN + 19) return { type: 'peer-present', key, ip16, port };
      return { type: 'peer-present', key, ip16, port, flags: payload[KEY_LEN + 18]! };
    }
    case FrameType.WatchConns:
      if (n !== 0) bad('watch-conns has no payload');
      return { type: 'watch-conns' };
    case FrameType.ClosePeer:
      if (n !== KEY_LEN) bad('close-peer must be one key');
      return { type: 'close-peer', key: payload };
    case FrameType.Ping:
      if (n < 8 || n > MAX_PING_LEN) bad('bad ping size');
      return { type: 'ping', data: payload.subarray(0, 8) };
    case FrameType.Pong:
      if (n < 8 || n > MAX_PING_LEN) bad('bad pong size');
      return { type: 'pong', data: payload.subarray(0, 8) };
    case FrameType.Health:
      return { type: 'health', problem: Buffer.from(payload.buffer, payload.byteOffset, n).toString('utf8') };
    case FrameType.Restarting:
      if (n < 8) bad('short restarting');
      return { type: 'restarting', reconnectInMs: u32(payload, 0), tryForMs: u32(payload, 4) };
    default:
      if (KNOWN_TYPES.has(type)) bad('unhandled frame type');
      return { type: 'unknown', frameType: type, payload };
  }
}

const enum ParserState {
  Header,
  Body,
  Failed,
}

export type FrameHandler = (type: number, payload: Uint8Array) => void;

/**
 * Incremental parser: push chunks as they arrive, get whole frames. A frame that fits in one
 * chunk is handed over as a view into that chunk (no copy); one split across chunks is gathered
 * into its own buffer. Payloads are never reused by the parser, so they stay valid after the
 * handler returns — but they may alias the chunk, so a consumer that keeps one while also
 * mutating the chunk must copy.
 *
 * A declared length above `maxFrameLength` throws DerpFrameError('oversize') before any of that
 * frame's body is buffered; after that (or after a handler throws, or `fail()`), the parser is
 * failed and every later push throws DerpFrameError('failed').
 */
export class FrameParser {
  private maxLen: number;
  private state = ParserState.Header;
  private readonly hdr = new Uint8Array(FRAME_HEADER_LEN);
  private hdrFill = 0;
  private type = 0;
  private body: Uint8Array = EMPTY;
  private bodyFill = 0;

  constructor(maxFrameLength: number = DEFAULT_MAX_FRAME_LEN) {
    this.maxLen = FrameParser.checkLimit(maxFrameLength);
  }

  private static checkLimit(n: number): number {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError('maxFrameLength must be an integer in [0, 2^32)');
    return n;
  }

  /** The largest declared frame length accepted; frames already being read keep their size. */
  get maxFrameLength(): number {
    return this.maxLen;
  }

  /** Change the limit for the frames that follow (a server raises it after the login). */
  set maxFrameLength(n: number) {
    this.maxLen = FrameParser.checkLimit(n);
  }

  /** True once the parser refused input; a failed parser never yields again. */
  get failed(): boolean {
    return this.state === ParserState.Failed;
  }

  /** Bytes of a partial frame held (header and body). */
  get buffered(): number {
    return this.state === ParserState.Body ? FRAME_HEADER_LEN + this.bodyFill : this.hdrFill;
  }

  /** Stops the parser (e.g. the connection is closing): later pushes throw, pending bytes drop. */
  fail(): void {
    this.state = ParserState.Failed;
    this.body = EMPTY;
  }

  push(chunk: Uint8Array, onFrame: FrameHandler): void {
    if (this.state === ParserState.Failed) throw new DerpFrameError('failed', 'parser already failed');
    let off = 0;
    const end = chunk.length;
    while (off < end) {
      if (this.state === ParserState.Header) {
        let len: number;
        if (this.hdrFill === 0 && end - off >= FRAME_HEADER_LEN) {
          this.type = chunk[off]!;
          len = u32(chunk, off + 1);
          off += FRAME_HEADER_LEN;
        } else {
          const take = Math.min(FRAME_HEADER_LEN - this.hdrFill, end - off);
          this.hdr.set(chunk.subarray(off, off + take), this.hdrFill);
          this.hdrFill += take;
          off += take;
          if (this.hdrFill < FRAME_HEADER_LEN) return;
          this.hdrFill = 0;
          this.type = this.hdr[0]!;
          len = u32(this.hdr, 1);
        }
        if (len > this.maxLen) {
          this.fail();
          throw new DerpFrameError('oversize', `frame of ${len} bytes exceeds the limit of ${this.maxLen}`);
        }
        if (end - off >= len) {
          const payload = len === 0 ? EMPTY : chunk.subarray(off, off + len);
          off += len;
          this.deliver(onFrame, payload);
          if (this.failed) return;
        } else {
          this.body = new Uint8Array(len);
          this.body.set(chunk.subarray(off, end), 0);
          this.bodyFill = end - off;
          this.state = ParserState.Body;
          return;
        }
      } else {
        const take = Math.min(this.body.length - this.bodyFill, end - off);
        this.body.set(chunk.subarray(off, off + take), this.bodyFill);
        this.bodyFill += take;
        off += take;
        if (this.bodyFill < this.body.length) return;
        const payload = this.body;
        this.body = EMPTY;
        this.bodyFill = 0;
        this.state = ParserState.Header;
        this.deliver(onFrame, payload);
        if (this.failed) return;
      }
    }
  }

  private deliver(onFrame: FrameHandler, payload: Uint8Array): void {
    try {
      onFrame(this.type, payload);
    } catch (e) {
      this.fail();
      throw e;
    }
  }
}
