// The storefront in a real browser: `wrangler dev` and the emulator started as `npm start`
// starts them (on free ports, settings passed with --var), Debian's Chromium driven by
// playwright-core, at phone width. The page pays the way a production page does: it loads
// Stripe.js from STRIPE_JS_URL (here the emulator's stand-in) and pays through the Payment
// Element, Stripe.js confirming with the publishable key and the client secret. Sign in with the
// keyboard, top up, see the balance rise once; double-click "Top up" and "Pay" and see it rise
// once more, not twice; a declined card says so and credits nothing. All of it under the page's
// Content-Security-Policy, with no violation reported, and the bearer token never in a URL nor
// sent to Stripe. Then spend: "Use credit" goes through the seller's API (the demo route signs
// with SERVICE_TOKEN on the server), available drops by the amount per press and once per
// double-click, each debit is a ledger line, and spending past zero says "Not enough credit".
// Then auto-recharge with a card that asks for 3-D Secure every time: saved by a top-up (the
// bank's challenge answered in the page), charged off-session when spending takes credit below
// the threshold, which the bank refuses without the customer, so the page asks the customer to
// confirm it; a failed challenge leaves it waiting, a completed one credits it once.
// Screenshots are kept in test-results/.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../scripts/dev-vars.js";
import { freePort, startStack, type RunningStack } from "../../scripts/stack.js";
import { reportSpec } from "../emulator/openapi.js";
import { chromiumAvailable, launchChromium, watchPage } from "./browser.js";

const WEBHOOK_SECRET = "whsec_e2e_secret";
// Two values, as during a rotation: the demo route signs with the first.
const SERVICE_TOKEN = "svc_e2e_token_0123456789,svc_e2e_token_next_abcdef";
const PUBLISHABLE_KEY = "pk_test_e2e";
const runnable = chromiumAvailable("the browser test");

let stack: RunningStack;
let browser: Browser;
let state: string;
const logs: string[] = [];

beforeAll(async () => {
  if (!runnable) return;
  state = mkdtempSync(join(tmpdir(), "e2e-state-"));
  const emulatorPort = await freePort();
  stack = await startStack({
    workerPort: await freePort(),
    emulatorPort,
    webhookSecret: WEBHOOK_SECRET,
    persistTo: state,
    // Everything the Worker needs, over whatever .dev.vars says: this also proves --var wins.
    vars: {
      STRIPE_SECRET_KEY: "sk_test_e2e",
      STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      AUTH_JWT_SECRET: "e2e-secret-e2e-secret-e2e-secret-0123",
      DEMO_MODE: "true",
      SERVICE_TOKEN,
      // STRIPE_JS_URL is the emulator's stand-in: startStack sets it whenever it runs the emulator.
      STRIPE_PUBLISHABLE_KEY: PUBLISHABLE_KEY,
      // Each debit is written to Stripe at once, so the test can see Stripe agree with the wallet.
      STRIPE_SYNC_SECONDS: "0",
    },
    log: (line) => logs.push(line),
  });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  // What the page, Stripe.js's stand-in and the Worker sent, checked against Stripe's spec.
  const spec = stack?.emulator?.emulator.spec.summary();
  await browser?.close();
  await stack?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
  if (spec) reportSpec("e2e page", spec);
});

const minor = (page: Page) => page.$eval("#balance", (el) => Number((el as HTMLElement).dataset.minor));

/** watchPage's findings, and the Authorization header of each request to another origin than the Worker's. */
async function watch(page: Page, expected: RegExp | null = null) {
  const foreignAuth: { url: string; authorization: string | null }[] = [];
  const seen = await watchPage(page, expected, (r) => {
    if (new URL(r.url()).origin !== new URL(stack.workerUrl).origin) foreignAuth.push({ url: r.url(), authorization: r.headers()["authorization"] ?? null });
  });
  return { ...seen, foreignAuth };
}

