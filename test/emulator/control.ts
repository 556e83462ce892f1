// The control API, under `/_emulator` (no Stripe route uses that prefix): configuration, latency
// and fault injection, the request log and counters, direct object creation for tests and demos,
// disputes, event redelivery and duplicates, key expiry, reset. JSON in, JSON out, no auth: the
// emulator only ever listens on 127.0.0.1.

import { Hono } from "hono";
import { createCustomer } from "./customers.js";
import type { Emulator } from "./emulator.js";
import { StripeFailure } from "./errors.js";
import { FAULT_KINDS, globToRegExp, type FaultKind } from "./faults.js";
import { closeDispute, createPaymentIntent, openDispute, refund } from "./payment-intents.js";
import { attach, createPaymentMethod, TEST_PAYMENT_METHODS } from "./payment-methods.js";
import { authenticate, PROCESSING_METHOD, succeed } from "./payments.js";
import { CARD_BEHAVIOURS, type CardBehaviour, type Metadata } from "./store.js";
import { signatureHeader } from "./webhooks.js";

type Json = Record<string, unknown>;

const NO_REQUEST = { id: null, idempotency_key: null };

/** Settable at run time through `POST /_emulator/config`, by their snake_case names. */
const CONFIG_FIELDS = {
  latency_ms: "latencyMs",
  search_lag_ms: "searchLagMs",
  idempotency_ttl_ms: "idempotencyTtlMs",
  webhook_url: "webhookUrl",
  webhook_secret: "webhookSecret",
  webhook_retry_base_ms: "webhookRetryBaseMs",
  webhook_max_attempts: "webhookMaxAttempts",
  hang_ms: "hangMs",
  rate_limit_per_second: "rateLimitPerSecond",
} as const;

class ControlError extends Error {}

/** A string setting; anything else is the caller's mistake, said as a 400. */
function text(value: unknown, name: string): string {
  if (typeof value !== "string") throw new ControlError(`${name} must be a string`);
  return value;
}

function int(body: Json, field: string, fallback?: number): number {
  const v = body[field];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v)) throw new ControlError(`${field} must be an integer`);
  return v;
}

function optString(body: Json, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new ControlError(`${field} must be a string`);
  return v;
}

