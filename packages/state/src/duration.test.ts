import { describe, expect, it } from "vitest";
import { parseDuration, parseTtl } from "./duration.js";
import { isStateError } from "./errors.js";

describe("parseDuration", () => {
  it.each([
    [1500, 1500],
    ["1500", 1500],
    ["500ms", 500],
    ["30s", 30_000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h30m", 5_400_000],
    ["1d", 86_400_000],
    [" 10s ", 10_000],
  ])("parses %j", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each([["-1"], [-5], ["abc"], ["10x"], [""], ["s"], ["1h 30m"], [Number.NaN], ["1e3"]])(
    "rejects %j",
    (input) => {
      expect(() => parseDuration(input as string)).toThrow(/invalid duration/);
      try {
        parseDuration(input as string);
      } catch (e) {
        expect(isStateError(e, "SLOTH_INVALID_ARGUMENT")).toBe(true);
      }
    },
  );
});

describe("parseTtl", () => {
  it("rounds up to whole milliseconds", () => {
    expect(parseTtl(0.2)).toBe(1);
  });
  it.each([[0], ["0s"], [-1], [Number.POSITIVE_INFINITY]])("rejects %j", (input) => {
    expect(() => parseTtl(input)).toThrow(/invalid ttl/);
  });
});
