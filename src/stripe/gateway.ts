// Every Stripe call the service makes goes through a gateway built here: one small module per
// resource (payment-intents.ts, customers.ts, balance-transactions.ts), each method one call
// with its Idempotency-Key built in keys.ts. Around every call: the governor's permit (in the
// client), the count of calls for whoever asked (an attempt's `stripeCalls`), and the error
// classification (errors.ts), so callers decide on a verdict and never catch SDK errors.

import type Stripe from "stripe";
import type { Env } from "../env.js";
import type { Priority } from "../objects/contract.js";
import { BalanceTransactions } from "./balance-transactions.js";
import { stripeClient } from "./client.js";
import { Customers } from "./customers.js";
import { classifyStripeError, type StripeFailure } from "./errors.js";
import { PaymentIntents } from "./payment-intents.js";

/** What one call came to: its value, or why it failed (never a thrown SDK error). */
export type Call<T> = { ok: true; value: T } | { ok: false; failure: StripeFailure };

/** The kind of each call, for counting and logs. */
export type CallKind =
  | "payment_intents.retrieve"
  | "payment_intents.create"
  | "payment_intents.update"
  | "payment_intents.cancel"
  | "payment_intents.list"
  | "customers.retrieve"
  | "customers.search"
  | "customers.create"
  | "balance_transactions.create"
  | "balance_transactions.list";

export interface GatewayOptions {
  /** Crediting first, display reads after (the governor's queue order). Default: credit. */
  priority?: Priority;
  /** Told of every request sent, including each further page of a list. */
  onCall?: (kind: CallKind) => void;
}

/** Runs one SDK request: counted, then classified if it throws. */
export class Caller {
  constructor(
    readonly sdk: Stripe,
    private readonly onCall: (kind: CallKind) => void,
  ) {}

  /** Counts a request that `run` is about to send (used directly by list paging). */
  count(kind: CallKind): void {
    this.onCall(kind);
  }

  async call<T>(kind: CallKind, run: (sdk: Stripe) => Promise<T>): Promise<Call<T>> {
    this.onCall(kind);
    try {
      return { ok: true, value: await run(this.sdk) };
    } catch (err) {
      return { ok: false, failure: classifyStripeError(err) };
    }
  }
}

/** Stripe, as the service uses it. Cheap to build: the SDK client underneath is shared. */
export class StripeGateway {
  readonly paymentIntents: PaymentIntents;
  readonly customers: Customers;
  readonly balanceTransactions: BalanceTransactions;

  constructor(env: Env, options: GatewayOptions = {}) {
    const caller = new Caller(stripeClient(env, options.priority ?? "credit"), options.onCall ?? (() => undefined));
    this.paymentIntents = new PaymentIntents(caller);
    this.customers = new Customers(caller);
    this.balanceTransactions = new BalanceTransactions(caller);
  }
}
