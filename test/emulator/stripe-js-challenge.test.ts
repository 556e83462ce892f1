// The Stripe.js stand-in in a real browser (Debian's Chromium through playwright-core), on a page
// served from another origin under the storefront's Content-Security-Policy (no inline styles):
// a confirm that the bank answers with 3-D Secure shows a modal challenge, reachable and answerable
// from the keyboard, whose answer settles confirmPayment or handleNextAction as Stripe.js settles
// them; confirmPayment also pays with a saved card (clientSecret and payment_method, no Elements);
// and the card form knows the new test cards. Skipped, loudly, where Chromium is not installed.

import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { chromium, type Browser, type Page } from "playwright-core";
import type Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, unique, useEmulator } from "./harness.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const runnable = existsSync(CHROMIUM) || process.env.CI === "true";
if (!runnable) console.warn(`[emulator] ${CHROMIUM} not found: the stand-in's browser tests are skipped (apt-get install chromium to run them)`);

const h = useEmulator();
const PK = "pk_test_challenge";

let browser: Browser;
let site: Server;
let siteUrl: string;

/** The shop's page: Stripe.js from the emulator, a policy like the storefront's, a button that had focus before paying. */
function pageHtml(emulator: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay</title><link rel="icon" href="data:,">
<script src="${emulator}/v3/"></script></head><body><main><button id="pay" type="button">Pay</button><div id="card"></div></main></body></html>`;
}

beforeAll(async () => {
  if (!runnable) return;
  site = createServer((req, res) => {
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy": [
        "default-src 'self'",
        `script-src 'self' ${h.url}`,
        `connect-src 'self' ${h.url}`,
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
      ].join("; "),
    });
    res.end(pageHtml(h.url));
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (site ? site.close(() => resolve()) : resolve()));
});

/** A fresh page on the shop's origin, with every CSP violation and page error collected. */
async function openPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.exposeFunction("reportViolation", (v: string) => problems.push(`csp: ${v}`));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window as unknown as { reportViolation(v: string): void }).reportViolation(`${e.effectiveDirective} ${e.blockedURI}`);
    });
  });
  await page.goto(siteUrl);
  // One Stripe object per page, as a shop makes it: Elements belong to the object that made them.
  await page.evaluate((pk) => {
    const w = window as unknown as Win;
    w.stripe = w.Stripe(pk);
  }, PK);
  await page.focus("#pay");
  return { page, problems };
}

interface Result {
  paymentIntent?: { id: string; status: string };
  error?: { type: string; code?: string; decline_code?: string; message: string; payment_intent?: { status: string } };
}

type StripeJs = Record<"confirmPayment" | "handleNextAction", (o: unknown) => Promise<Result>> & {
  elements(o: unknown): { create(t: string): { mount(s: string): void } };
};
type Win = Window & { Stripe(pk: string): StripeJs; stripe: StripeJs; elements?: unknown; result?: Result };

/** Starts a Stripe.js call in the page without waiting for it (the challenge has to be answered first). */
async function start(page: Page, method: "confirmPayment" | "handleNextAction", options: unknown): Promise<void> {
  await page.evaluate(
    ({ method, options }) => {
      const w = window as unknown as Win;
      // The page's Elements instance, when the call names it, is the one made on this page.
      const resolved = options === "elements" ? { elements: w.elements, redirect: "if_required" } : options;
      void w.stripe[method](resolved).then((r) => (w.result = r));
    },
    { method, options },
  );
}

async function result(page: Page): Promise<Result> {
  await page.waitForFunction(() => (window as unknown as Win).result !== undefined);
  return page.evaluate(() => (window as unknown as Win).result as Result);
}

/** The dialog as a user of assistive technology meets it: its role, name, description and focus. */
async function dialogView(page: Page) {
  return page.$eval(".stripe-challenge", (el) => {
    const byId = (id: string | null) => (id ? (document.getElementById(id)?.textContent ?? null) : null);
    return {
      role: el.getAttribute("role"),
      modal: el.getAttribute("aria-modal"),
      name: byId(el.getAttribute("aria-labelledby")),
      description: byId(el.getAttribute("aria-describedby")),
      heading: el.querySelector("h2")?.textContent ?? null,
      buttons: Array.from(el.querySelectorAll("button"), (b) => ({ text: b.textContent, type: b.type })),
      actionsClass: el.querySelector("button")?.parentElement?.className ?? null,
      focused: document.activeElement?.textContent ?? null,
      inlineStyles: el.querySelectorAll("[style]").length + (el.hasAttribute("style") ? 1 : 0),
    };
  });
}

/** Mounts the Payment Element for `clientSecret` in #card and waits for it to be ready. */
async function mountCardForm(page: Page, clientSecret: string): Promise<void> {
  await page.evaluate((secret) => {
    const w = window as unknown as Win;
    const elements = w.stripe.elements({ clientSecret: secret });
    elements.create("payment").mount("#card");
    w.elements = elements;
  }, clientSecret);
  await page.waitForSelector("#card input");
}

/** What has the keyboard: `#id` for an element with one, else its text (the dialog's buttons); the page itself is `body`. */
const focusedText = (page: Page) =>
  page.evaluate(() => {
    const active = document.activeElement;
    if (!active || active === document.body) return "body";
    return active.id ? `#${active.id}` : active.textContent;
  });

/** A recharge that the bank refused off-session for want of 3-D Secure: the PaymentIntent and the card to finish it with. */
async function refusedRecharge(amount: number) {
  const customer = await h.stripe.customers.create({ email: `${unique("3ds")}@example.com` });
  const saved = await h.control<{ payment_method: Stripe.PaymentMethod }>("POST", "/payment_methods", { customer: customer.id });
  await h.control("POST", `/payment_methods/${saved.payment_method.id}`, { behaviour: "authentication_required" });
  const refused = await h.api("POST", "/v1/payment_intents", {
    params: { amount: String(amount), currency: "usd", customer: customer.id, payment_method: saved.payment_method.id, off_session: "true", confirm: "true" },
  });
  expect(refused.status).toBe(402);
  return { pi: errorOf(refused).payment_intent as Stripe.PaymentIntent, paymentMethod: saved.payment_method.id };
}

describe.skipIf(!runnable)("the Stripe.js stand-in's 3-D Secure challenge, in Chromium", () => {
  it("finishes a refused recharge with the saved card: an accessible modal, answered from the keyboard, then succeeded", async () => {
    const { pi, paymentMethod } = await refusedRecharge(2500);
    const { page, problems } = await openPage();
    await start(page, "confirmPayment", { clientSecret: pi.client_secret, confirmParams: { payment_method: paymentMethod }, redirect: "if_required" });

    await page.waitForSelector(".stripe-challenge");
    const view = await dialogView(page);
    expect(view).toMatchObject({
      role: "dialog",
      modal: "true",
      name: "Authenticate this payment",
      heading: "Authenticate this payment",
      actionsClass: "stripe-challenge__actions",
      focused: "Complete authentication",
      inlineStyles: 0,
      buttons: [
        { text: "Complete authentication", type: "button" },
        { text: "Fail authentication", type: "button" },
      ],
    });
    expect(view.description).toContain("$25.00");
    // Tab goes round the dialog's two buttons and never leaves it.
    await page.keyboard.press("Tab");
    expect(await focusedText(page)).toBe("Fail authentication");
    await page.keyboard.press("Tab");
    expect(await focusedText(page)).toBe("Complete authentication");
    await page.keyboard.press("Shift+Tab");
    expect(await focusedText(page)).toBe("Fail authentication");
    await page.keyboard.press("Shift+Tab");
    await page.keyboard.press("Enter");

    expect(await result(page)).toMatchObject({ paymentIntent: { id: pi.id, status: "succeeded" } });
    expect(await page.$(".stripe-challenge")).toBeNull();
    expect(await focusedText(page)).toBe("#pay");
    expect(await h.stripe.paymentIntents.retrieve(pi.id)).toMatchObject({ status: "succeeded", amount_received: 2500 });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("reports a failed challenge from the card form as Stripe.js does, and pays nothing", async () => {
    const customer = await h.stripe.customers.create({ email: `${unique("3ds-form")}@example.com` });
    const pi = await h.stripe.paymentIntents.create({ amount: 1234, currency: "usd", customer: customer.id, automatic_payment_methods: { enabled: true } });
    const { page, problems } = await openPage();
    await mountCardForm(page, pi.client_secret as string);
    await page.fill("#card input", "4000 0027 6000 3184");
    await start(page, "confirmPayment", "elements");

    await page.waitForSelector(".stripe-challenge");
    expect((await dialogView(page)).description).toContain("$12.34");
    await page.click("text=Fail authentication");

    expect(await result(page)).toEqual({
      error: {
        type: "invalid_request_error",
        code: "payment_intent_authentication_failure",
        message: "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
        payment_intent: expect.objectContaining({ id: pi.id, status: "requires_payment_method" }) as unknown,
      },
    });
    expect(await page.$(".stripe-challenge")).toBeNull();
    const server = await h.stripe.paymentIntents.retrieve(pi.id);
    expect(server).toMatchObject({
      status: "requires_payment_method",
      amount_received: 0,
      last_payment_error: { code: "payment_intent_authentication_failure" },
    });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("handleNextAction shows the challenge of a PaymentIntent the server confirmed; Escape dismisses it as a failure", async () => {
    const customer = await h.stripe.customers.create({ email: `${unique("3ds-next")}@example.com` });
    const open = await h.stripe.paymentIntents.create({ amount: 900, currency: "usd", customer: customer.id });
    const pi = await h.stripe.paymentIntents.confirm(open.id, { payment_method: "pm_card_authenticationRequired" });
    expect(pi.status).toBe("requires_action");
    const { page, problems } = await openPage();
    await start(page, "handleNextAction", { clientSecret: pi.client_secret });
    await page.waitForSelector(".stripe-challenge");
    await page.keyboard.press("Escape");
    expect(await result(page)).toMatchObject({
      error: { code: "payment_intent_authentication_failure", payment_intent: { status: "requires_payment_method" } },
    });
    expect(await focusedText(page)).toBe("#pay");
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).status).toBe("requires_payment_method");

    // A PaymentIntent with nothing left to do is answered as it is, with no challenge.
    const paid = await h.stripe.paymentIntents.create({ amount: 900, currency: "usd" });
    await h.stripe.paymentIntents.confirm(paid.id, { payment_method: "pm_card_visa" });
    await page.evaluate(() => delete (window as unknown as Win).result);
    await start(page, "handleNextAction", { clientSecret: paid.client_secret });
    expect(await result(page)).toMatchObject({ paymentIntent: { id: paid.id, status: "succeeded" } });
    expect(await page.$(".stripe-challenge")).toBeNull();
    expect(problems).toEqual([]);
    await page.close();
  });

  it("knows the new test cards in the card form: 4000 0000 0000 9995 has insufficient funds", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 500, currency: "usd" });
    const { page, problems } = await openPage();
    await mountCardForm(page, pi.client_secret as string);
    expect(await page.textContent("#card .hint")).toMatch(/4000 0027 6000 3184 asks for 3-D Secure/);
    await page.fill("#card input", "4000 0000 0000 9995");
    await start(page, "confirmPayment", "elements");
    expect(await result(page)).toMatchObject({ error: { type: "card_error", code: "card_declined", decline_code: "insufficient_funds" } });
    expect(problems).toEqual([]);
    await page.close();
  });

  it("refuses confirmPayment without Elements unless it has a client secret and a PaymentMethod id, as an IntegrationError", async () => {
    const pi = await h.stripe.paymentIntents.create({ amount: 500, currency: "usd" });
    const { page } = await openPage();
    const thrown = (options: unknown) =>
      page.evaluate(
        (o) =>
          (window as unknown as Win).stripe.confirmPayment(o).then(
            () => "resolved",
            (e: Error) => `${e.name}: ${e.message}`,
          ),
        options,
      );
    expect(await thrown({ clientSecret: pi.client_secret, confirmParams: {}, redirect: "if_required" })).toMatch(/^IntegrationError: .*payment_method/);
    expect(await thrown({ clientSecret: "nope", confirmParams: { payment_method: "pm_x" }, redirect: "if_required" })).toMatch(
      /^IntegrationError: .*clientSecret/,
    );
    expect((await h.stripe.paymentIntents.retrieve(pi.id)).status).toBe("requires_payment_method");
    await page.close();
  });
});
