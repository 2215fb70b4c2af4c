/**
 * One client connection on the DERP relay server: the login (ServerKey with a fresh login
 * challenge → ClientInfo → ServerInfo; see login.ts), frames from the client, the bounded send
 * queue with its write timeout, keepalives, the per-key send rate limit and rate-limited
 * PeerGone(not-here) replies; and the server's counters that it updates. The server
 * (server.ts) owns the routing tables it calls into through ConnHost.
 *
 * Before the login a connection can make the server buffer at most MAX_LOGIN_FRAME_LEN bytes;
 * the full frame limit applies once it proved its key.
 */
import { randomBytes } from 'node:crypto';
import { equalBytes } from '../../util/bytes.js';
import type { Clock } from '../../util/clock.js';
import type { Logger } from '../../util/log.js';
import {
  DerpFrameError,
  FrameParser,
  FrameType,
  KEY_LEN,
  MAX_LOGIN_FRAME_LEN,
  PROTOCOL_VERSION,
  PeerGoneReason,
  decodeFrame,
  encodeFrame,
  encodeRecvPacket,
  frame,
} from './frames.js';
import { LOGIN_NONCE_LEN, RelayLoginError, encodeLoginChallenge, openClientInfo, sealServerInfo, type ClientInfo } from './login.js';
import type { FrameTransport } from './transport.js';

export interface RelayServerStats {
  accepts: number;
  currentClients: number;
  /** Open TCP connections (logged in or not). */
  currentConnections: number;
  /** Keys some client would get a PeerGone for (bounded by clients × maxWatchedPerConn). */
  watchedKeys: number;
  /** Connections refused: the server already had its maximum. */
  refusedTotalCap: number;
  /** Connections refused: their source address already had its maximum. */
  refusedPerIpCap: number;
  /** Connections closed for not upgrading to DERP within the login timeout. */
  upgradeTimeouts: number;
  /** Connections closed for not logging in within the login timeout. */
  loginTimeouts: number;
  /** Logins whose box carried another connection's challenge (a replay). */
  loginReplays: number;
  /** Logins without a challenge (standard DERP clients): accepted only with allowLegacyLogin. */
  legacyLogins: number;
  legacyLoginsRefused: number;
  homeClients: number;
  websocketAccepts: number;
  loginFailures: number;
  packetsReceived: number;
  bytesReceived: number;
  packetsSent: number;
  bytesSent: number;
  /** Every packet dropped, whatever the reason (the sum of the dropped* counters). */
  packetsDropped: number;
  droppedUnknownDest: number;
  droppedQueueFull: number;
  droppedGone: number;
  droppedWriteError: number;
  /** Packets over their sender's send rate limit. */
  droppedRateLimited: number;
  /** Sources a client had heard from that were forgotten (its cap): no PeerGone for them. */
  watchEvictions: number;
  peerGoneNotHereSent: number;
  peerGoneNotHereLimited: number;
  peerGoneDisconnectedSent: number;
  pingsReceived: number;
  pongsSent: number;
  keepAlivesSent: number;
  /** Connections closed for a malformed frame (bad size for its type, wrong first frame...). */
  malformedFrames: number;
  /** Connections closed for a declared frame length above the limit. */
  oversizeFrames: number;
  /** Frames of unknown type, skipped. */
  unknownFrames: number;
  /** Mesh-only frames (forward, watch, close-peer) refused; the connection is closed. */
  refusedMeshFrames: number;
  writeTimeouts: number;
  nonUpgradeRequests: number;
  stunRequests: number;
  stunResponses: number;
  stunDropped: number;
}

