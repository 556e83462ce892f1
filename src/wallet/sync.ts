// Bringing Stripe up to date behind the wallet, and the wallet up to date with Stripe.
//
// Spending is written to the customer's Stripe balance in batches: one balance transaction per
// batch, recorded (which entries, how much) before it is sent, under the key
// `wallet-debits:{customer}:{n}`, with the credit's write protocol (src/stripe/ledger-write.ts): a ledger
// look before any new key, so each batch lands exactly once through crashes and Stripe faults.
// Then the intake reads the ledger back to where the last one stopped and takes in what the
// wallet has not applied: entries made elsewhere (an invoice that used the balance, a Dashboard
// adjustment) and credits whose report has not arrived yet. Entries are applied by their Stripe
// id, so an entry reported twice, or reported and taken in, counts once.

import type Stripe from "stripe";
import type { BalanceTransactions } from "../stripe/balance-transactions.js";
import { batchKey } from "../stripe/keys.js";
import { LEDGER_SLACK_SECONDS, LedgerWriter } from "../stripe/ledger-write.js";
import type { WalletBatches } from "./batches.js";
import { stripeEntry, type WalletLedger } from "./ledger.js";
import type { BatchRow } from "./schema.js";

export type SyncOutcome = { kind: "synced"; batches: number; taken: number } | { kind: "failed"; error: string };

export interface SyncDeps {
  ledger: WalletLedger;
  batches: WalletBatches;
  /** The customer's Stripe ledger. */
  stripe: BalanceTransactions;
  accountId: string;
  /** Each spending entry its own Stripe write (STRIPE_SYNC_SECONDS = 0), as the older server did. */
  single: boolean;
  log: (event: string, fields: Record<string, unknown>) => void;
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
  const { batches, accountId } = deps;
  const wallet = deps.ledger.row();
  if (!wallet) return { kind: "synced", batches: 0, taken: 0 };
  const customerId = wallet.customer_id;
  const writer = new LedgerWriter(deps.stripe, (step, outcome, detail) => deps.log("wallet_sync_step", { account: accountId, step, outcome, detail }));
  let written = 0;
  for (;;) {
    const batch = batches.pending() ?? batches.cut(deps.single, now());
    if (!batch) break;
    const result = await writer.write(
      {
        customerId,
        keyBase: batchKey(customerId, batch.n, 1),
        params: batchParams(accountId, batch),
        matches: (tx) => tx.metadata?.wallet_batch === String(batch.n) && tx.metadata?.account_id === accountId,
        sinceSeconds: Math.floor(batch.created_at / 1000) - LEDGER_SLACK_SECONDS,
        attempt: batch.attempt,
        sent: batch.sent === 1,
        save: ({ attempt, sent }) => batches.save(batch.n, { attempt, sent: sent ? 1 : 0 }),
      },
      "batch",
    );
    if (result.kind === "refused") {
      // Stripe refused this key's request, so it finished without writing; Stripe may have saved
      // the refusal under the key, which would refuse every retry with it. The next try looks at
      // the ledger first ("sent"), then writes under the next key. The spending happened; only
      // the mirror waits, and an operator sees why in the log.
      const attempt = batches.pending()?.attempt ?? batch.attempt;
      batches.save(batch.n, { attempt: attempt + 1, sent: 1, last_error: result.error });
      deps.log("wallet_sync_refused", { account: accountId, batch: batch.n, error: result.error });
      return { kind: "failed", error: result.error };
    }
    if (result.kind !== "done") {
      batches.save(batch.n, { last_error: result.error });
      deps.log("wallet_sync_failed", { account: accountId, batch: batch.n, error: result.error });
      return { kind: "failed", error: result.error };
    }
    batches.finish(batch.n, result.entry.id, now());
    deps.log("wallet_synced", { account: accountId, batch: batch.n, amount: batch.amount, entries: batch.entries, balance_transaction: result.entry.id });
    written++;
  }
  return intake(deps, customerId, wallet.scan_since, now, written);
}

/** Reads the ledger newest first back to `scanSince` (less the slack) and applies, oldest first, what the wallet lacks. */
async function intake(deps: SyncDeps, customerId: string, scanSince: number, now: () => number, written: number): Promise<SyncOutcome> {
  const { ledger } = deps;
  const missing: Stripe.CustomerBalanceTransaction[] = [];
  const ownBatches = new Set(deps.batches.all().map((b) => String(b.n)));
  let newest: number | null = null;
  const read = await deps.stripe.scan(customerId, (tx) => {
    newest ??= tx.created;
    if (tx.created < scanSince - LEDGER_SLACK_SECONDS) return "stop";
    // The wallet's own batches are its spending, already in the wallet. An entry that only
    // looks like one (another account's metadata, a batch never recorded here) is foreign.
    if (tx.metadata?.account_id === deps.accountId && ownBatches.has(tx.metadata.wallet_batch ?? "")) return "continue";
    if (!ledger.knowsStripe(tx.id)) missing.push(tx);
    return "continue";
  });
  if (!read.ok) {
    const error = `intake: ${read.failure.message}`;
    deps.log("wallet_sync_failed", { account: deps.accountId, error });
    return { kind: "failed", error };
  }
  // What was taken in and how far the next intake reads back: one change, so a crash keeps all or none of it.
  const taken = ledger.atomically(() => {
    let applied = 0;
    for (const tx of missing.reverse()) {
      const outcome = ledger.applyStripe(stripeEntry(tx));
      if (outcome === "applied") applied++;
      if (outcome === "currency") deps.log("wallet_currency_mismatch", { account: deps.accountId, balance_transaction: tx.id, currency: tx.currency });
    }
    deps.batches.markSynced(now(), newest);
    return applied;
  });
  if (taken > 0) deps.log("wallet_took_in", { account: deps.accountId, entries: taken });
  return { kind: "synced", batches: written, taken };
}
