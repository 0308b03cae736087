/**
 * Where keys and task names appear in a workflow file. Lua tables forget
 * declaration order, so groups and keyed tasks are ordered by where their
 * `key = {` appears in the source. A small tokenizer (comments and strings
 * skipped, braces tracked) records each such key with its enclosing keys.
 */
interface KeyEntry {
  key: string;
  /** Keys of the enclosing tables, outermost first ("" for unnamed ones). */
  path: string[];
  line: number;
  offset: number;
}

interface NameEntry {
  value: string;
  line: number;
  offset: number;
}

type Token = { t: "id" | "str" | "op"; v: string; line: number; offset: number };

/** Source positions of a workflow file. */
export class SourceIndex {
  private readonly keys: KeyEntry[] = [];
  private readonly names: NameEntry[] = [];

  constructor(source: string) {
    const frames: string[] = [];
    const recent: Token[] = [];
    for (const tok of tokenize(source)) {
      const [a, b] = [recent[recent.length - 2], recent[recent.length - 1]];
      if (tok.t === "op" && tok.v === "{") {
        let key = "";
        if (b?.v === "=" && b.t === "op") {
          if (a?.t === "id") key = a.v;
          else if (a?.t === "op" && a.v === "]") {
            const s = recent[recent.length - 3];
            if (s?.t === "str") key = s.v;
          }
        }
        if (key) this.keys.push({ key, path: [...frames], line: tok.line, offset: tok.offset });
        frames.push(key);
      } else if (tok.t === "op" && tok.v === "}") {
        frames.pop();
      } else if (
        tok.t === "str" &&
        b?.t === "op" &&
        b.v === "=" &&
        a?.t === "id" &&
        a.v === "name"
      ) {
        this.names.push({ value: tok.v, line: tok.line, offset: tok.offset });
      }
      recent.push(tok);
      if (recent.length > 4) recent.shift();
    }
  }

  /** Position of group `name` in `TaskDefinitions = { name = {...} }`. */
  group(name: string): { line: number; offset: number } | undefined {
    return this.keys.find(
      (k) => k.key === name && k.path.length === 1 && k.path[0] === "TaskDefinitions",
    );
  }

  /** Position of a keyed task `key = {...}` inside a `tasks = {...}`, in `within` if given, after `afterLine`. */
  keyedTask(
    key: string,
    within: string | undefined,
    afterLine = 0,
  ): { line: number; offset: number } | undefined {
    const candidates = this.keys.filter(
      (k) => k.key === key && k.path[k.path.length - 1] === "tasks",
    );
    const inside =
      within === undefined ? candidates : candidates.filter((k) => k.path.includes(within));
    return (
      (inside.length > 0 ? inside : candidates).find((k) => k.line >= afterLine) ??
      inside[0] ??
      candidates[0]
    );
  }

  /** Line of the first `name = "value"` at or after `afterLine`. */
  nameLine(value: string, afterLine = 0): number | undefined {
    const all = this.names.filter((n) => n.value === value);
    return (all.find((n) => n.line >= afterLine) ?? all[0])?.line;
  }
}

function* tokenize(src: string): Generator<Token> {
  let i = 0;
  let line = 1;
  const n = src.length;
  const longBracket = (at: number): number => {
    // Returns the level of a long bracket "[==[" at `at`, or -1.
    const m = /^\[(=*)\[/.exec(src.slice(at, at + 64));
    return m ? (m[1]?.length ?? 0) : -1;
  };
  const skipLong = (level: number): string => {
    const start = i + level + 2;
    const close = `]${"=".repeat(level)}]`;
    const end = src.indexOf(close, start);
    const stop = end < 0 ? n : end;
    const body = src.slice(start, stop);
    for (const ch of src.slice(i, stop + close.length)) if (ch === "\n") line++;
    i = end < 0 ? n : end + close.length;
    return body;
  };
  while (i < n) {
    const c = src[i] ?? "";
    if (c === "\n") {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === "-" && src[i + 1] === "-") {
      i += 2;
      const level = longBracket(i);
      if (level >= 0) skipLong(level);
      else while (i < n && src[i] !== "\n") i++;
    } else if (c === '"' || c === "'") {
      const start = i;
      const startLine = line;
      let s = "";
      i++;
      while (i < n && src[i] !== c && src[i] !== "\n") {
        if (src[i] === "\\") {
          s += src[i + 1] ?? "";
          i += 2;
        } else s += src[i++];
      }
      i++;
      yield { t: "str", v: s, line: startLine, offset: start };
    } else if (c === "[" && longBracket(i) >= 0) {
      const start = i;
      const startLine = line;
      yield { t: "str", v: skipLong(longBracket(i)), line: startLine, offset: start };
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_]\w*/.exec(src.slice(i, i + 256));
      const v = m?.[0] ?? c;
      yield { t: "id", v, line, offset: i };
      i += v.length;
    } else if ("=~<>".includes(c) && src[i + 1] === "=") {
      yield { t: "op", v: `${c}=`, line, offset: i };
      i += 2;
    } else {
      yield { t: "op", v: c, line, offset: i };
      i++;
    }
  }
}
