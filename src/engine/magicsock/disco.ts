/**
 * Disco: the path-discovery messages peers exchange over the shared UDP socket and the relay
 * (Tailscale's layout).
 *
 *   magic "TS💬" (54 53 f0 9f 92 ac) ‖ sender disco public key (32) ‖ nonce (24) ‖ NaCl box
 *
 * and inside the box: type (1) ‖ version (1) ‖ payload:
 * - Ping (0x01): tx id (12) ‖ optional sender WireGuard key (32) ‖ optional padding
 * - Pong (0x02): tx id (12) ‖ observed source IP (16, IPv4-mapped) ‖ port (2, big-endian)
 * - CallMeMaybe (0x03): n × endpoint (16-byte IP ‖ 2-byte port)
 *
 * Decoding throws DiscoError — and nothing else — for anything malformed, including a
 * call-me-maybe with more than MAX_DECODED_ENDPOINTS endpoints (a 64 KiB relay frame holds
 * thousands; none is decoded).
 */
import { MeshdError } from '../../errors.js';
import {
  BOX_KEY_LEN,
  BOX_NONCE_LEN,
  BOX_TAG_LEN,
  boxBeforeNm,
  randomNonce,
  secretboxOpen,
  secretboxSeal,
} from '../crypto/nacl-box.js';
import { ipFromBytes16, ipToBytes16, type IpPort } from './stun.js';

export const DISCO_MAGIC = Uint8Array.of(0x54, 0x53, 0xf0, 0x9f, 0x92, 0xac);
export const DISCO_KEY_LEN = 32;
export const DISCO_NONCE_LEN = BOX_NONCE_LEN;
/** magic ‖ sender key ‖ nonce */
export const DISCO_HEADER_LEN = DISCO_MAGIC.length + DISCO_KEY_LEN + DISCO_NONCE_LEN;
/** The smallest packet that can hold a message: header, box tag, type and version. */
export const DISCO_MIN_PACKET_LEN = DISCO_HEADER_LEN + BOX_TAG_LEN + 2;

export const DISCO_TYPE_PING = 0x01;
export const DISCO_TYPE_PONG = 0x02;
export const DISCO_TYPE_CALL_ME_MAYBE = 0x03;
export const DISCO_VERSION = 0;

export const DISCO_TXID_LEN = 12;
const NODE_KEY_LEN = 32;
const ENDPOINT_LEN = 18;
const PONG_LEN = DISCO_TXID_LEN + ENDPOINT_LEN;
/** Largest call-me-maybe decoded (endpoints); a longer one is refused as malformed. */
export const MAX_DECODED_ENDPOINTS = 64;
/**
 * Largest disco packet opened when it came over a relay: the largest call-me-maybe we decode
 * (pings and pongs are far smaller; padded pings only probe direct paths). Larger ones are
 * dropped unopened — opening 64 KiB costs tens of milliseconds on a cold process.
 */
export const MAX_RELAY_DISCO_PACKET_LEN = DISCO_HEADER_LEN + BOX_TAG_LEN + 2 + MAX_DECODED_ENDPOINTS * ENDPOINT_LEN;
/** Largest disco packet opened from a direct UDP source (room for padded MTU-probe pings). */
export const MAX_DISCO_PACKET_LEN = 9216;

export type DiscoErrorReason = 'not-disco' | 'short' | 'unknown-type' | 'malformed' | 'auth' | 'bad-key' | 'bad-endpoint';

export class DiscoError extends MeshdError {
  readonly reason: DiscoErrorReason;
  constructor(reason: DiscoErrorReason, message: string) {
    super('E_ENGINE', `disco: ${message}`);
    this.reason = reason;
  }
}

export interface DiscoPing {
  readonly type: 'ping';
  readonly txId: Uint8Array;
  /** The sender's WireGuard public key (absent, or all zero, means not sent). */
  readonly nodeKey?: Uint8Array;
  /** Zero bytes appended after the node key (path MTU probing); needs nodeKey. */
  readonly padding?: number;
}

export interface DiscoPong {
  readonly type: 'pong';
  readonly txId: Uint8Array;
  /** Where the ping came from, as the answering peer saw it. */
  readonly src: IpPort;
}

export interface DiscoCallMeMaybe {
  readonly type: 'call-me-maybe';
  readonly endpoints: readonly IpPort[];
}

export type DiscoMessage = DiscoPing | DiscoPong | DiscoCallMeMaybe;

