// What the service's tests share: the Stripe emulator's control API (reached over 127.0.0.1
// from inside workerd), token minting, and requests to the Worker through its real fetch
// handler. The emulator is shared by every test file of the run, so tests never reset it: each
// uses its own accounts and PaymentIntents and scopes latency and faults to their paths.

import { createExecutionContext, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import { expect } from "vitest";
import { buildApp } from "../src/app.js";
import { TOP_UP_MARKER } from "../src/credit/top-up.js";
import type { Inspection } from "../src/credit/contract.js";
import { TEST_BINDINGS } from "./bindings.js";
import { signatureHeader } from "./emulator/webhooks.js";

export const ORIGIN = "https://billing.test";

/** Calls the emulator's control API and returns its JSON. */
export async function emu<T = Record<string, unknown>>(path: string, body?: unknown, method = body === undefined ? "GET" : "POST"): Promise<T> {
  const res = await fetch(`${env.STRIPE_API_BASE}/_emulator${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as T;
  if (!res.ok) throw new Error(`emulator ${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

let counter = 0;
/** A fresh account id, unique across files and runs. */
export function newAccountId(label = "acct"): string {
  counter++;
  return `${label}_${Date.now().toString(36)}${counter}${Math.random().toString(36).slice(2, 8)}`;
}

export interface Customer {
  id: string;
  balance: number;
}

export interface PaymentIntent {
  id: string;
  status: string;
  amount_received: number;
  metadata: Record<string, string>;
}

/** A Stripe customer belonging to `accountId` (metadata.account_id), created in the emulator. */
export function createCustomer(accountId: string): Promise<Customer> {
  return emu<Customer>("/customers", { email: `${accountId}@example.com`, metadata: { account_id: accountId } });
}

/**
 * A PaymentIntent created directly in the emulator, succeeded unless `status` says otherwise.
 * It is a top-up (creditable) only with `topUpMetadata` in its metadata.
 */
export function createPaymentIntent(fields: {
  customer?: string;
  amount?: number;
  currency?: string;
  status?: string;
  livemode?: boolean;
  metadata?: Record<string, string>;
  amount_received?: number;
}): Promise<PaymentIntent> {
  return emu<PaymentIntent>("/payment_intents", { amount: 1000, currency: "usd", ...fields });
}

/** The metadata POST /billing/top_ups puts on a top-up: the account and the top-up marker. */
export function topUpMetadata(accountId: string): Record<string, string> {
  return { account_id: accountId, ...TOP_UP_MARKER };
}

/** An account with its customer and one succeeded top-up of `amount`. */
export async function paidTopUp(amount = 1000) {
  const accountId = newAccountId();
  const customer = await createCustomer(accountId);
  const pi = await createPaymentIntent({ customer: customer.id, amount, metadata: topUpMetadata(accountId) });
  return { accountId, customer, pi, token: await tokenFor(accountId) };
}

/** An HS256 token for `accountId`, valid for an hour unless `claims` say otherwise. */
export async function tokenFor(
  accountId: string,
  claims: { exp?: number; nbf?: number; iat?: number } = {},
  secret: string = TEST_BINDINGS.AUTH_JWT_SECRET,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(accountId)
    .setIssuedAt(claims.iat ?? now)
    .setExpirationTime(claims.exp ?? now + 3600);
  if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** Sends a request to the Worker's fetch handler. */
export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`${ORIGIN}${path}`, init));
}

/** POST /billing/confirm_payment as a browser would (from client address `ip`, when given). */
export function confirm(token: string | null, paymentIntentId: string, ip?: string): Promise<Response> {
  return call("/billing/confirm_payment", {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(ip ? { "cf-connecting-ip": ip } : {}) },
    body: JSON.stringify({ payment_intent_id: paymentIntentId }),
  });
}

export interface RequestRecord {
  method: string;
  path: string;
  endpoint: string;
  idempotency_key: string | null;
  params: Record<string, unknown>;
  status: number;
  replayed: boolean;
  fault: string | null;
  /** Refused because Stripe's OpenAPI spec does not allow it (test/emulator/openapi.ts). */
  refused_by_spec: boolean;
  /** How long the emulator took to answer (or to see the caller give up). */
  duration_ms: number;
}

/** The emulator's log of requests whose path matches `pathGlob` (`*` within a segment, `**` across). */
export async function stripeRequests(filter: { path?: string; key?: string; method?: string }): Promise<RequestRecord[]> {
  const q = new URLSearchParams(filter as Record<string, string>);
  return (await emu<{ data: RequestRecord[] }>(`/requests?${q.toString()}`)).data;
}

/** Every request the emulator saw about one PaymentIntent and its customer. */
export async function stripeTraffic(paymentIntentId: string, customerId: string) {
  const [pi, customer] = await Promise.all([
    stripeRequests({ path: `/v1/payment_intents/${paymentIntentId}**` }),
    stripeRequests({ path: `/v1/customers/${customerId}/**` }),
  ]);
  return {
    piReads: pi.filter((r) => r.method === "GET").length,
    marks: pi.filter((r) => r.method === "POST").length,
    creditWrites: customer.filter((r) => r.method === "POST" && r.path.endsWith("/balance_transactions")).length,
    ledgerReads: customer.filter((r) => r.method === "GET").length,
    all: [...pi, ...customer],
  };
}

export interface BalanceTransaction {
  id: string;
  amount: number;
  currency: string;
  metadata: Record<string, string>;
}

/** The customer's balance transactions for `paymentIntentId`, read straight from the emulator. */
export async function ledgerFor(customerId: string, paymentIntentId?: string): Promise<BalanceTransaction[]> {
  const list = await emu<{ data: BalanceTransaction[] }>(`/customers/${customerId}/balance_transactions`);
  return list.data.filter((tx) => paymentIntentId === undefined || tx.metadata.payment_intent === paymentIntentId);
}

/** Adds a fault rule to the emulator; returns its id for `removeFault`. */
export async function addFault(rule: Record<string, unknown>): Promise<number> {
  return (await emu<{ id: number }>("/faults", rule)).id;
}

/** Stripe refuses this PaymentIntent's next credit write (a permanent 400): the credit then needs an operator. */
export function refuseCreditOnce(customerId: string, paymentIntentId: string): Promise<number> {
  return addFault({
    kind: "error_400",
    method: "POST",
    path: `/v1/customers/${customerId}/balance_transactions`,
    key: `credit-tx:${paymentIntentId}*`,
    times: 1,
  });
}

/** Removes one fault rule (never all: other test files share the emulator). */
export async function removeFault(id: number): Promise<void> {
  await emu(`/faults/${id}`, undefined, "DELETE");
}

/** Makes every Stripe request about this PI and customer take `ms` longer. */
export async function slowStripe(paymentIntentId: string, customerId: string, ms: number): Promise<void> {
  await emu("/latency", { ms, path: `/v1/payment_intents/${paymentIntentId}**` });
  await emu("/latency", { ms, path: `/v1/customers/${customerId}/**` });
}

/** Reads a JSON response body. */
export async function json<T = Record<string, unknown>>(res: Response): Promise<T> {
  return await res.json();
}

/** One answer to a confirm, reduced to what consistency checks need. */
export interface Answer {
  status: number;
  code: string;
  txId: string | null;
  retryAfter: string | null;
}

export async function answerOf(res: Response): Promise<Answer> {
  const body = await json<{ status?: string; balance_transaction_id?: string; error?: { code: string } }>(res);
  return {
    status: res.status,
    code: body.status ?? body.error?.code ?? "?",
    txId: body.balance_transaction_id ?? null,
    retryAfter: res.headers.get("retry-after"),
  };
}

/** The PaymentIntent object of `paymentIntentId`. */
export function piObject(paymentIntentId: string) {
  return env.PAYMENT_INTENTS.getByName(paymentIntentId);
}

/**
 * Lets a credit finish the way production would: the object's alarm runs when one is
 * scheduled, and the browser retries when nothing durable exists (nothing is scheduled then).
 * Returns every confirm answer given along the way.
 */
export async function settle(paymentIntentId: string, token: string, answers: Answer[] = []): Promise<Answer[]> {
  for (let round = 0; round < 15; round++) {
    const { record } = await piObject(paymentIntentId).inspect();
    if (record?.state === "credited" && markSettled(record.mark_state)) break;
    const ran = record ? await runDurableObjectAlarm(piObject(paymentIntentId)) : false;
    if (!ran) answers.push(await answerOf(await confirm(token, paymentIntentId)));
  }
  answers.push(await answerOf(await confirm(token, paymentIntentId)));
  return answers;
}

/** The PaymentIntent as Stripe (the emulator) has it now. */
export async function stripePaymentIntent(paymentIntentId: string): Promise<PaymentIntent> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${paymentIntentId}`, {
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}` },
  });
  return res.json<PaymentIntent>();
}

