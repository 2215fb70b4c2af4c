/**
 * DID resolution. did:jwk is resolved offline by our own parser; did:web and did:dht go
 * through @web5/dids with a timeout. A peer's DID is resolved only to find its DWN endpoint.
 * @web5/dids (~20 MB a process with its DID-method and cache dependencies) is loaded on the
 * first resolution only, so that importing this module (the daemon does) costs nothing.
 */
import { DidError } from '../errors.js';
import { abbreviate, parseDidJwk } from './did-jwk.js';

export interface ResolvedDid {
  did: string;
  /** The DID document as returned by the resolver. */
  document: Record<string, unknown>;
  /** serviceEndpoint URLs of DecentralizedWebNode services, in document order. */
  dwnEndpoints: string[];
}

const METHODS = new Set(['jwk', 'web', 'dht', 'key']);

export function didMethod(did: string): string {
  const m = /^did:([a-z0-9]+):/.exec(did);
  if (!m) throw new DidError('E_DID_INVALID', `not a DID: ${abbreviate(did)}`);
  return m[1]!;
}

function dwnEndpointsOf(doc: Record<string, unknown>): string[] {
  const services = Array.isArray(doc.service) ? (doc.service as Array<Record<string, unknown>>) : [];
  const out: string[] = [];
  for (const s of services) {
    if (s.type !== 'DecentralizedWebNode') continue;
    const ep = s.serviceEndpoint;
    for (const e of Array.isArray(ep) ? ep : [ep]) if (typeof e === 'string') out.push(e);
  }
  return out;
}

export async function resolveDid(did: string, opts: { timeoutMs?: number } = {}): Promise<ResolvedDid> {
  const method = didMethod(did);
  if (!METHODS.has(method)) throw new DidError('E_DID_INVALID', `unsupported DID method did:${method}`);
  if (method === 'jwk') parseDidJwk(did); // validate strictly first: clear errors, no library quirks
  const { DidDht, DidJwk, DidKey, DidResolverCacheNoop, DidWeb, UniversalResolver } = await import('@web5/dids');
  const resolver = new UniversalResolver({ didResolvers: [DidJwk, DidWeb, DidDht, DidKey], cache: DidResolverCacheNoop });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DidError('E_DID_RESOLVE', `resolving ${abbreviate(did)} timed out after ${timeoutMs} ms`, { hint: 'check the network connection' })),
      timeoutMs,
    );
  });
  try {
    const result = await Promise.race([resolver.resolve(did), timeout]);
    const err = result.didResolutionMetadata?.error;
    if (err || !result.didDocument) {
      throw new DidError('E_DID_RESOLVE', `cannot resolve ${abbreviate(did)}: ${err ?? 'no document'}`, {
        hint: method === 'jwk' ? undefined : 'check the network connection and the DID',
      });
    }
    const document = result.didDocument as unknown as Record<string, unknown>;
    return { did, document, dwnEndpoints: dwnEndpointsOf(document) };
  } catch (e) {
    if (e instanceof DidError) throw e;
    throw new DidError('E_DID_RESOLVE', `cannot resolve ${abbreviate(did)}: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}
