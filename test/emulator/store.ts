// The emulator's in-memory Stripe account: every object it has created, in creation order, plus
// the lagging customer-search index. Object shapes follow the `stripe` package's types.

import { noSuch, StripeFailure } from "./errors.js";

export type Metadata = Record<string, string>;

export interface Customer {
  id: string;
  object: "customer";
  balance: number;
  created: number;
  currency: string | null;
  description: string | null;
  email: string | null;
  livemode: boolean;
  metadata: Metadata;
  name: string | null;
}

export type PaymentIntentStatus =
  "requires_payment_method" | "requires_confirmation" | "requires_action" | "processing" | "requires_capture" | "canceled" | "succeeded";

export interface PaymentIntent {
  id: string;
  object: "payment_intent";
  allowed_payment_method_types: string[] | null;
  amount: number;
  amount_capturable: number;
  amount_received: number;
  automatic_payment_methods: { enabled: boolean; allow_redirects?: string } | null;
  canceled_at: number | null;
  cancellation_reason: string | null;
  capture_method: "automatic";
  client_secret: string;
  confirmation_method: "automatic";
  created: number;
  currency: string;
  customer: string | null;
  description: string | null;
  last_payment_error: unknown;
  latest_charge: string | null;
  livemode: boolean;
  metadata: Metadata;
  /** What the customer must do next (3-D Secure: `use_stripe_sdk`), while `requires_action`. */
  next_action: { type: "use_stripe_sdk"; use_stripe_sdk: Record<string, string> } | null;
  payment_method: string | null;
  payment_method_types: string[];
  receipt_email: string | null;
  setup_future_usage: "on_session" | "off_session" | null;
  status: PaymentIntentStatus;
}

/** A card PaymentMethod, as Stripe serialises it (the card's behaviour is kept apart, in `Store.cards`). */
export interface PaymentMethod {
  id: string;
  object: "payment_method";
  allow_redisplay: "always" | "limited" | "unspecified";
  billing_details: {
    address: { city: null; country: null; line1: null; line2: null; postal_code: null; state: null };
    email: null;
    name: null;
    phone: null;
  };
  card: { brand: string; country: string; exp_month: number; exp_year: number; funding: string; last4: string };
  created: number;
  customer: string | null;
  livemode: boolean;
  metadata: Metadata;
  type: "card";
}

/**
 * How a card answers a payment, as Stripe's test cards do: `decline` and `insufficient_funds`
 * are declined; `authentication_required` asks for 3-D Secure on every payment (off-session too,
 * where nobody can answer, so it fails); `authentication_required_on_setup` asks for it on every
 * on-session payment, and off-session only until the card was saved through a payment.
 */
export type CardBehaviour = "succeed" | "decline" | "insufficient_funds" | "authentication_required" | "authentication_required_on_setup";
export const CARD_BEHAVIOURS: readonly CardBehaviour[] = [
  "succeed",
  "decline",
  "insufficient_funds",
  "authentication_required",
  "authentication_required_on_setup",
];

/** What Stripe knows of a card and never shows: how it answers, and whether it can still be used. */
export interface CardState {
  behaviour: CardBehaviour;
  /** Saved through a payment with `setup_future_usage` (what exempts later off-session payments). */
  setUp: boolean;
  /** Paid once without being attached to a customer, or detached: Stripe refuses it from then on. */
  spent: boolean;
}

export interface Charge {
  id: string;
  object: "charge";
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  /** What the cardholder gave with the card; the test cards give nothing, so every field is null. */
  billing_details: { address: null; email: null; name: null; phone: null };
  captured: boolean;
  created: number;
  currency: string;
  customer: string | null;
  disputed: boolean;
  livemode: boolean;
  metadata: Metadata;
  paid: boolean;
  payment_intent: string;
  payment_method: string | null;
  refunded: boolean;
  status: "succeeded" | "failed";
}

export interface Refund {
  id: string;
  object: "refund";
  amount: number;
  charge: string;
  created: number;
  currency: string;
  metadata: Metadata;
  payment_intent: string;
  reason: string | null;
  status: "succeeded";
}