/** Whether a record owes nothing for the mark: set (MARK_CREDITED on), or never wanted (off, the default). */
export const markSettled = (state: string | undefined) => state === "done" || state === "off";

/**
 * Makes `paymentIntentId`'s object mark what it credits (MARK_CREDITED on, as while the older
 * server runs), in that object's memory only: the run's bindings keep the default, off.
 */
export async function markingOn(paymentIntentId: string): Promise<void> {
  await runInDurableObject(piObject(paymentIntentId), (instance) => {
    Object.assign(instance, { env: { ...(instance as unknown as { env: object }).env, MARK_CREDITED: "true" } });
  });
}

/** The PIs whose objects mark in every instance (markingOnAcrossRestarts), and each raw env with the setting added. */
const markingForGood = new Set<string>();
const envOf = new WeakMap<object, object>();
const markingEnvOf = new WeakMap<object, object>();

/**
 * Makes `paymentIntentId`'s object mark what it credits in every instance it will ever have, as
 * a deployment with MARK_CREDITED on would: unlike markingOn, a restart (eviction, abort) does
 * not turn it off, so a crash before the record exists cannot record the PI unmarked. The
 * bindings are the run's, so the object class's `env` is read through an accessor that adds the
 * setting for the PIs named here (installed once; every other object sees its env unchanged, and
 * an env assigned later, as markingOn and other tests do, is kept under it the same way).
 */
