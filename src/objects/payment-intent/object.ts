// The PaymentIntent object: the only code that credits. One object per PI (named by its id), so
// every confirm, webhook and alarm for that PI lands here, from any region. Its public methods
// are the RPC surface; each either answers from the durable record or runs one attempt
// (attempts.ts) of the protocol (protocol.ts), whose work after the credit (follow-up.ts) the
// alarm finishes. blockConcurrencyWhile is not used around Stripe calls: it resets the object on
// a throw or after 30 s (developers.cloudflare.com/durable-objects/api/state/#blockconcurrencywhile).
//
//   object.ts       RPC surface, and which step a record in each state needs
//   attempts.ts     one attempt at a time, per-customer waiting room, junk memory
//   protocol.ts     read, assess, record the intent, mark and credit, adopt a credit made elsewhere
//   follow-up.ts    reversals, a pending mark, the wallet's report; the alarm's schedule
//   marks.ts        metadata.credited for the older server, and taking it back
//   bookkeeping.ts  telling the account's wallet and the operator registry
//   answers.ts      outcomes and what each caller is told (pure)
//   store.ts, schema.ts   the durable record

import { DurableObject } from "cloudflare:workers";
import type { Caller, ConfirmResult, CreditRecord, Inspection, WebhookFact } from "../../credit/contract.js";
import type { PaymentIntentFacts } from "../../credit/policy.js";
import { netOf } from "../../credit/reversals.js";
import type { Env } from "../../env.js";
import { PAYMENT_INTENT_ID } from "../../ids.js";
import { logEvent } from "../../log.js";
import type { OperatorView } from "../contract.js";
import { RETRY_AFTER_SECONDS, answerFor, owesWork, recordedOutcome, type Outcome } from "./answers.js";
import { Attempts, type Attempt } from "./attempts.js";
import { Bookkeeping } from "./bookkeeping.js";
import { creditContext, type CreditContext } from "./context.js";
import { FollowUp } from "./follow-up.js";
import { Marks } from "./marks.js";
import { CREDITED_ELSEWHERE, CreditProtocol } from "./protocol.js";
import type { CreditStore } from "./store.js";

type Source = Caller["kind"];

