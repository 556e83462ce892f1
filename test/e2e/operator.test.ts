// The operator console (/operator) in a real browser: `wrangler dev` and the emulator started as
// `npm start` starts them (free ports, a state directory of its own, settings passed with
// --var, the Stripe governor on), Debian's Chromium driven by playwright-core at phone width.
// A wrong token is refused, says so, and loads nothing. The right one, typed and sent with the
// keyboard, opens the console. A credit that Stripe keeps refusing (an emulator fault on its
// ledger write) shows up under "Needs attention" with its journal; once the fault is gone,
// "Retry now" credits it, the row leaves, and Stripe's ledger holds exactly one credit. The
// account looked up shows the credit in its wallet and ledger; after a debit, the Activity
// charts draw bars for both and the Stripe table lists calls. Throughout: the page's own
// policy with no violation and no console error, nothing wider than the screen, and the token
// in the Authorization header only: in no URL, not in localStorage nor a cookie, and gone from
// sessionStorage after "Sign out". Screenshots are kept in test-results/.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../scripts/dev-vars.js";
import { freePort, startStack, type RunningStack } from "../../scripts/stack.js";
import { reportSpec } from "../emulator/openapi.js";
import { chromiumAvailable, launchChromium, watchPage } from "./browser.js";

const WEBHOOK_SECRET = "whsec_e2e_operator";
const SECRET_KEY = "sk_test_e2e_operator";
const AUTH_JWT_SECRET = "e2e-operator-secret-e2e-operator-0123";
// Distinctive, so that a search for it in URLs and storage cannot miss it nor match by chance.
const OPERATOR_TOKEN = "op_e2e_Zq7xK2mW9vT4nB8c";
const SERVICE_TOKEN = "svc_e2e_operator_0123456789";
const runnable = chromiumAvailable("the operator console test");

let stack: RunningStack;
let browser: Browser;
let state: string;
let stackStartedAt: number;

beforeAll(async () => {
  if (!runnable) return;
  state = mkdtempSync(join(tmpdir(), "e2e-operator-state-"));
  const emulatorPort = await freePort();
  stackStartedAt = Date.now();
  stack = await startStack({
    workerPort: await freePort(),
    emulatorPort,
    webhookSecret: WEBHOOK_SECRET,
    persistTo: state,
    vars: {
      STRIPE_SECRET_KEY: SECRET_KEY,
      STRIPE_API_BASE: `http://127.0.0.1:${emulatorPort}`,
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      AUTH_JWT_SECRET,
      OPERATOR_TOKEN,
      SERVICE_TOKEN,
      // The governor on, so the Stripe section has one to show.
      STRIPE_RATE_LIMIT: "20",
    },
  });
  browser = await launchChromium();
}, 180_000);

afterAll(async () => {
  // What the page, Stripe.js's stand-in and the Worker sent, checked against Stripe's spec.
  const spec = stack?.emulator?.emulator.spec.summary();
  await browser?.close();
  await stack?.stop();
  if (state) rmSync(state, { recursive: true, force: true });
  if (spec) reportSpec("e2e operator", spec);
});

/** watchPage's findings, and each operator API request with the Authorization header it carried. */
async function watch(page: Page, expected: RegExp | null = null) {
  const api: { method: string; path: string; authorization: string | null }[] = [];
  const seen = await watchPage(page, expected, (r) => {
    const { pathname } = new URL(r.url());
    if (pathname.startsWith("/operator/")) api.push({ method: r.method(), path: pathname, authorization: r.headers()["authorization"] ?? null });
  });
  return { ...seen, api };
}

/** Opens the console and signs in with the keyboard only: the field has focus, type, Tab to "Sign in", Enter. */
async function signIn(page: Page, token: string) {
  const response = await page.goto(`${stack.workerUrl}/operator`);
  await page.waitForFunction(() => document.activeElement?.id === "token");
  await page.keyboard.type(token);
  await page.keyboard.press("Tab");
  await expect(page.evaluate(() => document.activeElement?.textContent)).resolves.toBe("Sign in");
  // The focus ring shows where the keyboard is.
  await expect(page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle)).resolves.toBe("solid");
  await page.keyboard.press("Enter");
  return response;
}