export async function markingOnAcrossRestarts(paymentIntentId: string): Promise<void> {
  markingForGood.add(paymentIntentId);
  await runInDurableObject(piObject(paymentIntentId), (instance) => {
    const proto = Object.getPrototypeOf(instance) as object;
    if (!Object.getOwnPropertyDescriptor(proto, "env")) {
      Object.defineProperty(proto, "env", {
        configurable: true,
        get(this: { ctx?: DurableObjectState }) {
          const raw = envOf.get(this);
          const name = this.ctx?.id.name;
          if (!raw || name === undefined || !markingForGood.has(name)) return raw;
          let marking = markingEnvOf.get(raw);
          if (!marking) markingEnvOf.set(raw, (marking = { ...raw, MARK_CREDITED: "true" }));
          return marking;
        },
        set(this: object, value: object) {
          envOf.set(this, value);
        },
      });
    }
    // This instance was made before the accessor: its env is its own property, moved under it.
    const own = Object.getOwnPropertyDescriptor(instance, "env");
    if (own) {
      const target = instance as unknown as { env?: unknown };
      delete target.env;
      target.env = own.value;
    }
  });
}

/**
 * The end state every fault must reach: one balance transaction of -amount, the object final,
 * the PI marked if `marked` (its object had markingOn) and otherwise untouched, and every
 * answer along the way consistent with that (503 + Retry-After while unfinished, then 200 with
 * that one transaction, and at most one "credited").
 */
export async function expectCreditedOnce(paymentIntentId: string, customerId: string, amount: number, answers: Answer[], marked = false): Promise<void> {
  const { record } = await piObject(paymentIntentId).inspect();
  const ledger = await ledgerFor(customerId, paymentIntentId);
  expect(ledger.map((tx) => tx.amount)).toEqual([-amount]);
  expect((await stripePaymentIntent(paymentIntentId)).metadata.credited).toBe(marked ? "true" : undefined);
  expect(record?.state).toBe("credited");
  expect(record?.mark_state).toBe(marked ? "done" : "off");
  expect(record?.balance_transaction_id).toBe(ledger[0]?.id);
  for (const a of answers) {
    if (a.status === 503) {
      expect(a.code).toBe("stripe_unavailable");
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    } else {
      expect(a.status).toBe(200);
      expect(a.txId).toBe(ledger[0]?.id);
    }
  }
  // Answers are in the order the calls started; once one was credited, none is unfinished.
  // Several may say "credited": every caller that joined the attempt that wrote the credit.
  const firstOk = answers.findIndex((a) => a.status === 200);
  expect(firstOk).toBeGreaterThanOrEqual(0);
  expect(answers.slice(firstOk).every((a) => a.status === 200)).toBe(true);
}

