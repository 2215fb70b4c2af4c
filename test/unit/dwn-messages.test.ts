/**
 * The lean message layer (src/dwn/messages.ts, src/dwn/cid.ts) against dwn-sdk-js 0.5.2: for
 * the same inputs and the same timestamps, every message is the SDK's, member for member and
 * byte for byte once serialised, and every CID is the SDK's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  Cid,
  DateSort as SdkDateSort,
  ProtocolsConfigure,
  ProtocolsQuery,
  RecordsDelete,
  RecordsQuery,
  RecordsRead,
  RecordsSubscribe,
  RecordsWrite,
  type ProtocolDefinition,
  type RecordsFilter,
  type RecordsWriteTags,
} from '@tbd54566975/dwn-sdk-js';
import { computeCid, computeDagPbCidFromBytes, UNIXFS_CHUNK_SIZE } from '../../src/dwn/cid.js';
import {
  createProtocolsConfigure,
  createProtocolsQuery,
  createRecordsDelete,
  createRecordsQuery,
  createRecordsRead,
  createRecordsSubscribe,
  createRecordsWrite,
  currentTimestamp,
  DateSort,
  formatMicros,
  type RecordsWriteOptions,
} from '../../src/dwn/messages.js';
import { isDwnTimestamp } from '../../src/dwn/verify.js';
import { deviceSigner, type DeviceIdentity } from '../../src/dwn/signer.js';
import { ed25519PublicFromSeed } from '../../src/identity/keys.js';
import { formatDidJwk } from '../../src/identity/did-jwk.js';
import { DATA_FORMAT, PATHS, PROTOCOL_URI, ROLE_MEMBER, ROLE_NODE, protocolDefinition } from '../../src/control/protocol.js';
import { DwnMessageError, MeshdError } from '../../src/errors.js';

function identity(seedByte: number): DeviceIdentity {
  const edSeed = new Uint8Array(32).fill(seedByte);
  return { did: formatDidJwk(ed25519PublicFromSeed(edSeed)), edSeed };
}

const owner = identity(1);
const device = identity(2);
const T0 = '2025-03-04T05:06:07.123456Z';
const T1 = '2025-03-04T05:06:08.000001Z';
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Same members and the same serialisation (member order included). */
function same(lean: unknown, sdk: unknown, what: string): void {
  assert.deepStrictEqual(lean, sdk, what);
  assert.equal(JSON.stringify(lean), JSON.stringify(sdk), `${what}: serialised differently`);
}

/** The lean RecordsWrite and the SDK's for the same options. */
async function bothWrites(o: Omit<RecordsWriteOptions, 'signer'>, signerId: DeviceIdentity = owner): Promise<void> {
  const signer = deviceSigner(signerId);
  const lean = await createRecordsWrite({ ...o, signer });
  const sdk = await RecordsWrite.create({ ...o, signer });
  same(lean, sdk.message, `RecordsWrite ${o.protocolPath ?? ''}`);
  assert.equal(await computeCid(lean.descriptor), await Cid.computeCid(sdk.message.descriptor));
  assert.equal(await computeCid(lean), await Cid.computeCid(sdk.message));
  // and the SDK parses what the lean layer built
  await RecordsWrite.parse(lean);
}

