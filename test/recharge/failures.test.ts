// What happens when the saved card does not simply pay: declines (each next try needs a write
// below the threshold and an hour's wait; 3 in a row switch auto-recharge off and say so), a bank
// that asks for authentication (the recharge waits for the customer, starts no other, and is
// credited once when completed, or cancelled after a day), and a card detached in Stripe
// (forgotten, auto-recharge off; a card no account saved changes nothing).

import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { RechargeDisabledData, RechargeEventData } from "../../src/events/contract.js";
import { TEST_BINDINGS } from "../bindings.js";
import { addFault, confirm, deliver, emu, eventsFor, json, postSigned } from "../helpers.js";
import { countByType, ofAccount, ofType, receivedFor, SETTLE_MS, waitForTypes, type Received } from "../events/received.js";
import {
  accountAlarm,
  accountWithCard,
  authenticateOnPage,
  browserView,
  cardBehaves,
  configure,
  debitOk,
  putSettings,
  rechargePIs,
  rechargeRows,
  rewrite,
  settleRecharges,
  skipFailureWait,
  stripeCredits,
  stripePI,
  tagOf,
  view,
  walletCredits,
  walletOf,
} from "./helpers.js";

const recharge = (events: Received[]) => countByType(events.filter((e) => e.type.startsWith("recharge.")));

/** POST /v1/payment_methods/{id}/detach, as the seller's Dashboard or the customer's portal would. */
async function detach(paymentMethod: string): Promise<void> {
  const res = await fetch(`${env.STRIPE_API_BASE}/v1/payment_methods/${paymentMethod}/detach`, {
    method: "POST",
    headers: { authorization: `Bearer ${TEST_BINDINGS.STRIPE_SECRET_KEY}` },
  });
  expect(res.status).toBe(200);
  await res.body?.cancel();
}

/** Delivers Stripe's payment_method.detached event for `paymentMethod` to the service; its id. */
async function deliverDetached(paymentMethod: string): Promise<string> {
  const [event] = await eventsFor("payment_method.detached", paymentMethod);
  expect(event).toBeDefined();
  expect((await deliver(event?.id as string)).status).toBe(200);
  return event?.id as string;
}

