// PaymentIntents: read one, create a top-up (saving its card if asked) or an off-session
// recharge on a saved card, cancel a recharge nobody completed, and set or take back the
// `metadata.credited` mark that the older server reads. See gateway.ts for what wraps every call.

import type Stripe from "stripe";
import { TOP_UP_MARKER } from "../credit/top-up.js";
import type { Call, Caller } from "./gateway.js";
import { markKey, rechargeCancelKey, rechargeKey, topUpKey, unmarkKey } from "./keys.js";

export interface TopUpInput {
  accountId: string;
  customerId: string;
  amount: number;
  currency: string;
  /** The browser's Idempotency-Key: a double-clicked "Pay" makes one PaymentIntent. */
  clientKey: string | null;
  /** Keep the card for off-session recharges (`setup_future_usage: "off_session"`). */
  savePaymentMethod?: boolean;
}

/** Recharge n of an account: everything its PaymentIntent is made of, recorded before it is sent. */
export interface RechargeInput {
  accountId: string;
  n: number;
  customerId: string;
  paymentMethod: string;
  amount: number;
  currency: string;
}

/** `metadata.recharge` of a recharge's PaymentIntent: which account's recharge, and which one. */
export function rechargeTag(accountId: string, n: number): string {
  return `${accountId}:${n}`;
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
          ...(input.savePaymentMethod ? { setup_future_usage: "off_session" as const } : {}),
        },
        key ? { idempotencyKey: key } : {},
      ),
    );
  }

  /** A PaymentIntent with its payment method expanded (whose card was saved, and whose customer it is attached to). */
  retrieveWithPaymentMethod(id: string): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.retrieve", (sdk) => sdk.paymentIntents.retrieve(id, { expand: ["payment_method"] }));
  }

  /**
   * Recharge n: a top-up (the marker, so the PaymentIntent object credits it like any other)
   * charged off-session on the saved card. No redirects: nobody is there to follow one.
   * The parameters come from the recorded recharge alone, so every retry sends the same request
   * under `recharge:{account}:{n}`.
   */
  createRecharge(input: RechargeInput): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.create", (sdk) =>
      sdk.paymentIntents.create(
        {
          amount: input.amount,
          currency: input.currency,
          customer: input.customerId,
          payment_method: input.paymentMethod,
          automatic_payment_methods: { enabled: true, allow_redirects: "never" },
          off_session: true,
          confirm: true,
          description: "Prepaid credit auto-recharge",
          metadata: { account_id: input.accountId, ...TOP_UP_MARKER, recharge: rechargeTag(input.accountId, input.n) },
        },
        { idempotencyKey: rechargeKey(input.accountId, input.n) },
      ),
    );
  }

  /**
   * The customer's PaymentIntent for recharge n, if Stripe made one: looked for when the
   * creation's outcome cannot be learnt from its key (a saved 500), before giving it up. The
   * newest 100 of the customer's PaymentIntents are read; a recharge is among the newest.
   */
  async findRecharge(customerId: string, accountId: string, n: number): Promise<Call<Stripe.PaymentIntent | null>> {
    const listed = await this.caller.call("payment_intents.list", (sdk) => sdk.paymentIntents.list({ customer: customerId, limit: 100 }));
    if (!listed.ok) return listed;
    const tag = rechargeTag(accountId, n);
    return { ok: true, value: listed.value.data.find((pi) => pi.metadata?.recharge === tag) ?? null };
  }

  /** Cancels recharge n's PaymentIntent (its customer did not complete authentication in time). */
  cancelRecharge(id: string, accountId: string, n: number): Promise<Call<Stripe.PaymentIntent>> {
    return this.caller.call("payment_intents.cancel", (sdk) =>
      sdk.paymentIntents.cancel(id, { cancellation_reason: "abandoned" }, { idempotencyKey: rechargeCancelKey(accountId, n) }),
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
