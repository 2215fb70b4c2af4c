/**
 * Ed25519 signature checks of the DWN server through node:crypto (OpenSSL) instead of the SDK's
 * pure-JS `@noble/ed25519`, which costs several milliseconds per message. The server verifies
 * the signature of every message it is sent — each read, query and subscription of every node —
 * so in a mesh of N devices an endpoint change costs N − 1 of them: this is most of the DWN's
 * CPU. Used only by the embedded server's process (server-child.ts).
 *
 * dwn-sdk-js looks the algorithm up at call time (`signatureAlgorithms[crv].verify`), and its
 * Ed25519 entry is a plain object in its own module; that module is imported here by its file
 * URL (the package's export map does not name it) — the same URL the SDK's index imports, so
 * the same module instance — and its `verify` replaced. What differs from the SDK is only in the
 * stricter direction: OpenSSL follows RFC 8032 (canonical S and point encodings), where noble
 * accepts ZIP-215's wider set. Anything this function does not handle itself (a key that is not
 * an Ed25519 JWK) goes to the SDK's own code, which raises its own error.
 *
 * If the SDK's layout ever changes, `useNativeEd25519` says why it did not apply and the server
 * runs on the SDK's path: slower, never wrong.
 */
import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';

type Verify = (content: Uint8Array, signature: Uint8Array, publicJwk: { kty?: unknown; crv?: unknown; x?: unknown }) => Promise<boolean>;

/** Public keys seen recently (a DWN serves few signers; bounded all the same). */
const MAX_KEYS = 4096;
/** The file of dwn-sdk-js that holds its Ed25519 entry, relative to the package's ESM index. */
const SDK_ED25519 = './jose/algorithms/signing/ed25519.js';

/** Key cache, newest last; the oldest goes when it is full. */
class KeyCache {
  private readonly keys = new Map<string, KeyObject>();

  get(x: string): KeyObject {
    let k = this.keys.get(x);
    if (k !== undefined) return k;
    k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (this.keys.size >= MAX_KEYS) {
      const oldest = this.keys.keys().next();
      if (!oldest.done) this.keys.delete(oldest.value);
    }
    this.keys.set(x, k);
    return k;
  }
}

/** A `verify` with the SDK's contract, on node:crypto; `fallback` for what it does not take. */
export function nativeEd25519Verify(fallback: Verify): Verify {
  const cache = new KeyCache();
  return async (content, signature, publicJwk) => {
    const x = publicJwk?.x;
    if (publicJwk?.kty !== 'OKP' || publicJwk.crv !== 'Ed25519' || typeof x !== 'string' || Buffer.from(x, 'base64url').length !== 32) {
      return fallback(content, signature, publicJwk);
    }
    if (signature.length !== 64) return false;
    return cryptoVerify(null, content, cache.get(x), signature);
  };
}

/**
 * Replace the SDK's Ed25519 verification in this process. Resolves with null when applied, or
 * with the reason it was not (the server then keeps the SDK's code).
 */
export async function useNativeEd25519(): Promise<string | null> {
  try {
    const index = import.meta.resolve('@tbd54566975/dwn-sdk-js');
    const mod = (await import(new URL(SDK_ED25519, index).href)) as { ed25519?: { verify?: unknown } };
    const entry = mod.ed25519;
    if (typeof entry !== 'object' || entry === null || typeof entry.verify !== 'function') return 'dwn-sdk-js has no Ed25519 entry where expected';
    entry.verify = nativeEd25519Verify(entry.verify as Verify);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
