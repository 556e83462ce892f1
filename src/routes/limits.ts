// Request limits per account and per client address (RequestLimiter objects). Checked before
// anything that could cost a Stripe call; a caller over its limit still gets what costs nothing
// (an already-credited answer), and the webhook is never limited.

import type { Context } from "hono";
import { intSetting } from "../env.js";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import type { Take } from "../objects/limiter.js";

const DEFAULTS = {
  confirm: { account: 120, address: 600 },
  topup: { account: 20, address: 60 },
} as const;

/** Takes one request from the account's and the address's buckets for `kind`. */
export async function checkLimits(c: Context<AppEnv>, kind: "confirm" | "topup", accountId: string): Promise<Take> {
  const env = c.env;
  const perAccount = intSetting(kind === "confirm" ? env.CONFIRM_LIMIT_PER_MINUTE : env.TOPUP_LIMIT_PER_MINUTE, DEFAULTS[kind].account);
  const perAddress = intSetting(kind === "confirm" ? env.CONFIRM_IP_LIMIT_PER_MINUTE : env.TOPUP_IP_LIMIT_PER_MINUTE, DEFAULTS[kind].address);
  // Cloudflare sets CF-Connecting-IP on every request; clients cannot choose it.
  const address = c.req.header("cf-connecting-ip") ?? "unknown";
  const take = (key: string, perMinute: number): Promise<Take> =>
    perMinute === 0 ? Promise.resolve({ ok: true }) : env.LIMITER.get(env.LIMITER.idFromName(key)).take(perMinute);
  const results = await Promise.all([take(`${kind}:acct:${accountId}`, perAccount), take(`${kind}:ip:${address}`, perAddress)]);
  const refused = results.filter((r): r is Extract<Take, { ok: false }> => !r.ok);
  return refused.length === 0 ? { ok: true } : { ok: false, retryAfterSeconds: Math.max(...refused.map((r) => r.retryAfterSeconds)) };
}

/** 429 `rate_limited` with Retry-After. */
export function rateLimited(retryAfterSeconds: number): ApiError {
  return new ApiError(429, "rate_limited", "Too many requests; try again shortly.", {}, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
}