/** Waits for the top-up status region to show an answer (ok or bad) and returns it. */
async function statusAnswered(page: Page): Promise<{ text: string; ok: boolean }> {
  const el = await page.waitForSelector("#status.ok, #status.bad", { timeout: 30_000 });
  return { text: (await el.textContent()) ?? "", ok: await el.evaluate((e) => e.classList.contains("ok")) };
}

/**
 * Tops up through the page: "Top up" shows Stripe.js's Payment Element, the card goes into it
 * (left as prefilled when `card` is not given), "Pay" pays. Each press once, or double-clicked.
 */
async function topUp(page: Page, amount: string, options: { card?: string; how?: "click" | "dblclick" } = {}) {
  const how = options.how ?? "click";
  await page.$eval("#status", (el) => el.classList.remove("ok", "bad"));
  await page.getByLabel("Top-up amount (USD)").fill(amount);
  const press = (name: string | RegExp) => {
    const button = page.getByRole("button", { name });
    return how === "click" ? button.click() : button.dblclick();
  };
  await press("Top up");
  return pay(page, options.card, press);
}

/** Types `card` (if given) into the mounted Payment Element and presses "Pay". */
async function pay(page: Page, card: string | undefined, press = (name: RegExp) => page.getByRole("button", { name }).click()) {
  const field = page.getByLabel("Card number");
  await field.waitFor({ state: "visible", timeout: 30_000 });
  if (card !== undefined) await field.fill(card);
  await page.$eval("#status", (el) => el.classList.remove("ok", "bad"));
  await press(/^Pay /);
  return statusAnswered(page);
}

/** The page's requests to the service's routes: each one sent, with its Idempotency-Key, and how many are answered. */
function trackRequests(page: Page) {
  const sent: { path: string; key: string | null }[] = [];
  let answered = 0;
  const ours = (url: string) => /^\/(billing|demo)\//.test(new URL(url).pathname);
  page.on("request", (r) => {
    if (ours(r.url())) sent.push({ path: new URL(r.url()).pathname, key: r.headers()["idempotency-key"] ?? null });
  });
  const done = (r: { url(): string }) => {
    if (ours(r.url())) answered += 1;
  };
  page.on("requestfinished", done);
  page.on("requestfailed", done);
  return {
    sent,
    /** Resolves once every request sent so far has its answer (a double-click's second request included). */
    settled: () => expect.poll(() => answered, { timeout: 30_000 }).toBe(sent.length),
  };
}

/** Waits until the page shows `available` (in minor units) as the balance. */
const availableIs = (page: Page, available: number) =>
  page.waitForFunction((want) => (document.getElementById("balance") as HTMLElement).dataset.minor === String(want), available, { timeout: 30_000 });

/** The page's "Use credit" status region: its text once a spend has been answered (ok or bad). */
async function spendAnswered(page: Page): Promise<{ text: string; ok: boolean }> {
  const el = await page.waitForSelector("#spend-status.ok, #spend-status.bad", { timeout: 30_000 });
  return { text: (await el.textContent()) ?? "", ok: await el.evaluate((e) => e.classList.contains("ok")) };
}

/** Presses "Use credit" (once, or a double-click) and waits for the page to show the answer. */
async function useCredit(page: Page, how: "click" | "dblclick" = "click"): Promise<{ text: string; ok: boolean }> {
  // Clear the last answer first, so the wait below sees this press's answer.
  await page.$eval("#spend-status", (el) => el.classList.remove("ok", "bad"));
  const button = page.getByRole("button", { name: "Use credit" });
  await (how === "click" ? button.click() : button.dblclick());
  const answer = await spendAnswered(page);
  // The page refreshes balance and ledger after each answer; the button is enabled before that.
  await page.waitForFunction(() => !(document.getElementById("spend") as HTMLButtonElement).disabled);
  return answer;
}

/** The seller's own view of an account, as its backend would read it. */
async function seller<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.workerUrl}/v1/accounts/${path}`, { headers: { authorization: `Bearer ${SERVICE_TOKEN.split(",")[0]}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

