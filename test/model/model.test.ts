// The randomized model test. fast-check draws a small world (two
// accounts, one to three PaymentIntents: paid and unpaid top-ups made through the service or
// straight in Stripe, and payments that are not top-ups, each with its object marking what it
// credits or not, as MARK_CREDITED is on while an older server runs beside this one) and a list of commands (browser
// confirms, webhook deliveries and redeliveries, refunds, disputes, operator retries, evictions,
// alarm runs, Stripe faults on the next calls, key expiry, long ledgers, debits and syncs of the
// accounts' wallets, entries made in Stripe by something else, restarts of the account objects),
// runs them against the Worker in workerd and the emulator, lets the system settle, and checks
// what must hold whatever happened on the way.
//
// A failure prints its seed, fast-check's path and the shrunk command list; replay it with
//   MODEL_SEED=<seed> MODEL_PATH=<path> npm run test:model
// MODEL_RUNS sets the number of runs (`npm run soak` runs 300), MODEL_SHRINK_SECONDS how long a
// failure may be shrunk. The system is not deterministic (timing, the object's jitter), so a
// replay may take a run or two to fail again on a race.

import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { inject, it } from "vitest";
import type { Inspection } from "../../src/credit/contract.js";
import { eventId } from "../../src/events/contract.js";
import { requestFingerprint } from "../../src/wallet/fingerprint.js";
import { TEST_BINDINGS } from "../bindings.js";
import {
  answerOf,
  call,
  createCustomer,
  createPaymentIntent,
  deliver,
  emu,
  json,
  ledgerFor,
  markingOnAcrossRestarts,
  markSettled,
  newAccountId,
  payWithTestCard,
  piObject,
  stripePaymentIntent,
  stripeRequests,
  tokenFor,
  topUp,
  topUpMetadata,
  confirm,
  type BalanceTransaction,
} from "../helpers.js";

const RUNS = inject("modelRuns") ?? 40;
const SEED = inject("modelSeed");
const PATH = inject("modelPath");
const SHRINK_MS = (inject("modelShrinkSeconds") ?? 45) * 1000;

/** Entries that make a ledger longer than any page limit the service might stop at (100 per page). */
const PADDING = 2_100;
/** Added to each of the run's Stripe calls while its commands run (the drain runs without it). */
const STRIPE_LATENCY_MS = 20;
/** Drain rounds after a run: each runs every unfinished PI's alarm once. */
const DRAIN_ROUNDS = 40;
/** How long the drain waits, at most, for work the platform is running on its own. */
const DRAIN_MS = 20_000;

// ---------------------------------------------------------------------------------------------
// The world: what fast-check draws, and what it becomes in the emulator and the service.

/**
 * top_up: made with POST /billing/top_ups and paid with the test card. unpaid_top_up: made the
 * same way, left unpaid (a `pay` command may pay it later). direct_top_up: a paid top-up made
 * straight in Stripe with the top-up metadata (as an earlier deployment would have), so the
 * account's wallet may open only after its credit is already in Stripe's ledger.
 * subscription: a payment of the same customer made by another product (metadata account_id
 * and purpose). bare: no metadata at all.
 */
type PiKind = "top_up" | "unpaid_top_up" | "direct_top_up" | "subscription" | "bare";

interface PiSpec {
  kind: PiKind;
  /** Index of the owning account (0 or 1); the other one is the stranger. */
  owner: number;
  amount: number;
  /** Its object marks what it credits (metadata.credited), in every instance it has (the setting is the deployment's). */
  marking: boolean;
}

const piSpecArb: fc.Arbitrary<PiSpec> = fc.record({
  kind: fc.oneof(
    { arbitrary: fc.constant<PiKind>("top_up"), weight: 5 },
    { arbitrary: fc.constant<PiKind>("unpaid_top_up"), weight: 1 },
    { arbitrary: fc.constant<PiKind>("direct_top_up"), weight: 2 },
    { arbitrary: fc.constant<PiKind>("subscription"), weight: 2 },
    { arbitrary: fc.constant<PiKind>("bare"), weight: 1 },
  ),
  owner: fc.constantFrom(0, 1),
  amount: fc.constantFrom(1000, 500, 2500, 9999),
  marking: fc.boolean(),
});

const worldArb = fc.array(piSpecArb, { minLength: 1, maxLength: 3 });

interface Account {
  accountId: string;
  token: string;
  customerId: string;
  /** What the wallet said yes to: the debits it took (their amounts sum to what Stripe must be written). */
  spent: number;
  /** Spending answers that showed the wallet below zero (must stay empty). */
  overdrawn: string[];
}

interface Dispute {
  id: string;
  amount: number;
  status: "open" | "won" | "lost";
}

/** One PaymentIntent of the run, with what the model knows Stripe did to it. */
interface LivePi {
  index: number;
  spec: PiSpec;
  id: string;
  owner: Account;
  stranger: Account;
  paid: boolean;
  refunded: number;
  dispute: Dispute | null;
  /** An error_400 rule scoped to this PI (or its customer) fired: a credit may be refused for good. */
  refused400: boolean;
}

interface ConfirmAnswer {
  pi: number;
  by: "owner" | "stranger";
  status: number;
  code: string;
  txId: string | null;
}

interface FaultAdded {
  id: number;
  name: FaultName;
  /** The PIs whose Stripe calls the rule can hit. */
  pis: number[];
  fired: number;
}

interface Run {
  accounts: Account[];
  pis: LivePi[];
  faults: FaultAdded[];
  answers: ConfirmAnswer[];
  /** Deliveries not answered 200 (Stripe would redeliver them; the run's end delivers every event again). */
  webhookErrors: string[];
}

