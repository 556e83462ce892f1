// What makes a PaymentIntent a top-up: pure, so that the rule can be read and tested on its own.
// A top-up is a PaymentIntent this service made (POST /billing/top_ups); every other payment
// of the same customer (a subscription, an invoice, another product) must never become credit.

import { z } from "zod";

/**
 * The metadata marker `createTopUp` puts on every top-up it makes. `account_id` alone is not
 * enough: other products of the same Stripe account tag their payments with it too.
 */
export const TOP_UP_MARKER_KEY = "edge_credit";
export const TOP_UP_MARKER_VALUE = "top_up";

/** The marker as PaymentIntent metadata, to spread next to `account_id`. */
export const TOP_UP_MARKER: Readonly<Record<string, string>> = { [TOP_UP_MARKER_KEY]: TOP_UP_MARKER_VALUE };

/**
 * Top-ups made by the server this one replaces, which carry no marker of ours: those whose
 * metadata has `key` = `value` and that were created before `createdBefore` (unix seconds).
 */
export interface LegacyTopUps {
  key: string;
  value: string;
  createdBefore: number;
}

/** True when `metadata` carries this service's top-up marker. */
export function hasTopUpMarker(metadata: Record<string, string> | null | undefined): boolean {
  return metadata?.[TOP_UP_MARKER_KEY] === TOP_UP_MARKER_VALUE;
}

/** True when a PaymentIntent without our marker is admitted as a legacy top-up. */
export function isLegacyTopUp(metadata: Record<string, string> | null | undefined, created: number, legacy: LegacyTopUps | null): boolean {
  if (legacy === null) return false;
  return metadata?.[legacy.key] === legacy.value && Number.isFinite(created) && created < legacy.createdBefore;
}

/** `key=value`: a Stripe metadata key (at most 40 characters, no `=`) and a non-empty value (at most 500). */
const LegacyMetadata = z
  .string()
  .regex(/^[^=\s][^=]{0,39}=.{1,500}$/s, "must be key=value: a metadata key of at most 40 characters, then a value")
  .transform((s) => {
    const at = s.indexOf("=");
    return { key: s.slice(0, at), value: s.slice(at + 1) };
  });

/**
 * Unix seconds (at most ten digits: a millisecond timestamp would put the cutoff thousands of
 * years ahead and admit everything), an ISO date (`2024-06-01`, midnight UTC) or an ISO date and
 * time with its offset (`2024-06-01T12:00:00Z`). A time without an offset is refused: its zone
 * would be a guess.
 */
const LegacyCutoff = z.union([
  z
    .string()
    .regex(/^\d{1,10}$/, "unix seconds")
    .transform(Number),
  z.iso.date().transform((s) => Date.parse(`${s}T00:00:00Z`) / 1000),
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s) / 1000),
]);

/** The two settings (src/settings.ts), named here so that Node tools can import this module without Worker types. */
export interface LegacySettings {
  LEGACY_TOPUP_METADATA?: string | undefined;
  LEGACY_TOPUP_CREATED_BEFORE?: string | undefined;
}

export type LegacyParse = { ok: true; legacy: LegacyTopUps | null } | { ok: false; error: string };

/**
 * The legacy setting: off (null) when neither `LEGACY_TOPUP_METADATA` nor
 * `LEGACY_TOPUP_CREATED_BEFORE` is set; an error when only one is set or either is malformed,
 * so that a typo is reported rather than read as "admit". The settings schema (src/settings.ts)
 * turns the error into a SettingsError like any other bad setting.
 */
export function parseLegacyTopUps(env: LegacySettings): LegacyParse {
  const metadata = env.LEGACY_TOPUP_METADATA?.trim() ?? "";
  const cutoff = env.LEGACY_TOPUP_CREATED_BEFORE?.trim() ?? "";
  if (metadata === "" && cutoff === "") return { ok: true, legacy: null };
  if (metadata === "" || cutoff === "") return { ok: false, error: "LEGACY_TOPUP_METADATA and LEGACY_TOPUP_CREATED_BEFORE must be set together" };
  const pair = LegacyMetadata.safeParse(metadata);
  if (!pair.success) return { ok: false, error: `LEGACY_TOPUP_METADATA ${pair.error.issues[0]?.message ?? "is malformed"}` };
  const before = LegacyCutoff.safeParse(cutoff);
  if (!before.success) return { ok: false, error: "LEGACY_TOPUP_CREATED_BEFORE must be unix seconds or an ISO date (2024-06-01, or 2024-06-01T12:00:00Z)" };
  return { ok: true, legacy: { key: pair.data.key, value: pair.data.value, createdBefore: before.data } };
}
