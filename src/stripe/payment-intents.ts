// PaymentIntents: read one, create a top-up, and set or take back the `metadata.credited` mark
// that the older server reads. See gateway.ts for what wraps every call.

import type Stripe from "stripe";
import { TOP_UP_MARKER } from "../credit/top-up.js";
import type { Call, Caller } from "./gateway.js";
import { markKey, topUpKey, unmarkKey } from "./keys.js";

export interface TopUpInput {
  accountId: string;
  customerId: string;
  amount: number;
  currency: string;
  /** The browser's Idempotency-Key: a double-clicked "Pay" makes one PaymentIntent. */
  clientKey: string | null;
}

export class PaymentIntents {
  constructor(private readonly caller: Caller) {}

  retrieve(id: string): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.retrieve", (sdk) => sdk.paymentIntents.retrieve(id));
  }

  /**
   * A PaymentIntent carrying the top-up marker (only those become credit), for the account's
   * customer. The Stripe key is scoped to the account (`topUpKey`), so another account's
   * client key can never collide with it.
   */
  async createTopUp(input: TopUpInput): Promise<Call<Stripe.PaymentIntent>> {
    const key = input.clientKey ? await topUpKey(input.accountId, input.clientKey) : null;
    return this.caller.call("payment_intents.create", (sdk) =>
      sdk.paymentIntents.create(
        {
          amount: input.amount,
          currency: input.currency,
          customer: input.customerId,
          automatic_payment_methods: { enabled: true },
          description: "Prepaid credit top-up",
          metadata: { account_id: input.accountId, ...TOP_UP_MARKER },
        },
        key ? { idempotencyKey: key } : {},
      ),
    );
  }

  /** Sets `metadata.credited` = "true" (mark number `attempt`). */
  mark(id: string, attempt: number): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.update", (sdk) =>
      sdk.paymentIntents.update(id, { metadata: { credited: "true" } }, { idempotencyKey: markKey(id, attempt) }),
    );
  }

  /** Deletes `metadata.credited` (set to empty) after Stripe refused the credit; `attempt` counts marks and withdrawals. */
  unmark(id: string, attempt: number): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.update", (sdk) =>
      sdk.paymentIntents.update(id, { metadata: { credited: "" } }, { idempotencyKey: unmarkKey(id, attempt) }),
    );
  }
}
