// Stripe's error body, `{"error": {"type", "code"?, "message", "param"?}}`, as one thrown type so
// that every handler fails the same way and the pipeline decides what is saved under a key.

/** The `error` object of a Stripe error response. */
export interface StripeErrorBody {
  type: string;
  message: string;
  code?: string;
  param?: string;
  decline_code?: string;
  payment_intent?: unknown;
  /** A card error's PaymentMethod (the object), as Stripe adds it to declines. */
  payment_method?: unknown;
  doc_url?: string;
}

/** A Stripe API error answer; `status` is the HTTP status. */
export class StripeFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: StripeErrorBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(body.message);
  }
}

/** 404 for a missing object, in Stripe's words. */
export function noSuch(kind: string, id: string, param = "id"): StripeFailure {
  return new StripeFailure(404, {
    type: "invalid_request_error",
    code: "resource_missing",
    param,
    message: `No such ${kind}: '${id}'`,
  });
}

/** 400 for an object in a state that does not allow the operation. */
export function unexpectedState(code: string, message: string): StripeFailure {
  return new StripeFailure(400, { type: "invalid_request_error", code, message });
}