/** GET or POST to the Worker with a bearer token. */
export function authed(token: string, path: string, init: RequestInit = {}): Promise<Response> {
  return call(path, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token}` } });
}

/** POST /billing/top_ups. */
export function topUp(token: string, body: unknown, idempotencyKey?: string): Promise<Response> {
  return authed(token, "/billing/top_ups", {
    method: "POST",
    headers: { "content-type": "application/json", ...(idempotencyKey ? { "idempotency-key": idempotencyKey } : {}) },
    body: JSON.stringify(body),
  });
}

/** Pays a PaymentIntent with the emulator's test card, as Stripe.js would in the browser. */
export async function payWithTestCard(paymentIntentId: string, paymentMethod = "pm_card_visa"): Promise<PaymentIntent> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_intents/${paymentIntentId}/confirm`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ payment_method: paymentMethod }),
  });
  return res.json<PaymentIntent>();
}

/** A new account that created a top-up through the service and paid it. */
export async function paidThroughService(amount: number) {
  const accountId = newAccountId();
  const token = await tokenFor(accountId);
  const created = await json<{ payment_intent_id: string }>(await topUp(token, { amount, currency: "usd" }));
  const pi = await payWithTestCard(created.payment_intent_id);
  const customerId = (await stripePaymentIntent(pi.id)) as PaymentIntent & { customer: string };
  return { accountId, token, pi, customerId: customerId.customer };
}

export interface StripeEventRecord {
  id: string;
  type: string;
  data: { object: { id: string; payment_intent?: string | null } };
}

/** Events the emulator emitted of `type` about `paymentIntentId` (as the object or its payment_intent). */
export async function eventsFor(type: string, paymentIntentId: string): Promise<StripeEventRecord[]> {
  const all = (await emu<{ data: StripeEventRecord[] }>(`/events?type=${encodeURIComponent(type)}`)).data;
  return all.filter((e) => e.data.object.id === paymentIntentId || e.data.object.payment_intent === paymentIntentId);
}

/** Delivers an emulator event to the Worker, signed as Stripe would sign it. */
export async function deliver(eventId: string): Promise<Response> {
  const { payload, signature } = await emu<{ payload: string; signature: string }>(`/events/${eventId}/signed`);
  return postWebhook(payload, signature);
}

/** POST /stripe/webhook with a given payload and signature header. */
export function postWebhook(payload: string, signature: string | null): Promise<Response> {
  return call("/stripe/webhook", {
    method: "POST",
    headers: { "content-type": "application/json", ...(signature === null ? {} : { "stripe-signature": signature }) },
    body: payload,
  });
}

/** Signs and posts a Stripe event built here (the test knows the endpoint secret, as Stripe does). */
export async function postSigned(type: string, object: Record<string, unknown>): Promise<Response> {
  const payload = JSON.stringify({
    id: `evt_${newAccountId("x").replace(/[^A-Za-z0-9]/g, "")}`,
    object: "event",
    type,
    livemode: false,
    created: Math.floor(Date.now() / 1000),
    data: { object },
  });
  return postWebhook(payload, await signatureHeader(payload, TEST_BINDINGS.STRIPE_WEBHOOK_SECRET));
}

/**
 * Waits until the PI object's state satisfies `done`, running its alarm whenever one is due
 * (the platform also fires it on its own). Bounded; throws with the last state if it never holds.
 */
export async function waitForObject(paymentIntentId: string, done: (i: Inspection) => boolean, timeoutMs = 15_000): Promise<Inspection> {
  const deadline = Date.now() + timeoutMs;
  let last = await piObject(paymentIntentId).inspect();
  while (!done(last)) {
    if (Date.now() > deadline)
      throw new Error(`PaymentIntent ${paymentIntentId} never settled: ${JSON.stringify({ record: last.record, adjustments: last.adjustments })}`);
    if (!(await runDurableObjectAlarm(piObject(paymentIntentId)))) await new Promise((r) => setTimeout(r, 25));
    last = await piObject(paymentIntentId).inspect();
  }
  return last;
}

/** Credited, marked, and no reversal left to write. */
export const settledCredit = (i: Inspection) =>
  i.record?.state === "credited" && markSettled(i.record.mark_state) && i.adjustments.every((a) => a.state === "done");

/**
 * GET /billing/balance for `token`: `balance` (= available) and `currency`, the figures every
 * client reads. The answer also has `available` and `held` (test/accounts-api.test.ts checks them).
 */
