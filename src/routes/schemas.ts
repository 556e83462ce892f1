// Request and response schemas of the public routes: the same zod objects validate requests
// and describe them in the OpenAPI document.

import { z } from "@hono/zod-openapi";
import { PAYMENT_INTENT_ID } from "../ids.js";

/** `pi_` and letters and digits, 255 characters at most, as Stripe's ids. */
export const PaymentIntentId = z
  .string()
  .max(255)
  .regex(PAYMENT_INTENT_ID, "must be pi_ followed by letters and digits")
  .openapi({ example: "pi_3PqR8sT2eZvKYlo21AbCdEfG" });

export const ConfirmPaymentBody = z.object({ payment_intent_id: PaymentIntentId }).strict().openapi("ConfirmPaymentRequest");

export const ConfirmPaymentAnswer = z
  .object({
    status: z.enum(["credited", "already_credited"]),
    payment_intent_id: PaymentIntentId,
    amount: z.number().int().openapi({ description: "Credited amount in the currency's minor unit" }),
    currency: z.string().openapi({ example: "usd" }),
    balance_transaction_id: z.string().openapi({ example: "cbtxn_1PqR8sT2eZvKYlo2" }),
  })
  .openapi("ConfirmPaymentResponse");

export const ErrorAnswer = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      payment_intent_status: z.string().optional(),
      reason: z.string().optional().openapi({ description: "payment_not_creditable: why", example: "not_a_top_up" }),
    }),
  })
  .openapi("Error");

export const TopUpBody = z
  .object({
    amount: z.number().int().positive().openapi({ description: "In the currency's minor unit (cents for usd)", example: 2000 }),
    currency: z
      .string()
      .regex(/^[a-z]{3}$/, "must be a lowercase ISO currency code")
      .openapi({ example: "usd" }),
  })
  .strict()
  .openapi("TopUpRequest");

export const TopUpAnswer = z
  .object({
    payment_intent_id: PaymentIntentId,
    client_secret: z.string().openapi({ description: "For Stripe.js to confirm the payment in the browser" }),
    amount: z.number().int(),
    currency: z.string(),
  })
  .openapi("TopUpResponse");

/** A client's Idempotency-Key for POST /billing/top_ups. */
export const ClientIdempotencyKey = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,100}$/, "must be 1-100 letters, digits or _ . : -")
  .optional()
  .openapi({ description: "Same key, same top-up: a retried or double-clicked request makes one PaymentIntent" });

export const BalanceAnswer = z
  .object({
    balance: z.number().int().openapi({ description: "Credit held, in the currency's minor unit" }),
    currency: z.string(),
  })
  .openapi("BalanceResponse");

export const LedgerQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).optional().openapi({ example: 20 }),
    cursor: z
      .string()
      .regex(/^cbtxn_[A-Za-z0-9]+$/, "must be a balance transaction id")
      .max(255)
      .optional()
      .openapi({ description: "next_cursor from the previous page" }),
  })
  .strict();

export const LedgerAnswer = z
  .object({
    data: z.array(
      z.object({
        id: z.string(),
        amount: z.number().int().openapi({ description: "Credit positive, debit negative" }),
        currency: z.string(),
        kind: z.enum(["top_up", "reversal", "other"]),
        payment_intent_id: z.string().nullable(),
        description: z.string().nullable(),
        created: z.string().openapi({ format: "date-time" }),
      }),
    ),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .openapi("LedgerResponse");
