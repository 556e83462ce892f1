// The storefront in a real browser: `wrangler dev` and the emulator started as `npm start`
// starts them (on free ports, settings passed with --var), Debian's Chromium driven by
// playwright-core. Sign in with the keyboard, top up, see the balance rise once; double-click
// "Top up" and see it rise once more, not twice. A screenshot is kept in test-results/.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../scripts/dev-vars.js";
import { freePort, startStack, type RunningStack } from "../../scripts/stack.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const WEBHOOK_SECRET = "whsec_e2e_secret";
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

describe.skipIf(!runnable)("the top-up page", () => {
  it("signs in, tops up once per click-intent, and shows the balance and ledger", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
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
    await page.waitForTimeout(1500);
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
});
