// Every setting the service reads, parsed by one zod schema, once per `env` object. The names
// are the design's (wrangler.toml [vars], secrets, .dev.vars). A value that does not parse is an
// error naming the setting, never a silent default: a typo in TOPUP_MAX or REVERSE_ON_REFUND
// must stop the service, not change what it does with money. Unset or empty is the default.
//
// Parsed per `env` object (a WeakMap), not per isolate: tests and `wrangler dev --var` hand in
// other envs, and each gets its own settings.

import { z } from "zod";
import { parseLegacyTopUps, type LegacyTopUps } from "./credit/top-up.js";
import { LOG_LEVELS, setLogLevel } from "./log.js";

/** A setting that is set to a value the schema refuses; the message names the setting. */
export class SettingsError extends Error {
  override name = "SettingsError";
}

const PREFIX = "Invalid settings:";

/**
 * True for a SettingsError, also one thrown inside a Durable Object: over RPC it arrives as a
 * plain Error (the class does not cross), with its message, which `parseSettings` starts with
 * PREFIX.
 */
export function isSettingsError(err: unknown): boolean {
  return err instanceof SettingsError || (err instanceof Error && err.message.startsWith(PREFIX));
}

/** Unset and "" (wrangler.toml writes empty vars as "") both mean "the default". */
const blank = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

const whole = (fallback: number) =>
  z.preprocess(
    blank,
    z
      .string()
      .trim()
      .regex(/^\d+$/, "must be a whole number, 0 or more")
      .transform(Number)
      .optional()
      .transform((n) => n ?? fallback),
  );

const flag = (fallback: boolean) =>
  z.preprocess(
    blank,
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(["true", "false"], { error: 'must be "true" or "false"' }))
      .transform((v) => v === "true")
      .optional()
      .transform((v) => v ?? fallback),
  );

/** A value that must match `pattern`, trimmed; unset if blank. */
const matching = (pattern: RegExp, message: string) => z.preprocess(blank, z.string().trim().regex(pattern, message).optional());

/** Comma-separated values, blanks dropped. */
const list = z.preprocess(
  blank,
  z
    .string()
    .optional()
    .transform((s) =>
      (s ?? "")
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== ""),
    ),
);

const text = z.preprocess(blank, z.string().trim().optional());
/**
 * A host of letters, digits, dots and hyphens, or an IPv6 literal. URL parsing lets through
 * characters such as ";" and ",", which would end a directive or a policy where STRIPE_JS_URL's
 * origin is written into the page's Content-Security-Policy (src/security.ts).
 */
