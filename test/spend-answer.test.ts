// The seller API's answers (src/routes/spend-answer.ts): every wallet answer to a spending
// request, first or replayed, mapped to one HTTP status, body and headers. Pure, so tested
// without a request; the routes' own tests (accounts-api.test.ts) cover the same answers over HTTP.

import { describe, expect, it } from "vitest";
import { spendAnswer } from "../src/routes/spend-answer.js";
import type { BalanceView, SpendOutcome, SpendResult } from "../src/wallet/contract.js";

describe("spendAnswer: every wallet answer, first or replayed, to one HTTP answer", () => {
  const balance: BalanceView = { available: 3800, held: 700, currency: "usd" };
  const heldView = {
    id: "hold_0123456789abcdef01234567",
    account_id: "acct_1",
    amount: 700,
    currency: "usd",
    status: "active" as const,
    expires_at: "2026-01-01T00:10:00.000Z",
    balance,
    created: "2026-01-01T00:00:00.000Z",
  };
  const results: [string, SpendResult, number, unknown][] = [
    [
      "a debit",
      { ok: true, op: "debit", debit: { id: "wdb_1", account_id: "acct_1", amount: 1200, currency: "usd", balance, created: "2026-01-01T00:00:00.000Z" } },
      201,
      { id: "wdb_1", account_id: "acct_1", amount: 1200, currency: "usd", balance, created: "2026-01-01T00:00:00.000Z" },
    ],
    [
      "a hold",
      {
        ok: true,
        op: "hold",
        hold: heldView,
      },
      201,
      heldView,
    ],
    [
      "a capture",
      { ok: true, op: "capture", hold_id: "hold_0123456789abcdef01234567", debit: { id: "wdb_2", amount: 400 }, released: 300, balance },
      200,
      { hold_id: "hold_0123456789abcdef01234567", debit: { id: "wdb_2", amount: 400 }, released: 300, balance },
    ],
    [
      "a release",
      { ok: true, op: "release", hold_id: "hold_0123456789abcdef01234567", released: 700, balance },
      200,
      { hold_id: "hold_0123456789abcdef01234567", released: 700, balance },
    ],
    [
      "insufficient credit",
      { ok: false, code: "insufficient_credit", available: 250, currency: "usd" },
      402,
      { error: { code: "insufficient_credit", message: expect.any(String) as string, available: 250, currency: "usd" } },
    ],
    [
      "another currency",
      { ok: false, code: "currency_mismatch", currency: "usd" },
      422,
      { error: { code: "currency_mismatch", message: expect.any(String) as string, currency: "usd" } },
    ],
    ["an unknown hold", { ok: false, code: "hold_not_found" }, 404, { error: { code: "hold_not_found", message: expect.any(String) as string } }],
    [
      "a hold no longer active",
      { ok: false, code: "hold_not_active", hold_status: "expired" },
      409,
      { error: { code: "hold_not_active", message: expect.any(String) as string, hold_status: "expired" } },
    ],
  ];

  it.each(results)("%s: the first answer, and its replay with the same status and body plus Idempotent-Replayed", (_, result, status, body) => {
    const first = spendAnswer({ kind: "result", result, replayed: false });
    expect(first.status).toBe(status);
    expect(first.body).toEqual(body);
    expect(first.headers).toEqual({});
    const replay = spendAnswer({ kind: "result", result, replayed: true });
    expect(replay.status).toBe(first.status);
    expect(replay.body).toEqual(first.body);
    expect(replay.headers).toEqual({ "Idempotent-Replayed": "true" });
  });

  it("a reused key is 409 idempotency_key_reused; an unavailable wallet is 503 with Retry-After in whole seconds, at least 1", () => {
    const reused = spendAnswer({ kind: "key_reused" });
    expect(reused.status).toBe(409);
    expect(reused.body).toMatchObject({ error: { code: "idempotency_key_reused" } });
    expect(reused.headers).toEqual({});
    const outcomes: [SpendOutcome, string][] = [
      [{ kind: "unavailable", retryAfterSeconds: 2 }, "2"],
      [{ kind: "unavailable", retryAfterSeconds: 0.2 }, "1"],
      [{ kind: "unavailable", retryAfterSeconds: 0 }, "1"],
      [{ kind: "unavailable", retryAfterSeconds: 2.5 }, "3"],
    ];
    for (const [outcome, retryAfter] of outcomes) {
      const answer = spendAnswer(outcome);
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ error: { code: "stripe_unavailable" } });
      expect(answer.headers).toEqual({ "Retry-After": retryAfter });
    }
  });
});
