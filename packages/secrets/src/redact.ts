/** Masks secret values wherever they appear in text or in JSON-like values. */
export interface Redactor {
  /** True when there is nothing to mask. */
  readonly empty: boolean;
  /** `text` with every known value replaced by `***`. */
  text(text: string): string;
  /** A copy of `value` with every string masked (objects and arrays walked; others kept). */
  value<T>(value: T): T;
  /**
   * A masker for text that arrives in pieces (a process's output): what
   * may be the start of a value is held back until the next piece shows
   * whether it is, so a value split between two pieces is masked too.
   */
  stream(): StreamMasker;
}

/** See {@link Redactor.stream}. */
export interface StreamMasker {
  /** The masked text that can be shown now. */
  push(text: string): string;
  /** What was held back, masked: the stream ended. */
  flush(): string;
}

/** The shortest value masked: shorter ones would mask ordinary text everywhere. */
export const MIN_MASKED_LENGTH = 4;
const MASK = "***";

/**
 * A {@link Redactor} for `values`. Each value is masked as it is, without
 * its surrounding white space, and as JSON writes it inside a string (a
 * multi-line value or one with quotes printed by `json.encode` or a log of
 * a table). Longer forms are matched first, so a value containing another is
 * masked whole; forms shorter than {@link MIN_MASKED_LENGTH} characters are
 * not masked.
 */
export function redactor(values: Iterable<string>): Redactor {
  const forms = new Set<string>();
  for (const v of values) {
    if (typeof v !== "string") continue;
    for (const f of [
      v,
      v.trim(),
      JSON.stringify(v).slice(1, -1),
      JSON.stringify(v.trim()).slice(1, -1),
    ])
      if (f.length >= MIN_MASKED_LENGTH) forms.add(f);
  }
  const list = [...forms].sort((a, b) => b.length - a.length);
  const text = (s: string): string => {
    if (list.length === 0 || s.length < MIN_MASKED_LENGTH) return s;
    let out = s;
    for (const v of list) if (out.includes(v)) out = out.split(v).join(MASK);
    return out;
  };
  /** Length of the longest end of `s` that begins some form without being all of it. */
  const heldBack = (s: string): number => {
    let keep = 0;
    for (const f of list) {
      const from = Math.max(0, s.length - f.length + 1);
      for (
        let i = s.indexOf(f[0] as string, from);
        i !== -1;
        i = s.indexOf(f[0] as string, i + 1)
      ) {
        if (s.length - i <= keep) break;
        if (f.startsWith(s.slice(i))) {
          keep = s.length - i;
          break;
        }
      }
    }
    return keep;
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
    stream: () => {
      let carry = "";
      return {
        push: (piece: string) => {
          if (list.length === 0) return piece;
          const masked = text(carry + piece);
          const keep = heldBack(masked);
          carry = masked.slice(masked.length - keep);
          return masked.slice(0, masked.length - keep);
        },
        flush: () => {
          const rest = text(carry);
          carry = "";
          return rest;
        },
      };
    },
  };
}
