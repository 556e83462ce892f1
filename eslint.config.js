// Lint for the whole tree, type-aware: a floating promise or a promise passed where a callback
// is expected is how an "await Stripe, then write" step silently runs out of order, so those two
// rules are errors. One project per tsconfig (src in workerd, tests, Node-side tools).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/", ".wrangler/", "bench/results/", "test-results/", "public/", "src/worker-configuration.d.ts"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        project: ["./tsconfig.json", "./test/tsconfig.json", "./test/emulator/tsconfig.json"],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      // A Durable Object's RPC methods are async by contract, whether or not they await.
      "@typescript-eslint/require-await": "off",
      // `_name` marks a value left out on purpose (a destructured field dropped, an unused parameter).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true }],
      // `interface ProvidedEnv extends Env {}` is how cloudflare:test's env gets its type.
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
    },
  },
  { files: ["eslint.config.js"], ...tseslint.configs.disableTypeChecked },
);