describe("declines", () => {
  // Each decline is a failed recharge with Stripe's codes; the next needs both a write below the
  // threshold and an hour since the failure (the test dates the failure back, as the clock
  // would); the third in a row switches auto-recharge off, once, and nothing is charged after.
  // Turning it back on starts afresh and, with available still low, recharges at once.
  it("three in a row: recharge.failed ×3 with decline codes, switched off with recharge.disabled ×1, no charge after", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    await cardBehaves(a.paymentMethod, "decline");

    await debitOk(a.accountId, 600);
    expect((await settleRecharges(a.accountId)).map((r) => [r.n, r.status, r.code, r.decline_code])).toEqual([
      [1, "failed", "card_declined", "generic_decline"],
    ]);
    expect(await view(a.accountId)).toMatchObject({ enabled: true, consecutive_failures: 1, disabled_reason: null });
    // Within the hour: a write below the threshold starts nothing.
    await debitOk(a.accountId, 10);
    expect(await settleRecharges(a.accountId)).toHaveLength(1);

    await skipFailureWait(a.accountId);
    await cardBehaves(a.paymentMethod, "insufficient_funds");
    await debitOk(a.accountId, 10);
    expect((await settleRecharges(a.accountId)).map((r) => [r.n, r.status, r.decline_code])).toEqual([
      [1, "failed", "generic_decline"],
      [2, "failed", "insufficient_funds"],
    ]);
    expect(await view(a.accountId)).toMatchObject({ enabled: true, consecutive_failures: 2 });

    await skipFailureWait(a.accountId);
    await cardBehaves(a.paymentMethod, "decline");
    await debitOk(a.accountId, 10);
    expect((await settleRecharges(a.accountId)).map((r) => r.status)).toEqual(["failed", "failed", "failed"]);
    expect(await view(a.accountId)).toMatchObject({ enabled: false, disabled_reason: "declined", consecutive_failures: 3 });

    // Switched off: even past the hour, with a card that would pay, nothing is sent.
    await skipFailureWait(a.accountId);
    await cardBehaves(a.paymentMethod, "succeed");
    await debitOk(a.accountId, 10);
    expect(await settleRecharges(a.accountId)).toHaveLength(3);
    const made = await rechargePIs(a.customerId);
    expect(made.map((pi) => [pi.metadata.recharge, pi.status]).sort()).toEqual([1, 2, 3].map((n) => [tagOf(a.accountId, n), "requires_payment_method"]));
    for (const pi of made) expect(await stripeCredits(a.customerId, pi.id)).toEqual([]);
    expect(await walletOf(a.accountId)).toEqual({ available: 360, held: 0 });

    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.failed": 3, "recharge.disabled": 1 });
    expect(recharge(events)).toEqual({ "recharge.failed": 3, "recharge.disabled": 1 });
    const failed = ofType<RechargeEventData>(events, "recharge.failed").sort((x, y) => x.data.recharge - y.data.recharge);
    expect(failed.map((e) => [e.data.recharge, e.data.code, e.data.decline_code, e.data.consecutive_failures])).toEqual([
      [1, "card_declined", "generic_decline", 1],
      [2, "card_declined", "insufficient_funds", 2],
      [3, "card_declined", "generic_decline", 3],
    ]);
    expect(ofType<RechargeDisabledData>(events, "recharge.disabled").map((e) => e.data)).toEqual([
      { account_id: a.accountId, reason: "declined", consecutive_failures: 3 },
    ]);

    // On again: no failures counted, no reason to be off, and available (360) is below 500.
    const on = await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    expect(on).toMatchObject({ disabled_reason: null, consecutive_failures: 0 });
    expect((await settleRecharges(a.accountId)).map((r) => r.status)).toEqual(["failed", "failed", "failed", "succeeded"]);
    expect(await walletOf(a.accountId)).toEqual({ available: 2360, held: 0 });
  });

  // "In a row": a success between failures starts the count again, so two declines, a success
  // and two more declines leave auto-recharge on.
  it("a success in between resets the count: 2 declines, 1 success, 2 declines leave it on", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 1000, monthly_limit: 100_000 });
    const attempt = async (behaviour: "decline" | "succeed", spend: number) => {
      await skipFailureWait(a.accountId);
      await cardBehaves(a.paymentMethod, behaviour);
      await debitOk(a.accountId, spend);
      return (await settleRecharges(a.accountId)).at(-1)?.status;
    };
    expect(await attempt("decline", 600)).toBe("failed");
    expect(await attempt("decline", 10)).toBe("failed");
    expect(await attempt("succeed", 10)).toBe("succeeded");
    expect((await view(a.accountId)).consecutive_failures).toBe(0);
    expect(await attempt("decline", 1000)).toBe("failed");
    expect(await attempt("decline", 10)).toBe("failed");
    expect(await view(a.accountId)).toMatchObject({ enabled: true, disabled_reason: null, consecutive_failures: 2 });
    expect((await rechargeRows(a.accountId)).map((r) => r.status)).toEqual(["failed", "failed", "succeeded", "failed", "failed"]);
  });

  // Stripe declined the recharge, but its answer was lost: a 500 saved under the key, replayed
  // to every retry, so the account looks the PaymentIntent up in the customer's list. What it
  // finds (requires_payment_method, with last_payment_error card_declined) is a decline like any
  // other: it must fail and count, not be taken for a payment waiting for the customer to
  // authenticate (which would ask the customer to "confirm" a declined card, block every other
  // recharge for a day, and then fail with the wrong code).
  it("a decline whose answer was lost (a 500 saved under the key) is still a decline, not action_required", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    await cardBehaves(a.paymentMethod, "decline");
    await addFault({ kind: "error_500", apply: true, times: 1, method: "POST", path: "/v1/payment_intents", key: `recharge:${a.accountId}:1` });
    await debitOk(a.accountId, 600);
    const [rec] = await settleRecharges(a.accountId);
    const [made] = await rechargePIs(a.customerId);
    expect(made).toMatchObject({ status: "requires_payment_method", last_payment_error: { code: "card_declined" } });
    expect(rec).toMatchObject({ n: 1, payment_intent_id: made?.id });
    expect([rec?.status, rec?.code, rec?.decline_code]).toEqual(["failed", "card_declined", "generic_decline"]);
    expect(await view(a.accountId)).toMatchObject({ consecutive_failures: 1, recharge: { status: "failed", client_secret: null } });
    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.failed": 1 });
    expect(recharge(events)).toEqual({ "recharge.failed": 1 });
  });
});

