// Work after the credit, and the alarm that keeps it going: the reversals that Stripe's refund
// and dispute events call for (and restorations when a dispute is won), a mark still pending,
// the wallet not yet told. Each is written exactly once (ledger-write.ts); anything that cannot
// finish now is retried by the alarm with backoff, which stays armed while anything is owed.

import type { CreditRecord } from "../../credit/contract.js";
import { missingAdjustments } from "../../credit/reversals.js";
import { attentionEvent } from "../../events/attention.js";
import { logEvent } from "../../log.js";
import { record } from "../../metrics/facts.js";
import { adjustmentKey, adjustmentParams } from "../../stripe/keys.js";
import { LEDGER_SLACK_SECONDS } from "../../stripe/ledger-write.js";
import { RETRY_AFTER_SECONDS, owesWork, type Outcome } from "./answers.js";
import type { Bookkeeping } from "./bookkeeping.js";
import type { CreditContext } from "./context.js";
import type { Marks } from "./marks.js";

export class FollowUp {
  constructor(
    private readonly ctx: CreditContext,
    private readonly marks: Marks,
    private readonly books: Bookkeeping,
  ) {}

  /** Plans the reversals owed, writes the pending ones, marks, tells the wallet; then arms the alarm for what is left. */
  async run(rec: CreditRecord): Promise<void> {
    const { store, settings } = this.ctx;
    if (settings.reverseOnRefund) {
      for (const a of missingAdjustments(rec.amount ?? 0, store.refunded(), store.disputes(), store.adjustments())) store.planAdjustment(a);
    }
    let failed = !(await this.#writeAdjustments(rec));
    let now = store.load() ?? rec;
    if (now.mark_state === "pending") {
      now = await this.marks.mark(now);
      failed ||= now.mark_state === "pending";
    }
    if (!(await this.books.tellWallet(now))) failed = true;
    await this.schedule(store.load() ?? now, failed);
    await this.sendEvents();
  }

  /** Sends the events this object produced, with the alarm armed for them first (a crash mid-send) and again if the send failed. */
  async sendEvents(): Promise<void> {
    const { outbox, alarm } = this.ctx;
    const due = outbox.dueAt();
    if (due === null) return;
    await alarm.by(due);
    await outbox.flush();
    const retry = outbox.dueAt();
    if (retry !== null) await alarm.by(retry);
  }

  /** Writes each pending adjustment in order; false when one could not finish now (the rest wait for it). */
  async #writeAdjustments(rec: CreditRecord): Promise<boolean> {
    const { store, ledger } = this.ctx;
    const pi = rec.payment_intent_id;
    for (const a of store.adjustments().filter((x) => x.state === "pending")) {
      const result = await ledger.write(
        {
          customerId: rec.customer_id as string,
          keyBase: adjustmentKey(pi, a.operation, 1),
          params: adjustmentParams(pi, a.operation, a.direction, a.amount, rec.currency as string),
          matches: (tx) => tx.metadata?.payment_intent === pi && tx.metadata?.operation === a.operation,
          sinceSeconds: Math.floor(a.created_at / 1000) - LEDGER_SLACK_SECONDS,
          attempt: a.attempt,
          sent: a.sent === 1,
          save: ({ attempt, sent }) => store.updateAdjustment(a.operation, { attempt, sent: sent ? 1 : 0 }),
        },
        "adjust",
      );
      if (result.kind === "done") {
        store.updateAdjustment(a.operation, {
          state: "done",
          balance_transaction_id: result.entry.id,
          ending_balance: result.entry.ending_balance,
          last_error: null,
        });
        logEvent("adjusted", { payment_intent: pi, operation: a.operation, direction: a.direction, amount: a.amount, balance_transaction: result.entry.id });
        // A reversal takes credit back; a restoration (a won dispute) gives it back and is not one.
        if (a.direction === "debit") record(this.ctx.env, { name: "reversal", amount: a.amount, currency: rec.currency ?? "" });
      } else if (result.kind === "refused") {
        const accountId = await this.books.payerAccount(store.load() ?? rec);
        store.atomically(() => {
          store.updateAdjustment(a.operation, { state: "needs_attention", last_error: result.error });
          const fact = {
            subject: "adjustment" as const,
            operation: a.operation,
            attempt: store.adjustments().find((x) => x.operation === a.operation)?.attempt ?? a.attempt,
          };
          this.ctx.outbox.add(attentionEvent(rec, { ...fact, accountId, reason: `${a.kind} refused by Stripe`, error: result.error }));
        });
        const due = this.ctx.outbox.dueAt();
        if (due !== null) await this.ctx.alarm.cover(due);
        logEvent("needs_attention", { payment_intent: pi, reason: "adjustment_refused", operation: a.operation, error: result.error });
      } else {
        store.updateAdjustment(a.operation, { last_error: result.error });
        store.update({ last_error: result.error });
        return false;
      }
    }
    return true;
  }

