// Request and response schemas of the public routes: the same zod objects validate requests
// and describe them in the OpenAPI document.

import { z } from "@hono/zod-openapi";
import { ACCOUNT_ID, PAYMENT_INTENT_ID } from "../ids.js";
import type { EntryKind } from "../wallet/contract.js";

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
      available: z.number().int().optional().openapi({ description: "insufficient_credit: what the account may spend now" }),
      currency: z.string().optional().openapi({ description: "insufficient_credit, currency_mismatch: the wallet's currency" }),
      hold_status: z.enum(["active", "captured", "released", "expired"]).optional().openapi({ description: "hold_not_active: where the hold is" }),
    }),
  })
  .openapi("Error");

/** A lowercase ISO currency code. */
const Currency = z
  .string()
  .regex(/^[a-z]{3}$/, "must be a lowercase ISO currency code")
  .openapi({ example: "usd" });

export const TopUpBody = z
  .object({
    amount: z.number().int().positive().openapi({ description: "In the currency's minor unit (cents for usd)", example: 2000 }),
    currency: Currency,
    save_payment_method: z
      .boolean()
      .optional()
      .openapi({ description: "Keep the card for auto-recharge (the PaymentIntent is created with setup_future_usage: off_session)" }),
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
    balance: z.number().int().openapi({ description: "The same as available (kept for clients written before holds existed)" }),
    available: z.number().int().openapi({ description: "Credit that may be spent, in the currency's minor unit" }),
    held: z.number().int().openapi({ description: "Credit reserved by active holds" }),
    currency: z.string(),
  })
  .openapi("BalanceResponse");

export const LedgerQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).optional().openapi({ example: 20 }),
    // Loose on purpose: the ledger's own ids (`wle_…`) are the cursors, and a cursor the wallet
    // does not know is its own 400. This only keeps anything that is not an id out.
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,255}$/, "must be an id from this ledger")
      .optional()
      .openapi({ description: "next_cursor from the previous page" }),
  })
  .strict();

const ENTRY_KINDS = ["top_up", "reversal", "restoration", "debit", "hold", "capture", "release", "stripe"] as const satisfies readonly EntryKind[];

/** One line of the wallet's ledger (src/wallet/contract.ts's WalletLine). */
const WalletLine = z
  .object({
    id: z.string().openapi({ example: "wle_0123456789abcdef01234567" }),
    kind: z.enum(ENTRY_KINDS).openapi({ description: "stripe: an entry taken in from Stripe's customer balance (an invoice, a Dashboard adjustment)" }),
    amount: z.number().int().openapi({ description: "Change to the customer's credit (available + held): positive in, negative spent" }),
    held: z.number().int().openapi({ description: "Change to what is held: + by a hold, − by its capture or release" }),
    currency: z.string(),
    payment_intent_id: z.string().nullable(),
    hold_id: z.string().nullable(),
    balance_transaction_id: z.string().nullable().openapi({ description: "Stripe's id, when the line came from Stripe" }),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.string()).nullable(),
    created: z.string().openapi({ format: "date-time" }),
  })
  .openapi("WalletLine");

export const LedgerAnswer = z
  .object({
    data: z.array(WalletLine),
    has_more: z.boolean(),
    next_cursor: z.string().nullable(),
  })
  .openapi("LedgerResponse");

// The seller's server-to-server routes (/v1/accounts/{account_id}/…).

/** Stripe's largest amount (99,999,999 in the minor unit, eight digits). */
export const MAX_AMOUNT = 99_999_999;
/** The longest hold, and the default, in seconds. */
const HOLD_MAX_SECONDS = 86_400;
export const HOLD_DEFAULT_SECONDS = 600;

const Amount = z.number().int().positive().max(MAX_AMOUNT).openapi({ description: "In the currency's minor unit (cents for usd)", example: 250 });

const Description = z.string().max(500).openapi({ example: "1,000 tokens of gpt-x" });

const Metadata = z
  .record(z.string().min(1).max(40), z.string().max(500))
  .refine((m) => Object.keys(m).length <= 20, "must have at most 20 keys")
  .openapi({ description: "Up to 20 string keys (≤ 40 characters) with string values (≤ 500)", example: { request_id: "req_123" } });

export const AccountParams = z.object({
  account_id: z
    .string()
    .regex(ACCOUNT_ID, "must be 1-128 letters, digits or _ . : @ | -")
    .openapi({ param: { name: "account_id", in: "path" }, example: "acct_123" }),
});

export const HoldParams = AccountParams.extend({
  hold_id: z.string().openapi({
    param: { name: "hold_id", in: "path" },
    description: "hold_ and letters and digits; anything else is 404 hold_not_found",
    example: "hold_0123456789abcdef01234567",
  }),
});

export const SellerIdempotencyKey = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x20-\x7e]+$/, "must be printable ASCII characters")
  .openapi({
    description:
      "Required. Scoped to the account, kept at least 24 h: the same key replays the first answer (Idempotent-Replayed: true); with another body it is 409 idempotency_key_reused",
    example: "order-1234-charge",
  });

export const DebitBody = z
  .object({ amount: Amount, currency: Currency, description: Description.optional(), metadata: Metadata.optional() })
  .strict()
  .openapi("DebitRequest");

export const HoldBody = z
  .object({
    amount: Amount,
    currency: Currency,
    expires_in_seconds: z
      .number()
      .int()
      .min(1)
      .max(HOLD_MAX_SECONDS)
      .optional()
      .openapi({ description: "Released on its own after this long", default: HOLD_DEFAULT_SECONDS }),
    description: Description.optional(),
  })
  .strict()
  .openapi("HoldRequest");

export const CaptureBody = z
  .object({ amount: Amount.optional().openapi({ description: "What to spend; the whole hold when absent. More than held only if available covers the rest" }) })
  .strict()
  .openapi("CaptureRequest");

export const ReleaseBody = z.object({}).strict().openapi("ReleaseRequest");

const WalletBalance = z.object({ available: z.number().int(), held: z.number().int(), currency: z.string() }).openapi("WalletBalance");

export const DebitAnswer = z
  .object({
    id: z.string(),
    account_id: z.string(),
    amount: z.number().int(),
    currency: z.string(),
    balance: WalletBalance,
    created: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Debit");

export const HoldAnswer = z
  .object({
    id: z.string().openapi({ example: "hold_0123456789abcdef01234567" }),
    account_id: z.string(),
    amount: z.number().int(),
    currency: z.string(),
    status: z.literal("active"),
    expires_at: z.string().openapi({ format: "date-time" }),
    balance: WalletBalance,
    created: z.string().openapi({ format: "date-time" }),
  })
  .openapi("Hold");

export const CaptureAnswer = z
  .object({
    hold_id: z.string(),
    debit: z.object({ id: z.string(), amount: z.number().int() }),
    released: z.number().int().openapi({ description: "What was held and not spent, back in available" }),
    balance: WalletBalance,
  })
  .openapi("Capture");

export const ReleaseAnswer = z.object({ hold_id: z.string(), released: z.number().int(), balance: WalletBalance }).openapi("Release");

export const SellerBalanceAnswer = z
  .object({
    available: z.number().int(),
    held: z.number().int(),
    currency: z.string(),
    stripe_synced_at: z.string().nullable().openapi({ format: "date-time", description: "When Stripe's customer balance last matched the wallet" }),
  })
  .openapi("AccountBalance");