test('RecordsWrite: a new root record, its update, a child, a role, tags, a recipient', async () => {
  const base = { protocol: PROTOCOL_URI, dataFormat: DATA_FORMAT, messageTimestamp: T0, dateCreated: T0 };
  await bothWrites({ ...base, protocolPath: PATHS.network, data: bytes('{"network":1}') });

  const root = await createRecordsWrite({ ...base, protocolPath: PATHS.network, data: bytes('root'), signer: deviceSigner(owner) });
  // an update: recordId and dateCreated of the record, a later messageTimestamp
  await bothWrites({ ...base, protocolPath: PATHS.network, data: bytes('root v2'), recordId: root.recordId, messageTimestamp: T1 });

  // a child with its parent's context, a recipient and tags
  const node = await createRecordsWrite({
    ...base,
    protocolPath: PATHS.node,
    data: bytes('node'),
    parentContextId: root.contextId!,
    recipient: device.did,
    signer: deviceSigner(owner),
  });
  assert.equal(node.contextId, `${root.contextId}/${node.recordId}`);
  await bothWrites({ ...base, protocolPath: PATHS.node, data: bytes('node'), parentContextId: root.contextId!, recipient: device.did });
  const tags: RecordsWriteTags = { kind: 'endpoint', epoch: 3, live: true, addrs: ['10.0.0.1:51820', '[::1]:51820'], ports: [1, 2, 3] };
  const odd = JSON.parse('{"__proto__":"x","constructor":1}') as RecordsWriteTags;
  await bothWrites({ ...base, protocolPath: PATHS.network, data: bytes('odd tags'), tags: odd });
  await bothWrites({ ...base, protocolPath: PATHS.node, data: bytes('tagged'), parentContextId: root.contextId!, recipient: device.did, tags });
  // a grandchild written by the device invoking its role
  await bothWrites(
    { ...base, protocolPath: PATHS.nodeInfo, data: bytes('info'), parentContextId: node.contextId!, protocolRole: ROLE_NODE },
    device,
  );
  // a flat (protocol-less) record, a schema to normalise, published with and without datePublished
  await bothWrites({ dataFormat: 'text/plain', data: bytes('flat'), messageTimestamp: T0, dateCreated: T0 });
  await bothWrites({ ...base, protocolPath: PATHS.network, schema: 'example.com/schemas/x/', data: bytes('s'), published: false });
  // published without a datePublished: the SDK puts the current time there, so does the lean layer
  const pub = await createRecordsWrite({ ...base, protocolPath: PATHS.network, data: bytes('s'), published: true, signer: deviceSigner(owner) });
  assert.ok(isDwnTimestamp(pub.descriptor.datePublished) && pub.descriptor.datePublished! > T1);
  await bothWrites({ ...base, protocolPath: PATHS.network, data: bytes('p'), published: true, datePublished: T1 });
  // protocol URL written without a scheme / with a trailing slash
  await bothWrites({ ...base, protocol: 'meshd.invalid/protocols/wireguard-mesh/v1/', protocolPath: PATHS.network, data: new Uint8Array() });
});

test('RecordsWrite: random options give the SDK message', async () => {
  const paths = [PATHS.network, PATHS.node, PATHS.nodeInfo, PATHS.member, PATHS.relayProposal];
  await fc.assert(
    fc.asyncProperty(
      fc.record(
        {
          path: fc.constantFrom(...paths),
          data: fc.uint8Array({ maxLength: 2048 }),
          micros: fc.integer({ min: 1_500_000_000_000_000, max: 2_500_000_000_000_000 }),
          recipient: fc.boolean(),
          parent: fc.constantFrom(undefined, 'bafyparent', 'bafyroot/bafyparent', '/bafyroot/bafyparent/'),
          role: fc.constantFrom(undefined, ROLE_NODE, ROLE_MEMBER),
          tags: fc.option(fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 3 })), { maxKeys: 4 }), { nil: undefined }),
          update: fc.boolean(),
        },
        { requiredKeys: ['path', 'data', 'micros', 'recipient', 'update'] },
      ),
      async (r) => {
        const ts = formatMicros(r.micros);
        await bothWrites({
          protocol: PROTOCOL_URI,
          protocolPath: r.path,
          data: r.data,
          dataFormat: DATA_FORMAT,
          messageTimestamp: ts,
          dateCreated: r.update ? T0 : ts,
          ...(r.update ? { recordId: 'bafyreigupdatedrecordid' } : {}),
          ...(r.recipient ? { recipient: device.did } : {}),
          ...(r.parent !== undefined ? { parentContextId: r.parent } : {}),
          ...(r.role !== undefined ? { protocolRole: r.role } : {}),
          ...(r.tags !== undefined ? { tags: r.tags as RecordsWriteTags } : {}),
        });
      },
    ),
    { numRuns: 60 },
  );
});

