// Auto-recharge inside the account object: started by the wallet write that leaves `available`
// below the threshold, in that write's own transaction (`onEntry`), so 200 concurrent debits
// across the threshold start exactly one recharge: the object runs one transaction at a time and
// the first records the recharge the others then see open. Everything after is `run`, from the
// alarm (or at once after the write): create the PaymentIntent under `recharge:{account}:{n}`,
// hand a paid one to its PaymentIntent object (which credits it like any top-up, exactly once
// whoever gets there first), cancel one left unauthenticated for a day, save a card. A recharge
// closes when its credit reaches the wallet, by whatever path (the PaymentIntent object's
// report, the sync taking it in from Stripe): the same observer sees the entry.

import type { Outbox } from "../events/outbox.js";
import { rechargeDisabledEvent, rechargeEvent } from "../events/recharge-events.js";
import type { MoneyFact } from "../metrics/facts.js";
import { backoffMs } from "../objects/backoff.js";
import type { StripeGateway } from "../stripe/gateway.js";
import type { EntryRow, WalletRow } from "../wallet/schema.js";
import type { AutoRechargeView, ConfigureOutcome, RechargeSettings } from "./contract.js";
import { ACTION_WINDOW_MS, GIVE_UP_MS, MAX_CONSECUTIVE_FAILURES, monthOf, shouldRecharge } from "./rules.js";
import type { RechargeRow } from "./schema.js";
import { SavedCards } from "./cards.js";
import { RechargeStore } from "./store.js";
import { rechargeView } from "./view.js";

/** A recharge's PaymentIntent as Stripe showed it; `lastError`: why its last payment attempt failed. */
type PaymentIntentSeen = { id: string; status: string; client_secret: string | null; lastError?: { code: string | null; decline_code: string | null } | null };

export interface RechargeHost {
  /** The account's SQL with the wallet's and auto-recharge's tables in place. */
  tables: () => SqlStorage;
  atomically: <T>(fn: () => T) => T;
  wallet: () => WalletRow | null;
  /** Whether the wallet holds the credit of this PaymentIntent. */
  credited: (paymentIntentId: string) => boolean;
  outbox: Outbox;
  stripe: () => Pick<StripeGateway, "paymentIntents">;
  /** Tells the PaymentIntent object its payment succeeded; true once it has that durably (it then credits on its own). */
  handOver: (paymentIntentId: string) => Promise<boolean>;
  /** Files the card under the account, where `payment_method.detached` finds it. */
  indexCard: (paymentMethod: string, accountId: string) => Promise<void>;
  /** After work that may have produced events or moved due times: the wallet's alarm and send. */
  settle: () => Promise<void>;
  defaultCurrency: () => string;
  log: (event: string, fields: Record<string, unknown>) => void;
  record: (fact: MoneyFact) => void;
}

export class AutoRecharge {
  readonly store: RechargeStore;
  readonly cards: SavedCards;
  #running: Promise<void> | null = null;

  constructor(private readonly host: RechargeHost) {
    this.store = new RechargeStore(host.tables);
    this.cards = new SavedCards(this.store, host);
  }

  /** Called for every wallet line, inside its transaction: a recharge's credit closes it, a top-up's saves its card, a low balance starts one. */
  onEntry(entry: EntryRow, after: WalletRow): void {
    const now = Date.now();
    if (entry.kind === "top_up" && entry.payment_intent_id) {
      this.store.saveDue(entry.payment_intent_id, now);
      const rec = this.store.byPaymentIntent(entry.payment_intent_id);
      if (rec && isOpen(rec)) this.#succeeded(rec, after, now);
    }
    this.consider(after, now);
  }

  /** Starts a recharge if the rails allow one now (call inside the transaction that left `wallet` as it is). */
  consider(wallet: WalletRow, now = Date.now()): RechargeRow | null {
    const config = this.store.config();
    const settings = this.store.settings(config);
    const verdict = shouldRecharge({
      settings,
      card: config?.payment_method ?? null,
      available: wallet.available,
      open: this.store.open() !== null,
      lastFailureAt: config?.last_failure_at ?? null,
      monthTotal: this.store.monthTotal(monthOf(now)),
      now,
    });
    if (!verdict.start || !settings || !config?.payment_method) return null;
    const rec = this.store.start(
      {
        amount: settings.amount,
        currency: wallet.currency ?? this.host.defaultCurrency(),
        customer_id: wallet.customer_id,
        payment_method: config.payment_method,
        month: monthOf(now),
      },
      now,
    );
    this.host.log("recharge_started", { account: wallet.account_id, recharge: rec.n, amount: rec.amount, available: wallet.available });
    return rec;
  }

  /** The user's settings; turning it on needs a saved card. May start a recharge at once. Call inside a transaction. */
  configure(settings: RechargeSettings): ConfigureOutcome {
    if (settings.enabled && !this.store.config()?.payment_method) return { ok: false, reason: "no_saved_card" };
    this.store.saveSettings(settings);
    const wallet = this.host.wallet();
    if (wallet) this.consider(wallet);
    return { ok: true, view: this.view() };
  }