  /** Whether a credited PI still owes reversals, restorations, its mark or the wallet's report. */
  owed(rec: CreditRecord): boolean {
    const { store, settings } = this.ctx;
    const adjustments = store.adjustments();
    const unplanned = settings.reverseOnRefund && missingAdjustments(rec.amount ?? 0, store.refunded(), store.disputes(), adjustments).length > 0;
    return unplanned || adjustments.some((a) => a.state === "pending") || rec.mark_state === "pending" || this.books.walletOwed(rec).length > 0;
  }

  /**
   * Arms the alarm for follow-up work still owed (at once if nothing failed, with backoff if
   * something did), or clears it when nothing is owed; keeps the registry in step.
   */
  async schedule(rec: CreditRecord, failed: boolean): Promise<void> {
    const { store, alarm } = this.ctx;
    if (!this.owed(rec)) {
      if (rec.retry_count !== 0 || rec.next_retry_at !== null) store.update({ retry_count: 0, next_retry_at: null });
      await alarm.clear();
      const stuck = store.adjustments().some((a) => a.state === "needs_attention");
      if (rec.listed || stuck) await this.books.list(store.load() ?? rec);
    } else if (!failed) {
      await alarm.now();
    } else {
      await alarm.backoff(store.update({ retry_count: rec.retry_count + 1 }));
      await this.books.list(store.load() ?? rec);
    }
  }

  /** The credit could not finish now: back off, list it for operators, tell the caller when to come back. */
  async retryLater(rec: CreditRecord, error: string): Promise<Outcome> {
    const next = this.ctx.store.update({ last_error: error, retry_count: rec.retry_count + 1 });
    const delay = await this.ctx.alarm.backoff(next);
    await this.books.list(this.ctx.store.load() ?? next);
    return { kind: "unavailable", retryAfterSeconds: Math.max(1, Math.ceil(delay / 1000)), customer: rec.customer_id };
  }

  /**
   * Leaves an alarm armed while anything is still owed (a notice, a credit, follow-up work, a
   * mark to withdraw). Called after every alarm run and after an attempt that threw, so that no
   * path, however it fails, leaves owed work with nothing to finish it.
   */
  async ensureArmed(): Promise<void> {
    await this.sendEvents();
    const { store, alarm } = this.ctx;
    const rec = store.load();
    const owed = rec ? owesWork(rec) && (rec.state !== "credited" || this.owed(rec)) : store.notice() !== null;
    if (!owed || (await alarm.armed())) return;
    if (!rec) return alarm.after(store.bumpNotice());
    const retries = rec.retry_count + 1;
    store.update({ retry_count: retries });
    await alarm.after(retries);
  }

  /** A credited PI's outcome: credited only once the wallet has the credit, so it is spendable when the page shows it. */
  creditedOutcome(fresh: boolean): Outcome {
    const rec = this.ctx.store.load();
    if (rec && this.books.walletOwed(rec).length > 0) return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS, customer: rec.customer_id };
    return { kind: "credited", fresh };
  }
}
