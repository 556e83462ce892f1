// The design this product replaces, rebuilt for the benchmark only (never deployed): one Node
// process, a per-process mutex per PaymentIntent, and under it, for every caller: read the PI
// from Stripe, look the customer up in Stripe, and when metadata.credited is not yet "true",
// mark and credit with the same two Idempotency-Keys. Run as its own process by bench/run.ts.
//
// Its spending: one Stripe balance-transaction write per debit, under a per-process mutex per
// account (which is what keeps two debits from both passing the credit check). The balance it
// checks is the account's last write's `ending_balance`, kept in memory after one read of the
// customer: the fewest Stripe calls that design can make, one per debit.

import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { jwtVerify } from "jose";
import Stripe from "stripe";

const port = Number(process.env.PORT ?? 0);
const base = new URL(process.env.STRIPE_API_BASE ?? "http://127.0.0.1:12111");
const secret = new TextEncoder().encode(process.env.AUTH_JWT_SECRET ?? "");
const serviceToken = process.env.SERVICE_TOKEN ?? "";
const stripe = new Stripe(process.env.STRIPE_SECRET_KEY ?? "sk_test_bench", {
  httpClient: Stripe.createFetchHttpClient(),
  host: base.hostname,
  port: Number(base.port),
  protocol: "http",
  maxNetworkRetries: 2,
  // Off, as in the service's own client (src/stripe/client.ts): with it on, the SDK buffers each
  // request's timing for the next request's header and warns once per request when the buffer is
  // full, hundreds of lines per run.
  telemetry: false,
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

/** What the spending side keeps per account: its customer and its credit (positive), as of its last write. */
const wallets = new Map<string, { customer: string; available: number }>();

/** The account's customer and credit: Stripe's search and a customer read, once per account. */
async function walletOf(account: string): Promise<{ customer: string; available: number } | null> {
  const known = wallets.get(account);
  if (known) return known;
  const found = await stripe.customers.search({ query: `metadata['account_id']:'${account}'` });
  const customer = found.data[0];
  if (!customer) return null;
  const wallet = { customer: customer.id, available: -customer.balance };
  wallets.set(account, wallet);
  return wallet;
}

app.post("/v1/accounts/:account_id/debits", async (c) => {
  if (serviceToken === "" || c.req.header("authorization") !== `Bearer ${serviceToken}`) return c.json({ error: { code: "unauthenticated" } }, 401);
  const key = c.req.header("idempotency-key");
  if (!key) return c.json({ error: { code: "invalid_request" } }, 400);
  const account = c.req.param("account_id");
  const { amount, currency } = await c.req.json<{ amount: number; currency: string }>();
  return withLock(`account:${account}`, async () => {
    try {
      const wallet = await walletOf(account);
      if (!wallet) return c.json({ error: { code: "account_not_found" } }, 404);
      if (wallet.available < amount) return c.json({ error: { code: "insufficient_credit", available: wallet.available } }, 402);
      // Stripe's sign: positive takes credit away.
      const tx = await stripe.customers.createBalanceTransaction(
        wallet.customer,
        { amount, currency, metadata: { account_id: account } },
        { idempotencyKey: `debit:${account}:${key}` },
      );
      wallet.available = -tx.ending_balance;
      return c.json({ id: tx.id, account_id: account, amount, currency, balance: { available: wallet.available, held: 0, currency } }, 201);
    } catch {
      return c.json({ error: { code: "stripe_unavailable" } }, 503);
    }
  });
});

const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, (info) => {
  console.log(`BASELINE_PORT=${info.port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
