/**
 * A bounded soak of every parser that reads bytes from the network: DERP frames (fed in random
 * chunks to the stream parser), disco messages, STUN messages and the WireGuard handshake
 * messages. Inputs are random bytes and mutations of valid messages; a parser may refuse an
 * input only with its own error class, never crash, hang or throw anything else.
 *
 *   node dist/bench/fuzz-soak.js [--seconds 30] [--seed N]
 *
 * Prints per-parser counts (inputs, accepted, refused) and exits 1 on the first unexpected
 * exception, with the input in hex. Stops by itself after --seconds.
 */
import { parseArgs } from 'node:util';
import { MeshdError } from '../src/errors.js';
import { decodeFrame, encodeSendPacket, FrameParser } from '../src/engine/relay/frames.js';
import { decodeDiscoMessage, encodeDiscoMessage } from '../src/engine/magicsock/disco.js';
import { decodeStunMessage, encodeBindingRequest, encodeBindingResponse } from '../src/engine/magicsock/stun.js';
import { decodeCookieReply, decodeInitiation, decodeResponse } from '../src/engine/wireguard/messages.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '30' }, seed: { type: 'string', default: String(Date.now() % 1_000_000) } } });
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new Error('--seconds must be 0–3600');

/** xorshift32: reproducible from --seed. */
let state = Number(values.seed) >>> 0 || 1;
function rand(n: number): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) % n;
}

function randomBytes(max: number): Uint8Array {
  const b = new Uint8Array(rand(max + 1));
  for (let i = 0; i < b.length; i++) b[i] = rand(256);
  return b;
}

/** Flip, insert, delete or truncate a few bytes of a valid message. */
function mutate(valid: Uint8Array): Uint8Array {
  let b = Uint8Array.from(valid);
  for (let k = 1 + rand(4); k > 0; k--) {
    const op = rand(4);
    if (op === 0 && b.length > 0) b[rand(b.length)]! ^= 1 << rand(8);
    else if (op === 1) b = Uint8Array.from([...b.subarray(0, rand(b.length + 1)), rand(256), ...b.subarray(rand(b.length + 1))]);
    else if (op === 2 && b.length > 0) b = b.subarray(0, rand(b.length));
    else if (b.length > 0) b[rand(b.length)] = rand(256);
  }
  return b;
}

const key = new Uint8Array(32).fill(7);
const samples = {
  derp: [encodeSendPacket(key, new Uint8Array(64)), Buffer.from([0x06, 0, 0, 0, 0])],
  disco: [encodeDiscoMessage({ type: 'ping', txId: new Uint8Array(12), nodeKey: key }), encodeDiscoMessage({ type: 'call-me-maybe', endpoints: [{ ip: '192.0.2.1', port: 41641 }] })],
  stun: [encodeBindingRequest(), encodeBindingResponse(new Uint8Array(12), '198.51.100.7', 41641)],
  wg: [new Uint8Array(148).fill(0).map((_, i) => (i === 0 ? 1 : 0)), new Uint8Array(92).map((_, i) => (i === 0 ? 2 : 0)), new Uint8Array(64).map((_, i) => (i === 0 ? 3 : 0))],
};

type Parser = { name: keyof typeof samples; run: (b: Uint8Array) => boolean };
const parsers: Parser[] = [
  {
    name: 'derp',
    run: (b) => {
      const p = new FrameParser(1 << 16);
      let frames = 0;
      for (let off = 0; off < b.length; ) {
        const n = 1 + rand(Math.max(1, b.length - off));
        p.push(b.subarray(off, off + n), (type, payload) => {
          decodeFrame(type, payload);
          frames++;
        });
        off += n;
      }
      return frames > 0;
    },
  },
  { name: 'disco', run: (b) => (decodeDiscoMessage(b), true) },
  { name: 'stun', run: (b) => (decodeStunMessage(b), true) },
  { name: 'wg', run: (b) => decodeInitiation(b) !== null || decodeResponse(b) !== null || decodeCookieReply(b) !== null },
];

const counts = Object.fromEntries(parsers.map((p) => [p.name, { inputs: 0, accepted: 0, refused: 0 }]));
const deadline = Date.now() + seconds * 1000;
let longestMs = 0;
while (Date.now() < deadline) {
  for (const p of parsers) {
    const list = samples[p.name];
    const input = rand(3) === 0 ? randomBytes(2048) : mutate(list[rand(list.length)]!);
    const c = counts[p.name]!;
    c.inputs++;
    const t0 = performance.now();
    try {
      if (p.run(input)) c.accepted++;
      else c.refused++;
    } catch (e) {
      if (!(e instanceof MeshdError)) {
        console.error(`${p.name}: unexpected ${(e as Error).name}: ${(e as Error).message}\ninput ${Buffer.from(input).toString('hex')}`);
        process.exit(1);
      }
      c.refused++;
    }
    longestMs = Math.max(longestMs, performance.now() - t0);
  }
}
console.log(JSON.stringify({ seed: Number(values.seed), seconds, longestInputMs: Math.round(longestMs * 100) / 100, counts }));
