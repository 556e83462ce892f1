// One verdict per failed Stripe call, so the credit protocol decides on four cases instead of on
// status codes. The rules are Stripe's (docs.stripe.com/error-handling):
// - 404 resource_missing: the object does not exist.
// - a connection error, a timeout, 409 (key in use) or a 5xx: the request may or may not have
//   been applied. A 5xx marked `Idempotent-Replayed: true` is a saved result: the request under
//   that key has finished and retrying the key can only replay it.
// - 429 and 401/403: nothing was applied; the next try may succeed (a bad key needs an operator,
//   but waiting is still right: the payment stays owed).
// - other 4xx: retrying the same request fails the same way.

import Stripe from "stripe";

export type StripeFailureKind = "not_found" | "ambiguous" | "transient" | "permanent";

export interface StripeFailure {
  kind: StripeFailureKind;
  /** The 5xx was replayed from the key's saved result: that key's request is complete. */
  replayed: boolean;
  status: number | null;
  code: string | null;
  /** Stripe's error `type`, e.g. idempotency_error (the same key sent with other parameters). */
  rawType: string | null;
  /** For logs and the operator view; never sent to browsers. */
  message: string;
  /** A card error's `decline_code` (generic_decline, insufficient_funds, authentication_required, …). */
  declineCode: string | null;
  /** The PaymentIntent a card error carries (`error.payment_intent`): a declined or unauthenticated payment's. */
  paymentIntent: { id: string; status: string; client_secret: string | null } | null;
}

/** Classifies anything a Stripe SDK call threw. */
export function classifyStripeError(err: unknown): StripeFailure {
  if (!(err instanceof Stripe.errors.StripeError)) {
    return { kind: "ambiguous", replayed: false, status: null, code: null, rawType: null, message: describe(err), declineCode: null, paymentIntent: null };
  }
  const status = typeof err.statusCode === "number" ? err.statusCode : null;
  const code = err.code ?? null;
  const replayed = headerOf(err.headers, "idempotent-replayed") === "true";
  const message = `${err.type}${status ? ` ${status}` : ""}${code ? ` ${code}` : ""}: ${err.message}`;
  let kind: StripeFailureKind;
  if (err instanceof Stripe.errors.StripeConnectionError || status === null) kind = "ambiguous";
  else if (status === 404 && code === "resource_missing") kind = "not_found";
  else if (status === 409 || status >= 500) kind = "ambiguous";
  else if (status === 429 || status === 401 || status === 403) kind = "transient";
  else kind = "permanent";
  const pi = err.payment_intent;
  return {
    kind,
    replayed,
    status,
    code,
    rawType: err.rawType ?? null,
    message,
    declineCode: err.decline_code ?? null,
    paymentIntent: pi?.id ? { id: pi.id, status: pi.status, client_secret: pi.client_secret ?? null } : null,
  };
}

/** Reads a header whether the SDK hands over a plain record or a fetch `Headers`. */
function headerOf(headers: unknown, name: string): string | undefined {
  if (!headers || typeof headers !== "object") return undefined;
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = (headers as Record<string, unknown>)[name];
  return typeof value === "string" ? value : undefined;
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