/** The emulator as a test reads it from outside: its Stripe API (with a secret key) and its control API. */
async function emulatorGet<T>(path: string): Promise<T> {
  const res = await fetch(`${stack.emulator?.url}${path}`, { headers: { authorization: "Bearer sk_test_e2e" } });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

interface EmulatedIntent {
  id: string;
  status: string;
  amount: number;
  payment_method: string | null;
  setup_future_usage: string | null;
  metadata: Record<string, string>;
}

/**
 * Slows the emulator's answers to `method` `path` (a glob) by `ms`, until the returned function
 * is called (which removes every latency rule: no other test here sets one).
 */
async function slowStripe(method: string, path: string, ms: number): Promise<() => Promise<void>> {
  const url = `${stack.emulator?.url}/_emulator/latency`;
  const set = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ms, method, path }) });
  expect(set.status).toBe(200);
  return async () => {
    expect((await fetch(url, { method: "DELETE" })).status).toBe(200);
  };
}

/** The 3-D Secure challenge Stripe.js shows over the page, answered as the cardholder chooses. */
async function answerChallenge(page: Page, outcome: "Complete authentication" | "Fail authentication") {
  const dialog = page.getByRole("dialog", { name: "Authenticate this payment" });
  await dialog.waitFor({ state: "visible", timeout: 30_000 });
  await dialog.getByRole("button", { name: outcome }).click();
  await dialog.waitFor({ state: "detached" });
}

