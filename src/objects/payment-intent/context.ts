// What every part of the PaymentIntent object works with: its record (store), Stripe (the
// gateway, counted against the attempt in flight), the exactly-once ledger writer, its alarm,
// and the settings. Built once per object instance (object.ts).

import type { CreditRecord } from "../../credit/contract.js";
import type { Env } from "../../env.js";
import { Outbox, queueSender } from "../../events/outbox.js";
import { logEvent } from "../../log.js";
import { settings, type Settings } from "../../settings.js";
import { StripeGateway } from "../../stripe/gateway.js";
import { LedgerWriter } from "../../stripe/ledger-write.js";
import { backoffMs } from "../backoff.js";
import { CreditStore } from "./store.js";

export interface CreditContext {
  readonly env: Env;
  readonly settings: Settings;
  readonly store: CreditStore;
  readonly stripe: StripeGateway;
  readonly ledger: LedgerWriter;
  readonly alarm: Alarm;
  /** Events this object produced (credit.needs_attention), until the EVENTS queue has them. */
  readonly outbox: Outbox;
}

/**
 * The context of one object instance. Env-derived parts are read through `envOf()` at each use
 * and cached per env object, so an env handed in later (a test's override) takes effect at once.
 * `onCall` is told of every Stripe request.
 */
export function creditContext(storage: DurableObjectStorage, envOf: () => Env, onCall: () => void): CreditContext {
  const store = new CreditStore(storage);
  const outbox = new Outbox(storage, (events) => queueSender(envOf().EVENTS)(events), logEvent);
  let cached: { env: Env; stripe: StripeGateway; ledger: LedgerWriter } | null = null;
  const current = () => {
    const env = envOf();
    if (cached?.env !== env) {
      const stripe = new StripeGateway(env, { onCall });
      cached = { env, stripe, ledger: new LedgerWriter(stripe.balanceTransactions, (step, outcome, detail) => store.journal(step, outcome, detail)) };
    }
    return cached;
  };
  return {
    get env() {
      return envOf();
    },
    get settings() {
      return settings(envOf());
    },
    get stripe() {
      return current().stripe;
    },
    get ledger() {
      return current().ledger;
    },
    store,
    alarm: new Alarm(storage, store, outbox),
    outbox,
  };
}

/**
 * Armed when the intent is recorded, before the first Stripe write: if the object dies
 * mid-protocol (eviction, deploy, crash), this alarm finishes the credit with no caller.
 */
export const WATCHDOG_MS = 30_000;

/** The object's one alarm: when it next finishes owed work on its own. */
export class Alarm {
  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly store: CreditStore,
    private readonly outbox: Outbox,
  ) {}

  /** Work is owed and nothing failed: run it as soon as the platform can. */
  now(): Promise<void> {
    return this.storage.setAlarm(Date.now());
  }

  /** The watchdog, armed before a Stripe write: a crash from here on is finished with no caller. */
  watchdog(): Promise<void> {
    return this.storage.setAlarm(Date.now() + WATCHDOG_MS);
  }

  /** Capped, jittered backoff after `rec.retry_count` failures, recorded on the record; the delay in ms. */
  async backoff(rec: CreditRecord): Promise<number> {
    const delay = backoffMs(rec.retry_count);
    const at = Date.now() + delay;
    this.store.update({ next_retry_at: at });
    await this.storage.setAlarm(at);
    return delay;
  }

  /** After `attempts` tries of something with no record to count them on (a webhook's notice). */
  after(attempts: number): Promise<void> {
    return this.storage.setAlarm(Date.now() + backoffMs(attempts));
  }

  /**
   * Set for `at` without reading it first, so that the call leaves with the write just before it
   * and the two are stored together (no crash between them). It may move a sooner alarm to `at`;
   * that run arms whatever else is owed (ensureArmed).
   */
  cover(at: number): Promise<void> {
    return this.storage.setAlarm(at);
  }

  /** Armed for `at` unless it already runs sooner. */
  async by(at: number): Promise<void> {
    const due = await this.storage.getAlarm();
    if (due === null || due > at) await this.storage.setAlarm(at);
  }

  /** Nothing more to do for the record; an alarm stays only for events not yet sent. */
  clear(): Promise<void> {
    const due = this.outbox.dueAt();
    return due === null ? this.storage.deleteAlarm() : this.storage.setAlarm(due);
  }

  async armed(): Promise<boolean> {
    return (await this.storage.getAlarm()) !== null;
  }

  /** Armed to run now, unless it already runs sooner. */
  async soon(): Promise<void> {
    const due = await this.storage.getAlarm();
    if (due === null || due > Date.now()) await this.storage.setAlarm(Date.now());
  }
}
