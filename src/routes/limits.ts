// Request limits per account and per client address (RequestLimiter objects). Checked before
// anything that could cost a Stripe call; a caller over its limit still gets what costs nothing
// (an answer already recorded), and the webhook is never limited.

import type { Context } from "hono";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import type { Take } from "../objects/contract.js";
import { limiterObject } from "../objects/stubs.js";
import { settings } from "../settings.js";
import { callObject } from "./object-calls.js";

/** Takes one request from the account's and the address's buckets for `kind`; a limit of 0 is no limit. */
export async function checkLimits(c: Context<AppEnv>, kind: "confirm" | "topup", accountId: string): Promise<Take> {
  const { limits } = settings(c.env);
  const perAccount = kind === "confirm" ? limits.confirmPerAccount : limits.topUpPerAccount;
  const perAddress = kind === "confirm" ? limits.confirmPerAddress : limits.topUpPerAddress;
  // Cloudflare sets CF-Connecting-IP on every request; clients cannot choose it.
  const address = c.req.header("cf-connecting-ip") ?? "unknown";
  // A limiter reset mid-call (deploy, eviction under load) is a 503 to come back, as for any object, not a 500.
  const take = (key: string, perMinute: number): Promise<Take> =>
    perMinute === 0 ? Promise.resolve({ ok: true }) : callObject(async (): Promise<Take> => await limiterObject(c.env, key).take(perMinute));
  const results = await Promise.all([take(`${kind}:acct:${accountId}`, perAccount), take(`${kind}:ip:${address}`, perAddress)]);
  const refused = results.filter((r): r is Extract<Take, { ok: false }> => !r.ok);
  return refused.length === 0 ? { ok: true } : { ok: false, retryAfterSeconds: Math.max(...refused.map((r) => r.retryAfterSeconds)) };
}

/** 429 `rate_limited` with Retry-After. */
export function rateLimited(retryAfterSeconds: number): ApiError {
  return new ApiError(429, "rate_limited", "Too many requests; try again shortly.", {}, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
}
