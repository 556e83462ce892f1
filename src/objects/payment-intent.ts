// The PaymentIntent object: the only code that credits. One object per PI (named by its id), so
// every confirm, webhook and alarm for that PI lands here, from any region.
//
// A Durable Object lets other calls in while it awaits fetch(), so the protocol is serialised
// by hand: an attempt is claimed synchronously (`#inflight` is checked and set with no await in
// between) and every later caller waits on that attempt's promise, then answers from its
// outcome or from storage. Memory is only an optimisation: the durable record in CreditStore is
// the truth, and each step records what it is about to do before the Stripe call that does it.
// blockConcurrencyWhile is not used around Stripe calls: it resets the object on a throw or
// after 30 s (WORKERS-FACTS.md).
//
// An attempt, for a PI in each state:
//   no record   read the PI, assess it for the caller, record the intent, then as "verified"
//   verified    mark (once, best effort), credit (ledger-write.ts), then follow-up work
//   credited    follow-up work: reversals from refunds and disputes, a mark still pending
//   other       final; nothing to do

import { DurableObject } from "cloudflare:workers";
import type Stripe from "stripe";
import { intSetting, type Env } from "../env.js";
import { assessPaymentIntent, creditRules, type Assessment } from "../credit/policy.js";
import { PAYMENT_INTENT_ID } from "../ids.js";
import type { Caller, ConfirmResult } from "../credit/result.js";
import { missingAdjustments, netOf } from "../credit/reversals.js";
import { logEvent } from "../log.js";
import { createStripe, isLiveKey } from "../stripe/client.js";
import { classifyStripeError } from "../stripe/errors.js";
import { adjustmentKey, adjustmentParams, creditKey, creditParams, markKey, unmarkKey } from "../stripe/keys.js";
import { backoffMs } from "./backoff.js";
import { CreditStore, type AdjustmentRecord, type CreditRecord, type DisputeFact, type DisputeStatus, type JournalEntry } from "./credit-store.js";
import { LedgerWriter, type LedgerEntry } from "./ledger-write.js";
import { REGISTRY_NAME } from "./registry.js";
import type { ReportOutcome, StripeEntryReport } from "../wallet/contract.js";
import { walletReportsOwed } from "../credit/wallet-reports.js";
import { customerOwner } from "../stripe/customers.js";

/** What one attempt concluded, independent of who asked; answers are derived per caller. */
type Outcome =
  | { kind: "credited"; fresh: boolean }
  | { kind: "unknown_pi" }
  | { kind: "not_owned"; customer: string | null }
  | { kind: "not_succeeded"; status: string; customer: string | null }
  | { kind: "not_creditable"; reason: string; customer: string | null }
  | { kind: "needs_attention"; customer: string | null }
  | { kind: "unavailable"; retryAfterSeconds: number; customer: string | null };

/** One attempt in flight: whose point of view it runs from, its result, the Stripe calls it made. */
interface Attempt {
  owner: string | null;
  promise: Promise<Outcome>;
  calls: number;
  startedAt: number;
}

/** What a verified Stripe webhook says about this PI. */
export type WebhookFact =
  { kind: "succeeded" } | { kind: "refunded"; amountRefunded: number } | { kind: "dispute"; disputeId: string; amount: number; status: DisputeStatus };

/** How the Worker asks: `storageOnly` when the caller is over its request limit (answer only what costs nothing). */
export interface ConfirmOptions {
  storageOnly?: boolean;
}

/** Everything the object knows about its PI, for tests and operators. */
export interface Inspection {
  record: CreditRecord | null;
  amounts: { credited: number; reversed: number; net: number } | null;
  amount_refunded: number;
  disputes: DisputeFact[];
  adjustments: AdjustmentRecord[];
  journal: JournalEntry[];
  /** When the attempt running right now (in this instance's memory) started, or null. */
  attempt_started_at: number | null;
  /** Ledger entries of this PI that the account's wallet has not acknowledged yet. */
  wallet_pending: string[];
}

/** How far before the recorded intent the ledger search looks (clock skew between us and Stripe). */
const LEDGER_SLACK_SECONDS = 3600;
/** Retry-After for a caller whose PI could not even be read (nothing recorded, nothing scheduled). */
const READ_RETRY_AFTER_SECONDS = 2;
/**
 * Armed when the intent is recorded, before the first Stripe write: if the object dies
 * mid-protocol (eviction, deploy, crash), this alarm finishes the credit with no caller.
 */
const WATCHDOG_MS = 30_000;
/** How long a PI id that Stripe does not know, or that is not the caller's, is answered from memory. */
const JUNK_MEMORY_MS = 60_000;
/** The needs_attention reason for a PI marked credited with no ledger entry to show for it. */
const CREDITED_ELSEWHERE = "metadata.credited is true but the customer's ledger has no entry for this PaymentIntent";

/** The ledger entry that is this PI's credit: ours and the older server's carry only `payment_intent`. */
function isCreditOf(paymentIntentId: string) {
  return (tx: Stripe.CustomerBalanceTransaction) => tx.metadata?.payment_intent === paymentIntentId && !tx.metadata?.operation;
}

