// Every Stripe endpoint of the emulator, driven through the official `stripe` package, plus the
// request pipeline's generic answers (401, parameter validation, unknown routes, Request-Id).

import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import type { Customer, PaymentIntent } from "./store.js";
import { errorOf, sleep, stripeErrorOf, unique, useEmulator, waitFor } from "./harness.js";

const h = useEmulator();

async function succeededPaymentIntent(amount: number): Promise<Stripe.PaymentIntent> {
  const customer = await h.stripe.customers.create({ email: `${unique("pay")}@example.com` });
  const pi = await h.stripe.paymentIntents.create({ amount, currency: "usd", customer: customer.id });
  return h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });
}

describe("customers", () => {
  it("creates and retrieves a customer", async () => {
    const email = `${unique("create")}@example.com`;
    const created = await h.stripe.customers.create({ email, name: "Ada", metadata: { account_id: "acct_create" } });
    expect(created.id).toMatch(/^cus_[A-Za-z0-9]{24}$/);
    expect(created).toMatchObject({ object: "customer", email, name: "Ada", balance: 0, livemode: false, metadata: { account_id: "acct_create" } });

    const fetched = await h.stripe.customers.retrieve(created.id);
    expect(fetched).toMatchObject({ id: created.id, email, name: "Ada", metadata: { account_id: "acct_create" } });

    const missing = await stripeErrorOf(h.stripe.customers.retrieve("cus_doesnotexist"));
    expect(missing).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(missing.statusCode).toBe(404);
    expect(missing.code).toBe("resource_missing");
  });

  it("updates a customer, merging metadata and deleting keys set to an empty value", async () => {
    const c = await h.stripe.customers.create({ email: `${unique("upd")}@example.com`, metadata: { a: "1", b: "2" } });
    const updated = await h.stripe.customers.update(c.id, { name: "Grace", metadata: { b: "", c: "3" } });
    expect(updated.metadata).toEqual({ a: "1", c: "3" });
    expect(updated.name).toBe("Grace");
    expect(updated.email).toBe(c.email);
    const again = await h.stripe.customers.retrieve(c.id);
    expect((again as Stripe.Customer).metadata).toEqual({ a: "1", c: "3" });
  });

  it("lists customers by email, strongly consistent, case-sensitive, newest first", async () => {
    const email = `${unique("list")}@example.com`;
    const first = await h.stripe.customers.create({ email });
    const second = await h.stripe.customers.create({ email });
    await h.stripe.customers.create({ email: `${unique("other")}@example.com` });

    const page = await h.stripe.customers.list({ email });
    expect(page.object).toBe("list");
    expect(page.data.map((c) => c.id)).toEqual([second.id, first.id]);
    expect(page.has_more).toBe(false);

    const upper = await h.stripe.customers.list({ email: email.toUpperCase() });
    expect(upper.data).toHaveLength(0);

    const limited = await h.stripe.customers.list({ email, limit: 1 });
    expect(limited.data.map((c) => c.id)).toEqual([second.id]);
    expect(limited.has_more).toBe(true);
  });

  it("searches customers by metadata['account_id']", async () => {
    const account = unique("acct");
    const c = await h.stripe.customers.create({ metadata: { account_id: account } });
    await h.stripe.customers.create({ metadata: { account_id: `${account}-other` } });
    const found = await h.stripe.customers.search({ query: `metadata['account_id']:'${account}'` });
    expect(found.object).toBe("search_result");
    expect(found.data.map((x) => x.id)).toEqual([c.id]);

    const bad = await stripeErrorOf(h.stripe.customers.search({ query: "metadata['account_id'] = nope" }));
    expect(bad.statusCode).toBe(400);
    expect(bad.param).toBe("query");
  });

  it("search lags behind writes by search_lag_ms; list by email does not", async () => {
    // Long enough that the writes and reads before the lag ends take less, on a busy machine too.
    const lagMs = 2000;
    await h.control("POST", "/config", { search_lag_ms: lagMs });
    try {
      const account = unique("acct_lag");
      const email = `${unique("lag")}@example.com`;
      const created = Date.now();
      const c = await h.stripe.customers.create({ email, metadata: { account_id: account } });
      const query = `metadata['account_id']:'${account}'`;

      const early = await h.stripe.customers.search({ query });
      expect(Date.now() - created).toBeLessThan(lagMs);
      expect(early.data).toHaveLength(0);
      // The strongly consistent lookup sees it at once.
      expect((await h.stripe.customers.list({ email })).data.map((x) => x.id)).toEqual([c.id]);

      const seen = await waitFor(
        async () => {
          const r = await h.stripe.customers.search({ query });
          return r.data.length > 0 ? { at: Date.now(), ids: r.data.map((x) => x.id) } : undefined;
        },
        lagMs + 3000,
        "the customer to become searchable",
      );
      expect(seen.ids).toEqual([c.id]);
      expect(seen.at - created).toBeGreaterThanOrEqual(lagMs - 10);

      // Updates lag too: the old value stays searchable until the lag has passed.
      const moved = unique("acct_moved");
      await h.stripe.customers.update(c.id, { metadata: { account_id: moved } });
      expect((await h.stripe.customers.search({ query: `metadata['account_id']:'${moved}'` })).data).toHaveLength(0);
      expect((await h.stripe.customers.search({ query })).data.map((x) => x.id)).toEqual([c.id]);
    } finally {
      await h.control("POST", "/config", { search_lag_ms: 0 });
    }
  });
});

