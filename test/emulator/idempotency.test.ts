// Stripe's idempotency rules, one row at a time (docs.stripe.com/api/idempotent_requests): what is
// replayed, what is refused, what is not saved, and when a key is forgotten.

import Stripe from "stripe";
import { beforeEach, describe, expect, it } from "vitest";
import type { Customer } from "./store.js";
import { errorOf, sleep, stripeErrorOf, unique, useEmulator, type ApiAnswer } from "./harness.js";

const h = useEmulator();

const TX_ENDPOINT = "POST /v1/customers/:id/balance_transactions";

let customer: Customer;

beforeEach(async () => {
  await h.control("POST", "/reset");
  customer = await h.control<Customer>("POST", "/customers", { email: `${unique("idem")}@example.com` });
});

/** A credit through the raw API, so headers and the exact body can be compared. */
function credit(key: string | undefined, params: Record<string, string> = { amount: "-500", currency: "usd" }, customerId = customer.id): Promise<ApiAnswer> {
  return h.api("POST", `/v1/customers/${customerId}/balance_transactions`, key === undefined ? { params } : { params, idempotencyKey: key });
}

async function txWrites(): Promise<number> {
  return (await h.stats()).writes.customer_balance_transaction ?? 0;
}

async function balance(): Promise<number> {
  return ((await h.stripe.customers.retrieve(customer.id)) as Stripe.Customer).balance;
}

describe("same key, same endpoint, same parameters", () => {
  it("replays the first answer byte for byte with Idempotent-Replayed: true and writes once", async () => {
    const first = await credit("same-1");
    expect(first.status).toBe(200);
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    // Same parameters in another order are the same request.
    const second = await credit("same-1", { currency: "usd", amount: "-500" });
    expect(second.status).toBe(200);
    expect(second.headers.get("idempotent-replayed")).toBe("true");
    expect(second.text).toBe(first.text);
    expect(second.headers.get("original-request")).toBe(first.headers.get("request-id"));
    expect(second.headers.get("request-id")).not.toBe(first.headers.get("request-id"));

    const third = await credit("same-1");
    expect(third.text).toBe(first.text);

    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-500);
    const stats = await h.stats();
    expect(stats.replays).toBe(2);
    expect(stats.keys["same-1"]).toBe(3);
    expect(stats.calls[TX_ENDPOINT]).toBe(3);
  });

  it("replays through the stripe package too (same object, logged as a replay)", async () => {
    const a = await h.stripe.customers.create({ email: "same@example.com" }, { idempotencyKey: "same-client" });
    const b = await h.stripe.customers.create({ email: "same@example.com" }, { idempotencyKey: "same-client" });
    expect(b.id).toBe(a.id);
    // (With the fetch client `lastResponse` is the fetch Response; the request log is simpler.)
    expect((await h.requests({ key: "same-client" })).map((r) => [r.status, r.replayed])).toEqual([
      [200, false],
      [200, true],
    ]);
    expect((await h.stats()).writes.customer).toBe(2); // the beforeEach customer and this one
  });

  it("replays an error raised while executing (a 400 and a 404), without running again", async () => {
    const pi = await h.control<{ id: string }>("POST", "/payment_intents", { amount: 1000, currency: "usd" });
    const tooLarge = await h.api("POST", "/v1/refunds", { params: { payment_intent: pi.id, amount: "5000" }, idempotencyKey: "exec-400" });
    expect(tooLarge.status).toBe(400);
    expect(errorOf(tooLarge).code).toBe("amount_too_large");
    const again = await h.api("POST", "/v1/refunds", { params: { payment_intent: pi.id, amount: "5000" }, idempotencyKey: "exec-400" });
    expect(again.status).toBe(400);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.text).toBe(tooLarge.text);

    const missing = await credit("exec-404", { amount: "-1", currency: "usd" }, "cus_missing");
    expect(missing.status).toBe(404);
    const replayed = await credit("exec-404", { amount: "-1", currency: "usd" }, "cus_missing");
    expect(replayed.status).toBe(404);
    expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    expect(replayed.text).toBe(missing.text);
  });
});

