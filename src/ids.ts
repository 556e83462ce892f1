// The shapes of the ids that cross the service's boundaries, in one place: every layer that
// checks an id (request schemas, webhook events, the objects, the token script) uses these.

/** `pi_` and letters and digits, 255 characters at most, as Stripe's PaymentIntent ids. */
export const PAYMENT_INTENT_ID = /^pi_[A-Za-z0-9]{1,252}$/;

/**
 * An account id (a token's `sub`). It travels into Stripe metadata and search queries, so it
 * keeps to a plain alphabet: no quoting trick can change a query's meaning. Not `.` or `..`:
 * a URL path would resolve them away, so the seller's /v1/accounts/{id} could never name it.
 */
export const ACCOUNT_ID = /^(?!\.{1,2}$)[A-Za-z0-9_.:@|-]{1,128}$/;

/**
 * A wallet hold's id as the seller's routes accept it: `hold_` and letters and digits (the wallet
 * makes `hold_` + 24 hex characters). Anything else cannot name a hold and is answered 404.
 */
export const HOLD_ID = /^hold_[A-Za-z0-9]{8,64}$/;
