// POST /stripe/webhook: Stripe's signed events. The signature is checked on the raw body
// (src/stripe/webhooks.ts); anything unsigned, altered or stale is 400 and touches nothing. A
// signed payload is then parsed with a schema of just the fields this service reads, per event
// type: one that does not parse is acknowledged, logged as an error and listed for an operator
// (the registry's bad_events, GET /operator/events), never a 500 that Stripe would redeliver
// for days. A parsed event is handed to its PaymentIntent's object, which records it and acts
// on it from its alarm, so the answer never waits on Stripe's API. Stripe delivers at least
// once and sometimes sends two event objects for one change: the objects make both harmless.

import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { z } from "zod";
import type { WebhookFact } from "../credit/contract.js";
import { ApiError } from "../errors.js";
import { sha256Hex } from "../hash.js";
import type { AppEnv } from "../http.js";
import { PAYMENT_INTENT_ID } from "../ids.js";
import { logEvent } from "../log.js";
import { cardIndexObject, paymentIntentObject, registryObject } from "../objects/stubs.js";
import { settings } from "../settings.js";
import { verifyWebhookSignature } from "../stripe/webhooks.js";
import { callObject } from "./object-calls.js";

/** Stripe's events are small; this bounds what an unsigned caller can make us hash. */
const WEBHOOK_MAX_BYTES = 256 * 1024;

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
    const raw = await c.req.text();
    const verdict = await verifyWebhookSignature(raw, signature, settings(c.env).stripe.webhookSecrets);
    if (verdict.kind === "unverifiable") {
      logEvent("webhook_misconfigured", { error: verdict.reason });
      // Stripe retries non-2xx for days: nothing is lost while the configuration is fixed.
      throw new ApiError(503, "stripe_unavailable", "Webhooks cannot be verified now.", {}, { "Retry-After": "60" });
    }
    if (verdict.kind === "not_signed") throw new ApiError(400, "invalid_signature", "The signature does not match this payload, or it is too old.");

    // From here the payload is Stripe's: every answer is 200, or a 503 that Stripe retries. A
    // payload that does not parse is acknowledged (redelivering it would not change it) and
    // listed for an operator, never thrown at as a 500 that Stripe would redeliver for days.
    const parsed = await parseEvent(raw);
    if (!parsed.ok) {
      logEvent("webhook_unparseable", { level: "error", event_id: parsed.eventId, type: parsed.type, error: parsed.error });
      await callObject(async () => await registryObject(c.env).noteBadEvent({ event_id: parsed.eventId, type: parsed.type, error: parsed.error }));
      return c.json({ received: true }, 200);
    }
    const { event } = parsed;
    if (event.type === "payment_method.detached") {
      // The account that saved the card forgets it (the card index finds it: a detached card names no customer).
      const pm = event.object.id;
      const told = await callObject(async () => await cardIndexObject(c.env, pm).detached(pm));
      logEvent("webhook", {
        event_id: event.id,
        type: event.type,
        payment_method: pm,
        account: told.account_id,
        outcome: told.forgotten ? "forgotten" : "ignored",
      });
      return c.json({ received: true }, 200);
    }
    const target = factOf(event, settings(c.env).reverseOnRefund);
    if (!target) {
      logEvent("webhook", { event_id: event.id, type: event.type === "other" ? event.name : event.type, outcome: "ignored" });
      return c.json({ received: true }, 200);
    }
    const started = Date.now();
    const { accepted } = await callObject(async () => await paymentIntentObject(c.env, target.paymentIntentId).notify(target.paymentIntentId, target.fact));
    logEvent("webhook", {
      event_id: event.id,
      type: event.type,
      payment_intent: target.paymentIntentId,
      outcome: accepted ? "accepted" : "ignored",
      duration_ms: Date.now() - started,
    });
    return c.json({ received: true }, 200);
  },
);

// The events this service acts on, with just the fields it reads; everything else passes through.
const Id = z.string().min(1).max(255);
/** A reference Stripe sends as an id, or expanded as the object. */
const Ref = z.union([Id, z.looseObject({ id: Id })]);
const Amount = z.number().int().nonnegative();

const Envelope = z.looseObject({ id: Id, type: z.string().min(1).max(255), data: z.looseObject({ object: z.unknown() }) });
const PaymentIntentObject = z.looseObject({ id: z.string().regex(PAYMENT_INTENT_ID) });
/**
 * The fields of the event's PI that decide a credit (src/credit/policy.ts). When they parse, the
 * object credits from them without reading the PI again; when they do not (a shape this service
 * does not know), it reads the PI, so nothing is lost.
 */
const PaymentIntentFactsSchema = z.object({
  id: z.string().regex(PAYMENT_INTENT_ID),
  status: z.string().min(1).max(64),
  customer: Ref.nullable(),
  amount_received: z.number().int(),
  currency: z.string().min(1).max(16),
  livemode: z.boolean(),
  metadata: z.record(z.string(), z.string()).nullable(),
  created: z.number().int(),
});
// A charge with no PaymentIntent (payment_intent: null) is a legitimate charge of another kind.
const ChargeObject = z.looseObject({ payment_intent: Ref.nullable(), amount_refunded: Amount });
const DisputeObject = z.looseObject({ id: Id, amount: Amount, status: z.string().min(1), payment_intent: Ref.nullable() });
const PaymentMethodObject = z.looseObject({ id: z.string().regex(/^pm_[A-Za-z0-9_]{1,250}$/) });