  /** Stripe detached the card: forgotten, and auto-recharge switched off if it was on. True if it was the saved card. */
  forgetCard(paymentMethod: string): boolean {
    const config = this.store.config();
    if (config?.payment_method !== paymentMethod) return false;
    this.store.clearCard();
    const wallet = this.host.wallet();
    if (config.enabled === 1 && wallet) this.#disable(wallet.account_id, "card_removed");
    return true;
  }

  view(): AutoRechargeView {
    return rechargeView(this.store, this.host.wallet(), this.host.defaultCurrency(), Date.now());
  }

  /** When the next step is due (the wallet's alarm covers it). */
  dueAt(): number | null {
    return this.store.dueAt();
  }

  /** Runs every step that is due, one run at a time (concurrent callers share it). */
  run(): Promise<void> {
    this.#running ??= this.#run().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #run(): Promise<void> {
    const wallet = this.host.wallet();
    if (!wallet) return;
    // Each step may make the next one due at once (a paid recharge is handed over); a few rounds cover a chain.
    for (let round = 0; round < 4; round++) {
      const now = Date.now();
      const rec = this.store.open();
      if (rec && rec.due_at !== null && rec.due_at <= now) await this.#step(rec, wallet.account_id);
      else if (!(await this.cards.saveDue(wallet, now))) break;
    }
    await this.host.settle();
  }

