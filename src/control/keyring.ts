/**
 * The keys one device reads and writes records with: its own X25519 key (records it wrote,
 * deliveries to it) and the network keys of the epochs delivered to it. The owner derives
 * network keys from its root instead of receiving them. Network keys are found by their opaque
 * kid (a hash of the public key), so a reader learns a record's epoch only by holding its key.
 */
import { deriveNetworkKey, directKid, networkKid, x25519PublicOf, type JweRecipient, type ReaderKeys } from './crypto.js';

interface NetworkKey {
  epoch: number;
  key: Uint8Array;
  publicKey: Uint8Array;
  kid: string;
}

/** How many epochs past the highest known the owner derives when it meets an unknown kid. */
const OWNER_LOOKAHEAD = 4;
/** Epochs a keyring holds at most (older ones are dropped first). */
const MAX_EPOCHS = 64;

export class Keyring implements ReaderKeys {
  readonly selfPrivate: Uint8Array;
  readonly selfPublic: Uint8Array;
  private readonly byEpoch = new Map<number, NetworkKey>();
  private readonly byKid = new Map<string, NetworkKey>();
  /** For the owner: derive any epoch from the root key. */
  private readonly derive: ((epoch: number) => Uint8Array) | undefined;
  /** The current epoch as far as this keyring was told (bounds the owner's derivations). */
  private current = 0;

  constructor(self: { xPrivate: Uint8Array; xPublic: Uint8Array }, derive?: (epoch: number) => Uint8Array) {
    this.selfPrivate = self.xPrivate;
    this.selfPublic = self.xPublic;
    this.derive = derive;
  }

  static forOwner(self: { xPrivate: Uint8Array; xPublic: Uint8Array }, networkId: string): Keyring {
    return new Keyring(self, (epoch) => deriveNetworkKey(self.xPrivate, networkId, epoch));
  }

  get isOwner(): boolean {
    return this.derive !== undefined;
  }

  addNetworkKey(epoch: number, key: Uint8Array): void {
    if (this.byEpoch.has(epoch)) return;
    const publicKey = x25519PublicOf(key);
    const k: NetworkKey = { epoch, key, publicKey, kid: networkKid(publicKey) };
    this.byEpoch.set(epoch, k);
    this.byKid.set(k.kid, k);
    if (this.byEpoch.size > MAX_EPOCHS) {
      const oldest = Math.min(...this.byEpoch.keys());
      const o = this.byEpoch.get(oldest)!;
      this.byEpoch.delete(oldest);
      this.byKid.delete(o.kid);
    }
  }

  private entry(epoch: number): NetworkKey | undefined {
    if (!this.byEpoch.has(epoch) && this.derive) this.addNetworkKey(epoch, this.derive(epoch));
    return this.byEpoch.get(epoch);
  }

  networkKey(epoch: number): Uint8Array | undefined {
    return this.entry(epoch)?.key;
  }

  hasEpoch(epoch: number): boolean {
    return this.derive !== undefined || this.byEpoch.has(epoch);
  }

  /** The network's current epoch is known to be at least `epoch`. */
  noteEpoch(epoch: number): void {
    if (epoch > this.current) this.current = epoch;
  }

  /** The highest epoch whose key this keyring holds (-1: none). */
  highestEpoch(): number {
    return this.byEpoch.size === 0 ? -1 : Math.max(...this.byEpoch.keys());
  }

  network(kid: string): { epoch: number; key: Uint8Array } | undefined {
    let k = this.byKid.get(kid);
    if (!k && this.derive) {
      // the owner meets a kid of an epoch it has not derived yet: derive up to a few ahead
      const top = this.current + OWNER_LOOKAHEAD;
      for (let e = Math.max(0, this.current - MAX_EPOCHS + OWNER_LOOKAHEAD + 1); e <= top && !k; e++) {
        this.entry(e);
        k = this.byKid.get(kid);
      }
    }
    return k ? { epoch: k.epoch, key: k.key } : undefined;
  }

  /** Recipients for a member-readable record: the network key of `epoch` and the author. */
  recipientsFor(epoch: number): JweRecipient[] {
    const k = this.entry(epoch);
    if (!k) throw new RangeError(`no network key for epoch ${epoch}`);
    return [
      { kid: k.kid, publicKey: k.publicKey },
      { kid: directKid(), publicKey: this.selfPublic },
    ];
  }

  /** Recipients for a record only its author (and `other`, when given) may read. */
  privateRecipients(other?: Uint8Array): JweRecipient[] {
    const r: JweRecipient[] = [{ kid: directKid(), publicKey: this.selfPublic }];
    if (other && !Buffer.from(other).equals(Buffer.from(this.selfPublic))) r.push({ kid: directKid(), publicKey: other });
    return r;
  }
}