/** Two accounts, each with its Stripe customer, and the PaymentIntents of `specs`. */
async function buildWorld(specs: PiSpec[]): Promise<Run> {
  const accounts: Account[] = [];
  for (let i = 0; i < 2; i++) {
    const accountId = newAccountId("model");
    const customer = await createCustomer(accountId);
    accounts.push({ accountId, token: await tokenFor(accountId), customerId: customer.id, spent: 0, overdrawn: [] });
  }
  const pis: LivePi[] = [];
  for (const [index, spec] of specs.entries()) {
    const owner = accounts[spec.owner] as Account;
    const stranger = accounts[1 - spec.owner] as Account;
    let id: string;
    if (spec.kind === "top_up" || spec.kind === "unpaid_top_up") {
      const res = await topUp(owner.token, { amount: spec.amount, currency: "usd" });
      if (res.status !== 201) throw new Error(`set-up: POST /billing/top_ups answered ${res.status} ${await res.text()}`);
      id = (await json<{ payment_intent_id: string }>(res)).payment_intent_id;
      if (spec.kind === "top_up") await pay(id);
    } else if (spec.kind === "direct_top_up") {
      id = (await createPaymentIntent({ customer: owner.customerId, amount: spec.amount, metadata: topUpMetadata(owner.accountId) })).id;
    } else {
      const metadata: Record<string, string> = spec.kind === "subscription" ? { account_id: owner.accountId, purpose: "subscription" } : {};
      id = (await createPaymentIntent({ customer: owner.customerId, amount: spec.amount, metadata })).id;
    }
    if (spec.marking) await markingOnAcrossRestarts(id);
    pis.push({ index, spec, id, owner, stranger, paid: spec.kind !== "unpaid_top_up", refunded: 0, dispute: null, refused400: false });
  }
  const run: Run = { accounts, pis, faults: [], answers: [], webhookErrors: [] };
  await slowStripe(run, STRIPE_LATENCY_MS);
  return run;
}

/**
 * Every Stripe call about the run's PaymentIntents and customers takes STRIPE_LATENCY_MS more
 * (with as much jitter), or none at `ms` 0: while a call is out, other confirms, webhooks and
 * alarms run inside the object, so a missing lock would credit twice.
 */
async function slowStripe(run: Run, ms: number): Promise<void> {
  const paths = [...run.pis.map((pi) => `/v1/payment_intents/${pi.id}**`), ...run.accounts.map((a) => `/v1/customers/${a.customerId}/**`)];
  for (const path of paths) await emu("/latency", { ms, jitter_ms: ms, path });
}

async function pay(paymentIntentId: string): Promise<void> {
  const paid = await payWithTestCard(paymentIntentId);
  if (paid.status !== "succeeded") throw new Error(`set-up: paying ${paymentIntentId} left it ${paid.status}`);
}

// ---------------------------------------------------------------------------------------------
// Commands: plain data, so fast-check can print and shrink them. `pi` is an index into the
// world's PaymentIntents (taken modulo their number).

type EventKind = "payment_intent.succeeded" | "charge.refunded" | "charge.dispute.created" | "charge.dispute.closed";
type Target = "pi_read" | "pi_mark" | "credit_keys" | "ledger_write" | "ledger_read" | "batch_write";

/**
 * The longest a request and the SDK's automatic retries of it take under the test bindings:
 * three tries held by a hang (STRIPE_HANG_MS, 800 ms) and the SDK's backoff between them (at
 * most 0.5 s, then 1 s), with room to spare.
 */
const SDK_RETRY_HORIZON_MS = 6000;

/** Every fault kind the emulator has, in the variants that behave differently. */
const FAULTS = {
  error_500: { kind: "error_500" },
  error_500_unsaved: { kind: "error_500", saved: false },
  error_500_applied: { kind: "error_500", apply: true },
  drop: { kind: "drop" },
  drop_every_retry: { kind: "drop", replays: true },
  rate_limit: { kind: "rate_limit" },
  rate_limit_retry: { kind: "rate_limit", should_retry: true },
  in_use: { kind: "in_use" },
  hang: { kind: "hang" },
  hang_applied: { kind: "hang", apply: true },
  error_400: { kind: "error_400" },
} as const satisfies Record<string, { kind: string; saved?: boolean; apply?: boolean; replays?: boolean; should_retry?: boolean }>;
type FaultName = keyof typeof FAULTS;

/** Commands that may also run two at once (`together`): what real traffic overlaps. */
type Concurrent =
  | { op: "confirm"; pi: number; by: "owner" | "stranger"; n: number }
  | { op: "deliver"; pi: number; event: EventKind; pick: number }
  | { op: "operator_retry"; pi: number }
  | { op: "evict"; pi: number }
  | { op: "alarm"; pi: number }
  | { op: "debit"; account: number; amount: number; n: number }
  | { op: "sync"; account: number };

type Command =
  | Concurrent
  | { op: "pay"; pi: number }
  | { op: "refund"; pi: number; percent: number }
  | { op: "dispute"; pi: number }
  | { op: "close_dispute"; pi: number; outcome: "won" | "lost" }
  | { op: "fault"; pi: number; target: Target; fault: FaultName; times: number }
  | { op: "expire_keys"; pi: number }
  | { op: "pad"; account: number }
  | { op: "evict_account"; account: number }
  | { op: "foreign"; account: number; amount: number }
  | { op: "together"; a: Concurrent; b: Concurrent };

const piArb = fc.nat(2);

const confirmArb = fc.record({
  op: fc.constant("confirm" as const),
  pi: piArb,
  by: fc.oneof({ arbitrary: fc.constant("owner" as const), weight: 4 }, { arbitrary: fc.constant("stranger" as const), weight: 1 }),
  n: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 50 })),
});
const deliverArb = fc.record({
  op: fc.constant("deliver" as const),
  pi: piArb,
  event: fc.constantFrom<EventKind>("payment_intent.succeeded", "charge.refunded", "charge.dispute.created", "charge.dispute.closed"),
  pick: fc.nat(3),
});
const operatorArb = fc.record({ op: fc.constant("operator_retry" as const), pi: piArb });
const evictArb = fc.record({ op: fc.constant("evict" as const), pi: piArb });
const alarmArb = fc.record({ op: fc.constant("alarm" as const), pi: piArb });
/** Spending through the account's wallet, n at once, and its sync to Stripe (otherwise due only after STRIPE_SYNC_SECONDS). */
const debitArb = fc.record({
  op: fc.constant("debit" as const),
  account: fc.constantFrom(0, 1),
  amount: fc.constantFrom(1, 250, 999, 3000),
  n: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 20 })),
});
const syncArb = fc.record({ op: fc.constant("sync" as const), account: fc.constantFrom(0, 1) });
/**
 * An entry made in Stripe by something else (an invoice that used the balance: positive; a
 * Dashboard credit: negative). Written as the emulator's padding entries are (metadata
 * padding: "true"), so the strays check leaves it alone; the wallets must still take it in.
 */
