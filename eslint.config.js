import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**'] },
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
