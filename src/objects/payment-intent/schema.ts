// The PaymentIntent object's tables, in its SQLite storage. One object per PI, so the
// `credit` table holds at most one row; `journal` keeps one line per Stripe call and state
// change, for the operator and for audits. Every read and write here is synchronous
// (`ctx.storage.sql.exec`), which is what lets the object check-and-set without a race.
//
// credit (one row)
//   payment_intent_id      the PI this object is named after (an object does not know its name)
//   state                  verified → credited; or not_creditable / needs_attention (see below)
//   customer_id, amount, currency   what is owed, recorded before any Stripe write
//   credit_attempt         n in the credit key: credit-tx:{pi} for 1, credit-tx:{pi}:{n} after
//   credit_write           none: attempt n never sent; sent: sent, outcome unknown until seen
//   mark_state             pending | done   (metadata.credited on the PI, a courtesy for the
//                          older server, only while MARK_CREDITED is on); off: not marked;
//                          withdrawing | withdrawn once Stripe refused the credit: the mark
//                          must not outlive a credit that never happened
//   mark_attempts          how many marks and withdrawals were sent; the first mark uses
//                          credit-mark:{pi}, later ones credit-mark:{pi}:{n}, a withdrawal
//                          credit-unmark:{pi}:{n} (n counts both, so no key is ever reused)
//   balance_transaction_id, ending_balance   the credit, once known
//   credited_by            confirm | webhook | alarm | operator: who finished it; ledger: found
//   reason                 why not_creditable / needs_attention
//   last_error             the last Stripe failure, for the operator view
//   retry_count, next_retry_at   the alarm's backoff
//   listed                 1 while the PI is in the operator registry (see registry.ts)
//   account_id             the account to tell about balance changes (PI metadata or the caller)
//
// facts (name, value): what Stripe told us about the charge; `amount_refunded` is cumulative
// disputes: dispute_id, amount, status (open | won | lost; closed never reopens), first_seen
// adjustments (one row per reversal or restoration, planned before it is written):
//   operation     refund:{level} | dispute:{dp} | restore:{dp}; key credit-adjust:{pi}:{operation}
//   kind, direction (debit takes credit back, credit gives it back), amount, dispute_id
//   attempt, sent   the same attempt state as the credit's (see ledger-write.ts)
//   state         pending | done | needs_attention (Stripe refused it: an operator's retry
//                 reopens it, looking at the ledger first);  balance_transaction_id, ending_balance
// reports (balance_transaction_id, reported_at): ledger entries (the credit, each adjustment) the
//   account's wallet has acknowledged; one still missing here is reported again until it is
// notice (payment_intent_id, received_at, attempts): a payment_intent.succeeded webhook that
//   arrived before any record; the alarm turns it into a credit
// notice_facts (payment_intent_id, facts): the PI as that event carried it (JSON of the fields
//   that decide a credit), so the credit need not read it again

/**
 * Each table's definition. A table is created when first written (store.ts), so a PI that
 * only ever credits has `credit`, `journal` and `reports`, and none of the tables for refunds,
 * disputes or webhooks that came first: every table is a B-tree and an index to create and
 * store, and a schema to parse again, for each new PaymentIntent. Junk gets none at all.
 * The journal's `seq` is an INTEGER PRIMARY KEY without AUTOINCREMENT: lines are only ever
 * dropped from the oldest end, so a number is never reused, and no sequence table is written
 * per line. States: src/credit/contract.ts.
 */
export const TABLES = {
  credit: `CREATE TABLE IF NOT EXISTS credit (
  payment_intent_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  customer_id TEXT,
  amount INTEGER,
  currency TEXT,
  credit_attempt INTEGER NOT NULL DEFAULT 1,
  credit_write TEXT NOT NULL DEFAULT 'none',
  mark_state TEXT NOT NULL DEFAULT 'pending',
  mark_attempts INTEGER NOT NULL DEFAULT 0,
  balance_transaction_id TEXT,
  ending_balance INTEGER,
  credited_by TEXT,
  reason TEXT,
  last_error TEXT,
  retry_count INTEGER NOT NULL DEFAULT 0,
  next_retry_at INTEGER,
  listed INTEGER NOT NULL DEFAULT 0,
  account_id TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  credited_at INTEGER
)`,
  journal: `CREATE TABLE IF NOT EXISTS journal (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  step TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT
)`,
  facts: "CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
  disputes: `CREATE TABLE IF NOT EXISTS disputes (
  dispute_id TEXT PRIMARY KEY,
  amount INTEGER NOT NULL,
  status TEXT NOT NULL,
  first_seen INTEGER NOT NULL
)`,
  adjustments: `CREATE TABLE IF NOT EXISTS adjustments (
  operation TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  direction TEXT NOT NULL,
  amount INTEGER NOT NULL,
  dispute_id TEXT,
  attempt INTEGER NOT NULL DEFAULT 1,
  sent INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'pending',
  balance_transaction_id TEXT,
  ending_balance INTEGER,
  last_error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
)`,
  reports: "CREATE TABLE IF NOT EXISTS reports (balance_transaction_id TEXT PRIMARY KEY, reported_at INTEGER NOT NULL)",
  notice: `CREATE TABLE IF NOT EXISTS notice (
  payment_intent_id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
)`,
  notice_facts: "CREATE TABLE IF NOT EXISTS notice_facts (payment_intent_id TEXT PRIMARY KEY, facts TEXT NOT NULL)",
} as const;

export type Table = keyof typeof TABLES;