export class PaymentIntentObject extends DurableObject<Env> {
  readonly #attempts = new Attempts();
  readonly #store: CreditStore;
  readonly #context: CreditContext;
  readonly #books: Bookkeeping;
  readonly #followUp: FollowUp;
  readonly #marks: Marks;
  readonly #protocol: CreditProtocol;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Every Stripe call counts against the attempt in flight (attempts are serialised, so it is the one).
    this.#context = creditContext(
      ctx.storage,
      () => this.env,
      () => this.#countCall(),
    );
    this.#store = this.#context.store;
    this.#books = new Bookkeeping(this.#context);
    this.#marks = new Marks(this.#context);
    this.#followUp = new FollowUp(this.#context, this.#marks, this.#books);
    this.#protocol = new CreditProtocol(this.#context, this.#marks, this.#followUp, this.#books);
  }

  /** Credits `paymentIntentId` exactly once, or says why not, for `caller`. */
  async confirm(paymentIntentId: string, caller: Caller): Promise<ConfirmResult> {
    if (!PAYMENT_INTENT_ID.test(paymentIntentId)) return { ok: false, code: "payment_intent_not_found" };
    const owner = caller.kind === "browser" ? caller.customerId : null;
    const recorded = this.#fromRecord(paymentIntentId, owner);
    if (recorded) return recorded;
    // Someone else's attempt is running: wait for it (a hot PI's browsers beyond their bound are
    // told to come back). An attempt made for another owner that found "not yours" says nothing
    // about this caller, so once it ends, look again.
    for (let running = this.#attempts.running; running; running = this.#attempts.running) {
      const outcome = await this.#attempts.join(running, owner, this.#context.settings.limits.objectQueue);
      if (outcome === "full") return { ok: false, code: "rate_limited", retryAfterSeconds: 1, stripeCalls: 0 };
      if (outcome.kind !== "not_owned" || running.owner === owner) return { ...this.#answer(outcome, owner), stripeCalls: 0 };
      const now = this.#fromRecord(paymentIntentId, owner);
      if (now) return now;
    }
    const accountId = caller.kind === "browser" ? caller.accountId : null;
    const attempt = this.#start(paymentIntentId, owner, caller.kind, () => this.#step(paymentIntentId, owner, caller.kind, accountId));
    return { ...this.#answer(await attempt.promise, owner), stripeCalls: attempt.calls };
  }

  /**
   * The answer from the durable record alone, never a Stripe call: for a caller over its request
   * limit. Null when nothing final is recorded for this caller, also when the record is someone
   * else's: "not found" here, where a PI with no record gets null, would tell a stranger that the
   * PI has a record (under the limit, a stranger is told "not found" either way).
   */
  async recorded(paymentIntentId: string, caller: Caller): Promise<ConfirmResult | null> {
    if (!PAYMENT_INTENT_ID.test(paymentIntentId)) return { ok: false, code: "payment_intent_not_found" };
    const found = this.#fromRecord(paymentIntentId, caller.kind === "browser" ? caller.customerId : null);
    // "Not found" is not an answer here: over the limit, a stranger would tell another account's
    // recorded PaymentIntent (404) from one with nothing recorded (429). Both are 429.
    if (!found || (!found.ok && found.code === "payment_intent_not_found")) return null;
    return found;
  }

  /**
   * Records what a verified webhook says and arms the alarm to act on it; answers at once, so Stripe's
   * delivery never waits on Stripe's API. Redeliveries change nothing: facts are cumulative or keyed.
   */
  async notify(paymentIntentId: string, fact: WebhookFact): Promise<{ accepted: boolean }> {
    if (!PAYMENT_INTENT_ID.test(paymentIntentId)) return { accepted: false };
    const store = this.#store;
    const rec = store.load();
    if (rec && rec.payment_intent_id !== paymentIntentId) return { accepted: false };
    switch (fact.kind) {
      case "succeeded":
        if (rec && rec.state !== "verified") return { accepted: true };
        if (!rec) store.noteNotice(paymentIntentId, fact.paymentIntent?.id === paymentIntentId ? fact.paymentIntent : null);
        break;
      case "refunded":
        store.noteRefunded(fact.amountRefunded);
        store.journal("webhook", "refunded", String(fact.amountRefunded));
        break;
      case "dispute":
        store.noteDispute(fact.disputeId, fact.amount, fact.status);
        store.journal("webhook", `dispute ${fact.status}`, `${fact.disputeId} ${fact.amount}`);
        break;
    }
    await this.#context.alarm.soon();
    return { accepted: true };
  }

  /**
   * Finishes what could not finish while a caller waited: a credit (from a record or a
   * webhook's notice), its follow-up work, or the withdrawal of a mark. Whatever happens, it
   * leaves an alarm armed while anything is still owed.
   */
  override async alarm(): Promise<void> {
    const rec = this.#store.load();
    try {
      if (!rec) await this.#creditFromNotice();
      else if (owesWork(rec)) await this.#work(rec.payment_intent_id, "alarm");
    } catch (err) {
      // Never throw out of an alarm: the platform gives up after six retries. ensureArmed re-arms.
      logEvent("alarm_failed", { payment_intent: rec?.payment_intent_id ?? null, error: String(err) });
      if (rec) this.#store.update({ last_error: `alarm: ${String(err)}` });
    }
    await this.#followUp.ensureArmed();
  }

  /** The durable record and everything around it. */
  async inspect(): Promise<Inspection> {
    const store = this.#store;
    const record = store.load();
    const adjustments = store.adjustments();
    const done = adjustments.filter((a) => a.state === "done");
    return {
      record,
      amounts: record?.state === "credited" ? netOf(record.amount ?? 0, done) : null,
      amount_refunded: store.refunded(),
      disputes: store.disputes(),
      adjustments,
      journal: store.journalEntries(),
      attempt_started_at: this.#attempts.running?.startedAt ?? null,
      wallet_pending: record ? this.#books.walletOwed(record).map((r) => r.balance_transaction_id) : [],
    };
  }

  /** What the operator registry should hold for this PI: nothing once settled (or never recorded). */
  async operatorView(): Promise<OperatorView> {
    const rec = this.#store.load();
    if (!rec) return { settled: true, entry: null };
    return { settled: this.#books.settled(rec), entry: this.#books.entry(rec) };
  }

  /**
   * An operator's "retry now". Waiting work runs at once. A credit Stripe refused runs again
   * under a new key, after a ledger look (the operator fixed the cause). A stored refusal is
   * assessed again. A PI marked credited elsewhere only has its ledger searched again: it is
   * never credited blindly. Runs as an attempt of its own, after the one in flight.
   */
  async retryNow(): Promise<{ result: ConfirmResult | null; record: CreditRecord | null }> {
    const first = this.#store.load();
    if (!first) return { result: null, record: null };
    const outcome = await this.#work(first.payment_intent_id, "operator", () => this.#operatorStep(first));
    return { result: this.#answer(outcome, null), record: this.#store.load() };
  }

  /** A final answer the record already holds for `owner`, with no attempt. */
  #fromRecord(paymentIntentId: string, owner: string | null): ConfirmResult | null {
    const rec = this.#store.load();
    if (!rec) return this.#attempts.knownJunk(owner) ? { ok: false, code: "payment_intent_not_found", stripeCalls: 0 } : null;
    if (rec.payment_intent_id !== paymentIntentId) return { ok: false, code: "payment_intent_not_found" };
    const outcome = recordedOutcome(rec, this.#books.walletOwed(rec).length > 0);
    if (outcome) return this.#answer(outcome, owner);
    // A credit the wallet does not have yet is the customer's own business only.
    if (rec.state === "credited" && owner !== null && rec.customer_id !== owner) return { ok: false, code: "payment_intent_not_found" };
    return null;
  }

  /** The step a record in its current state needs, run inside an attempt; `told`: the PI as a webhook's event carried it. */
  async #step(
    paymentIntentId: string,
    owner: string | null,
    source: Source,
    accountId: string | null,
    told: PaymentIntentFacts | null = null,
  ): Promise<Outcome> {
    const rec = this.#store.load();
    if (!rec) return this.#protocol.begin(paymentIntentId, owner, source, accountId, told);
    switch (rec.state) {
      case "verified":
        if (owner !== null && rec.customer_id !== owner) return { kind: "not_owned", customer: rec.customer_id };
        return this.#protocol.complete(rec, source);
      case "credited":
        await this.#followUp.run(rec);
        return this.#followUp.creditedOutcome(false);
      case "needs_attention":
        if (rec.mark_state === "withdrawing") await this.#marks.withdraw();
        return { kind: "needs_attention", customer: rec.customer_id };
      case "not_creditable":
        return { kind: "not_creditable", reason: rec.reason ?? "not_creditable", customer: rec.customer_id };
    }
  }

  /** The operator's retry, inside its own attempt: whatever the record's state calls for. */
  async #operatorStep(first: CreditRecord): Promise<Outcome> {
    const store = this.#store;
    const rec = store.load() ?? first;
    store.journal("operator", "retry", rec.state);
    if (rec.state === "needs_attention" && rec.reason === CREDITED_ELSEWHERE) return this.#protocol.searchCreditedElsewhere(rec);
    if (rec.state === "needs_attention") return this.#protocol.reopen(rec);
    // A refusal is assessed again from a fresh read: the operator may have changed a setting
    // (the older server's top-ups admitted, a currency accepted).
    if (rec.state === "not_creditable") store.forgetRefusal();
    // A reversal Stripe refused is written again, after a ledger look; waiting work runs now.
    if (rec.state === "credited") for (const a of store.adjustments()) if (a.state === "needs_attention") store.reopenAdjustment(a.operation);
    return this.#step(rec.payment_intent_id, null, "operator", null);
  }

  /**
   * A payment_intent.succeeded webhook came before any record. Stripe was told 200, so this is
   * a promise: the notice goes only once a record exists (credited, or refused and remembered),
   * or once a read made after the notice arrived (this attempt's own) says Stripe has no such
   * PI or it has not succeeded. Anything else keeps it and comes back with backoff.
   */
  async #creditFromNotice(): Promise<void> {
    const store = this.#store;
    const notice = store.notice();
    if (!notice) return;
    const pi = notice.payment_intent_id;
    const outcome = await this.#work(pi, "webhook", () => this.#step(pi, null, "webhook", null, notice.facts));
    const settled = store.load() !== null || outcome.kind === "unknown_pi" || outcome.kind === "not_succeeded";
    if (!settled) return this.#context.alarm.after(store.bumpNotice());
    if (!store.load()) logEvent("notice_refused", { payment_intent: notice.payment_intent_id, outcome: outcome.kind });
    store.clearNotice();
  }

  /**
   * Work on behalf of the object itself (alarm, webhook notice, operator): an attempt of its
   * own, never joined to a browser's (whose outcome may be a failure that says nothing about
   * this work), started once no attempt is in flight. The wait and the claim have no await
   * between them, so two attempts never overlap.
   */
  async #work(paymentIntentId: string, source: Exclude<Source, "browser">, body?: () => Promise<Outcome>): Promise<Outcome> {
    // The check and the claim share one synchronous step after the last wait: no await between.
    for (let running = this.#attempts.running; running; running = this.#attempts.running) await running.promise;
    return this.#start(paymentIntentId, null, source, body ?? (() => this.#step(paymentIntentId, null, source, null))).promise;
  }

  /**
   * Starts `body` as the one attempt in flight. A throw anywhere in it is an unknown outcome:
   * the caller is told to come back, and an alarm is armed for whatever is still owed.
   */
  #start(paymentIntentId: string, owner: string | null, source: Source, body: () => Promise<Outcome>): Attempt {
    return this.#attempts.start(
      owner,
      async (attempt) => {
        const outcome = await body();
        // A browser's attempt is logged by the Worker's confirm line; others here (debug once "credited" said it).
        if (source !== "browser") {
          logEvent("credit_attempt", {
            level: outcome.kind === "credited" ? "debug" : "info",
            payment_intent: paymentIntentId,
            source,
            outcome: outcome.kind,
            stripe_calls: attempt.calls,
            duration_ms: Date.now() - attempt.startedAt,
          });
        }
        return outcome;
      },
      async (err) => {
        logEvent("credit_attempt_crashed", { payment_intent: paymentIntentId, error: String(err) });
        await this.#followUp.ensureArmed().catch(() => undefined);
        return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS, customer: null };
      },
    );
  }

  #countCall(): void {
    const running = this.#attempts.running;
    if (running) running.calls++;
  }

  #answer(outcome: Outcome, owner: string | null): ConfirmResult {
    return answerFor(outcome, owner, this.#store.load());
  }
}