/** The fields of a dispute's `evidence`, as Stripe's API reference lists them. */
export const DISPUTE_EVIDENCE_FIELDS = [
  "access_activity_log",
  "billing_address",
  "cancellation_policy",
  "cancellation_policy_disclosure",
  "cancellation_rebuttal",
  "customer_communication",
  "customer_email_address",
  "customer_name",
  "customer_purchase_ip",
  "customer_signature",
  "duplicate_charge_documentation",
  "duplicate_charge_explanation",
  "duplicate_charge_id",
  "product_description",
  "receipt",
  "refund_policy",
  "refund_policy_disclosure",
  "refund_refusal_explanation",
  "service_date",
  "service_documentation",
  "shipping_address",
  "shipping_carrier",
  "shipping_date",
  "shipping_documentation",
  "shipping_tracking_number",
  "uncategorized_file",
  "uncategorized_text",
] as const;

export interface Dispute {
  id: string;
  object: "dispute";
  amount: number;
  /** Funds withdrawn and reinstated; the emulator keeps no platform balance, so none. */
  balance_transactions: [];
  charge: string;
  created: number;
  currency: string;
  /** Every evidence field Stripe lists, null until evidence is given (the emulator takes none). */
  evidence: Record<(typeof DISPUTE_EVIDENCE_FIELDS)[number], null>;
  evidence_details: { due_by: number; has_evidence: false; past_due: false; submission_count: 0 };
  is_charge_refundable: false;
  livemode: boolean;
  metadata: Metadata;
  payment_intent: string;
  reason: string;
  status: "needs_response" | "under_review" | "won" | "lost";
}

export interface BalanceTransaction {
  id: string;
  object: "customer_balance_transaction";
  amount: number;
  created: number;
  credit_note: null;
  currency: string;
  customer: string;
  description: string | null;
  ending_balance: number;
  invoice: null;
  livemode: boolean;
  metadata: Metadata;
  type: "adjustment";
}

export interface StripeEvent {
  id: string;
  object: "event";
  api_version: string;
  created: number;
  data: { object: unknown; previous_attributes?: Record<string, unknown> };
  livemode: boolean;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  type: string;
}

/** Counts of objects written, by kind: what tests read to prove "nothing was written". */
export type WriteCounts = Record<string, number>;

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** A Stripe-looking id: prefix, underscore, 24 random base62 characters. */
export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  let s = "";
  for (const b of bytes) s += ALPHABET[b % 62];
  return `${prefix}_${s}`;
}

/** Unix seconds, as every Stripe `created` field. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

interface PendingIndexEntry {
  due: number;
  snapshot: Customer;
}

/** One Stripe account's objects. `searchLagMs` delays what customer search sees after writes. */
export class Store {
  customers = new Map<string, Customer>();
  paymentIntents = new Map<string, PaymentIntent>();
  paymentMethods = new Map<string, PaymentMethod>();
  /** Each stored PaymentMethod's hidden state, by its id. */
  cards = new Map<string, CardState>();
  charges = new Map<string, Charge>();
  refunds = new Map<string, Refund>();
  disputes = new Map<string, Dispute>();
  /** Balance transactions per customer, oldest first. */
  balanceTransactions = new Map<string, BalanceTransaction[]>();
  balanceTransactionsById = new Map<string, BalanceTransaction>();
  events: StripeEvent[] = [];
  writes: WriteCounts = {};

  // Stripe's customer search is eventually consistent: a write becomes visible to search only
  // after the lag. The index holds snapshots; pending writes move into it when they are due.
  #searchIndex = new Map<string, Customer>();
  #pendingIndex: PendingIndexEntry[] = [];

  constructor(public searchLagMs = 0) {}

  /** Counts one written object of `kind`. */
  wrote(kind: string): void {
    this.writes[kind] = (this.writes[kind] ?? 0) + 1;
  }

  customer(id: string, param = "id"): Customer {
    const c = this.customers.get(id);
    if (!c) throw noSuch("customer", id, param);
    return c;
  }

  paymentIntent(id: string, param = "intent"): PaymentIntent {
    const pi = this.paymentIntents.get(id);
    if (!pi) throw noSuch("payment_intent", id, param);
    return pi;
  }

