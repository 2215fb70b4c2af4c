import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

/** `no-restricted-imports` patterns for relative imports that reach into one of `dirs` under src/. */
function forbid(dirs, why) {
  return {
    'no-restricted-imports': [
      'error',
      {
        patterns: dirs.map((d) => ({
          // any number of ../ then the folder: covers ../control/x.js from src/engine and ../../control/x.js deeper down
          regex: `^(\\.\\./)+${d}(/|$)`,
          message: `${why} may not import from src/${d}.`,
        })),
      },
    ],
  };
}

export default tseslint.config(
  // test/lint/fixtures break the rules on purpose (test/unit/lint-boundaries.test.ts lints them)
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', 'test/lint/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // import cycles fail lint; `import type` is erased at compile time and so never part of one
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/extensions': importX.flatConfigs.typescript.settings['import-x/extensions'],
      'import-x/parsers': importX.flatConfigs.typescript.settings['import-x/parsers'],
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  // the dashboard's page (served as it is by src/daemon/ui-server.ts): browser code
  {
    files: ['src/ui/**/*.js'],
    languageOptions: { globals: { ...globals.browser }, sourceType: 'module' },
    rules: forbid(['cli', 'control', 'daemon', 'dns', 'dwn', 'engine', 'identity', 'lab', 'util', 'demo'], 'The dashboard page (src/ui, browser code)'),
  },
  // layer boundaries (each folder's README.md says what it owns and may import)
  { files: ['src/engine/**/*.ts'], rules: forbid(['control', 'dwn', 'daemon', 'cli'], 'The data plane (src/engine)') },
  { files: ['src/control/**/*.ts'], rules: forbid(['engine', 'daemon', 'cli'], 'The control plane (src/control)') },
  { files: ['src/dwn/**/*.ts'], rules: forbid(['control', 'engine', 'daemon', 'cli'], 'The DWN layer (src/dwn)') },
  { files: ['src/dns/**/*.ts'], rules: forbid(['control', 'engine', 'dwn', 'daemon', 'cli', 'identity'], 'Mesh DNS (src/dns)') },
  {
    // dwn-sdk-js costs ~58 MB a process: only the embedded DWN server child loads it. Everything
    // else builds messages with src/dwn/messages.ts and may import only the SDK's types.
    files: ['src/**/*.ts'],
    ignores: ['src/dwn/server.ts', 'src/dwn/server-child.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@tbd54566975/dwn-sdk-js',
              allowTypeImports: true,
              message: 'Use src/dwn/messages.ts and src/dwn/cid.ts; only `import type` from the SDK outside the DWN server child.',
            },
          ],
          patterns: [{ group: ['@tbd54566975/dwn-sdk-js/*'], allowTypeImports: true, message: 'Only `import type` from the SDK outside the DWN server child.' }],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "ImportExpression[source.value=/^@tbd54566975\\/dwn-sdk-js/]",
          message: 'The SDK is loaded only by the DWN server child.',
        },
      ],
    },
  },
);