test('RecordsQuery: filters normalised, dateSort, pagination, role', async () => {
  const signer = deviceSigner(device);
  const filters: RecordsFilter[] = [
    { protocol: PROTOCOL_URI, protocolPath: PATHS.node },
    { protocol: 'meshd.invalid/protocols/wireguard-mesh/v1/?q=1#frag', protocolPath: PATHS.endpoint, recipient: device.did },
    { protocol: PROTOCOL_URI, contextId: 'bafyroot/bafynode', parentId: 'bafynode', author: [owner.did, device.did] },
    { schema: 'example.com/schema/', dataFormat: DATA_FORMAT, published: false },
    { protocol: PROTOCOL_URI, tags: { kind: 'endpoint', epoch: { gte: 2, lt: 9 } }, dateCreated: { from: T0, to: undefined } as never },
    { recordId: 'bafyrecord', dataSize: { gt: 10, lte: 100 }, dateUpdated: { from: T0, to: T1 } },
  ];
  const cursor = { messageCid: 'bafyreicursor', value: T0 };
  for (const filter of filters) {
    for (const dateSort of [undefined, DateSort.CreatedAscending, DateSort.CreatedDescending]) {
      for (const pagination of [undefined, { limit: 100 }, { limit: 100, cursor }]) {
        for (const protocolRole of [undefined, ROLE_NODE]) {
          const o = {
            filter,
            ...(dateSort !== undefined ? { dateSort } : {}),
            ...(pagination !== undefined ? { pagination } : {}),
            ...(protocolRole !== undefined ? { protocolRole } : {}),
            messageTimestamp: T0,
          };
          const lean = await createRecordsQuery({ ...o, signer });
          const { dateSort: ds, ...rest } = o;
          const sdk = await RecordsQuery.create({ ...rest, ...(ds !== undefined ? { dateSort: ds as SdkDateSort } : {}), signer });
          same(lean, sdk.message, `RecordsQuery ${JSON.stringify(o)}`);
          // (the SDK's create lets a role query without protocolPath through; its parse, like the DWN, does not)
          if (protocolRole === undefined || filter.protocolPath !== undefined) await RecordsQuery.parse(lean);
        }
      }
    }
  }
  // the caller's filter is left as it was
  const f = { protocol: 'meshd.invalid/x/', protocolPath: PATHS.node, recipient: undefined };
  await createRecordsQuery({ filter: f as Omit<typeof f, 'recipient'>, signer, messageTimestamp: T0 });
  assert.deepEqual(f, { protocol: 'meshd.invalid/x/', protocolPath: PATHS.node, recipient: undefined });
  // the SDK's refusal of published:false sorted by publication date
  await assert.rejects(
    createRecordsQuery({ filter: { published: false }, dateSort: DateSort.PublishedAscending, signer }),
    (e: unknown) => e instanceof DwnMessageError && e.code === 'E_DWN_MESSAGE',
  );
});

test('RecordsRead, RecordsDelete (with and without prune), RecordsSubscribe', async () => {
  const signer = deviceSigner(device);
  for (const protocolRole of [undefined, ROLE_NODE]) {
    const role = protocolRole !== undefined ? { protocolRole } : {};
    const filter = { recordId: 'bafyreirecord' };
    same(await createRecordsRead({ filter, ...role, signer, messageTimestamp: T0 }), (await RecordsRead.create({ filter, ...role, signer, messageTimestamp: T0 })).message, 'RecordsRead');
    const pf = { protocol: 'meshd.invalid/protocols/wireguard-mesh/v1', protocolPath: PATHS.node };
    same(await createRecordsRead({ filter: pf, ...role, signer, messageTimestamp: T1 }), (await RecordsRead.create({ filter: pf, ...role, signer, messageTimestamp: T1 })).message, 'RecordsRead by protocol');
    for (const prune of [undefined, false, true]) {
      const p = prune !== undefined ? { prune } : {};
      same(
        await createRecordsDelete({ recordId: 'bafyreirecord', ...p, ...role, signer, messageTimestamp: T0 }),
        (await RecordsDelete.create({ recordId: 'bafyreirecord', ...p, ...role, signer, messageTimestamp: T0 })).message,
        `RecordsDelete prune=${prune}`,
      );
    }
    const sf: RecordsFilter = { protocol: `${PROTOCOL_URI}/`, protocolPath: PATHS.endpoint, contextId: 'bafyroot' };
    same(await createRecordsSubscribe({ filter: sf, ...role, signer, messageTimestamp: T0 }), (await RecordsSubscribe.create({ filter: sf, ...role, signer, messageTimestamp: T0 })).message, 'RecordsSubscribe');
  }
});

