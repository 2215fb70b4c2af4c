/**
 * The DERP login exchange: the client proves it holds the private key of the public key it
 * claims by sealing a JSON ClientInfo to the server's key (NaCl box, 24-byte nonce first); the
 * server answers with a ServerInfo sealed back to the client's key.
 *
 * Replay. In standard DERP nothing in the ClientInfo box is specific to one connection, so a
 * ClientInfo captured off the wire logs in again on a new connection — and since a server
 * routes a key to its newest connection, the replayer would receive the victim's packets.
 * meshd closes this with a per-connection login challenge:
 *
 * - a meshd server appends a challenge to the ServerKey frame's payload, after the magic and
 *   the key: `"MSHD" ‖ 32 random bytes`, fresh per connection. Standard DERP clients ignore
 *   bytes after the key in that frame (the frame is allowed to grow), so they still log in;
 * - a meshd client that sees a challenge puts it in its sealed ClientInfo JSON as
 *   `"MeshdServerNonce": "<64 hex digits>"`. Standard DERP servers ignore unknown JSON fields;
 * - a meshd server opens the box and accepts the login only when the nonce is the one it sent
 *   on this connection. A ClientInfo without it is a standard DERP client: refused unless the
 *   server was started with `allowLegacyLogin` (then it is accepted and counted, and such a
 *   login stays replayable — TLS is then the only protection against capture).
 *
 * With a third-party DERP server (which sends no challenge) a meshd client logs in exactly as
 * a standard client does; replay protection is then whatever that server and its TLS give.
 */
import { MeshdError } from '../../errors.js';
import { boxBeforeNm, openWithNonce, sealWithNonce } from '../crypto/nacl-box.js';
import { PROTOCOL_VERSION } from './frames.js';

/** Largest login JSON we open (Tailscale caps client info at 256 KiB; ours is tiny). */
export const MAX_INFO_JSON = 64 << 10;

export interface ClientInfo {
  /** DERP protocol version the client speaks (2). */
  readonly version?: number | undefined;
  /** Pre-shared mesh key of trusted servers; meshd's relay does not use it. */
  readonly meshKey?: string | undefined;
  readonly canAckPings?: boolean | undefined;
  readonly isProber?: boolean | undefined;
  /** The login challenge of this connection (meshd servers only; 32 bytes). */
  readonly serverNonce?: Uint8Array;
}

/** Length of the per-connection login challenge nonce. */
export const LOGIN_NONCE_LEN = 32;
/** "MSHD": marks a login challenge after the key in a ServerKey frame. */
const CHALLENGE_TAG = Uint8Array.of(0x4d, 0x53, 0x48, 0x44);

/** The ServerKey frame's extra bytes carrying a login challenge. */
export function encodeLoginChallenge(nonce: Uint8Array): Uint8Array {
  if (nonce.length !== LOGIN_NONCE_LEN) throw new RelayLoginError('login challenge must be 32 bytes');
  const out = new Uint8Array(CHALLENGE_TAG.length + LOGIN_NONCE_LEN);
  out.set(CHALLENGE_TAG, 0);
  out.set(nonce, CHALLENGE_TAG.length);
  return out;
}

/**
 * The login challenge in a ServerKey frame's extra bytes, or null when there is none (a
 * standard DERP server, or extra bytes of some other meaning).
 */
export function parseLoginChallenge(extra: Uint8Array | undefined): Uint8Array | null {
  if (extra === undefined || extra.length < CHALLENGE_TAG.length + LOGIN_NONCE_LEN) return null;
  for (let i = 0; i < CHALLENGE_TAG.length; i++) if (extra[i] !== CHALLENGE_TAG[i]) return null;
  return new Uint8Array(extra.subarray(CHALLENGE_TAG.length, CHALLENGE_TAG.length + LOGIN_NONCE_LEN));
}

export interface ServerInfo {
  readonly version?: number | undefined;
  readonly tokenBucketBytesPerSecond?: number | undefined;
  readonly tokenBucketBytesBurst?: number | undefined;
}

export class RelayLoginError extends MeshdError {
  constructor(message: string) {
    super('E_RELAY', `DERP login: ${message}`);
  }
}

function sharedKey(myPrivate: Uint8Array, theirPublic: Uint8Array): Uint8Array {
  const k = boxBeforeNm(myPrivate, theirPublic);
  if (k === null) throw new RelayLoginError('peer key is not a usable X25519 public key');
  return k;
}