/** The per-PaymentIntent Durable Object; its public methods are the RPC surface. */
export class PaymentIntentObject extends DurableObject<Env> {
  #store: CreditStore;
  #stripe: Stripe | null = null;
  #writer: LedgerWriter | null = null;
  #inflight: Attempt | null = null;
  /**
   * Browsers waiting on the attempt in flight, by their Stripe customer; each customer gets
   * OBJECT_QUEUE_LIMIT places, so a stranger who floods a PaymentIntent's id fills only its own.
   */
  #waiting = new Map<string, number>();
  /** Junk seen recently (memory only: junk must leave nothing durable): unknown to Stripe, or not this owner's. */
  #unknownUntil = 0;
  #notOwnedUntil = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new CreditStore(ctx.storage.sql);
  }

  /** Credits `paymentIntentId` exactly once, or says why not, for `caller`. */
  async confirm(paymentIntentId: string, caller: Caller, options: ConfirmOptions = {}): Promise<ConfirmResult> {
    if (!PAYMENT_INTENT_ID.test(paymentIntentId)) return { ok: false, code: "payment_intent_not_found" };
    const owner = caller.kind === "browser" ? caller.customerId : null;
    const limited = { ok: false, code: "rate_limited", retryAfterSeconds: 1, stripeCalls: 0 } as const;
    // Each pass answers, or waits for an attempt made for another owner to finish and looks again.
    for (;;) {
      const rec = this.#store.load();
      if (rec && rec.payment_intent_id !== paymentIntentId) return { ok: false, code: "payment_intent_not_found" };
      // A credit the account's wallet does not have yet is not answered 200: the attempt tells it first.
      const walletOwed = rec?.state === "credited" && this.#walletReports(rec).length > 0;
      if (rec && rec.state !== "verified" && !walletOwed) return this.#answer(outcomeOfFinal(rec), owner);
      if (!rec && this.#knownJunk(owner)) return { ok: false, code: "payment_intent_not_found", stripeCalls: 0 };
      if (walletOwed && owner !== null && rec?.customer_id !== owner) return { ok: false, code: "payment_intent_not_found" };
      if (options.storageOnly) return limited;
      const running = this.#inflight;
      if (running) {
        // A hot PI: browsers beyond the bound are told to come back rather than piling up.
        // Only browsers: Stripe's webhook, the alarm and an operator are never turned away.
        const waiting = owner === null ? 0 : (this.#waiting.get(owner) ?? 0);
        if (owner !== null && waiting >= intSetting(this.env.OBJECT_QUEUE_LIMIT, 100)) return limited;
        if (owner !== null) this.#waiting.set(owner, waiting + 1);
        const outcome = await running.promise.finally(() => {
          if (owner === null) return;
          const left = (this.#waiting.get(owner) ?? 1) - 1;
          if (left > 0) this.#waiting.set(owner, left);
          else this.#waiting.delete(owner);
        });
        // An attempt made for another owner that found "not yours" says nothing about this
        // caller: run again from this caller's point of view.
        if (outcome.kind === "not_owned" && running.owner !== owner) continue;
        return { ...this.#answer(outcome, owner), stripeCalls: 0 };
      }
      const accountId = caller.kind === "browser" ? caller.accountId : null;
      const attempt = this.#startAttempt(paymentIntentId, owner, caller.kind, () => this.#run(paymentIntentId, owner, caller.kind, accountId));
      return { ...this.#answer(await attempt.promise, owner), stripeCalls: attempt.calls };
    }
  }

  /**
   * Records what a verified webhook says and arms the alarm to act on it; answers at once, so
   * Stripe's delivery never waits on Stripe's API. Redeliveries and duplicate events change
   * nothing: the facts are cumulative or keyed by the dispute.
   */
  async notify(paymentIntentId: string, fact: WebhookFact): Promise<{ accepted: boolean }> {
    if (!PAYMENT_INTENT_ID.test(paymentIntentId)) return { accepted: false };
    const rec = this.#store.load();
    if (rec && rec.payment_intent_id !== paymentIntentId) return { accepted: false };
    switch (fact.kind) {
      case "succeeded":
        if (rec && rec.state !== "verified") return { accepted: true };
        if (!rec) this.#store.noteNotice(paymentIntentId);
        break;
      case "refunded":
        this.#store.noteRefunded(fact.amountRefunded);
        this.#store.journal("webhook", "refunded", String(fact.amountRefunded));
        break;
      case "dispute":
        this.#store.noteDispute(fact.disputeId, fact.amount, fact.status);
        this.#store.journal("webhook", `dispute ${fact.status}`, `${fact.disputeId} ${fact.amount}`);
        break;
    }
    const due = await this.ctx.storage.getAlarm();
    if (due === null || due > Date.now()) await this.ctx.storage.setAlarm(Date.now());
    return { accepted: true };
  }

  /**
   * Finishes what could not finish while a caller waited: a credit (from a record or a
   * webhook's notice), its reversals, its mark, or the withdrawal of a mark. Whatever happens,
   * it leaves an alarm armed while anything is still owed.
   */
  override async alarm(): Promise<void> {
    const rec = this.#store.load();
    try {
      if (!rec) await this.#creditFromNotice();
      else if (owesWork(rec)) await this.#work(rec.payment_intent_id, "alarm");
    } catch (err) {
      // Never throw out of an alarm: the platform gives up after six retries. #ensureArmed re-arms.
      logEvent("alarm_failed", { payment_intent: rec?.payment_intent_id ?? null, error: String(err) });
      if (rec) this.#store.update({ last_error: `alarm: ${String(err)}` });
    }
    await this.#ensureArmed();
  }

  /** The durable record and everything around it. */
  async inspect(): Promise<Inspection> {
    const record = this.#store.load();
    const adjustments = this.#store.adjustments();
    return {
      record,
      amounts:
        record?.state === "credited"
          ? netOf(
              record.amount ?? 0,
              adjustments.filter((a) => a.state === "done"),
            )
          : null,
      amount_refunded: this.#store.refunded(),
      disputes: this.#store.disputes(),
      adjustments,
      journal: this.#store.journalEntries(),
      attempt_started_at: this.#inflight?.startedAt ?? null,
      wallet_pending: record ? this.#walletReports(record).map((r) => r.balance_transaction_id) : [],
    };
  }

  /**
   * An operator's "retry now". Waiting work runs at once. A credit Stripe refused runs again
   * under a new key, after a ledger look (the operator fixed the cause). A stored refusal is
   * assessed again. A PI marked credited elsewhere only has its ledger searched again: it is
   * never credited blindly.
   */
  async retryNow(): Promise<{ result: ConfirmResult | null; record: CreditRecord | null }> {
    const first = this.#store.load();
    if (!first) return { result: null, record: null };
    const pi = first.payment_intent_id;
    // Runs as an attempt of its own, after the one in flight: the state it changes is never
    // changed under an attempt that is still writing.
    const outcome = await this.#work(pi, "operator", async () => {
      const rec = this.#store.load() ?? first;
      this.#store.journal("operator", "retry", rec.state);
      if (rec.state === "needs_attention" && rec.reason === CREDITED_ELSEWHERE) return this.#searchCreditedElsewhere(rec);
      if (rec.state === "needs_attention") {
        // Stripe refused the credit; the operator fixed the cause. A new key (the refusal may
        // be saved under the old one), after a ledger look ("sent"), with the mark again.
        const reopened = this.#store.update({
          state: "verified",
          reason: null,
          credit_attempt: rec.credit_attempt + 1,
          credit_write: "sent",
          mark_state: "pending",
          retry_count: 0,
          next_retry_at: Date.now() + WATCHDOG_MS,
        });
        // The watchdog, as for a first attempt: a crash mid-write is finished with no caller.
        await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
        return this.#complete(reopened, "operator");
      }
      // A refusal is assessed again from a fresh read: the operator may have changed a setting
      // (the older server's top-ups admitted, a currency accepted).
      if (rec.state === "not_creditable") this.#store.forgetRefusal();
      // A reversal Stripe refused is written again, after a ledger look; waiting work runs now.
      if (rec.state === "credited") for (const a of this.#store.adjustments()) if (a.state === "needs_attention") this.#store.reopenAdjustment(a.operation);
      return this.#run(pi, null, "operator", null);
    });
    return { result: this.#answer(outcome, null), record: this.#store.load() };
  }

  get #client(): Stripe {
    this.#stripe ??= createStripe(this.env);
    return this.#stripe;
  }

  get #ledger(): LedgerWriter {
    this.#writer ??= new LedgerWriter(
      this.#client,
      (step, outcome, detail) => this.#store.journal(step, outcome, detail),
      () => this.#counted(),
    );
    return this.#writer;
  }

  get #reverseEnabled(): boolean {
    return (this.env.REVERSE_ON_REFUND ?? "true").toLowerCase() !== "false";
  }

  /**
   * Starts `body` as the one attempt in flight. Callers must have checked, with no await since,
   * that none is in flight. A throw anywhere in the attempt is an unknown outcome: the caller
   * is told to come back, and an alarm is armed for whatever is still owed.
   */
  #startAttempt(paymentIntentId: string, owner: string | null, source: Caller["kind"], body: () => Promise<Outcome>): Attempt {
    const started = Date.now();
    const attempt: Attempt = { owner, promise: Promise.resolve({ kind: "unknown_pi" }), calls: 0, startedAt: started };
    // Claimed before the body starts: its first Stripe call happens before it first yields.
    this.#inflight = attempt;
    attempt.promise = body()
      .catch(async (err: unknown): Promise<Outcome> => {
        logEvent("credit_attempt_crashed", { payment_intent: paymentIntentId, error: String(err) });
        await this.#ensureArmed().catch(() => undefined);
        return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: null };
      })
      .then((outcome) => {
        if (this.#inflight === attempt) this.#inflight = null;
        if (outcome.kind === "unknown_pi") this.#unknownUntil = Date.now() + JUNK_MEMORY_MS;
        if (outcome.kind === "not_owned" && owner !== null) this.#rememberNotOwned(owner);
        // A browser's attempt is logged by the Worker's confirm line (with these calls); others here.
        if (source !== "browser") {
          logEvent("credit_attempt", {
            payment_intent: paymentIntentId,
            source,
            outcome: outcome.kind,
            stripe_calls: attempt.calls,
            duration_ms: Date.now() - started,
          });
        }
        return outcome;
      });
    return attempt;
  }

  #knownJunk(owner: string | null): boolean {
    const now = Date.now();
    if (now < this.#unknownUntil) return true;
    return owner !== null && (this.#notOwnedUntil.get(owner) ?? 0) > now;
  }

  #rememberNotOwned(owner: string): void {
    if (this.#notOwnedUntil.size > 1000) this.#notOwnedUntil.clear();
    this.#notOwnedUntil.set(owner, Date.now() + JUNK_MEMORY_MS);
  }

  /** Counts a Stripe call against the attempt in flight (attempts are serialised, so it is the one). */
  #counted(): void {
    if (this.#inflight) this.#inflight.calls++;
  }

  /**
   * Work on behalf of the object itself (alarm, webhook notice, operator): an attempt of its
   * own, never joined to a browser's (whose outcome may be a failure that says nothing about
   * this work), started once no attempt is in flight. The check and the claim have no await
   * between them, so two attempts never overlap.
   */
  async #work(paymentIntentId: string, source: "alarm" | "webhook" | "operator", body?: () => Promise<Outcome>): Promise<Outcome> {
    while (this.#inflight) await this.#inflight.promise;
    return this.#startAttempt(paymentIntentId, null, source, body ?? (() => this.#run(paymentIntentId, null, source, null))).promise;
  }

  async #run(paymentIntentId: string, owner: string | null, source: Caller["kind"], accountId: string | null): Promise<Outcome> {
    const rec = this.#store.load();
    if (rec?.state === "needs_attention" && rec.mark_state === "withdrawing") {
      await this.#withdrawMark();
      return outcomeOfFinal(rec);
    }
    if (rec?.state === "credited") {
      await this.#followUp(rec);
      return this.#creditedOutcome(false);
    }
    if (rec && rec.state !== "verified") return outcomeOfFinal(rec);
    if (rec) {
      if (owner !== null && rec.customer_id !== owner) return { kind: "not_owned", customer: rec.customer_id };
      return this.#complete(rec, source);
    }

    let pi: Stripe.PaymentIntent;
    try {
      this.#counted();
      pi = await this.#client.paymentIntents.retrieve(paymentIntentId);
    } catch (err) {
      const failure = classifyStripeError(err);
      if (failure.kind === "not_found") return { kind: "unknown_pi" };
      logEvent("stripe_read_failed", { payment_intent: paymentIntentId, error: failure.message });
      return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: null };
    }

    const verdict = assessPaymentIntent(pi, owner, creditRules(this.env, isLiveKey(this.env.STRIPE_SECRET_KEY)));
    // Attempts are serialised, so no record can have appeared while we awaited Stripe; if one
    // did, a bug elsewhere broke that, and nothing is written on top of it (the alarm retries).
    if (this.#store.load()) throw new Error("a record appeared during an attempt");
    if (!verdict.ok) return this.#refuse(paymentIntentId, verdict, owner);
    // A browser's own account first: its customer was just checked to be the PI's. Otherwise
    // the PI's metadata names it, a claim the wallet checks against Stripe before believing it.
    const account = accountId || pi.metadata?.account_id || null;
    if (verdict.creditedElsewhere) return this.#adoptCreditedElsewhere(paymentIntentId, verdict.customer, verdict.amount, verdict.currency, account);
    const verified = this.#store.insert(paymentIntentId, "verified", {
      customer_id: verdict.customer,
      amount: verdict.amount,
      currency: verdict.currency,
      account_id: account,
      next_retry_at: Date.now() + WATCHDOG_MS,
    });
    await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
    this.#store.clearNotice();
    return this.#complete(verified, source);
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
        if (owner === null) this.#store.insert(paymentIntentId, "not_creditable", { customer_id: verdict.customer, reason: verdict.reason });
        return { kind: "not_creditable", reason: verdict.reason, customer: verdict.customer };
    }
  }

  /**
   * Mark (once, best effort) and credit a verified record; follow-up work goes to the alarm.
   * The mark goes out alongside the credit rather than before it: it is a courtesy that never
   * decides anything here (the record does), so the caller waits for one round trip, not two.
   */
  async #complete(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    const marking = rec.mark_state === "pending" ? this.#mark(rec) : Promise.resolve(rec);
    const outcome = await this.#credit(rec, source);
    await marking;
    const after = this.#store.load();
    if (after?.state === "credited") await this.#scheduleFollowUp(after, outcome.kind !== "credited");
    // Stripe refused the credit: the mark (sent alongside) must not say otherwise.
    if (after?.mark_state === "withdrawing") await this.#withdrawMark();
    return outcome;
  }

  /**
   * Takes the mark back from a PI whose credit Stripe refused (`metadata.credited` set to empty,
   * which deletes the key), so that the older server does not take it for credited. Each try
   * uses a fresh key: unmarking twice is harmless. A failure is retried from the alarm.
   */
  async #withdrawMark(): Promise<void> {
    const before = this.#store.load();
    if (!before) return;
    // The next try is armed before this one is sent: a crash mid-call leaves it scheduled.
    const rec = this.#store.update({ mark_attempts: before.mark_attempts + 1, retry_count: before.retry_count + 1 });
    await this.#schedule(rec);
    const key = unmarkKey(rec.payment_intent_id, rec.mark_attempts);
    try {
      this.#counted();
      await this.#client.paymentIntents.update(rec.payment_intent_id, { metadata: { credited: "" } }, { idempotencyKey: key });
      this.#store.journal("unmark", "done", key);
      this.#store.update({ mark_state: "withdrawn", retry_count: 0, next_retry_at: null });
      await this.ctx.storage.deleteAlarm();
    } catch (err) {
      const failure = classifyStripeError(err);
      this.#store.journal("unmark", failure.kind, `${key}: ${failure.message}`);
      this.#store.update({ last_error: `unmark: ${failure.message}` });
    }
  }

  /** Sets metadata.credited on the PI. A failure is recorded and retried later; it never blocks the credit. */
  async #mark(rec: CreditRecord): Promise<CreditRecord> {
    const attempt = rec.mark_attempts + 1;
    rec = this.#store.update({ mark_attempts: attempt });
    const key = markKey(rec.payment_intent_id, attempt);
    try {
      this.#counted();
      await this.#client.paymentIntents.update(rec.payment_intent_id, { metadata: { credited: "true" } }, { idempotencyKey: key });
      this.#store.journal("mark", "done", key);
      // A refusal of the credit while this mark was in flight has already asked for it back.
      const now = this.#store.load();
      return now?.mark_state === "pending" ? this.#store.update({ mark_state: "done" }) : (now ?? rec);
    } catch (err) {
      const failure = classifyStripeError(err);
      this.#store.journal("mark", failure.kind, `${key}: ${failure.message}`);
      return this.#store.update({ last_error: `mark: ${failure.message}` });
    }
  }

  /** Writes the credit exactly once (see ledger-write.ts). */
  async #credit(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    const pi = rec.payment_intent_id;
    const result = await this.#ledger.write(
      {
        customerId: rec.customer_id as string,
        keyBase: creditKey(pi, 1),
        params: creditParams(pi, rec.amount as number, rec.currency as string),
        matches: isCreditOf(pi),
        sinceSeconds: Math.floor(rec.created_at / 1000) - LEDGER_SLACK_SECONDS,
        attempt: rec.credit_attempt,
        sent: rec.credit_write === "sent",
        save: ({ attempt, sent }) => {
          this.#store.update({ credit_attempt: attempt, credit_write: sent ? "sent" : "none" });
        },
      },
      "credit",
    );
    switch (result.kind) {
      case "done":
        return this.#recordCredited(result.entry, source, result.via);
      case "unavailable":
        return this.#retryLater(this.#store.load() ?? rec, result.error);
      case "refused": {
        // A mark sent alongside (even one still in flight) must be taken back: recorded in the
        // same write as the refusal, with an alarm armed, so that a crash from here on still
        // leaves the withdrawal owed and scheduled.
        const withdraw = (this.#store.load()?.mark_attempts ?? 0) > 0;
        const stuck = this.#store.update({
          state: "needs_attention",
          reason: `credit refused by Stripe: ${result.error}`,
          last_error: result.error,
          ...(withdraw ? { mark_state: "withdrawing" as const } : {}),
          next_retry_at: null,
        });
        if (withdraw) await this.#schedule(stuck);
        else await this.ctx.storage.deleteAlarm();
        await this.#report(stuck);
        logEvent("needs_attention", { payment_intent: pi, reason: "credit_refused", error: result.error });
        return { kind: "needs_attention", customer: rec.customer_id };
      }
    }
  }

  async #recordCredited(entry: LedgerEntry, by: string, via: string): Promise<Outcome> {
    const rec = this.#store.update({
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
    this.#store.journal("credit", "recorded", `${via} → ${entry.id}`);
    logEvent("credited", {
      payment_intent: rec.payment_intent_id,
      customer: rec.customer_id,
      amount: rec.amount,
      currency: rec.currency,
      balance_transaction: entry.id,
      by,
    });
    await this.#reportToWallet(rec);
    if (rec.listed) await this.#report(rec);
    return this.#creditedOutcome(true);
  }

  /**
   * Work after the credit: plan the reversals that Stripe's refund and dispute events call for,
   * write the pending ones, and mark the PI if that is still owed. Anything that cannot finish
   * now is retried by the alarm.
   */
  async #followUp(rec: CreditRecord): Promise<void> {
    const pi = rec.payment_intent_id;
    if (this.#reverseEnabled) {
      for (const a of missingAdjustments(rec.amount ?? 0, this.#store.refunded(), this.#store.disputes(), this.#store.adjustments())) {
        this.#store.planAdjustment(a);
      }
    }
    let failed = false;
    for (const a of this.#store.adjustments().filter((x) => x.state === "pending")) {
      const result = await this.#ledger.write(
        {
          customerId: rec.customer_id as string,
          keyBase: adjustmentKey(pi, a.operation, 1),
          params: adjustmentParams(pi, a.operation, a.direction, a.amount, rec.currency as string),
          matches: (tx) => tx.metadata?.payment_intent === pi && tx.metadata?.operation === a.operation,
          sinceSeconds: Math.floor(a.created_at / 1000) - LEDGER_SLACK_SECONDS,
          attempt: a.attempt,
          sent: a.sent === 1,
          save: ({ attempt, sent }) => this.#store.updateAdjustment(a.operation, { attempt, sent: sent ? 1 : 0 }),
        },
        "adjust",
      );
      if (result.kind === "done") {
        this.#store.updateAdjustment(a.operation, {
          state: "done",
          balance_transaction_id: result.entry.id,
          ending_balance: result.entry.ending_balance,
          last_error: null,
        });
        logEvent("adjusted", { payment_intent: pi, operation: a.operation, direction: a.direction, amount: a.amount, balance_transaction: result.entry.id });
      } else if (result.kind === "refused") {
        this.#store.updateAdjustment(a.operation, { state: "needs_attention", last_error: result.error });
        logEvent("needs_attention", { payment_intent: pi, reason: "adjustment_refused", operation: a.operation, error: result.error });
      } else {
        this.#store.updateAdjustment(a.operation, { last_error: result.error });
        this.#store.update({ last_error: result.error });
        failed = true;
        break;
      }
    }
    let now = this.#store.load() ?? rec;
    if (now.mark_state === "pending") {
      now = await this.#mark(now);
      failed ||= now.mark_state === "pending";
    }
    if (!(await this.#reportToWallet(now))) failed = true;
    await this.#scheduleFollowUp(this.#store.load() ?? now, failed);
  }

  /**
   * Arms the alarm for follow-up work still owed (at once if nothing failed, with backoff if
   * something did), or clears it when nothing is owed; keeps the registry in step.
   */
  async #scheduleFollowUp(rec: CreditRecord, failed: boolean): Promise<void> {
    const adjustments = this.#store.adjustments();
    const owed = this.#followUpOwed(rec);
    const stuck = adjustments.some((a) => a.state === "needs_attention");
    if (!owed) {
      if (rec.retry_count !== 0 || rec.next_retry_at !== null) this.#store.update({ retry_count: 0, next_retry_at: null });
      await this.ctx.storage.deleteAlarm();
      if (rec.listed || stuck) await this.#report(this.#store.load() ?? rec, stuck);
    } else if (!failed) {
      await this.ctx.storage.setAlarm(Date.now());
    } else {
      await this.#schedule(this.#store.update({ retry_count: rec.retry_count + 1 }));
      await this.#report(this.#store.load() ?? rec);
    }
  }

  /**
   * A PI marked credited with no local record: it was credited by another system (or this
   * record was lost). Find its ledger entry instead of crediting again; without one, stop and
   * ask an operator rather than guess.
   */
  async #adoptCreditedElsewhere(paymentIntentId: string, customer: string, amount: number, currency: string, account: string | null): Promise<Outcome> {
    const found = await this.#ledger.find(customer, 0, isCreditOf(paymentIntentId));
    if (found === "unavailable") return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer };
    if (found) {
      const adopted = this.#store.insert(paymentIntentId, "credited", {
        customer_id: customer,
        amount,
        currency,
        account_id: account,
        credit_write: "sent",
        mark_state: "done",
        balance_transaction_id: found.id,
        ending_balance: found.ending_balance,
        credited_by: "ledger",
        credited_at: Date.now(),
      });
      this.#store.clearNotice();
      const told = await this.#reportToWallet(adopted);
      // Refunds or disputes may have arrived before the credit was found.
      await this.#scheduleFollowUp(adopted, !told);
      return this.#creditedOutcome(false);
    }
    const stuck = this.#store.insert(paymentIntentId, "needs_attention", {
      customer_id: customer,
      amount,
      currency,
      account_id: account,
      mark_state: "done",
      reason: CREDITED_ELSEWHERE,
    });
    this.#store.clearNotice();
    await this.#report(stuck);
    logEvent("needs_attention", { payment_intent: paymentIntentId, reason: "credited_without_ledger_entry" });
    return { kind: "needs_attention", customer };
  }

  /**
   * An operator's retry of a PI marked credited with no ledger entry found: search the whole
   * ledger again (the entry may have been written since); it is never credited blindly.
   */
  async #searchCreditedElsewhere(rec: CreditRecord): Promise<Outcome> {
    const found = await this.#ledger.find(rec.customer_id as string, 0, isCreditOf(rec.payment_intent_id));
    if (found === "unavailable") return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: rec.customer_id };
    if (!found) return { kind: "needs_attention", customer: rec.customer_id };
    await this.#recordCredited(found, "operator", "ledger");
    const after = this.#store.load() ?? rec;
    await this.#scheduleFollowUp(after, this.#walletReports(after).length > 0);
    return this.#creditedOutcome(false);
  }

  /**
   * A payment_intent.succeeded webhook came before any record. Stripe was told 200, so this is
   * a promise: the notice goes only once a record exists (credited, or refused and remembered),
   * or once a read made after the notice arrived (this attempt's own) says Stripe has no such
   * PI or it has not succeeded. Anything else keeps it and comes back with backoff.
   */
  async #creditFromNotice(): Promise<void> {
    const notice = this.#store.notice();
    if (!notice) return;
    const outcome = await this.#work(notice.payment_intent_id, "webhook");
    const settled = this.#store.load() !== null || outcome.kind === "unknown_pi" || outcome.kind === "not_succeeded";
    if (settled) {
      if (!this.#store.load()) logEvent("notice_refused", { payment_intent: notice.payment_intent_id, outcome: outcome.kind });
      this.#store.clearNotice();
      return;
    }
    await this.ctx.storage.setAlarm(Date.now() + backoffMs(this.#store.bumpNotice()));
  }

  /**
   * Leaves an alarm armed while anything is still owed (a notice, a credit, follow-up work, a
   * mark to withdraw). Called after every alarm run and after an attempt that threw, so that
   * no path, however it fails, leaves owed work with nothing to finish it.
   */
  async #ensureArmed(): Promise<void> {
    const rec = this.#store.load();
    const owed = rec ? owesWork(rec) && (rec.state !== "credited" || this.#followUpOwed(rec)) : this.#store.notice() !== null;
    if (!owed || (await this.ctx.storage.getAlarm()) !== null) return;
    const retries = rec ? rec.retry_count + 1 : this.#store.bumpNotice();
    if (rec) this.#store.update({ retry_count: retries });
    await this.ctx.storage.setAlarm(Date.now() + backoffMs(retries));
  }

  /** Whether a credited PI still owes reversals, restorations or its mark. */
  #followUpOwed(rec: CreditRecord): boolean {
    const adjustments = this.#store.adjustments();
    const unplanned = this.#reverseEnabled && missingAdjustments(rec.amount ?? 0, this.#store.refunded(), this.#store.disputes(), adjustments).length > 0;
    return unplanned || adjustments.some((a) => a.state === "pending") || rec.mark_state === "pending" || this.#walletReports(rec).length > 0;
  }

  async #retryLater(rec: CreditRecord, error: string): Promise<Outcome> {
    const next = this.#store.update({ last_error: error, retry_count: rec.retry_count + 1 });
    const delay = await this.#schedule(next);
    await this.#report(this.#store.load() ?? next);
    return { kind: "unavailable", retryAfterSeconds: Math.max(1, Math.ceil(delay / 1000)), customer: rec.customer_id };
  }

  /** Arms the alarm with capped, jittered backoff; returns the delay in ms. */
  async #schedule(rec: CreditRecord): Promise<number> {
    const delay = backoffMs(rec.retry_count);
    const at = Date.now() + delay;
    this.#store.update({ next_retry_at: at });
    await this.ctx.storage.setAlarm(at);
    return delay;
  }

  /** This PI's ledger entries the account's wallet has not acknowledged yet (src/credit/wallet-reports.ts). */
  #walletReports(rec: CreditRecord): StripeEntryReport[] {
    return walletReportsOwed(rec, this.#store.adjustments(), this.#store.reported());
  }

  /**
   * Tells the account's wallet about every entry it lacks; true once it has them all. A failure
   * is not dropped: the entries stay owed, and follow-up work (the alarm) tells it again.
   */
  async #reportToWallet(rec: CreditRecord, resolved = false): Promise<boolean> {
    const owed = this.#walletReports(rec);
    if (owed.length === 0) return true;
    const ids = owed.map((r) => r.balance_transaction_id);
    if (!rec.account_id) return this.#resolveAccount(rec, ids, resolved);
    let told: ReportOutcome;
    try {
      told = await this.env.ACCOUNTS.get(this.env.ACCOUNTS.idFromName(rec.account_id)).applyStripeEntries(rec.account_id, owed);
    } catch (err) {
      this.#store.journal("wallet", "failed", String(err));
      logEvent("wallet_report_failed", { payment_intent: rec.payment_intent_id, error: String(err) });
      return false;
    }
    if (!told.ok && told.reason === "wrong_account") return this.#resolveAccount(rec, ids, resolved);
    if (!told.ok) {
      this.#store.journal("wallet", "unavailable", ids.join(","));
      return false;
    }
    this.#store.noteReported(ids);
    this.#store.journal("wallet", "told", `${rec.account_id}: ${ids.join(",")}`);
    return true;
  }

  /**
   * The account named for this PI has no wallet for its customer (the PI's metadata named
   * another account, or none): the money belongs to the account whose customer it is, by the
   * customer's own `metadata.account_id` in Stripe. Tried once per report; a customer that no
   * account's wallet will take (it names no account, or that account's wallet is another
   * customer's) is logged for an operator, and the wallet's sync on that customer, if any,
   * still takes the entry in from Stripe's ledger.
   */
  async #resolveAccount(rec: CreditRecord, ids: string[], resolved: boolean): Promise<boolean> {
    const owner = resolved ? ({ kind: "none" } as const) : await customerOwner(this.#client, rec.customer_id as string);
    if (owner.kind === "unavailable") {
      this.#store.journal("wallet", "unavailable", `whose customer is ${rec.customer_id}`);
      return false;
    }
    if (owner.kind === "account" && owner.accountId !== rec.account_id) {
      this.#store.journal("wallet", "account", `${rec.customer_id} belongs to ${owner.accountId}, not ${rec.account_id ?? "none"}`);
      return this.#reportToWallet(this.#store.update({ account_id: owner.accountId }), true);
    }
    this.#store.journal("wallet", "no_wallet", `${rec.customer_id}: ${ids.join(",")}`);
    logEvent("wallet_report_unroutable", { payment_intent: rec.payment_intent_id, customer: rec.customer_id, account: rec.account_id, entries: ids });
    this.#store.noteReported(ids);
    return true;
  }

  /** A credited PI's outcome: credited only once the wallet has the credit, so it is spendable when the page shows it. */
  #creditedOutcome(fresh: boolean): Outcome {
    const rec = this.#store.load();
    if (rec && this.#walletReports(rec).length > 0) return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: rec.customer_id };
    return { kind: "credited", fresh };
  }

  /**
   * Keeps the operator registry in step: listed while waiting for a retry or an operator,
   * removed once nothing is owed. Best effort: the record here is the truth, and the operator
   * view re-checks entries against it.
   */
  async #report(rec: CreditRecord, stuckAdjustment = false): Promise<void> {
    const registry = this.env.CREDIT_REGISTRY.get(this.env.CREDIT_REGISTRY.idFromName(REGISTRY_NAME));
    const walletOwed = this.#walletReports(rec).length > 0;
    const settled =
      rec.state === "credited" && rec.mark_state === "done" && !walletOwed && !stuckAdjustment && !this.#store.adjustments().some((a) => a.state !== "done");
    try {
      if (settled) {
        await registry.remove(rec.payment_intent_id);
        if (rec.listed) this.#store.update({ listed: 0 });
      } else {
        await registry.upsert({
          payment_intent_id: rec.payment_intent_id,
          state: operatorState(rec, this.#store.adjustments(), walletOwed),
          customer_id: rec.customer_id,
          amount: rec.amount,
          currency: rec.currency,
          last_error: rec.last_error,
          retry_count: rec.retry_count,
          next_retry_at: rec.next_retry_at,
          updated_at: rec.updated_at,
        });
        if (!rec.listed) this.#store.update({ listed: 1 });
      }
    } catch (err) {
      logEvent("registry_update_failed", { payment_intent: rec.payment_intent_id, error: String(err) });
    }
  }

  #answer(outcome: Outcome, owner: string | null): ConfirmResult {
    const notFound = { ok: false, code: "payment_intent_not_found" } as const;
    const foreign = (customer: string | null) => owner !== null && customer !== owner;
    switch (outcome.kind) {
      case "credited": {
        const rec = this.#store.load();
        if (!rec || rec.state !== "credited" || foreign(rec.customer_id)) return notFound;
        return {
          ok: true,
          status: outcome.fresh ? "credited" : "already_credited",
          paymentIntentId: rec.payment_intent_id,
          amount: rec.amount as number,
          currency: rec.currency as string,
          balanceTransactionId: rec.balance_transaction_id as string,
        };
      }
      case "unknown_pi":
      case "not_owned":
        return notFound;
      case "not_succeeded":
        return foreign(outcome.customer) ? notFound : { ok: false, code: "payment_not_succeeded", paymentIntentStatus: outcome.status };
      case "not_creditable":
        return foreign(outcome.customer) ? notFound : { ok: false, code: "payment_not_creditable", reason: outcome.reason };
      case "needs_attention":
        return foreign(outcome.customer) ? notFound : { ok: false, code: "credit_needs_attention" };
      case "unavailable":
        return outcome.customer !== null && foreign(outcome.customer)
          ? notFound
          : { ok: false, code: "stripe_unavailable", retryAfterSeconds: outcome.retryAfterSeconds };
    }
  }
}