describe("payment intents", () => {
  it("creates, retrieves, lists and updates (metadata merge) a PaymentIntent", async () => {
    const customer = await h.stripe.customers.create({ email: `${unique("pi")}@example.com` });
    const pi = await h.stripe.paymentIntents.create({
      amount: 1500,
      currency: "usd",
      customer: customer.id,
      metadata: { account_id: "acct_1", topup: "t1" },
      automatic_payment_methods: { enabled: true },
    });
    expect(pi.id).toMatch(/^pi_/);
    expect(pi).toMatchObject({
      object: "payment_intent",
      amount: 1500,
      currency: "usd",
      customer: customer.id,
      status: "requires_payment_method",
      amount_received: 0,
      latest_charge: null,
      livemode: false,
    });
    expect(pi.client_secret).toMatch(new RegExp(`^${pi.id}_secret_`));

    const fetched = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(fetched).toMatchObject({ id: pi.id, amount: 1500, metadata: { account_id: "acct_1", topup: "t1" } });

    const updated = await h.stripe.paymentIntents.update(pi.id, { metadata: { topup: "", note: "x" }, description: "credits" });
    expect(updated.metadata).toEqual({ account_id: "acct_1", note: "x" });
    expect(updated.description).toBe("credits");

    const listed = await h.stripe.paymentIntents.list({ customer: customer.id });
    expect(listed.data.map((p) => p.id)).toEqual([pi.id]);

    const noCustomer = await h.stripe.paymentIntents.create({ amount: 100, currency: "eur" });
    expect(noCustomer.customer).toBeNull();

    const unknownCustomer = await stripeErrorOf(h.stripe.paymentIntents.create({ amount: 100, currency: "usd", customer: "cus_nope" }));
    expect(unknownCustomer.statusCode).toBe(404);
    expect(unknownCustomer.param).toBe("customer");
  });

  it("confirms with pm_card_visa: succeeded, amount_received and a charge", async () => {
    const pi = await succeededPaymentIntent(2500);
    expect(pi.status).toBe("succeeded");
    expect(pi.amount_received).toBe(2500);
    // A test id stands for a card: the payment is made with a new PaymentMethod of that card.
    expect(pi.payment_method).toMatch(/^pm_[A-Za-z0-9]{24}$/);
    expect(pi.latest_charge).toMatch(/^ch_/);

    const charge = await h.stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge).toMatchObject({ object: "charge", amount: 2500, payment_intent: pi.id, paid: true, status: "succeeded", amount_refunded: 0 });

    const again = await stripeErrorOf(h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" }));
    expect(again.statusCode).toBe(400);
    expect(again.code).toBe("payment_intent_unexpected_state");

    const instant = await h.stripe.paymentIntents.create({
      amount: 700,
      currency: "usd",
      payment_method: "pm_card_visa",
      confirm: true,
      return_url: "https://shop.example/back",
    });
    expect(instant.status).toBe("succeeded");
    expect(instant.amount_received).toBe(700);
  });

  it("confirms with pm_card_chargeDeclined: a 402 card error and no money received", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 900, currency: "usd" });
    const err = await stripeErrorOf(h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_chargeDeclined" }));
    expect(err).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(err.statusCode).toBe(402);
    expect(err.type).toBe("StripeCardError");
    expect(err.code).toBe("card_declined");
    expect(err.decline_code).toBe("generic_decline");

    const after = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(after.status).toBe("requires_payment_method");
    expect(after.amount_received).toBe(0);
    expect(after.latest_charge).toBeNull();
    expect(after.last_payment_error?.code).toBe("card_declined");

    // A later attempt with a good card can still succeed.
    const retried = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" });
    expect(retried.status).toBe("succeeded");
  });

  it("confirms with pm_processing: stays processing until the control API settles it", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 1200, currency: "usd" });
    const confirmed = await h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_processing" });
    expect(confirmed.status).toBe("processing");
    expect(confirmed.amount_received).toBe(0);
    await sleep(50);
    const still = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(still.status).toBe("processing");
    expect(still.latest_charge).toBeNull();

    const frozen = await stripeErrorOf(h.stripe.paymentIntents.update(pi.id, { amount: 5 }));
    expect(frozen.statusCode).toBe(400);

    const settled = await h.control<PaymentIntent>("POST", `/payment_intents/${pi.id}/succeed`);
    expect(settled.status).toBe("succeeded");
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).amount_received).toBe(1200);
  });

  it("cancels a PaymentIntent, after which it cannot be confirmed or cancelled again", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 300, currency: "usd" });
    const canceled = await h.stripe.paymentIntents.cancel(pi.id, { cancellation_reason: "abandoned" });
    expect(canceled.status).toBe("canceled");
    expect(canceled.cancellation_reason).toBe("abandoned");
    expect(canceled.canceled_at).toEqual(expect.any(Number));

    const confirm = await stripeErrorOf(h.stripe.paymentIntents.confirm(pi.id, { payment_method: "pm_card_visa" }));
    expect(confirm.statusCode).toBe(400);
    expect(confirm.code).toBe("payment_intent_unexpected_state");
    const twice = await stripeErrorOf(h.stripe.paymentIntents.cancel(pi.id));
    expect(twice.statusCode).toBe(400);

    const paid = await succeededPaymentIntent(100);
    const late = await stripeErrorOf(h.stripe.paymentIntents.cancel(paid.id));
    expect(late.statusCode).toBe(400);
    expect((await h.stripe.paymentIntents.retrieve(paid.id)).status).toBe("succeeded");
  });
});

