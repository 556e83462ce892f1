// Structured logs: one JSON line per confirm, credit and webhook outcome, with the PaymentIntent,
// the account, the outcome, the Stripe calls made and the duration; never a secret or a token.

import { afterEach, describe, expect, it, vi } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import { confirm, deliver, eventsFor, json, paidThroughService, settledCredit, topUp, tokenFor, newAccountId, waitForObject } from "./helpers.js";

afterEach(() => {
  vi.restoreAllMocks();
});

function capture(): { lines: () => Record<string, unknown>[]; raw: () => string[] } {
  const raw: string[] = [];
  vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    raw.push(args.map(String).join(" "));
  });
  return {
    raw: () => raw,
    lines: () => raw.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe("structured logs", () => {
  it("a confirm, its credit and a webhook each log one line with the fields operators need, and no secret", async () => {
    const log = capture();
    const accountId = newAccountId();
    const token = await tokenFor(accountId);
    const created = await json<{ payment_intent_id: string; client_secret: string }>(await topUp(token, { amount: 1500, currency: "usd" }));
    const paid = await paidThroughService(900);
    await confirm(paid.token, paid.pi.id);
    const [event] = await eventsFor("payment_intent.succeeded", paid.pi.id);
    await deliver(event?.id ?? "");
    await waitForObject(paid.pi.id, settledCredit);

    const lines = log.lines();
    const confirmLine = lines.find((l) => l.event === "confirm" && l.payment_intent === paid.pi.id);
    expect(confirmLine).toMatchObject({ account: paid.accountId, outcome: "credited" });
    // One read and one credit: the PI is not marked (MARK_CREDITED is off by default).
    expect(confirmLine?.stripe_calls).toBe(2);
    expect(typeof confirmLine?.duration_ms).toBe("number");
    expect(lines.filter((l) => l.event === "credited" && l.payment_intent === paid.pi.id)).toHaveLength(1);
    // The browser's attempt is described by its confirm line alone: one line per outcome.
    expect(lines.filter((l) => l.event === "credit_attempt" && l.payment_intent === paid.pi.id)).toHaveLength(0);
    expect(lines.find((l) => l.event === "webhook" && l.payment_intent === paid.pi.id)).toMatchObject({
      type: "payment_intent.succeeded",
      outcome: "accepted",
    });
    expect(lines.find((l) => l.event === "top_up" && l.account === accountId)).toMatchObject({ outcome: "created", amount: 1500 });

    const everything = log.raw().join("\n");
    for (const secret of [
      token,
      paid.token,
      created.client_secret,
      TEST_BINDINGS.AUTH_JWT_SECRET,
      TEST_BINDINGS.STRIPE_SECRET_KEY,
      TEST_BINDINGS.STRIPE_WEBHOOK_SECRET,
      TEST_BINDINGS.OPERATOR_TOKEN,
    ]) {
      expect(everything).not.toContain(secret);
    }
  });
});
