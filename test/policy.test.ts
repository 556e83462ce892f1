// The pure rules on their own: which PaymentIntent may be credited (src/credit/policy.ts), what
// a top-up is and how the legacy setting is read (src/credit/top-up.ts), and the top-up
// Idempotency-Key (src/stripe/keys.ts). No Stripe, no objects.

import { describe, expect, it } from "vitest";
import { assessPaymentIntent, type CreditRules, type PaymentIntentFacts } from "../src/credit/policy.js";
import { hasTopUpMarker, isLegacyTopUp, parseLegacyTopUps, TOP_UP_MARKER, TOP_UP_MARKER_KEY, TOP_UP_MARKER_VALUE } from "../src/credit/top-up.js";
import { topUpKey } from "../src/stripe/keys.js";

const CUTOFF = 1_700_000_000;

function topUp(fields: Partial<PaymentIntentFacts> = {}): PaymentIntentFacts {
  return {
    id: "pi_Test1",
    status: "succeeded",
    customer: "cus_owner",
    amount_received: 1000,
    currency: "usd",
    livemode: false,
    metadata: { account_id: "acct_1", edge_credit: "top_up" },
    created: CUTOFF - 10,
    ...fields,
  };
}

const rules: CreditRules = { liveKey: false, currencies: ["usd"], legacy: null };
const withLegacy: CreditRules = { ...rules, legacy: { key: "source", value: "old-server", createdBefore: CUTOFF } };

describe("assessPaymentIntent", () => {
  it("credits a marked top-up of the owner's customer in an accepted currency", () => {
    expect(assessPaymentIntent(topUp(), "cus_owner", rules)).toEqual({
      ok: true,
      customer: "cus_owner",
      amount: 1000,
      currency: "usd",
      creditedElsewhere: false,
    });
    // The webhook and the object act for the PI's own customer.
    expect(assessPaymentIntent(topUp({ customer: { id: "cus_owner" } }), null, rules)).toMatchObject({ ok: true, customer: "cus_owner" });
  });

  it("reads the currency case-insensitively and reports credited elsewhere", () => {
    const verdict = assessPaymentIntent(topUp({ currency: "USD", metadata: { edge_credit: "top_up", credited: "true" } }), "cus_owner", rules);
    expect(verdict).toMatchObject({ ok: true, currency: "usd", creditedElsewhere: true });
  });

  it.each<[string, Partial<PaymentIntentFacts>, string]>([
    ["no metadata", { metadata: null }, "not_a_top_up"],
    ["a subscription payment", { metadata: { account_id: "acct_1", purpose: "subscription" } }, "not_a_top_up"],
    ["the marker key with another value", { metadata: { edge_credit: "subscription" } }, "not_a_top_up"],
    ["another currency", { currency: "eur" }, "currency_not_accepted"],
    ["no customer", { customer: null }, "no_customer"],
    ["nothing received", { amount_received: 0 }, "zero_amount"],
    ["a fractional amount", { amount_received: 10.5 }, "zero_amount"],
    ["live mode under a test key", { livemode: true }, "livemode_mismatch"],
  ])("refuses %s as not creditable (%s)", (_, fields, reason) => {
    expect(assessPaymentIntent(topUp(fields), null, rules)).toEqual({
      ok: false,
      refusal: "not_creditable",
      reason,
      customer: fields.customer === undefined ? "cus_owner" : null,
    });
  });

  it("keeps its order: owner, then status, then no_customer, zero_amount, livemode, not_a_top_up, currency", () => {
    const junk = topUp({ status: "processing", amount_received: 0, livemode: true, metadata: null, currency: "eur" });
    expect(assessPaymentIntent(junk, "cus_stranger", rules)).toEqual({ ok: false, refusal: "not_owned", customer: "cus_owner" });
    expect(assessPaymentIntent(junk, "cus_owner", rules)).toEqual({ ok: false, refusal: "not_succeeded", status: "processing", customer: "cus_owner" });
    const paid = { ...junk, status: "succeeded" };
    const reasonOf = (pi: PaymentIntentFacts) => {
      const v = assessPaymentIntent(pi, null, rules);
      return v.ok ? "ok" : v.refusal === "not_creditable" ? v.reason : v.refusal;
    };
    expect(reasonOf({ ...paid, customer: null })).toBe("no_customer");
    expect(reasonOf(paid)).toBe("zero_amount");
    expect(reasonOf({ ...paid, amount_received: 100 })).toBe("livemode_mismatch");
    expect(reasonOf({ ...paid, amount_received: 100, livemode: false })).toBe("not_a_top_up");
    expect(reasonOf({ ...paid, amount_received: 100, livemode: false, metadata: { ...TOP_UP_MARKER } })).toBe("currency_not_accepted");
  });

  it("a live key credits live PaymentIntents only", () => {
    const live = { ...rules, liveKey: true };
    expect(assessPaymentIntent(topUp({ livemode: true }), null, live).ok).toBe(true);
    expect(assessPaymentIntent(topUp(), null, live)).toMatchObject({ ok: false, reason: "livemode_mismatch" });
  });

  it("admits a legacy top-up only with the configured metadata and created before the cutoff", () => {
    const legacy = (created: number, metadata: Record<string, string>) => assessPaymentIntent(topUp({ created, metadata }), null, withLegacy);
    expect(legacy(CUTOFF - 1, { source: "old-server" }).ok).toBe(true);
    expect(legacy(CUTOFF, { source: "old-server" })).toMatchObject({ ok: false, reason: "not_a_top_up" });
    expect(legacy(CUTOFF + 1, { source: "old-server" })).toMatchObject({ ok: false, reason: "not_a_top_up" });
    expect(legacy(CUTOFF - 1, { source: "other" })).toMatchObject({ ok: false, reason: "not_a_top_up" });
    expect(legacy(CUTOFF - 1, {})).toMatchObject({ ok: false, reason: "not_a_top_up" });
    // Off: the same PaymentIntent is not a top-up.
    expect(assessPaymentIntent(topUp({ created: CUTOFF - 1, metadata: { source: "old-server" } }), null, rules)).toMatchObject({
      ok: false,
      reason: "not_a_top_up",
    });
    // Our own marker needs no cutoff.
    expect(assessPaymentIntent(topUp({ created: CUTOFF + 1_000_000 }), null, withLegacy).ok).toBe(true);
    // A legacy top-up still has to be in an accepted currency.
    expect(assessPaymentIntent(topUp({ created: CUTOFF - 1, metadata: { source: "old-server" }, currency: "eur" }), null, withLegacy)).toMatchObject({
      ok: false,
      reason: "currency_not_accepted",
    });
  });
});

