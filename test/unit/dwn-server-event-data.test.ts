import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withEventData } from '../../src/dwn/server-event-data.js';

test('event data: the data remembered for the very message object is added; other events go out as they came', () => {
  const dataOf = new WeakMap<object, string>();
  const message = { recordId: 'r', descriptor: { dataCid: 'c' } };
  const twin = { recordId: 'r', descriptor: { dataCid: 'c' } }; // equal, but not the message stored
  dataOf.set(message, 'ZGF0YQ');
  const event = { message, initialWrite: undefined };
  const out = withEventData(event, dataOf) as { message: { encodedData?: string; recordId: string }; initialWrite: unknown };
  assert.equal(out.message.encodedData, 'ZGF0YQ');
  assert.equal(out.message.recordId, 'r');
  assert.equal('encodedData' in message, false, 'the SDK\'s own message object is left as it was');
  assert.equal(withEventData({ message: twin }, dataOf).message, twin);
  const carried = { recordId: 'r', encodedData: 'b3duZGF0YQ' };
  dataOf.set(carried, 'ZGF0YQ');
  assert.equal((withEventData({ message: carried }, dataOf).message as { encodedData: string }).encodedData, 'b3duZGF0YQ', 'data already there is kept');
  const del = { message: { descriptor: { method: 'Delete' } } };
  assert.equal(withEventData(del, dataOf), del);
  assert.equal(withEventData({}, dataOf).message, undefined);
});
