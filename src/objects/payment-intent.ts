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

import { DurableObject } from "cloudflare:workers";
import type Stripe from "stripe";
import type { Env } from "../env.js";
import { assessPaymentIntent, type Assessment } from "../credit/policy.js";
import type { Caller, ConfirmResult } from "../credit/result.js";
import { logEvent } from "../log.js";
import { createStripe, isLiveKey } from "../stripe/client.js";
import { classifyStripeError, type StripeFailure } from "../stripe/errors.js";
import { creditKey, creditParams, markKey } from "../stripe/keys.js";
import { CreditStore, type CreditRecord, type JournalEntry } from "./credit-store.js";
import { backoffMs } from "./backoff.js";
import { REGISTRY_NAME } from "./registry.js";

/** What one attempt concluded, independent of who asked; answers are derived per caller. */
type Outcome =
  | { kind: "credited"; fresh: boolean }
  | { kind: "unknown_pi" }
  | { kind: "not_owned"; customer: string | null }
  | { kind: "not_succeeded"; status: string; customer: string | null }
  | { kind: "not_creditable"; reason: string; customer: string | null }
  | { kind: "needs_attention"; customer: string | null }
  | { kind: "unavailable"; retryAfterSeconds: number; customer: string | null };

/** A balance transaction as far as the protocol needs it. */
interface LedgerEntry {
  id: string;
  ending_balance: number;
}

const PI_ID = /^pi_[A-Za-z0-9]+$/;
/** How far before the recorded intent the ledger search looks (clock skew between us and Stripe). */
const LEDGER_SLACK_SECONDS = 3600;
const LEDGER_MAX_PAGES = 20;
/** Retry-After for a caller whose PI could not even be read (nothing recorded, nothing scheduled). */
const READ_RETRY_AFTER_SECONDS = 2;
/** Credit writes one attempt may make: a first key, then a next key after a replayed failure. */
const MAX_WRITES_PER_ATTEMPT = 3;
/**
 * Armed when the intent is recorded, before the first Stripe write: if the object dies
 * mid-protocol (eviction, deploy, crash), this alarm finishes the credit with no caller.
 */
const WATCHDOG_MS = 30_000;
/** The needs_attention reason for a PI marked credited with no ledger entry to show for it. */
const CREDITED_ELSEWHERE = "metadata.credited is true but the customer's ledger has no entry for this PaymentIntent";