describe("customer balance transactions", () => {
  it("a negative amount credits the customer; ending_balance follows the balance", async () => {
    const c = await h.stripe.customers.create({ email: `${unique("bal")}@example.com` });
    const credit = await h.stripe.customers.createBalanceTransaction(c.id, {
      amount: -500,
      currency: "usd",
      description: "top-up",
      metadata: { topup_id: "t1" },
    });
    expect(credit.id).toMatch(/^cbtxn_/);
    expect(credit).toMatchObject({
      object: "customer_balance_transaction",
      amount: -500,
      currency: "usd",
      customer: c.id,
      ending_balance: -500,
      type: "adjustment",
      description: "top-up",
      metadata: { topup_id: "t1" },
      livemode: false,
    });
    expect(((await h.stripe.customers.retrieve(c.id)) as Stripe.Customer).balance).toBe(-500);

    const debit = await h.stripe.customers.createBalanceTransaction(c.id, { amount: 200, currency: "usd" });
    expect(debit.ending_balance).toBe(-300);
    const customer = (await h.stripe.customers.retrieve(c.id)) as Stripe.Customer;
    expect(customer.balance).toBe(-300);
    expect(customer.currency).toBe("usd");

    const retrieved = await h.stripe.customers.retrieveBalanceTransaction(c.id, credit.id);
    expect(retrieved).toEqual(credit);

    const wrongCurrency = await stripeErrorOf(h.stripe.customers.createBalanceTransaction(c.id, { amount: -1, currency: "eur" }));
    expect(wrongCurrency.statusCode).toBe(400);
    expect(wrongCurrency.param).toBe("currency");

    const other = await h.stripe.customers.create({});
    const foreign = await stripeErrorOf(h.stripe.customers.retrieveBalanceTransaction(other.id, credit.id));
    expect(foreign.statusCode).toBe(404);
    expect(foreign.code).toBe("resource_missing");

    const noCustomer = await stripeErrorOf(h.stripe.customers.createBalanceTransaction("cus_nope", { amount: -1, currency: "usd" }));
    expect(noCustomer.statusCode).toBe(404);

    const missing = await stripeErrorOf(
      h.stripe.customers.createBalanceTransaction(c.id, { currency: "usd" } as Stripe.CustomerCreateBalanceTransactionParams),
    );
    expect(missing.statusCode).toBe(400);
    expect(missing.code).toBe("parameter_missing");
    expect(missing.param).toBe("amount");
  });

  it("lists newest first with limit, starting_after and ending_before", async () => {
    const c = await h.stripe.customers.create({});
    const ids: string[] = [];
    for (let i = 1; i <= 5; i++) {
      ids.push((await h.stripe.customers.createBalanceTransaction(c.id, { amount: -i, currency: "usd" })).id);
    }
    const [t1, t2, t3, t4, t5] = ids as [string, string, string, string, string];

    const all = await h.stripe.customers.listBalanceTransactions(c.id);
    expect(all.object).toBe("list");
    expect(all.url).toBe(`/v1/customers/${c.id}/balance_transactions`);
    expect(all.data.map((t) => t.id)).toEqual([t5, t4, t3, t2, t1]);
    expect(all.data.map((t) => t.ending_balance)).toEqual([-15, -10, -6, -3, -1]);
    expect(all.has_more).toBe(false);

    const p1 = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 2 });
    expect(p1.data.map((t) => t.id)).toEqual([t5, t4]);
    expect(p1.has_more).toBe(true);
    const p2 = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 2, starting_after: t4 });
    expect(p2.data.map((t) => t.id)).toEqual([t3, t2]);
    expect(p2.has_more).toBe(true);
    const p3 = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 2, starting_after: t2 });
    expect(p3.data.map((t) => t.id)).toEqual([t1]);
    expect(p3.has_more).toBe(false);

    const back1 = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 2, ending_before: t1 });
    expect(back1.data.map((t) => t.id)).toEqual([t3, t2]);
    expect(back1.has_more).toBe(true);
    const back2 = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 2, ending_before: t3 });
    expect(back2.data.map((t) => t.id)).toEqual([t5, t4]);
    expect(back2.has_more).toBe(false);

    // The package's auto-pagination walks every page exactly once.
    const walked: string[] = [];
    for await (const t of h.stripe.customers.listBalanceTransactions(c.id, { limit: 2 })) walked.push(t.id);
    expect(walked).toEqual([t5, t4, t3, t2, t1]);

    for (const limit of [0, 101]) {
      const err = await stripeErrorOf(h.stripe.customers.listBalanceTransactions(c.id, { limit }));
      expect(err.statusCode).toBe(400);
      expect(err.type).toBe("StripeInvalidRequestError");
      expect(err.param).toBe("limit");
    }
    const max = await h.stripe.customers.listBalanceTransactions(c.id, { limit: 100 });
    expect(max.data).toHaveLength(5);

    const badCursor = await stripeErrorOf(h.stripe.customers.listBalanceTransactions(c.id, { starting_after: "cbtxn_nope" }));
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.param).toBe("starting_after");
  });
});

