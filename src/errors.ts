// The one error type the Worker throws for control flow, and the one shape every error takes
// on the wire: {"error": {"code", "message", ...}} with a stable `code`. Internal reasons
// (Stripe messages, stack traces) never reach the client.

import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Stable error codes of the HTTP contract. */
export type ErrorCode =
  | "invalid_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "payment_intent_not_found"
  | "payment_not_succeeded"
  | "payment_not_creditable"
  | "credit_needs_attention"
  | "idempotency_key_reused"
  | "insufficient_credit"
  | "currency_mismatch"
  | "hold_not_found"
  | "hold_not_active"
  | "dead_letter_not_found"
  | "no_saved_card"
  | "events_unavailable"
  | "invalid_signature"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "stripe_unavailable"
  | "service_token_missing"
  | "misconfigured"
  | "metrics_unavailable"
  | "internal_error";

/** An error answer: status, stable code, a message for humans, optional extra fields. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: ErrorCode,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  /** The JSON body of this error. */
  body(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.extra } };
  }
}
