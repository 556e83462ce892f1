// Stripe's request parameters: form-encoded bracket syntax (`metadata[k]=v`, `expand[]=x`,
// `expand[0]=x`) decoded into nested values, then checked against a per-endpoint spec.
// Hand-written rather than a schema library because the output has to be Stripe's exact
// error codes (`parameter_unknown`, `parameter_missing`, `parameter_invalid_integer`, ...)
// with the bracketed `param` path, which is what clients and the service classify on.

import { StripeFailure } from "./errors.js";

/** A decoded form value: a string leaf, a nested record or an array. */
export type FormValue = string | FormValue[] | { [key: string]: FormValue };
export type FormRecord = { [key: string]: FormValue };

/**
 * Sets `key` as an own property, whatever its name: a caller's `metadata[__proto__][x]=1` is a
 * key like any other, never a way to the prototype of every object in the process.
 */
function setOwn(node: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(node, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Deeper than any parameter Stripe has (its deepest are about six levels): a key nested further
 * is refused before anything recursive (the spec check, canonical text) walks it.
 */
const MAX_DEPTH = 12;

/**
 * Decodes `a[b][c]=v&d[]=x` into `{a: {b: {c: "v"}}, d: ["x"]}`. Throws a 400 StripeFailure for
 * a key no decoding can hold: nested beyond MAX_DEPTH, a name inside a list (`d[0]=x&d[k]=y`),
 * or an index past the list's end (`d[100000000]=x`, which would allocate a list that long).
 */
export function decodeForm(pairs: Iterable<[string, string]>): FormRecord {
  const root: FormRecord = {};
  for (const [rawKey, value] of pairs) {
    const path = splitKey(rawKey);
    if (path.length > MAX_DEPTH) throw invalid(rawKey, "parameter_invalid", `Invalid parameter: ${rawKey} is nested too deeply.`);
    let node: FormRecord | FormValue[] = root;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i] as string;
      const last = i === path.length - 1;
      const nextIsIndex = !last && /^\d*$/.test(path[i + 1] as string);
      if (Array.isArray(node)) {
        const idx = seg === "" ? node.length : /^\d+$/.test(seg) ? Number(seg) : -1;
        if (idx < 0 || idx > node.length) throw invalid(rawKey, "parameter_invalid", `Invalid array: ${rawKey} is not the next index of its list.`);
        if (last) node[idx] = value;
        else {
          const existing = node[idx];
          if (existing === undefined || typeof existing === "string") node[idx] = nextIsIndex ? [] : {};
          node = node[idx] as FormRecord | FormValue[];
        }
      } else if (last) {
        setOwn(node, seg, value);
      } else {
        const existing: FormValue | undefined = Object.hasOwn(node, seg) ? node[seg] : undefined;
        if (existing === undefined || typeof existing === "string") setOwn(node, seg, nextIsIndex ? [] : {});
        node = node[seg] as FormRecord | FormValue[];
      }
    }
  }
  return root;
}

function splitKey(key: string): string[] {
  const first = key.indexOf("[");
  if (first < 0) return [key];
  const parts = [key.slice(0, first)];
  const re = /\[([^\]]*)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(key.slice(first))) !== null) parts.push(m[1] as string);
  return parts;
}

