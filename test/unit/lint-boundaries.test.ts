/**
 * The lint rules that keep the layers apart bite: ESLint's Node API on fixture texts given file
 * names inside the layers (src/engine importing src/control, …) reports no-restricted-imports,
 * the allowed imports stay clean, and the two fixture files that import each other
 * (test/lint/fixtures) are reported by import-x/no-cycle.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

// dist/test/unit → the repository root (where eslint.config.js is)
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Rule ids ESLint reports for `text` as if it were the file at `relPath`. */
async function ruleIds(relPath: string, text: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT, ignore: false });
  const [result] = await eslint.lintText(text, { filePath: join(ROOT, relPath) });
  assert.ok(result);
  return result.messages.map((m) => m.ruleId ?? `fatal: ${m.message}`);
}

describe('lint boundaries', () => {
  const forbidden: Array<[string, string]> = [
    ['src/engine/fixture.ts', "import { x } from '../control/records.js';"],
    ['src/engine/wireguard/fixture.ts', "import { x } from '../../control/records.js';"],
    ['src/engine/magicsock/fixture.ts', "import { x } from '../../daemon/agent.js';"],
    ['src/engine/fixture.ts', "import { x } from '../dwn/client.js';"],
    ['src/engine/fixture.ts', "export { x } from '../cli/program.js';"],
    ['src/control/fixture.ts', "import { x } from '../engine/engine.js';"],
    ['src/control/fixture.ts', "import type { X } from '../daemon/agent.js';"],
    ['src/control/fixture.ts', "import { x } from '../cli/program.js';"],
    ['src/dwn/fixture.ts', "import { x } from '../control/records.js';"],
    ['src/dwn/fixture.ts', "import { x } from '../engine/engine.js';"],
    ['src/dwn/fixture.ts', "import { x } from '../daemon/agent.js';"],
    ['src/dns/fixture.ts', "import type { NetworkMap } from '../control/netmap.js';"],
    ['src/dns/fixture.ts', "import { x } from '../engine/engine.js';"],
    ['src/dns/fixture.ts', "import { x } from '../daemon/agent.js';"],
  ];
  for (const [path, line] of forbidden) {
    test(`${path}: ${line}`, async () => {
      const ids = await ruleIds(path, `${line}\n`);
      assert.ok(ids.includes('no-restricted-imports'), `expected no-restricted-imports, got ${JSON.stringify(ids)}`);
    });
  }

  const allowed: Array<[string, string]> = [
    ['src/engine/fixture.ts', "import { x } from '../util/ip.js';"],
    ['src/engine/wireguard/fixture.ts', "import { x } from '../magicsock/disco.js';"],
    ['src/control/fixture.ts', "import { x } from '../dwn/client.js';"],
    ['src/daemon/fixture.ts', "import { x } from '../engine/engine.js';"],
    ['src/daemon/fixture.ts', "import { x } from '../dns/server.js';"],
    ['src/dns/fixture.ts', "import { x } from '../util/host-port.js';"],
  ];
  for (const [path, line] of allowed) {
    test(`allowed: ${path}: ${line}`, async () => {
      const ids = await ruleIds(path, `${line}\n`);
      assert.ok(!ids.includes('no-restricted-imports'), `unexpected ${JSON.stringify(ids)}`);
    });
  }

  test('an import cycle fails lint (test/lint/fixtures/cycle-a.ts ↔ cycle-b.ts)', async () => {
    const eslint = new ESLint({ cwd: ROOT, ignore: false });
    const results = await eslint.lintFiles(['test/lint/fixtures/cycle-a.ts', 'test/lint/fixtures/cycle-b.ts']);
    for (const r of results) {
      const ids = r.messages.map((m) => m.ruleId);
      assert.ok(ids.includes('import-x/no-cycle'), `${r.filePath}: expected import-x/no-cycle, got ${JSON.stringify(ids)}`);
    }
    // and the same text as a file nobody imports back is clean
    const ids = await ruleIds('test/lint/fixtures/not-a-cycle.ts', "import { b } from './cycle-b.js';\nexport const c = b;\n");
    assert.ok(!ids.includes('import-x/no-cycle'), `unexpected ${JSON.stringify(ids)}`);
  });
});
