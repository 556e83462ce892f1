// The spending rows of `npm run bench`: debits through the seller's API
// (POST /v1/accounts/{account_id}/debits, service token, a fresh Idempotency-Key each), this
// service against the older server's design (bench/baseline.ts: one Stripe write per debit
// under a per-account lock), each next to its own `/healthz` at the same concurrency.
//
// Stripe calls are read from the emulator's request log, by time window: a debit must make none.
// The wallet's sync to Stripe runs STRIPE_SYNC_SECONDS after an account's first unsynced debit,
// so its calls are told apart by time (on a debited account's customer, at least that long after
// the account's first debit) and counted on their own, once Stripe's balance equals every
// wallet's. With the default 60 s, none falls inside the debit rows on an unloaded machine.

import type { Emulator, RequestRecord } from "../test/emulator/emulator.js";
import { createCustomer } from "../test/emulator/customers.js";
import { cpuSpent, type StackCpu } from "./cpu.js";

export interface SpendSettings {
  emu: Emulator;
  edgeUrl: string;
  baselineUrl: string;
  /** The emulator's API, where a top-up is paid with the test card (as Stripe.js would). */
  stripeUrl: string;
  stripeKey: string;
  serviceToken: string;
  /** A signed-in browser's token for `account` (top-ups are made by the browser routes). */
  browserToken: (account: string) => Promise<string>;
  /** Debits per concurrent row (one account, and spread over `accounts`). */
  debits: number;
  /** Debits per one-at-a-time latency row. */
  latencyDebits: number;
  /** The baseline's one-account rows are capped here: one Stripe write at a time makes them slow. */
  baselineOneAccountDebits: number;
  concurrency: number;
  accounts: number;
  syncSeconds: number;
  /** The edge stack's processes: CPU per request is read for its rows at `concurrency` (bench/cpu.ts). */
  cpu?: StackCpu;
}

/** One row: `n` requests, `concurrency` in flight at a time. */
export interface SpendRow {
  system: "edge" | "baseline";
  name: string;
  n: number;
  concurrency: number;
  /** The `/healthz` floor the rows beside it are compared with. */
  floor: boolean;
  /** Answers by HTTP status. */
  statuses: Record<string, number>;
  /** Stripe API requests that arrived while the row ran (its own system's, see `callsIn`). */
  stripe_calls: number;
  p50_ms: number;
  p99_ms: number;
  per_s: number;
  /** Requests per second against the floor's, run side by side (the median of the blocks' ratios). */
  per_s_of_floor: number | null;
  /**
   * CPU ms per request of the Worker's workerd (edge rows at concurrency, read before and after
   * each block once the stack is quiet); on a debit row, with the floor's beside it and the
   * difference, the debit's own CPU.
   */
  cpu_ms?: number;
  cpu_ms_floor?: number;
  cpu_ms_per_debit?: number;
}

/** One kind of request in a group: `n` of them, `send(i)` answers the i-th's status. */
interface Kind {
  name: string;
  n: number;
  send: (i: number) => Promise<number>;
  /** Which Stripe requests count against this kind (not the other system's, nor the wallet's scheduled sync). */
  mine: (r: RequestRecord) => boolean;
  floor?: boolean;
}

/** What a group gathered for one kind: latencies, answers, its blocks' time windows and rates. */
interface Run {
  ms: number[];
  statuses: Record<string, number>;
  windows: [number, number][];
  rates: number[];
  /** The Worker's workerd CPU ms over the kind's blocks (when read). */
  cpuMs: number;
}

interface Measured {
  row: SpendRow;
  calls: RequestRecord[];
  windows: [number, number][];
}

export interface Target {
  name: string;
  figure: string;
  met: boolean;
}

export interface SpendResults {
  settings: Omit<SpendSettings, "emu" | "browserToken" | "serviceToken" | "stripeKey" | "edgeUrl" | "baselineUrl" | "stripeUrl" | "cpu">;
  rows: SpendRow[];
  /** Stripe calls by the edge while its debits ran, with their endpoints when not zero. */
  edge_calls_during_debits: { calls: number; debits: number; endpoints: Record<string, number> };
  /** The wallet's sync: its Stripe requests (see `isSync`), how many fell inside the rows, whether Stripe then equals every wallet. */
  sync: { accounts: number; writes: number; reads: number; debits: number; during_rows: number; waited_s: number; matches_wallet: number };
  targets: Target[];
}

