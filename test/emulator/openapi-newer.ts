// What the API version the service pins (2026-10-28.endive) has and the spec the emulator
// checks against (openapi.ts, Stripe's spec of 2024-04-10) does not: each entry adds one field
// to one of the spec's object schemas or one operation's parameters, with where Stripe says it
// exists. An answer or a request may use a newer field only once it is named here; anything else
// newer is refused. What the pinned version removed is the endpoints' own rule (payment-intents.ts).

/** One field of a Stripe object, or one parameter of an operation, that is newer than the spec. */
export interface NewerField {
  /** The spec's object schema (`payment_intent`), or an operation (`POST /v1/payment_intents`). */
  in: string;
  field: string;
  /** Its JSON Schema, in the spec's own dialect (OpenAPI 3.0). */
  definition: Record<string, unknown>;
  /** Where Stripe documents it. */
  source: string;
  /**
   * The `stripe` package's type definitions (node_modules/stripe/cjs/resources/…) that have it:
   * the package is generated from Stripe's spec at the pinned version, so a test checks each
   * entry against it.
   */
  sdk: string;
}

const ENDIVE_ALLOWED_TYPES =
  "https://docs.stripe.com/changelog/endive/2026-09-30/removes-the-payment-method-types-parameter-from-payment-intents-and-setup-intents";
const ALLOWED_TYPES = { type: "array", items: { type: "string", maxLength: 5000 } };

export const NEWER_THAN_SPEC: readonly NewerField[] = [
  {
    in: "payment_intent",
    field: "allowed_payment_method_types",
    definition: { ...ALLOWED_TYPES, nullable: true },
    source: ENDIVE_ALLOWED_TYPES,
    sdk: "PaymentIntents.d.ts",
  },
  ...["POST /v1/payment_intents", "POST /v1/payment_intents/{intent}", "POST /v1/payment_intents/{intent}/confirm"].map((operation) => ({
    in: operation,
    field: "allowed_payment_method_types",
    definition: ALLOWED_TYPES,
    source: ENDIVE_ALLOWED_TYPES,
    sdk: "PaymentIntents.d.ts",
  })),
];