export function newStats(): RelayServerStats {
  return {
    accepts: 0,
    currentClients: 0,
    currentConnections: 0,
    watchedKeys: 0,
    refusedTotalCap: 0,
    refusedPerIpCap: 0,
    upgradeTimeouts: 0,
    loginTimeouts: 0,
    loginReplays: 0,
    legacyLogins: 0,
    legacyLoginsRefused: 0,
    homeClients: 0,
    websocketAccepts: 0,
    loginFailures: 0,
    packetsReceived: 0,
    bytesReceived: 0,
    packetsSent: 0,
    bytesSent: 0,
    packetsDropped: 0,
    droppedUnknownDest: 0,
    droppedQueueFull: 0,
    droppedGone: 0,
    droppedWriteError: 0,
    droppedRateLimited: 0,
    watchEvictions: 0,
    peerGoneNotHereSent: 0,
    peerGoneNotHereLimited: 0,
    peerGoneDisconnectedSent: 0,
    pingsReceived: 0,
    pongsSent: 0,
    keepAlivesSent: 0,
    malformedFrames: 0,
    oversizeFrames: 0,
    unknownFrames: 0,
    refusedMeshFrames: 0,
    writeTimeouts: 0,
    nonUpgradeRequests: 0,
    stunRequests: 0,
    stunResponses: 0,
    stunDropped: 0,
  };
}

export type DropReason = 'unknownDest' | 'queueFull' | 'gone' | 'writeError' | 'rateLimited';

export const hex = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.length).toString('hex');

/** What a connection uses of its server (RelayServer). */
export interface ConnHost {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** Live counters, mutated in place. */
  readonly counters: RelayServerStats;
  readonly keepAliveMs: number;
  readonly sendQueueDepth: number;
  readonly loginTimeoutMs: number;
  readonly writeTimeoutMs: number;
  readonly maxFrameLength: number;
  readonly notHereRatePerSec: number;
  /** Bytes per second a key may send (0: no limit), and its burst. */
  readonly sendRateBytesPerSec: number;
  readonly sendBurstBytes: number;
  /** Sources remembered per client for PeerGone; the oldest is forgotten beyond. */
  readonly maxWatchedPerConn: number;
  /** Accept logins without the challenge (standard DERP clients; replayable). */
  readonly allowLegacyLogin: boolean;
  /** Logged in: route packets for its key to it. */
  register(c: ServerConn): void;
  /** Closed: forget it, and tell whoever it sent to that it is gone. */
  unregister(c: ServerConn): void;
  /** `dst` received a packet from `srcId`: it hears when that key leaves. */
  watch(srcId: string, dst: ServerConn): void;
  /** `dst` forgot `srcId` (its cap): stop telling it about that key. */
  unwatch(srcId: string, dst: ServerConn): void;
  route(from: ServerConn, dst: Uint8Array, packet: Uint8Array): void;
  noteSent(bytes: number): void;
  drop(reason: DropReason): void;
  readonly log: Logger;
  readonly clock: Clock;
}

/** One client connection on the server. */
export class ServerConn {
  key: Uint8Array | null = null;
  keyId = '';
  info: ClientInfo | null = null;
  preferred = false;
  /** Keys of clients that sent to this one (each gets us a PeerGone when it leaves). */
  readonly sawSrc = new Set<string>();
  private readonly parser: FrameParser;
  private readonly queue: { bytes: Uint8Array; isPacket: boolean }[] = [];
  private blocked = false;
  private closing = false;
  private loginTimer: NodeJS.Timeout | undefined;
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private writeTimer: NodeJS.Timeout | undefined;
  /** Token bucket for PeerGone(not-here) replies. */
  private notHereTokens = 3;
  private notHereAt: number;
  /** Token bucket of the send rate limit (bytes). */
  private sendTokens: number;
  private sendAt: number;
  /** This connection's login challenge. */
  private readonly challenge = new Uint8Array(randomBytes(LOGIN_NONCE_LEN));

  constructor(
    private readonly server: ConnHost,
    readonly transport: FrameTransport,
  ) {
    this.parser = new FrameParser(Math.min(MAX_LOGIN_FRAME_LEN, server.maxFrameLength));
    this.sendTokens = server.sendBurstBytes;
    this.notHereAt = this.sendAt = server.clock.now();
  }

  start(initial: Uint8Array | undefined): void {
    this.transport.bind({
      onData: (chunk) => this.onData(chunk),
      onDrain: () => this.onDrain(),
      onClose: () => this.onClose(),
    });
    this.loginTimer = setTimeout(() => {
      this.server.counters.loginTimeouts++;
      this.kill('login timeout');
    }, this.server.loginTimeoutMs);
    this.loginTimer.unref();
    this.write(encodeFrame({ type: 'server-key', key: this.server.publicKey, extra: encodeLoginChallenge(this.challenge) }), false);
    if (initial && initial.length > 0) this.onData(initial);
  }

