// Auto-recharge settings: GET/PUT /billing/auto_recharge for the signed-in browser and
// GET/PUT /v1/accounts/{account_id}/auto_recharge for the seller's backend (service token).
// Both answer the same view: the settings, the saved card, this month's recharges against the
// limit, and the open (or last) recharge, with its client_secret while it waits for the customer
// to authenticate (the page completes it with Stripe.js). A PUT replaces the four settings; it
// is idempotent by itself, so it takes no Idempotency-Key. Turning it on needs a saved card (a
// top-up made with `save_payment_method: true`), and a balance already below the threshold
// starts a recharge at once.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError } from "../errors.js";
import { jsonBody, parsedJsonBody, requireAccount, requireService, type AppEnv } from "../http.js";
import { accountObject } from "../objects/stubs.js";
import type { AutoRechargeView, ConfigureOutcome, RechargeSettings } from "../recharge/contract.js";
import { settingsProblem } from "../recharge/rules.js";
import { settings } from "../settings.js";
import { checkLimits, rateLimited } from "./limits.js";
import { callObject } from "./object-calls.js";
import { AccountParams, ErrorAnswer, MAX_AMOUNT } from "./schemas.js";
import { validationHook } from "./validation.js";

const BODY_MAX_BYTES = 1024;

const Minor = (description: string, example: number) => z.number().int().min(1).max(MAX_AMOUNT).openapi({ description, example });

const SettingsBody = z
  .object({
    enabled: z.boolean().openapi({ description: "Turning it on needs a saved card" }),
    threshold: Minor("A write that leaves available credit below this starts a recharge (minor units)", 500),
    amount: Minor("What one recharge charges and credits (minor units; within the top-up limits)", 2000),
    monthly_limit: Minor("The most recharged in one calendar month, UTC (minor units; at least amount)", 10000),
  })
  .strict()
  .openapi("AutoRechargeRequest");

const Recharge = z
  .object({
    number: z.number().int(),
    status: z.enum(["pending", "processing", "action_required", "succeeded", "failed", "canceled"]),
    amount: z.number().int(),
    currency: z.string(),
    payment_intent_id: z.string().nullable(),
    client_secret: z.string().nullable().openapi({ description: "While action_required: confirm the payment with Stripe.js" }),
    payment_method: z.string(),
    expires_at: z.string().nullable().openapi({ description: "action_required: cancelled if not completed by then" }),
    code: z.string().nullable(),
    decline_code: z.string().nullable(),
    created: z.string(),
  })
  .openapi("Recharge");

const SettingsAnswer = z
  .object({
    object: z.literal("auto_recharge"),
    account_id: z.string(),
    enabled: z.boolean(),
    threshold: z.number().int().nullable(),
    amount: z.number().int().nullable(),
    monthly_limit: z.number().int().nullable(),
    currency: z.string(),
    payment_method: z.object({ id: z.string(), brand: z.string().nullable(), last4: z.string().nullable() }).nullable(),
    disabled_reason: z.enum(["declined", "card_removed"]).nullable().openapi({ description: "Why it switched itself off" }),
    consecutive_failures: z.number().int(),
    this_month: z.object({ month: z.string(), recharged: z.number().int(), remaining: z.number().int().nullable() }),
    recharge: Recharge.nullable().openapi({ description: "The open recharge, else the latest" }),
  })
  .openapi("AutoRecharge");

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ErrorAnswer } } });

const putErrors = {
  400: errorResponse("invalid_request: a setting missing, not a whole number, an amount outside the top-up limits, or a monthly limit below the amount"),
  409: errorResponse("no_saved_card: turning it on needs a card saved by a top-up"),
  413: errorResponse("payload_too_large"),
  415: errorResponse("unsupported_media_type"),
  429: errorResponse("rate_limited"),
  503: errorResponse("stripe_unavailable: the account's credit could not be read now; see Retry-After"),
};

function answer(accountId: string, view: AutoRechargeView) {
  const s = view.settings;
  return {
    object: "auto_recharge" as const,
    account_id: accountId,
    enabled: s?.enabled ?? false,
    threshold: s?.threshold ?? null,
    amount: s?.amount ?? null,
    monthly_limit: s?.monthly_limit ?? null,
    currency: view.currency,
    payment_method: view.payment_method,
    disabled_reason: view.disabled_reason,
    consecutive_failures: view.consecutive_failures,
    this_month: view.this_month,
    recharge: view.recharge,
  };
}

