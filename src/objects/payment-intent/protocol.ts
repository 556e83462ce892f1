// The credit itself, for a PI in each state:
//   no record   read the PI (or take it from the webhook's event), assess it for the caller,
//               record the intent (then as "verified"), or adopt a credit written elsewhere
//               (the PI is marked credited)
//   verified    mark (once, best effort, while MARK_CREDITED is on) alongside the credit
//               (ledger-write.ts), then follow-up
// Each step records what it is about to do before the Stripe call that does it; runs only
// inside the object's one attempt in flight (attempts.ts).

import type Stripe from "stripe";
import type { Caller, CreditRecord } from "../../credit/contract.js";
import { assessPaymentIntent, creditRules, type Assessment, type PaymentIntentFacts } from "../../credit/policy.js";
import { attentionEvent } from "../../events/attention.js";
import { logEvent } from "../../log.js";
import { record } from "../../metrics/facts.js";
import { LEDGER_SLACK_SECONDS, type LedgerEntry } from "../../stripe/ledger-write.js";
import { creditKey, creditParams } from "../../stripe/keys.js";
import { RETRY_AFTER_SECONDS, type Outcome } from "./answers.js";
import type { Bookkeeping } from "./bookkeeping.js";
import { WATCHDOG_MS, type CreditContext } from "./context.js";
import type { FollowUp } from "./follow-up.js";
import type { Marks } from "./marks.js";

/** The needs_attention reason for a PI marked credited with no ledger entry to show for it. */
export const CREDITED_ELSEWHERE = "metadata.credited is true but the customer's ledger has no entry for this PaymentIntent";

/** The ledger entry that is this PI's credit: ours and the older server's carry only `payment_intent`. */
function isCreditOf(paymentIntentId: string) {
  return (tx: Stripe.CustomerBalanceTransaction) => tx.metadata?.payment_intent === paymentIntentId && !tx.metadata?.operation;
}

export class CreditProtocol {
  constructor(
    private readonly ctx: CreditContext,
    private readonly marks: Marks,
    private readonly followUp: FollowUp,
    private readonly books: Bookkeeping,
  ) {}

