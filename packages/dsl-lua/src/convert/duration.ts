import { DslError } from "../errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration into milliseconds: a number (in `numberUnit`; Lua files
 * write seconds) or a string such as "250ms", "30s", "5m", "1h30m".
 * Negative or malformed values are errors.
 */
export function parseDuration(input: string | number, numberUnit: "ms" | "s" = "s"): number {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw bad(String(input));
    return Math.round(input * (UNITS[numberUnit] ?? 1));
  }
  const s = input.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return parseDuration(Number(s), numberUnit);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (UNITS[m[2] ?? ""] ?? 0);
    matched = re.lastIndex;
  }
  if (s === "" || matched !== s.length) throw bad(input);
  return Math.round(total);
}

function bad(input: string): DslError {
  return new DslError("SLOTH_DSL_INVALID", `invalid duration '${input}'`, {
    hint: "use seconds or a duration such as 500ms, 30s, 5m or 1h30m",
  });
}
