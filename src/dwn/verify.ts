/**
 * Client-side checks of records a DWN hands back: the message is well formed, its signature
 * verifies against the author's did:jwk, and the data is the data the author signed. A DWN
 * operator (or anyone in between) can then drop records but not forge or alter them.
 */
import { authenticate, Cid, Message, RecordsWrite, type RecordsWriteMessage } from '@tbd54566975/dwn-sdk-js';
import { DidJwk, DidResolverCacheNoop, UniversalResolver } from '@web5/dids';
import { MeshdError } from '../errors.js';

/** Authors are did:jwk: resolved offline, nothing cached (the DID carries the key). */
const JWK_RESOLVER = new UniversalResolver({ didResolvers: [DidJwk], cache: DidResolverCacheNoop });

/** Verify a RecordsWrite's structure and signature; returns the author DID. Throws E_RECORD_INVALID. */
export async function verifyRecordsWriteMessage(message: RecordsWriteMessage): Promise<string> {
  try {
    await RecordsWrite.parse(message);
    await authenticate(message.authorization, JWK_RESOLVER);
  } catch (e) {
    throw new MeshdError('E_RECORD_INVALID', `record ${String(message?.recordId ?? '?')} has an invalid signature or structure: ${(e as Error).message}`);
  }
  const author = Message.getAuthor(message);
  if (!author) throw new MeshdError('E_RECORD_INVALID', `record ${message.recordId} has no author`);
  return author;
}

/** Check that `data` is the data the message's author signed (CID and size). */
export async function verifyRecordData(message: RecordsWriteMessage, data: Uint8Array): Promise<void> {
  const cid = await Cid.computeDagPbCidFromBytes(data);
  if (cid !== message.descriptor.dataCid || data.length !== message.descriptor.dataSize) {
    throw new MeshdError('E_RECORD_INVALID', `record ${message.recordId} data does not match what its author signed`);
  }
}
