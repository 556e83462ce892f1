// Whose customer a Stripe customer is: the account named by its `metadata.account_id` (the
// pairing this service writes when it creates the customer, and the older server wrote too).
// Asked where a PaymentIntent's metadata cannot be trusted to name the account.

import type Stripe from "stripe";
import { ACCOUNT_ID } from "../ids.js";
import type { CustomerOwner } from "../wallet/wallet.js";
import { classifyStripeError } from "./errors.js";

export async function customerOwner(stripe: Stripe, customerId: string): Promise<CustomerOwner> {
  try {
    const customer = await stripe.customers.retrieve(customerId);
    if (customer.deleted) return { kind: "none" };
    const accountId = customer.metadata?.account_id;
    return accountId && ACCOUNT_ID.test(accountId) ? { kind: "account", accountId } : { kind: "none" };
  } catch (err) {
    return classifyStripeError(err).kind === "not_found" ? { kind: "none" } : { kind: "unavailable" };
  }
}
