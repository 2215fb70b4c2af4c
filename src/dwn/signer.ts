/**
 * The device's Ed25519 key as a dwn-sdk-js `Signer`: every message this device sends is signed
 * with `kid` = `<did>#0`, the verification method a did:jwk document names.
 */
import type { Signer } from '@tbd54566975/dwn-sdk-js';
import { ed25519Sign } from '../identity/keys.js';

export interface DeviceIdentity {
  /** The device's DID (did:jwk, canonical form). */
  readonly did: string;
  /** 32-byte Ed25519 seed. */
  readonly edSeed: Uint8Array;
}

export function deviceSigner(id: DeviceIdentity): Signer {
  return {
    keyId: `${id.did}#0`,
    algorithm: 'EdDSA',
    sign: async (content: Uint8Array) => ed25519Sign(id.edSeed, content),
  };
}
