// Reads the local settings file (.dev.vars, created from .dev.vars.example when missing), the
// same file `wrangler dev` reads, so scripts and the Worker agree on secrets and URLs.

import { copyFileSync, existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Ensures .dev.vars exists and returns its values. */
export function loadDevVars(): Record<string, string> {
  const file = `${root}.dev.vars`;
  if (!existsSync(file)) {
    copyFileSync(`${root}.dev.vars.example`, file);
    console.log("Created .dev.vars from .dev.vars.example (local settings, pointing at the Stripe emulator).");
  }
  const vars: Record<string, string> = {};
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) vars[m[1] as string] = (m[2] as string).replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

export const projectRoot = root;
