// Bringing Stripe up to date behind the wallet, and the wallet up to date with Stripe.
//
// Spending is written to the customer's Stripe balance in batches: one balance transaction per
// batch, recorded (which entries, how much) before it is sent, under the key
// `wallet-debits:{customer}:{n}`, with the credit's write protocol (ledger-write.ts): a ledger
// look before any new key, so each batch lands exactly once through crashes and Stripe faults.
// Then the intake reads the ledger back to where the last one stopped and takes in what the
// wallet has not applied: entries made elsewhere (an invoice that used the balance, a Dashboard
// adjustment) and credits whose report has not arrived yet. Entries are applied by their Stripe
// id, so an entry reported twice, or reported and taken in, counts once.

import type Stripe from "stripe";
import { LedgerWriter } from "../objects/ledger-write.js";
import { classifyStripeError } from "../stripe/errors.js";
import { attemptKey } from "../stripe/keys.js";
import { stripeEntry, type WalletLedger } from "./ledger.js";
import type { BatchRow } from "./schema.js";

/** How far before a batch, or before the last intake, the ledger is read (clock skew, Stripe's list lag). */
const SLACK_SECONDS = 3600;

export type SyncOutcome = { kind: "synced"; batches: number; taken: number } | { kind: "failed"; error: string };

export interface SyncDeps {
  ledger: WalletLedger;
  stripe: Stripe;
  accountId: string;
  /** Each spending entry its own Stripe write (STRIPE_SYNC_SECONDS = 0), as the older server did. */
  single: boolean;
  log: (event: string, fields: Record<string, unknown>) => void;
}

/** `wallet-debits:{customer}:{n}`: batch n of a customer's spending. */
export function batchKey(customerId: string, n: number, attempt: number): string {
  return attemptKey(`wallet-debits:${customerId}:${n}`, attempt);
}

/** The balance transaction that is batch n: identical on every attempt. Positive: it takes credit away. */
export function batchParams(accountId: string, batch: Pick<BatchRow, "n" | "amount" | "currency" | "entries">): Stripe.CustomerCreateBalanceTransactionParams {
  return {
    amount: batch.amount,
    currency: batch.currency,
    description: `Credit used (${batch.entries} ${batch.entries === 1 ? "charge" : "charges"})`,
    metadata: { wallet_batch: String(batch.n), account_id: accountId },
  };
}

/** Writes every batch owed, then takes in Stripe's entries the wallet has not applied. */
export async function syncWallet(deps: SyncDeps, now: () => number): Promise<SyncOutcome> {
  const { ledger, accountId } = deps;
  const wallet = ledger.row();
  if (!wallet) return { kind: "synced", batches: 0, taken: 0 };
  const customerId = wallet.customer_id;
  const writer = new LedgerWriter(
    deps.stripe,
    (step, outcome, detail) => deps.log("wallet_sync_step", { account: accountId, step, outcome, detail }),
    () => undefined,
  );
  let batches = 0;
  for (;;) {
    const batch = ledger.pendingBatch() ?? ledger.cutBatch(deps.single, now());
    if (!batch) break;
    const result = await writer.write(
      {
        customerId,
        keyBase: batchKey(customerId, batch.n, 1),
        params: batchParams(accountId, batch),
        matches: (tx) => tx.metadata?.wallet_batch === String(batch.n) && tx.metadata?.account_id === accountId,
        sinceSeconds: Math.floor(batch.created_at / 1000) - SLACK_SECONDS,
        attempt: batch.attempt,
        sent: batch.sent === 1,
        save: ({ attempt, sent }) => ledger.saveBatch(batch.n, { attempt, sent: sent ? 1 : 0 }),
      },
      "batch",
    );
    if (result.kind === "refused") {
      // Stripe refused this key's request, so it finished without writing; Stripe may have saved
      // the refusal under the key, which would refuse every retry with it. The next try looks at
      // the ledger first ("sent"), then writes under the next key. The spending happened; only
      // the mirror waits, and an operator sees why in the log.
      const attempt = ledger.pendingBatch()?.attempt ?? batch.attempt;
      ledger.saveBatch(batch.n, { attempt: attempt + 1, sent: 1, last_error: result.error });
      deps.log("wallet_sync_refused", { account: accountId, batch: batch.n, error: result.error });
      return { kind: "failed", error: result.error };
    }
    if (result.kind !== "done") {
      ledger.saveBatch(batch.n, { last_error: result.error });
      deps.log("wallet_sync_failed", { account: accountId, batch: batch.n, error: result.error });
      return { kind: "failed", error: result.error };
    }
    ledger.finishBatch(batch.n, result.entry.id, now());
    deps.log("wallet_synced", { account: accountId, batch: batch.n, amount: batch.amount, entries: batch.entries, balance_transaction: result.entry.id });
    batches++;
  }
  return intake(deps, customerId, wallet.scan_since, now, batches);
}

/** Reads the ledger newest first back to `scanSince` (less the slack) and applies, oldest first, what the wallet lacks. */
async function intake(deps: SyncDeps, customerId: string, scanSince: number, now: () => number, batches: number): Promise<SyncOutcome> {
  const { ledger } = deps;
  const missing: Stripe.CustomerBalanceTransaction[] = [];
  const ownBatches = new Set(ledger.batches().map((b) => String(b.n)));
  let newest: number | null = null;
  try {
    for await (const tx of deps.stripe.customers.listBalanceTransactions(customerId, { limit: 100 })) {
      newest ??= tx.created;
      if (tx.created < scanSince - SLACK_SECONDS) break;
      // The wallet's own batches are its spending, already in the wallet. An entry that only
      // looks like one (another account's metadata, a batch never recorded here) is foreign.
      if (tx.metadata?.account_id === deps.accountId && ownBatches.has(tx.metadata.wallet_batch ?? "")) continue;
      if (!ledger.knowsStripe(tx.id)) missing.push(tx);
    }
  } catch (err) {
    const error = `intake: ${classifyStripeError(err).message}`;
    deps.log("wallet_sync_failed", { account: deps.accountId, error });
    return { kind: "failed", error };
  }
  let taken = 0;
  for (const tx of missing.reverse()) {
    const applied = ledger.applyStripe(stripeEntry(tx));
    if (applied === "applied") taken++;
    if (applied === "currency") deps.log("wallet_currency_mismatch", { account: deps.accountId, balance_transaction: tx.id, currency: tx.currency });
  }
  if (taken > 0) deps.log("wallet_took_in", { account: deps.accountId, entries: taken });
  ledger.markSynced(now(), newest);
  return { kind: "synced", batches, taken };
}

/** The customer's whole Stripe ledger, newest first (the SDK pages through it), for opening a wallet. */
export async function readWholeLedger(stripe: Stripe, customerId: string): Promise<Stripe.CustomerBalanceTransaction[]> {
  const all: Stripe.CustomerBalanceTransaction[] = [];
  for await (const tx of stripe.customers.listBalanceTransactions(customerId, { limit: 100 })) all.push(tx);
  return all;
}
