// The storefront in a real browser: `wrangler dev` and the emulator started as `npm start`
// starts them (on free ports, settings passed with --var), Debian's Chromium driven by
// playwright-core, at phone width. Sign in with the keyboard, top up, see the balance rise once;
// double-click "Top up" and see it rise once more, not twice. Then spend: "Use credit" goes
// through the seller's API (the demo route signs with SERVICE_TOKEN on the server), available
// drops by the amount per press and once per double-click, each debit is a ledger line, and
// spending past zero says "Not enough credit". Screenshots are kept in test-results/.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../scripts/dev-vars.js";
import { freePort, startStack, type RunningStack } from "../../scripts/stack.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const WEBHOOK_SECRET = "whsec_e2e_secret";
// Two values, as during a rotation: the demo route signs with the first.
const SERVICE_TOKEN = "svc_e2e_token_0123456789,svc_e2e_token_next_abcdef";
// CI installs Chromium (.ci/run); a developer machine without it skips this file, loudly.
const runnable = existsSync(CHROMIUM) || process.env.CI === "true";
if (!runnable) console.warn(`[e2e] ${CHROMIUM} not found: the browser test is skipped (apt-get install chromium to run it)`);

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
      // Each debit is written to Stripe at once, so the test can see Stripe agree with the wallet.
      STRIPE_SYNC_SECONDS: "0",
    },
    log: (line) => logs.push(line),
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
});

const minor = (page: Page) => page.$eval("#balance", (el) => Number((el as HTMLElement).dataset.minor));

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

describe.skipIf(!runnable)("the top-up page", () => {
  it("signs in, tops up once per click-intent, and shows the balance and ledger", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const requests = trackRequests(page);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await page.goto(stack.workerUrl);
    await expect(page.title()).resolves.toBe("Prepaid credit");

    // Keyboard only: the field is labelled, Enter submits.
    const account = `e2e-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await page.waitForSelector("#wallet:not([hidden])");
    await page.waitForFunction(() => (document.getElementById("balance") as HTMLElement).dataset.minor === "0");

    await page.getByLabel("Top-up amount (USD)").fill("12.34");
    await page.getByRole("button", { name: "Top up" }).click();
    await page.waitForFunction(() => document.getElementById("status")?.classList.contains("ok"), null, { timeout: 30_000 });
    expect(await minor(page)).toBe(1234);

    // A double-click is one top-up.
    await page.getByLabel("Top-up amount (USD)").fill("5.00");
    await page.getByRole("button", { name: "Top up" }).dblclick();
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

    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-topup.png"), fullPage: true });
    expect(errors).toEqual([]);
  }, 120_000);
  it("uses credit through the seller's API: once per press, once per double-click, until not enough", async () => {
    const page = await browser.newPage({ viewport: { width: 360, height: 780 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      // The browser logs each non-2xx fetch; the 401, 402s and 409 below are expected answers.
      if (m.type() === "error" && !/status of (401|402|409)/.test(m.text())) errors.push(m.text());
    });
    const requests = trackRequests(page);

    await page.goto(stack.workerUrl);
    const account = `e2e-spend-${Date.now().toString(36)}`;
    await page.getByLabel("Account id").fill(account);
    await page.keyboard.press("Enter");
    await availableIs(page, 0);
    await page.getByLabel("Top-up amount (USD)").fill("5.00");
    await page.getByRole("button", { name: "Top up" }).click();
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
    expect(errors).toEqual([]);
  }, 120_000);
});