const foreignArb = fc.record({ op: fc.constant("foreign" as const), account: fc.constantFrom(0, 1), amount: fc.constantFrom(-700, 300, 5000) });

const concurrentArb: fc.Arbitrary<Concurrent> = fc.oneof(
  { arbitrary: confirmArb, weight: 4 },
  { arbitrary: deliverArb, weight: 3 },
  { arbitrary: operatorArb, weight: 1 },
  { arbitrary: evictArb, weight: 1 },
  { arbitrary: alarmArb, weight: 2 },
  { arbitrary: debitArb, weight: 2 },
  { arbitrary: syncArb, weight: 1 },
);

const faultArb = fc.record({
  op: fc.constant("fault" as const),
  pi: piArb,
  target: fc.constantFrom<Target>("credit_keys", "pi_read", "ledger_read", "pi_mark", "ledger_write", "batch_write"),
  fault: fc.constantFrom(...(Object.keys(FAULTS) as FaultName[])),
  times: fc.integer({ min: 1, max: 5 }),
});

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { arbitrary: confirmArb, weight: 10 },
  { arbitrary: deliverArb, weight: 8 },
  { arbitrary: alarmArb, weight: 5 },
  { arbitrary: evictArb, weight: 4 },
  { arbitrary: operatorArb, weight: 2 },
  { arbitrary: faultArb, weight: 8 },
  { arbitrary: fc.record({ op: fc.constant("refund" as const), pi: piArb, percent: fc.oneof(fc.constant(100), fc.integer({ min: 1, max: 99 })) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("dispute" as const), pi: piArb }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("close_dispute" as const), pi: piArb, outcome: fc.constantFrom<"won" | "lost">("won", "lost") }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("pay" as const), pi: piArb }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("expire_keys" as const), pi: piArb }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant("together" as const), a: concurrentArb, b: concurrentArb }), weight: 4 },
  // Rare: the padding is quick, but every later ledger search then reads 20+ pages.
  { arbitrary: fc.record({ op: fc.constant("pad" as const), account: fc.constantFrom(0, 1) }), weight: 1 },
  { arbitrary: debitArb, weight: 5 },
  { arbitrary: syncArb, weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("evict_account" as const), account: fc.constantFrom(0, 1) }), weight: 2 },
  { arbitrary: foreignArb, weight: 1 },
);

// Most PIs are credited by the first confirm or webhook, after which Stripe is rarely called:
// a run often starts with faults already in place, so that they meet the credit itself.
const commandsArb = fc
  .tuple(
    fc.array(fc.oneof({ arbitrary: faultArb, weight: 3 }, { arbitrary: foreignArb, weight: 1 }), { maxLength: 3 }),
    fc.array(commandArb, { maxLength: 24, size: "medium" }),
  )
  .map(([prelude, rest]): Command[] => [...prelude, ...rest]);

/** Where a fault rule applies: always scoped to this run's PI or customer (other runs share the emulator). */
function faultScope(target: Target, pi: LivePi): { method: string; path: string; key?: string } {
  const customer = pi.owner.customerId;
  switch (target) {
    case "pi_read":
      return { method: "GET", path: `/v1/payment_intents/${pi.id}` };
    case "pi_mark":
      return { method: "POST", path: `/v1/payment_intents/${pi.id}` };
    case "credit_keys":
      // credit-tx:{pi}, credit-tx:{pi}:2, credit-adjust:{pi}:{operation}: this PI's ledger writes only.
      return { method: "POST", path: `/v1/customers/${customer}/balance_transactions`, key: `credit-*:${pi.id}*` };
    case "ledger_write":
      return { method: "POST", path: `/v1/customers/${customer}/balance_transactions` };
    case "ledger_read":
      return { method: "GET", path: `/v1/customers/${customer}/balance_transactions` };
    case "batch_write":
      // wallet-debits:{customer}:{n}: the owner's wallet writing its spending to Stripe.
      return { method: "POST", path: `/v1/customers/${customer}/balance_transactions`, key: `wallet-debits:${customer}:*` };
  }
}

/** Totals across runs, for the closing summary line. */
const totals = { runs: 0, shrinkRuns: 0, commands: 0, confirms: 0, deliveries: 0, faultRules: 0, faultsFired: 0, drainAlarms: 0, padded: 0, debits: 0 };

