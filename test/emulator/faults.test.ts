// Fault injection, latency, the request log and counters, reset and direct object creation:
// the control API a test uses to make Stripe misbehave on purpose.

import Stripe from "stripe";
import { beforeEach, describe, expect, it } from "vitest";
import type { FaultRule } from "./faults.js";
import type { Customer, PaymentIntent, Refund } from "./store.js";
import { errorOf, rejectionOf, stripeErrorOf, unique, useEmulator, waitFor, type ApiAnswer } from "./harness.js";

// hang_ms bounds a `hang` fault even if a caller never gives up.
const h = useEmulator({ hangMs: 5000 });

const TX_PATH = "/v1/customers/*/balance_transactions";
const TX_ENDPOINT = "POST /v1/customers/:id/balance_transactions";

let customer: Customer;

beforeEach(async () => {
  await h.control("POST", "/reset");
  customer = await h.control<Customer>("POST", "/customers", { email: `${unique("faults")}@example.com` });
});

function credit(key: string | undefined, amount = -500): Promise<ApiAnswer> {
  const params = { amount: String(amount), currency: "usd" };
  return h.api("POST", `/v1/customers/${customer.id}/balance_transactions`, key === undefined ? { params } : { params, idempotencyKey: key });
}

function fault(rule: Record<string, unknown>): Promise<FaultRule> {
  return h.control<FaultRule>("POST", "/faults", rule);
}

async function txWrites(): Promise<number> {
  return (await h.stats()).writes.customer_balance_transaction ?? 0;
}

async function balance(): Promise<number> {
  return ((await h.stripe.customers.retrieve(customer.id)) as Stripe.Customer).balance;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: performance.now() - started };
}

describe("error_500", () => {
  it("fails before applying anything and is saved under the key", async () => {
    const rule = await fault({ kind: "error_500", method: "POST", path: TX_PATH });
    expect(rule).toMatchObject({ kind: "error_500", method: "POST", path: TX_PATH, times: 1, every: 1, saved: true, fired: 0 });

    const first = await credit("e500");
    expect(first.status).toBe(500);
    expect(errorOf(first).type).toBe("api_error");
    const retry = await credit("e500");
    expect(retry.status).toBe(500);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await txWrites()).toBe(0);

    const log = await h.requests({ key: "e500" });
    expect(log.map((r) => [r.status, r.fault, r.replayed])).toEqual([
      [500, "error_500", false],
      [500, null, true],
    ]);
    const rules = await h.control<{ data: FaultRule[] }>("GET", "/faults");
    expect(rules.data[0]).toMatchObject({ id: rule.id, fired: 1, times: 0 });
    expect((await h.stats()).faults_fired).toBe(1);
  });

  it("with saved:false is not saved: a retry with the same key runs and writes once", async () => {
    await fault({ kind: "error_500", method: "POST", path: TX_PATH, saved: false });
    expect((await credit("e500-unsaved")).status).toBe(500);
    const retry = await credit("e500-unsaved");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-500);
  });

  it("fires only for the method, path and key pattern it names", async () => {
    await fault({ kind: "error_500", method: "POST", path: TX_PATH, key: "only-*" });
    expect((await h.api("GET", `/v1/customers/${customer.id}/balance_transactions`)).status).toBe(200);
    expect((await credit("other-key")).status).toBe(200);
    expect((await credit(undefined)).status).toBe(200);
    expect((await h.api("POST", "/v1/customers", { idempotencyKey: "only-customers" })).status).toBe(200);
    expect((await credit("only-this")).status).toBe(500);
  });
});