  get loggedIn(): boolean {
    return this.key !== null;
  }

  private onData(chunk: Uint8Array): void {
    if (this.closing) return;
    try {
      this.parser.push(chunk, (type, payload) => this.onFrame(type, payload));
    } catch (e) {
      if (e instanceof DerpFrameError || e instanceof RelayLoginError) {
        if (e instanceof DerpFrameError && e.reason === 'oversize') this.server.counters.oversizeFrames++;
        else if (e instanceof RelayLoginError) this.server.counters.loginFailures++;
        else this.server.counters.malformedFrames++;
        this.kill(e.message);
        return;
      }
      throw e;
    }
  }

  private onFrame(type: number, payload: Uint8Array): void {
    if (this.closing) return;
    if (!this.loggedIn) {
      if (type !== FrameType.ClientInfo) {
        this.server.counters.loginFailures++;
        this.kill(`first frame is type 0x${type.toString(16)}, not client info`);
        this.parser.fail();
        return;
      }
      const f = decodeFrame(type, payload);
      if (f.type !== 'client-info') return;
      const info = openClientInfo(this.server.privateKey, f.key, f.sealed);
      if (info.serverNonce === undefined) {
        if (!this.server.allowLegacyLogin) {
          this.server.counters.legacyLoginsRefused++;
          throw new RelayLoginError('client info without the login challenge (this relay needs a meshd client)');
        }
        this.server.counters.legacyLogins++;
      } else if (!equalBytes(info.serverNonce, this.challenge)) {
        this.server.counters.loginReplays++;
        throw new RelayLoginError('client info answers another connection\'s login challenge (replayed)');
      }
      this.info = info;
      this.parser.maxFrameLength = this.server.maxFrameLength;
      this.key = f.key.slice();
      this.keyId = hex(this.key);
      clearTimeout(this.loginTimer);
      const rate = this.server.sendRateBytesPerSec;
      const serverInfo = rate > 0 ? { version: PROTOCOL_VERSION, tokenBucketBytesPerSecond: rate, tokenBucketBytesBurst: this.server.sendBurstBytes } : { version: PROTOCOL_VERSION };
      this.write(frame(FrameType.ServerInfo, sealServerInfo(this.server.privateKey, this.key, serverInfo)), false);
      this.server.register(this);
      const ka = this.server.keepAliveMs;
      // Tailscale adds jitter above 60 s; keepalives must come at least every 60 s, so jitter below.
      this.keepAliveTimer = setInterval(() => this.sendKeepAlive(), Math.max(1, Math.floor(ka - Math.random() * ka * 0.1)));
      this.keepAliveTimer.unref();
      return;
    }
    switch (type) {
      case FrameType.SendPacket: {
        const f = decodeFrame(type, payload);
        if (f.type !== 'send-packet') return;
        if (!this.takeSendTokens(f.packet.length)) {
          this.server.drop('rateLimited');
          return;
        }
        this.server.route(this, f.dst, f.packet);
        return;
      }
      case FrameType.Ping: {
        const f = decodeFrame(type, payload);
        this.server.counters.pingsReceived++;
        if (f.type === 'ping') {
          this.server.counters.pongsSent++;
          this.write(frame(FrameType.Pong, f.data), false);
        }
        return;
      }
      case FrameType.NotePreferred: {
        const f = decodeFrame(type, payload);
        if (f.type === 'note-preferred' && f.preferred !== this.preferred) {
          this.preferred = f.preferred;
          this.server.counters.homeClients += f.preferred ? 1 : -1;
        }
        return;
      }
      case FrameType.Pong:
      case FrameType.KeepAlive:
        decodeFrame(type, payload);
        return;
      case FrameType.ForwardPacket:
      case FrameType.WatchConns:
      case FrameType.ClosePeer:
        this.server.counters.refusedMeshFrames++;
        this.kill('mesh frame from a client without the mesh key');
        this.parser.fail();
        return;
      default:
        this.server.counters.unknownFrames++;
        return;
    }
  }

