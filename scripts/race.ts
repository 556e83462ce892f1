// `npm run race -- --n 200`: against the running service (npm start), makes a fresh paid top-up
// and fires N concurrent confirms of it, then prints the answers by status, how many balance
// transactions Stripe holds for that PaymentIntent (it must be 1) and the elapsed time.
// Uses the service's routes (the demo sign-in needs DEMO_MODE=true) and pays as the page does,
// through Stripe's API with .dev.vars's publishable key and the top-up's client secret.
//   --n N        concurrent confirms (default 200)
//   --url URL    the service (default http://127.0.0.1:8787)

import { parseArgs } from "node:util";
import { loadDevVars } from "./dev-vars.js";

const { values } = parseArgs({ options: { n: { type: "string", default: "200" }, url: { type: "string", default: "http://127.0.0.1:8787" } } });
const n = Number(values.n);
const base = values.url.replace(/\/$/, "");
if (!Number.isInteger(n) || n < 1 || n > 10_000) {
  console.error("--n must be an integer from 1 to 10000");
  process.exit(2);
}

async function api<T>(path: string, init: RequestInit & { token?: string } = {}): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { "content-type": "application/json", ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
  });
  const body = (await res.json()) as T;
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

const account = `race-${Date.now().toString(36)}`;
const { token } = await api<{ token: string }>("/demo/sign_in", { method: "POST", body: JSON.stringify({ account_id: account }) });
const topUp = await api<{ payment_intent_id: string; client_secret: string; amount: number }>("/billing/top_ups", {
  method: "POST",
  token,
  body: JSON.stringify({ amount: 1000, currency: "usd" }),
});
const { STRIPE_API_BASE: stripeApi = "https://api.stripe.com", STRIPE_PUBLISHABLE_KEY: publishableKey = "" } = loadDevVars();
const paid = await fetch(`${stripeApi}/v1/payment_intents/${topUp.payment_intent_id}/confirm`, {
  method: "POST",
  headers: { authorization: `Bearer ${publishableKey}`, "content-type": "application/x-www-form-urlencoded" },
  body: new URLSearchParams({ client_secret: topUp.client_secret, payment_method: "pm_card_visa" }),
});
if (!paid.ok) throw new Error(`paying ${topUp.payment_intent_id}: ${paid.status} ${await paid.text()}`);
console.log(`PaymentIntent ${topUp.payment_intent_id} (${topUp.amount} usd, paid) for account ${account}; ${n} concurrent confirms…`);

const started = performance.now();
const answers = await Promise.all(
  Array.from({ length: n }, async () => {
    try {
      const res = await fetch(`${base}/billing/confirm_payment`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ payment_intent_id: topUp.payment_intent_id }),
      });
      const body = (await res.json()) as { status?: string; error?: { code: string }; balance_transaction_id?: string };
      return { key: `${res.status} ${body.status ?? body.error?.code ?? ""}`.trim(), tx: body.balance_transaction_id ?? null };
    } catch (err) {
      return { key: `network error (${(err as Error).message})`, tx: null };
    }
  }),
);
const elapsed = performance.now() - started;

const byStatus = new Map<string, number>();
for (const a of answers) byStatus.set(a.key, (byStatus.get(a.key) ?? 0) + 1);
const txIds = new Set(answers.map((a) => a.tx).filter((t) => t !== null));

let entries = 0;
let cursor: string | null = null;
do {
  const page: { data: { payment_intent_id: string | null; kind: string }[]; next_cursor: string | null } = await api(
    `/billing/transactions?limit=100${cursor ? `&cursor=${cursor}` : ""}`,
    { token },
  );
  entries += page.data.filter((d) => d.payment_intent_id === topUp.payment_intent_id && d.kind === "top_up").length;
  cursor = page.next_cursor;
} while (cursor);

console.log("\nanswers by status:");
for (const [k, v] of [...byStatus.entries()].sort()) console.log(`  ${String(v).padStart(6)}  ${k}`);
console.log(`distinct balance_transaction_id in answers: ${txIds.size}`);
console.log(`balance transactions Stripe holds for ${topUp.payment_intent_id}: ${entries}`);
console.log(`elapsed: ${elapsed.toFixed(0)} ms for ${n} confirms`);
process.exit(entries === 1 && txIds.size === 1 ? 0 : 1);
