// The wallet inside an account object: opening it from Stripe, spending, the reports of the
// PaymentIntent objects, and the alarm that expires holds, syncs to Stripe and forgets old
// Idempotency-Keys. The account object owns the Stripe customer and forwards its RPC calls here.
//
// Once the wallet is open, spending and reports are answered from storage alone. Opening reads
// the customer's whole Stripe ledger once in the account's lifetime (none for a customer this
// service just created); concurrent callers share that one read, because the object admits
// other calls while it awaits Stripe.

import type { Env } from "../env.js";
import { Outbox, queueSender } from "../events/outbox.js";
import { WalletEvents, type ThresholdView } from "../events/wallet-events.js";
import { backoffMs } from "../objects/backoff.js";
import type { CustomerLookup } from "../objects/contract.js";
import { settings } from "../settings.js";
import type { StripeGateway } from "../stripe/gateway.js";
import { AccountAlarm } from "./alarm.js";
import { WalletBatches } from "./batches.js";
import type { BalanceOutcome, LinesPage, ReportOutcome, SpendOutcome, SpendRequest, StripeEntryReport } from "./contract.js";
import { WalletLedger } from "./ledger.js";
import { expireHolds, replay, spend } from "./spend.js";
import { syncWallet } from "./sync.js";

type Opened = { kind: "open" } | { kind: "no_customer" } | { kind: "unavailable"; retryAfterSeconds: number };

/** Idempotency-Keys are kept at least 24 h (the contract); forgotten after 48. */
const KEEP_KEYS_MS = 48 * 3600_000;
const RETRY_AFTER_SECONDS = 2;

export interface WalletHost {
  storage: DurableObjectStorage;
  env: Env;
  /** The customer's balance ledger, and whose customer a customer is. */
  stripe: () => Pick<StripeGateway, "balanceTransactions" | "customers">;
  /** The account's customer (from storage, or Stripe's search). */
  customer: (accountId: string) => Promise<CustomerLookup>;
  /** Remembers a customer Stripe said belongs to the account. */
  adoptCustomer: (accountId: string, customerId: string) => void;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Tables the account keeps beside the wallet's (auto-recharge's), created with them. */
  schema?: readonly string[];
}

export class Wallet {
  readonly ledger: WalletLedger;
  readonly batches: WalletBatches;
  readonly outbox: Outbox;
  readonly events: WalletEvents;
  #opening: Promise<Opened> | null = null;
  #syncing: Promise<void> | null = null;
  readonly #alarm: AccountAlarm;

  constructor(private readonly host: WalletHost) {
    this.ledger = new WalletLedger(host.storage, host.schema);
    this.batches = new WalletBatches(this.ledger);
    this.outbox = new Outbox(host.storage, queueSender(host.env.EVENTS), host.log);
    this.events = new WalletEvents(
      () => this.ledger.tables(),
      this.outbox,
      () => {
        const { lowBalanceThreshold, spending } = settings(host.env).events;
        return { defaultThreshold: lowBalanceThreshold, spending };
      },
    );
    this.ledger.observe((entry, before, after) => this.events.onEntry(entry, before, after));
    this.#alarm = new AccountAlarm(host.storage);
    this.#alarm.add(() => this.ledger.row()?.sync_due_at ?? null);
    this.#alarm.add(() => this.ledger.nextHoldExpiry());
    this.#alarm.add(() => this.#oldestKeyExpiry());
    this.#alarm.add(() => this.outbox.dueAt());
  }

  /** Adds work the alarm must cover: `dueAt` answers when it is next due (null: nothing). */
  schedule(dueAt: () => number | null): void {
    this.#alarm.add(dueAt);
  }

  /** Opens an empty wallet for a customer this service has just created: it has no ledger to read. */
  openNew(accountId: string, customerId: string): void {
    this.ledger.open(accountId, customerId, [], Date.now());
  }