/** Runs one command against the service and the emulator, updating the model's view of Stripe. */
async function execute(run: Run, command: Command): Promise<void> {
  totals.commands++;
  if (command.op === "together") {
    await Promise.all([execute(run, command.a), execute(run, command.b)]);
    return;
  }
  if (command.op === "pad") {
    const account = run.accounts[command.account] as Account;
    await emu(`/customers/${account.customerId}/balance_transactions/pad`, { count: PADDING });
    totals.padded++;
    return;
  }
  if (command.op === "foreign") {
    // Straight into the emulator's store (one entry of `amount`), not through its API: the
    // run's faults are for the service's calls, and must neither hit nor be used up by this one.
    const account = run.accounts[command.account] as Account;
    await emu(`/customers/${account.customerId}/balance_transactions/pad`, { count: 1, amount: command.amount });
    return;
  }
  if (command.op === "debit" || command.op === "sync" || command.op === "evict_account") {
    await executeOnWallet(run.accounts[command.account] as Account, command);
    return;
  }
  const pi = run.pis[command.pi % run.pis.length] as LivePi;
  switch (command.op) {
    case "confirm": {
      const token = command.by === "owner" ? pi.owner.token : pi.stranger.token;
      const answers = await Promise.all(Array.from({ length: command.n }, async () => answerOf(await confirm(token, pi.id))));
      totals.confirms += command.n;
      for (const a of answers) run.answers.push({ pi: pi.index, by: command.by, status: a.status, code: a.code, txId: a.txId });
      return;
    }
    case "deliver": {
      const events = await eventsAbout(pi.id, command.event);
      const event = events[command.pick % Math.max(1, events.length)];
      if (!event) return;
      await deliverOne(run, event);
      return;
    }
    case "operator_retry": {
      const res = await call(`/operator/credits/${pi.id}/retry`, { method: "POST", headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } });
      await res.text();
      return;
    }
    case "evict":
      // Rejects when the object is not running: nothing to evict then.
      await evictDurableObject(piObject(pi.id)).catch(() => undefined);
      return;
    case "alarm":
      await runDurableObjectAlarm(piObject(pi.id));
      return;
    case "pay":
      if (!pi.paid) {
        await pay(pi.id);
        pi.paid = true;
      }
      return;
    case "refund": {
      // As Stripe: only a paid charge, not while a dispute holds it (open or lost), never more than is left.
      const left = pi.spec.amount - pi.refunded;
      if (!pi.paid || left <= 0 || (pi.dispute && pi.dispute.status !== "won")) return;
      const amount = command.percent >= 100 ? left : Math.max(1, Math.floor((left * command.percent) / 100));
      await emu(`/payment_intents/${pi.id}/refund`, { amount });
      pi.refunded += amount;
      return;
    }
    case "dispute": {
      // One dispute per charge, for what was not refunded.
      const left = pi.spec.amount - pi.refunded;
      if (!pi.paid || pi.dispute || left <= 0) return;
      const d = await emu<{ id: string }>(`/payment_intents/${pi.id}/dispute`, { amount: left });
      pi.dispute = { id: d.id, amount: left, status: "open" };
      return;
    }
    case "close_dispute":
      if (!pi.dispute || pi.dispute.status !== "open") return;
      await emu(`/disputes/${pi.dispute.id}/close`, { status: command.outcome });
      pi.dispute.status = command.outcome;
      return;
    case "fault": {
      const scope = faultScope(command.target, pi);
      // A hang holds each of the SDK's tries for STRIPE_HANG_MS: keep them few.
      const times = FAULTS[command.fault].kind === "hang" ? Math.min(command.times, 2) : command.times;
      const { id } = await emu<{ id: number }>("/faults", { ...FAULTS[command.fault], ...scope, times });
      const reach =
        command.target === "ledger_write" || command.target === "ledger_read"
          ? run.pis.filter((p) => p.owner === pi.owner)
          : command.target === "batch_write"
            ? []
            : [pi];
      run.faults.push({ id, name: command.fault, pis: reach.map((p) => p.index), fired: 0 });
      totals.faultRules++;
      return;
    }
    case "expire_keys":
      // Stripe forgets keys after 24 hours: every key naming this PI (mark, credit, adjustments),
      // except one whose request just failed: the SDK retries that within seconds, long before
      // Stripe could have forgotten it, and a test must not make the impossible happen.
      await emu("/idempotency/expire", { key: `*${pi.id}*`, spare_retrying_ms: SDK_RETRY_HORIZON_MS });
      return;
  }
}

function accountObject(account: Account) {
  return env.ACCOUNTS.getByName(account.accountId);
}

let debitKeys = 0;

/** Debits (each under its own Idempotency-Key), a sync, or a restart of the account's object. */
async function executeOnWallet(account: Account, command: Extract<Command, { op: "debit" | "sync" | "evict_account" }>): Promise<void> {
  const stub = accountObject(account);
  switch (command.op) {
    case "debit": {
      const request = { op: "debit", amount: command.amount, currency: "usd" } as const;
      const outcomes = await Promise.all(
        Array.from({ length: command.n }, async () => {
          const key = `model-debit-${++debitKeys}`;
          return stub.spend(account.accountId, request, key, await requestFingerprint("debit", null, { amount: command.amount, currency: "usd" }));
        }),
      );
      totals.debits += command.n;
      for (const o of outcomes) {
        if (o.kind !== "result" || !o.result.ok || o.result.op !== "debit") continue;
        account.spent += o.result.debit.amount;
        if (o.result.debit.balance.available < 0) account.overdrawn.push(`debit ${o.result.debit.id} left available ${o.result.debit.balance.available}`);
      }
      return;
    }
    case "sync":
      await stub.syncNow(account.accountId);
      return;
    case "evict_account":
      await evictDurableObject(stub).catch(() => undefined);
      return;
  }
}

interface EmittedEvent {
  id: string;
  type: string;
}

/** Delivers one event as Stripe would, noting an answer other than 200. */
async function deliverOne(run: Run, event: EmittedEvent): Promise<void> {
  const res = await deliver(event.id);
  const body = await res.text();
  totals.deliveries++;
  if (res.status !== 200) run.webhookErrors.push(`  webhook ${event.type} ${event.id} answered ${res.status} ${body.slice(0, 200)}`);
}

/** Events about one PaymentIntent, oldest first (of one type, when given). */
async function eventsAbout(paymentIntentId: string, type?: EventKind): Promise<EmittedEvent[]> {
  const q = new URLSearchParams({ payment_intent: paymentIntentId, ...(type ? { type } : {}) });
  return (await emu<{ data: EmittedEvent[] }>(`/events?${q.toString()}`)).data;
}

// ---------------------------------------------------------------------------------------------
// After the commands: Stripe behaves again, every event is delivered, alarms are drained.

const DELIVERED: readonly string[] = ["payment_intent.succeeded", "charge.refunded", "charge.dispute.created", "charge.dispute.closed"];

/** Removes the run's faults (noting which fired), delivers every event once, drains alarms. */
async function settleRun(run: Run): Promise<void> {
  await slowStripe(run, 0);
  const rules = (await emu<{ data: { id: number; fired: number }[] }>("/faults")).data;
  for (const f of run.faults) {
    f.fired = rules.find((r) => r.id === f.id)?.fired ?? 0;
    totals.faultsFired += f.fired;
    if (FAULTS[f.name].kind === "error_400" && f.fired > 0) for (const i of f.pis) (run.pis[i] as LivePi).refused400 = true;
    await emu(`/faults/${f.id}`, undefined, "DELETE");
  }
  // Stripe delivers every event at least once, eventually: the model's commands only add more.
  for (const pi of run.pis) {
    for (const e of await eventsAbout(pi.id)) {
      if (DELIVERED.includes(e.type)) await deliverOne(run, e);
    }
  }
  // The platform runs due alarms on its own; this runs them now instead of waiting out their
  // backoff. A PI is left alone once it has no alarm and nothing in its record is unfinished;
  // when its alarm does not run here, the platform is running it: wait a little.
  const deadline = Date.now() + DRAIN_MS;
  for (let round = 0; round < DRAIN_ROUNDS || Date.now() < deadline; round++) {
    let busy = false;
    let waiting = false;
    for (const pi of run.pis) {
      const stub = piObject(pi.id);
      if ((await alarmOf(pi)) === null && atRest(await stub.inspect(), isPaidTopUp(pi))) continue;
      busy = true;
      if (await runDurableObjectAlarm(stub)) totals.drainAlarms++;
      else waiting = true;
    }
    if (!busy) break;
    if (waiting) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Each wallet writes what it owes to Stripe and takes in what it lacks, as its alarm would.
  for (const account of run.accounts) {
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      const result = await accountObject(account).syncNow(account.accountId);
      const inspection = await accountObject(account).inspectWallet();
      if (result.ok && inspection.owed === 0 && inspection.batches.every((b) => b.state === "done")) break;
    }
  }
}

