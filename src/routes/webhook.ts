// POST /stripe/webhook: Stripe's signed events. The signature is checked on the raw body with
// the stripe package (constructEventAsync: HMAC-SHA256 over "t.body", any of several v1
// signatures, 300 s tolerance); anything unsigned, altered or stale is 400 and touches nothing.
// A verified event is handed to its PaymentIntent's object, which records it and acts on it
// from its alarm, so the answer never waits on Stripe's API. Stripe delivers at least once and
// sometimes sends two event objects for one change: the objects make both harmless.

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import Stripe from "stripe";
import { ApiError } from "../errors.js";
import type { AppEnv } from "../http.js";
import { PAYMENT_INTENT_ID } from "../ids.js";
import { logEvent } from "../log.js";
import type { WebhookFact } from "../objects/payment-intent.js";
import { createStripe } from "../stripe/client.js";
import { callObject, paymentIntentObject } from "./objects.js";

/** Stripe's events are small; this bounds what an unsigned caller can make us hash. */
const WEBHOOK_MAX_BYTES = 256 * 1024;
const TOLERANCE_SECONDS = 300;

export const webhook = new Hono<AppEnv>();

webhook.post(
  "/",
  bodyLimit({
    maxSize: WEBHOOK_MAX_BYTES,
    onError: () => {
      throw new ApiError(413, "payload_too_large", "The event is too large.");
    },
  }),
  async (c) => {
    const signature = c.req.header("stripe-signature");
    if (!signature) throw new ApiError(400, "invalid_signature", "Missing Stripe-Signature.");
    // Several secrets (comma-separated) while an endpoint secret is being rolled.
    const secrets = (c.env.STRIPE_WEBHOOK_SECRET ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    if (secrets.length === 0) {
      logEvent("webhook_misconfigured", { error: "STRIPE_WEBHOOK_SECRET is not set" });
      // Stripe retries non-2xx for days: nothing is lost while the secret is fixed.
      throw new ApiError(503, "stripe_unavailable", "Webhooks are not configured.", {}, { "Retry-After": "60" });
    }
    const raw = await c.req.text();
    const event = await verify(createStripe(c.env), raw, signature, secrets);
    if (!event) throw new ApiError(400, "invalid_signature", "The signature does not match this payload, or it is too old.");

    const target = factOf(event, (c.env.REVERSE_ON_REFUND ?? "true").toLowerCase() !== "false");
    if (!target) {
      logEvent("webhook", { event_id: event.id, type: event.type, outcome: "ignored" });
      return c.json({ received: true }, 200);
    }
    const started = Date.now();
    const { accepted } = await callObject(async () => await paymentIntentObject(c.env, target.paymentIntentId).notify(target.paymentIntentId, target.fact));
    logEvent("webhook", { event_id: event.id, type: event.type, payment_intent: target.paymentIntentId, outcome: accepted ? "accepted" : "ignored", duration_ms: Date.now() - started });
    return c.json({ received: true }, 200);
  },
);

async function verify(stripe: Stripe, raw: string, signature: string, secrets: string[]): Promise<Stripe.Event | null> {
  const crypto = Stripe.createSubtleCryptoProvider();
  for (const secret of secrets) {
    try {
      return await stripe.webhooks.constructEventAsync(raw, signature, secret, TOLERANCE_SECONDS, crypto);
    } catch {
      // try the next secret
    }
  }
  return null;
}

/** What an event means for one PaymentIntent's credit, or null when it means nothing here. */
function factOf(event: Stripe.Event, reverse: boolean): { paymentIntentId: string; fact: WebhookFact } | null {
  const idOf = (value: string | { id: string } | null | undefined) => (typeof value === "string" ? value : (value?.id ?? null));
  let paymentIntentId: string | null = null;
  let fact: WebhookFact | null = null;
  switch (event.type) {
    case "payment_intent.succeeded":
      paymentIntentId = event.data.object.id;
      fact = { kind: "succeeded" };
      break;
    case "charge.refunded":
      if (!reverse) return null;
      paymentIntentId = idOf(event.data.object.payment_intent);
      fact = { kind: "refunded", amountRefunded: event.data.object.amount_refunded };
      break;
    case "charge.dispute.created":
    case "charge.dispute.updated":
    case "charge.dispute.closed": {
      if (!reverse) return null;
      const dispute = event.data.object;
      // Inquiries (warning_*) hold no funds back: they do not touch the credit.
      if (dispute.status.startsWith("warning_")) return null;
      paymentIntentId = idOf(dispute.payment_intent);
      const status = dispute.status === "won" ? "won" : dispute.status === "lost" ? "lost" : "open";
      fact = { kind: "dispute", disputeId: dispute.id, amount: dispute.amount, status };
      break;
    }
    default:
      return null;
  }
  if (!paymentIntentId || !PAYMENT_INTENT_ID.test(paymentIntentId) || !fact) return null;
  return { paymentIntentId, fact };
}