describe("the bank asks the customer to authenticate", () => {
  /** An account whose recharge 1 waits for authentication; its PaymentIntent and client_secret. */
  async function waitingRecharge() {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    await cardBehaves(a.paymentMethod, "authentication_required");
    const before = Date.now();
    await debitOk(a.accountId, 600);
    const [rec] = await settleRecharges(a.accountId);
    expect(rec).toMatchObject({ n: 1, status: "action_required" });
    const pi = rec?.payment_intent_id as string;
    const stripeSide = await stripePI(pi);
    expect(stripeSide).toMatchObject({ status: "requires_payment_method", metadata: { recharge: tagOf(a.accountId, 1) } });
    // Both views hand the page what Stripe.js needs to complete it, and say until when.
    const seen = await view(a.accountId);
    expect(seen.recharge).toMatchObject({ number: 1, status: "action_required", payment_intent_id: pi, client_secret: stripeSide.client_secret });
    const expires = Date.parse(seen.recharge?.expires_at ?? "");
    expect(expires).toBeGreaterThanOrEqual(before + 24 * 3600_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 24 * 3600_000);
    expect((await browserView(a.token)).recharge).toEqual(seen.recharge);
    return { ...a, pi, clientSecret: stripeSide.client_secret };
  }

  // While it waits, more writes below the threshold start nothing (one open at a time); the
  // customer completes it on the page, the page confirms, and it is credited once and closed.
  it("action_required with client_secret and recharge.action_required; no second recharge meanwhile; completed → credited once → succeeded", async () => {
    const a = await waitingRecharge();
    await Promise.all(Array.from({ length: 5 }, () => debitOk(a.accountId, 50)));
    expect(await settleRecharges(a.accountId)).toHaveLength(1);
    expect(await rechargePIs(a.customerId)).toHaveLength(1);
    let events = await waitForTypes(ofAccount(a.accountId), { "recharge.action_required": 1 });
    expect(ofType<RechargeEventData>(events, "recharge.action_required").map((e) => [e.data.recharge, e.data.payment_intent_id])).toEqual([[1, a.pi]]);

    expect(await authenticateOnPage(a.pi, a.clientSecret, a.paymentMethod, "complete")).toBe("succeeded");
    const first = await confirm(a.token, a.pi);
    expect(first.status).toBe(200);
    expect((await json<{ status: string }>(first)).status).toBe("credited");
    // The confirm's 200 means the wallet has the credit, and the same write closed the recharge.
    expect((await rechargeRows(a.accountId)).map((r) => [r.n, r.status, r.client_secret])).toEqual([[1, "succeeded", null]]);
    expect((await json<{ status: string }>(await confirm(a.token, a.pi))).status).toBe("already_credited");

    expect(await stripeCredits(a.customerId, a.pi)).toEqual([-2000]);
    expect((await walletCredits(a.accountId, a.pi)).map((l) => l.amount)).toEqual([2000]);
    expect(await walletOf(a.accountId)).toEqual({ available: 2150, held: 0 });
    expect((await view(a.accountId)).recharge).toMatchObject({ status: "succeeded", client_secret: null });
    events = await waitForTypes(ofAccount(a.accountId), { "recharge.succeeded": 1 });
    expect(recharge(events)).toEqual({ "recharge.action_required": 1, "recharge.succeeded": 1 });
  });

  // Nobody completes it (the customer even fails the challenge once): a day later the alarm
  // cancels the PaymentIntent in Stripe and the recharge fails with authentication_required.
  it("not completed within a day: the alarm cancels the PaymentIntent, the recharge fails, recharge.failed", async () => {
    const a = await waitingRecharge();
    expect(await authenticateOnPage(a.pi, a.clientSecret, a.paymentMethod, "fail")).toBe("requires_payment_method");
    await accountAlarm(a.accountId);
    expect((await rechargeRows(a.accountId))[0]?.status).toBe("action_required");

    const past = Date.now() - 1000;
    await rewrite(a.accountId, "UPDATE recharges SET expires_at = ?, due_at = ? WHERE n = 1", past, past);
    await accountAlarm(a.accountId);
    const rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status, r.code, r.client_secret])).toEqual([[1, "failed", "authentication_required", null]]);
    expect(await stripePI(a.pi)).toMatchObject({ status: "canceled" });
    expect(await stripeCredits(a.customerId, a.pi)).toEqual([]);
    expect(await view(a.accountId)).toMatchObject({ enabled: true, consecutive_failures: 1 });
    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.failed": 1 });
    expect(recharge(events)).toEqual({ "recharge.action_required": 1, "recharge.failed": 1 });
    expect(ofType<RechargeEventData>(events, "recharge.failed")[0]?.data).toMatchObject({
      recharge: 1,
      code: "authentication_required",
      payment_intent_id: a.pi,
    });
  });

  // Completed on the page at the last moment but never confirmed to the service (the page was
  // closed, the webhook not delivered): the expiry's cancel is refused, Stripe says it is paid,
  // and it is credited rather than written off.
  it("completed but never confirmed: the expiry finds it paid and credits it once instead of cancelling", async () => {
    const a = await waitingRecharge();
    expect(await authenticateOnPage(a.pi, a.clientSecret, a.paymentMethod, "complete")).toBe("succeeded");
    const past = Date.now() - 1000;
    await rewrite(a.accountId, "UPDATE recharges SET expires_at = ?, due_at = ? WHERE n = 1", past, past);
    await accountAlarm(a.accountId);
    const rows = await settleRecharges(a.accountId);
    expect(rows.map((r) => [r.n, r.status])).toEqual([[1, "succeeded"]]);
    expect(await stripePI(a.pi)).toMatchObject({ status: "succeeded" });
    expect(await stripeCredits(a.customerId, a.pi)).toEqual([-2000]);
    expect(await walletOf(a.accountId)).toEqual({ available: 2400, held: 0 });
  });
});

