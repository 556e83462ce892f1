// The Stripe calls auto-recharge makes (src/stripe/payment-intents.ts), against the emulator:
// a top-up that saves its card, a recharge off-session on a saved card under
// `recharge:{account}:{n}` (replayed, declined, asking for authentication), the look for a
// recharge's PaymentIntent when its creation's outcome is unknown, and the cancellation of one
// nobody authenticated. Each failure arrives as a verdict carrying what the recharge needs: the
// card's decline code and the PaymentIntent Stripe made.

import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { StripeGateway, type CallKind } from "../src/stripe/gateway.js";
import { rechargeCancelKey, rechargeKey, topUpKey } from "../src/stripe/keys.js";
import type { RechargeInput } from "../src/stripe/payment-intents.js";
import { createCustomer, emu, newAccountId, stripeRequests, topUpMetadata } from "./helpers.js";

function counted() {
  const calls: CallKind[] = [];
  return { calls, stripe: new StripeGateway(env, { onCall: (kind) => calls.push(kind) }) };
}

/** An account with a customer and a card saved on it (as a top-up with setup_future_usage leaves it). */
async function savedCard(card = "pm_card_visa") {
  const accountId = newAccountId("gwr");
  const customer = await createCustomer(accountId);
  const { payment_method: pm } = await emu<{ payment_method: { id: string } }>("/payment_methods", { card, customer: customer.id });
  const input: RechargeInput = { accountId, n: 1, customerId: customer.id, paymentMethod: pm.id, amount: 1500, currency: "usd" };
  return { accountId, customer, pm, input };
}

