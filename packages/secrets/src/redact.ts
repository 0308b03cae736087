/** Masks secret values wherever they appear in text or in JSON-like values. */
export interface Redactor {
  /** True when there is nothing to mask. */
  readonly empty: boolean;
  /** `text` with every known value replaced by `***`. */
  text(text: string): string;
  /** A copy of `value` with every string masked (objects and arrays walked; others kept). */
  value<T>(value: T): T;
}

/** The shortest value masked: shorter ones would mask ordinary text everywhere. */
export const MIN_MASKED_LENGTH = 4;
const MASK = "***";

/**
 * A {@link Redactor} for `values`. Longer values are matched first, so a
 * value containing another is masked whole; values shorter than
 * {@link MIN_MASKED_LENGTH} characters are not masked.
 */
export function redactor(values: Iterable<string>): Redactor {
  const list = [...new Set(values)]
    .filter((v) => typeof v === "string" && v.length >= MIN_MASKED_LENGTH)
    .sort((a, b) => b.length - a.length);
  const text = (s: string): string => {
    if (list.length === 0 || s.length < MIN_MASKED_LENGTH) return s;
    let out = s;
    for (const v of list) if (out.includes(v)) out = out.split(v).join(MASK);
    return out;
  };
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return text(v);
    if (depth > 64 || v === null || typeof v !== "object") return v;
    if (v instanceof Date || ArrayBuffer.isView(v)) return v;
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    if (v instanceof Error) {
      const e = new Error(text(v.message));
      e.name = v.name;
      for (const [k, x] of Object.entries(v))
        (e as unknown as Record<string, unknown>)[k] = walk(x, depth + 1);
      return e;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[text(k)] = walk(x, depth + 1);
    return out;
  };
  return {
    empty: list.length === 0,
    text,
    value: <T>(v: T): T => (list.length === 0 ? v : (walk(v, 0) as T)),
  };
}
