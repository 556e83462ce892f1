// Spending: debits, holds, captures and releases, each decided and written in one synchronous
// transaction (check the balance, write the entry, keep the answer under its Idempotency-Key),
// so no concurrency can overdraw the wallet or run one key twice. No Stripe call happens here:
// spending owed to Stripe is marked, and the sync (sync.ts) writes it later in batches.

import type { BalanceView, HoldStatus, SpendOutcome, SpendRequest, SpendResult } from "./contract.js";
import { newId, type WalletLedger } from "./ledger.js";

/** What spending needs to know besides the request. */
export interface SpendContext {
  accountId: string;
  now: number;
  /** Currencies a wallet with no currency yet would accept (the top-up currencies). */
  accepted: string[];
}

/**
 * Answers a spending request under `key`: the first answer for a key is kept and every later
 * request with the key and the same fingerprint gets it again; another fingerprint is refused.
 */
export function spend(ledger: WalletLedger, request: SpendRequest, key: string, fingerprint: string, ctx: SpendContext): SpendOutcome {
  return ledger.atomically((): SpendOutcome => {
    const kept = ledger.keyed(key);
    if (kept)
      return kept.fingerprint === fingerprint ? { kind: "result", result: JSON.parse(kept.result) as SpendResult, replayed: true } : { kind: "key_reused" };
    expireHolds(ledger, ctx.now);
    const result = decide(ledger, request, ctx);
    ledger.keep(key, fingerprint, result, ctx.now);
    return { kind: "result", result, replayed: false };
  });
}

/** Whether a request's key already has an answer (for replays that need no open wallet). */
export function replay(ledger: WalletLedger, key: string, fingerprint: string): SpendOutcome | null {
  const kept = ledger.keyed(key);
  if (!kept) return null;
  return kept.fingerprint === fingerprint ? { kind: "result", result: JSON.parse(kept.result) as SpendResult, replayed: true } : { kind: "key_reused" };
}

/** Releases every active hold whose time is up; returns how many. Runs before every spending decision and from the alarm. */
export function expireHolds(ledger: WalletLedger, now: number): number {
  return ledger.atomically(() => {
    const due = ledger.dueHolds(now);
    for (const h of due) {
      ledger.endHold(h.id, "expired", now);
      ledger.post({ kind: "release", amount: 0, held: -h.amount, currency: h.currency, hold_id: h.id, description: "Hold expired", created_at: now });
    }
    return due.length;
  });
}

function decide(ledger: WalletLedger, request: SpendRequest, ctx: SpendContext): SpendResult {
  const wallet = ledger.row();
  const currency = wallet?.currency ?? null;
  const balance = (): BalanceView => ledger.balance(currency ?? requestCurrency(request) ?? "");
  switch (request.op) {
    case "debit":
    case "hold": {
      const mismatch = currencyRefusal(currency, request.currency, ctx.accepted);
      if (mismatch) return mismatch;
      const available = wallet?.available ?? 0;
      if (!wallet || available < request.amount) return { ok: false, code: "insufficient_credit", available, currency: currency ?? request.currency };
      if (request.op === "debit") {
        const entry = ledger.post({
          kind: "debit",
          amount: -request.amount,
          currency: request.currency,
          description: request.description ?? null,
          metadata: request.metadata ?? null,
          owed: true,
          created_at: ctx.now,
        });
        return {
          ok: true,
          op: "debit",
          debit: { id: entry.id, account_id: ctx.accountId, amount: request.amount, currency: request.currency, balance: balance(), created: iso(ctx.now) },
        };
      }
      const id = newId("hold");
      const expiresAt = ctx.now + request.expires_in_seconds * 1000;
      ledger.insertHold({
        id,
        amount: request.amount,
        currency: request.currency,
        status: "active",
        expires_at: expiresAt,
        description: request.description ?? null,
        created_at: ctx.now,
      });
      ledger.post({
        kind: "hold",
        amount: 0,
        held: request.amount,
        currency: request.currency,
        hold_id: id,
        description: request.description ?? null,
        created_at: ctx.now,
      });
      return {
        ok: true,
        op: "hold",
        hold: {
          id,
          account_id: ctx.accountId,
          amount: request.amount,
          currency: request.currency,
          status: "active",
          expires_at: iso(expiresAt),
          balance: balance(),
          created: iso(ctx.now),
        },
      };
    }
    case "capture":
    case "release": {
      const hold = ledger.hold(request.hold_id);
      if (!hold) return { ok: false, code: "hold_not_found" };
      if (hold.status !== "active") return { ok: false, code: "hold_not_active", hold_status: hold.status as HoldStatus };
      if (request.op === "release") {
        ledger.endHold(hold.id, "released", ctx.now);
        ledger.post({ kind: "release", amount: 0, held: -hold.amount, currency: hold.currency, hold_id: hold.id, created_at: ctx.now });
        return { ok: true, op: "release", hold_id: hold.id, released: hold.amount, balance: balance() };
      }
      const amount = request.amount ?? hold.amount;
      // More than was held must be covered by what is available beside the hold.
      const excess = amount - hold.amount;
      const available = wallet?.available ?? 0;
      if (excess > 0 && available < excess) return { ok: false, code: "insufficient_credit", available, currency: hold.currency };
      ledger.endHold(hold.id, "captured", ctx.now);
      const entry = ledger.post({
        kind: "capture",
        amount: -amount,
        held: -hold.amount,
        currency: hold.currency,
        hold_id: hold.id,
        owed: true,
        created_at: ctx.now,
      });
      return { ok: true, op: "capture", hold_id: hold.id, debit: { id: entry.id, amount }, released: Math.max(0, -excess), balance: balance() };
    }
  }
}

/** A debit or hold in a currency this wallet does not keep (or, before its first credit, one it would not accept). */
function currencyRefusal(walletCurrency: string | null, currency: string, accepted: string[]): SpendResult | null {
  if (walletCurrency !== null) return walletCurrency === currency ? null : { ok: false, code: "currency_mismatch", currency: walletCurrency };
  return accepted.includes(currency) ? null : { ok: false, code: "currency_mismatch", currency: accepted[0] ?? currency };
}

function requestCurrency(request: SpendRequest): string | null {
  return "currency" in request ? request.currency : null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
