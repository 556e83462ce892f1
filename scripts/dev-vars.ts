// Reads the local settings file (.dev.vars, created from .dev.vars.example when missing), the
// same file `wrangler dev` reads, so scripts and the Worker agree on secrets and URLs. A setting
// the example gained after .dev.vars was made (SERVICE_TOKEN, say) is appended to it, so an
// older checkout keeps working; one that .dev.vars has commented out is left out on purpose.
// Messages go to stderr: `npm run -s token` prints only the token on stdout.

import { appendFileSync, copyFileSync, existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

const ASSIGNMENT = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/;
const COMMENTED = /^\s*#\s*([A-Z0-9_]+)\s*=/;

/** The settings a file assigns, in order. */
function parse(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = ASSIGNMENT.exec(line);
    if (m) vars.set(m[1] as string, (m[2] as string).replace(/^"(.*)"$/, "$1"));
  }
  return vars;
}

/** Ensures .dev.vars exists and has every setting the example assigns; returns its values. */
export function loadDevVars(): Record<string, string> {
  const file = `${root}.dev.vars`;
  const exampleFile = `${root}.dev.vars.example`;
  if (!existsSync(file)) {
    copyFileSync(exampleFile, file);
    console.error("Created .dev.vars from .dev.vars.example (local settings, pointing at the Stripe emulator).");
  }
  let text = readFileSync(file, "utf8");
  const present = parse(text);
  const setAside = new Set(text.split(/\r?\n/).flatMap((line) => COMMENTED.exec(line)?.[1] ?? []));
  const missing = [...parse(readFileSync(exampleFile, "utf8"))].filter(([name]) => !present.has(name) && !setAside.has(name));
  if (missing.length > 0) {
    const added = `${text.endsWith("\n") || text === "" ? "" : "\n"}# Added from .dev.vars.example:\n${missing.map(([k, v]) => `${k}=${v}`).join("\n")}\n`;
    appendFileSync(file, added);
    text += added;
    console.error(`Added ${missing.map(([k]) => k).join(", ")} to .dev.vars from .dev.vars.example (edit or comment them out there).`);
  }
  return Object.fromEntries(parse(text));
}

export const projectRoot = root;
