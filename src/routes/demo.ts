// The demo's own routes, on only when DEMO_MODE is "true" (local development; never set it in
// production): a sign-in that hands out a token for any account id, and "use credit", which
// spends as the seller's backend would. The page pays through Stripe.js, as in production (the
// emulator serves a stand-in for it locally), so no route here pays. With DEMO_MODE off every
// route here answers 404, as if it did not exist.

import { Hono } from "hono";
import { SignJWT } from "jose";
import { ApiError } from "../errors.js";
import { jsonBody, requireAccount, type AppEnv } from "../http.js";
import { ACCOUNT_ID } from "../ids.js";
import { settings } from "../settings.js";

export const demo = new Hono<AppEnv>();

/** Demo account ids are kept shorter than real ones, to fit the page. */
const DEMO_ACCOUNT_MAX = 64;

demo.use("*", async (c, next) => {
  if (!settings(c.env).demoMode) throw new ApiError(404, "not_found", "No such route.");
  await next();
});

/** A token for any account id, signed like a real sign-in would be. */
demo.post("/sign_in", jsonBody(1024), async (c) => {
  const body = (await c.req.json().catch(() => null)) as { account_id?: unknown } | null;
  const accountId = typeof body?.account_id === "string" ? body.account_id : "";
  if (!ACCOUNT_ID.test(accountId) || accountId.length > DEMO_ACCOUNT_MAX)
    throw new ApiError(400, "invalid_request", "account_id: 1-64 letters, digits or _ . : @ | -");
  const secret = settings(c.env).auth.jwtSecret;
  if (!secret) throw new ApiError(503, "stripe_unavailable", "AUTH_JWT_SECRET is not set.");
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(accountId)
    .setIssuedAt()
    .setExpirationTime("12h")
    .sign(new TextEncoder().encode(secret));
  return c.json({ account_id: accountId, token });
});

/** What the page's "Use credit" debit is called in the ledger. */
const SPEND_DESCRIPTION = "Demo page";

/** The Worker's own app (src/index.ts's default export), for `/spend`'s call to the seller's route. */
type WorkerApp = (typeof import("../index.js"))["default"];
let workerApp: Promise<WorkerApp> | null = null;

/**
 * The app that serves this very request. Imported when first needed, not at load: index.ts
 * builds the app from these routes, so a static import would be a cycle.
 */
function worker(): Promise<WorkerApp> {
  workerApp ??= import("../index.js").then((module) => module.default);
  return workerApp;
}

/**
 * Spends the signed-in account's credit exactly as the seller's backend does: a
 * `POST /v1/accounts/{account}/debits` signed with the service token, under the browser's
 * Idempotency-Key, handed to the Worker's own fetch in this isolate (no network hop). The
 * seller's route authenticates, validates, keeps the key and asks the wallet; its status and
 * body come back unchanged (201, 402 insufficient_credit, 400, 409 idempotency_key_reused, …).
 * The browser only says how much and in which currency; the account is its token's.
 */
demo.post("/spend", requireAccount, jsonBody(1024), async (c) => {
  const [serviceToken] = settings(c.env).auth.serviceTokens;
  if (serviceToken === undefined) {
    // A setting missing on this service, not a fault of the caller's or a crash: say which.
    throw new ApiError(503, "service_token_missing", "SERVICE_TOKEN is not set, so the demo cannot call the seller's API.");
  }
  const body = (await c.req.json().catch(() => null)) as { amount?: unknown; currency?: unknown } | null;
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new ApiError(400, "invalid_request", "The request body must be a JSON object.");
  const accountId = c.get("accountId");
  const headers: Record<string, string> = { authorization: `Bearer ${serviceToken}`, "content-type": "application/json" };
  // Passed on as sent (or absent): the seller's route is the one that checks it.
  const key = c.req.header("idempotency-key");
  if (key !== undefined) headers["idempotency-key"] = key;
  const request = new Request(new URL(`/v1/accounts/${encodeURIComponent(accountId)}/debits`, c.req.url), {
    method: "POST",
    headers,
    // Amount and currency as the browser sent them: the seller's schema validates them.
    body: JSON.stringify({ amount: body.amount, currency: body.currency, description: SPEND_DESCRIPTION }),
  });
  const answer = await (await worker()).fetch(request, c.env, c.executionCtx);
  const forwarded = new Headers({ "content-type": "application/json" });
  for (const name of ["idempotent-replayed", "retry-after"]) {
    const value = answer.headers.get(name);
    if (value !== null) forwarded.set(name, value);
  }
  return new Response(answer.body, { status: answer.status, headers: forwarded });
});