const DEBIT_AMOUNT = 1;
const CURRENCY = "usd";
/** A top-up's bounds (TOPUP_MIN and TOPUP_MAX by default). */
const TOPUP_MIN = 500;
const TOPUP_MAX = 100_000;
const SETUP_CONCURRENCY = 8;
const WARM_DEBITS = 50;
/** Blocks per kind when rows run side by side at concurrency. */
const ROUNDS = 5;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : (s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0);
};
const round = (x: number) => Math.round(x * 10) / 10;

/** Runs `n` requests, `concurrency` at a time (each worker sends its next when its last is answered). */
export async function drive(
  n: number,
  concurrency: number,
  send: (i: number) => Promise<number>,
): Promise<{ ms: number[]; statuses: Record<string, number>; from: number; to: number; wallMs: number }> {
  const ms: number[] = [];
  const statuses: Record<string, number> = {};
  let next = 0;
  const from = Date.now();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = performance.now();
        const status = await send(i);
        ms.push(performance.now() - t);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  return { ms, statuses, from, to: Date.now(), wallMs: performance.now() - started };
}

/** Runs `job` on every item, at most `limit` at once. */
async function inParallel<T>(items: T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await job(items[i] as T);
    }),
  );
}

/**
 * Runs the rows; resolves to what finishes the part: the wait for the wallet's sync to Stripe
 * (STRIPE_SYNC_SECONDS after the first debits) and the targets. The caller may run other work on
 * other stacks meanwhile, as long as this stack and the emulator stay up.
 */
