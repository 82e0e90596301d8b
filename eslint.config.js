// typescript-eslint's recommended rules over src/, test/, bench/ and scripts/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly',
        setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', fetch: 'readonly',
        AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', queueMicrotask: 'readonly',
        structuredClone: 'readonly', Response: 'readonly', Request: 'readonly', Headers: 'readonly', performance: 'readonly' },
    },
    rules: {
      // Parsers and validators here match control characters on purpose (names, paths, ANSI output).
      'no-control-regex': 'off',
      // AppError carries what went wrong in its code and detail; a wrapped cause is logged where it is caught.
      'preserve-caught-error': 'off',
      // `self` is how the async generators in lib/tail.ts reach their object.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // Untyped input (TOML, JSON from upstreams) is narrowed where it is used; new code should prefer unknown.
      '@typescript-eslint/no-explicit-any': 'warn',
      // Unused names are an error, except deliberately ignored ones (`_x`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
