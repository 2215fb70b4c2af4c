/**
 * The keys one device reads records with: its own X25519 key (records it wrote, deliveries to
 * it) and the network keys of the epochs delivered to it. The owner derives network keys from
 * its root instead of receiving them.
 */
import { deriveNetworkKey, deviceKid, epochOfKid, networkKid, x25519PublicOf, type JweRecipient, type KeyLookup } from './crypto.js';

export class Keyring {
  private readonly selfPrivate: Uint8Array;
  readonly selfPublic: Uint8Array;
  readonly selfKid: string;
  private readonly networkKeys = new Map<number, Uint8Array>();
  /** For the owner: derive any epoch from the root key. */
  private readonly derive: ((epoch: number) => Uint8Array) | undefined;

  constructor(self: { xPrivate: Uint8Array; xPublic: Uint8Array }, derive?: (epoch: number) => Uint8Array) {
    this.selfPrivate = self.xPrivate;
    this.selfPublic = self.xPublic;
    this.selfKid = deviceKid(self.xPublic);
    this.derive = derive;
  }

  static forOwner(self: { xPrivate: Uint8Array; xPublic: Uint8Array }, networkId: string): Keyring {
    return new Keyring(self, (epoch) => deriveNetworkKey(self.xPrivate, networkId, epoch));
  }

  get isOwner(): boolean {
    return this.derive !== undefined;
  }

  addNetworkKey(epoch: number, key: Uint8Array): void {
    this.networkKeys.set(epoch, key);
  }

  networkKey(epoch: number): Uint8Array | undefined {
    let k = this.networkKeys.get(epoch);
    if (!k && this.derive) {
      k = this.derive(epoch);
      this.networkKeys.set(epoch, k);
    }
    return k;
  }

  hasEpoch(epoch: number): boolean {
    return this.derive !== undefined || this.networkKeys.has(epoch);
  }

  /** Epochs whose keys were delivered (the owner's derived keys are not listed). */
  knownEpochs(): number[] {
    return [...this.networkKeys.keys()].sort((a, b) => a - b);
  }

  readonly lookup: KeyLookup = (kid) => {
    if (kid === this.selfKid) return this.selfPrivate;
    const e = epochOfKid(kid);
    return e === undefined ? undefined : this.networkKey(e);
  };

  /** Recipients for a member-readable record: the network key of `epoch` and the author. */
  recipientsFor(epoch: number): JweRecipient[] {
    const k = this.networkKey(epoch);
    if (!k) throw new RangeError(`no network key for epoch ${epoch}`);
    return [
      { kid: networkKid(epoch), publicKey: x25519PublicOf(k) },
      { kid: this.selfKid, publicKey: this.selfPublic },
    ];
  }

  /** Recipients for a record only its author and one device may read. */
  privateRecipients(other: Uint8Array): JweRecipient[] {
    const r: JweRecipient[] = [{ kid: this.selfKid, publicKey: this.selfPublic }];
    const kid = deviceKid(other);
    if (kid !== this.selfKid) r.push({ kid, publicKey: other });
    return r;
  }
}