/** The per-PaymentIntent Durable Object; its public methods are the RPC surface. */
export class PaymentIntentObject extends DurableObject<Env> {
  #store: CreditStore;
  #stripe: Stripe | null = null;
  #inflight: { owner: string | null; promise: Promise<Outcome> } | null = null;
  /** Stripe calls made by the attempt in flight, for the log line. */
  #calls = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#store = new CreditStore(ctx.storage.sql);
  }

  /** Credits `paymentIntentId` exactly once, or says why not, for `caller`. */
  async confirm(paymentIntentId: string, caller: Caller): Promise<ConfirmResult> {
    if (!PI_ID.test(paymentIntentId)) return { ok: false, code: "payment_intent_not_found" };
    const owner = caller.kind === "browser" ? caller.customerId : null;
    // Bounded: each pass either answers or waits for a finished attempt of another owner.
    for (let pass = 0; pass < 8; pass++) {
      const rec = this.#store.load();
      if (rec && rec.payment_intent_id !== paymentIntentId) return { ok: false, code: "payment_intent_not_found" };
      if (rec && rec.state !== "verified") return this.#answer(outcomeOfFinal(rec, false), owner);
      const running = this.#inflight;
      if (running) {
        const outcome = await running.promise;
        // An attempt made for another owner that found "not yours" says nothing about this
        // caller: run again from this caller's point of view.
        if (outcome.kind === "not_owned" && running.owner !== owner) continue;
        return this.#answer(outcome, owner);
      }
      return this.#answer(await this.#startAttempt(paymentIntentId, owner, caller.kind), owner);
    }
    return { ok: false, code: "stripe_unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS };
  }

  /** Finishes a credit (or its mark) that could not finish while a caller waited. */
  override async alarm(): Promise<void> {
    const rec = this.#store.load();
    if (!rec) return;
    try {
      if (rec.state === "verified") {
        await this.confirm(rec.payment_intent_id, { kind: "alarm" });
      } else if (rec.state === "credited" && rec.mark_state === "pending") {
        await this.#retryMark(rec);
      }
    } catch (err) {
      // Never throw out of an alarm: the platform gives up after six retries. Re-arm instead.
      const next = this.#store.update({ last_error: `alarm: ${String(err)}`, retry_count: rec.retry_count + 1 });
      await this.#schedule(next);
    }
  }

  /** The durable record and journal, for tests and the operator view. */
  async inspect(): Promise<{ record: CreditRecord | null; journal: JournalEntry[] }> {
    return { record: this.#store.load(), journal: this.#store.journalEntries() };
  }

  /**
   * An operator's "retry now". A waiting credit runs at once. A credit Stripe refused runs
   * again under a new key, after a ledger look (the operator fixed the cause). A PI marked
   * credited elsewhere only has its ledger searched again: it is never credited blindly.
   */
  async retryNow(): Promise<{ result: ConfirmResult | null; record: CreditRecord | null }> {
    const rec = this.#store.load();
    if (!rec) return { result: null, record: null };
    this.#store.journal("operator", "retry", rec.state);
    if (rec.state === "needs_attention") {
      if (rec.reason === CREDITED_ELSEWHERE) {
        const found = await this.#findLedgerEntry(rec, 0);
        if (found && found !== "unavailable") {
          this.#store.update({ state: "credited", balance_transaction_id: found.id, ending_balance: found.ending_balance, credited_by: "ledger", credited_at: Date.now(), reason: null });
          await this.#report(this.#store.load() ?? rec);
        }
        return { result: await this.confirm(rec.payment_intent_id, { kind: "operator" }), record: this.#store.load() };
      }
      this.#store.update({ state: "verified", reason: null, credit_attempt: rec.credit_attempt + 1, credit_write: "sent", retry_count: 0 });
    } else if (rec.state === "credited" && rec.mark_state === "pending") {
      await this.#retryMark(rec);
      return { result: await this.confirm(rec.payment_intent_id, { kind: "operator" }), record: this.#store.load() };
    }
    return { result: await this.confirm(rec.payment_intent_id, { kind: "operator" }), record: this.#store.load() };
  }

  get #client(): Stripe {
    this.#stripe ??= createStripe(this.env);
    return this.#stripe;
  }

  #startAttempt(paymentIntentId: string, owner: string | null, source: Caller["kind"]): Promise<Outcome> {
    const started = Date.now();
    this.#calls = 0;
    const promise = this.#run(paymentIntentId, owner, source)
      .catch((err: unknown): Outcome => {
        logEvent("credit_attempt_crashed", { payment_intent: paymentIntentId, error: String(err) });
        return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: null };
      })
      .then((outcome) => {
        if (this.#inflight?.promise === promise) this.#inflight = null;
        logEvent("credit_attempt", {
          payment_intent: paymentIntentId,
          source,
          outcome: outcome.kind,
          stripe_calls: this.#calls,
          duration_ms: Date.now() - started,
        });
        return outcome;
      });
    this.#inflight = { owner, promise };
    return promise;
  }

  async #run(paymentIntentId: string, owner: string | null, source: Caller["kind"]): Promise<Outcome> {
    let rec = this.#store.load();
    if (rec && rec.state !== "verified") return outcomeOfFinal(rec, false);
    if (rec) {
      if (owner !== null && rec.customer_id !== owner) return { kind: "not_owned", customer: rec.customer_id };
      return this.#complete(rec, source);
    }

    let pi: Stripe.PaymentIntent;
    try {
      this.#calls++;
      pi = await this.#client.paymentIntents.retrieve(paymentIntentId);
    } catch (err) {
      const failure = classifyStripeError(err);
      if (failure.kind === "not_found") return { kind: "unknown_pi" };
      logEvent("stripe_read_failed", { payment_intent: paymentIntentId, error: failure.message });
      return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: null };
    }

    const verdict = assessPaymentIntent(pi, owner, isLiveKey(this.env.STRIPE_SECRET_KEY));
    if (!verdict.ok) return this.#refuse(paymentIntentId, verdict, owner);
    // The record might have been written while we awaited Stripe only by this same attempt,
    // since attempts are serialised; load again anyway so a bug cannot create two rows.
    if (this.#store.load()) return this.#run(paymentIntentId, owner, source);
    if (verdict.creditedElsewhere) return this.#adoptCreditedElsewhere(paymentIntentId, verdict.customer, verdict.amount, verdict.currency);
    rec = this.#store.insert(paymentIntentId, "verified", {
      customer_id: verdict.customer,
      amount: verdict.amount,
      currency: verdict.currency,
      next_retry_at: Date.now() + WATCHDOG_MS,
    });
    await this.ctx.storage.setAlarm(Date.now() + WATCHDOG_MS);
    return this.#complete(rec, source);
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

  /** Mark (once, best effort) and credit a verified record. */
  async #complete(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    if (rec.mark_state === "pending" && rec.mark_attempts === 0) rec = await this.#mark(rec);
    const outcome = await this.#credit(rec, source);
    const after = this.#store.load();
    if (outcome.kind === "credited" && after) {
      if (after.mark_state === "pending") await this.#schedule(after);
      else await this.ctx.storage.deleteAlarm();
    }
    return outcome;
  }

  /** Sets metadata.credited on the PI. A failure is recorded and retried later; it never blocks the credit. */
  async #mark(rec: CreditRecord): Promise<CreditRecord> {
    const attempt = rec.mark_attempts + 1;
    rec = this.#store.update({ mark_attempts: attempt });
    try {
      this.#calls++;
      await this.#client.paymentIntents.update(
        rec.payment_intent_id,
        { metadata: { credited: "true" } },
        { idempotencyKey: markKey(rec.payment_intent_id, attempt) },
      );
      this.#store.journal("mark", "done", markKey(rec.payment_intent_id, attempt));
      return this.#store.update({ mark_state: "done" });
    } catch (err) {
      const failure = classifyStripeError(err);
      this.#store.journal("mark", failure.kind, failure.message);
      return this.#store.update({ last_error: `mark: ${failure.message}` });
    }
  }

  async #retryMark(rec: CreditRecord): Promise<void> {
    const next = await this.#mark(rec);
    if (next.mark_state === "pending") {
      await this.#schedule(this.#store.update({ retry_count: next.retry_count + 1 }));
      await this.#report(this.#store.load() ?? next);
    } else {
      if (next.listed) await this.#report(next);
      this.#store.update({ next_retry_at: null, retry_count: 0 });
      await this.ctx.storage.deleteAlarm();
    }
  }

  /**
   * Writes the credit exactly once. When a previous write's outcome is unknown, look at the
   * ledger before writing again; write under a new key only after the old key's request is
   * known to be finished (its failure replayed) and the ledger still shows nothing. A key that
   * Stripe has pruned is caught by the ledger look, which always comes first.
   */
  async #credit(rec: CreditRecord, source: Caller["kind"]): Promise<Outcome> {
    for (let write = 0; write < MAX_WRITES_PER_ATTEMPT; write++) {
      if (rec.credit_write === "sent") {
        const found = await this.#findLedgerEntry(rec);
        if (found === "unavailable") return this.#retryLater(rec, "ledger: unavailable");
        if (found) return this.#recordCredited(found, source, "ledger");
      } else {
        rec = this.#store.update({ credit_write: "sent" });
      }
      const key = creditKey(rec.payment_intent_id, rec.credit_attempt);
      let failure: StripeFailure;
      try {
        this.#calls++;
        const tx = await this.#client.customers.createBalanceTransaction(
          rec.customer_id as string,
          creditParams(rec.payment_intent_id, rec.amount as number, rec.currency as string),
          { idempotencyKey: key },
        );
        return this.#recordCredited(tx, source, key);
      } catch (err) {
        failure = classifyStripeError(err);
      }
      this.#store.journal("credit", failure.kind, `${key}: ${failure.message}`);
      if (failure.kind === "permanent" || failure.kind === "not_found") {
        const stuck = this.#store.update({ state: "needs_attention", reason: `credit refused by Stripe: ${failure.message}`, last_error: failure.message, next_retry_at: null });
        await this.ctx.storage.deleteAlarm();
        await this.#report(stuck);
        logEvent("needs_attention", { payment_intent: stuck.payment_intent_id, reason: "credit_refused", error: failure.message });
        return { kind: "needs_attention", customer: rec.customer_id };
      }
      if (!(failure.kind === "ambiguous" && failure.replayed)) return this.#retryLater(rec, `credit: ${failure.message}`);
      // Stripe replayed a saved failure: this key's request has finished. If the ledger has
      // no entry for the PI, nothing was credited and the next key is safe.
      const found = await this.#findLedgerEntry(rec);
      if (found === "unavailable") return this.#retryLater(rec, `credit: ${failure.message}`);
      if (found) return this.#recordCredited(found, source, "ledger");
      rec = this.#store.update({ credit_attempt: rec.credit_attempt + 1, credit_write: "none", last_error: `credit: ${failure.message}` });
    }
    return this.#retryLater(rec, rec.last_error ?? "credit: no answer");
  }

  async #recordCredited(tx: LedgerEntry, by: string, via: string): Promise<Outcome> {
    const rec = this.#store.update({
      state: "credited",
      balance_transaction_id: tx.id,
      ending_balance: tx.ending_balance,
      credited_by: by,
      credited_at: Date.now(),
      last_error: null,
      next_retry_at: null,
      retry_count: 0,
    });
    this.#store.journal("credit", "done", `${via} → ${tx.id}`);
    if (rec.listed) await this.#report(rec);
    logEvent("credited", { payment_intent: rec.payment_intent_id, customer: rec.customer_id, amount: rec.amount, currency: rec.currency, balance_transaction: tx.id, by });
    return { kind: "credited", fresh: true };
  }

  /**
   * The ledger entry for this PI, if any, scanning the customer's balance transactions newest
   * first back to shortly before the intent was recorded (bounded).
   */
  async #findLedgerEntry(rec: Pick<CreditRecord, "payment_intent_id" | "customer_id" | "created_at">, sinceSeconds?: number): Promise<LedgerEntry | null | "unavailable"> {
    const since = sinceSeconds ?? Math.floor(rec.created_at / 1000) - LEDGER_SLACK_SECONDS;
    let startingAfter: string | undefined;
    const matches: Stripe.CustomerBalanceTransaction[] = [];
    try {
      for (let page = 0; page < LEDGER_MAX_PAGES; page++) {
        this.#calls++;
        const list = await this.#client.customers.listBalanceTransactions(rec.customer_id as string, {
          limit: 100,
          ...(startingAfter ? { starting_after: startingAfter } : {}),
        });
        matches.push(...list.data.filter((tx) => tx.metadata?.payment_intent === rec.payment_intent_id));
        const last = list.data.at(-1);
        if (!list.has_more || !last || last.created < since) break;
        startingAfter = last.id;
      }
    } catch (err) {
      const failure = classifyStripeError(err);
      this.#store.journal("ledger", failure.kind, failure.message);
      return "unavailable";
    }
    if (matches.length > 1) {
      // More than one entry for one PI means something outside this object credited it too.
      logEvent("duplicate_ledger_entries", { payment_intent: rec.payment_intent_id, ids: matches.map((m) => m.id) });
    }
    const oldest = matches.at(-1);
    this.#store.journal("ledger", oldest ? "found" : "none", oldest?.id ?? null);
    return oldest ? { id: oldest.id, ending_balance: oldest.ending_balance ?? 0 } : null;
  }

  /**
   * A PI marked credited with no local record: it was credited by another system (or this
   * record was lost). Find its ledger entry instead of crediting again; without one, stop and
   * ask an operator rather than guess.
   */
  async #adoptCreditedElsewhere(paymentIntentId: string, customer: string, amount: number, currency: string): Promise<Outcome> {
    const probe = { payment_intent_id: paymentIntentId, customer_id: customer, created_at: Date.now() };
    const found = await this.#findLedgerEntry(probe, 0);
    if (found === "unavailable") return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer };
    if (found) {
      this.#store.insert(paymentIntentId, "credited", {
        customer_id: customer,
        amount,
        currency,
        credit_write: "sent",
        mark_state: "done",
        balance_transaction_id: found.id,
        ending_balance: found.ending_balance,
        credited_by: "ledger",
        credited_at: Date.now(),
      });
      return { kind: "credited", fresh: false };
    }
    const stuck = this.#store.insert(paymentIntentId, "needs_attention", {
      customer_id: customer,
      amount,
      currency,
      mark_state: "done",
      reason: CREDITED_ELSEWHERE,
    });
    await this.#report(stuck);
    logEvent("needs_attention", { payment_intent: paymentIntentId, reason: "credited_without_ledger_entry" });
    return { kind: "needs_attention", customer };
  }

  async #retryLater(rec: CreditRecord, error: string): Promise<Outcome> {
    const next = this.#store.update({ last_error: error, retry_count: rec.retry_count + 1 });
    const delay = await this.#schedule(next);
    await this.#report(this.#store.load() ?? next);
    return { kind: "unavailable", retryAfterSeconds: Math.max(1, Math.ceil(delay / 1000)), customer: rec.customer_id };
  }

  /**
   * Keeps the operator registry in step: listed while waiting for a retry or an operator,
   * removed once credited. Best effort: the record here is the truth, and the operator view
   * re-checks entries against it.
   */
  async #report(rec: CreditRecord): Promise<void> {
    const registry = this.env.CREDIT_REGISTRY.get(this.env.CREDIT_REGISTRY.idFromName(REGISTRY_NAME));
    try {
      if (rec.state === "credited" && rec.mark_state === "done") {
        await registry.remove(rec.payment_intent_id);
        this.#store.update({ listed: 0 });
      } else {
        await registry.upsert({
          payment_intent_id: rec.payment_intent_id,
          state: rec.state === "credited" ? "credited_mark_pending" : rec.state,
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

  /** Arms the alarm with capped, jittered backoff; returns the delay in ms. */
  async #schedule(rec: CreditRecord): Promise<number> {
    const delay = backoffMs(rec.retry_count);
    const at = Date.now() + delay;
    this.#store.update({ next_retry_at: at });
    await this.ctx.storage.setAlarm(at);
    return delay;
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

function outcomeOfFinal(rec: CreditRecord, fresh: boolean): Outcome {
  switch (rec.state) {
    case "credited":
      return { kind: "credited", fresh };
    case "not_creditable":
      return { kind: "not_creditable", reason: rec.reason ?? "not_creditable", customer: rec.customer_id };
    case "needs_attention":
      return { kind: "needs_attention", customer: rec.customer_id };
    case "verified":
      return { kind: "unavailable", retryAfterSeconds: READ_RETRY_AFTER_SECONDS, customer: rec.customer_id };
  }
}