const HOSTNAME = /^(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+\.?$|^\[[0-9A-Fa-f:.]+\]$/;
const url = (fallback?: string) =>
  z.preprocess(
    blank,
    z
      .url({ protocol: /^https?$/, hostname: HOSTNAME, error: "must be an http(s) URL" })
      .optional()
      .transform((u) => u ?? fallback),
  );

/**
 * Standard Webhooks signing secrets (`whsec_` + base64 of 24 to 64 random bytes), separated by
 * spaces or commas: several while rotating, and every delivery is signed with each.
 */
const WHSEC = /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/;
const eventSecrets = z.preprocess(
  blank,
  z
    .string()
    .optional()
    .transform((s) => (s ?? "").split(/[\s,]+/).filter((v) => v !== ""))
    .pipe(z.array(z.string().regex(WHSEC, "must be whsec_ secrets (base64), separated by spaces or commas"))),
);

const currencies = z.preprocess(
  blank,
  z
    .string()
    .optional()
    .transform((s) =>
      (s ?? "usd")
        .split(",")
        .map((c) => c.trim().toLowerCase())
        .filter((c) => c !== ""),
    )
    .pipe(z.array(z.string().regex(/^[a-z]{3}$/, "must be three-letter ISO currency codes, comma-separated")).min(1, "must name at least one currency")),
);

const Schema = z
  .object({
    STRIPE_SECRET_KEY: z.string({ error: "must be set (sk_test_… or sk_live_…)" }).trim().min(1, "must be set (sk_test_… or sk_live_…)"),
    STRIPE_API_BASE: url("https://api.stripe.com"),
    /** Several (comma-separated) while an endpoint secret is being rolled. */
    STRIPE_WEBHOOK_SECRET: list,
    /** Published to every browser (GET /billing/config): only a publishable key, never a secret one put here by mistake. */
    STRIPE_PUBLISHABLE_KEY: matching(/^pk_(test|live)_[A-Za-z0-9_]+$/, "must be a publishable key (pk_test_… or pk_live_…)"),
    /** Where the page loads Stripe.js from: Stripe's own, or the emulator's stand-in locally. */
    STRIPE_JS_URL: url("https://js.stripe.com/v3/"),
    STRIPE_TIMEOUT_MS: whole(10_000),
    STRIPE_MAX_NETWORK_RETRIES: whole(2),
    STRIPE_RATE_LIMIT: whole(20),
    STRIPE_SYNC_SECONDS: whole(60),
    AUTH_JWT_SECRET: text,
    AUTH_JWKS_URL: url(),
    AUTH_ISSUER: text,
    AUTH_AUDIENCE: text,
    ALLOWED_ORIGINS: list,
    DEMO_MODE: flag(false),
    OPERATOR_TOKEN: text,
    SERVICE_TOKEN: list,
    REVERSE_ON_REFUND: flag(true),
    TOPUP_MIN: whole(500),
    TOPUP_MAX: whole(100_000),
    TOPUP_CURRENCIES: currencies,
    LEGACY_TOPUP_METADATA: text,
    LEGACY_TOPUP_CREATED_BEFORE: text,
    CONFIRM_LIMIT_PER_MINUTE: whole(120),
    CONFIRM_IP_LIMIT_PER_MINUTE: whole(600),
    TOPUP_LIMIT_PER_MINUTE: whole(20),
    TOPUP_IP_LIMIT_PER_MINUTE: whole(60),
    OBJECT_QUEUE_LIMIT: whole(100),
    EVENTS_URL: url(),
    EVENTS_SECRET: eventSecrets,
    EVENTS_SPENDING: flag(false),
    EVENTS_RETRY_SECONDS: whole(5),
    EVENTS_TIMEOUT_MS: whole(15_000),
    LOW_BALANCE_THRESHOLD: whole(0),
    MARK_CREDITED: flag(false),
    /** Where the operator console reads production metrics from (Analytics Engine's SQL API); both or neither. */
    ANALYTICS_ACCOUNT_ID: matching(/^[0-9a-f]{32}$/, "must be a Cloudflare account id (32 hex digits)"),
    ANALYTICS_API_TOKEN: text,
    /** The dataset wrangler.toml's METRICS binding writes to; named again here because a Worker cannot read a binding's dataset. */
    ANALYTICS_DATASET: matching(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "must be a dataset name (letters, digits, underscores)"),
    LOG_LEVEL: z.preprocess(
      blank,
      z
        .string()
        .trim()
        .toLowerCase()
        .pipe(z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }))
        .optional()
        .transform((v) => v ?? "info"),
    ),
  })
  .superRefine((s, ctx) => {
    if (s.TOPUP_MIN < 1) ctx.addIssue({ code: "custom", path: ["TOPUP_MIN"], message: "must be at least 1" });
    if (s.TOPUP_MAX < s.TOPUP_MIN) ctx.addIssue({ code: "custom", path: ["TOPUP_MAX"], message: "must be at least TOPUP_MIN" });
    if (s.AUTH_JWKS_URL && (!s.AUTH_ISSUER || !s.AUTH_AUDIENCE)) {
      ctx.addIssue({
        code: "custom",
        path: ["AUTH_JWKS_URL"],
        message: "needs AUTH_ISSUER and AUTH_AUDIENCE (else any token the provider issued for another application is accepted)",
      });
    }
    // Unsigned deliveries would let anyone who learns the URL forge credit events.
    if (s.EVENTS_URL && s.EVENTS_SECRET.length === 0) ctx.addIssue({ code: "custom", path: ["EVENTS_URL"], message: "needs EVENTS_SECRET (whsec_…)" });
    if (s.EVENTS_RETRY_SECONDS > 10)
      ctx.addIssue({ code: "custom", path: ["EVENTS_RETRY_SECONDS"], message: "must be at most 10 (the first retry comes within 10 s)" });
    if (Boolean(s.ANALYTICS_ACCOUNT_ID) !== Boolean(s.ANALYTICS_API_TOKEN)) {
      ctx.addIssue({ code: "custom", path: ["ANALYTICS_ACCOUNT_ID"], message: "and ANALYTICS_API_TOKEN go together (set both, or neither)" });
    }
    const legacy = parseLegacyTopUps(s);
    if (!legacy.ok) ctx.addIssue({ code: "custom", path: [], message: legacy.error });
  })
  .transform((s) => {
    const legacy = parseLegacyTopUps(s);
    return {
      stripe: {
        secretKey: s.STRIPE_SECRET_KEY,
        apiBase: s.STRIPE_API_BASE as string,
        webhookSecrets: s.STRIPE_WEBHOOK_SECRET,
        publishableKey: s.STRIPE_PUBLISHABLE_KEY ?? null,
        jsUrl: s.STRIPE_JS_URL as string,
        timeoutMs: s.STRIPE_TIMEOUT_MS,
        maxNetworkRetries: s.STRIPE_MAX_NETWORK_RETRIES,
        /** Calls per second for the whole service; 0 = no governor. */
        rateLimit: s.STRIPE_RATE_LIMIT,
        /** A live key credits only live PaymentIntents, a test key only test ones. */
        liveKey: s.STRIPE_SECRET_KEY.startsWith("sk_live_") || s.STRIPE_SECRET_KEY.startsWith("rk_live_"),
      },
      auth: {
        jwtSecret: s.AUTH_JWT_SECRET ?? null,
        jwksUrl: s.AUTH_JWKS_URL ?? null,
        issuer: s.AUTH_ISSUER ?? null,
        audience: s.AUTH_AUDIENCE ?? null,
        operatorToken: s.OPERATOR_TOKEN ?? null,
        serviceTokens: s.SERVICE_TOKEN,
      },
      allowedOrigins: s.ALLOWED_ORIGINS,
      demoMode: s.DEMO_MODE,
      reverseOnRefund: s.REVERSE_ON_REFUND,
      topUps: {
        min: s.TOPUP_MIN,
        max: s.TOPUP_MAX,
        currencies: s.TOPUP_CURRENCIES,
        /** The first accepted currency: a new wallet's until its first credit says otherwise. */
        defaultCurrency: s.TOPUP_CURRENCIES[0] as string,
        legacy: legacy.ok ? legacy.legacy : null,
      },
      limits: {
        confirmPerAccount: s.CONFIRM_LIMIT_PER_MINUTE,
        confirmPerAddress: s.CONFIRM_IP_LIMIT_PER_MINUTE,
        topUpPerAccount: s.TOPUP_LIMIT_PER_MINUTE,
        topUpPerAddress: s.TOPUP_IP_LIMIT_PER_MINUTE,
        /** Browsers of one customer waiting on one PaymentIntent object's attempt in flight. */
        objectQueue: s.OBJECT_QUEUE_LIMIT,
      },
      events: {
        /** The seller's endpoint; null: events are logged and dropped. */
        url: s.EVENTS_URL ?? null,
        secrets: s.EVENTS_SECRET,
        /** A `credit.spent` event per debit and capture (off: it would double the seller's traffic). */
        spending: s.EVENTS_SPENDING,
        /** The first retry's delay; each later one triples, up to 10 minutes. 0 retries at once (tests). */
        retrySeconds: s.EVENTS_RETRY_SECONDS,
        timeoutMs: s.EVENTS_TIMEOUT_MS,
        /** Minor units; 0 = no low-balance events unless an account sets its own. */
        lowBalanceThreshold: s.LOW_BALANCE_THRESHOLD,
      },
      /**
       * Sets `metadata.credited` on each PaymentIntent as it is credited: only while the older
       * server runs side by side (it checks nothing else). Off, a browser credit is 2 Stripe
       * calls and a webhook credit 1.
       */
      markCredited: s.MARK_CREDITED,
      /** The console's production metrics: Analytics Engine's SQL API, or null (this isolate's own counts). */
      analytics:
        s.ANALYTICS_ACCOUNT_ID && s.ANALYTICS_API_TOKEN
          ? { accountId: s.ANALYTICS_ACCOUNT_ID, apiToken: s.ANALYTICS_API_TOKEN, dataset: s.ANALYTICS_DATASET ?? "edge_credit_metrics" }
          : null,
      logLevel: s.LOG_LEVEL,
      /** Seconds from an account's first unsynced debit to its batch write; 0 = each debit at once. */
      syncSeconds: s.STRIPE_SYNC_SECONDS,
    };
  });

export type Settings = z.output<typeof Schema>;
export type { LegacyTopUps };

/** The raw values the schema reads: every binding is a string (or absent). */
export type SettingsSource = { [K in keyof z.input<typeof Schema>]?: string | undefined };

const parsed = new WeakMap<object, Settings>();

/** The settings of `env`, parsed on first use; throws SettingsError naming every bad setting. */
export function settings(env: SettingsSource): Settings {
  let found = parsed.get(env);
  if (!found) {
    found = parseSettings(env);
    parsed.set(env, found);
    setLogLevel(found.logLevel);
  }
  return found;
}

/** Parses without caching (npm start checks .dev.vars with it before starting anything). */
export function parseSettings(env: SettingsSource): Settings {
  const result = Schema.safeParse(env);
  if (result.success) return result.data;
  // The setting's name, not a position inside it (TOPUP_CURRENCIES, not TOPUP_CURRENCIES.1).
  const problems = result.error.issues.map((i) => (i.path.length > 0 ? `${String(i.path[0])} ${i.message}` : i.message));
  throw new SettingsError(`${PREFIX} ${problems.join("; ")}`);
}