describe("a key reused for something else", () => {
  it("other parameters → 400 idempotency_error with Stripe's message, nothing written", async () => {
    await credit("params-1");
    const other = await credit("params-1", { amount: "-600", currency: "usd" });
    expect(other.status).toBe(400);
    expect(other.headers.get("idempotent-replayed")).toBeNull();
    expect(errorOf(other)).toEqual({
      type: "idempotency_error",
      message:
        "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than 'params-1' if you meant to execute a different request.",
    });
    // An extra parameter is a different request too.
    const extra = await credit("params-1", { amount: "-500", currency: "usd", description: "x" });
    expect(errorOf(extra).type).toBe("idempotency_error");

    const viaClient = await stripeErrorOf(
      h.stripe.customers.createBalanceTransaction(customer.id, { amount: -700, currency: "usd" }, { idempotencyKey: "params-1" }),
    );
    expect(viaClient).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(viaClient.statusCode).toBe(400);

    expect(await txWrites()).toBe(1);
    expect(await balance()).toBe(-500);
  });

  it("another endpoint → 400 idempotency_error", async () => {
    await credit("endpoint-1");
    const other = await h.api("POST", "/v1/customers", { params: { email: "x@example.com" }, idempotencyKey: "endpoint-1" });
    expect(other.status).toBe(400);
    expect(errorOf(other).type).toBe("idempotency_error");
    expect(errorOf(other).message).toBe(
      `Keys for idempotent requests can only be used for the same endpoint they were first used for ('/v1/customers' vs '/v1/customers/${customer.id}/balance_transactions'). Try using a key other than 'endpoint-1' if you meant to execute a different request.`,
    );

    // The same route for another customer is another request as well.
    const second = await h.control<Customer>("POST", "/customers", {});
    const otherCustomer = await credit("endpoint-1", { amount: "-500", currency: "usd" }, second.id);
    expect(otherCustomer.status).toBe(400);
    expect(errorOf(otherCustomer).type).toBe("idempotency_error");
    expect(errorOf(otherCustomer).message).toContain(
      `('/v1/customers/${second.id}/balance_transactions' vs '/v1/customers/${customer.id}/balance_transactions')`,
    );

    expect((await h.stats()).writes).toEqual({ customer: 2, customer_balance_transaction: 1 });
  });

  it("GET ignores Idempotency-Key", async () => {
    await credit("get-1");
    const read = await h.api("GET", `/v1/customers/${customer.id}`, { idempotencyKey: "get-1" });
    expect(read.status).toBe(200);
    expect(read.headers.get("idempotent-replayed")).toBeNull();
    expect((read.body as { balance: number }).balance).toBe(-500);
  });

  it("refuses a key longer than 255 characters without writing", async () => {
    const long = await credit("k".repeat(256));
    expect(long.status).toBe(400);
    expect(errorOf(long).type).toBe("invalid_request_error");
    expect(await txWrites()).toBe(0);
    expect((await credit("k".repeat(255))).status).toBe(200);
  });
});

describe("concurrent use", () => {
  it("a second request while the first still runs → 409 idempotency_key_in_use; afterwards a replay", async () => {
    await h.control("POST", "/latency", { ms: 300, method: "POST", path: "/v1/customers/*/balance_transactions" });
    const firstPromise = credit("busy-1");
    await sleep(100);
    const started = Date.now();
    const second = await credit("busy-1");
    expect(Date.now() - started).toBeLessThan(250); // answered at once, not after the latency
    expect(second.status).toBe(409);
    expect(errorOf(second).code).toBe("idempotency_key_in_use");
    expect(errorOf(second).message).toContain("'busy-1'");

    const first = await firstPromise;
    expect(first.status).toBe(200);
    await h.control("DELETE", "/latency");

    const third = await credit("busy-1");
    expect(third.headers.get("idempotent-replayed")).toBe("true");
    expect(third.text).toBe(first.text);
    expect(await txWrites()).toBe(1);
  });
});

describe("failures that are saved", () => {
  it("an injected 500 is replayed on retry with the same key, and nothing is written", async () => {
    await h.control("POST", "/faults", { kind: "error_500", method: "POST", path: "/v1/customers/*/balance_transactions" });
    const first = await credit("fail-500");
    expect(first.status).toBe(500);
    expect(errorOf(first).type).toBe("api_error");

    const retry = await credit("fail-500");
    expect(retry.status).toBe(500);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.text).toBe(first.text);

    // The stripe package sees the same saved 500.
    const viaClient = await stripeErrorOf(
      h.stripe.customers.createBalanceTransaction(customer.id, { amount: -500, currency: "usd" }, { idempotencyKey: "fail-500" }),
    );
    expect(viaClient).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(viaClient.statusCode).toBe(500);

    expect(await txWrites()).toBe(0);
    expect(await balance()).toBe(0);

    // A new key runs (the fault fired once).
    expect((await credit("fail-500-new")).status).toBe(200);
    expect(await txWrites()).toBe(1);
  });
});

