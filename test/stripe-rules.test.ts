// The pure Stripe rules on their own: how a failed call is classified (src/stripe/errors.ts),
// which decides between "not there", "maybe applied", "try again" and "refused"; and the
// Idempotency-Keys and write parameters (src/stripe/keys.ts), which must be the same on every
// retry of one write and never the same for two different writes.

import fc from "fast-check";
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { classifyStripeError } from "../src/stripe/errors.js";
import { adjustmentKey, adjustmentParams, attemptKey, creditKey, creditParams, markKey, topUpKey, unmarkKey } from "../src/stripe/keys.js";

/** An error as the SDK builds it from an HTTP answer (the same factory the SDK uses). */
function apiError(statusCode: number, fields: { type?: string; code?: string; headers?: Record<string, string> } = {}): Stripe.errors.StripeError {
  return Stripe.errors.StripeError.generate({
    statusCode,
    type: (fields.type ?? (statusCode >= 500 ? "api_error" : "invalid_request_error")) as "api_error",
    message: `status ${statusCode}`,
    ...(fields.code ? { code: fields.code } : {}),
    headers: fields.headers ?? {},
  });
}

describe("classifyStripeError", () => {
  it.each([
    ["404 resource_missing", apiError(404, { code: "resource_missing" }), "not_found"],
    ["500", apiError(500), "ambiguous"],
    ["502", apiError(502), "ambiguous"],
    ["503", apiError(503), "ambiguous"],
    ["409 idempotency_key_in_use", apiError(409, { code: "idempotency_key_in_use" }), "ambiguous"],
    ["429 rate_limit", apiError(429, { code: "rate_limit" }), "transient"],
    ["401", apiError(401, { type: "invalid_request_error" }), "transient"],
    ["403", apiError(403, { type: "invalid_request_error" }), "transient"],
    ["400 parameter_invalid", apiError(400, { code: "parameter_invalid" }), "permanent"],
    ["400 idempotency_error", apiError(400, { type: "idempotency_error" }), "permanent"],
    ["402 card_declined", apiError(402, { type: "card_error", code: "card_declined" }), "permanent"],
    ["404 with another code", apiError(404, { code: "url_invalid" }), "permanent"],
  ] as const)("%s → %s", (_name, err, kind) => {
    const failure = classifyStripeError(err);
    expect(failure.kind).toBe(kind);
    expect(failure.replayed).toBe(false);
    expect(failure.status).toBe(err.statusCode);
  });

  it("a connection error, or anything that is not a Stripe error, may have been applied", () => {
    const connection = new Stripe.errors.StripeConnectionError({ message: "socket hang up" });
    expect(classifyStripeError(connection)).toMatchObject({ kind: "ambiguous", replayed: false, status: null });
    expect(classifyStripeError(new TypeError("fetch failed"))).toMatchObject({
      kind: "ambiguous",
      replayed: false,
      status: null,
      code: null,
      message: "TypeError: fetch failed",
    });
    expect(classifyStripeError("a string")).toMatchObject({ kind: "ambiguous", message: "a string" });
    expect(classifyStripeError(undefined)).toMatchObject({ kind: "ambiguous" });
  });

  it("a 5xx replayed from a saved key is told apart (plain headers or fetch Headers)", () => {
    expect(classifyStripeError(apiError(500, { headers: { "idempotent-replayed": "true" } }))).toMatchObject({ kind: "ambiguous", replayed: true });
    expect(classifyStripeError(apiError(500, { headers: { "idempotent-replayed": "false" } }))).toMatchObject({ kind: "ambiguous", replayed: false });
    const headers = new Headers({ "Idempotent-Replayed": "true" });
    const err = new Stripe.errors.StripeAPIError({
      statusCode: 500,
      type: "api_error",
      message: "saved",
      headers: headers as unknown as Record<string, string>,
    });
    expect(classifyStripeError(err)).toMatchObject({ kind: "ambiguous", replayed: true });
  });

  it("the message names the type, status and code, and the raw type is kept", () => {
    const failure = classifyStripeError(apiError(400, { type: "idempotency_error", code: "idempotency_key_reused" }));
    expect(failure.message).toBe("StripeIdempotencyError 400 idempotency_key_reused: status 400");
    expect(failure.rawType).toBe("idempotency_error");
    expect(failure.code).toBe("idempotency_key_reused");
  });

  it("property: every status is classified, and only 5xx, 409 or no status at all is ambiguous", () => {
    fc.assert(
      fc.property(fc.integer({ min: 400, max: 599 }), fc.boolean(), (status, replayed) => {
        const failure = classifyStripeError(apiError(status, { headers: replayed ? { "idempotent-replayed": "true" } : {} }));
        expect(failure.kind === "ambiguous").toBe(status >= 500 || status === 409);
        expect(failure.replayed).toBe(replayed);
      }),
    );
  });
});

