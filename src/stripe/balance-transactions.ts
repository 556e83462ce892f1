// A customer's balance ledger: write one entry under a key, and read the ledger newest first
// (the SDK's auto-pagination), page by page counted. See gateway.ts for what wraps every call.
// The exactly-once write protocol on top of these is ledger-write.ts.

import type Stripe from "stripe";
import { classifyStripeError } from "./errors.js";
import type { Call, Caller } from "./gateway.js";

/** Stripe's largest page: the fewest calls for a long ledger. */
export const LEDGER_PAGE = 100;

export class BalanceTransactions {
  constructor(private readonly caller: Caller) {}

  create(customerId: string, params: Stripe.CustomerCreateBalanceTransactionParams, idempotencyKey: string): Promise<Call<Stripe.CustomerBalanceTransaction>> {
    return this.caller.call("balance_transactions.create", (sdk) => sdk.customers.createBalanceTransaction(customerId, params, { idempotencyKey }));
  }

  /**
   * Reads the ledger newest first, handing each entry to `visit` until it answers "stop" or the
   * ledger ends. ok only when the read ended that way: a read cut short by a failure is a
   * failure, never a short answer (callers decide "not written" only from a complete read).
   */
  async scan(customerId: string, visit: (tx: Stripe.CustomerBalanceTransaction) => "continue" | "stop"): Promise<Call<void>> {
    let seen = 0;
    try {
      this.caller.count("balance_transactions.list");
      for await (const tx of this.caller.sdk.customers.listBalanceTransactions(customerId, { limit: LEDGER_PAGE })) {
        // The SDK fetched another page to hand over this entry.
        if (seen > 0 && seen % LEDGER_PAGE === 0) this.caller.count("balance_transactions.list");
        seen++;
        if (visit(tx) === "stop") break;
      }
      return { ok: true, value: undefined };
    } catch (err) {
      return { ok: false, failure: classifyStripeError(err) };
    }
  }

  /** The whole ledger, newest first (opening a wallet for a customer made elsewhere). */
  async all(customerId: string): Promise<Call<Stripe.CustomerBalanceTransaction[]>> {
    const entries: Stripe.CustomerBalanceTransaction[] = [];
    const read = await this.scan(customerId, (tx) => {
      entries.push(tx);
      return "continue";
    });
    return read.ok ? { ok: true, value: entries } : read;
  }
}
