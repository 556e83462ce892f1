// Request and response schemas of the public routes: the same zod objects validate requests
// and describe them in the OpenAPI document.

import { z } from "@hono/zod-openapi";

/** `pi_` and letters and digits, 255 characters at most, as Stripe's ids. */
export const PaymentIntentId = z
  .string()
  .max(255)
  .regex(/^pi_[A-Za-z0-9]+$/, "must be pi_ followed by letters and digits")
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
    }),
  })
  .openapi("Error");