/** Demultiplexing test for the shared socket: the 6-byte magic and room for a sealed message. */
export function isDiscoPacket(buf: Uint8Array): boolean {
  if (buf.length < DISCO_MIN_PACKET_LEN) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (buf[i] !== DISCO_MAGIC[i]) return false;
  return true;
}

function writeEndpoint(out: Uint8Array, off: number, ep: IpPort): void {
  const ip = ipToBytes16(ep.ip);
  if (ip === null) throw new DiscoError('bad-endpoint', `not an IP address: ${ep.ip}`);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 0xffff) throw new DiscoError('bad-endpoint', `bad port ${ep.port}`);
  out.set(ip, off);
  out[off + 16] = ep.port >>> 8;
  out[off + 17] = ep.port & 0xff;
}

function readEndpoint(b: Uint8Array, off: number): IpPort {
  return { ip: ipFromBytes16(b, off), port: (b[off + 16]! << 8) | b[off + 17]! };
}

/** The plaintext inside the box: type ‖ version ‖ payload. Throws DiscoError on bad fields. */
export function encodeDiscoMessage(msg: DiscoMessage): Uint8Array {
  switch (msg.type) {
    case 'ping': {
      if (msg.txId.length !== DISCO_TXID_LEN) throw new DiscoError('malformed', 'ping tx id must be 12 bytes');
      const padding = msg.padding ?? 0;
      if (!Number.isInteger(padding) || padding < 0 || padding > 65535) throw new DiscoError('malformed', 'bad ping padding');
      if (msg.nodeKey !== undefined && msg.nodeKey.length !== NODE_KEY_LEN) throw new DiscoError('malformed', 'node key must be 32 bytes');
      if (padding > 0 && msg.nodeKey === undefined) throw new DiscoError('malformed', 'ping padding needs the node key');
      const out = new Uint8Array(2 + DISCO_TXID_LEN + (msg.nodeKey ? NODE_KEY_LEN : 0) + padding);
      out[0] = DISCO_TYPE_PING;
      out[1] = DISCO_VERSION;
      out.set(msg.txId, 2);
      if (msg.nodeKey) out.set(msg.nodeKey, 2 + DISCO_TXID_LEN);
      return out;
    }
    case 'pong': {
      if (msg.txId.length !== DISCO_TXID_LEN) throw new DiscoError('malformed', 'pong tx id must be 12 bytes');
      const out = new Uint8Array(2 + PONG_LEN);
      out[0] = DISCO_TYPE_PONG;
      out[1] = DISCO_VERSION;
      out.set(msg.txId, 2);
      writeEndpoint(out, 2 + DISCO_TXID_LEN, msg.src);
      return out;
    }
    case 'call-me-maybe': {
      const out = new Uint8Array(2 + ENDPOINT_LEN * msg.endpoints.length);
      out[0] = DISCO_TYPE_CALL_ME_MAYBE;
      out[1] = DISCO_VERSION;
      msg.endpoints.forEach((ep, i) => writeEndpoint(out, 2 + i * ENDPOINT_LEN, ep));
      return out;
    }
    default:
      throw new DiscoError('unknown-type', 'unknown message type');
  }
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parses the plaintext of a disco box. Bytes after a known layout are ignored (extensions). */
export function decodeDiscoMessage(plain: Uint8Array): DiscoMessage {
  if (plain.length < 2) throw new DiscoError('short', 'message shorter than type and version');
  const p = plain.subarray(2);
  switch (plain[0]) {
    case DISCO_TYPE_PING: {
      if (p.length < DISCO_TXID_LEN) throw new DiscoError('short', 'ping shorter than its tx id');
      const txId = p.slice(0, DISCO_TXID_LEN);
      if (p.length < DISCO_TXID_LEN + NODE_KEY_LEN) return { type: 'ping', txId };
      const key = p.slice(DISCO_TXID_LEN, DISCO_TXID_LEN + NODE_KEY_LEN);
      const padding = p.length - DISCO_TXID_LEN - NODE_KEY_LEN;
      if (isZero(key)) return { type: 'ping', txId };
      return padding > 0 ? { type: 'ping', txId, nodeKey: key, padding } : { type: 'ping', txId, nodeKey: key };
    }
    case DISCO_TYPE_PONG: {
      if (p.length < PONG_LEN) throw new DiscoError('short', 'pong shorter than 30 bytes');
      return { type: 'pong', txId: p.slice(0, DISCO_TXID_LEN), src: readEndpoint(p, DISCO_TXID_LEN) };
    }
    case DISCO_TYPE_CALL_ME_MAYBE: {
      if (p.length % ENDPOINT_LEN !== 0) throw new DiscoError('malformed', 'call-me-maybe length is not a multiple of 18');
      if (p.length / ENDPOINT_LEN > MAX_DECODED_ENDPOINTS) throw new DiscoError('malformed', `call-me-maybe with more than ${MAX_DECODED_ENDPOINTS} endpoints`);
      const endpoints: IpPort[] = [];
      for (let off = 0; off < p.length; off += ENDPOINT_LEN) endpoints.push(readEndpoint(p, off));
      return { type: 'call-me-maybe', endpoints };
    }
    default:
      throw new DiscoError('unknown-type', `unknown message type 0x${plain[0]!.toString(16).padStart(2, '0')}`);
  }
}

/**
 * The precomputed NaCl box key between our disco private key and a peer's disco public key.
 * Compute once per peer (it costs a scalar multiplication) and reuse for every message.
 */
export function discoSharedKey(myPrivate: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  const k = boxBeforeNm(myPrivate, peerPublic);
  if (k === null) throw new DiscoError('bad-key', 'peer disco key is not a usable X25519 public key');
  return k;
}

/** The sender's disco public key of a packet (a view into it); throws when not disco. */
export function discoSender(packet: Uint8Array): Uint8Array {
  if (!isDiscoPacket(packet)) throw new DiscoError('not-disco', 'not a disco packet');
  return packet.subarray(DISCO_MAGIC.length, DISCO_MAGIC.length + DISCO_KEY_LEN);
}

/**
 * Seals msg into a wire packet from senderPublic, under the shared key with the recipient.
 * nonce defaults to 24 fresh random bytes.
 */
export function sealDiscoPacket(
  msg: DiscoMessage,
  senderPublic: Uint8Array,
  sharedKey: Uint8Array,
  nonce: Uint8Array = randomNonce(),
): Uint8Array {
  if (senderPublic.length !== DISCO_KEY_LEN) throw new DiscoError('bad-key', 'sender disco key must be 32 bytes');
  if (sharedKey.length !== BOX_KEY_LEN) throw new DiscoError('bad-key', 'shared key must be 32 bytes');
  if (nonce.length !== DISCO_NONCE_LEN) throw new DiscoError('malformed', 'nonce must be 24 bytes');
  const box = secretboxSeal(sharedKey, nonce, encodeDiscoMessage(msg));
  const out = new Uint8Array(DISCO_HEADER_LEN + box.length);
  out.set(DISCO_MAGIC, 0);
  out.set(senderPublic, DISCO_MAGIC.length);
  out.set(nonce, DISCO_MAGIC.length + DISCO_KEY_LEN);
  out.set(box, DISCO_HEADER_LEN);
  return out;
}

export interface OpenedDisco {
  /** The sender's disco public key (a copy). */
  readonly sender: Uint8Array;
  readonly message: DiscoMessage;
}

/** Opens a packet with the shared key for its sender (look the sender up with discoSender). */
export function openDiscoPacket(packet: Uint8Array, sharedKey: Uint8Array): OpenedDisco {
  if (!isDiscoPacket(packet)) throw new DiscoError('not-disco', 'not a disco packet');
  const nonce = packet.subarray(DISCO_MAGIC.length + DISCO_KEY_LEN, DISCO_HEADER_LEN);
  const plain = secretboxOpen(sharedKey, nonce, packet.subarray(DISCO_HEADER_LEN));
  if (plain === null) throw new DiscoError('auth', 'box does not open (wrong key or tampered)');
  return { sender: packet.slice(DISCO_MAGIC.length, DISCO_MAGIC.length + DISCO_KEY_LEN), message: decodeDiscoMessage(plain) };
}

/** Convenience: seal from a private key to a peer's public key (computes the shared key). */
export function sealDiscoTo(msg: DiscoMessage, myPrivate: Uint8Array, myPublic: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  return sealDiscoPacket(msg, myPublic, discoSharedKey(myPrivate, peerPublic));
}

/** Convenience: open with our private key (computes the shared key with the sender's key). */
export function openDiscoWith(packet: Uint8Array, myPrivate: Uint8Array): OpenedDisco {
  const sender = discoSender(packet);
  const k = boxBeforeNm(myPrivate, sender);
  if (k === null) throw new DiscoError('auth', 'sender key is not a usable X25519 public key');
  return openDiscoPacket(packet, k);
}