/** Builds the control API for `emu`. */
export function controlApi(emu: Emulator): Hono {
  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof ControlError || err instanceof SyntaxError) return c.json({ error: { message: err.message } }, 400);
    if (err instanceof StripeFailure) return c.json({ error: err.body }, err.status as 400);
    throw err;
  });

  const body = async (c: { req: { text(): Promise<string> } }): Promise<Json> => {
    const text = await c.req.text();
    if (!text) return {};
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new ControlError("body must be a JSON object");
    return parsed as Json;
  };

  app.get("/health", (c) => c.json({ ok: true }));

  app.post("/reset", (c) => {
    emu.reset();
    return c.json({ ok: true });
  });

  app.get("/config", (c) => c.json(configView(emu)));
  app.post("/config", async (c) => {
    const b = await body(c);
    for (const [k, v] of Object.entries(b)) {
      const field = CONFIG_FIELDS[k as keyof typeof CONFIG_FIELDS];
      if (!field) throw new ControlError(`unknown setting ${k}`);
      if (field === "webhookUrl") emu.options.webhookUrl = v === null ? null : text(v, k);
      else if (field === "webhookSecret") emu.options.webhookSecret = text(v, k);
      else emu.options[field] = int(b, k);
    }
    emu.reconfigure();
    return c.json(configView(emu));
  });

  app.post("/latency", async (c) => {
    const b = await body(c);
    const rule = { ms: int(b, "ms"), jitter_ms: int(b, "jitter_ms", 0), method: optString(b, "method") ?? "*", path: optString(b, "path") ?? "/v1/**" };
    emu.faults.latency.unshift(rule);
    return c.json(rule);
  });
  app.delete("/latency", (c) => {
    emu.faults.latency = [];
    return c.json({ ok: true });
  });

  app.post("/faults", async (c) => {
    const b = await body(c);
    const kind = optString(b, "kind");
    if (!kind || !FAULT_KINDS.includes(kind as FaultKind)) throw new ControlError(`kind must be one of ${FAULT_KINDS.join(", ")}`);
    for (const flag of ["saved", "apply", "replays"]) {
      if (b[flag] !== undefined && typeof b[flag] !== "boolean") throw new ControlError(`${flag} must be a boolean`);
    }
    const shouldRetry = b.should_retry;
    if (shouldRetry !== undefined && typeof shouldRetry !== "boolean") throw new ControlError("should_retry must be a boolean");
    const rule = emu.faults.add({
      kind: kind as FaultKind,
      method: optString(b, "method") ?? "*",
      path: optString(b, "path") ?? "/v1/**",
      key: optString(b, "key") ?? null,
      times: int(b, "times", 1),
      every: Math.max(1, int(b, "every", 1)),
      should_retry: shouldRetry ?? null,
      saved: b.saved !== false,
      apply: b.apply === true,
      replays: b.replays === true,
    });
    return c.json(rule);
  });
  app.get("/faults", (c) => c.json({ data: emu.faults.rules }));
  // One rule, by the id its creation returned: tests sharing an emulator remove only their own.
  app.delete("/faults/:id", (c) => {
    const id = Number(c.req.param("id"));
    const before = emu.faults.rules.length;
    emu.faults.rules = emu.faults.rules.filter((r) => r.id !== id);
    return c.json({ removed: before - emu.faults.rules.length });
  });
  app.delete("/faults", (c) => {
    emu.faults.rules = [];
    return c.json({ ok: true });
  });

  app.get("/requests", (c) => {
    const { endpoint, key, path, method } = c.req.query();
    const data = emu.log.filter(
      (r) =>
        (endpoint === undefined || r.endpoint === endpoint) &&
        (key === undefined || (r.idempotency_key !== null && globToRegExp(key).test(r.idempotency_key))) &&
        (path === undefined || globToRegExp(path).test(r.path)) &&
        (method === undefined || r.method === method.toUpperCase()),
    );
    return c.json({ data });
  });

  app.get("/stats", (c) => c.json({ ...emu.stats, writes: emu.store.writes, idempotency_keys: emu.keys.size }));
  app.get("/spec", (c) => c.json(emu.spec.summary()));

  app.post("/idempotency/expire", async (c) => {
    const input = await body(c);
    const pattern = optString(input, "key");
    const spare = input.spare_retrying_ms;
    const re = pattern === undefined ? undefined : globToRegExp(pattern);
    return c.json({ expired: emu.keys.expire(re ? (k) => re.test(k) : undefined, typeof spare === "number" ? spare : 0) });
  });

  app.post("/customers", async (c) => {
    const b = await body(c);
    const fields: { email?: string; name?: string; metadata?: Metadata } = {};
    const email = optString(b, "email");
    const name = optString(b, "name");
    if (email !== undefined) fields.email = email;
    if (name !== undefined) fields.name = name;
    if (b.metadata !== undefined) fields.metadata = b.metadata as Metadata;
    return c.json(createCustomer(emu.store, fields, b.livemode === true));
  });

  app.post("/payment_intents", async (c) => {
    const b = await body(c);
    const status = optString(b, "status") ?? "succeeded";
    if (!["succeeded", "requires_payment_method", "processing", "canceled"].includes(status)) throw new ControlError(`unsupported status ${status}`);
    const customer = optString(b, "customer");
    const pi = createPaymentIntent(
      emu.store,
      {
        amount: int(b, "amount"),
        currency: (optString(b, "currency") ?? "usd").toLowerCase(),
        customer: customer ?? null,
        metadata: (b.metadata as Metadata | undefined) ?? {},
        automatic_payment_methods: { enabled: true },
      },
      b.livemode === true,
    );
    if (status === "succeeded") {
      pi.payment_method = createPaymentMethod(emu.store, "pm_card_visa", pi.livemode).id;
      succeed(emu.store, emu.webhooks, pi, NO_REQUEST);
      // Lets tests build PIs Stripe would rarely produce (a succeeded PI that received nothing).
      if (b.amount_received !== undefined) pi.amount_received = int(b, "amount_received");
    } else if (status === "processing") {
      pi.payment_method = PROCESSING_METHOD;
      pi.status = "processing";
    } else if (status === "canceled") {
      pi.status = "canceled";
    }
    return c.json(pi);
  });

  app.post("/payment_intents/:id/succeed", (c) => {
    const pi = emu.store.paymentIntent(c.req.param("id"));
    if (pi.status === "succeeded") throw new ControlError("already succeeded");
    succeed(emu.store, emu.webhooks, pi, NO_REQUEST);
    return c.json(pi);
  });

  // The cardholder's answer to a PaymentIntent's 3-D Secure challenge, as the Stripe.js stand-in's page gives it.
  app.post("/payment_intents/:id/authenticate", async (c) => {
    const outcome = optString(await body(c), "outcome");
    if (outcome !== "complete" && outcome !== "fail") throw new ControlError("outcome must be complete or fail");
    return c.json(authenticate(emu.store, emu.webhooks, emu.store.paymentIntent(c.req.param("id")), outcome, NO_REQUEST));
  });

  // A card as a payment with setup_future_usage leaves it (attached to `customer`, set up for
  // off-session payments), without the payment: for tests that start from a saved card.
  app.post("/payment_methods", async (c) => {
    const b = await body(c);
    const card = optString(b, "card") ?? "pm_card_visa";
    if (!TEST_PAYMENT_METHODS.has(card)) throw new ControlError(`card must be one of ${[...TEST_PAYMENT_METHODS.keys()].join(", ")}`);
    const customerId = optString(b, "customer");
    const customer = customerId === undefined ? null : emu.store.customer(customerId, "customer");
    const pm = createPaymentMethod(emu.store, card, customer?.livemode ?? false);
    if (customer) {
      attach(emu.store, emu.webhooks, pm, customer.id, NO_REQUEST);
      emu.store.card(pm.id).setUp = true;
    }
    return c.json(cardView(emu, pm.id));
  });

  app.get("/payment_methods/:id", (c) => c.json(cardView(emu, emu.store.paymentMethod(c.req.param("id")).id)));

  // Switches how a stored card answers from now on (a saved card that starts declining, or asks for 3-D Secure).
  app.post("/payment_methods/:id", async (c) => {
    const behaviour = optString(await body(c), "behaviour");
    if (!CARD_BEHAVIOURS.includes(behaviour as CardBehaviour)) throw new ControlError(`behaviour must be one of ${CARD_BEHAVIOURS.join(", ")}`);
    const pm = emu.store.paymentMethod(c.req.param("id"));
    emu.store.card(pm.id).behaviour = behaviour as CardBehaviour;
    return c.json(cardView(emu, pm.id));
  });

  app.post("/payment_intents/:id/refund", async (c) => {
    const b = await body(c);
    const pi = emu.store.paymentIntent(c.req.param("id"));
    return c.json(refund(emu.store, emu.webhooks, pi, b.amount === undefined ? undefined : int(b, "amount"), NO_REQUEST));
  });

  app.post("/payment_intents/:id/dispute", async (c) => {
    const b = await body(c);
    const pi = emu.store.paymentIntent(c.req.param("id"));
    return c.json(openDispute(emu.store, emu.webhooks, pi, b.amount === undefined ? undefined : int(b, "amount"), optString(b, "reason")));
  });

  app.post("/disputes/:id/close", async (c) => {
    const status = optString(await body(c), "status");
    if (status !== "won" && status !== "lost") throw new ControlError("status must be won or lost");
    const d = emu.store.disputes.get(c.req.param("id"));
    if (!d) return c.json({ error: { message: "no such dispute" } }, 404);
    return c.json(closeDispute(emu.store, emu.webhooks, d, status));
  });

  // The ledger as the emulator holds it, newest first: for tests that must not spend Stripe's rate limit.
  app.get("/customers/:id/balance_transactions", (c) => {
    emu.store.customer(c.req.param("id"));
    return c.json({ data: [...(emu.store.balanceTransactions.get(c.req.param("id")) ?? [])].reverse() });
  });

  // Unrelated ledger entries in bulk (metadata {padding: "true"}), to make a customer's ledger
  // long: written straight into the store, so no request log line, rate limit or key is spent.
  // Amounts alternate +amount/−amount (default 0), so an even count leaves the balance as it was.
  app.post("/customers/:id/balance_transactions/pad", async (c) => {
    const b = await body(c);
    const count = int(b, "count");
    const amount = int(b, "amount", 0);
    if (count < 1 || count > 100_000) throw new ControlError("count must be between 1 and 100000");
    const customer = emu.store.customer(c.req.param("id"));
    const currency = optString(b, "currency") ?? customer.currency ?? "usd";
    for (let i = 0; i < count; i++) {
      emu.store.addBalanceTransaction(customer, i % 2 === 0 ? amount : -amount, currency, "padding", { padding: "true" });
    }
    return c.json({ added: count, balance: customer.balance, ledger_length: emu.store.balanceTransactions.get(customer.id)?.length ?? 0 });
  });

  // `payment_intent` keeps the events about one PaymentIntent: the PI itself, or an object (a
  // charge, a refund, a dispute) whose payment_intent it is; a long run need not fetch them all.
  app.get("/events", (c) => {
    const type = c.req.query("type");
    const pi = c.req.query("payment_intent");
    const about = (e: { data: { object: unknown } }) => {
      const o = e.data.object as { id?: unknown; payment_intent?: unknown };
      return o.id === pi || o.payment_intent === pi;
    };
    return c.json({ data: emu.store.events.filter((e) => (type === undefined || e.type === type) && (pi === undefined || about(e))) });
  });
  app.get("/deliveries", (c) => c.json({ data: emu.webhooks.deliveries }));

  const eventById = (id: string) => {
    const e = emu.store.events.find((x) => x.id === id);
    if (!e) throw new ControlError(`no such event ${id}`);
    return e;
  };
  app.post("/events/:id/redeliver", (c) => {
    const e = eventById(c.req.param("id"));
    emu.webhooks.deliver(e);
    return c.json({ ok: true, event: e.id });
  });
  app.post("/events/:id/duplicate", (c) => c.json(emu.webhooks.duplicate(eventById(c.req.param("id")))));
  // A signed delivery for callers that post it themselves (the Worker's tests cannot listen).
  app.get("/events/:id/signed", async (c) => {
    const payload = JSON.stringify(eventById(c.req.param("id")), null, 2);
    return c.json({ payload, signature: await signatureHeader(payload, emu.options.webhookSecret) });
  });
  app.post("/webhooks/idle", async (c) => {
    await emu.webhooks.idle();
    return c.json({ ok: true });
  });

  return app;
}

/** A stored card as Stripe shows it, with what the emulator alone knows of it. */
function cardView(emu: Emulator, id: string): Json {
  const state = emu.store.card(id);
  return { payment_method: emu.store.paymentMethod(id), behaviour: state.behaviour, set_up: state.setUp, spent: state.spent };
}

function configView(emu: Emulator): Json {
  const o = emu.options;
  return {
    latency_ms: o.latencyMs,
    search_lag_ms: o.searchLagMs,
    idempotency_ttl_ms: o.idempotencyTtlMs,
    webhook_url: o.webhookUrl,
    webhook_retry_base_ms: o.webhookRetryBaseMs,
    webhook_max_attempts: o.webhookMaxAttempts,
    hang_ms: o.hangMs,
    rate_limit_per_second: o.rateLimitPerSecond,
  };
}
