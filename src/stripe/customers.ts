// Customers: whose customer one is, an account's customer found by search, and an account's
// customer created (once, under `customerKey`). See gateway.ts for what wraps every call.

import type Stripe from "stripe";
import { ACCOUNT_ID } from "../ids.js";
import type { Call, Caller } from "./gateway.js";
import { customerKey } from "./keys.js";

/** Whose customer a Stripe customer is, by its `metadata.account_id`. */
export type CustomerOwner = { kind: "account"; accountId: string } | { kind: "none" } | { kind: "unavailable" };

/** Quotes a value for Stripe's search language: backslash-escape `\` and `'`. */
export function searchLiteral(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`;
}

/** Stripe's search returns at most this many per page; more than one customer per account is already a fault. */
const SEARCH_LIMIT = 10;

export class Customers {
  constructor(private readonly caller: Caller) {}

  /**
   * The account a customer belongs to: the one named by its `metadata.account_id` (the pairing
   * this service writes when it creates the customer, and the older server wrote too). Asked
   * where a PaymentIntent's metadata cannot be trusted to name the account.
   */
  async ownerOf(customerId: string): Promise<CustomerOwner> {
    const found = await this.caller.call("customers.retrieve", (sdk) => sdk.customers.retrieve(customerId));
    if (!found.ok) return found.failure.kind === "not_found" ? { kind: "none" } : { kind: "unavailable" };
    const customer = found.value;
    if (customer.deleted) return { kind: "none" };
    const accountId = customer.metadata?.account_id;
    return accountId && ACCOUNT_ID.test(accountId) ? { kind: "account", accountId } : { kind: "none" };
  }

  /**
   * The account's customers by `metadata.account_id`, oldest first. Stripe's search lags writes
   * (up to a minute, an hour in incidents): callers remember what they find.
   */
  async searchByAccount(accountId: string): Promise<Call<Stripe.Customer[]>> {
    const found = await this.caller.call("customers.search", (sdk) =>
      sdk.customers.search({ query: `metadata['account_id']:${searchLiteral(accountId)}`, limit: SEARCH_LIMIT }),
    );
    if (!found.ok) return found;
    // Search matches loosely; only an exact pairing counts. Oldest first, deterministically.
    const exact = found.value.data.filter((c) => c.metadata?.account_id === accountId);
    exact.sort((a, b) => a.created - b.created || a.id.localeCompare(b.id));
    return { ok: true, value: exact };
  }

  /** The account's customer, created under `customer:{account}`: a retried creation returns the same one. */
  createForAccount(accountId: string): Promise<Call<Stripe.Customer>> {
    return this.caller.call("customers.create", (sdk) =>
      sdk.customers.create({ metadata: { account_id: accountId } }, { idempotencyKey: customerKey(accountId) }),
    );
  }
}