describe.skipIf(!runnable)("the top-up page", () => {
  it("signs in, pays through Stripe.js once per click-intent, under the page's policy, and shows the balance and ledger", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const requests = trackRequests(page);
    const seen = await watch(page);
    const response = await page.goto(stack.workerUrl);
    await expect(page.title()).resolves.toBe("Prepaid credit");

    // The policy the page runs under: its own scripts and Stripe.js's, here the emulator's stand-in.
    const emulatorOrigin = stack.emulator?.url ?? "";
    const policy = (await response?.allHeaders())?.["content-security-policy"] ?? "";
    expect(policy).toMatch(new RegExp(`script-src 'self' https://js\\.stripe\\.com [^;]*${emulatorOrigin.replace(/[.:/]/g, "\\$&")}`));
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).not.toContain("unsafe-inline");
    const config: unknown = await page.evaluate(async () => (await (await fetch("/billing/config")).json()) as unknown);
    expect(config).toEqual({ publishable_key: PUBLISHABLE_KEY, stripe_js_url: `${emulatorOrigin}/v3/`, demo_mode: true });

    // Keyboard only: the field is labelled, Enter submits.
    const account = `e2e-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#wallet:not([hidden])");
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "0");

    // Still by keyboard: Enter in the amount shows the card form, focus moves into it, Enter pays.
    await page.getByLabel("Top-up amount (USD)").fill("12.34");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.activeElement?.getAttribute("autocomplete") === "cc-number", null, { timeout: 30_000 });
    await expect(page.getByRole("button", { name: "Pay $12.34" }).isVisible()).resolves.toBe(true);
    // The stand-in comes prefilled with the test card: type it over, as a customer would.
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.type("4242424242424242");
    await page.$eval("#status", (el) => el.classList.remove("ok", "bad"));
    await page.keyboard.press("Enter");
    await expect(statusAnswered(page)).resolves.toEqual({ text: "$12.34 added.", ok: true });
    expect(await minor(page)).toBe(1234);
    await expect(page.locator("#pay-form").isHidden()).resolves.toBe(true);

    // A double-click on "Top up" and on "Pay" is one top-up and one payment.
    await expect(topUp(page, "5.00", { how: "dblclick" })).resolves.toEqual({ text: "$5.00 added.", ok: true });
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "1734", null, { timeout: 30_000 });
    // Whatever the double-click sent has been answered; Stripe's side below shows no second payment.
    await requests.settled();
    expect(await minor(page)).toBe(1734);
    await page.reload();
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "1734");
    await expect(page.locator("#ledger tbody tr").count()).resolves.toBe(2);

    // What Stripe holds agrees: two PaymentIntents for the account, two credits.
    const emu = stack.emulator;
    const intents = [...(emu?.emulator.store.paymentIntents.values() ?? [])].filter((p) => p.metadata.account_id === account);
    expect(intents).toHaveLength(2);
    const customer = intents[0]?.customer ?? "";
    expect((emu?.emulator.store.balanceTransactions.get(customer) ?? []).map((t) => t.amount)).toEqual([-1234, -500]);

    // Stripe.js paid each one once, from the browser, with the publishable key and nothing of ours.
    const confirms = seen.foreignAuth.filter((r) => /\/v1\/payment_intents\/pi_\w+\/confirm$/.test(r.url));
    expect(confirms.map((r) => r.url).sort()).toEqual(intents.map((p) => `${emulatorOrigin}/v1/payment_intents/${p.id}/confirm`).sort());
    const token = (await page.evaluate(() => sessionStorage.getItem("token"))) ?? "";
    expect(token.length).toBeGreaterThan(20);
    expect(seen.foreignAuth.every((r) => r.authorization === null || r.authorization === `Bearer ${PUBLISHABLE_KEY}`)).toBe(true);
    // The bearer token travels in the Authorization header only: in no URL the page asked for.
    expect(seen.urls.length).toBeGreaterThan(10);
    expect(seen.urls.filter((u) => u.includes(token))).toEqual([]);

    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-topup.png"), fullPage: true });
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);

    // And the policy is what would stop an injected script: an inline one does not run, and says so.
    const ran = await page.evaluate(() => {
      const script = document.createElement("script");
      script.textContent = "window.injected = true";
      document.body.append(script);
      return (window as unknown as { injected?: boolean }).injected === true;
    });
    expect(ran).toBe(false);
    await expect.poll(() => seen.violations).toEqual(["script-src-elem inline"]);
  }, 120_000);

  it("says a declined card was declined, credits nothing, and pays with the next card", async () => {
    const page = await browser.newPage({ viewport: { width: 360, height: 780 } });
    // The emulator answers a declined confirm 402, which the browser logs.
    const seen = await watch(page, /status of 402/);
    await page.goto(stack.workerUrl);
    const account = `e2e-declined-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "0");

    await expect(topUp(page, "7.00", { card: "4000 0000 0000 0002" })).resolves.toEqual({ text: "Your card was declined.", ok: false });
    // The card form stays, for another card; nothing was credited, on the page or at Stripe.
    await expect(page.locator("#pay-form").isVisible()).resolves.toBe(true);
    expect(await minor(page)).toBe(0);
    const intent = () => [...(stack.emulator?.emulator.store.paymentIntents.values() ?? [])].filter((p) => p.metadata.account_id === account);
    expect(intent().map((p) => p.status)).toEqual(["requires_payment_method"]);

    // Phone width: the card form fits the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-declined.png"), fullPage: true });

    // A mistyped number is caught before anything is sent.
    await expect(pay(page, "4242 4242 4242 4241")).resolves.toEqual({ text: "Your card number is invalid.", ok: false });

    await expect(pay(page, "4242 4242 4242 4242")).resolves.toEqual({ text: "$7.00 added.", ok: true });
    expect(await minor(page)).toBe(700);
    expect(intent().map((p) => p.status)).toEqual(["succeeded"]);
    await expect(page.locator("#ledger tbody tr").count()).resolves.toBe(1);
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
  }, 120_000);

  it("credits a payment that comes back from a redirect, and drops the client secret from the address", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const seen = await watch(page);
    await page.goto(stack.workerUrl);
    await page.getByLabel("Account id").fill(`e2e-return-${Date.now().toString(36)}`);
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "0");

    // A top-up paid away from the page, as a bank's page would, with what Stripe.js holds.
    const made = await page.evaluate(async () => {
      const res = await fetch("/billing/top_ups", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": crypto.randomUUID(), authorization: `Bearer ${sessionStorage.getItem("token")}` },
        body: JSON.stringify({ amount: 900, currency: "usd" }),
      });
      return (await res.json()) as { payment_intent_id: string; client_secret: string };
    });
    const paid = await fetch(`${stack.emulator?.url}/v1/payment_intents/${made.payment_intent_id}/confirm`, {
      method: "POST",
      headers: { authorization: `Bearer ${PUBLISHABLE_KEY}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_secret: made.client_secret, payment_method: "pm_card_visa" }),
    });
    expect(paid.status).toBe(200);

    // Stripe sends the customer back to return_url with the PaymentIntent in the query.
    const back = new URL(stack.workerUrl);
    back.searchParams.set("payment_intent", made.payment_intent_id);
    back.searchParams.set("payment_intent_client_secret", made.client_secret);
    back.searchParams.set("redirect_status", "succeeded");
    await page.goto(back.toString());
    await expect(statusAnswered(page)).resolves.toMatchObject({ ok: true });
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "900", null, { timeout: 30_000 });
    expect(new URL(page.url()).search).toBe("");
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
  }, 120_000);

  it("uses credit through the seller's API: once per press, once per double-click, until not enough", async () => {
    const page = await browser.newPage({ viewport: { width: 360, height: 780 } });
    // The browser logs each non-2xx fetch; the 401, 402s and 409 below are expected answers.
    const seen = await watch(page, /status of (401|402|409)/);
    const requests = trackRequests(page);

    await page.goto(stack.workerUrl);
    const account = `e2e-spend-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await availableIs(page, 0);
    await expect(topUp(page, "5.00")).resolves.toEqual({ text: "$5.00 added.", ok: true });
    await availableIs(page, 500);
    expect(await page.$eval("#held", (el) => (el as HTMLElement).dataset.minor)).toBe("0");

    // The spending controls: a labelled amount, a named button, answers in a polite live region.
    await page.getByLabel("Amount to use (USD)").fill("1.25");
    const status = page.locator("#spend-status");
    await expect(status.getAttribute("role")).resolves.toBe("status");
    await expect(status.getAttribute("aria-live")).resolves.toBe("polite");

    // Two presses, two debits of 1.25.
    await expect(useCredit(page)).resolves.toEqual({ text: "Used $1.25. $3.75 available.", ok: true });
    await availableIs(page, 375);
    await expect(useCredit(page)).resolves.toEqual({ text: "Used $1.25. $2.50 available.", ok: true });
    await availableIs(page, 250);
    await page.waitForFunction(() => document.querySelectorAll('#ledger tbody tr[data-kind="debit"]').length === 2);
    await expect(page.locator('#ledger tbody tr[data-kind="debit"] td.num').allTextContents()).resolves.toEqual(["−$1.25", "−$1.25"]);

    // A double-click is one spend: once every request the page sent is answered, the wallet has
    // one debit per Idempotency-Key sent, and one more than before.
    await useCredit(page, "dblclick");
    await availableIs(page, 125);
    await page.waitForFunction(() => document.querySelectorAll('#ledger tbody tr[data-kind="debit"]').length === 3);
    await requests.settled();
    const keys = requests.sent.filter((r) => r.path === "/demo/spend").map((r) => r.key);
    type Lines = { data: { kind: string; amount: number; description: string | null }[] };
    const debits = (await seller<Lines>(`${account}/transactions`)).data.filter((l) => l.kind === "debit");
    expect(debits).toHaveLength(3);
    expect(new Set(keys).size).toBe(3);
    expect(debits.every((d) => d.amount === -125 && d.description === "Demo page")).toBe(true);

    // Spend until there is not enough: the last 1.25 goes, the next press is refused and says so.
    await expect(useCredit(page)).resolves.toEqual({ text: "Used $1.25. $0.00 available.", ok: true });
    await availableIs(page, 0);
    await expect(useCredit(page)).resolves.toEqual({ text: "Not enough credit: $0.00 available.", ok: false });
    expect(await minor(page)).toBe(0);
    await expect(page.locator('#ledger tbody tr[data-kind="debit"]').count()).resolves.toBe(4);
    await expect(seller(`${account}/balance`)).resolves.toMatchObject({ available: 0, held: 0, currency: "usd" });

    // The demo route hands back the seller's answers as they are: its idempotency (the first
    // answer replayed, a 402 included; another body under the same key refused) and its auth.
    const answers = await page.evaluate(async () => {
      const send = async (amount: number, token: string | null) => {
        const res = await fetch("/demo/spend", {
          method: "POST",
          headers: { "content-type": "application/json", "idempotency-key": "e2e-replayed", ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: JSON.stringify({ amount, currency: "usd" }),
        });
        return {
          status: res.status,
          replayed: res.headers.get("idempotent-replayed"),
          body: (await res.json()) as { error?: { code?: string; available?: number } },
        };
      };
      const token = sessionStorage.getItem("token");
      return [await send(100, token), await send(100, token), await send(200, token), await send(100, null)];
    });
    expect(answers.map((a) => [a.status, a.body.error?.code, a.replayed])).toEqual([
      [402, "insufficient_credit", null],
      [402, "insufficient_credit", "true"],
      [409, "idempotency_key_reused", null],
      [401, "unauthenticated", null],
    ]);
    expect(answers[1]?.body).toEqual(answers[0]?.body);
    expect(answers[0]?.body.error?.available).toBe(0);

    // Stripe is brought up to date behind the wallet: −(customer balance) = available + held = 0.
    const emu = stack.emulator;
    const intent = [...(emu?.emulator.store.paymentIntents.values() ?? [])].find((p) => p.metadata.account_id === account);
    const ledger = () => (emu?.emulator.store.balanceTransactions.get(intent?.customer ?? "") ?? []).map((t) => t.amount);
    await expect.poll(() => ledger().reduce((a, b) => a + b, 0), { timeout: 30_000 }).toBe(0);
    expect(ledger()[0]).toBe(-500);

    // Phone width: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-spend.png"), fullPage: true });
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
  }, 120_000);
  it("saves a card with 3-D Secure, recharges off-session below the threshold, and the customer confirms the recharge in the page: credited once", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    // Settings the service refuses (400, and 409 before a card is saved): the browser logs them.
    const seen = await watch(page, /status of (400|409)/);
    const requests = trackRequests(page);
    await page.goto(stack.workerUrl);
    const account = `e2e-recharge-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await availableIs(page, 0);

    // Without a saved card the page says how to save one, and shows the service's refusals as worded.
    await expect(page.locator("#saved-card").textContent()).resolves.toMatch(/^No saved card yet/);
    const refusal = async () => {
      await page.$eval("#recharge-status", (el) => el.classList.remove("ok", "bad"));
      await page.getByRole("button", { name: "Save auto-recharge" }).click();
      return (await page.waitForSelector("#recharge-status.bad")).textContent();
    };
    await page.getByLabel("Recharge automatically").check();
    await page.getByLabel("When credit falls below").fill("5.00");
    await page.getByLabel(/^Add/).fill("1.00");
    await page.getByLabel("Monthly limit").fill("100.00");
    await expect(refusal()).resolves.toBe("amount: must be between 500 and 100000");
    await page.getByLabel(/^Add/).fill("20.00");
    await expect(refusal()).resolves.toBe("Save a card with a top-up before turning auto-recharge on.");

    // A top-up opened without saving, cancelled; ticking the box (by keyboard) makes it another top-up.
    await page.getByLabel("Top-up amount (USD)").fill("10.00");
    await page.getByRole("button", { name: "Top up" }).click();
    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByLabel("Save this card for auto-recharge").focus();
    await page.keyboard.press("Space");
    await expect(page.getByLabel("Save this card for auto-recharge").isChecked()).resolves.toBe(true);
    await page.getByRole("button", { name: "Top up" }).click();
    await page.getByLabel("Card number").fill("4000 0027 6000 3184");
    await page.$eval("#status", (el) => el.classList.remove("ok", "bad"));
    await page.getByRole("button", { name: /^Pay / }).click();

    // The bank's challenge: a modal card within the screen, the page behind out of the pointer's reach.
    const dialog = page.getByRole("dialog", { name: "Authenticate this payment" });
    await dialog.waitFor({ state: "visible", timeout: 30_000 });
    const box = await dialog.boundingBox();
    expect(box && box.x >= 0 && box.y >= 0 && box.x + box.width <= 390 && box.y + box.height <= 844).toBe(true);
    await expect(page.evaluate(() => document.elementFromPoint(4, 4)?.classList.contains("stripe-challenge"))).resolves.toBe(true);
    await answerChallenge(page, "Complete authentication");
    await expect(statusAnswered(page)).resolves.toEqual({ text: "$10.00 added.", ok: true });
    // Focus came back from the challenge to "Pay", and went on to the amount as the card form closed.
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("amount");
    await availableIs(page, 1000);
    // The card is saved just after the credit: the page looks again until it shows.
    await page.waitForFunction(() => document.getElementById("saved-card")?.textContent === "Saved card: Visa •••• 3184", null, { timeout: 30_000 });

    // Two top-ups were asked for, under two keys; the one paid asked Stripe to keep the card.
    await requests.settled();
    const topUpKeys = requests.sent.filter((r) => r.path === "/billing/top_ups").map((r) => r.key);
    expect(topUpKeys).toHaveLength(2);
    expect(new Set(topUpKeys).size).toBe(2);
    const paidId = (await seller<{ data: { payment_intent_id: string | null }[] }>(`${account}/transactions`)).data[0]?.payment_intent_id ?? "";
    const paid = await emulatorGet<EmulatedIntent & { customer: string }>(`/v1/payment_intents/${paidId}`);
    expect([paid.status, paid.setup_future_usage]).toEqual(["succeeded", "off_session"]);

    // Auto-recharge on: below $5.00, add $20.00, at most $100.00 a month.
    await page.getByRole("button", { name: "Save auto-recharge" }).click();
    await page.waitForSelector("#recharge-status.ok");
    await expect(page.locator("#recharge-status").textContent()).resolves.toBe("Auto-recharge is on: $20.00 is added when credit falls below $5.00.");
    await expect(page.locator("#recharge-month").textContent()).resolves.toBe("This month: $0.00 recharged, $100.00 left of your $100.00 limit.");
    await expect(seller(`${account}/auto_recharge`)).resolves.toMatchObject({ enabled: true, threshold: 500, amount: 2000, monthly_limit: 10000 });

    // Spending $6.00 leaves $4.00: the recharge is charged off-session (slowly, so the page
    // first sees it on its way), the bank wants the customer, and the page, looking again on its
    // own, asks them to confirm.
    const fastCreates = await slowStripe("POST", "/v1/payment_intents", 1200);
    const notice = page.locator("#recharge-action");
    try {
      await page.getByLabel("Amount to use (USD)").fill("6.00");
      await expect(useCredit(page)).resolves.toEqual({ text: "Used $6.00. $4.00 available.", ok: true });
      await page.waitForFunction(() => document.getElementById("recharge-last")?.textContent === "An automatic top-up of $20.00 is on its way…");
      await notice.waitFor({ state: "visible", timeout: 30_000 });
    } finally {
      await fastCreates();
    }
    await expect(page.locator("#recharge-action-text").textContent()).resolves.toBe("Your automatic top-up of $20.00 needs you to confirm your payment.");
    const confirm = page.getByRole("button", { name: "Confirm payment" });

    // A failed challenge: the error is shown, the button stays, nothing is credited.
    await confirm.click();
    await answerChallenge(page, "Fail authentication");
    await page.waitForSelector("#recharge-action-status.bad");
    await expect(page.locator("#recharge-action-status").textContent()).resolves.toMatch(/unable to authenticate/);
    await expect(confirm.isVisible()).resolves.toBe(true);
    await expect(confirm.getAttribute("aria-disabled")).resolves.toBeNull();
    // Focus went into the challenge and came back to the button, for another try.
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("recharge-confirm");
    expect(await minor(page)).toBe(400);
    await expect(seller(`${account}/balance`)).resolves.toMatchObject({ available: 400 });
    await expect(seller(`${account}/auto_recharge`)).resolves.toMatchObject({ recharge: { status: "action_required" } });
    const recharges = async () =>
      (await emulatorGet<{ data: EmulatedIntent[] }>(`/v1/payment_intents?customer=${paid.customer}&limit=100`)).data.filter((p) => p.metadata.recharge);
    expect((await recharges()).map((p) => [p.amount, p.status])).toEqual([[2000, "requires_payment_method"]]);

    // Confirmed, the challenge completed: credited once, the notice gone, focus on the balance.
    await page.$eval("#status", (el) => el.classList.remove("ok", "bad"));
    await confirm.click();
    await page.getByRole("dialog", { name: "Authenticate this payment" }).waitFor({ state: "visible", timeout: 30_000 });
    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-recharge-challenge.png") });
    await answerChallenge(page, "Complete authentication");
    await expect(statusAnswered(page)).resolves.toEqual({ text: "$20.00 added.", ok: true });
    await availableIs(page, 2400);
    await expect(notice.isHidden()).resolves.toBe(true);
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("balance-title");

    // However the webhook and the page's confirm raced, once the webhooks are delivered: one
    // recharge PaymentIntent, one credit for it at Stripe, one top-up line for it in the ledger.
    const made = await recharges();
    expect(made.map((p) => p.status)).toEqual(["succeeded"]);
    const recharge = made[0];
    const idle = await fetch(`${stack.emulator?.url}/_emulator/webhooks/idle`, { method: "POST" });
    expect(idle.status).toBe(200);
    type Tx = { amount: number; metadata: Record<string, string> };
    const credits = (await emulatorGet<{ data: Tx[] }>(`/_emulator/customers/${paid.customer}/balance_transactions`)).data.filter(
      (t) => t.metadata.payment_intent === recharge?.id && !t.metadata.operation,
    );
    expect(credits.map((t) => t.amount)).toEqual([-2000]);
    type Lines = { data: { kind: string; amount: number; payment_intent_id: string | null }[] };
    const lines = (await seller<Lines>(`${account}/transactions`)).data.filter((l) => l.payment_intent_id === recharge?.id);
    expect(lines.map((l) => [l.kind, l.amount])).toEqual([["top_up", 2000]]);
    await expect(seller(`${account}/auto_recharge`)).resolves.toMatchObject({
      recharge: { status: "succeeded", payment_intent_id: recharge?.id, client_secret: null },
      this_month: { recharged: 2000, remaining: 8000 },
    });
    await page.reload();
    await availableIs(page, 2400);
    await expect(page.locator("#recharge-month").textContent()).resolves.toBe("This month: $20.00 recharged, $80.00 left of your $100.00 limit.");

    // The card removed at Stripe: auto-recharge switches itself off, and the page says why.
    const detached = await fetch(`${stack.emulator?.url}/v1/payment_methods/${recharge?.payment_method}/detach`, {
      method: "POST",
      headers: { authorization: "Bearer sk_test_e2e" },
    });
    expect(detached.status).toBe(200);
    await expect.poll(() => seller(`${account}/auto_recharge`), { timeout: 30_000 }).toMatchObject({ enabled: false, disabled_reason: "card_removed" });
    await page.reload();
    await page.waitForSelector("#recharge-off:not([hidden])");
    await expect(page.locator("#recharge-off").textContent()).resolves.toMatch(/^Auto-recharge switched itself off: your saved card was removed\./);
    await expect(page.getByLabel("Recharge automatically").isChecked()).resolves.toBe(false);
    await expect(page.locator("#saved-card").textContent()).resolves.toMatch(/^No saved card yet/);

    // Phone width, the token in no URL, no error, no policy violation, in all of it.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    const token = (await page.evaluate(() => sessionStorage.getItem("token"))) ?? "";
    expect(token.length).toBeGreaterThan(20);
    expect(seen.urls.filter((u) => u.includes(token))).toEqual([]);
    expect(seen.foreignAuth.every((r) => r.authorization === null || r.authorization === `Bearer ${PUBLISHABLE_KEY}`)).toBe(true);
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-recharge.png"), fullPage: true });
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
  }, 120_000);
});