/** The PI object's alarm, if one is armed. */
function alarmOf(pi: LivePi): Promise<number | null> {
  return runInDurableObject(piObject(pi.id), (_instance, state) => state.storage.getAlarm());
}

/**
 * Nothing left to do without an operator: no record (unless the PI is a paid top-up, which a
 * webhook promised to credit), final, or waiting for an operator.
 */
function atRest(i: Inspection, owed: boolean): boolean {
  if (i.attempt_started_at !== null) return false;
  const r = i.record;
  if (!r) return !owed;
  if (r.state === "not_creditable" || r.state === "needs_attention") return true;
  return r.state === "credited" && markSettled(r.mark_state) && i.wallet_pending.length === 0 && i.adjustments.every((a) => a.state !== "pending");
}

/** Credited with nothing owed (mark written where one is wanted, every reversal written), or recorded as not creditable. */
function finalState(i: Inspection): boolean {
  const r = i.record;
  if (!r) return false;
  if (r.state === "not_creditable") return true;
  return r.state === "credited" && markSettled(r.mark_state) && i.wallet_pending.length === 0 && i.adjustments.every((a) => a.state === "done");
}

interface Listed {
  state: string;
  reason: string | null;
}

/** What the invariants look at, read once the run has settled. */
interface Outcome {
  /** Ledger entries naming each PI (metadata.payment_intent), from both customers, with the customer they are on. */
  entries: Map<string, (BalanceTransaction & { customer: string })[]>;
  /** Entries on the run's customers that name no PI of the run, are not padding and are not a wallet's batch. */
  strays: BalanceTransaction[];
  /** The wallets' batches of spending in Stripe, by customer. */
  batches: Map<string, BalanceTransaction[]>;
  inspections: Inspection[];
  alarms: (number | null)[];
  listed: Map<string, Listed>;
  wallets: WalletSeen[];
  /** Each PI's metadata.credited as Stripe has it now, by index. */
  credited: (string | undefined)[];
  /** How many marks and withdrawals (credit-mark:, credit-unmark: keys) were sent for each PI, by index. */
  markCalls: number[];
}

/** An account's wallet next to its customer's Stripe balance. */
interface WalletSeen {
  account: Account;
  /** available + held, or null while the wallet is not open. */
  total: number | null;
  /** The sum of the wallet's lines (must equal total). */
  linesTotal: number;
  /** The Stripe balance transactions the wallet has applied. */
  applied: Set<string>;
  /** −(the customer's Stripe balance): the credit Stripe holds for it. */
  stripeCredit: number;
  /** The ids of the events the account object produced (its outbox keeps sent ones for a week). */
  events: string[];
}

async function observeWallet(account: Account): Promise<WalletSeen> {
  const stub = env.ACCOUNTS.getByName(account.accountId);
  const inspection = await stub.inspectWallet();
  // One column of a table in the account object's storage, or nothing while the table does not exist.
  const column = (table: string, name: string, where = "") =>
    runInDurableObject(stub, (_instance, state) => {
      if (state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table).toArray().length === 0) return [] as string[];
      return state.storage.sql
        .exec<Record<string, string>>(`SELECT ${name} AS v FROM ${table} ${where}`)
        .toArray()
        .map((r) => r.v as string);
    });
  const applied = await column("entries", "stripe_tx", "WHERE stripe_tx IS NOT NULL");
  const events = await column("outbox", "id");
  const newest = (await emu<{ data: { ending_balance: number }[] }>(`/customers/${account.customerId}/balance_transactions`)).data[0];
  return {
    account,
    events,
    total: inspection.wallet ? inspection.wallet.available + inspection.wallet.held : null,
    linesTotal: inspection.sums.total,
    applied: new Set(applied),
    stripeCredit: -(newest?.ending_balance ?? 0),
  };
}

async function observe(run: Run): Promise<Outcome> {
  const entries = new Map<string, (BalanceTransaction & { customer: string })[]>(run.pis.map((p) => [p.id, []]));
  const strays: BalanceTransaction[] = [];
  const batches = new Map<string, BalanceTransaction[]>(run.accounts.map((a) => [a.customerId, []]));
  for (const account of run.accounts) {
    for (const tx of await ledgerFor(account.customerId)) {
      const list = entries.get(tx.metadata.payment_intent ?? "");
      if (list) list.push({ ...tx, customer: account.customerId });
      else if (tx.metadata.wallet_batch !== undefined && tx.metadata.account_id === account.accountId) batches.get(account.customerId)?.push(tx);
      else if (tx.metadata.padding !== "true") strays.push(tx);
    }
  }
  const inspections = await Promise.all(run.pis.map((p) => piObject(p.id).inspect()));
  const alarms = await Promise.all(run.pis.map(alarmOf));
  const wallets = await Promise.all(run.accounts.map(observeWallet));
  const credited = await Promise.all(run.pis.map(async (p) => (await stripePaymentIntent(p.id)).metadata.credited));
  const markCalls = await Promise.all(run.pis.map(async (p) => (await stripeRequests({ key: `credit-{mark,unmark}:${p.id}*` })).length));
  return { entries, strays, batches, inspections, alarms, listed: await operatorList(new Set(run.pis.map((p) => p.id))), wallets, credited, markCalls };
}

