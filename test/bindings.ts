// The configuration the service's tests run with (CI has no .dev.vars). STRIPE_API_BASE is
// added by vitest.config.ts once the emulator has a port.

/** Bindings for the Worker under test. */
export const TEST_BINDINGS = {
  STRIPE_SECRET_KEY: "sk_test_emulator",
  STRIPE_WEBHOOK_SECRET: "whsec_test_secret",
  AUTH_JWT_SECRET: "test-secret-for-hs256-tokens-0123456789abcdef",
  ALLOWED_ORIGINS: "https://app.example.com",
  OPERATOR_TOKEN: "op_test_token_0123456789",
  // Short enough that a hung Stripe call fails a test quickly, long enough for a 50 ms emulator.
  STRIPE_TIMEOUT_MS: "800",
} as const;
