import { invalid } from "./errors.js";

/** A duration: milliseconds as a number, or a string such as `"30s"` or `"1h30m"`. */
export type Duration = number | string;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/**
 * Parses a duration into milliseconds. Numbers and digit-only strings are
 * milliseconds; otherwise a sequence of `<number><unit>` with units ms, s, m,
 * h, d (`"1h30m"`, `"1.5s"`). Negative, non-finite and malformed values throw
 * `SLOTH_INVALID_ARGUMENT`; `Infinity` is accepted only as a number.
 */
export function parseDuration(value: Duration, what = "duration"): number {
  if (typeof value === "number") {
    if (Number.isNaN(value) || value < 0) {
      throw invalid(`invalid ${what} ${value}: expected a non-negative number of ms`, { value });
    }
    return value;
  }
  if (typeof value !== "string") {
    throw invalid(`invalid ${what}: expected a number of ms or a string such as "30s"`);
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) {
      throw invalid(`invalid ${what} '${value}': expected e.g. "500ms", "30s", "1h30m"`, { value });
    }
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ""] ?? Number.NaN);
  }
  if (text.length === 0 || !Number.isFinite(total)) {
    throw invalid(`invalid ${what} '${value}': expected e.g. "500ms", "30s", "1h30m"`, { value });
  }
  return total;
}

// Longer than any deployment lives, and far inside what dates and int64 hold.
const MAX_TTL_MS = 100 * 365.25 * 86_400_000;

/** Parses a TTL: a positive, finite duration of at most 100 years, rounded up to whole ms. */
export function parseTtl(value: Duration): number {
  const ms = typeof value === "number" ? value : parseDuration(value, "ttl");
  if (!(ms > 0) || !Number.isFinite(ms) || ms > MAX_TTL_MS) {
    throw invalid(
      `invalid ttl ${String(value)}: expected a positive duration of at most 100 years`,
      { value },
    );
  }
  return Math.ceil(ms);
}
