// The Worker's settings under the benchmark (bench/run.ts, bench/profile.ts): the emulator's
// address and keys, and the limits that would otherwise measure themselves instead of the
// service. A row that measures another setting (logging off, the mark on, the shipped Stripe
// budget) passes it as an override.

export const JWT_SECRET = "bench-secret-bench-secret-bench-secret-01";
export const STRIPE_KEY = "sk_test_bench";
export const WEBHOOK_SECRET = "whsec_bench";
export const SERVICE_TOKEN = "bench-service-token";
export const OPERATOR_TOKEN = "bench-operator-token";

/** `wrangler dev --var`s for a Worker pointed at the emulator on `emulatorPort`. */
export function benchVars(emulatorPort: number, syncSeconds: number, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    STRIPE_SECRET_KEY: STRIPE_KEY,
    STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`,
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    AUTH_JWT_SECRET: JWT_SECRET,
    DEMO_MODE: "false",
    // The baseline has no protections; these measure the credit protocol, so the request limits
    // and the per-object queue bound are out of the way. The governor stays in the path (every
    // Stripe call still asks it for a permit) with a budget the emulator never reaches.
    STRIPE_RATE_LIMIT: "100000",
    CONFIRM_LIMIT_PER_MINUTE: "0",
    CONFIRM_IP_LIMIT_PER_MINUTE: "0",
    OBJECT_QUEUE_LIMIT: "100000",
    // Spending: the seller's token, top-ups for a hundred accounts from one address, and the
    // sync window the debit rows are measured inside (see bench/spend.ts).
    SERVICE_TOKEN,
    OPERATOR_TOKEN,
    TOPUP_LIMIT_PER_MINUTE: "0",
    TOPUP_IP_LIMIT_PER_MINUTE: "0",
    STRIPE_SYNC_SECONDS: String(syncSeconds),
    ...overrides,
  };
}