/** GET /operator/credits, every page, kept to `ids`. */
async function operatorList(ids: Set<string>): Promise<Map<string, Listed>> {
  const listed = new Map<string, Listed>();
  let after: string | null = null;
  for (let page = 0; page < 100; page++) {
    const q = new URLSearchParams({ limit: "200", ...(after ? { after } : {}) });
    const res = await call(`/operator/credits?${q.toString()}`, { headers: { authorization: `Bearer ${TEST_BINDINGS.OPERATOR_TOKEN}` } });
    if (res.status !== 200) throw new Error(`GET /operator/credits answered ${res.status} ${await res.text()}`);
    const body = await json<{ data: ({ payment_intent_id: string } & Listed)[]; next_after: string | null }>(res);
    for (const e of body.data) if (ids.has(e.payment_intent_id)) listed.set(e.payment_intent_id, { state: e.state, reason: e.reason });
    if (!body.next_after) break;
    after = body.next_after;
  }
  return listed;
}

// ---------------------------------------------------------------------------------------------
// The invariants. Each returns what it found wrong, in words.

const isPaidTopUp = (pi: LivePi) => (pi.spec.kind === "top_up" || pi.spec.kind === "unpaid_top_up" || pi.spec.kind === "direct_top_up") && pi.paid;
const credits = (o: Outcome, pi: LivePi) => (o.entries.get(pi.id) ?? []).filter((tx) => !tx.metadata.operation);
const reversals = (o: Outcome, pi: LivePi) => (o.entries.get(pi.id) ?? []).filter((tx) => tx.metadata.operation);
const label = (pi: LivePi) => `pi#${pi.index} ${pi.id} (${pi.spec.kind}${pi.paid ? "" : ", unpaid"}, ${pi.spec.amount}${pi.spec.marking ? ", marking" : ""})`;

/**
 * (1) Every paid top-up has exactly one credit entry, of its amount, on its own customer's
 * ledger; or, only where a permanent 400 was injected on its path, none, and an operator is
 * shown it with a reason.
 */
function everyPaidTopUpCreditedOnce(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const pi of run.pis.filter(isPaidTopUp)) {
    const c = credits(o, pi);
    const listed = o.listed.get(pi.id);
    if (c.length === 0 && pi.refused400 && listed?.reason) continue;
    if (c.length !== 1) {
      found.push(`(1) ${label(pi)}: ${c.length} credit entries${pi.refused400 ? `, refused with 400, operator list: ${JSON.stringify(listed ?? null)}` : ""}`);
      continue;
    }
    const [tx] = c as [BalanceTransaction & { customer: string }];
    if (tx.amount !== -pi.spec.amount || tx.customer !== pi.owner.customerId) {
      found.push(`(1) ${label(pi)}: credit ${tx.id} of ${tx.amount} on ${tx.customer}, expected ${-pi.spec.amount} on ${pi.owner.customerId}`);
    }
  }
  return found;
}

/** (2) Nothing else has any entry: no payment that is not a paid top-up, and nothing unexplained. */
function nothingElseCredited(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const pi of run.pis.filter((p) => !isPaidTopUp(p))) {
    const all = o.entries.get(pi.id) ?? [];
    if (all.length > 0) found.push(`(2) ${label(pi)}: ${all.length} ledger entries (${all.map((t) => t.amount).join(", ")}), expected none`);
  }
  for (const tx of o.strays) found.push(`(2) unexplained ledger entry ${tx.id} of ${tx.amount}: ${JSON.stringify(tx.metadata)}`);
  return found;
}

/**
 * (3) What a credited top-up still holds: credited − reversed = amount − refunded − disputed
 * amounts not won, and always within [0, amount]. Reversals are the entries with
 * metadata.operation (a debit positive, a restoration negative). Where a permanent 400 was
 * injected, a missing adjustment is allowed if an operator is shown the PI. No reversal without
 * a credit.
 */
function reversalsAddUp(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const pi of run.pis.filter(isPaidTopUp)) {
    const c = credits(o, pi);
    const r = reversals(o, pi);
    if (c.length !== 1) {
      if (r.length > 0) found.push(`(3) ${label(pi)}: ${r.length} reversal entries but ${c.length} credits`);
      continue;
    }
    const net = -(c[0] as BalanceTransaction).amount - r.reduce((sum, tx) => sum + tx.amount, 0);
    const disputed = pi.dispute && pi.dispute.status !== "won" ? pi.dispute.amount : 0;
    const expected = pi.spec.amount - pi.refunded - disputed;
    const detail = `net ${net} (reversals ${r.map((tx) => `${tx.metadata.operation}:${tx.amount}`).join(", ") || "none"}), refunded ${pi.refunded}, dispute ${JSON.stringify(pi.dispute)}`;
    if (net < 0 || net > pi.spec.amount) found.push(`(3) ${label(pi)}: outside [0, amount]: ${detail}`);
    else if (net !== expected && !(pi.refused400 && o.listed.has(pi.id))) found.push(`(3) ${label(pi)}: expected ${expected}, ${detail}`);
  }
  return found;
}

/**
 * (4) Every PI is final (credited with nothing owed, or not creditable), has an alarm armed, or
 * is listed for an operator. A PI with no record is final unless it is a paid top-up.
 */
function nothingLeftBehind(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const pi of run.pis) {
    const inspection = o.inspections[pi.index] as Inspection;
    if (!inspection.record && !isPaidTopUp(pi)) continue;
    if (finalState(inspection) || o.alarms[pi.index] !== null || o.listed.has(pi.id)) continue;
    const r = inspection.record;
    found.push(
      `(4) ${label(pi)}: not final, no alarm, not listed: ${r ? `state ${r.state}, mark ${r.mark_state}, adjustments ${JSON.stringify(inspection.adjustments.map((a) => [a.operation, a.state]))}` : "no record"}`,
    );
  }
  return found;
}

/**
 * (5) No confirm answer said credited/already_credited unless that PI's credit entry exists, and
 * every 200 names that entry's id; only the owner is ever told (a stranger gets 404); no answer
 * is a 500.
 */
