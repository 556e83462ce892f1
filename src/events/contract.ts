// The events the service tells the seller's backend, as they travel: produced by an object into
// its outbox (outbox.ts) in the same transaction as the fact, sent to the EVENTS queue, delivered
// by the queue's consumer (delivery.ts) in the Standard Webhooks format, and, after the last try,
// kept in the dead-letter archive (dead-letters.ts) for an operator to redeliver.
//
// An event's id is derived from its fact, so a fact produced twice (a retried report, an outbox
// sent again after a crash) is one event to the receiver: the id is the `webhook-id` of every
// delivery of it.

import type { WalletLine } from "../wallet/contract.js";

export const EVENT_TYPES = [
  "credit.added",
  "credit.reversed",
  "credit.restored",
  "credit.spent",
  "credit.needs_attention",
  "balance.low",
  "balance.depleted",
  "balance.recovered",
  "recharge.succeeded",
  "recharge.failed",
  "recharge.action_required",
  "recharge.disabled",
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** The wallet's figures an event carries (after the fact). */
export interface EventBalance {
  available: number;
  held: number;
  currency: string;
}

/**
 * `credit.added`, `credit.reversed`, `credit.restored`, `credit.spent`: the ledger line, whose
 * account, and the wallet's figures when the event was produced (right after the line, unless
 * the line reached the wallet another way first, e.g. in the history it opened with).
 */
export interface EntryEventData extends WalletLine {
  account_id: string;
  balance: EventBalance;
}

/** `balance.low`, `balance.depleted`, `balance.recovered`: the balance that crossed, and the threshold it crossed. */
export interface BalanceEventData extends EventBalance {
  account_id: string;
  /** The account's low-balance threshold (minor units; 0 = off). */
  threshold: number;
}

/** `credit.needs_attention`: a credit or a reversal Stripe refused, which waits for an operator. */
export interface AttentionEventData {
  payment_intent_id: string;
  account_id: string | null;
  customer_id: string | null;
  amount: number | null;
  currency: string | null;
  /** What needs attention: the credit itself, or one reversal or restoration (its operation). */
  subject: "credit" | "adjustment";
  operation: string | null;
  reason: string;
  error: string | null;
}

/**
 * `recharge.succeeded` (its credit reached the wallet), `recharge.failed` (declined, refused, or
 * not authenticated within a day), `recharge.action_required` (the bank asks the customer to
 * authenticate: the page completes it with Stripe.js before `expires_at`).
 */
export interface RechargeEventData {
  account_id: string;
  /** The account's recharge number (1, 2, …): `recharge:{account}:{n}` is its Idempotency-Key. */
  recharge: number;
  payment_intent_id: string | null;
  amount: number;
  currency: string;
  /** recharge.failed: Stripe's error code (card_declined, authentication_required, …) and the card's decline code. */
  code: string | null;
  decline_code: string | null;
  /** recharge.action_required: when the waiting payment is cancelled if not completed (ISO 8601). */
  expires_at: string | null;
  /** Failed recharges in a row (3 switch auto-recharge off). */
  consecutive_failures: number;
}

/** `recharge.disabled`: auto-recharge switched itself off until the user turns it on again. */
export interface RechargeDisabledData {
  account_id: string;
  /** `declined`: 3 failed recharges in a row; `card_removed`: the saved card was detached in Stripe. */
  reason: "declined" | "card_removed";
  consecutive_failures: number;
}

export type EventData = EntryEventData | BalanceEventData | AttentionEventData | RechargeEventData | RechargeDisabledData;

/** One event as produced and queued; the delivered body is `{type, timestamp, data}`. */
export interface ServiceEvent {
  id: string;
  type: EventType;
  /** ISO 8601: when the fact became true. */
  created: string;
  data: EventData;
}

/** The id of the event that states `type` of `fact` (a balance transaction, an account's ledger line, …). */
export function eventId(type: EventType, fact: string): string {
  return `evt_${type.replace(".", "_")}_${fact}`;
}

/** The body a receiver gets (Standard Webhooks: type, timestamp, data); identical on every retry. */
export function deliveryBody(event: ServiceEvent): string {
  return JSON.stringify({ type: event.type, timestamp: event.created, data: event.data });
}

/** A dead-lettered event, as an operator lists it. */
export interface DeadLetter {
  event: ServiceEvent;
  /** ISO 8601: when it last reached the dead-letter queue. */
  dead_lettered_at: string;
  /** How many times it reached the dead-letter queue (redelivered and failed again). */
  times: number;
}

export interface DeadLetterPage {
  data: DeadLetter[];
  has_more: boolean;
  next_cursor: string | null;
}

export type RedeliverOutcome = { ok: true } | { ok: false; reason: "not_found" } | { ok: false; reason: "unavailable"; retryAfterSeconds: number };

/** Whether a queue message's body is an event as the objects produce it (a guard against a body put on the queue by hand). */
export function isServiceEvent(body: unknown): body is ServiceEvent {
  if (typeof body !== "object" || body === null) return false;
  const e = body as Record<string, unknown>;
  return (
    typeof e.id === "string" &&
    typeof e.created === "string" &&
    (EVENT_TYPES as readonly unknown[]).includes(e.type) &&
    typeof e.data === "object" &&
    e.data !== null
  );
}

/** The queues' names, as wrangler.toml declares them (the consumer tells them apart by name). */
export const EVENTS_QUEUE = "edge-credit-events";
export const DEAD_LETTER_QUEUE = "edge-credit-events-dead";
/** The dead-letter archive's object name: there is one. */
export const DEAD_LETTERS_NAME = "events";