/** Canonical text of decoded params, used to compare a retry with the request a key first saw. */
export function canonical(value: FormValue | undefined): string {
  if (value === undefined) return "";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
    .join(",")}}`;
}

/** What a parameter must be. */
export type Spec = "string" | "integer" | "boolean" | "currency" | "metadata" | "string[]" | { enum: readonly string[] } | { [field: string]: Spec };

export type FieldSpec = { [field: string]: Spec };

/** Parsed, typed parameters; leaves stay loosely typed and are narrowed by each handler. */
export type Params = { [key: string]: unknown };

/**
 * Checks decoded params against `spec`. Every endpoint also accepts `expand`. Returns typed
 * values (integers as numbers, booleans as booleans); throws a StripeFailure that Stripe would
 * not save under an Idempotency-Key (parameter validation).
 */
export function validate(input: FormRecord, spec: FieldSpec, required: readonly string[] = []): Params {
  const out: Params = {};
  for (const [key, value] of Object.entries(input)) {
    if (key === "expand") continue;
    const s = spec[key];
    if (s === undefined) throw unknownParam(key);
    out[key] = check(value, s, key);
  }
  for (const r of required) {
    if (out[r] === undefined || out[r] === "") throw missingParam(r);
  }
  return out;
}

function check(value: FormValue, spec: Spec, path: string): unknown {
  if (spec === "string") {
    if (typeof value !== "string") throw invalid(path, "parameter_invalid_string", `Invalid string: ${path}`);
    return value;
  }
  if (spec === "integer") {
    if (typeof value !== "string" || !/^-?\d{1,15}$/.test(value))
      throw invalid(path, "parameter_invalid_integer", `Invalid integer: ${typeof value === "string" ? value : "[object]"}`);
    return Number(value);
  }
  if (spec === "boolean") {
    if (value !== "true" && value !== "false")
      throw invalid(path, "parameter_invalid_string", `Invalid boolean: ${typeof value === "string" ? value : "[object]"}`);
    return value === "true";
  }
  if (spec === "currency") {
    if (typeof value !== "string" || !/^[a-zA-Z]{3}$/.test(value))
      throw invalid(path, "parameter_invalid_string", `Invalid currency: ${typeof value === "string" ? value : "[object]"}`);
    return value.toLowerCase();
  }
  if (spec === "metadata") return checkMetadata(value, path);
  if (spec === "string[]") {
    const arr = Array.isArray(value) ? value : typeof value === "object" ? Object.values(value) : null;
    if (!arr || arr.some((v) => typeof v !== "string")) throw invalid(path, "parameter_invalid_array", `Invalid array: ${path}`);
    return arr;
  }
  if ("enum" in spec && Array.isArray(spec.enum)) {
    if (typeof value !== "string" || !spec.enum.includes(value))
      throw invalid(path, "parameter_invalid_string", `Invalid ${path}: must be one of ${spec.enum.join(", ")}`);
    return value;
  }
  if (typeof value !== "object" || Array.isArray(value)) throw invalid(path, "parameter_invalid_object", `Invalid object: ${path}`);
  const nested: Params = {};
  const fields = spec as FieldSpec;
  for (const [k, v] of Object.entries(value)) {
    const s = fields[k];
    if (s === undefined) throw unknownParam(`${path}[${k}]`);
    nested[k] = check(v, s, `${path}[${k}]`);
  }
  return nested;
}

function checkMetadata(value: FormValue, path: string): Record<string, string> {
  // An empty string for the whole hash (`metadata=`) clears it in Stripe; model it as {}.
  if (value === "") return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid(path, "parameter_invalid_object", "Invalid metadata: must be a hash");
  const out: Record<string, string> = {};
  const entries = Object.entries(value);
  if (entries.length > 50) throw invalid(path, "parameter_invalid_object", "Metadata can have at most 50 keys.");
  for (const [k, v] of entries) {
    if (typeof v !== "string") throw invalid(`${path}[${k}]`, "parameter_invalid_string", "Metadata values must be strings.");
    if (k.length > 40) throw invalid(`${path}[${k}]`, "parameter_invalid_string", "Metadata keys can be at most 40 characters long.");
    if (v.length > 500) throw invalid(`${path}[${k}]`, "parameter_invalid_string", "Metadata values can be at most 500 characters long.");
    setOwn(out, k, v);
  }
  return out;
}

/** Stripe's pagination params, shared by every list endpoint. */
export const listSpec: FieldSpec = { limit: "integer", starting_after: "string", ending_before: "string" };

function unknownParam(param: string): StripeFailure {
  return new StripeFailure(400, {
    type: "invalid_request_error",
    code: "parameter_unknown",
    param,
    message: `Received unknown parameter: ${param}`,
  });
}

function missingParam(param: string): StripeFailure {
  return new StripeFailure(400, {
    type: "invalid_request_error",
    code: "parameter_missing",
    param,
    message: `Missing required param: ${param}.`,
  });
}

function invalid(param: string, code: string, message: string): StripeFailure {
  return new StripeFailure(400, { type: "invalid_request_error", code, param, message });
}
