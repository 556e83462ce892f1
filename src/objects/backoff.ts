// Retry spacing for work an object finishes on its own (a PaymentIntent's credit and follow-up,
// a wallet's sync to Stripe): exponential from 2 s, capped at 5 minutes, with jitter so that many
// objects failing together (a Stripe outage) do not all retry in the same second when it ends.

const BASE_MS = 2_000;
const CAP_MS = 5 * 60_000;

/** Delay before retry number `retryCount` (1 = first retry): half to all of the capped exponential. */
export function backoffMs(retryCount: number, random: () => number = Math.random): number {
  const exp = Math.min(CAP_MS, BASE_MS * 2 ** Math.max(0, Math.min(retryCount - 1, 20)));
  return Math.round(exp / 2 + (exp / 2) * random());
}
