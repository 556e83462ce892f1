// The Worker's bindings: wrangler.toml declares the objects and non-secret vars; secrets come
// from `wrangler secret put` in production and .dev.vars locally. Names are the design's.

import type { AccountObject } from "./objects/account.js";
import type { PaymentIntentObject } from "./objects/payment-intent.js";
import type { StripeGovernor } from "./objects/governor.js";
import type { RequestLimiter } from "./objects/limiter.js";
import type { CreditRegistry } from "./objects/registry.js";

/** Everything the Worker and its objects read from the environment. */
export interface Env {
  PAYMENT_INTENTS: DurableObjectNamespace<PaymentIntentObject>;
  ACCOUNTS: DurableObjectNamespace<AccountObject>;
  CREDIT_REGISTRY: DurableObjectNamespace<CreditRegistry>;
  STRIPE_GOVERNOR: DurableObjectNamespace<StripeGovernor>;
  LIMITER: DurableObjectNamespace<RequestLimiter>;

  STRIPE_SECRET_KEY: string;
  /** Default https://api.stripe.com; the local emulator in development and tests. */
  STRIPE_API_BASE?: string;
  STRIPE_WEBHOOK_SECRET?: string;
  /** HS256 secret for browser tokens. */
  AUTH_JWT_SECRET?: string;
  /** An identity provider's JWKS; requires AUTH_ISSUER and AUTH_AUDIENCE. */
  AUTH_JWKS_URL?: string;
  AUTH_ISSUER?: string;
  AUTH_AUDIENCE?: string;
  /** Comma-separated origins allowed by CORS. */
  ALLOWED_ORIGINS?: string;
  /** "true" turns on the demo page's sign-in and test-card payment (local development only). */
  DEMO_MODE?: string;
  /** pk_… for Stripe.js on the page; without it the page pays with the emulator's test card. */
  STRIPE_PUBLISHABLE_KEY?: string;
  /** Bearer token for the operator routes. */
  OPERATOR_TOKEN?: string;
  /**
   * Bearer token(s) of the seller's backend for the server-to-server routes under /v1/accounts.
   * Comma-separated: every value is accepted, so a new token can be rolled out before the old one
   * is removed. Unset or empty: every /v1/accounts request is refused (401).
   */
  SERVICE_TOKEN?: string;
  /** Per-request Stripe timeout (default 10000 ms). */
  STRIPE_TIMEOUT_MS?: string;
  /** Retries the Stripe SDK makes with the same Idempotency-Key (default 2). */
  STRIPE_MAX_NETWORK_RETRIES?: string;
  /** "false" stops refunds and disputes from taking credit back (default on). */
  REVERSE_ON_REFUND?: string;
  /** Top-up limits in the currency's minor unit, and the accepted currencies (comma-separated). */
  TOPUP_MIN?: string;
  TOPUP_MAX?: string;
  TOPUP_CURRENCIES?: string;
  /**
   * Admits top-ups made by the server this one replaces, which lack our marker: `key=value` of
   * metadata it put on them, and a cutoff (unix seconds or ISO date) they were created before.
   * Both or neither (default: off); a malformed value admits nothing and is logged.
   */
  LEGACY_TOPUP_METADATA?: string;
  LEGACY_TOPUP_CREATED_BEFORE?: string;
  /** Stripe calls per second for the whole service (default 20, under Stripe's test-mode 25; 0 = no governor). */
  STRIPE_RATE_LIMIT?: string;
  /** Confirms per minute per account (default 120) and per client address (default 600); 0 = no limit. */
  CONFIRM_LIMIT_PER_MINUTE?: string;
  CONFIRM_IP_LIMIT_PER_MINUTE?: string;
  /** Top-ups created per minute per account (default 20) and per client address (default 60). */
  TOPUP_LIMIT_PER_MINUTE?: string;
  TOPUP_IP_LIMIT_PER_MINUTE?: string;
  /** Seconds between the first unsynced debit and its write to Stripe's customer balance (default 60; 0 = each debit at once). */
  STRIPE_SYNC_SECONDS?: string;
  /** Browsers of one customer that one PaymentIntent object lets wait on its attempt in flight before answering 429 (default 100). */
  OBJECT_QUEUE_LIMIT?: string;
}

/** A positive integer setting, or `fallback` when unset or malformed. */
export function intSetting(value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  return Number.isInteger(n) && n >= 0 ? n : fallback;
}

/** The default currency for an account that has none yet: the first accepted top-up currency. */
export function defaultCurrency(env: Env): string {
  return (env.TOPUP_CURRENCIES ?? "usd").split(",")[0]?.trim().toLowerCase() || "usd";
}

/** Top-up limits from configuration. */
export function topUpLimits(env: Env): { min: number; max: number; currencies: string[] } {
  return {
    min: intSetting(env.TOPUP_MIN, 500),
    max: intSetting(env.TOPUP_MAX, 100_000),
    currencies: (env.TOPUP_CURRENCIES ?? "usd")
      .split(",")
      .map((c) => c.trim().toLowerCase())
      .filter((c) => /^[a-z]{3}$/.test(c)),
  };
}