describe("Idempotency-Keys", () => {
  const pi = "pi_3AbCdEfGhIjKlMnO";

  it("the first attempt has the bare key, later ones append the attempt number", () => {
    expect(attemptKey("k", 0)).toBe("k");
    expect(attemptKey("k", 1)).toBe("k");
    expect(attemptKey("k", 2)).toBe("k:2");
    expect(creditKey(pi, 1)).toBe(`credit-tx:${pi}`);
    expect(creditKey(pi, 3)).toBe(`credit-tx:${pi}:3`);
    expect(markKey(pi, 1)).toBe(`credit-mark:${pi}`);
    expect(markKey(pi, 2)).toBe(`credit-mark:${pi}:2`);
    expect(adjustmentKey(pi, "refund:300", 1)).toBe(`credit-adjust:${pi}:refund:300`);
    expect(adjustmentKey(pi, "dispute:dp_1", 2)).toBe(`credit-adjust:${pi}:dispute:dp_1:2`);
    expect(unmarkKey(pi, 2)).toBe(`credit-unmark:${pi}:2`);
  });

  it("property: the keys of one PaymentIntent never collide across kinds or attempts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 0, max: 10_000 }), (a, b, level) => {
        const keys = [creditKey(pi, a), markKey(pi, a), unmarkKey(pi, a), adjustmentKey(pi, `refund:${level}`, a)];
        expect(new Set(keys).size).toBe(keys.length);
        expect(creditKey(pi, a) === creditKey(pi, b)).toBe(a === b);
        expect(adjustmentKey(pi, `refund:${level}`, a) === adjustmentKey(pi, `refund:${level}`, b)).toBe(a === b);
      }),
    );
  });

  it("a top-up key is scoped to the account without ambiguity, stable, and short", async () => {
    expect(await topUpKey("a", "x:k")).not.toBe(await topUpKey("a:x", "k"));
    expect(await topUpKey("acct_1", "k1")).toBe(await topUpKey("acct_1", "k1"));
    expect(await topUpKey("acct_1", "k".repeat(255))).toMatch(/^topup:[0-9a-f]{64}$/);
  });

  it("property: distinct (account, client key) pairs get distinct top-up keys", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        async (a1, k1, a2, k2) => {
          const same = a1 === a2 && k1 === k2;
          expect((await topUpKey(a1, k1)) === (await topUpKey(a2, k2))).toBe(same);
        },
      ),
    );
    // The separator trick, drawn at random: moving a `:`-joined part across the boundary.
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 10 }),
        fc.string({ minLength: 1, maxLength: 10 }),
        fc.string({ minLength: 1, maxLength: 10 }),
        async (a, x, k) => {
          expect(await topUpKey(a, `${x}:${k}`)).not.toBe(await topUpKey(`${a}:${x}`, k));
        },
      ),
    );
  });
});

describe("write parameters", () => {
  const pi = "pi_3AbCdEfGhIjKlMnO";

  it("the credit is a negative amount (Stripe's sign for credit) tagged with the PaymentIntent only", () => {
    expect(creditParams(pi, 1234, "usd")).toEqual({
      amount: -1234,
      currency: "usd",
      description: `Prepaid credit from ${pi}`,
      metadata: { payment_intent: pi },
    });
  });

  it("a reversal debits, a restoration credits, and both name their operation", () => {
    expect(adjustmentParams(pi, "refund:300", "debit", 300, "usd")).toMatchObject({
      amount: 300,
      currency: "usd",
      metadata: { payment_intent: pi, operation: "refund:300" },
    });
    expect(adjustmentParams(pi, "restore:dp_1", "credit", 500, "eur")).toMatchObject({
      amount: -500,
      currency: "eur",
      metadata: { payment_intent: pi, operation: "restore:dp_1" },
    });
  });

  it("property: the same write gives identical parameters every time (Stripe refuses a key reused with others)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000_000 }),
        fc.constantFrom("debit" as const, "credit" as const),
        fc.constantFrom("usd", "eur"),
        (amount, direction, currency) => {
          expect(adjustmentParams(pi, "op", direction, amount, currency)).toEqual(adjustmentParams(pi, "op", direction, amount, currency));
          expect(creditParams(pi, amount, currency)).toEqual(creditParams(pi, amount, currency));
          expect(Math.sign(adjustmentParams(pi, "op", direction, amount, currency).amount ?? 0)).toBe(direction === "debit" ? 1 : -1);
        },
      ),
    );
  });
});