  paymentMethod(id: string, param = "payment_method"): PaymentMethod {
    const pm = this.paymentMethods.get(id);
    if (!pm) throw noSuch("PaymentMethod", id, param);
    return pm;
  }

  /** The hidden state of a stored PaymentMethod. */
  card(id: string): CardState {
    const state = this.cards.get(id);
    if (!state) throw new Error(`no card state for ${id}`);
    return state;
  }

  /** Records a customer write for search, visible after the configured lag. */
  indexCustomer(c: Customer): void {
    const snapshot = structuredClone(c);
    if (this.searchLagMs <= 0) this.#searchIndex.set(c.id, snapshot);
    else this.#pendingIndex.push({ due: Date.now() + this.searchLagMs, snapshot });
  }

  /** Customers as customer search currently sees them. */
  searchableCustomers(): Customer[] {
    const now = Date.now();
    const still: PendingIndexEntry[] = [];
    for (const p of this.#pendingIndex) {
      if (p.due <= now) this.#searchIndex.set(p.snapshot.id, p.snapshot);
      else still.push(p);
    }
    this.#pendingIndex = still;
    return [...this.#searchIndex.values()];
  }

  /** Applies a balance transaction to its customer; Stripe fixes a customer's currency on first use. */
  addBalanceTransaction(customer: Customer, amount: number, currency: string, description: string | null, metadata: Metadata): BalanceTransaction {
    if (customer.currency !== null && customer.currency !== currency) {
      throw new StripeFailure(400, {
        type: "invalid_request_error",
        code: "invalid_currency",
        param: "currency",
        message: `The currency ${currency} does not match the customer's currency ${customer.currency}.`,
      });
    }
    customer.currency = currency;
    customer.balance += amount;
    const tx: BalanceTransaction = {
      id: newId("cbtxn"),
      object: "customer_balance_transaction",
      amount,
      created: nowSeconds(),
      credit_note: null,
      currency,
      customer: customer.id,
      description,
      ending_balance: customer.balance,
      invoice: null,
      livemode: customer.livemode,
      metadata,
      type: "adjustment",
    };
    const list = this.balanceTransactions.get(customer.id) ?? [];
    list.push(tx);
    this.balanceTransactions.set(customer.id, list);
    this.balanceTransactionsById.set(tx.id, tx);
    this.wrote("customer_balance_transaction");
    this.indexCustomer(customer);
    return tx;
  }
}

/** Stripe's list envelope. */
export interface ListPage<T> {
  object: "list";
  data: T[];
  has_more: boolean;
  url: string;
}

/**
 * One page of `items` (given oldest first), newest first, with Stripe's `limit` (1-100, default
 * 10), `starting_after` (older than the cursor) and `ending_before` (newer than the cursor).
 */
export function paginate<T extends { id: string }>(
  itemsOldestFirst: readonly T[],
  params: { limit?: unknown; starting_after?: unknown; ending_before?: unknown },
  url: string,
): ListPage<T> {
  const limit = params.limit === undefined ? 10 : (params.limit as number);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) {
    throw new StripeFailure(400, {
      type: "invalid_request_error",
      code: "parameter_invalid_integer",
      param: "limit",
      message: "Invalid limit: must be between 1 and 100",
    });
  }
  const newestFirst = [...itemsOldestFirst].reverse();
  const find = (param: string, id: unknown): number => {
    const idx = newestFirst.findIndex((o) => o.id === id);
    if (idx < 0) {
      throw new StripeFailure(400, {
        type: "invalid_request_error",
        code: "resource_missing",
        param,
        message: `No such object: '${String(id)}'`,
      });
    }
    return idx;
  };
  if (params.starting_after !== undefined) {
    const rest = newestFirst.slice(find("starting_after", params.starting_after) + 1);
    return { object: "list", data: rest.slice(0, limit), has_more: rest.length > limit, url };
  }
  if (params.ending_before !== undefined) {
    const before = newestFirst.slice(0, find("ending_before", params.ending_before));
    return { object: "list", data: before.slice(-limit), has_more: before.length > limit, url };
  }
  return { object: "list", data: newestFirst.slice(0, limit), has_more: newestFirst.length > limit, url };
}