export async function runSpending(s: SpendSettings): Promise<() => Promise<SpendResults>> {
  const { emu } = s;
  const runId = Date.now().toString(36);
  const edgeAccount = (name: string) => `spend_${runId}_edge_${name}`;
  const baseAccount = (name: string) => `spend_${runId}_base_${name}`;
  const spread = Array.from({ length: s.accounts }, (_, i) => String(i));

  /** Stripe requests that arrived in [from, to] and that `mine` claims. */
  const callsIn = (from: number, to: number, mine: (r: RequestRecord) => boolean) => emu.log.filter((r) => r.at >= from && r.at <= to && mine(r));

  /** When each of this service's accounts was first debited: its sync is due no sooner than STRIPE_SYNC_SECONDS later. */
  const firstDebitAt = new Map<string, number>();
  const debitOnce = async (url: string, account: string, key: string): Promise<number> => {
    if (url === s.edgeUrl && !firstDebitAt.has(account)) firstDebitAt.set(account, Date.now());
    const res = await fetch(`${url}/v1/accounts/${account}/debits`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${s.serviceToken}`, "idempotency-key": key },
      body: JSON.stringify({ amount: DEBIT_AMOUNT, currency: CURRENCY }),
    });
    await res.arrayBuffer();
    return res.status;
  };
  const healthOnce = async (url: string): Promise<number> => {
    const res = await fetch(`${url}/healthz`);
    await res.arrayBuffer();
    return res.status;
  };

  const balanceOnce = async (account: string): Promise<number> => {
    const res = await fetch(`${s.edgeUrl}/v1/accounts/${account}/balance`, { headers: { authorization: `Bearer ${s.serviceToken}` } });
    await res.arrayBuffer();
    return res.status;
  };

  // --- Credited accounts -------------------------------------------------------------------
  // This service's: real top-ups (POST /billing/top_ups, paid with the emulator's test card,
  // POST /billing/confirm_payment), enough that no debit is refused.
  const edgeNeeds = new Map<string, number>([
    [edgeAccount("warm"), WARM_DEBITS],
    [edgeAccount("latency"), s.latencyDebits],
    [edgeAccount("one"), s.debits],
    ...spread.map((a): [string, number] => [edgeAccount(a), Math.ceil(s.debits / s.accounts)]),
  ]);
  const topUp = async (account: string, amount: number): Promise<void> => {
    const auth = { authorization: `Bearer ${await s.browserToken(account)}`, "content-type": "application/json" };
    const created = await fetch(`${s.edgeUrl}/billing/top_ups`, { method: "POST", headers: auth, body: JSON.stringify({ amount, currency: CURRENCY }) });
    const { payment_intent_id: pi } = (await created.json()) as { payment_intent_id: string };
    if (created.status !== 201) throw new Error(`top-up for ${account}: ${created.status}`);
    const paid = await fetch(`${s.stripeUrl}/v1/payment_intents/${pi}/confirm`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.stripeKey}`, "content-type": "application/x-www-form-urlencoded" },
      body: "payment_method=pm_card_visa",
    });
    await paid.arrayBuffer();
    if (!paid.ok) throw new Error(`paying ${pi}: ${paid.status}`);
    const confirmed = await fetch(`${s.edgeUrl}/billing/confirm_payment`, { method: "POST", headers: auth, body: JSON.stringify({ payment_intent_id: pi }) });
    await confirmed.arrayBuffer();
    if (confirmed.status !== 200) throw new Error(`confirming ${pi}: ${confirmed.status}`);
  };
  const sellerBalance = async (account: string): Promise<{ available: number; held: number }> => {
    const res = await fetch(`${s.edgeUrl}/v1/accounts/${account}/balance`, { headers: { authorization: `Bearer ${s.serviceToken}` } });
    if (!res.ok) throw new Error(`balance of ${account}: ${res.status}`);
    return (await res.json()) as { available: number; held: number };
  };
  await inParallel([...edgeNeeds], SETUP_CONCURRENCY, async ([account, debits]) => {
    let needed = debits * DEBIT_AMOUNT;
    do {
      const amount = Math.min(TOPUP_MAX, Math.max(TOPUP_MIN, needed));
      await topUp(account, amount);
      needed -= amount;
    } while (needed > 0);
    const { available } = await sellerBalance(account);
    if (available < debits * DEBIT_AMOUNT) throw new Error(`${account} has ${available}, needs ${debits * DEBIT_AMOUNT}`);
  });
  const customerOf = new Map<string, string>();
  const accountOf = new Map<string, string>();
  for (const c of emu.store.customers.values()) {
    if (c.metadata.account_id && edgeNeeds.has(c.metadata.account_id)) {
      customerOf.set(c.metadata.account_id, c.id);
      accountOf.set(c.id, c.metadata.account_id);
    }
  }
  const edgeCustomers = [...edgeNeeds.keys()].map((a) => customerOf.get(a) ?? "");
  /**
   * Whether a Stripe request is the wallet's sync: on one of this service's customers, at least
   * STRIPE_SYNC_SECONDS after that account's first debit was sent. Anything else the service
   * asks of Stripe while debits run is counted against the debits.
   */
  const isSync = (r: RequestRecord): boolean => {
    const account = accountOf.get(customerIn(r.path));
    const first = account === undefined ? undefined : firstDebitAt.get(account);
    return first !== undefined && r.at >= first + s.syncSeconds * 1000;
  };

  // The baseline's: customers made in the emulator, credited with one balance transaction each.
  const baseAccounts = [baseAccount("latency"), baseAccount("one"), ...spread.map(baseAccount)];
  const baseCustomers = new Set<string>();
  for (const account of baseAccounts) {
    const customer = createCustomer(emu.store, { metadata: { account_id: account } }, false);
    emu.store.addBalanceTransaction(customer, -(s.debits + s.latencyDebits + 100) * DEBIT_AMOUNT, CURRENCY, "bench credit", {});
    baseCustomers.add(customer.id);
  }
  const onBaseCustomer = (r: RequestRecord) => baseCustomers.has(customerIn(r.path));
  // Warm: one debit per account, so the baseline knows every customer (as the edge's account
  // objects do after their top-ups); and the edge's debit path, on an account of its own.
  await inParallel(baseAccounts, SETUP_CONCURRENCY, async (account) => {
    const status = await debitOnce(s.baselineUrl, account, `warm-${account}`);
    if (status !== 201) throw new Error(`baseline warm-up debit for ${account}: ${status}`);
  });
  for (let i = 0; i < WARM_DEBITS; i++) await debitOnce(s.edgeUrl, edgeAccount("warm"), `warm-${i}`);

  // --- The rows ----------------------------------------------------------------------------
  // Each debit row runs side by side with its floor, so that both meet the same machine: one at a
  // time, the kinds take turns request by request; at `concurrency`, they take turns in blocks,
  // ROUNDS times, and a row's requests per second is the median of its blocks' rates.
  const rows: SpendRow[] = [];
  const c = s.concurrency;
  const all = () => true;
  const notSync = (r: RequestRecord) => !isSync(r);
  const key = (tag: string) => (i: number) => `${runId}-${tag}-${i}`;
  const debitKind = (url: string, name: string, accountOf: (i: number) => string, tag: string, n: number, mine: Kind["mine"]): Kind => {
    const k = key(tag);
    return { name, n, send: (i) => debitOnce(url, accountOf(i), k(i)), mine };
  };

  const debitsFrom = Date.now();
  const [eFloor1, eLatency] = (await group("edge", 1, [
    { name: "GET /healthz", n: s.latencyDebits, send: () => healthOnce(s.edgeUrl), mine: all, floor: true },
    debitKind(s.edgeUrl, "debit, 1 account", () => edgeAccount("latency"), "l", s.latencyDebits, notSync),
    // The same hop to the account object with no write and no log line: where a debit's time goes.
    { name: "GET balance, 1 account", n: s.latencyDebits, send: () => balanceOnce(edgeAccount("latency")), mine: notSync },
  ])) as [Measured, Measured, Measured];
  const [eFloorC, eOne, eSpread] = (await group("edge", c, [
    { name: "GET /healthz", n: s.debits, send: () => healthOnce(s.edgeUrl), mine: all, floor: true },
    debitKind(s.edgeUrl, "debit, 1 account", () => edgeAccount("one"), "o", s.debits, notSync),
    debitKind(s.edgeUrl, `debit, ${s.accounts} accounts`, (i) => edgeAccount(spread[i % s.accounts] as string), "s", s.debits, notSync),
  ])) as [Measured, Measured, Measured];
  const debitsTo = Date.now();
  const edgeRows = [eLatency, eOne, eSpread];
  const edgeDebits = edgeRows.reduce((sum, r) => sum + r.row.n, 0);
  const during = edgeRows.flatMap((r) => r.calls);
  const syncDuring = edgeRows.reduce((sum, r) => sum + r.windows.reduce((n, [from, to]) => n + callsIn(from, to, isSync).length, 0), 0);
  const endpoints: Record<string, number> = {};
  for (const r of during) {
    const label = `${r.endpoint}${r.idempotency_key ? ` ${r.idempotency_key.split(":")[0] ?? ""}` : ""}`;
    endpoints[label] = (endpoints[label] ?? 0) + 1;
  }

  const bOne = Math.min(s.debits, s.baselineOneAccountDebits);
  const bLat = Math.min(s.latencyDebits, s.baselineOneAccountDebits);
  const [, bLatency] = (await group("baseline", 1, [
    { name: "GET /healthz", n: bLat, send: () => healthOnce(s.baselineUrl), mine: onBaseCustomer, floor: true },
    debitKind(s.baselineUrl, "debit, 1 account", () => baseAccount("latency"), "bl", bLat, onBaseCustomer),
  ])) as [Measured, Measured];
  const [, bOneRow, bSpread] = (await group("baseline", c, [
    { name: "GET /healthz", n: s.debits, send: () => healthOnce(s.baselineUrl), mine: onBaseCustomer, floor: true },
    debitKind(s.baselineUrl, "debit, 1 account", () => baseAccount("one"), "bo", bOne, onBaseCustomer),
    debitKind(s.baselineUrl, `debit, ${s.accounts} accounts`, (i) => baseAccount(spread[i % s.accounts] as string), "bs", s.debits, onBaseCustomer),
  ])) as [Measured, Measured, Measured];

  /** Runs `kinds` side by side (see above) and adds their rows. */
  async function group(system: SpendRow["system"], concurrency: number, kinds: Kind[]): Promise<Measured[]> {
    process.stdout.write(`  ${system}, ${concurrency} at a time: ${kinds.map((k) => k.name).join(", ")}…`);
    const runs = kinds.map((): Run => ({ ms: [], statuses: {}, windows: [], rates: [], cpuMs: 0 }));
    // Edge blocks at concurrency are read for CPU: one at a time, a request is well under a tick.
    const cpu = system === "edge" && concurrency > 1 ? s.cpu : undefined;
    const record = (run: Run, r: Awaited<ReturnType<typeof drive>>, n: number) => {
      run.ms.push(...r.ms);
      for (const [status, count] of Object.entries(r.statuses)) run.statuses[status] = (run.statuses[status] ?? 0) + count;
      run.windows.push([r.from, r.to]);
      run.rates.push((n / r.wallMs) * 1000);
    };
    if (concurrency === 1) {
      for (let i = 0; i < Math.max(...kinds.map((k) => k.n)); i++) {
        for (const [j, kind] of kinds.entries()) if (i < kind.n) record(runs[j] as Run, await drive(1, 1, () => kind.send(i)), 1);
      }
    } else {
      for (let round = 0; round < ROUNDS; round++) {
        for (const [j, kind] of kinds.entries()) {
          const from = Math.floor((kind.n * round) / ROUNDS);
          const to = Math.floor((kind.n * (round + 1)) / ROUNDS);
          if (cpu) await cpu.settle();
          const before = cpu?.sample();
          record(runs[j] as Run, await drive(to - from, concurrency, (i) => kind.send(from + i)), to - from);
          if (cpu && before) {
            await cpu.settle();
            (runs[j] as Run).cpuMs += cpuSpent(before, cpu.sample()).runtime;
          }
        }
      }
    }
    process.stdout.write(" done\n");
    const floorIndex = kinds.findIndex((k) => k.floor);
    // One at a time, a rate is 1 / the mean latency; in blocks, the median block's rate.
    const rateOf = (run: Run) => (concurrency === 1 ? (run.ms.length / run.ms.reduce((a, b) => a + b, 0)) * 1000 : quantile(run.rates, 0.5));
    const measured = kinds.map((kind, j): Measured => {
      const run = runs[j] as Run;
      // Requests still in flight when a block's last answer came are logged at arrival: none missed.
      const calls = run.windows.flatMap(([from, to]) => callsIn(from, to, kind.mine));
      const perS = rateOf(run);
      const floorRun = runs[floorIndex];
      const cpuPer = (r: Run | undefined, k: Kind | undefined) => (r && k && k.n > 0 ? Math.round((r.cpuMs / k.n) * 100) / 100 : 0);
      const cpuFigures = !cpu
        ? {}
        : kind.floor
          ? { cpu_ms: cpuPer(run, kind) }
          : {
              cpu_ms: cpuPer(run, kind),
              cpu_ms_floor: cpuPer(floorRun, kinds[floorIndex]),
              cpu_ms_per_debit: Math.round((cpuPer(run, kind) - cpuPer(floorRun, kinds[floorIndex])) * 100) / 100,
            };
      const ratio =
        kind.floor || !floorRun
          ? null
          : concurrency === 1
            ? perS / rateOf(floorRun)
            : quantile(
                run.rates.map((rate, r) => rate / (floorRun.rates[r] ?? rate)),
                0.5,
              );
      return {
        row: {
          system,
          name: kind.name,
          n: kind.n,
          concurrency,
          floor: kind.floor === true,
          statuses: run.statuses,
          stripe_calls: calls.length,
          p50_ms: round(quantile(run.ms, 0.5)),
          p99_ms: round(quantile(run.ms, 0.99)),
          per_s: round(perS),
          per_s_of_floor: ratio === null ? null : Math.round(ratio * 100) / 100,
          ...cpuFigures,
        },
        calls,
        windows: run.windows,
      };
    });
    rows.push(...measured.map((m) => m.row));
    return measured;
  }

  // --- The sync that follows ---------------------------------------------------------------
  // Every debited account's spending reaches Stripe's ledger within STRIPE_SYNC_SECONDS of its
  // first unsynced debit (a sync that ran while debits went on leaves the rest due one window
  // later): wait, bounded, until Stripe's balance is the wallet's for every account, then count
  // what the sync asked of Stripe.
  return async (): Promise<SpendResults> => {
    process.stdout.write(`  edge: waiting for the sync to Stripe (STRIPE_SYNC_SECONDS=${s.syncSeconds})…`);
    const waitFrom = Date.now();
    const wallets = new Map<string, number>();
    for (const [account] of edgeNeeds) {
      const wallet = await sellerBalance(account);
      wallets.set(customerOf.get(account) ?? "", wallet.available + wallet.held);
    }
    const synced = (customer: string) => -(emu.store.customers.get(customer)?.balance ?? 0) === wallets.get(customer);
    const deadline = debitsTo + (2 * s.syncSeconds + 30) * 1000;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    while (!edgeCustomers.every(synced) && Date.now() < deadline) await sleep(500);
    // Then until the reads that follow a batch's write (its intake of Stripe's entries) are done.
    const syncSoFar = () => callsIn(debitsFrom, Date.now(), isSync);
    for (let seen = -1; Date.now() < deadline; await sleep(1000)) {
      const now = syncSoFar();
      if (now.length === seen && now.every((r) => r.status !== 0)) break;
      seen = now.length;
    }
    const waitedS = round((Date.now() - waitFrom) / 1000);
    process.stdout.write(" done\n");
    const syncCalls = syncSoFar();
    // The wallet again, now: the sync must not have changed it (no entry taken in twice).
    let matches = 0;
    for (const [account] of edgeNeeds) {
      const cus = emu.store.customers.get(customerOf.get(account) ?? "");
      const wallet = await sellerBalance(account);
      if (cus && -cus.balance === wallet.available + wallet.held && wallets.get(cus.id) === wallet.available + wallet.held) matches++;
    }
    const sync = {
      accounts: edgeCustomers.length,
      writes: syncCalls.filter((r) => r.method === "POST").length,
      reads: syncCalls.filter((r) => r.method !== "POST").length,
      debits: edgeDebits + WARM_DEBITS,
      during_rows: syncDuring,
      waited_s: waitedS,
      matches_wallet: matches,
    };

    // --- Targets -----------------------------------------------------------------------------
    const floorGap = round(eLatency.row.p50_ms - eFloor1.row.p50_ms);
    const share = eOne.row.per_s_of_floor ?? 0;
    const refused = edgeRows.reduce((sum, r) => sum + r.row.n - (r.row.statuses["201"] ?? 0), 0);
    const targets: Target[] = [
      {
        name: "0 Stripe calls per debit",
        figure:
          `${during.length} calls during ${edgeDebits.toLocaleString("en")} debits (${perThousand(during.length, edgeDebits)} per 1,000) besides the scheduled sync` +
          ` (${syncDuring} of its calls fell inside the rows); baseline ${perThousand(bLatency.row.stripe_calls + bOneRow.row.stripe_calls + bSpread.row.stripe_calls, bLat + bOne + s.debits)} per 1,000`,
        met: during.length === 0,
      },
      {
        name: "debit p50 within 3 ms of /healthz (1 at a time)",
        figure: `${eLatency.row.p50_ms} ms against ${eFloor1.row.p50_ms} ms: ${floorGap >= 0 ? "+" : ""}${floorGap} ms`,
        met: floorGap <= 3,
      },
      {
        name: `debits/s on 1 account ≥ 90 % of /healthz/s (${c} at a time)`,
        figure: `${eOne.row.per_s}/s against ${eFloorC.row.per_s}/s: ${Math.round(share * 100)} % (median of ${ROUNDS} side-by-side blocks)`,
        met: share >= 0.9,
      },
      {
        name: "every debit answered 201 (enough credit)",
        figure:
          refused === 0
            ? `${edgeDebits.toLocaleString("en")} of ${edgeDebits.toLocaleString("en")}`
            : `${refused} not 201: ${edgeRows.map((r) => statusText(r.row.statuses)).join("; ")}`,
        met: refused === 0,
      },
      {
        name: "after the sync, Stripe's balance = the wallet",
        figure:
          `${matches} of ${sync.accounts} accounts. The sync, ${s.syncSeconds} s after each account's first debit: ${sync.writes} writes + ${sync.reads} reads` +
          ` for ${sync.debits.toLocaleString("en")} debits (${perThousand(sync.writes + sync.reads, sync.debits)} per 1,000)`,
        met: matches === sync.accounts,
      },
    ];

    const { emu: _emu, browserToken: _t, serviceToken: _s, stripeKey: _k, edgeUrl: _e, baselineUrl: _b, stripeUrl: _u, cpu: _c, ...settings } = s;
    return { settings, rows, edge_calls_during_debits: { calls: during.length, debits: edgeDebits, endpoints }, sync, targets };
  };
}