  /**
   * A PI with no record: read it, assess it for `owner` (null: the PI's own customer), and
   * record the intent before any write. `accountId`: a browser's own account, whose customer
   * was just checked to be the PI's; otherwise the PI's metadata names it, a claim the wallet
   * checks against Stripe before believing it. `told`: the PI as a signed webhook event carried
   * it, used instead of a read where it is as good as one (#current).
   */
  async begin(
    paymentIntentId: string,
    owner: string | null,
    source: Caller["kind"],
    accountId: string | null,
    told: PaymentIntentFacts | null = null,
  ): Promise<Outcome> {
    const { store, settings, alarm } = this.ctx;
    const pi = await this.#current(paymentIntentId, told);
    if (pi === "unknown_pi") return { kind: "unknown_pi" };
    if (pi === "unavailable") return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS, customer: null };
    const verdict = assessPaymentIntent(pi, owner, creditRules(settings));
    // Attempts are serialised, so no record can have appeared while we awaited Stripe; if one
    // did, a bug elsewhere broke that, and nothing is written on top of it (the alarm retries).
    if (store.load()) throw new Error("a record appeared during an attempt");
    if (!verdict.ok) return this.#refuse(paymentIntentId, verdict, owner);
    const account = accountId || pi.metadata?.account_id || null;
    if (verdict.creditedElsewhere) return this.#adoptCreditedElsewhere(paymentIntentId, verdict, account);
    const verified = store.insert(paymentIntentId, "verified", {
      customer_id: verdict.customer,
      amount: verdict.amount,
      currency: verdict.currency,
      account_id: account,
      mark_state: settings.markCredited ? "pending" : "off",
      next_retry_at: Date.now() + WATCHDOG_MS,
    });
    await alarm.watchdog();
    store.clearNotice();
    return this.complete(verified, source);
  }

  /**
   * Marks (once, best effort) and credits a verified record; follow-up work goes to the alarm.
   * The mark goes out alongside the credit rather than before it: it never decides anything
   * here, so the caller waits for one round trip, not two.
   */
  async complete(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    const marking = rec.mark_state === "pending" ? this.marks.mark(rec) : Promise.resolve(rec);
    const outcome = await this.#credit(rec, source);
    await marking;
    const after = this.ctx.store.load();
    if (after?.state === "credited") await this.followUp.schedule(after, outcome.kind !== "credited");
    // Stripe refused the credit: the mark (sent alongside) must not say otherwise.
    if (after?.mark_state === "withdrawing") await this.marks.withdraw();
    return outcome;
  }

  /**
   * An operator's retry of a credit Stripe refused (the operator fixed the cause): a new key (the
   * refusal may be saved under the old one), after a ledger look ("sent"), with the mark again,
   * and the watchdog as for a first attempt.
   */
  async reopen(rec: CreditRecord): Promise<Outcome> {
    const reopened = this.ctx.store.update({
      state: "verified",
      reason: null,
      credit_attempt: rec.credit_attempt + 1,
      credit_write: "sent",
      mark_state: this.ctx.settings.markCredited ? "pending" : "off",
      retry_count: 0,
      next_retry_at: Date.now() + WATCHDOG_MS,
    });
    await this.ctx.alarm.watchdog();
    return this.complete(reopened, "operator");
  }

  /**
   * An operator's retry of a PI marked credited with no ledger entry found: search the whole
   * ledger again (the entry may have been written since); it is never credited blindly.
   */
  async searchCreditedElsewhere(rec: CreditRecord): Promise<Outcome> {
    const found = await this.ctx.ledger.find(rec.customer_id as string, 0, isCreditOf(rec.payment_intent_id));
    if (found === "unavailable") return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS, customer: rec.customer_id };
    if (!found) return { kind: "needs_attention", customer: rec.customer_id };
    await this.#recordCredited(found, "operator", "ledger");
    const after = this.ctx.store.load() ?? rec;
    await this.followUp.schedule(after, this.books.walletOwed(after).length > 0);
    return this.followUp.creditedOutcome(false);
  }

  /**
   * The PI as it stands. A payment_intent.succeeded event is a snapshot taken at the success, and
   * what decides a credit cannot change after it: status (succeeded is final), customer, amount
   * received, currency, livemode, creation time, and the top-up marker set at creation. One
   * thing can: the older server sets metadata.credited once it has credited the PI itself. So
   * while it may be crediting (MARK_CREDITED on during a migration, or its own top-ups admitted
   * by LEGACY_TOPUP_METADATA) the event cannot be trusted to be current, and the PI is read.
   */
  async #current(paymentIntentId: string, told: PaymentIntentFacts | null): Promise<PaymentIntentFacts | "unknown_pi" | "unavailable"> {
    const { stripe, settings, store } = this.ctx;
    const trusted = told !== null && told.id === paymentIntentId && !settings.markCredited && settings.topUps.legacy === null;
    if (trusted) {
      store.journal("read", "from_event", paymentIntentId);
      return told;
    }
    const read = await stripe.paymentIntents.retrieve(paymentIntentId);
    if (read.ok) return read.value;
    if (read.failure.kind === "not_found") return "unknown_pi";
    logEvent("stripe_read_failed", { payment_intent: paymentIntentId, error: read.failure.message });
    return "unavailable";
  }

  #refuse(paymentIntentId: string, verdict: Exclude<Assessment, { ok: true }>, owner: string | null): Outcome {
    switch (verdict.refusal) {
      case "not_owned":
        return { kind: "not_owned", customer: verdict.customer };
      case "not_succeeded":
        return { kind: "not_succeeded", status: verdict.status, customer: verdict.customer };
      case "not_creditable":
        // Stripe (or the object itself) vouched for this PI: remember the refusal so redeliveries
        // cost nothing. A browser's refusal is not stored: junk must leave nothing behind.
        if (owner === null) this.ctx.store.insert(paymentIntentId, "not_creditable", { customer_id: verdict.customer, reason: verdict.reason });
        return { kind: "not_creditable", reason: verdict.reason, customer: verdict.customer };
    }
  }

  /** Writes the credit exactly once (see ledger-write.ts). */
  async #credit(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    const { store, ledger, alarm } = this.ctx;
    const pi = rec.payment_intent_id;
    const result = await ledger.write(
      {
        customerId: rec.customer_id as string,
        keyBase: creditKey(pi, 1),
        params: creditParams(pi, rec.amount as number, rec.currency as string),
        matches: isCreditOf(pi),
        sinceSeconds: Math.floor(rec.created_at / 1000) - LEDGER_SLACK_SECONDS,
        attempt: rec.credit_attempt,
        sent: rec.credit_write === "sent",
        save: ({ attempt, sent }) => {
          store.update({ credit_attempt: attempt, credit_write: sent ? "sent" : "none" });
        },
      },
      "credit",
    );
    if (result.kind === "done") return this.#recordCredited(result.entry, source, result.via);
    if (result.kind === "unavailable") return this.followUp.retryLater(store.load() ?? rec, result.error);
    // Refused. A mark sent alongside (even one still in flight) must be taken back: recorded in
    // the same write as the refusal, with an alarm armed, so that a crash from here on still
    // leaves the withdrawal owed and scheduled.
    const withdraw = (store.load()?.mark_attempts ?? 0) > 0;
    const reason = `credit refused by Stripe: ${result.error}`;
    const accountId = await this.books.payerAccount(rec);
    const stuck = store.atomically(() => {
      const r = store.update({
        state: "needs_attention",
        reason,
        last_error: result.error,
        ...(withdraw ? { mark_state: "withdrawing" as const } : {}),
        next_retry_at: null,
      });
      this.ctx.outbox.add(attentionEvent(r, { accountId, subject: "credit", attempt: r.credit_attempt, reason, error: result.error }));
      return r;
    });
    if (withdraw) await alarm.backoff(stuck);
    else await alarm.clear();
    await this.books.list(stuck);
    logEvent("needs_attention", { payment_intent: pi, reason: "credit_refused", error: result.error });
    await this.followUp.sendEvents();
    return { kind: "needs_attention", customer: rec.customer_id };
  }

  async #recordCredited(entry: LedgerEntry, by: string, via: string): Promise<Outcome> {
    const { store } = this.ctx;
    const rec = store.update({
      state: "credited",
      balance_transaction_id: entry.id,
      ending_balance: entry.ending_balance,
      credited_by: by,
      credited_at: Date.now(),
      reason: null,
      last_error: null,
      next_retry_at: null,
      retry_count: 0,
    });
    store.journal("credit", "recorded", `${via} → ${entry.id}`);
    record(this.ctx.env, { name: "credit", amount: rec.amount ?? 0, currency: rec.currency ?? "" });
    logEvent("credited", {
      payment_intent: rec.payment_intent_id,
      customer: rec.customer_id,
      amount: rec.amount,
      currency: rec.currency,
      balance_transaction: entry.id,
      by,
    });
    await this.books.tellWallet(rec);
    if (rec.listed) await this.books.list(rec);
    return this.followUp.creditedOutcome(true);
  }

  /**
   * A PI marked credited with no local record: it was credited by another system (or this
   * record was lost). Find its ledger entry instead of crediting again; without one, stop and
   * ask an operator rather than guess.
   */
  async #adoptCreditedElsewhere(paymentIntentId: string, verdict: Extract<Assessment, { ok: true }>, account: string | null): Promise<Outcome> {
    const { store, ledger } = this.ctx;
    const { customer, amount, currency } = verdict;
    const found = await ledger.find(customer, 0, isCreditOf(paymentIntentId));
    if (found === "unavailable") return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS, customer };
    const known = { customer_id: customer, amount, currency, account_id: account, mark_state: "done" as const };
    if (!found) {
      const accountId = await this.books.payerAccount(known);
      const stuck = store.atomically(() => {
        const r = store.insert(paymentIntentId, "needs_attention", { ...known, reason: CREDITED_ELSEWHERE });
        this.ctx.outbox.add(attentionEvent(r, { accountId, subject: "credit", attempt: 0, reason: CREDITED_ELSEWHERE, error: null }));
        return r;
      });
      store.clearNotice();
      await this.books.list(stuck);
      logEvent("needs_attention", { payment_intent: paymentIntentId, reason: "credited_without_ledger_entry" });
      await this.followUp.sendEvents();
      return { kind: "needs_attention", customer };
    }
    const adopted = store.insert(paymentIntentId, "credited", {
      ...known,
      credit_write: "sent",
      balance_transaction_id: found.id,
      ending_balance: found.ending_balance,
      credited_by: "ledger",
      credited_at: Date.now(),
    });
    store.clearNotice();
    const told = await this.books.tellWallet(adopted);
    // Refunds or disputes may have arrived before the credit was found.
    await this.followUp.schedule(adopted, !told);
    return this.followUp.creditedOutcome(false);
  }
}
