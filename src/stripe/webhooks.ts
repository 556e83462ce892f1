// Stripe's webhook signature: an HMAC-SHA256 of "{t}.{raw body}" under the endpoint's secret,
// sent as `Stripe-Signature: t=…,v1=…[,v1=…]`, checked with the `stripe` package's own helper
// (docs.stripe.com/webhooks#verify-events) over Web Crypto, since Workers have no Node crypto.
// No API call: the check is local, and it is Stripe's protocol, so it lives with the Stripe code.

import Stripe from "stripe";

/** Stripe's own default: a signature older (or further in the future) than this is refused, so a captured event cannot be replayed later. */
const TOLERANCE_SECONDS = 300;

/** Whether the payload is Stripe's: signed, not signed (missing, forged, altered or stale), or not checkable here at all. */
export type SignatureVerdict = { kind: "signed" } | { kind: "not_signed" } | { kind: "unverifiable"; reason: string };

let subtleCrypto: ReturnType<typeof Stripe.createSubtleCryptoProvider> | null = null;

/**
 * Checks `header` against the raw body under each of `secrets` (several while an endpoint
 * secret is being rolled: any one signing it will do). Only the signature is checked; the
 * payload is parsed afterwards, so that a signed payload that is not an event is told apart
 * from a forged one.
 */
export async function verifyWebhookSignature(raw: string, header: string, secrets: readonly string[]): Promise<SignatureVerdict> {
  if (secrets.length === 0) return { kind: "unverifiable", reason: "STRIPE_WEBHOOK_SECRET is not set" };
  const helper = Stripe.webhooks.signature;
  if (!helper) return { kind: "unverifiable", reason: "the stripe package has no signature helper" };
  subtleCrypto ??= Stripe.createSubtleCryptoProvider();
  for (const secret of secrets) {
    try {
      if (await helper.verifyHeaderAsync(raw, header, secret, TOLERANCE_SECONDS, subtleCrypto)) return { kind: "signed" };
    } catch {
      // The helper throws on a mismatch: try the next secret.
    }
  }
  return { kind: "not_signed" };
}