async function read(c: Context<AppEnv>, accountId: string) {
  const view = await callObject(async (): Promise<AutoRechargeView> => await accountObject(c.env, accountId).autoRecharge());
  return answer(accountId, view);
}

async function configure(c: Context<AppEnv>, accountId: string, next: RechargeSettings) {
  const problem = settingsProblem(next, settings(c.env).topUps);
  if (problem) throw new ApiError(400, "invalid_request", problem);
  const outcome = await callObject(async (): Promise<ConfigureOutcome> => await accountObject(c.env, accountId).configureAutoRecharge(accountId, next));
  if (outcome.ok) return answer(accountId, outcome.view);
  if (outcome.reason === "no_saved_card") throw new ApiError(409, "no_saved_card", "Save a card with a top-up before turning auto-recharge on.");
  throw new ApiError(
    503,
    "stripe_unavailable",
    "The account's credit could not be read now; try again later.",
    {},
    {
      "Retry-After": String(Math.max(1, Math.ceil(outcome.retryAfterSeconds))),
    },
  );
}

// ---- the browser's

export const autoRechargeBilling = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

const browserGet = createRoute({
  method: "get",
  path: "/auto_recharge",
  summary: "The caller's auto-recharge: settings, saved card, this month, the open recharge",
  security: [{ bearer: [] }],
  middleware: [requireAccount],
  responses: {
    200: { description: "As it stands", content: { "application/json": { schema: SettingsAnswer } } },
    401: errorResponse("unauthenticated"),
  },
});

const browserPut = createRoute({
  method: "put",
  path: "/auto_recharge",
  summary: "Sets the caller's auto-recharge",
  security: [{ bearer: [] }],
  middleware: [requireAccount, jsonBody(BODY_MAX_BYTES)],
  request: { body: { required: true, content: { "application/json": { schema: SettingsBody } } } },
  responses: {
    200: { description: "The settings now in force", content: { "application/json": { schema: SettingsAnswer } } },
    401: errorResponse("unauthenticated"),
    ...putErrors,
  },
});

autoRechargeBilling.openapi(browserGet, async (c) => c.json(await read(c, c.get("accountId")), 200));

autoRechargeBilling.openapi(browserPut, async (c) => {
  const accountId = c.get("accountId");
  // Turning it on may charge the card at once: limited as top-ups are.
  const limit = await checkLimits(c, "topup", accountId);
  if (!limit.ok) throw rateLimited(limit.retryAfterSeconds);
  return c.json(await configure(c, accountId, c.req.valid("json")), 200);
});

// ---- the seller's

export const autoRechargeSeller = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

const sellerGet = createRoute({
  method: "get",
  path: "/{account_id}/auto_recharge",
  summary: "The account's auto-recharge: settings, saved card, this month, the open recharge",
  security: [{ service: [] }],
  middleware: [requireService],
  request: { params: AccountParams },
  responses: {
    200: { description: "As it stands", content: { "application/json": { schema: SettingsAnswer } } },
    400: errorResponse("invalid_request: a malformed account id"),
    401: errorResponse("unauthenticated: no valid service token"),
  },
});

const sellerPut = createRoute({
  method: "put",
  path: "/{account_id}/auto_recharge",
  summary: "Sets the account's auto-recharge",
  security: [{ service: [] }],
  middleware: [requireService, parsedJsonBody(BODY_MAX_BYTES, { optional: false })],
  request: { params: AccountParams, body: { required: true, content: { "application/json": { schema: SettingsBody } } } },
  responses: {
    200: { description: "The settings now in force", content: { "application/json": { schema: SettingsAnswer } } },
    401: errorResponse("unauthenticated: no valid service token"),
    ...putErrors,
  },
});

autoRechargeSeller.openapi(sellerGet, async (c) => c.json(await read(c, c.req.valid("param").account_id), 200));

autoRechargeSeller.openapi(sellerPut, async (c) => c.json(await configure(c, c.req.valid("param").account_id, c.req.valid("json")), 200));
