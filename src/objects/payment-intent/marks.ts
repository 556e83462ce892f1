// `metadata.credited` on the PaymentIntent: a courtesy for the older server running side by
// side during a migration, which checks nothing else; set only while MARK_CREDITED is on (a PI
// recorded with it off has mark_state "off" and costs one Stripe call fewer). It never decides anything here (the
// record does), so a failure is recorded and retried later and never blocks the credit. It
// must never outlive a credit Stripe refused: then it is taken back (withdrawn).

import type { CreditRecord } from "../../credit/contract.js";
import { markKey, unmarkKey } from "../../stripe/keys.js";
import type { CreditContext } from "./context.js";

export class Marks {
  constructor(private readonly ctx: CreditContext) {}

  /** Sets the mark (attempt n uses `credit-mark:{pi}:{n}`); returns the record after. */
  async mark(rec: CreditRecord): Promise<CreditRecord> {
    const { store, stripe } = this.ctx;
    const attempt = rec.mark_attempts + 1;
    store.update({ mark_attempts: attempt });
    const sent = await stripe.paymentIntents.mark(rec.payment_intent_id, attempt);
    if (!sent.ok) {
      store.journal("mark", sent.failure.kind, `${markKey(rec.payment_intent_id, attempt)}: ${sent.failure.message}`);
      return store.update({ last_error: `mark: ${sent.failure.message}` });
    }
    store.journal("mark", "done", markKey(rec.payment_intent_id, attempt));
    // A refusal of the credit while this mark was in flight has already asked for it back.
    const now = store.load() ?? rec;
    return now.mark_state === "pending" ? store.update({ mark_state: "done" }) : now;
  }

  /**
   * Takes the mark back from a PI whose credit Stripe refused (`metadata.credited` set to
   * empty, which deletes the key). Each try uses a fresh key: unmarking twice is harmless. The
   * next try is armed before this one is sent, so a crash mid-call leaves it scheduled.
   */
  async withdraw(): Promise<void> {
    const { store, stripe, alarm } = this.ctx;
    const before = store.load();
    if (!before) return;
    const rec = store.update({ mark_attempts: before.mark_attempts + 1, retry_count: before.retry_count + 1 });
    await alarm.backoff(rec);
    const sent = await stripe.paymentIntents.unmark(rec.payment_intent_id, rec.mark_attempts);
    if (!sent.ok) {
      store.journal("unmark", sent.failure.kind, `${unmarkKey(rec.payment_intent_id, rec.mark_attempts)}: ${sent.failure.message}`);
      store.update({ last_error: `unmark: ${sent.failure.message}` });
      return;
    }
    store.journal("unmark", "done", unmarkKey(rec.payment_intent_id, rec.mark_attempts));
    store.update({ mark_state: "withdrawn", retry_count: 0, next_retry_at: null });
    await alarm.clear();
  }
}