/** Where the page's sign-in says something: its text once it has said something. */
async function signInSaid(page: Page): Promise<string> {
  await page.waitForFunction(
    () =>
      (document.getElementById("signin-status")?.textContent ?? "").length > 0 && !/Checking/.test(document.getElementById("signin-status")?.textContent ?? ""),
  );
  return (await page.locator("#signin-status").textContent()) ?? "";
}

/** A bearer token for `account`, as the storefront's sign-in gives one (HS256, AUTH_JWT_SECRET). */
function browserToken(account: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(account)
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(AUTH_JWT_SECRET));
}

/** A JSON call to the service, as a browser or the seller's backend makes it: status and body. */
async function service<T>(method: string, path: string, token: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${stack.workerUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** The emulator: its Stripe API with the secret key (basic auth, as README's "Try it" does with curl -u), or its control API. */
async function emulator<T>(method: string, path: string, body?: URLSearchParams | object): Promise<T> {
  const stripe = path.startsWith("/v1/");
  const res = await fetch(`${stack.emulator?.url}${path}`, {
    method,
    headers: {
      ...(stripe ? { authorization: `Basic ${Buffer.from(`${SECRET_KEY}:`).toString("base64")}` } : {}),
      ...(body === undefined ? {} : { "content-type": body instanceof URLSearchParams ? "application/x-www-form-urlencoded" : "application/json" }),
    },
    body: body === undefined ? undefined : body instanceof URLSearchParams ? body.toString() : JSON.stringify(body),
  });
  expect(res.status, `${method} ${path}`).toBe(200);
  return (await res.json()) as T;
}

/** Looks `id` up in the page's Look up section with the keyboard and waits for the answer it draws. */
async function lookUp(page: Page, id: string, kind: "account" | "payment_intent") {
  await page.$eval("#lookup-result", (el) => el.replaceChildren());
  await page.getByLabel("PaymentIntent or account id").fill(id);
  await page.keyboard.press("Enter");
  await page.waitForSelector(`#lookup-result article[data-kind="${kind}"]`, { timeout: 30_000 });
}

/** The figure the looked-up wallet shows for `term`, in minor units. */
const walletFigure = (page: Page, term: string) =>
  page.$eval(`#lookup-result dd[data-term="${term}"] .figure`, (el) => Number((el as HTMLElement).dataset.minor));

describe.skipIf(!runnable)("the operator console", () => {
  it("refuses a wrong token with a visible message, keeps nothing and loads nothing else", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    // The browser logs the refused check (401) as a console error: that one is expected.
    const seen = await watch(page, /status of 401/);
    await signIn(page, "op_not_the_token");
    await expect(signInSaid(page)).resolves.toBe("The token was refused.");
    await expect(page.locator("#signin-status").isVisible()).resolves.toBe(true);
    await expect(page.locator("#console").isHidden()).resolves.toBe(true);
    // One check of the token, and nothing else asked of the operator API.
    expect(seen.api.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /operator/governor"]);
    await expect(page.evaluate(() => Object.keys(sessionStorage).length)).resolves.toBe(0);
    // The field is a password field that no submission can put in a URL: no name.
    const field = await page.$eval("#token", (el) => ({
      type: el.getAttribute("type"),
      name: el.getAttribute("name"),
      autocomplete: el.getAttribute("autocomplete"),
    }));
    expect(field).toEqual({ type: "password", name: null, autocomplete: "off" });
    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-operator-refused.png"), fullPage: true });
    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
    await page.close();
  }, 60_000);

  it("shows a credit stuck by a Stripe fault, its journal, credits it once with Retry now, looks up the account, and charts the activity", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    const seen = await watch(page);

    // The page runs under its own policy: this origin's files only, no inline script, no form target.
    const response = await signIn(page, OPERATOR_TOKEN);
    expect(response?.status()).toBe(200);
    const policy = (await response?.allHeaders())?.["content-security-policy"] ?? "";
    expect(policy).toContain("script-src 'self'");
    expect(policy).toContain("connect-src 'self'");
    expect(policy).toContain("form-action 'none'");
    expect(policy).not.toContain("unsafe-inline");

    // Signed in: the console shows, focus goes to its first section, and nothing needs a person yet.
    await page.waitForSelector("#console:not([hidden])");
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("attention-title");
    await page.waitForSelector("#attention-empty:not([hidden])", { timeout: 30_000 });
    await expect(page.locator("#attention-empty").textContent()).resolves.toBe("Nothing needs a person.");
    await page.waitForFunction(() => /Budget\s*20 calls a second/.test(document.getElementById("governor")?.textContent ?? ""));

    // A top-up through the service, its ledger write refused by Stripe (the webhook's attempt
    // too: the fault is in place before the payment), then the browser's confirm: 503.
    const account = `acct_e2e_op_${Date.now().toString(36)}`;
    const jwt = await browserToken(account);
    const topUp = await service<{ payment_intent_id: string }>("POST", "/billing/top_ups", jwt, { amount: 1234, currency: "usd" });
    expect(topUp.status).toBe(201);
    const pi = topUp.body.payment_intent_id;
    const fault = await emulator<{ id: number }>("POST", "/_emulator/faults", { kind: "error_500", saved: false, key: `credit-tx:${pi}*`, times: 1000 });
    const paid = await emulator<{ status: string; customer: string }>(
      "POST",
      `/v1/payment_intents/${pi}/confirm`,
      new URLSearchParams({ payment_method: "pm_card_visa" }),
    );
    expect(paid.status).toBe("succeeded");
    const confirm = await service<{ error: { code: string } }>("POST", "/billing/confirm_payment", jwt, { payment_intent_id: pi });
    expect([confirm.status, confirm.body.error.code]).toEqual([503, "stripe_unavailable"]);

    // "Refresh" (by keyboard) lists it: its state, amount, the error and retries, the next retry.
    await page.getByRole("button", { name: "Refresh" }).focus();
    await page.keyboard.press("Enter");
    const row = page.locator(`#attention-table tbody tr[data-pi="${pi}"]`);
    await row.waitFor({ state: "visible", timeout: 30_000 });
    await expect(page.locator("#attention-empty").isHidden()).resolves.toBe(true);
    await expect(row.locator("td[data-label='State'] .state").textContent()).resolves.toBe("Credit waiting for a retry");
    await expect(row.locator("td[data-label='Amount']").textContent()).resolves.toBe("$12.34");
    await expect(row.locator("td[data-label='Last error']").textContent()).resolves.toContain("500");
    expect(Number(await row.locator("td[data-label='Retries']").textContent())).toBeGreaterThanOrEqual(1);
    await expect(row.locator("td[data-label='Next retry']").textContent()).resolves.toMatch(/\((in|.* ago)/);

    // Its journal, opened with the keyboard: the lines of the attempts that Stripe refused.
    const journal = row.getByRole("button", { name: `Journal of ${pi}` });
    await journal.focus();
    await page.keyboard.press("Enter");
    await expect(journal.getAttribute("aria-expanded")).resolves.toBe("true");
    const lines = page.locator(`#journal-${pi} .journal-lines li`);
    await lines.first().waitFor({ state: "visible", timeout: 30_000 });
    const journalText = (await lines.allTextContents()).join("\n");
    expect(journalText).toMatch(/credit ambiguous/);
    expect(journalText).toContain(`credit-tx:${pi}`);

    // The fault gone, "Retry now" credits it: the page says so and the row leaves the list.
    await emulator("DELETE", `/_emulator/faults/${fault.id}`);
    await row.getByRole("button", { name: `Retry now ${pi}` }).click();
    await page.waitForSelector("#attention-status.ok", { timeout: 30_000 });
    await expect(page.locator("#attention-status").textContent()).resolves.toBe(`${pi} is credited: $12.34 on ${paid.customer}'s balance.`);
    await row.waitFor({ state: "detached", timeout: 30_000 });
    await expect(page.locator("#attention-empty").isVisible()).resolves.toBe(true);
    // The row that held focus left: focus went to its section's heading, not the page's top.
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("attention-title");

    // Stripe holds exactly one credit for it, however many attempts there were.
    const ledger = await emulator<{ data: { amount: number }[] }>("GET", `/v1/customers/${paid.customer}/balance_transactions`);
    expect(ledger.data.filter((t) => t.amount < 0).map((t) => t.amount)).toEqual([-1234]);

    // The account looked up: the wallet's figures and its ledger show the credit (the wallet
    // may hear of it just after the answer to the retry, so look again until it has).
    await expect
      .poll(
        async () => {
          await lookUp(page, account, "account");
          return walletFigure(page, "Available");
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(1234);
    await expect(walletFigure(page, "Held")).resolves.toBe(0);
    await expect(page.locator("#lookup-status").textContent()).resolves.toBe(`Account ${account}: its wallet.`);
    const topUps = page.locator('#lookup-ledger tbody tr[data-kind="top_up"]');
    await expect(topUps.count()).resolves.toBe(1);
    await expect(topUps.locator("td[data-label='Amount']").textContent()).resolves.toBe("+$12.34");
    await expect(topUps.locator("td[data-label='Reference']").textContent()).resolves.toBe(pi);
    await expect(page.locator("#lookup-result details summary").textContent()).resolves.toBe("Raw JSON");
    // And the PaymentIntent: credited, with its journal.
    await lookUp(page, pi, "payment_intent");
    await expect(page.locator("#lookup-result .state").textContent()).resolves.toBe("Credited");
    await expect(page.locator("#lookup-result .journal-lines li").count()).resolves.toBeGreaterThan(3);

    // A debit through the seller's API, then the charts: a bar for each, and the totals in words.
    const debit = await service(
      "POST",
      `/v1/accounts/${account}/debits`,
      SERVICE_TOKEN,
      { amount: 234, currency: "usd" },
      { "idempotency-key": `e2e-op-${pi}` },
    );
    expect(debit.status).toBe(201);
    await page.getByRole("button", { name: "Refresh" }).click();
    const chart = (fact: string) => page.locator(`#charts figure[data-fact="${fact}"]`);
    for (const [fact, title] of [
      ["credit", "Credits"],
      ["debit", "Debits"],
    ] as const) {
      await page.waitForFunction(
        (f) => Number(document.querySelector(`#charts figure[data-fact="${f}"] .totals`)?.getAttribute("data-total") ?? 0) >= 1,
        fact,
        {
          timeout: 30_000,
        },
      );
      const svg = chart(fact).locator("svg");
      await expect(svg.getAttribute("role")).resolves.toBe("img");
      const label = (await svg.getAttribute("aria-label")) ?? "";
      expect(label).toMatch(new RegExp(`^${title} per minute, last hour: \\d+ in total$`));
      expect(Number(/(\d+) in total/.exec(label)?.[1])).toBeGreaterThanOrEqual(1);
      await expect(svg.locator("title").textContent()).resolves.toBe(label);
      const heights = await svg.locator("rect.bar").evaluateAll((rects) => rects.map((r) => Number(r.getAttribute("height"))));
      expect(heights.some((h) => h > 0)).toBe(true);
      const totals = (await chart(fact).locator(".totals").textContent()) ?? "";
      expect(Number(/^(\d+) /.exec(totals)?.[1])).toBeGreaterThanOrEqual(1);
    }
    // This stack's only credit and only debit, each counted once, with its amount.
    await expect(chart("credit").locator(".totals").textContent()).resolves.toBe("1 credit: $12.34, last hour.");
    await expect(chart("debit").locator(".totals").textContent()).resolves.toBe("1 debit: $2.34, last hour.");
    // Whose counts they are, and since when: this stack's Worker, started for this test.
    const source = page.locator("#activity-source");
    const sourceText = (await source.textContent()) ?? "";
    expect(sourceText).toMatch(/^(Counted by this Worker process since .+|Workers Analytics Engine, all locations\.)/);
    if (sourceText.startsWith("Counted")) {
      const startedAt = Date.parse((await source.getAttribute("data-started-at")) ?? "");
      expect(startedAt, "started_at is when this stack's Worker started counting").toBeGreaterThanOrEqual(stackStartedAt - 60_000);
    }

    // The Stripe table lists the calls made, by kind.
    await page.waitForSelector("#calls-table:not([hidden]) tbody tr");
    const kinds = await page.locator("#calls-table tbody th").allTextContents();
    expect(kinds.length).toBeGreaterThanOrEqual(1);
    expect(kinds.some((k) => /^(GET|POST) \/v1\//.test(k))).toBe(true);

    // The day's window: a pressed toggle, charts redrawn per 15 minutes, the credit still there.
    await page.getByRole("button", { name: "Last day" }).click();
    await expect(page.getByRole("button", { name: "Last day" }).getAttribute("aria-pressed")).resolves.toBe("true");
    await expect(page.getByRole("button", { name: "Last hour" }).getAttribute("aria-pressed")).resolves.toBe("false");
    await page.waitForFunction(
      () => /last day/.test(document.querySelector('#charts figure[data-fact="credit"] svg')?.getAttribute("aria-label") ?? ""),
      null,
      {
        timeout: 30_000,
      },
    );
    await expect(chart("credit").locator("svg").getAttribute("aria-label")).resolves.toMatch(/^Credits per 15 minutes, last day: [1-9]\d* in total$/);

    // Phone width, with the lists, the look-up and the charts drawn: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.setViewportSize({ width: 360, height: 780 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.setViewportSize({ width: 390, height: 844 });
    mkdirSync(join(projectRoot, "test-results"), { recursive: true });
    await page.screenshot({ path: join(projectRoot, "test-results", "e2e-operator.png"), fullPage: true });

    // A reload of the tab keeps the session (sessionStorage): the console comes back, no sign-in.
    await page.reload();
    await page.waitForSelector("#console:not([hidden])");
    await page.waitForSelector("#attention-empty:not([hidden])", { timeout: 30_000 });
    await expect(page.locator("#signin").isHidden()).resolves.toBe(true);

    // The token went in the Authorization header of every operator call, and nowhere else.
    expect(seen.api.length).toBeGreaterThan(10);
    expect(seen.api.every((r) => r.authorization === `Bearer ${OPERATOR_TOKEN}`)).toBe(true);
    expect(seen.urls.length).toBeGreaterThan(seen.api.length);
    expect(seen.urls.filter((u) => u.includes(OPERATOR_TOKEN) || decodeURIComponent(u).includes(OPERATOR_TOKEN))).toEqual([]);
    expect(page.url()).not.toContain(OPERATOR_TOKEN);
    const kept = () =>
      page.evaluate(() => ({
        local: JSON.stringify(Object.entries(localStorage)),
        session: JSON.stringify(Object.entries(sessionStorage)),
        cookie: document.cookie,
        history: location.href,
      }));
    const signedIn = await kept();
    expect(signedIn.local).not.toContain(OPERATOR_TOKEN);
    expect(signedIn.cookie).not.toContain(OPERATOR_TOKEN);
    expect(signedIn.history).not.toContain(OPERATOR_TOKEN);
    expect(signedIn.session).toContain(OPERATOR_TOKEN);

    // "Sign out" forgets it, and what the console showed goes with it.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForSelector("#signin:not([hidden])");
    await expect(page.locator("#console").isHidden()).resolves.toBe(true);
    await expect(page.locator("#signin-status").textContent()).resolves.toBe("Signed out. The token is forgotten.");
    await expect(page.evaluate(() => document.activeElement?.id)).resolves.toBe("token");
    const signedOut = await kept();
    expect(signedOut.session).not.toContain(OPERATOR_TOKEN);
    expect(signedOut.local).not.toContain(OPERATOR_TOKEN);
    expect(signedOut.cookie).not.toContain(OPERATOR_TOKEN);
    await expect(page.locator("#lookup-result").evaluate((el) => el.childElementCount)).resolves.toBe(0);
    await expect(page.locator("#charts").evaluate((el) => el.childElementCount)).resolves.toBe(0);
    expect(await page.content()).not.toContain(OPERATOR_TOKEN);

    expect(seen.errors).toEqual([]);
    expect(seen.violations).toEqual([]);
    await page.close();
  }, 180_000);
});
