/**
 * WireGuard protocol constants, named as the WireGuard paper (section 6) names them, and the
 * timer set derived from them. Times are milliseconds.
 */

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
export const TAG_SIZE = 16;
/** A transport message with an empty payload: header + tag. */
export const KEEPALIVE_SIZE = TRANSPORT_HEADER_SIZE + TAG_SIZE;
export const PADDING_MULTIPLE = 16;

/** 2^60: the initiator starts a new handshake after sending this many messages on a keypair. */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
/** 2^64 − 2^13 − 1, exact. */
export const REJECT_AFTER_MESSAGES_EXACT = (1n << 64n) - (1n << 13n) - 1n;
/**
 * The limit the data path enforces. Counters are JavaScript numbers, exact below 2^53, so we
 * stop at 2^53 − 1 — far below REJECT_AFTER_MESSAGES and far beyond anything sendable (2^53
 * packets at 10 Mpps is 28 years). A received counter at or above it is rejected.
 */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER;

export const REKEY_AFTER_TIME = 120_000;
export const REJECT_AFTER_TIME = 180_000;
export const REKEY_ATTEMPT_TIME = 90_000;
export const REKEY_TIMEOUT = 5_000;
/** Jitter added to REKEY_TIMEOUT: uniformly 0..333 ms. */
export const REKEY_TIMEOUT_JITTER_MAX = 334;
export const KEEPALIVE_TIMEOUT = 10_000;
/** Cookie secrets rotate, and cookies received expire, after this long. */
export const COOKIE_REFRESH_TIME = 120_000;
/** A peer's initiations are accepted at most once per this interval (flood guard). */
export const HANDSHAKE_INITIATION_RATE = 50;
/** Once under load, stay under load for this long after the last overload sign. */
export const UNDER_LOAD_AFTER_TIME = 1_000;
/** Handshake messages per second above which the device counts as under load. */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 128;
/** Packets kept per peer while waiting for a handshake. */
export const MAX_STAGED_PACKETS = 128;

/** The timer set in use; every time is the paper's constant multiplied by `scale`. */
export interface TimerConfig {
  readonly scale: number;
  readonly rekeyAfterTime: number;
  readonly rejectAfterTime: number;
  readonly rekeyAttemptTime: number;
  readonly rekeyTimeout: number;
  readonly rekeyTimeoutJitterMax: number;
  readonly keepaliveTimeout: number;
  readonly cookieRefreshTime: number;
  /** REKEY_ATTEMPT_TIME / REKEY_TIMEOUT: retries before giving up. */
  readonly maxTimerHandshakes: number;
  /** How often the device's timer tick runs. */
  readonly tickInterval: number;
}

export function timerConfig(scale = 1): TimerConfig {
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1) throw new RangeError('timer scale must be in (0, 1]');
  return {
    scale,
    rekeyAfterTime: REKEY_AFTER_TIME * scale,
    rejectAfterTime: REJECT_AFTER_TIME * scale,
    rekeyAttemptTime: REKEY_ATTEMPT_TIME * scale,
    rekeyTimeout: REKEY_TIMEOUT * scale,
    rekeyTimeoutJitterMax: REKEY_TIMEOUT_JITTER_MAX * scale,
    keepaliveTimeout: KEEPALIVE_TIMEOUT * scale,
    cookieRefreshTime: COOKIE_REFRESH_TIME * scale,
    maxTimerHandshakes: Math.floor(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT),
    // fine enough that the retry jitter actually separates two peers that started together
    tickInterval: Math.max(1, Math.min(25, Math.floor((REKEY_TIMEOUT_JITTER_MAX * scale) / 8))),
  };
}
