import { describe, expect, it, vi } from "vitest";
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

describe("plainDisplay", () => {
  async function shown(chunks: string[]): Promise<string[]> {
    const { plainDisplay } = await import("./display.js");
    const { painter } = await import("../output.js");
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
      out.push(String(s));
      return true;
    });
    try {
      const d = plainDisplay(painter({ isTTY: false } as NodeJS.WriteStream));
      for (const text of chunks)
        d.event({
          type: "task.log",
          task: "t",
          stream: "stdout",
          text,
          runId: "r",
          time: 0,
        } as never);
      d.event({
        type: "task.succeeded",
        task: "t",
        attempts: 1,
        durationMs: 1,
        runId: "r",
        time: 0,
      } as never);
    } finally {
      spy.mockRestore();
    }
    return out
      .join("")
      .split("\n")
      .filter((l) => l.startsWith("t | "));
  }

  it("joins a line sent in parts, and splits chunks holding several lines", async () => {
    expect(await shown(["a", "b\nc", "d\ne"])).toEqual(["t | ab", "t | cd", "t | e"]);
  });

  it("shows a line that never ends in parts of 1 MiB instead of holding it whole", async () => {
    const lines = await shown(Array.from({ length: 40 }, () => "z".repeat(64 * 1024)));
    expect(lines.map((l) => l.length - 4)).toEqual([1024 * 1024, 1024 * 1024, 512 * 1024]);
  });
});