describe("a card detached in Stripe", () => {
  // payment_method.detached names only the card; the card index finds the account that saved
  // it, which forgets it and switches auto-recharge off (recharge.disabled, card_removed).
  // Delivered again, it changes nothing more.
  it("the saved card is forgotten, auto-recharge switched off, recharge.disabled once; nothing is charged after", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    await detach(a.paymentMethod);
    const eventId = await deliverDetached(a.paymentMethod);

    expect(await view(a.accountId)).toMatchObject({ enabled: false, payment_method: null, disabled_reason: "card_removed" });
    await debitOk(a.accountId, 600);
    expect(await settleRecharges(a.accountId)).toEqual([]);
    expect(await rechargePIs(a.customerId)).toEqual([]);
    const on = await putSettings(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    expect(on.status).toBe(409);
    expect((await json<{ error: { code: string } }>(on)).error.code).toBe("no_saved_card");

    expect((await deliver(eventId)).status).toBe(200);
    const events = await waitForTypes(ofAccount(a.accountId), { "recharge.disabled": 1 });
    expect(recharge(events)).toEqual({ "recharge.disabled": 1 });
    expect(ofType<RechargeDisabledData>(events, "recharge.disabled")[0]?.data).toEqual({
      account_id: a.accountId,
      reason: "card_removed",
      consecutive_failures: 0,
    });
  });

  // Auto-recharge was never on: the card is forgotten, and there is nothing to switch off or announce.
  it("a saved card with auto-recharge off: forgotten, no event", async () => {
    const a = await accountWithCard(1000);
    await detach(a.paymentMethod);
    await deliverDetached(a.paymentMethod);
    expect(await view(a.accountId)).toMatchObject({ enabled: false, payment_method: null, disabled_reason: null });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    expect(recharge(await receivedFor(ofAccount(a.accountId)))).toEqual({});
  });

  // A card attached to the customer by other means (never saved through a top-up), and a card
  // Stripe never had: 200 to Stripe, and the account that did save a card keeps it, still on.
  it("a card no account saved: 200, and nothing changes", async () => {
    const a = await accountWithCard(1000);
    await configure(a.accountId, { enabled: true, threshold: 500, amount: 2000, monthly_limit: 100_000 });
    const before = await view(a.accountId);
    const other = await emu<{ payment_method: { id: string } }>("/payment_methods", { card: "pm_card_visa", customer: a.customerId });
    await detach(other.payment_method.id);
    await deliverDetached(other.payment_method.id);
    const forged = await postSigned("payment_method.detached", { id: "pm_neverSavedAnywhere0001", object: "payment_method", customer: null });
    expect(forged.status).toBe(200);

    expect(await view(a.accountId)).toEqual(before);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    expect(recharge(await receivedFor(ofAccount(a.accountId)))).toEqual({});
    // Still on, with its own card: a write below the threshold recharges on it.
    await debitOk(a.accountId, 600);
    const [rec] = await settleRecharges(a.accountId);
    expect(rec).toMatchObject({ status: "succeeded", payment_method: a.paymentMethod });
  });
});