test("ProtocolsConfigure with meshd's protocol definition, ProtocolsQuery", async () => {
  const signer = deviceSigner(owner);
  const definition = protocolDefinition();
  const lean = await createProtocolsConfigure({ definition, signer, messageTimestamp: T0 });
  const sdk = await ProtocolsConfigure.create({ definition: protocolDefinition(), signer, messageTimestamp: T0 });
  same(lean, sdk.message, 'ProtocolsConfigure');
  assert.deepEqual(definition, protocolDefinition(), 'the caller’s definition is left as it was');
  await ProtocolsConfigure.parse(lean);

  // URLs to normalise in the protocol and a type's schema
  const messy = (): ProtocolDefinition => {
    const d = protocolDefinition();
    d.protocol = 'meshd.invalid/protocols/wireguard-mesh/v1/';
    d.types.network = { schema: 'meshd.invalid/schemas/network/', dataFormats: [DATA_FORMAT] };
    return d;
  };
  same(await createProtocolsConfigure({ definition: messy(), signer, messageTimestamp: T1 }), (await ProtocolsConfigure.create({ definition: messy(), signer, messageTimestamp: T1 })).message, 'ProtocolsConfigure normalised');

  for (const protocol of [PROTOCOL_URI, 'meshd.invalid/protocols/wireguard-mesh/v1/']) {
    same(await createProtocolsQuery({ filter: { protocol }, signer, messageTimestamp: T0 }), (await ProtocolsQuery.create({ filter: { protocol }, signer, messageTimestamp: T0 })).message, 'ProtocolsQuery');
  }
  same(await createProtocolsQuery({ signer, messageTimestamp: T0 }), (await ProtocolsQuery.create({ signer, messageTimestamp: T0 })).message, 'ProtocolsQuery without filter');
});

test('computeDagPbCidFromBytes equals the SDK on random data up to 32 KiB', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 32 * 1024 }), async (data) => {
      assert.equal(await computeDagPbCidFromBytes(data), await Cid.computeDagPbCidFromBytes(data));
    }),
    { numRuns: 100 },
  );
  for (const n of [0, 1, UNIXFS_CHUNK_SIZE - 1, UNIXFS_CHUNK_SIZE]) {
    const data = new Uint8Array(n).map((_, i) => i * 7);
    assert.equal(await computeDagPbCidFromBytes(data), await Cid.computeDagPbCidFromBytes(data), `${n} bytes`);
  }
  await assert.rejects(computeDagPbCidFromBytes(new Uint8Array(UNIXFS_CHUNK_SIZE + 1)), (e: unknown) => e instanceof DwnMessageError);
});

test('computeCid equals the SDK on random JSON values', async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), async (v) => {
      let sdk: string | Error;
      try {
        sdk = await Cid.computeCid(v as object);
      } catch (e) {
        sdk = e as Error;
      }
      if (sdk instanceof Error) {
        await assert.rejects(computeCid(v), (e: unknown) => e instanceof MeshdError);
      } else {
        assert.equal(await computeCid(v), sdk);
      }
    }),
    { numRuns: 300 },
  );
  await assert.rejects(computeCid({ a: undefined }), (e: unknown) => e instanceof DwnMessageError);
});

test('timestamps: the DWN format, strictly increasing, on the wall clock', () => {
  const before = Date.now();
  let last = '';
  for (let i = 0; i < 2000; i++) {
    const t = currentTimestamp();
    assert.ok(isDwnTimestamp(t), t);
    assert.ok(t > last, `${t} after ${last}`);
    last = t;
  }
  const at = Date.parse(last);
  assert.ok(at >= before && at <= Date.now() + 5, `${last} is near ${new Date(before).toISOString()}`);
  assert.equal(formatMicros(1_741_064_767_123_456), T0);
  assert.equal(formatMicros(0), '1970-01-01T00:00:00.000000Z');
});
