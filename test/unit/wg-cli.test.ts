/** `meshd engine` argument and config errors (the command itself runs in test/lab/wg-interop.test.ts). */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootProgram, reportError, type Io } from '../../src/cli/program.js';
import { registerEngine } from '../../src/cli/commands/engine.js';
import { tempDir } from '../helpers/cli.js';

async function run(args: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const io: Io = { stdout: () => {}, stderr: (s) => void (err += s + '\n') };
  const program = createRootProgram(io);
  registerEngine(program, io);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { code: 0, err };
  } catch (e) {
    return { code: reportError(e, io), err };
  }
}

describe('meshd engine (CLI errors)', () => {
  test('--config is required', async () => {
    const r = await run(['engine']);
    assert.equal(r.code, 2);
    assert.match(r.err, /--config FILE is required/);
  });

  test('a missing or malformed config is reported with its line, before any device is made', async (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const missing = await run(['engine', '--config', join(dir.path, 'nope.conf')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /cannot read/);
    const bad = join(dir.path, 'bad.conf');
    writeFileSync(bad, '[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nListenPort = banana\n');
    const r = await run(['engine', '--config', bad]);
    assert.equal(r.code, 1);
    assert.match(r.err, /config line 3: ListenPort must be a number/);
  });
});