describe("drop", () => {
  it("applies and saves the write, then closes the connection: raw fetch rejects, a retry replays", async () => {
    await fault({ kind: "drop", method: "POST", path: TX_PATH });
    await expect(credit("drop-raw")).rejects.toThrow();

    // The caller never heard back, yet the write happened.
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-500);
    const log = await h.requests({ key: "drop-raw" });
    expect(log.map((r) => [r.fault, r.status])).toEqual([["drop", 599]]);

    const retry = await credit("drop-raw");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    const listed = await h.stripe.customers.listBalanceTransactions(customer.id);
    expect(listed.data.map((t) => t.id)).toEqual([(retry.body as { id: string }).id]);
    expect(await txWrites()).toBe(1);
  });

  it("the stripe package without retries throws StripeConnectionError; the same key then gets the object", async () => {
    await fault({ kind: "drop", method: "POST", path: TX_PATH });
    const params = { amount: -700, currency: "usd" };
    const err = await rejectionOf(h.stripe.customers.createBalanceTransaction(customer.id, params, { idempotencyKey: "drop-client" }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(await balance()).toBe(-700);

    const retried = await h.stripe.customers.createBalanceTransaction(customer.id, params, { idempotencyKey: "drop-client" });
    expect(retried.amount).toBe(-700);
    expect(retried.ending_balance).toBe(-700);
    expect((await h.requests({ key: "drop-client" })).map((r) => [r.fault, r.replayed])).toEqual([
      ["drop", false],
      [null, true],
    ]);
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-700);
  });

  it("the stripe package with maxNetworkRetries 2 and an explicit key ends with exactly one write", async () => {
    await fault({ kind: "drop", method: "POST", path: TX_PATH });
    const retrying = h.client({ maxNetworkRetries: 2 });
    const tx = await retrying.customers.createBalanceTransaction(customer.id, { amount: -900, currency: "usd" }, { idempotencyKey: "drop-retry" });
    expect(tx.ending_balance).toBe(-900);
    const log = await h.requests({ key: "drop-retry" });
    expect(log.map((r) => [r.status, r.fault, r.replayed])).toEqual([
      [599, "drop", false],
      [200, null, true],
    ]);
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-900);
  });
});

describe("rate_limit", () => {
  it("answers 429 with Stripe-Should-Retry as configured, and is not saved", async () => {
    await fault({ kind: "rate_limit", path: TX_PATH, should_retry: true });
    const yes = await credit("rl-1");
    expect(yes.status).toBe(429);
    expect(yes.headers.get("stripe-should-retry")).toBe("true");
    expect(errorOf(yes)).toMatchObject({ code: "rate_limit" });

    await fault({ kind: "rate_limit", path: TX_PATH, should_retry: false });
    const no = await credit("rl-1");
    expect(no.status).toBe(429);
    expect(no.headers.get("stripe-should-retry")).toBe("false");

    await fault({ kind: "rate_limit", path: TX_PATH });
    const plain = await credit("rl-1");
    expect(plain.status).toBe(429);
    expect(plain.headers.get("stripe-should-retry")).toBeNull();

    expect(await txWrites()).toBe(0);
    const ok = await credit("rl-1");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
  });

  it("the stripe package retries a 429 only when Stripe-Should-Retry is true", async () => {
    const retrying = h.client({ maxNetworkRetries: 2 });
    await fault({ kind: "rate_limit", path: TX_PATH, should_retry: false });
    const refused = await stripeErrorOf(retrying.customers.createBalanceTransaction(customer.id, { amount: -1, currency: "usd" }, { idempotencyKey: "rl-no" }));
    expect(refused).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    expect(refused.statusCode).toBe(429);
    expect((await h.requests({ key: "rl-no" })).map((r) => r.status)).toEqual([429]);

    await fault({ kind: "rate_limit", path: TX_PATH, should_retry: true });
    const tx = await retrying.customers.createBalanceTransaction(customer.id, { amount: -2, currency: "usd" }, { idempotencyKey: "rl-yes" });
    expect(tx.amount).toBe(-2);
    expect((await h.requests({ key: "rl-yes" })).map((r) => r.status)).toEqual([429, 200]);
    expect(await txWrites()).toBe(1);
  });
});

describe("in_use", () => {
  it("answers 409 idempotency_key_in_use without running; not saved", async () => {
    await fault({ kind: "in_use", path: TX_PATH });
    const busy = await credit("busy");
    expect(busy.status).toBe(409);
    expect(errorOf(busy).code).toBe("idempotency_key_in_use");
    expect(await txWrites()).toBe(0);
    const retry = await credit("busy");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
  });
});