function answersTellTheTruth(run: Run, o: Outcome): string[] {
  const found = new Set<string>();
  for (const a of run.answers) {
    const pi = run.pis[a.pi] as LivePi;
    const entry = credits(o, pi)[0];
    if (a.status === 200) {
      if (a.by !== "owner") found.add(`(5) ${label(pi)}: the stranger was answered 200 ${a.code}`);
      else if (a.code !== "credited" && a.code !== "already_credited") found.add(`(5) ${label(pi)}: 200 with status ${a.code}`);
      else if (!entry) found.add(`(5) ${label(pi)}: answered 200 ${a.code} (${a.txId}) but no credit entry exists`);
      else if (a.txId !== entry.id) found.add(`(5) ${label(pi)}: answered 200 ${a.code} naming ${a.txId}, the credit entry is ${entry.id}`);
    } else if (a.by === "stranger" && a.status !== 404 && a.status !== 429 && a.status !== 503) {
      found.add(`(5) ${label(pi)}: the stranger was answered ${a.status} ${a.code}, expected 404`);
    } else if (a.status >= 500 && a.status !== 503) {
      found.add(`(5) ${label(pi)}: answered ${a.status} ${a.code}`);
    }
  }
  return [...found];
}

/**
 * (6) Every credit and reversal in Stripe reached its account's wallet, once: the wallet has
 * applied each of the run's ledger entries on its customer, its figure (available + held) and
 * the sum of its lines both equal the credit Stripe holds for the customer. A wallet that never
 * opened is allowed only while Stripe holds no credit for its customer.
 */
function walletsMirrorStripe(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const w of o.wallets) {
    const who = `account ${run.accounts.indexOf(w.account)} (${w.account.accountId})`;
    if (w.total === null) {
      if (w.stripeCredit !== 0) found.push(`(6) ${who}: wallet never opened, Stripe holds ${w.stripeCredit}`);
      continue;
    }
    if (w.total !== w.stripeCredit) found.push(`(6) ${who}: wallet holds ${w.total}, Stripe holds ${w.stripeCredit}`);
    if (w.linesTotal !== w.total) found.push(`(6) ${who}: the wallet's lines add up to ${w.linesTotal}, its figure is ${w.total}`);
    for (const [pi, entries] of o.entries) {
      for (const tx of entries) {
        if (tx.customer === w.account.customerId && !w.applied.has(tx.id)) found.push(`(6) ${who}: ${tx.id} of ${pi} (${tx.amount}) never reached the wallet`);
      }
    }
  }
  return found;
}

/**
 * (7) Spending: no debit the wallet said yes to left it below zero, and what it said yes to is
 * in Stripe exactly once: one entry per batch number, adding up to the debits taken.
 */
function spendingMirroredOnce(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const account of run.accounts) {
    const who = `account ${run.accounts.indexOf(account)} (${account.accountId})`;
    for (const line of account.overdrawn) found.push(`(7) ${who}: ${line}`);
    const batches = o.batches.get(account.customerId) ?? [];
    const numbers = batches.map((tx) => tx.metadata.wallet_batch);
    if (new Set(numbers).size !== numbers.length) found.push(`(7) ${who}: a batch written twice: ${numbers.join(", ")}`);
    const written = batches.reduce((sum, tx) => sum + tx.amount, 0);
    if (written !== account.spent)
      found.push(`(7) ${who}: the wallet took ${account.spent} in debits, Stripe was written ${written} (batches ${numbers.join(", ")})`);
  }
  return found;
}

/**
 * (8) The seller hears of each credit, reversal and restoration that reached a wallet exactly
 * once (one event, its id derived from the balance transaction), whichever of the browser, the
 * webhook, the alarm or the sync brought it there; and of nothing else of that kind.
 */
function everyEntryAnnouncedOnce(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const w of o.wallets) {
    const who = `account ${run.accounts.indexOf(w.account)} (${w.account.accountId})`;
    const expected = new Set<string>();
    for (const [pi, entries] of o.entries) {
      for (const tx of entries) {
        if (tx.customer !== w.account.customerId || !w.applied.has(tx.id)) continue;
        const operation = tx.metadata.operation;
        const type = !operation ? "credit.added" : operation.startsWith("restore:") ? "credit.restored" : "credit.reversed";
        const id = eventId(type, tx.id);
        expected.add(id);
        if (!w.events.includes(id)) found.push(`(8) ${who}: ${tx.id} of ${pi} (${tx.amount}) reached the wallet with no ${type} event`);
      }
    }
    const creditEvents = w.events.filter((id) => /^evt_credit_(added|reversed|restored)_/.test(id));
    for (const id of creditEvents) if (!expected.has(id)) found.push(`(8) ${who}: event ${id} names no entry the wallet applied`);
    if (new Set(w.events).size !== w.events.length) found.push(`(8) ${who}: an event id produced twice: ${w.events.join(", ")}`);
  }
  return found;
}

/**
 * (9) The mark (metadata.credited, for an older server running beside this one) is set exactly
 * where the PI's object marks what it credits. Not marking: no record is marked, Stripe's PI
 * carries no mark, and no mark or withdrawal was ever sent. Marking: nothing is marked for a PI
 * that was not credited; a credit is marked in the record and at Stripe (or its mark is still
 * owed, with an alarm armed); a credit Stripe refused has had its mark taken back (or the
 * withdrawal is owed, with an alarm armed).
 */
function marksWhereWanted(run: Run, o: Outcome): string[] {
  const found: string[] = [];
  for (const pi of run.pis) {
    const r = (o.inspections[pi.index] as Inspection).record;
    const atStripe = o.credited[pi.index];
    const calls = o.markCalls[pi.index] ?? 0;
    const armed = o.alarms[pi.index] !== null;
    const seen = `record ${r ? `${r.state}, mark ${r.mark_state}` : "none"}, metadata.credited ${JSON.stringify(atStripe ?? null)}, ${calls} mark calls`;
    if (!pi.spec.marking) {
      if (atStripe !== undefined || calls > 0 || (r && r.state !== "not_creditable" && r.mark_state !== "off"))
        found.push(`(9) ${label(pi)}: not marking, yet ${seen}`);
      continue;
    }
    if (!r || r.state === "not_creditable") {
      if (atStripe !== undefined || calls > 0) found.push(`(9) ${label(pi)}: marked though never credited: ${seen}`);
    } else if (r.state === "credited") {
      const marked = r.mark_state === "done" && atStripe === "true";
      if (!marked && !(r.mark_state === "pending" && armed)) found.push(`(9) ${label(pi)}: credited but not marked: ${seen}`);
    } else if (r.state === "needs_attention") {
      const withdrawn = r.mark_state === "withdrawn" && (atStripe ?? "") === "";
      if (!withdrawn && !(r.mark_state === "withdrawing" && armed)) found.push(`(9) ${label(pi)}: a refused credit whose mark was not taken back: ${seen}`);
    }
  }
  return found;
}

