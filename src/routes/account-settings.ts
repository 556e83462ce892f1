// The seller's per-account settings (/v1/accounts/{account_id}/settings): today the account's
// low-balance threshold, which decides when its balance.low and balance.recovered events fire
// (src/events/wallet-events.ts). A PUT replaces the settings it names; null puts a setting back
// to the service's default (LOW_BALANCE_THRESHOLD). PUT is idempotent by itself, so it takes no
// Idempotency-Key. Guarded like the other seller routes (SERVICE_TOKEN); no Stripe call.

import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { ThresholdView } from "../events/wallet-events.js";
import { parsedJsonBody, requireService, type AppEnv } from "../http.js";
import { accountObject } from "../objects/stubs.js";
import { callObject } from "./object-calls.js";
import { AccountParams, ErrorAnswer, MAX_AMOUNT } from "./schemas.js";
import { validationHook } from "./validation.js";

const SettingsBody = z
  .object({
    low_balance_threshold: z.number().int().min(0).max(MAX_AMOUNT).nullable().openapi({
      description: "Minor units: balance.low fires when available falls below it (0 = no low-balance events; null = the service's default)",
      example: 500,
    }),
  })
  .strict()
  .openapi("AccountSettingsRequest");

const SettingsAnswer = z
  .object({
    object: z.literal("account_settings"),
    account_id: z.string(),
    low_balance_threshold: z.number().int(),
    low_balance_threshold_source: z.enum(["account", "default"]).openapi({ description: "The account's own value, or the service's LOW_BALANCE_THRESHOLD" }),
  })
  .openapi("AccountSettings");

const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: ErrorAnswer } } });
const security = [{ service: [] }];
const commonErrors = {
  400: errorResponse("invalid_request: a malformed account id, or a threshold that is not a whole number of minor units, 0 or more"),
  401: errorResponse("unauthenticated: no valid service token"),
  429: errorResponse("rate_limited: the account's object is overloaded; see Retry-After"),
  503: errorResponse("unavailable: the account's object could not answer now; see Retry-After"),
};

const answer = (accountId: string, view: ThresholdView) => ({
  object: "account_settings" as const,
  account_id: accountId,
  low_balance_threshold: view.low_balance_threshold,
  low_balance_threshold_source: view.source,
});

export const getSettingsRoute = createRoute({
  method: "get",
  path: "/{account_id}/settings",
  summary: "The account's settings: its low-balance threshold",
  security,
  middleware: [requireService],
  request: { params: AccountParams },
  responses: { 200: { description: "The settings in force", content: { "application/json": { schema: SettingsAnswer } } }, ...commonErrors },
});

export const putSettingsRoute = createRoute({
  method: "put",
  path: "/{account_id}/settings",
  summary: "Sets the account's low-balance threshold (null: the service's default)",
  security,
  middleware: [requireService, parsedJsonBody(1024, { optional: false })],
  request: { params: AccountParams, body: { required: true, content: { "application/json": { schema: SettingsBody } } } },
  responses: {
    200: { description: "The settings now in force", content: { "application/json": { schema: SettingsAnswer } } },
    ...commonErrors,
    413: errorResponse("payload_too_large: body over 1 KiB"),
    415: errorResponse("unsupported_media_type"),
  },
});

export const accountSettings = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

accountSettings.openapi(getSettingsRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const view = await callObject(async (): Promise<ThresholdView> => await accountObject(c.env, accountId).accountSettings());
  return c.json(answer(accountId, view), 200);
});

accountSettings.openapi(putSettingsRoute, async (c) => {
  const { account_id: accountId } = c.req.valid("param");
  const { low_balance_threshold: threshold } = c.req.valid("json");
  const view = await callObject(async (): Promise<ThresholdView> => await accountObject(c.env, accountId).updateAccountSettings(threshold));
  return c.json(answer(accountId, view), 200);
});