function openJson(myPrivate: Uint8Array, theirPublic: Uint8Array, sealed: Uint8Array): Record<string, unknown> {
  if (sealed.length > MAX_INFO_JSON) throw new RelayLoginError('info box too large');
  const plain = openWithNonce(sharedKey(myPrivate, theirPublic), sealed);
  if (plain === null) throw new RelayLoginError('info box does not open with the claimed key');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(plain.buffer, plain.byteOffset, plain.length).toString('utf8'));
  } catch {
    throw new RelayLoginError('info is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RelayLoginError('info is not a JSON object');
  return v as Record<string, unknown>;
}

/** Go's encoding/json matches field names case-insensitively; so do we. */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(o)) if (k.toLowerCase() === lower) return o[k];
  return undefined;
}

function optNumber(o: Record<string, unknown>, name: string): number | undefined {
  const v = field(o, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RelayLoginError(`${name} is not a number`);
  return v;
}

function optBool(o: Record<string, unknown>, name: string): boolean | undefined {
  const v = field(o, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new RelayLoginError(`${name} is not a boolean`);
  return v;
}

/** nonce ‖ box of the ClientInfo JSON, sealed from the client's key to the server's. */
export function sealClientInfo(clientPrivate: Uint8Array, serverPublic: Uint8Array, info: ClientInfo = {}): Uint8Array {
  const json: Record<string, unknown> = { version: info.version ?? PROTOCOL_VERSION };
  if (info.meshKey) json.meshKey = info.meshKey;
  json.CanAckPings = info.canAckPings ?? false;
  if (info.isProber) json.IsProber = true;
  if (info.serverNonce !== undefined) {
    if (info.serverNonce.length !== LOGIN_NONCE_LEN) throw new RelayLoginError('login challenge must be 32 bytes');
    json.MeshdServerNonce = Buffer.from(info.serverNonce).toString('hex');
  }
  return sealWithNonce(sharedKey(clientPrivate, serverPublic), Buffer.from(JSON.stringify(json), 'utf8'));
}

/** Opens and validates a ClientInfo. Throws RelayLoginError when it does not open or parse. */
export function openClientInfo(serverPrivate: Uint8Array, clientPublic: Uint8Array, sealed: Uint8Array): ClientInfo {
  const o = openJson(serverPrivate, clientPublic, sealed);
  const meshKey = field(o, 'meshKey');
  if (meshKey !== undefined && typeof meshKey !== 'string') throw new RelayLoginError('meshKey is not a string');
  const nonce = field(o, 'MeshdServerNonce');
  if (nonce !== undefined && (typeof nonce !== 'string' || !/^[0-9a-f]{64}$/.test(nonce))) throw new RelayLoginError('MeshdServerNonce is not 64 hex digits');
  return {
    version: optNumber(o, 'version'),
    meshKey: meshKey as string | undefined,
    canAckPings: optBool(o, 'CanAckPings'),
    isProber: optBool(o, 'IsProber'),
    ...(nonce !== undefined ? { serverNonce: new Uint8Array(Buffer.from(nonce, 'hex')) } : {}),
  };
}

export function sealServerInfo(serverPrivate: Uint8Array, clientPublic: Uint8Array, info: ServerInfo = {}): Uint8Array {
  const json: Record<string, unknown> = { version: info.version ?? PROTOCOL_VERSION };
  if (info.tokenBucketBytesPerSecond) json.TokenBucketBytesPerSecond = info.tokenBucketBytesPerSecond;
  if (info.tokenBucketBytesBurst) json.TokenBucketBytesBurst = info.tokenBucketBytesBurst;
  return sealWithNonce(sharedKey(serverPrivate, clientPublic), Buffer.from(JSON.stringify(json), 'utf8'));
}

export function openServerInfo(clientPrivate: Uint8Array, serverPublic: Uint8Array, sealed: Uint8Array): ServerInfo {
  const o = openJson(clientPrivate, serverPublic, sealed);
  return {
    version: optNumber(o, 'version'),
    tokenBucketBytesPerSecond: optNumber(o, 'TokenBucketBytesPerSecond'),
    tokenBucketBytesBurst: optNumber(o, 'TokenBucketBytesBurst'),
  };
}
