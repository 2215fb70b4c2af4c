/**
 * The per-peer protocol timers: the hooks that arm and disarm them and the tick that fires them,
 * named as wireguard-go's timers.go names them. A timer is a deadline field of the peer
 * (PeerTimers, peer.ts; Infinity when not pending); one tick per device fires whatever is due,
 * woken for the earliest deadline (one pending wake-up per device, not a periodic tick). Nothing
 * here schedules a callback per packet: arming a timer on the hot path is a field write and a
 * comparison. The clock is src/util/clock.ts, re-exported here.
 */
import { jitter } from '../../util/clock.js';
import { zeroKeys } from './keypair-rotation.js';
import type { DeviceState } from './device-state.js';
import type { Peer } from './peer.js';

export { ManualClock, jitter, systemClock, type Clock, type Ticker } from '../../util/clock.js';

// ---------------------------------------------------------------- hooks (called by the paths)

/** Called after an authenticated data packet is sent. */
export function timersDataSent(dev: DeviceState, peer: Peer, now: number): void {
  const t = peer.timers;
  const c = dev.timers;
  if (t.newHandshake === Infinity) {
    t.newHandshake = now + c.keepaliveTimeout + c.rekeyTimeout + jitter(c.rekeyTimeoutJitterMax);
    dev.wakeBy(t.newHandshake);
  }
}

/** Called after an authenticated data packet is received. */
export function timersDataReceived(dev: DeviceState, peer: Peer, now: number): void {
  const t = peer.timers;
  if (t.sendKeepalive === Infinity) {
    t.sendKeepalive = now + dev.timers.keepaliveTimeout;
    dev.wakeBy(t.sendKeepalive);
  } else t.needAnotherKeepalive = true;
}

/** Called after any type of authenticated packet is sent: keepalive, data, or handshake. */
export function timersAnyAuthenticatedPacketSent(peer: Peer): void {
  peer.timers.sendKeepalive = Infinity;
}

/** Called after any type of authenticated packet is received: keepalive, data, or handshake. */
export function timersAnyAuthenticatedPacketReceived(peer: Peer): void {
  peer.timers.newHandshake = Infinity;
}

/** Called after a handshake initiation message is sent. */
export function timersHandshakeInitiated(dev: DeviceState, peer: Peer, now: number): void {
  peer.timers.retransmitHandshake = now + dev.timers.rekeyTimeout + jitter(dev.timers.rekeyTimeoutJitterMax);
  dev.wakeBy(peer.timers.retransmitHandshake);
}

/**
 * Called after a handshake response message is received and processed, or when getting key
 * confirmation via the first data message.
 */
export function timersHandshakeComplete(dev: DeviceState, peer: Peer, initiator: boolean): void {
  const t = peer.timers;
  t.retransmitHandshake = Infinity;
  t.handshakeAttempts = 0;
  t.sentLastMinuteHandshake = false;
  peer.lastHandshakeWallMs = Number(dev.clock.wallNanos() / 1_000_000n);
  peer.handshakesCompleted++;
  dev.onEvent({ type: 'handshake-complete', peer: peer.publicKeyBase64, initiator });
}

/**
 * Called after an ephemeral key is created, which is before sending a handshake response or
 * after receiving a handshake response.
 */
export function timersSessionDerived(dev: DeviceState, peer: Peer, now: number): void {
  peer.timers.zeroKeyMaterial = now + dev.timers.rejectAfterTime * 3;
  dev.wakeBy(peer.timers.zeroKeyMaterial);
}

/**
 * Called before a packet with authentication (keepalive, data, or handshake) is sent, or after
 * one is received.
 */
export function timersAnyAuthenticatedPacketTraversal(dev: DeviceState, peer: Peer, now: number): void {
  if (peer.persistentKeepalive > 0) {
    peer.timers.persistentKeepalive = now + peer.persistentKeepalive * 1000;
    dev.wakeBy(peer.timers.persistentKeepalive);
  }
}