/** The state an operator sees: the record's, or what is still owed after the credit. */
export function operatorState(rec: CreditRecord, adjustments: AdjustmentRecord[], walletOwed = false): string {
  if (rec.state !== "credited") return rec.state;
  if (adjustments.some((a) => a.state === "needs_attention")) return "reversal_needs_attention";
  if (adjustments.some((a) => a.state === "pending")) return "reversal_pending";
  if (walletOwed) return "credited_wallet_pending";
  return rec.mark_state === "pending" ? "credited_mark_pending" : "credited";
}

/** Whether the alarm has work for a record in this state (the rest wait for an operator or are final). */
function owesWork(rec: CreditRecord): boolean {
  return rec.state === "verified" || rec.state === "credited" || (rec.state === "needs_attention" && rec.mark_state === "withdrawing");
}

/** The outcome a record in a final state stands for (nothing was written by this caller). */
function outcomeOfFinal(rec: CreditRecord): Outcome {
  switch (rec.state) {
    case "credited":
      return { kind: "credited", fresh: false };
    case "not_creditable":
      return { kind: "not_creditable", reason: rec.reason ?? "not_creditable", customer: rec.customer_id };
    case "needs_attention":
      return { kind: "needs_attention", customer: rec.customer_id };
    case "verified":
      return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: rec.customer_id };
  }
}