type Event =
  | { id: string; type: "payment_intent.succeeded"; object: z.infer<typeof PaymentIntentObject> }
  | { id: string; type: "charge.refunded"; object: z.infer<typeof ChargeObject> }
  | { id: string; type: "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed"; object: z.infer<typeof DisputeObject> }
  | { id: string; type: "payment_method.detached"; object: z.infer<typeof PaymentMethodObject> }
  | { id: string; type: "other"; name: string };

type Parsed = { ok: true; event: Event } | { ok: false; eventId: string; type: string | null; error: string };

/** A signed payload as one of the events above, or what is wrong with it. */
async function parseEvent(raw: string): Promise<Parsed> {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, eventId: await payloadName(raw), type: null, error: "the payload is not JSON" };
  }
  const envelope = Envelope.safeParse(json);
  if (!envelope.success) {
    const loose = typeof json === "object" && json !== null ? (json as Record<string, unknown>) : {};
    const id = Id.safeParse(loose.id);
    const type = z.string().min(1).max(255).safeParse(loose.type);
    return {
      ok: false,
      eventId: id.success ? id.data : await payloadName(raw),
      type: type.success ? type.data : null,
      error: `not an event: ${describe(envelope.error)}`,
    };
  }
  const { id, type, data } = envelope.data;
  const bad = (error: z.ZodError): Parsed => ({ ok: false, eventId: id, type, error: `data.object: ${describe(error)}` });
  switch (type) {
    case "payment_intent.succeeded": {
      const object = PaymentIntentObject.safeParse(data.object);
      return object.success ? { ok: true, event: { id, type, object: object.data } } : bad(object.error);
    }
    case "charge.refunded": {
      const object = ChargeObject.safeParse(data.object);
      return object.success ? { ok: true, event: { id, type, object: object.data } } : bad(object.error);
    }
    case "charge.dispute.created":
    case "charge.dispute.updated":
    case "charge.dispute.closed": {
      const object = DisputeObject.safeParse(data.object);
      return object.success ? { ok: true, event: { id, type, object: object.data } } : bad(object.error);
    }
    case "payment_method.detached": {
      const object = PaymentMethodObject.safeParse(data.object);
      return object.success ? { ok: true, event: { id, type, object: object.data } } : bad(object.error);
    }
    default:
      return { ok: true, event: { id, type: "other", name: type } };
  }
}

/** The first issues of a failed parse, path and message, for the log and the operator. */
function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join(".") : "(root)"}: ${issue.message}`)
    .join("; ");
}

/** A name for a payload that has no usable event id: its hash, so that redeliveries share one row. */
async function payloadName(raw: string): Promise<string> {
  return `sha256:${await sha256Hex(raw)}`;
}

/** A succeeded PI's fact, with the PI's deciding fields when the event's object has them all. */
function factsOf(object: unknown): WebhookFact {
  const facts = PaymentIntentFactsSchema.safeParse(object);
  if (!facts.success) return { kind: "succeeded" };
  const pi = facts.data;
  return {
    kind: "succeeded",
    paymentIntent: { ...pi, customer: typeof pi.customer === "string" || pi.customer === null ? pi.customer : { id: pi.customer.id } },
  };
}

/** What an event means for one PaymentIntent's credit, or null when it means nothing here. */
function factOf(event: Event, reverse: boolean): { paymentIntentId: string; fact: WebhookFact } | null {
  const idOf = (value: string | { id: string } | null) => (typeof value === "string" ? value : (value?.id ?? null));
  let paymentIntentId: string | null = null;
  let fact: WebhookFact | null = null;
  switch (event.type) {
    case "payment_intent.succeeded":
      paymentIntentId = event.object.id;
      fact = factsOf(event.object);
      break;
    case "charge.refunded":
      if (!reverse) return null;
      paymentIntentId = idOf(event.object.payment_intent);
      fact = { kind: "refunded", amountRefunded: event.object.amount_refunded };
      break;
    case "charge.dispute.created":
    case "charge.dispute.updated":
    case "charge.dispute.closed": {
      if (!reverse) return null;
      const dispute = event.object;
      // Inquiries (warning_*) hold no funds back: they do not touch the credit.
      if (dispute.status.startsWith("warning_")) return null;
      paymentIntentId = idOf(dispute.payment_intent);
      const status = dispute.status === "won" ? "won" : dispute.status === "lost" ? "lost" : "open";
      fact = { kind: "dispute", disputeId: dispute.id, amount: dispute.amount, status };
      break;
    }
    case "payment_method.detached":
    case "other":
      return null;
  }
  if (!paymentIntentId || !PAYMENT_INTENT_ID.test(paymentIntentId)) return null;
  return { paymentIntentId, fact };
}