const INVARIANTS = [
  marksWhereWanted,
  everyEntryAnnouncedOnce,
  everyPaidTopUpCreditedOnce,
  nothingElseCredited,
  reversalsAddUp,
  nothingLeftBehind,
  answersTellTheTruth,
  walletsMirrorStripe,
  spendingMirroredOnce,
];

// ---------------------------------------------------------------------------------------------
// The property, the runner, the report.

/** Whether runs are searching for a failure or shrinking one (for the summary's counts). */
let shrinking = false;

const property = fc.asyncProperty(worldArb, commandsArb, async (specs, commands) => {
  if (shrinking) totals.shrinkRuns++;
  else totals.runs++;
  const run = await buildWorld(specs);
  try {
    for (const command of commands) await execute(run, command);
  } finally {
    // Also after a command threw: never leave this run's faults on the shared emulator.
    await settleRun(run);
  }
  const outcome = await observe(run);
  const violations = INVARIANTS.flatMap((check) => check(run, outcome));
  if (violations.length > 0)
    throw new Error([...violations, "What the objects hold:", ...run.pis.map((pi) => state(pi, outcome)), ...run.webhookErrors].join("\n"));
});

/** One PI's record and the end of its journal, for a failure report. */
function state(pi: LivePi, o: Outcome): string {
  const i = o.inspections[pi.index] as Inspection;
  const r = i.record;
  const head = r ? `${r.state}, mark ${r.mark_state}, reason ${JSON.stringify(r.reason)}, last_error ${JSON.stringify(r.last_error)}` : "no record";
  const journal = i.journal.slice(-8).map((j) => `${j.step} ${j.outcome}${j.detail ? ` (${j.detail})` : ""}`);
  const busy = i.attempt_started_at === null ? "" : `; an attempt running for ${Date.now() - i.attempt_started_at} ms`;
  return `  ${label(pi)}: ${head}${busy}; alarm ${o.alarms[pi.index] === null ? "none" : "armed"}; listed ${JSON.stringify(o.listed.get(pi.id) ?? null)}; journal …${journal.join(" → ")}`;
}

function describeCommand(c: Command): string {
  switch (c.op) {
    case "confirm":
      return `confirm pi#${c.pi} by ${c.by} ×${c.n}`;
    case "deliver":
      return `deliver ${c.event} of pi#${c.pi} (event #${c.pick})`;
    case "refund":
      return `refund pi#${c.pi} ${c.percent >= 100 ? "in full" : `${c.percent}% of what is left`}`;
    case "close_dispute":
      return `close the dispute of pi#${c.pi} as ${c.outcome}`;
    case "fault":
      return `fault ${c.fault} ×${c.times} on ${c.target} of pi#${c.pi}`;
    case "pad":
      return `pad account ${c.account}'s ledger with ${PADDING} entries`;
    case "together":
      return `together { ${describeCommand(c.a)} | ${describeCommand(c.b)} }`;
    case "debit":
      return `debit ${c.amount} from account ${c.account} ×${c.n}`;
    case "sync":
      return `sync account ${c.account}'s wallet`;
    case "evict_account":
      return `restart account ${c.account}'s object`;
    case "foreign":
      return `a foreign entry of ${c.amount} on account ${c.account}'s customer`;
    default:
      return `${c.op.replace("_", " ")} pi#${c.pi}`;
  }
}

type Details = fc.RunDetails<[PiSpec[], Command[]]>;

function report(details: Details, runs: number, note: string): string {
  const [specs, commands] = details.counterexample ?? [[], []];
  return [
    `The model test failed in run ${runs} of ${RUNS} (${details.numShrinks} shrinks)${note}.`,
    `Replay: MODEL_SEED=${details.seed} MODEL_PATH=${details.counterexamplePath ?? ""} npm run test:model`,
    `World: ${specs.map((s, i) => `pi#${i} ${s.kind} ${s.amount} of account ${s.owner}${s.marking ? ", marking" : ""}`).join("; ")}`,
    `Commands (pi#n is taken modulo the number of PaymentIntents):`,
    ...commands.map((c, i) => `  ${i + 1}. ${describeCommand(c)}`),
    `Failure:`,
    details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance),
  ].join("\n");
}

it(`holds the invariants over ${PATH ? "a replayed run" : `${RUNS} random runs`}`, async () => {
  const seed = SEED ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const started = Date.now();
  let details: Details;
  let note = "";
  // The figures of the search itself, before any shrinking reran cases.
  let searched: typeof totals | null = null;
  if (PATH !== null) {
    // A replay runs exactly the case at that path, without shrinking it further.
    details = await fc.check(property, { seed, path: PATH, numRuns: 1, endOnFailure: true });
  } else {
    // Find a failure first without shrinking, so that the run count stays fixed; then shrink it
    // within a time budget (each try is a whole run against the service).
    details = await fc.check(property, { seed, numRuns: RUNS, endOnFailure: true });
    if (details.failed && details.counterexamplePath) {
      searched = { ...totals };
      shrinking = true;
      const shrunk = (await fc.check(property, { seed, path: details.counterexamplePath, plugins: [fc.interruptAfterTimeLimit(SHRINK_MS)] })) as Details;
      if (shrunk.failed && shrunk.counterexample !== null) details = { ...shrunk, numRuns: details.numRuns };
      else note = " (not reproduced within the shrinking budget, a race or a slow run: this is the unshrunk case)";
    }
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const t = searched ?? totals;
  console.log(
    `[model] seed ${seed}: ${t.runs} runs, ${t.commands} commands (${t.confirms} confirms, ${t.deliveries} webhook deliveries, ${t.padded} ledgers padded, ${t.debits} debits), ` +
      `${t.faultRules} fault rules, ${t.faultsFired} faults fired, ${t.drainAlarms} alarms run while draining` +
      `${totals.shrinkRuns ? `; then ${totals.shrinkRuns} runs shrinking the failure` : ""}; ${seconds} s`,
  );
  if (details.failed) throw new Error(report(details, details.numRuns, note));
});
