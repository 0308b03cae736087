import { describe, expect, it } from "vitest";
import { backoffDelay, jittered, sleep } from "./backoff.js";

describe("backoffDelay", () => {
  it("draws below a doubling ceiling, capped", () => {
    const top = () => 0.999999;
    expect(backoffDelay(0, { baseMs: 100, maxMs: 1000 }, top)).toBe(99);
    expect(backoffDelay(2, { baseMs: 100, maxMs: 1000 }, top)).toBe(399);
    expect(backoffDelay(10, { baseMs: 100, maxMs: 1000 }, top)).toBe(999);
    expect(backoffDelay(1000, { baseMs: 100, maxMs: 1000 }, top)).toBe(999);
    expect(backoffDelay(5, { baseMs: 100, maxMs: 1000 }, () => 0)).toBe(0);
  });

  it("spreads delays over the whole window (full jitter)", () => {
    const draws = Array.from({ length: 500 }, () =>
      backoffDelay(3, { baseMs: 100, maxMs: 10_000 }),
    );
    expect(Math.min(...draws)).toBeLessThan(200);
    expect(Math.max(...draws)).toBeGreaterThan(600);
    expect(Math.max(...draws)).toBeLessThan(800);
  });
});

describe("jittered", () => {
  it("stays within the percentage either way", () => {
    expect(jittered(1000, 20, () => 0)).toBe(800);
    expect(jittered(1000, 20, () => 1)).toBe(1200);
    expect(jittered(1000, 0, () => 0.7)).toBe(1000);
  });
});

describe("sleep", () => {
  it("ends at once when its signal aborts", async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const p = sleep(60_000, ac.signal);
    ac.abort();
    await p;
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