  /** The per-key send rate limit: may this connection send `bytes` more now? */
  private takeSendTokens(bytes: number): boolean {
    const rate = this.server.sendRateBytesPerSec;
    if (rate <= 0) return true;
    const now = this.server.clock.now();
    this.sendTokens = Math.min(this.server.sendBurstBytes, this.sendTokens + ((now - this.sendAt) / 1000) * rate);
    this.sendAt = now;
    if (this.sendTokens < bytes) return false;
    this.sendTokens -= bytes;
    return true;
  }

  /** Queue a RecvPacket from src. */
  sendPacket(src: Uint8Array, srcId: string, packet: Uint8Array): void {
    if (this.closing) {
      this.server.drop('gone');
      return;
    }
    if (!this.sawSrc.has(srcId)) {
      if (this.sawSrc.size >= this.server.maxWatchedPerConn) {
        // Forget the oldest source: bounded memory beats a PeerGone for a long-quiet sender.
        const oldest = this.sawSrc.values().next().value as string;
        this.sawSrc.delete(oldest);
        this.server.unwatch(oldest, this);
        this.server.counters.watchEvictions++;
      }
      this.sawSrc.add(srcId);
      this.server.watch(srcId, this);
    }
    this.write(encodeRecvPacket(src, packet), true);
  }

  sendPeerGone(key: Uint8Array, reason: number): void {
    if (reason === PeerGoneReason.NotHere) {
      const now = this.server.clock.now();
      this.notHereTokens = Math.min(3, this.notHereTokens + ((now - this.notHereAt) / 1000) * this.server.notHereRatePerSec);
      this.notHereAt = now;
      if (this.notHereTokens < 1) {
        this.server.counters.peerGoneNotHereLimited++;
        return;
      }
      this.notHereTokens -= 1;
      this.server.counters.peerGoneNotHereSent++;
    } else {
      this.server.counters.peerGoneDisconnectedSent++;
    }
    this.write(encodeFrame({ type: 'peer-gone', key, reason }), false);
  }

  private sendKeepAlive(): void {
    this.server.counters.keepAlivesSent++;
    this.write(frame(FrameType.KeepAlive), false);
  }

  private write(bytes: Uint8Array, isPacket: boolean): void {
    if (this.closing) return;
    if (!this.blocked) {
      if (isPacket) this.server.noteSent(bytes.length - 5 - KEY_LEN);
      if (!this.transport.write(bytes)) this.block();
      return;
    }
    if (this.queue.length >= this.server.sendQueueDepth) {
      // Drop the oldest: fresher packets are worth more (as Tailscale's head drop).
      const old = this.queue.shift()!;
      if (old.isPacket) this.server.drop('queueFull');
    }
    this.queue.push({ bytes, isPacket });
  }

  private block(): void {
    this.blocked = true;
    if (!this.writeTimer) {
      this.writeTimer = setTimeout(() => {
        this.server.counters.writeTimeouts++;
        this.kill('write timeout');
      }, this.server.writeTimeoutMs);
      this.writeTimer.unref();
    }
  }

  private onDrain(): void {
    this.blocked = false;
    clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    while (this.queue.length > 0 && !this.blocked) {
      const q = this.queue.shift()!;
      if (q.isPacket) this.server.noteSent(q.bytes.length - 5 - KEY_LEN);
      if (!this.transport.write(q.bytes)) this.block();
    }
  }

  /** Close this connection now (protocol error, timeout, server stop). */
  kill(why: string): void {
    if (this.closing) return;
    this.closing = true;
    this.server.log.info('conn-closed', { conn: this.describe(), why });
    this.transport.destroy();
  }

  describe(): string {
    const who = this.keyId ? this.keyId.slice(0, 16) : 'unauthenticated';
    return `${this.transport.kind} ${this.transport.remoteAddress}:${this.transport.remotePort} ${who}`;
  }

  private onClose(): void {
    this.closing = true;
    this.parser.fail();
    clearTimeout(this.loginTimer);
    clearInterval(this.keepAliveTimer);
    clearTimeout(this.writeTimer);
    for (const q of this.queue) if (q.isPacket) this.server.drop('gone');
    this.queue.length = 0;
    this.server.unregister(this);
  }
}