describe("failures that are not saved", () => {
  it("429: a retry with the same key runs", async () => {
    await h.control("POST", "/faults", { kind: "rate_limit", path: "/v1/customers/*/balance_transactions" });
    const limited = await credit("not-saved-429");
    expect(limited.status).toBe(429);
    expect(errorOf(limited).code).toBe("rate_limit");
    expect(await txWrites()).toBe(0);

    const retry = await credit("not-saved-429");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
  });

  it("parameter validation 400: a retry with the same key (and fixed parameters) runs", async () => {
    const bad = await credit("not-saved-400", { amount: "abc", currency: "usd" });
    expect(bad.status).toBe(400);
    expect(errorOf(bad).param).toBe("amount");
    const badAgain = await credit("not-saved-400", { amount: "abc", currency: "usd" });
    expect(badAgain.status).toBe(400);
    expect(badAgain.headers.get("idempotent-replayed")).toBeNull();

    const fixed = await credit("not-saved-400");
    expect(fixed.status).toBe(200);
    expect(fixed.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
  });

  it("401: a retry with the same key and a good API key runs", async () => {
    const unauthorised = await h.api("POST", `/v1/customers/${customer.id}/balance_transactions`, {
      params: { amount: "-500", currency: "usd" },
      idempotencyKey: "not-saved-401",
      authorization: "Bearer sk_test_wrong-key",
    });
    expect(unauthorised.status).toBe(401);
    const retry = await credit("not-saved-401");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
  });

  it("409 (injected in_use): a retry with the same key runs", async () => {
    await h.control("POST", "/faults", { kind: "in_use", path: "/v1/customers/*/balance_transactions" });
    const conflict = await credit("not-saved-409");
    expect(conflict.status).toBe(409);
    expect(errorOf(conflict).code).toBe("idempotency_key_in_use");
    const retry = await credit("not-saved-409");
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBeNull();
    expect(await txWrites()).toBe(1);
  });
});

describe("key expiry", () => {
  it("POST /_emulator/idempotency/expire forgets a key: the same key writes again", async () => {
    const first = await credit("expire-me");
    await credit("keep-me");
    const expired = await h.control<{ expired: number }>("POST", "/idempotency/expire", { key: "expire-*" });
    expect(expired.expired).toBe(1);

    const again = await credit("expire-me");
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBeNull();
    expect((again.body as { id: string }).id).not.toBe((first.body as { id: string }).id);
    expect(await txWrites()).toBe(3);
    expect(await balance()).toBe(-1500);

    // The other key was kept.
    expect((await credit("keep-me")).headers.get("idempotent-replayed")).toBe("true");

    // Without a pattern every key goes.
    const all = await h.control<{ expired: number }>("POST", "/idempotency/expire");
    expect(all.expired).toBe(2);
    expect((await h.stats()).idempotency_keys).toBe(0);
  });

  it("a short idempotency_ttl_ms lets the same key run again once it has passed", async () => {
    await h.control("POST", "/config", { idempotency_ttl_ms: 200 });
    try {
      await credit("ttl-1");
      expect((await credit("ttl-1")).headers.get("idempotent-replayed")).toBe("true");
      await sleep(250);
      const later = await credit("ttl-1");
      expect(later.status).toBe(200);
      expect(later.headers.get("idempotent-replayed")).toBeNull();
      expect(await txWrites()).toBe(2);
    } finally {
      await h.control("POST", "/config", { idempotency_ttl_ms: 24 * 60 * 60 * 1000 });
    }
  });
});

describe("forgetting keys without breaking an SDK's retry", () => {
  it("spare_retrying_ms keeps a key whose request is executing or just failed, and prunes the rest", async () => {
    const { IdempotencyKeys } = await import("./idempotency.js");
    const keys = new IdempotencyKeys(24 * 3600_000);
    const saved = { status: 200, body: "{}", requestId: "req_1" };
    keys.claim("clean", TX_ENDPOINT, "a");
    keys.save("clean", saved);
    keys.claim("executing", TX_ENDPOINT, "a");
    keys.claim("dropped", TX_ENDPOINT, "a");
    keys.save("dropped", saved);
    keys.noteRetryable("dropped");
    expect(keys.expire(undefined, 60_000)).toBe(1);
    expect(keys.lookup("clean", TX_ENDPOINT, "a")).toEqual({ kind: "new" });
    expect(keys.lookup("executing", TX_ENDPOINT, "a")).toEqual({ kind: "in_use" });
    expect(keys.lookup("dropped", TX_ENDPOINT, "a")).toEqual({ kind: "replay", result: saved });
    // Once the SDK's retries are over, or without the option, the day passes for every key.
    expect(keys.expire(undefined, 0)).toBe(2);
    expect(keys.size).toBe(0);
  });

  it("a dropped write is replayed to the SDK's retry even when keys are pruned in between", async () => {
    const key = unique("spare");
    await h.control("POST", "/faults", { kind: "drop", method: "POST", path: `/v1/customers/${customer.id}/balance_transactions`, key, times: 1 });
    // The connection drops after the write is applied: the client sees no answer.
    await expect(credit(key)).rejects.toThrow();
    expect(await h.control("POST", "/idempotency/expire", { key, spare_retrying_ms: 60_000 })).toEqual({ expired: 0 });
    const retried = await credit(key);
    expect(retried.status).toBe(200);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    expect(await txWrites()).toBe(1);
  });
});
