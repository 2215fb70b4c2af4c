/** Why a packet was dropped. Every drop on the send and receive paths is counted under one of these. */
export const DROP_REASONS = [
  // receive path, any message
  'invalid-message',
  'no-private-key',
  // handshake messages
  'bad-mac1',
  'cookie-required',
  'rate-limited',
  'bad-initiation',
  'unknown-peer',
  'handshake-replay',
  'handshake-flood',
  'bad-response',
  'bad-cookie-reply',
  'handshake-failed',
  // transport messages
  'unknown-receiver',
  'expired-keypair',
  'replay',
  'decrypt-failed',
  'bad-ip-packet',
  'source-not-allowed',
  'filtered-inbound',
  // send path
  'filtered-outbound',
  'no-route',
  'no-endpoint',
  'staged-overflow',
  'staged-expired',
  'packet-too-large',
] as const;

export type DropReason = (typeof DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;

export function newDropCounters(): DropCounters {
  const c = {} as DropCounters;
  for (const r of DROP_REASONS) c[r] = 0;
  return c;
}

export function totalDrops(c: DropCounters): number {
  let n = 0;
  for (const r of DROP_REASONS) n += c[r];
  return n;
}