describe("refunds", () => {
  it("refunds partially, then the rest, then refuses more", async () => {
    const pi = await succeededPaymentIntent(1000);
    const partial = await h.stripe.refunds.create({ payment_intent: pi.id, amount: 300, reason: "requested_by_customer" });
    expect(partial.id).toMatch(/^re_/);
    expect(partial).toMatchObject({ object: "refund", amount: 300, payment_intent: pi.id, charge: pi.latest_charge, status: "succeeded" });
    let charge = await h.stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge.amount_refunded).toBe(300);
    expect(charge.refunded).toBe(false);

    const rest = await h.stripe.refunds.create({ charge: pi.latest_charge as string });
    expect(rest.amount).toBe(700);
    charge = await h.stripe.charges.retrieve(pi.latest_charge as string);
    expect(charge.amount_refunded).toBe(1000);
    expect(charge.refunded).toBe(true);

    expect(await h.stripe.refunds.retrieve(partial.id)).toMatchObject({ id: partial.id, amount: 300 });

    const more = await stripeErrorOf(h.stripe.refunds.create({ payment_intent: pi.id, amount: 1 }));
    expect(more.statusCode).toBe(400);
    expect(more.code).toBe("charge_already_refunded");
  });

  it("refuses a refund larger than the charge, and one of an unpaid PaymentIntent", async () => {
    const pi = await succeededPaymentIntent(1000);
    const big = await stripeErrorOf(h.stripe.refunds.create({ payment_intent: pi.id, amount: 1500 }));
    expect(big).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(big.statusCode).toBe(400);
    expect(big.code).toBe("amount_too_large");
    expect(big.param).toBe("amount");
    expect((await h.stripe.charges.retrieve(pi.latest_charge as string)).amount_refunded).toBe(0);

    const unpaid = await h.stripe.paymentIntents.create({ amount: 100, currency: "usd" });
    const none = await stripeErrorOf(h.stripe.refunds.create({ payment_intent: unpaid.id }));
    expect(none.statusCode).toBe(400);
    expect(none.code).toBe("charge_not_found");
  });
});

