// The design this product replaces, rebuilt for the benchmark only (never deployed): one Node
// process, a per-process mutex per PaymentIntent, and under it, for every caller: read the PI
// from Stripe, look the customer up in Stripe, and when metadata.credited is not yet "true",
// mark and credit with the same two Idempotency-Keys. Run as its own process by bench/run.ts.

import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { jwtVerify } from "jose";
import Stripe from "stripe";

const port = Number(process.env.PORT ?? 0);
const base = new URL(process.env.STRIPE_API_BASE ?? "http://127.0.0.1:12111");
const secret = new TextEncoder().encode(process.env.AUTH_JWT_SECRET ?? "");
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY ?? "sk_test_bench", {
  httpClient: Stripe.createFetchHttpClient(),
  host: base.hostname,
  port: Number(base.port),
  protocol: "http",
  maxNetworkRetries: 2,
});

const locks = new Map<string, Promise<unknown>>();
/** Runs `fn` after every earlier holder of `key`'s lock: the per-process mutex. */
function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = locks.get(key) ?? Promise.resolve();
  const next = previous.then(fn, fn);
  const tail = next.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return next;
}

const app = new Hono();
app.get("/healthz", (c) => c.json({ ok: true }));
app.post("/billing/confirm_payment", async (c) => {
  const auth = c.req.header("authorization")?.replace(/^Bearer /, "") ?? "";
  let account: string;
  try {
    account = String((await jwtVerify(auth, secret, { algorithms: ["HS256"] })).payload.sub);
  } catch {
    return c.json({ error: { code: "unauthenticated" } }, 401);
  }
  const { payment_intent_id: id } = await c.req.json<{ payment_intent_id: string }>();
  return withLock(id, async () => {
    try {
      const pi = await stripe.paymentIntents.retrieve(id);
      const customers = await stripe.customers.search({ query: `metadata['account_id']:'${account}'` });
      if (!customers.data.some((cu) => cu.id === pi.customer)) return c.json({ error: { code: "payment_intent_not_found" } }, 404);
      if (pi.status !== "succeeded") return c.json({ error: { code: "payment_not_succeeded" } }, 409);
      if (pi.metadata.credited === "true") return c.json({ status: "already_credited", payment_intent_id: id }, 200);
      await stripe.paymentIntents.update(id, { metadata: { credited: "true" } }, { idempotencyKey: `credit-mark:${id}` });
      const tx = await stripe.customers.createBalanceTransaction(
        pi.customer as string,
        { amount: -pi.amount_received, currency: pi.currency, metadata: { payment_intent: id } },
        { idempotencyKey: `credit-tx:${id}` },
      );
      return c.json({ status: "credited", payment_intent_id: id, balance_transaction_id: tx.id }, 200);
    } catch {
      return c.json({ error: { code: "stripe_unavailable" } }, 503);
    }
  });
});

const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, (info) => {
  console.log(`BASELINE_PORT=${info.port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