// ---------------------------------------------------------------- expiry (called by the tick)

/**
 * What the expired timers do through the send and handshake paths. Those paths arm the timers
 * above, so importing them here would make a module cycle: the device passes them in instead
 * (one constant object, so the calls stay monomorphic).
 */
export interface TimerActions {
  sendKeepalive(dev: DeviceState, peer: Peer): void;
  sendHandshakeInitiation(dev: DeviceState, peer: Peer, isRetry: boolean): void;
}

/**
 * Run every timer that is due, then sleep until the next deadline. Called when the earliest
 * armed deadline comes (DeviceState.wakeBy), so an idle device does no work per peer.
 */
export function tick(dev: DeviceState, actions: TimerActions): void {
  if (dev.closed) return;
  dev.clearWake();
  const now = dev.clock.now();
  for (const peer of [...dev.peers.values()]) {
    const t = peer.timers;
    if (now >= t.retransmitHandshake) {
      t.retransmitHandshake = Infinity;
      expiredRetransmitHandshake(dev, peer, actions);
    }
    if (now >= t.sendKeepalive) {
      t.sendKeepalive = Infinity;
      expiredSendKeepalive(dev, peer, now, actions);
    }
    if (now >= t.newHandshake) {
      t.newHandshake = Infinity;
      // we stopped hearing back after sending data: start over
      actions.sendHandshakeInitiation(dev, peer, false);
    }
    if (now >= t.zeroKeyMaterial) {
      t.zeroKeyMaterial = Infinity;
      zeroKeys(dev, peer, true);
    }
    if (now >= t.persistentKeepalive) {
      t.persistentKeepalive = Infinity;
      if (peer.persistentKeepalive > 0) actions.sendKeepalive(dev, peer);
    }
  }
  dev.rateLimiter.sweep(now);
  if (dev.rateLimiter.size > 0) dev.wakeBy(now + 1000);
  dev.wakeBy(nextDeadline(dev));
}

/** The earliest deadline armed on any peer (Infinity: none). */
export function nextDeadline(dev: DeviceState): number {
  let next = Infinity;
  for (const peer of dev.peers.values()) {
    const t = peer.timers;
    next = Math.min(next, t.retransmitHandshake, t.sendKeepalive, t.newHandshake, t.zeroKeyMaterial, t.persistentKeepalive);
  }
  return next;
}

/** Retry the initiation, or give up after maxTimerHandshakes and drop what waits for it. */
function expiredRetransmitHandshake(dev: DeviceState, peer: Peer, actions: TimerActions): void {
  const t = peer.timers;
  if (t.handshakeAttempts > dev.timers.maxTimerHandshakes) {
    t.sendKeepalive = Infinity;
    if (peer.staged.length > 0) {
      dev.counters.drops['staged-expired'] += peer.staged.length;
      peer.staged = [];
    }
    if (t.zeroKeyMaterial === Infinity) {
      t.zeroKeyMaterial = dev.clock.now() + dev.timers.rejectAfterTime * 3;
      dev.wakeBy(t.zeroKeyMaterial);
    }
    dev.onEvent({ type: 'handshake-gave-up', peer: peer.publicKeyBase64, attempts: t.handshakeAttempts + 1 });
    return;
  }
  t.handshakeAttempts++;
  actions.sendHandshakeInitiation(dev, peer, true);
}

/** Data came in and we sent nothing back: a keepalive, and another later if more data came. */
function expiredSendKeepalive(dev: DeviceState, peer: Peer, now: number, actions: TimerActions): void {
  const t = peer.timers;
  actions.sendKeepalive(dev, peer);
  if (t.needAnotherKeepalive) {
    t.needAnotherKeepalive = false;
    t.sendKeepalive = now + dev.timers.keepaliveTimeout;
    dev.wakeBy(t.sendKeepalive);
  }
}