/** The customer a Stripe API path is about (`/v1/customers/{id}/…`), or "". */
function customerIn(path: string): string {
  return /^\/v1\/customers\/([A-Za-z0-9_]+)/.exec(path)?.[1] ?? "";
}

function perThousand(calls: number, debits: number): number {
  return debits === 0 ? 0 : round((calls / debits) * 1000);
}

function statusText(statuses: Record<string, number>): string {
  return Object.entries(statuses)
    .filter(([k]) => k !== "201" && k !== "200")
    .map(([k, v]) => `${v}×${k}`)
    .join(" ");
}

/** The spending table and the targets, as printed by `npm run bench`. */
export function spendingReport(r: SpendResults, latencyMs: number): string {
  const floorFor = (row: SpendRow) => r.rows.find((x) => x.system === row.system && x.concurrency === row.concurrency && x.floor);
  const header = [
    "system",
    "row",
    "n",
    "at once",
    "not 2xx",
    "Stripe calls",
    "per 1,000",
    "p50 ms",
    "p99 ms",
    "per s",
    "│",
    "p50 − floor",
    "per s ÷ floor",
    "│ CPU ms",
    "− floor",
  ];
  const cells = r.rows.map((row) => {
    const floor = floorFor(row);
    const isFloor = row.floor;
    return [
      row.system,
      row.name,
      row.n,
      row.concurrency,
      statusText(row.statuses),
      isFloor ? "" : row.stripe_calls,
      isFloor ? "" : perThousand(row.stripe_calls, row.n),
      row.p50_ms,
      row.p99_ms,
      row.per_s,
      "│",
      isFloor || !floor ? "" : round(row.p50_ms - floor.p50_ms),
      row.per_s_of_floor ?? "",
      `│ ${row.cpu_ms ?? ""}`,
      row.cpu_ms_per_debit ?? "",
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => String(c[i]).length)));
  const line = (cs: (string | number)[]) => cs.map((c, i) => (i < 2 ? String(c).padEnd(widths[i] ?? 0) : String(c).padStart(widths[i] ?? 0))).join("  ");
  const out = [
    `Spending: POST /v1/accounts/{id}/debits, ${DEBIT_AMOUNT} ${CURRENCY} minor unit each, L = ${latencyMs} ms per Stripe call. Each row runs side by side with its floor, GET /healthz on the same server at the same concurrency: one request of each kind in turn when one at a time, else ${ROUNDS} rounds of one block of each (per s: the median block; per s ÷ floor: the median of the blocks' ratios). CPU ms: the Worker's workerd per request, read over the blocks at concurrency; − floor: a debit's over an empty request's.`,
    "",
    line(header),
    ...cells.map(line),
    "",
  ];
  const tw = Math.max(...r.targets.map((t) => t.name.length));
  for (const t of r.targets) out.push(`${t.met ? "✓" : "✗"} ${t.name.padEnd(tw)}  ${t.figure}`);
  if (r.edge_calls_during_debits.calls > 0) out.push(`  Stripe calls during the debits: ${JSON.stringify(r.edge_calls_during_debits.endpoints)}`);
  out.push("", "Against the older design (edge ÷ baseline, same rows):");
  for (const row of r.rows.filter((x) => x.system === "edge" && !x.floor && x.name.startsWith("debit"))) {
    const base = r.rows.find((x) => x.system === "baseline" && x.name === row.name && x.concurrency === row.concurrency);
    if (!base) continue;
    const times = (a: number, b: number) => (b === 0 ? "-" : `${Math.round((a / b) * 100) / 100}×`);
    out.push(
      `  ${`${row.name}, ${row.concurrency} at a time:`.padEnd(34)} p50 ${row.p50_ms} ms vs ${base.p50_ms} ms (${times(row.p50_ms, base.p50_ms)}),` +
        ` ${row.per_s}/s vs ${base.per_s}/s (${times(row.per_s, base.per_s)}), Stripe calls ${perThousand(row.stripe_calls, row.n)} vs ${perThousand(base.stripe_calls, base.n)} per 1,000`,
    );
  }
  return out.join("\n");
}