export async function balanceOf(token: string): Promise<{ balance: number; currency: string }> {
  const { balance, currency } = await json<{ balance: number; currency: string }>(await authed(token, "/billing/balance"));
  return { balance, currency };
}

/** The seller's current service token (the first of TEST_BINDINGS.SERVICE_TOKEN's values). */
export const SERVICE_TOKEN = TEST_BINDINGS.SERVICE_TOKEN.split(",")[0] ?? "";

/** A request to the seller's API (/v1/accounts/…) with the service token, unless `init` carries its own Authorization. */
export function seller(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${SERVICE_TOKEN}`);
  return call(path, { ...init, headers });
}

/** Waits until the emulator is serving (has received, not yet answered) a request matching `filter`. */
export async function waitForRequest(filter: { path?: string; key?: string; method?: string }): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if ((await stripeRequests(filter)).some((r) => r.status === 0)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no request matching ${JSON.stringify(filter)}`);
}

/** Writes a balance transaction the way the older server did (its own key, its own description). */
export async function legacyCredit(customerId: string, paymentIntentId: string, amount: number): Promise<string> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/customers/${customerId}/balance_transactions`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ amount: String(-amount), currency: "usd", description: "legacy top-up", "metadata[payment_intent]": paymentIntentId }),
  });
  return (await res.json<{ id: string }>()).id;
}

/** Ledger entries for `paymentIntentId`, as amounts in Stripe's sign (negative = credit), oldest first. */
export async function ledgerAmounts(customerId: string, paymentIntentId: string): Promise<number[]> {
  return (await ledgerFor(customerId, paymentIntentId)).map((tx) => tx.amount).reverse();
}

/** The PI object's alarm, if one is armed. */
export async function alarmOf(paymentIntentId: string): Promise<number | null> {
  return runInDurableObject(piObject(paymentIntentId), async (_instance, state) => state.storage.getAlarm());
}

/**
 * Runs the PI object's alarm until nothing is scheduled (bounded). The platform may be running
 * an alarm on its own when runDurableObjectAlarm finds none, so "nothing scheduled" must hold
 * across a pause before it counts.
 */
export async function drainAlarms(paymentIntentId: string, rounds = 40): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < rounds && quiet < 3; i++) {
    if (await runDurableObjectAlarm(piObject(paymentIntentId))) quiet = 0;
    else {
      quiet++;
      await new Promise((r) => setTimeout(r, 60));
    }
  }
}

/** The id of the newest event of `type` about `paymentIntentId`. */
export async function lastEvent(type: string, paymentIntentId: string): Promise<string> {
  const last = (await eventsFor(type, paymentIntentId)).at(-1);
  if (!last) throw new Error(`no ${type} for ${paymentIntentId}`);
  return last.id;
}

/**
 * The PI's entry in the operator list (GET /operator/credits), or null when it is not listed.
 * Every test file running at the time adds to that list, which is ordered by PaymentIntent id:
 * it is read page by page from just before this id (any id between starts with the id's first
 * characters) until a page reaches past it.
 */
export async function operatorEntry(paymentIntentId: string): Promise<{ state: string; reason: string | null } | null> {
  type Page = { data: { payment_intent_id: string; state: string; reason: string | null }[]; next_after: string | null };
  let after: string | null = paymentIntentId.slice(0, -1);
  while (after !== null && after < paymentIntentId) {
    const page: Page = await json<Page>(
      await call(`/operator/credits?limit=50&after=${encodeURIComponent(after)}`, { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } }),
    );
    const entry = page.data.find((e) => e.payment_intent_id === paymentIntentId);
    if (entry) return entry;
    after = page.next_after;
  }
  return null;
}

/** The Worker over `vars` on top of the test bindings (the asset store included): a deployment configured otherwise. */
export function callWith(vars: Record<string, unknown>, path: string, init: RequestInit = {}): Promise<Response> {
  return Promise.resolve(buildApp().fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...vars }, createExecutionContext()));
}

/** A Content-Security-Policy's directives by name, each with its sources. */
export function policyDirectives(policy: string | null): Map<string, string[]> {
  if (policy === null) throw new Error("no Content-Security-Policy header");
  return new Map(
    policy
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((parts) => parts[0])
      .map(([name, ...sources]) => [name as string, sources]),
  );
}
