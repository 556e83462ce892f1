// The configuration the service's tests run with (CI has no .dev.vars). STRIPE_API_BASE is
// added by vitest.config.ts once the emulator has a port.

/** The seller's event-signing secrets in the tests (Standard Webhooks: whsec_ and base64 of 24 bytes). */
export const EVENTS_SECRET = "whsec_dGVzdC1ldmVudHMtc2VjcmV0LTAxMjM0NTY3";
export const EVENTS_SECRET_ROTATED = "whsec_cm90YXRlZC1ldmVudHMtc2VjcmV0LWFiY2RlZg==";

/**
 * How long a `hang` fault keeps a Stripe call unanswered before the emulators the workerd
 * projects run (test/global-setup.ts) drop its connection. To the service that is a call that
 * never answered, as its own timeout ends one: the SDK retries it under the same key and then
 * reports a connection error, the outcome unknown. It is far shorter than STRIPE_TIMEOUT_MS, so
 * that a test holding a call this way waits for this, not for the timeout (the SDK's three
 * tries of every hung call are most of the suite's waiting); test/stripe-gateway.test.ts shows
 * the timeout itself ending a call that never answers.
 */
export const STRIPE_HANG_MS = 800;

/** Bindings for the Worker under test. */
export const TEST_BINDINGS = {
  STRIPE_SECRET_KEY: "sk_test_emulator",
  STRIPE_WEBHOOK_SECRET: "whsec_test_secret",
  AUTH_JWT_SECRET: "test-secret-for-hs256-tokens-0123456789abcdef",
  ALLOWED_ORIGINS: "https://app.example.com",
  OPERATOR_TOKEN: "op_test_token_0123456789",
  // The seller's backend: two values, as during a rotation; both are accepted.
  SERVICE_TOKEN: "svc_test_token_0123456789,svc_test_token_rotated_abcdef",
  // Far above what a healthy call takes when the machine is busy: the timeout counts from the
  // moment the SDK asks, so it includes the wait for the governor's permit, which a burst of
  // calls makes hundreds of milliseconds, and a core shared with the other test files and
  // workerd's own work. A call that timed out would be retried and counted twice.
  STRIPE_TIMEOUT_MS: "5000",
  // The governor and the request limits are on, but far above what these tests send; the
  // limits project (LIMITS_BINDINGS) sets them where the abuse tests can reach them.
  STRIPE_RATE_LIMIT: "1000",
  CONFIRM_LIMIT_PER_MINUTE: "1000000",
  CONFIRM_IP_LIMIT_PER_MINUTE: "1000000",
  TOPUP_LIMIT_PER_MINUTE: "1000000",
  TOPUP_IP_LIMIT_PER_MINUTE: "1000000",
  // Two signing secrets, as during a rotation: every delivery carries a signature by each.
  EVENTS_SECRET: `${EVENTS_SECRET} ${EVENTS_SECRET_ROTATED}`,
  // Retries at once and a short per-delivery timeout, so the delivery tests take seconds (the
  // production schedule is tested as a schedule, in test/events/delivery.test.ts).
  EVENTS_RETRY_SECONDS: "0",
  EVENTS_TIMEOUT_MS: "1000",
} as const;

/** Bindings for test/limits: Stripe's test-mode budget, and limits the abuse tests can hit. */
export const LIMITS_BINDINGS = {
  ...TEST_BINDINGS,
  // Under the emulator's 25/s by the governor's burst of 2, as the default (20) is under Stripe's.
  STRIPE_RATE_LIMIT: "23",
  // Queued calls wait their turn instead of timing out.
  STRIPE_TIMEOUT_MS: "60000",
  CONFIRM_LIMIT_PER_MINUTE: "100",
  CONFIRM_IP_LIMIT_PER_MINUTE: "400",
  OBJECT_QUEUE_LIMIT: "20",
} as const;