  /** The wallet, open: from storage, or once per account from the customer's Stripe ledger. */
  async ensureOpen(accountId: string): Promise<Opened> {
    if (this.ledger.row()) return { kind: "open" };
    this.#opening ??= this.#open(accountId).finally(() => {
      this.#opening = null;
    });
    return this.#opening;
  }

  async #open(accountId: string): Promise<Opened> {
    const customer = await this.host.customer(accountId);
    if (!customer.ok)
      return customer.reason === "no_customer" ? { kind: "no_customer" } : { kind: "unavailable", retryAfterSeconds: customer.retryAfterSeconds };
    const read = await this.host.stripe().balanceTransactions.all(customer.customerId);
    if (!read.ok) {
      this.host.log("wallet_open_failed", { account: accountId, error: read.failure.message });
      return { kind: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
    }
    const ledger = read.value;
    this.ledger.open(accountId, customer.customerId, ledger, Date.now());
    this.host.log("wallet_opened", { account: accountId, customer: customer.customerId, entries: ledger.length, available: this.ledger.row()?.available ?? 0 });
    return { kind: "open" };
  }

  /** A debit, hold, capture or release. Replays need no open wallet; everything else opens it first. */
  async spend(accountId: string, request: SpendRequest, key: string, fingerprint: string): Promise<SpendOutcome> {
    const kept = replay(this.ledger, key, fingerprint);
    if (kept) return kept;
    const opened = await this.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { kind: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    const now = Date.now();
    const accepted = settings(this.host.env).topUps.currencies;
    // Spending owed to Stripe and its sync's due time land together: an owed debit with no sync due would wait for the next one.
    const outcome = this.ledger.atomically(() => {
      const spent = spend(this.ledger, request, key, fingerprint, { accountId, now, accepted });
      if (spent.kind === "result" && spent.result.ok && !spent.replayed && (spent.result.op === "debit" || spent.result.op === "capture")) this.#owe(now);
      return spent;
    });
    await this.settle();
    return outcome;
  }

  /**
   * Applies the entries a PaymentIntent object wrote; answers ok once they are durable here.
   * Only this account's money: the reported customer must be the account's customer, and a
   * customer not known here yet is adopted only if Stripe says it belongs to this account
   * (`metadata.account_id`), so a PaymentIntent whose metadata names the wrong account can
   * never tie this wallet to someone else's balance.
   */
  async applyReports(accountId: string, reports: StripeEntryReport[]): Promise<ReportOutcome> {
    const first = reports[0];
    if (!first) return { ok: true };
    if (reports.some((r) => r.customer_id !== first.customer_id)) return { ok: false, reason: "wrong_account" };
    if (!this.ledger.row()) {
      const known = await this.host.customer(accountId);
      if (!known.ok && known.reason === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: known.retryAfterSeconds };
      if (known.ok && known.customerId !== first.customer_id) return this.#wrongAccount(accountId, first);
      if (!known.ok) {
        // Stripe's search lags writes, so "no customer" may only mean "not indexed yet": ask Stripe
        // whose customer this is before adopting it.
        const owner = await this.host.stripe().customers.ownerOf(first.customer_id);
        if (owner.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: RETRY_AFTER_SECONDS };
        if (owner.kind !== "account" || owner.accountId !== accountId) return this.#wrongAccount(accountId, first);
        this.host.adoptCustomer(accountId, first.customer_id);
      }
    }
    const opened = await this.ensureOpen(accountId);
    if (opened.kind !== "open")
      return { ok: false, reason: "unavailable", retryAfterSeconds: opened.kind === "unavailable" ? opened.retryAfterSeconds : RETRY_AFTER_SECONDS };
    if (this.ledger.row()?.customer_id !== first.customer_id) return this.#wrongAccount(accountId, first);
    // The reports are durable together: "ok" tells the PaymentIntent object it may forget all of them.
    this.ledger.atomically(() => {
      for (const r of reports) {
        const applied = this.ledger.applyStripe({
          kind: r.kind,
          amount: -r.amount,
          currency: r.currency,
          stripe_tx: r.balance_transaction_id,
          payment_intent_id: r.payment_intent_id,
          description: r.description,
          created_at: r.created * 1000,
        });
        if (applied === "known") this.events.announce(r.balance_transaction_id);
        if (applied === "currency")
          this.host.log("wallet_currency_mismatch", { account: accountId, balance_transaction: r.balance_transaction_id, currency: r.currency });
      }
    });
    await this.settle();
    return { ok: true };
  }

  #wrongAccount(accountId: string, report: StripeEntryReport): ReportOutcome {
    this.host.log("wallet_report_refused", { account: accountId, customer: report.customer_id, balance_transaction: report.balance_transaction_id });
    return { ok: false, reason: "wrong_account" };
  }

  async balance(accountId: string, fallbackCurrency: string): Promise<BalanceOutcome> {
    const opened = await this.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    await this.#expireDue();
    const syncedAt = this.ledger.row()?.synced_at ?? null;
    return { ok: true, balance: this.ledger.balance(fallbackCurrency), stripe_synced_at: syncedAt === null ? null : new Date(syncedAt).toISOString() };
  }

  async lines(accountId: string, limit: number, cursor: string | null): Promise<LinesPage> {
    const opened = await this.ensureOpen(accountId);
    if (opened.kind === "unavailable") return { ok: false, reason: "unavailable", retryAfterSeconds: opened.retryAfterSeconds };
    await this.#expireDue();
    const page = this.ledger.lines(limit, cursor);
    if (!page) return { ok: false, reason: "bad_cursor" };
    return { ok: true, ...page, next_cursor: page.has_more ? (page.data.at(-1)?.id ?? null) : null };
  }

  /** Releases holds whose time is up before a read shows them (the alarm may not have run yet). */
  async #expireDue(): Promise<void> {
    if (expireHolds(this.ledger, Date.now()) > 0) await this.settle();
  }

  /** Sets the account's low-balance threshold (null: the default); an outstanding low alert may be answered at once. */
  async setThreshold(value: number | null): Promise<ThresholdView> {
    const view = this.ledger.atomically(() => this.events.setThreshold(value, this.ledger.row()));
    await this.settle();
    return view;
  }

  /**
   * After a write: the alarm first (it covers the events the write produced, should the object
   * die before they are sent), then the send, then the alarm settled on what is left (a failed
   * send keeps one for its backoff; a sent one needs none).
   */
  async settle(): Promise<void> {
    await this.arm();
    if (this.outbox.waiting() === 0) return;
    await this.outbox.flush();
    await this.arm({ exact: true });
  }

  /** The alarm's work: expire holds, write owed spending to Stripe when due, forget old keys, send waiting events. */
  async alarm(): Promise<void> {
    const now = Date.now();
    expireHolds(this.ledger, now);
    this.ledger.forgetKeysBefore(now - KEEP_KEYS_MS);
    const due = this.ledger.row()?.sync_due_at ?? null;
    if (due !== null && due <= now) await this.sync();
    this.#alarm.fired();
    await this.settle();
  }

  /** Runs one sync (concurrent callers share it) and schedules the next try if it failed. */
  async sync(): Promise<void> {
    this.#syncing ??= this.#sync().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  async #sync(): Promise<void> {
    const wallet = this.ledger.row();
    if (!wallet) return;
    const outcome = await syncWallet(
      {
        ledger: this.ledger,
        batches: this.batches,
        stripe: this.host.stripe().balanceTransactions,
        accountId: wallet.account_id,
        single: this.#syncSeconds === 0,
        log: this.host.log,
      },
      () => Date.now(),
    );
    const now = Date.now();
    if (outcome.kind === "failed") {
      const retries = (this.ledger.row()?.sync_retries ?? 0) + 1;
      this.batches.setSyncDue(now + backoffMs(retries), { retries, error: outcome.error });
      return;
    }
    // Spending that arrived while the sync ran is due a full interval after now.
    this.batches.setSyncDue(this.batches.owedTotal() > 0 ? now + this.#syncSeconds * 1000 : null);
    // Entries taken in from Stripe may have produced events.
    await this.settle();
  }

  /** Owed spending: due within STRIPE_SYNC_SECONDS of the first unsynced debit. */
  #owe(now: number): void {
    const wallet = this.ledger.row();
    if (wallet && wallet.sync_due_at === null) this.batches.setSyncDue(now + this.#syncSeconds * 1000);
  }

  get #syncSeconds(): number {
    return settings(this.host.env).syncSeconds;
  }

  /** Sets the account's alarm to its earliest work (alarm.ts); `exact` settles it there, or clears it. */
  async arm(options: { exact?: boolean } = {}): Promise<void> {
    await this.#alarm.arm(options);
  }

  #oldestKeyExpiry(): number | null {
    const oldest = this.ledger.oldestKey();
    return oldest === null ? null : oldest + KEEP_KEYS_MS;
  }
}
