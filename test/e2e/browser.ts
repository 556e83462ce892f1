// What the browser tests share: Debian's Chromium (skipped, loudly, where it is not installed and
// this is not CI), launched the same way, and a watch on what a page reports that it should not.

import { existsSync } from "node:fs";
import { chromium, type Browser, type Page, type Request } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** CI installs Chromium (.ci/run); a developer machine without it skips `what`, saying so. */
export function chromiumAvailable(what: string): boolean {
  const runnable = existsSync(CHROMIUM) || process.env.CI === "true";
  if (!runnable) console.warn(`[e2e] ${CHROMIUM} not found: ${what} is skipped (apt-get install chromium to run it)`);
  return runnable;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
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
}

/**
 * What the browser reports that it should not: page errors, console errors (but for the answers
 * `expected` names, e.g. "status of 402"), and every Content-Security-Policy violation, as the
 * `securitypolicyviolation` event sees it. Also every URL the page requests; `onRequest` sees
 * each request too.
 */
export async function watchPage(page: Page, expected: RegExp | null, onRequest: (r: Request) => void = () => {}) {
  const errors: string[] = [];
  const violations: string[] = [];
  const urls: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !(expected && expected.test(m.text()))) errors.push(m.text());
  });
  page.on("request", (r) => {
    urls.push(r.url());
    onRequest(r);
  });
  await page.exposeFunction("reportViolation", (v: string) => violations.push(v));
  // Runs before the page's own scripts (and is not itself subject to the page's policy).
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      (window as unknown as { reportViolation(v: string): void }).reportViolation(`${e.effectiveDirective} ${e.blockedURI}`);
    });
  });
  return { errors, violations, urls };
}
