// A PaymentIntent marked `metadata.credited = "true"` with no local record was credited by
// another system (the server this replaces) or this object's record was lost. The object must
// find that ledger entry instead of crediting again, and must not credit at all without one.

import { describe, expect, it } from "vitest";
import { TEST_BINDINGS } from "./bindings.js";
import {
  call,
  confirm,
  createCustomer,
  createPaymentIntent,
  json,
  ledgerFor,
  legacyCredit,
  newAccountId,
  operatorEntry,
  piObject,
  stripeRequests,
  tokenFor,
  topUpMetadata,
} from "./helpers.js";

async function setup(amount: number) {
  const accountId = newAccountId();
  const customer = await createCustomer(accountId);
  const pi = await createPaymentIntent({ customer: customer.id, amount, metadata: { ...topUpMetadata(accountId), credited: "true" } });
  return { accountId, customer, pi, token: await tokenFor(accountId) };
}

describe("credited elsewhere", () => {
  it("with its ledger entry: recorded, answered already_credited, nothing written", async () => {
    const { customer, pi, token } = await setup(6000);
    // Newer unrelated entries in front of it, so the search has to page past them.
    const legacyId = await legacyCredit(customer.id, pi.id, 6000);
    for (let i = 0; i < 3; i++) await legacyCredit(customer.id, `pi_other${i}`, 10);

    const res = await confirm(token, pi.id);
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ status: "already_credited", payment_intent_id: pi.id, amount: 6000, currency: "usd", balance_transaction_id: legacyId });
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);
    expect(await stripeRequests({ key: `credit-tx:${pi.id}*` })).toHaveLength(0);
    expect(await stripeRequests({ key: `credit-mark:${pi.id}*` })).toHaveLength(0);
    const { record } = await piObject(pi.id).inspect();
    expect(record?.state).toBe("credited");
    expect(record?.credited_by).toBe("ledger");

    // Later confirms are answered from the record.
    const reads = (await stripeRequests({ path: `/v1/payment_intents/${pi.id}` })).length;
    expect((await json(await confirm(token, pi.id))).balance_transaction_id).toBe(legacyId);
    expect((await stripeRequests({ path: `/v1/payment_intents/${pi.id}` })).length).toBe(reads);
  });

  it("without a ledger entry: not credited, needs attention, listed for operators", async () => {
    const { customer, pi, token } = await setup(4500);
    const res = await confirm(token, pi.id);
    expect(res.status).toBe(409);
    expect((await json<{ error: { code: string } }>(res)).error.code).toBe("credit_needs_attention");
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(0);
    expect(await stripeRequests({ key: `credit-tx:${pi.id}*` })).toHaveLength(0);
    expect((await piObject(pi.id).inspect()).record?.state).toBe("needs_attention");

    const entry = await operatorEntry(pi.id);
    expect(entry?.state).toBe("needs_attention");
    expect(entry?.reason).toContain("no entry");

    // Asking again changes nothing and still credits nothing.
    expect((await confirm(token, pi.id)).status).toBe(409);
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(0);
  });

  it("an operator retry adopts a ledger entry that appeared later, and never credits blindly", async () => {
    const { customer, pi, token } = await setup(3000);
    expect((await confirm(token, pi.id)).status).toBe(409);
    const auth = { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` };

    const still = await json<{ record: { state: string } }>(await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: auth }));
    expect(still.record.state).toBe("needs_attention");
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(0);

    const legacyId = await legacyCredit(customer.id, pi.id, 3000);
    const fixed = await json<{ record: { state: string; balance_transaction_id: string } }>(
      await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: auth }),
    );
    expect(fixed.record).toMatchObject({ state: "credited", balance_transaction_id: legacyId });
    expect(await ledgerFor(customer.id, pi.id)).toHaveLength(1);
    expect((await json(await confirm(token, pi.id))).status).toBe("already_credited");
  });
});
