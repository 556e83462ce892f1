// `npm run tree:check` (run by npm test): the README's "Where things live" names every file
// under src/, each path it names exists, and no file in src/ is over the size a reader can
// hold at once. A file added without a line there, or a line left behind by a move, fails.

import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { projectRoot } from "./dev-vars.js";

/** About what one screenful of reading holds; generated files are exempt. */
const MAX_LINES = 300;
const GENERATED = new Set(["src/worker-configuration.d.ts"]);

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

const root = projectRoot;
const readme = readFileSync(join(root, "README.md"), "utf8");
const section = /## Where things live\n[\s\S]*?```\n([\s\S]*?)```/.exec(readme)?.[1];
if (!section) {
  console.error('README.md has no "## Where things live" section with a code block');
  process.exit(1);
}
const listed = section
  .split("\n")
  .map((line) => line.split(/\s{2,}/)[0]?.trim() ?? "")
  .filter((entry) => entry !== "")
  .flatMap((entry) => entry.split(/,\s*/));

const problems: string[] = [];
for (const entry of listed) {
  // `test/*.test.ts` stands for a set of files: at least one must exist.
  if (entry.includes("*")) {
    const [dir = "", pattern = ""] = [entry.slice(0, entry.lastIndexOf("/")), entry.slice(entry.lastIndexOf("/") + 1)];
    const match = new RegExp(`^${pattern.replace(/\./g, "\\.").replace(/\*/g, ".*")}$`);
    if (!readdirSync(join(root, dir)).some((f) => match.test(f))) problems.push(`README names ${entry}, which matches nothing`);
  } else if (!existsSync(join(root, entry))) problems.push(`README names ${entry}, which does not exist`);
}
const named = new Set(listed);
for (const file of filesUnder(join(root, "src")).map((f) => relative(root, f))) {
  if (!named.has(file)) problems.push(`${file} is not in the README's "Where things live"`);
  const lines = readFileSync(join(root, file), "utf8").split("\n").length;
  if (!GENERATED.has(file) && lines > MAX_LINES) problems.push(`${file} has ${lines} lines (at most ${MAX_LINES}): split it along a seam`);
}
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(`The README's "Where things live" matches src/ (${named.size} entries); no source file over ${MAX_LINES} lines.`);