describe("the top-up marker", () => {
  it("is edge_credit=top_up, exactly", () => {
    expect([TOP_UP_MARKER_KEY, TOP_UP_MARKER_VALUE]).toEqual(["edge_credit", "top_up"]);
    expect(TOP_UP_MARKER).toEqual({ edge_credit: "top_up" });
    expect(hasTopUpMarker({ edge_credit: "top_up" })).toBe(true);
    expect(hasTopUpMarker({ edge_credit: "TOP_UP" })).toBe(false);
    expect(hasTopUpMarker({ account_id: "acct_1" })).toBe(false);
    expect(hasTopUpMarker(null)).toBe(false);
  });

  it("isLegacyTopUp needs a setting, the pair and an earlier creation", () => {
    const legacy = { key: "k", value: "v", createdBefore: 100 };
    expect(isLegacyTopUp({ k: "v" }, 99, legacy)).toBe(true);
    expect(isLegacyTopUp({ k: "v" }, 100, legacy)).toBe(false);
    expect(isLegacyTopUp({ k: "v" }, Number.NaN, legacy)).toBe(false);
    expect(isLegacyTopUp({ k: "v" }, 99, null)).toBe(false);
    expect(isLegacyTopUp(null, 99, legacy)).toBe(false);
  });
});

describe("parseLegacyTopUps", () => {
  it("is off when neither is set (or both are blank)", () => {
    expect(parseLegacyTopUps({})).toEqual({ ok: true, legacy: null });
    expect(parseLegacyTopUps({ LEGACY_TOPUP_METADATA: " ", LEGACY_TOPUP_CREATED_BEFORE: "" })).toEqual({ ok: true, legacy: null });
  });

  it.each<[string, number]>([
    ["1700000000", 1_700_000_000],
    ["2024-06-01", Date.UTC(2024, 5, 1) / 1000],
    ["2024-06-01T12:00:00Z", Date.UTC(2024, 5, 1, 12) / 1000],
    ["2024-06-01T12:00:00+02:00", Date.UTC(2024, 5, 1, 10) / 1000],
  ])("reads the cutoff %s", (cutoff, seconds) => {
    expect(parseLegacyTopUps({ LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: cutoff })).toEqual({
      ok: true,
      legacy: { key: "source", value: "old-server", createdBefore: seconds },
    });
  });

  it("splits key=value at the first '=' (a value may hold '=')", () => {
    expect(parseLegacyTopUps({ LEGACY_TOPUP_METADATA: "topup=a=b", LEGACY_TOPUP_CREATED_BEFORE: "1" })).toEqual({
      ok: true,
      legacy: { key: "topup", value: "a=b", createdBefore: 1 },
    });
  });

  it.each<[string, { LEGACY_TOPUP_METADATA?: string; LEGACY_TOPUP_CREATED_BEFORE?: string }]>([
    ["only the metadata", { LEGACY_TOPUP_METADATA: "source=old-server" }],
    ["only the cutoff", { LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01" }],
    ["no '='", { LEGACY_TOPUP_METADATA: "source", LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01" }],
    ["an empty key", { LEGACY_TOPUP_METADATA: "=old-server", LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01" }],
    ["an empty value", { LEGACY_TOPUP_METADATA: "source=", LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01" }],
    ["a key over 40 characters", { LEGACY_TOPUP_METADATA: `${"k".repeat(41)}=v`, LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01" }],
    ["milliseconds", { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "1700000000000" }],
    ["a date that does not exist", { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "2024-02-30" }],
    ["a time without its offset", { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "2024-06-01T12:00:00" }],
    ["a negative number", { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "-1" }],
    ["words", { LEGACY_TOPUP_METADATA: "source=old-server", LEGACY_TOPUP_CREATED_BEFORE: "yesterday" }],
  ])("refuses %s, naming the setting", (_, settings) => {
    const parsed = parseLegacyTopUps(settings);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(/LEGACY_TOPUP_/);
  });
});

describe("topUpKey", () => {
  it("is topup: and a SHA-256 in hex, the same for the same parts", async () => {
    const key = await topUpKey("acct_1", "click-1");
    expect(key).toMatch(/^topup:[0-9a-f]{64}$/);
    expect(await topUpKey("acct_1", "click-1")).toBe(key);
  });

  it("tells apart parts that join to the same string", async () => {
    expect(await topUpKey("a", "x:k")).not.toBe(await topUpKey("a:x", "k"));
    expect(await topUpKey("a", "b")).not.toBe(await topUpKey("b", "a"));
    expect(await topUpKey("acct_1", "click-1")).not.toBe(await topUpKey("acct_2", "click-1"));
  });
});