describe("the gateway's auto-recharge calls", () => {
  it("a top-up that saves its card asks for off-session use; the same key without it is another request", async () => {
    const accountId = newAccountId("gwr");
    const customer = await createCustomer(accountId);
    const { stripe } = counted();
    const input = { accountId, customerId: customer.id, amount: 700, currency: "usd", clientKey: "save-it" };
    const saving = await stripe.paymentIntents.createTopUp({ ...input, savePaymentMethod: true });
    if (!saving.ok) throw new Error(saving.failure.message);
    expect(saving.value.setup_future_usage).toBe("off_session");
    const plain = await stripe.paymentIntents.createTopUp({ ...input, clientKey: "plain" });
    expect(plain.ok && plain.value.setup_future_usage).toBeNull();
    // A double click that flipped the checkbox is not the same top-up: Stripe refuses the key.
    const flipped = await stripe.paymentIntents.createTopUp({ ...input, savePaymentMethod: false });
    expect(!flipped.ok && flipped.failure.rawType).toBe("idempotency_error");
    expect(await stripeRequests({ path: "/v1/payment_intents", key: await topUpKey(accountId, "save-it") })).toHaveLength(2);
  });

  it("a recharge is an off-session top-up on the saved card, under recharge:{account}:{n}: a retry is the same PaymentIntent", async () => {
    const { accountId, customer, pm, input } = await savedCard();
    const { calls, stripe } = counted();
    const made = await stripe.paymentIntents.createRecharge(input);
    const again = await stripe.paymentIntents.createRecharge(input);
    if (!made.ok || !again.ok) throw new Error("recharge not created");
    expect(again.value.id).toBe(made.value.id);
    expect(made.value).toMatchObject({ status: "succeeded", amount_received: 1500, customer: customer.id, payment_method: pm.id });
    expect(made.value.metadata).toEqual({ ...topUpMetadata(accountId), recharge: `${accountId}:1` });
    const sent = await stripeRequests({ path: "/v1/payment_intents", key: rechargeKey(accountId, 1) });
    expect(sent).toHaveLength(2);
    expect(calls).toEqual(["payment_intents.create", "payment_intents.create"]);
    // The next recharge is another key, another PaymentIntent.
    const second = await stripe.paymentIntents.createRecharge({ ...input, n: 2 });
    expect(second.ok && second.value.id).not.toBe(made.value.id);
  });

  it("a declined recharge is a card-error verdict with the decline code and the PaymentIntent; its retry replays the decline", async () => {
    const { input } = await savedCard("pm_card_chargeDeclinedInsufficientFunds");
    const { stripe } = counted();
    const declined = await stripe.paymentIntents.createRecharge(input);
    if (declined.ok) throw new Error("a declined card was charged");
    expect(declined.failure).toMatchObject({ kind: "permanent", rawType: "card_error", code: "card_declined", declineCode: "insufficient_funds" });
    expect(declined.failure.paymentIntent).toMatchObject({ status: "requires_payment_method" });
    const replayed = await stripe.paymentIntents.createRecharge(input);
    expect(!replayed.ok && replayed.failure.paymentIntent?.id).toBe(declined.failure.paymentIntent?.id);
  });

  it("a card that asks for authentication: authentication_required, with the PaymentIntent and its client secret for the page", async () => {
    const { input } = await savedCard("pm_card_authenticationRequired");
    const { stripe } = counted();
    const asked = await stripe.paymentIntents.createRecharge(input);
    if (asked.ok) throw new Error("charged without authentication");
    expect(asked.failure).toMatchObject({ rawType: "card_error", code: "authentication_required" });
    const pi = asked.failure.paymentIntent;
    expect(pi?.id).toMatch(/^pi_/);
    expect(pi?.client_secret).toMatch(new RegExp(`^${pi?.id}_secret_`));
  });

  it("findRecharge finds the PaymentIntent tagged with the recharge, and nothing for a recharge never made", async () => {
    const { accountId, customer, input } = await savedCard();
    const { calls, stripe } = counted();
    const made = await stripe.paymentIntents.createRecharge({ ...input, n: 3 });
    if (!made.ok) throw new Error(made.failure.message);
    const found = await stripe.paymentIntents.findRecharge(customer.id, accountId, 3);
    expect(found.ok && found.value?.id).toBe(made.value.id);
    const none = await stripe.paymentIntents.findRecharge(customer.id, accountId, 4);
    expect(none).toEqual({ ok: true, value: null });
    // Another account's recharge n is not this one's, even on the same customer.
    const other = await stripe.paymentIntents.findRecharge(customer.id, `${accountId}x`, 3);
    expect(other).toEqual({ ok: true, value: null });
    expect(calls.filter((k) => k === "payment_intents.list")).toHaveLength(3);
  });

  it("cancelRecharge cancels a waiting recharge under recharge-cancel:{account}:{n}; a paid one is refused", async () => {
    const waiting = await savedCard("pm_card_authenticationRequired");
    const { calls, stripe } = counted();
    const asked = await stripe.paymentIntents.createRecharge(waiting.input);
    const id = asked.ok ? "" : (asked.failure.paymentIntent?.id ?? "");
    const cancelled = await stripe.paymentIntents.cancelRecharge(id, waiting.accountId, 1);
    expect(cancelled.ok && cancelled.value.status).toBe("canceled");
    expect(await stripeRequests({ key: rechargeCancelKey(waiting.accountId, 1) })).toHaveLength(1);
    expect(calls).toContain("payment_intents.cancel");

    const paid = await savedCard();
    const made = await stripe.paymentIntents.createRecharge(paid.input);
    if (!made.ok) throw new Error(made.failure.message);
    const refused = await stripe.paymentIntents.cancelRecharge(made.value.id, paid.accountId, 1);
    expect(!refused.ok && refused.failure.kind).toBe("permanent");
  });

  it("retrieveWithPaymentMethod reads the card inline: whose customer it is attached to, brand and last4", async () => {
    const { customer, pm, input } = await savedCard();
    const { stripe } = counted();
    const made = await stripe.paymentIntents.createRecharge(input);
    if (!made.ok) throw new Error(made.failure.message);
    const read = await stripe.paymentIntents.retrieveWithPaymentMethod(made.value.id);
    if (!read.ok) throw new Error(read.failure.message);
    const card = read.value.payment_method;
    expect(
      typeof card === "object" && card !== null ? { id: card.id, customer: card.customer, brand: card.card?.brand, last4: card.card?.last4 } : card,
    ).toEqual({
      id: pm.id,
      customer: customer.id,
      brand: "visa",
      last4: "4242",
    });
  });
});