describe("hang", () => {
  it("never answers: a client with timeout 300 gives up; nothing written, the key runs again", async () => {
    await fault({ kind: "hang", path: TX_PATH });
    const impatient = h.client({ timeout: 300 });
    const { value: err, ms } = await timed(() =>
      rejectionOf(impatient.customers.createBalanceTransaction(customer.id, { amount: -300, currency: "usd" }, { idempotencyKey: "hang-1" })),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(ms).toBeGreaterThanOrEqual(280);
    expect(ms).toBeLessThan(2000);

    // The emulator notices the caller left and logs the request.
    const log = await waitFor(
      async () => {
        const l = await h.requests({ key: "hang-1" });
        return l.length > 0 ? l : undefined;
      },
      3000,
      "the hung request to be logged",
    );
    expect(log[0]).toMatchObject({ fault: "hang", status: 599 });
    expect(await txWrites()).toBe(0);

    const retry = await impatient.customers.createBalanceTransaction(customer.id, { amount: -300, currency: "usd" }, { idempotencyKey: "hang-1" });
    expect(retry.ending_balance).toBe(-300);
    expect((await h.requests({ key: "hang-1" })).map((r) => r.replayed)).toEqual([false, false]);
    expect(await txWrites()).toBe(1);
  });

  it("with apply:true the write exists although the caller gave up; a retry replays it", async () => {
    await fault({ kind: "hang", path: TX_PATH, apply: true });
    const impatient = h.client({ timeout: 300 });
    const err = await rejectionOf(impatient.customers.createBalanceTransaction(customer.id, { amount: -400, currency: "usd" }, { idempotencyKey: "hang-2" }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-400);

    const retry = await h.stripe.customers.createBalanceTransaction(customer.id, { amount: -400, currency: "usd" }, { idempotencyKey: "hang-2" });
    expect(retry.ending_balance).toBe(-400);
    await waitFor(async () => ((await h.requests({ key: "hang-2" })).length === 2 ? true : undefined), 3000, "both requests logged");
    const log = await h.requests({ key: "hang-2" });
    expect(log.map((r) => r.replayed).sort()).toEqual([false, true]);
    expect(await txWrites()).toBe(1);
  });
});

describe("error_400", () => {
  it("refuses permanently while running: nothing applied, saved under the key and replayed", async () => {
    const rule = await fault({ kind: "error_400", method: "POST", path: TX_PATH });
    expect(rule).toMatchObject({ kind: "error_400", times: 1, saved: true, replays: false });

    const first = await credit("e400");
    expect(first.status).toBe(400);
    expect(errorOf(first)).toMatchObject({ type: "invalid_request_error", code: "parameter_invalid" });
    const retry = await credit("e400");
    expect(retry.status).toBe(400);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(errorOf(retry).code).toBe("parameter_invalid");
    expect(await txWrites()).toBe(0);
    expect(await balance()).toBe(0);
    expect((await h.requests({ key: "e400" })).map((r) => [r.status, r.fault, r.replayed])).toEqual([
      [400, "error_400", false],
      [400, null, true],
    ]);
  });

  it("a new key runs again: refused while the rule has times left, then applied", async () => {
    await fault({ kind: "error_400", method: "POST", path: TX_PATH, times: 2 });
    expect((await credit("e400-a")).status).toBe(400);
    expect((await credit("e400-b")).status).toBe(400);
    const third = await credit("e400-c");
    expect(third.status).toBe(200);
    expect(await txWrites()).toBe(1);
    // The refused keys keep their refusal for their whole life.
    expect((await credit("e400-a")).status).toBe(400);
    expect(await txWrites()).toBe(1);
  });

  it("the stripe package sees an InvalidRequestError and does not retry it", async () => {
    await fault({ kind: "error_400", method: "POST", path: TX_PATH });
    const err = await stripeErrorOf(
      h.client({ maxNetworkRetries: 2 }).customers.createBalanceTransaction(customer.id, { amount: -300, currency: "usd" }, { idempotencyKey: "e400-sdk" }),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err.code).toBe("parameter_invalid");
    expect(await h.requests({ key: "e400-sdk" })).toHaveLength(1);
  });

  it("on a GET it is a plain 400", async () => {
    await fault({ kind: "error_400", method: "GET", path: `/v1/customers/${customer.id}` });
    const refused = await h.api("GET", `/v1/customers/${customer.id}`);
    expect(refused.status).toBe(400);
    expect(errorOf(refused).code).toBe("parameter_invalid");
    expect((await h.api("GET", `/v1/customers/${customer.id}`)).status).toBe(200);
  });
});

describe("replays: true", () => {
  it("drop with replays: applied once, then the original and every replay dropped until times runs out", async () => {
    const rule = await fault({ kind: "drop", method: "POST", path: TX_PATH, replays: true, times: 3 });
    expect(rule.replays).toBe(true);
    await expect(credit("drop-all")).rejects.toThrow();
    await expect(credit("drop-all")).rejects.toThrow();
    await expect(credit("drop-all")).rejects.toThrow();
    const fourth = await credit("drop-all");
    expect(fourth.status).toBe(200);
    expect(fourth.headers.get("idempotent-replayed")).toBe("true");
    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-500);
    expect((await h.requests({ key: "drop-all" })).map((r) => [r.fault, r.replayed])).toEqual([
      ["drop", false],
      ["drop", true],
      ["drop", true],
      [null, true],
    ]);
  });

  it("without replays (the default) a replay is answered before any fault: the rule waits for a new request", async () => {
    await fault({ kind: "drop", method: "POST", path: TX_PATH, times: 2 });
    await expect(credit("drop-once")).rejects.toThrow();
    expect((await credit("drop-once")).status).toBe(200);
    const rules = await h.control<{ data: FaultRule[] }>("GET", "/faults");
    expect(rules.data[0]).toMatchObject({ fired: 1, times: 1 });
  });

  it("error_500 and error_400 with replays answer a replay with their error, and save nothing over the original", async () => {
    expect((await credit("replay-err")).status).toBe(200);
    await fault({ kind: "error_500", method: "POST", path: TX_PATH, replays: true });
    await fault({ kind: "error_400", method: "POST", path: TX_PATH, replays: true });
    expect((await credit("replay-err")).status).toBe(500);
    const refused = await credit("replay-err");
    expect(refused.status).toBe(400);
    expect(errorOf(refused).code).toBe("parameter_invalid");
    const clean = await credit("replay-err");
    expect(clean.status).toBe(200);
    expect(clean.headers.get("idempotent-replayed")).toBe("true");
    expect(await txWrites()).toBe(1);
  });

  it("hang with replays holds a replay with no answer until the caller gives up", async () => {
    expect((await credit("replay-hang")).status).toBe(200);
    await fault({ kind: "hang", method: "POST", path: TX_PATH, replays: true });
    const started = performance.now();
    const err = await rejectionOf(
      h.client({ timeout: 300 }).customers.createBalanceTransaction(customer.id, { amount: -500, currency: "usd" }, { idempotencyKey: "replay-hang" }),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect((await credit("replay-hang")).status).toBe(200);
    expect(await txWrites()).toBe(1);
  });

  it("must be a boolean", async () => {
    expect((await h.controlRaw("POST", "/faults", { kind: "drop", replays: "yes" })).status).toBe(400);
  });
});

describe("ledger padding", () => {
  it("adds count unrelated entries fast, outside the request log and the rate limit, balance unchanged", async () => {
    await h.control("POST", "/config", { rate_limit_per_second: 1 });
    try {
      expect((await credit("before-pad")).status).toBe(200);
      const before = (await h.stats()).requests;
      const started = performance.now();
      const padded = await h.control<{ added: number; balance: number; ledger_length: number }>("POST", `/customers/${customer.id}/balance_transactions/pad`, {
        count: 2500,
      });
      expect(performance.now() - started).toBeLessThan(2000);
      expect(padded).toEqual({ added: 2500, balance: -500, ledger_length: 2501 });
      expect((await h.stats()).requests).toBe(before);
      const ledger = await h.control<{ data: { amount: number; metadata: Record<string, string> }[] }>("GET", `/customers/${customer.id}/balance_transactions`);
      expect(ledger.data).toHaveLength(2501);
      expect(ledger.data.slice(0, 2500).every((t) => t.metadata.padding === "true" && t.amount === 0)).toBe(true);
      // The entry written before the padding is now the oldest, 26 pages of 100 deep.
      expect(ledger.data[2500]).toMatchObject({ amount: -500 });
    } finally {
      await h.control("POST", "/config", { rate_limit_per_second: 0 });
    }
  });

  it("with an amount, alternates +amount/−amount so an even count leaves the balance as it was", async () => {
    const padded = await h.control<{ balance: number }>("POST", `/customers/${customer.id}/balance_transactions/pad`, { count: 4, amount: 7 });
    expect(padded.balance).toBe(0);
    const ledger = await h.control<{ data: { amount: number }[] }>("GET", `/customers/${customer.id}/balance_transactions`);
    expect(ledger.data.map((t) => t.amount)).toEqual([-7, 7, -7, 7]);
  });

  it("refuses a bad count (400) and an unknown customer (404)", async () => {
    expect((await h.controlRaw("POST", `/customers/${customer.id}/balance_transactions/pad`, {})).status).toBe(400);
    expect((await h.controlRaw("POST", `/customers/${customer.id}/balance_transactions/pad`, { count: 0 })).status).toBe(400);
    expect((await h.controlRaw("POST", `/customers/cus_missing/balance_transactions/pad`, { count: 1 })).status).toBe(404);
  });
});

describe("times and every", () => {
  it("times: N fails the next N matching requests", async () => {
    await fault({ kind: "error_500", method: "GET", path: "/v1/customers/*", times: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await h.api("GET", `/v1/customers/${customer.id}`)).status);
    expect(statuses).toEqual([500, 500, 200, 200]);
  });

  it("every: 3 fails every third matching request (up to times)", async () => {
    await fault({ kind: "error_500", method: "GET", path: "/v1/customers/*", every: 3, times: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) statuses.push((await h.api("GET", `/v1/customers/${customer.id}`)).status);
    expect(statuses).toEqual([200, 200, 500, 200, 200, 500, 200, 200, 200]);
    const rules = await h.control<{ data: FaultRule[] }>("GET", "/faults");
    expect(rules.data[0]).toMatchObject({ fired: 2, times: 0 });
  });

  it("DELETE /_emulator/faults removes every rule", async () => {
    await fault({ kind: "error_500", path: "/v1/**", times: 100 });
    await h.control("DELETE", "/faults");
    expect((await h.control<{ data: FaultRule[] }>("GET", "/faults")).data).toEqual([]);
    expect((await h.api("GET", `/v1/customers/${customer.id}`)).status).toBe(200);
  });
});

describe("latency", () => {
  it("a fixed latency rule delays every API request until removed", async () => {
    const rule = await h.control("POST", "/latency", { ms: 200 });
    expect(rule).toEqual({ ms: 200, jitter_ms: 0, method: "*", path: "/v1/**" });
    const slow = await timed(() => h.api("GET", `/v1/customers/${customer.id}`));
    expect(slow.value.status).toBe(200);
    expect(slow.ms).toBeGreaterThanOrEqual(195);

    // The control API itself is never delayed.
    expect((await timed(() => h.stats())).ms).toBeLessThan(150);

    await h.control("DELETE", "/latency");
    expect((await timed(() => h.api("GET", `/v1/customers/${customer.id}`))).ms).toBeLessThan(150);
  });

  it("a path-specific rule delays only its path; the newest matching rule wins", async () => {
    await h.control("POST", "/latency", { ms: 250, method: "POST", path: TX_PATH });
    const slowWrite = await timed(() => credit(undefined));
    expect(slowWrite.value.status).toBe(200);
    expect(slowWrite.ms).toBeGreaterThanOrEqual(245);
    expect((await timed(() => h.api("GET", `/v1/customers/${customer.id}/balance_transactions`))).ms).toBeLessThan(150);
    expect((await timed(() => h.api("GET", `/v1/customers/${customer.id}`))).ms).toBeLessThan(150);

    await h.control("POST", "/latency", { ms: 0, method: "POST", path: TX_PATH });
    expect((await timed(() => credit(undefined))).ms).toBeLessThan(150);
    await h.control("DELETE", "/latency");
  });

  it("latency_ms in the config is the default delay", async () => {
    await h.control("POST", "/config", { latency_ms: 150 });
    try {
      const slow = await timed(() => h.api("GET", `/v1/customers/${customer.id}`));
      expect(slow.ms).toBeGreaterThanOrEqual(145);
      const log = await h.requests({ endpoint: "GET /v1/customers/:id" });
      expect(log.at(-1)?.duration_ms).toBeGreaterThanOrEqual(145);
    } finally {
      await h.control("POST", "/config", { latency_ms: 0 });
    }
    expect((await timed(() => h.api("GET", `/v1/customers/${customer.id}`))).ms).toBeLessThan(100);
  });
});

describe("request log and counters", () => {
  it("GET /_emulator/requests filters by endpoint, key, path and method", async () => {
    await credit("log-a-1", -1);
    await credit("log-a-2", -2);
    await credit("log-b-1", -3);
    await h.api("GET", `/v1/customers/${customer.id}`);

    const a = await h.requests({ endpoint: TX_ENDPOINT, key: "log-a-*" });
    expect(a.map((r) => r.idempotency_key)).toEqual(["log-a-1", "log-a-2"]);
    expect(a[0]).toMatchObject({
      method: "POST",
      path: `/v1/customers/${customer.id}/balance_transactions`,
      endpoint: TX_ENDPOINT,
      params: { amount: "-1", currency: "usd" },
      status: 200,
      replayed: false,
      fault: null,
    });
    expect(a[0]?.id).toMatch(/^req_/);

    expect((await h.requests({ endpoint: "GET /v1/customers/:id" })).map((r) => r.path)).toEqual([`/v1/customers/${customer.id}`]);
    expect((await h.requests({ method: "get" })).length).toBe(1);
    expect((await h.requests({ path: "/v1/customers/*/balance_transactions" })).length).toBe(3);
    expect(await h.requests({ key: "nope-*" })).toEqual([]);
  });

  it("GET /_emulator/stats counts calls per endpoint, keys and replays", async () => {
    await credit("stats-1");
    await credit("stats-1");
    await credit("stats-2");
    await h.api("GET", `/v1/customers/${customer.id}`);
    await h.api("GET", `/v1/customers/${customer.id}/balance_transactions`);

    const stats = await h.stats();
    expect(stats.requests).toBe(5);
    expect(stats.calls).toEqual({
      [TX_ENDPOINT]: 3,
      "GET /v1/customers/:id": 1,
      "GET /v1/customers/:id/balance_transactions": 1,
    });
    expect(stats.keys).toEqual({ "stats-1": 2, "stats-2": 1 });
    expect(stats.replays).toBe(1);
    expect(stats.writes).toEqual({ customer: 1, customer_balance_transaction: 2 });
    expect(stats.idempotency_keys).toBe(2);
  });
});

describe("reset", () => {
  it("forgets objects, keys, faults, latency rules, the log and the counters", async () => {
    await credit("reset-key");
    await fault({ kind: "error_500", times: 5 });
    await h.control("POST", "/latency", { ms: 300 });

    expect(await h.control("POST", "/reset")).toEqual({ ok: true });

    const gone = await stripeErrorOf(h.stripe.customers.retrieve(customer.id));
    expect(gone.statusCode).toBe(404);
    expect((await h.control<{ data: FaultRule[] }>("GET", "/faults")).data).toEqual([]);
    const stats = await h.stats();
    expect(stats).toMatchObject({ calls: { "GET /v1/customers/:id": 1 }, keys: {}, replays: 0, faults_fired: 0, writes: {}, idempotency_keys: 0 });
    expect((await h.requests()).map((r) => r.endpoint)).toEqual(["GET /v1/customers/:id"]);
    const fresh = await h.control<Customer>("POST", "/customers", {});
    const fast = await timed(() => h.api("GET", `/v1/customers/${fresh.id}`));
    expect(fast.value.status).toBe(200);
    expect(fast.ms).toBeLessThan(150);
  });
});

describe("direct creation", () => {
  it("POST /_emulator/customers creates a customer the API can read", async () => {
    const c = await h.control<Customer>("POST", "/customers", { email: "direct@example.com", name: "Direct", metadata: { account_id: "acct_direct" } });
    expect(c.id).toMatch(/^cus_/);
    const fetched = (await h.stripe.customers.retrieve(c.id)) as Stripe.Customer;
    expect(fetched).toMatchObject({ email: "direct@example.com", name: "Direct", metadata: { account_id: "acct_direct" }, balance: 0 });
    const found = await h.stripe.customers.search({ query: "metadata['account_id']:'acct_direct'" });
    expect(found.data.map((x) => x.id)).toEqual([c.id]);
  });

  it("POST /_emulator/payment_intents creates a succeeded PaymentIntent with a charge", async () => {
    const pi = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 1000, currency: "usd", customer: customer.id, metadata: { topup: "t1" } });
    expect(pi).toMatchObject({ status: "succeeded", amount: 1000, amount_received: 1000, currency: "usd", customer: customer.id, metadata: { topup: "t1" } });
    const viaApi = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(viaApi.status).toBe("succeeded");
    const charge = await h.stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge).toMatchObject({ amount: 1000, payment_intent: pi.id, customer: customer.id });

    const refund = await h.control<Refund>("POST", `/payment_intents/${pi.id}/refund`, { amount: 250 });
    expect(refund).toMatchObject({ object: "refund", amount: 250, payment_intent: pi.id });
    expect((await h.stripe.charges.retrieve(pi.latest_charge as string)).amount_refunded).toBe(250);
  });

  it("other statuses: processing (then succeed), requires_payment_method, canceled", async () => {
    const processing = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 500, currency: "usd", status: "processing" });
    expect(processing.status).toBe("processing");
    expect(processing.amount_received).toBe(0);
    const settled = await h.control<PaymentIntent>("POST", `/payment_intents/${processing.id}/succeed`);
    expect(settled).toMatchObject({ status: "succeeded", amount_received: 500 });
    expect((await h.controlRaw("POST", `/payment_intents/${processing.id}/succeed`)).status).toBe(400);

    const open = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 500, currency: "usd", status: "requires_payment_method" });
    expect((await h.stripe.paymentIntents.confirm(open.id, { payment_method: "pm_card_visa" })).status).toBe("succeeded");
    const canceled = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 500, currency: "usd", status: "canceled" });
    expect((await h.stripe.paymentIntents.retrieve(canceled.id)).status).toBe("canceled");
  });

  it("GET /events?payment_intent= keeps the events about one PaymentIntent, its charge, refunds and disputes", async () => {
    const pi = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 800, currency: "usd", customer: customer.id });
    const other = await h.control<PaymentIntent>("POST", "/payment_intents", { amount: 900, currency: "usd", customer: customer.id });
    await h.control("POST", `/payment_intents/${pi.id}/refund`, { amount: 100 });
    await h.control("POST", `/payment_intents/${pi.id}/dispute`, {});
    const about = await h.control<{ data: { type: string; data: { object: { id: string; payment_intent?: string } } }[] }>(
      "GET",
      `/events?payment_intent=${pi.id}`,
    );
    expect(about.data.map((e) => e.type)).toEqual([
      "charge.succeeded",
      "payment_intent.succeeded",
      "refund.created",
      "charge.refunded",
      "charge.dispute.created",
    ]);
    expect(about.data.every((e) => e.data.object.id === pi.id || e.data.object.payment_intent === pi.id)).toBe(true);
    const refunds = await h.control<{ data: unknown[] }>("GET", `/events?payment_intent=${pi.id}&type=charge.refunded`);
    expect(refunds.data).toHaveLength(1);
    expect((await h.control<{ data: unknown[] }>("GET", `/events?payment_intent=${other.id}`)).data).toHaveLength(2);
  });

  it("the control API refuses bad input with 400 (or 404 for a missing object)", async () => {
    expect((await h.controlRaw("POST", "/faults", { kind: "explode" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/faults", { kind: "rate_limit", should_retry: "yes" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/latency", { ms: "slow" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/config", { colour: "blue" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_intents", { currency: "usd" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_intents", { amount: 100, status: "requires_capture" })).status).toBe(400);
    expect((await h.controlRaw("POST", "/payment_intents/pi_missing/refund", {})).status).toBe(404);
    expect((await h.controlRaw("POST", "/disputes/dp_missing/close", { status: "won" })).status).toBe(404);
    const badJson = await fetch(`${h.url}/_emulator/faults`, { method: "POST", body: "{not json" });
    expect(badJson.status).toBe(400);
    expect((await h.control<{ ok: boolean }>("GET", "/health")).ok).toBe(true);
  });
});

describe("Stripe's rate limit", () => {
  it("admits rate_limit_per_second requests per second and answers 429 beyond, saving nothing", async () => {
    await h.control("POST", "/config", { rate_limit_per_second: 5 });
    try {
      // Wait for the start of a fresh one-second window, then send 8 at once.
      await new Promise((r) => setTimeout(r, 1100));
      const statuses = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          fetch(`${h.url}/v1/customers`, {
            method: "POST",
            headers: { authorization: "Bearer sk_test_emulator", "idempotency-key": unique(`rl-${i}`) },
            body: "",
          }).then((r) => r.status),
        ),
      );
      expect(statuses.filter((s) => s === 200)).toHaveLength(5);
      expect(statuses.filter((s) => s === 429)).toHaveLength(3);
      const stats = await h.control<{ rate_limited: number }>("GET", "/stats");
      expect(stats.rate_limited).toBeGreaterThanOrEqual(3);
      await new Promise((r) => setTimeout(r, 1100));
      expect((await fetch(`${h.url}/v1/customers`, { headers: { authorization: "Bearer sk_test_emulator" } })).status).toBe(200);
    } finally {
      await h.control("POST", "/config", { rate_limit_per_second: 0 });
    }
  });
});
