import { describe, expect, it } from "vitest";
import { oneLine } from "./display.js";

describe("oneLine", () => {
  it("keeps the first line and says how many more there were", () => {
    expect(oneLine("tok-1\nline2\n")).toBe("tok-1 (+1 more line)");
    expect(oneLine("a\nb\nc")).toBe("a (+2 more lines)");
    expect(oneLine("  just one  \n")).toBe("just one");
  });

  it("cuts a long line", () => {
    expect(oneLine("x".repeat(300), 10)).toBe(`${"x".repeat(10)}…`);
  });
});