describe("disputes", () => {
  it("retrieves a dispute opened through the control API", async () => {
    const pi = await succeededPaymentIntent(800);
    const opened = await h.control<{ id: string }>("POST", `/payment_intents/${pi.id}/dispute`, {});
    const dispute = await h.stripe.disputes.retrieve(opened.id);
    expect(dispute).toMatchObject({ id: opened.id, object: "dispute", amount: 800, payment_intent: pi.id, charge: pi.latest_charge, status: "needs_response" });
    expect((await h.stripe.charges.retrieve(pi.latest_charge as string)).disputed).toBe(true);
  });
});

describe("the request pipeline", () => {
  it("answers 401 without a key, with a malformed key, and accepts Basic auth", async () => {
    const none = await h.api("GET", "/v1/customers", { authorization: null });
    expect(none.status).toBe(401);
    expect(errorOf(none)).toMatchObject({ type: "invalid_request_error", message: "You did not provide an API key." });

    const bad = await stripeErrorOf(h.client({}, "sk_test_not-a-valid-key").customers.list());
    expect(bad).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(bad.statusCode).toBe(401);

    const publishable = await h.api("GET", "/v1/customers", { authorization: "Bearer pk_test_abc" });
    expect(publishable.status).toBe(401);

    const basic = await h.api("GET", "/v1/customers", { authorization: `Basic ${btoa("sk_test_emulator:")}` });
    expect(basic.status).toBe(200);
  });

  it("rejects an unknown parameter with 400 invalid_request_error and its param", async () => {
    const top = await h.api("POST", "/v1/customers", { params: { email: "a@example.com", foo: "bar" } });
    expect(top.status).toBe(400);
    expect(errorOf(top)).toMatchObject({ type: "invalid_request_error", code: "parameter_unknown", param: "foo" });

    const nested = await h.api("POST", "/v1/payment_intents", {
      params: { amount: "100", currency: "usd", "automatic_payment_methods[bogus]": "1" },
    });
    expect(nested.status).toBe(400);
    expect(errorOf(nested).param).toBe("automatic_payment_methods[bogus]");

    const viaClient = await stripeErrorOf(h.stripe.customers.create({ colour: "blue" } as Stripe.CustomerCreateParams));
    expect(viaClient).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(viaClient.statusCode).toBe(400);
    expect(viaClient.param).toBe("colour");
    expect(viaClient.code).toBe("parameter_unknown");
  });

  it("rejects a wrongly typed or missing parameter with 400 and its param", async () => {
    const c = await h.stripe.customers.create({});
    const abc = await h.api("POST", `/v1/customers/${c.id}/balance_transactions`, { params: { amount: "abc", currency: "usd" } });
    expect(abc.status).toBe(400);
    expect(errorOf(abc)).toMatchObject({ type: "invalid_request_error", code: "parameter_invalid_integer", param: "amount" });

    const pi = await h.api("POST", "/v1/payment_intents", { params: { amount: "12.5", currency: "usd" } });
    expect(pi.status).toBe(400);
    expect(errorOf(pi).param).toBe("amount");

    const currency = await h.api("POST", "/v1/payment_intents", { params: { amount: "100", currency: "dollars" } });
    expect(errorOf(currency).param).toBe("currency");

    const missing = await h.api("POST", "/v1/payment_intents", { params: { amount: "100" } });
    expect(missing.status).toBe(400);
    expect(errorOf(missing)).toMatchObject({ code: "parameter_missing", param: "currency" });

    const limit = await h.api("GET", "/v1/customers", { params: { limit: "ten" } });
    expect(limit.status).toBe(400);
    expect(errorOf(limit).param).toBe("limit");

    const metadata = await h.api("POST", `/v1/customers/${c.id}`, { params: { [`metadata[${"k".repeat(41)}]`]: "v" } });
    expect(metadata.status).toBe(400);
    expect(errorOf(metadata).param).toBe(`metadata[${"k".repeat(41)}]`);

    expect(((await h.stripe.customers.retrieve(c.id)) as Stripe.Customer).balance).toBe(0);
  });

  it("answers an unknown route with 404 in Stripe's error shape", async () => {
    const res = await h.api("GET", "/v1/widgets/w_1");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(errorOf(res).type).toBe("invalid_request_error");
    expect(errorOf(res).message).toContain("Unrecognized request URL (GET: /v1/widgets/w_1)");
    expect(res.headers.get("request-id")).toMatch(/^req_/);

    const wrongMethod = await h.api("DELETE", "/v1/customers/cus_x");
    expect(wrongMethod.status).toBe(404);
    expect(errorOf(wrongMethod).type).toBe("invalid_request_error");
  });

  it("sends a distinct Request-Id header on every answer", async () => {
    const c = await h.control<Customer>("POST", "/customers", { email: `${unique("rid")}@example.com` });
    const answers = [
      await h.api("GET", `/v1/customers/${c.id}`),
      await h.api("POST", "/v1/customers", { params: { email: "r@example.com" }, idempotencyKey: "rid-1" }),
      await h.api("POST", "/v1/customers", { params: { email: "r@example.com" }, idempotencyKey: "rid-1" }),
      await h.api("POST", "/v1/customers", { params: { nope: "1" } }),
      await h.api("GET", "/v1/customers", { authorization: null }),
      await h.api("GET", "/v1/customers/cus_missing"),
      await h.api("GET", "/v1/nothing-here"),
      await h.api("POST", "/v1/payment_intents", {
        params: { amount: "100", currency: "usd", payment_method: "pm_card_chargeDeclined", confirm: "true", return_url: "https://shop.example/back" },
      }),
    ];
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 400, 401, 404, 404, 402]);
    const ids = answers.map((a) => a.headers.get("request-id"));
    for (const id of ids) expect(id).toMatch(/^req_[A-Za-z0-9]{24}$/);
    expect(new Set(ids).size).toBe(ids.length);

    // The client exposes it too.
    const viaClient = await h.stripe.customers.retrieve(c.id);
    expect(viaClient.lastResponse.requestId).toMatch(/^req_/);
  });
});