  async #step(rec: RechargeRow, accountId: string): Promise<void> {
    if (rec.status === "pending") return this.#create(rec, accountId);
    if (rec.status === "processing") return this.#handOver(rec);
    if (rec.status === "action_required") return this.#expire(rec, accountId);
  }

  async #create(rec: RechargeRow, accountId: string): Promise<void> {
    const { store } = this;
    // Never sent: nothing exists at Stripe, so settings changed since it was recorded still stop
    // it: turned off, or a monthly limit lowered below what the month would then have recharged.
    if (rec.sent === 0) {
      const settings = store.settings();
      const stop = !settings?.enabled ? "disabled" : store.monthTotal(rec.month) > settings.monthly_limit ? "monthly_limit" : null;
      if (stop) {
        this.#write(() => store.update(rec.n, { status: "canceled", code: stop, due_at: null }));
        return;
      }
    }
    const sending = this.#write(() => store.update(rec.n, { sent: 1, tries: rec.tries + 1 }));
    const made = await this.host.stripe().paymentIntents.createRecharge({
      accountId,
      n: rec.n,
      customerId: rec.customer_id,
      paymentMethod: rec.payment_method,
      amount: rec.amount,
      currency: rec.currency,
    });
    if (made.ok) return this.#answered(rec.n, made.value);
    const f = made.failure;
    this.host.log("recharge_create_failed", { account: accountId, recharge: rec.n, error: f.message, decline_code: f.declineCode });
    if (f.code === "authentication_required" && f.paymentIntent) return this.#answered(rec.n, { ...f.paymentIntent, status: "requires_action" });
    if (f.rawType === "card_error" || f.kind === "permanent" || f.kind === "not_found") {
      // idempotency_error cannot come from parameters fixed at the start; were it to, the key's first request stands: look for it.
      if (f.rawType !== "idempotency_error") return this.#failed(rec.n, f.code ?? f.rawType ?? "refused", f.declineCode, f.paymentIntent?.id ?? null, true);
    }
    const now = Date.now();
    // A saved 500 replays for the key's whole life, and a key older than a day may be forgotten:
    // either way only Stripe's list can say whether the PaymentIntent exists.
    if (f.replayed || f.rawType === "idempotency_error" || now - rec.created_at >= GIVE_UP_MS) return this.#lookUp(sending, accountId, f.message);
    this.#write(() => store.update(rec.n, { due_at: now + backoffMs(sending.tries), last_error: f.message }));
  }

  async #lookUp(rec: RechargeRow, accountId: string, error: string): Promise<void> {
    const found = await this.host.stripe().paymentIntents.findRecharge(rec.customer_id, accountId, rec.n);
    if (found.ok && found.value) {
      const pi = found.value;
      const error = pi.last_payment_error;
      return this.#answered(rec.n, {
        id: pi.id,
        status: pi.status,
        client_secret: pi.client_secret ?? null,
        lastError: error ? { code: error.code ?? null, decline_code: error.decline_code ?? null } : null,
      });
    }
    if (found.ok) return this.#failed(rec.n, "stripe_unavailable", null, null, false, error);
    this.#write(() => this.store.update(rec.n, { due_at: Date.now() + backoffMs(rec.tries), last_error: error }));
  }

  /** What Stripe said the recharge's PaymentIntent is. */
  #answered(n: number, pi: PaymentIntentSeen): void {
    const now = Date.now();
    this.#write(() => {
      const rec = this.store.update(n, { payment_intent_id: pi.id, last_error: null }, now);
      const wallet = this.host.wallet();
      // Its credit may have reached the wallet first (the webhook credited it while the answer was lost).
      if (this.host.credited(pi.id) && wallet) return this.#succeeded(rec, wallet, now);
      // A PaymentIntent back at requires_payment_method was declined, unless the bank asked for authentication.
      const declined = pi.status === "requires_payment_method" && pi.lastError && pi.lastError.code !== "authentication_required";
      if (pi.status === "succeeded" || pi.status === "processing") {
        this.store.update(n, { status: "processing", due_at: now }, now);
      } else if (declined) {
        this.#failed(n, pi.lastError?.code ?? "card_declined", pi.lastError?.decline_code ?? null, pi.id, true);
      } else if (pi.status === "requires_action" || pi.status === "requires_payment_method" || pi.status === "requires_confirmation") {
        const expires = now + ACTION_WINDOW_MS;
        const waiting = this.store.update(n, { status: "action_required", client_secret: pi.client_secret, expires_at: expires, due_at: expires }, now);
        if (wallet) this.host.outbox.add(rechargeEvent("recharge.action_required", waiting, wallet.account_id, this.#failures()));
      } else {
        this.#failed(n, pi.status, null, pi.id, true);
      }
    });
  }

  async #handOver(rec: RechargeRow): Promise<void> {
    const pi = rec.payment_intent_id as string;
    const told = await this.host.handOver(pi).catch(() => false);
    this.#write(() => {
      const now = Date.now();
      const current = this.store.get(rec.n);
      if (current?.status !== "processing") return;
      if (told) this.store.update(rec.n, { handed: 1, due_at: null }, now);
      else this.store.update(rec.n, { tries: current.tries + 1, due_at: now + backoffMs(current.tries + 1) }, now);
    });
  }

  /** Nobody authenticated the payment within a day: cancelled, and counted as a failure. */
  async #expire(rec: RechargeRow, accountId: string): Promise<void> {
    const pi = rec.payment_intent_id as string;
    const gateway = this.host.stripe().paymentIntents;
    const cancelled = await gateway.cancelRecharge(pi, accountId, rec.n);
    let status = cancelled.ok ? cancelled.value.status : null;
    // Refused (completed at the last moment, or cancelled already), or an answer lost or saved as
    // a 500 that every retry of the key replays: the PaymentIntent itself says where it is.
    if (!cancelled.ok) {
      const read = await gateway.retrieve(pi);
      if (read.ok) status = read.value.status;
    }
    if (status === "succeeded") return this.#answered(rec.n, { id: pi, status, client_secret: null });
    if (status === "canceled") return this.#failed(rec.n, "authentication_required", null, pi, true, "not authenticated in time");
    const error = cancelled.ok ? `still ${cancelled.value.status}` : cancelled.failure.message;
    this.#write(() => this.store.update(rec.n, { tries: rec.tries + 1, due_at: Date.now() + backoffMs(rec.tries + 1), last_error: error }));
  }

  #failed(n: number, code: string, declineCode: string | null, paymentIntentId: string | null, counted: boolean, error: string | null = null): void {
    this.#write(() => {
      const now = Date.now();
      const rec = this.store.update(
        n,
        { status: "failed", code, decline_code: declineCode, payment_intent_id: paymentIntentId, client_secret: null, due_at: null, last_error: error },
        now,
      );
      const wallet = this.host.wallet();
      if (!wallet) return;
      const failures = counted ? this.store.noteFailure(now) : this.#failures();
      this.host.outbox.add(rechargeEvent("recharge.failed", rec, wallet.account_id, failures));
      this.host.log("recharge_failed", { account: wallet.account_id, recharge: n, code, decline_code: declineCode, failures });
      if (counted && failures >= MAX_CONSECUTIVE_FAILURES && this.store.config()?.enabled === 1) this.#disable(wallet.account_id, "declined");
    });
  }

  #succeeded(rec: RechargeRow, wallet: WalletRow, now: number): void {
    const done = this.store.update(rec.n, { status: "succeeded", client_secret: null, due_at: null }, now);
    this.store.resetFailures();
    this.host.outbox.add(rechargeEvent("recharge.succeeded", done, wallet.account_id, 0));
    this.host.log("recharge_succeeded", { account: wallet.account_id, recharge: rec.n, payment_intent: rec.payment_intent_id });
    this.host.record({ name: "recharge", amount: rec.amount, currency: rec.currency });
  }

  #disable(accountId: string, reason: "declined" | "card_removed"): void {
    const revision = this.store.disable(reason);
    this.host.outbox.add(rechargeDisabledEvent(accountId, reason, revision, this.#failures()));
    this.host.log("recharge_disabled", { account: accountId, reason });
  }

  #failures(): number {
    return this.store.config()?.failures ?? 0;
  }

  #write<T>(fn: () => T): T {
    return this.host.atomically(fn);
  }
}

function isOpen(rec: RechargeRow): boolean {
  return rec.status === "pending" || rec.status === "processing" || rec.status === "action_required";
}
