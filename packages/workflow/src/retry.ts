import type { RetryBackoff } from "./model.js";

/** Default base delay between attempts. */
export const DEFAULT_RETRY_DELAY_MS = 1000;
/** No retry waits longer than this. */
export const MAX_RETRY_DELAY_MS = 30_000;

/**
 * The wait before retry number `retry` (0 for the first retry).
 * "exponential": a uniformly random delay in [0, min(30 s, base·2^retry)]
 * ("full jitter", so retries of many tasks do not stampede together);
 * "fixed": always the base, capped at 30 s.
 */
export function retryDelay(
  retry: number,
  backoff: RetryBackoff,
  baseMs: number = DEFAULT_RETRY_DELAY_MS,
  random: () => number = Math.random,
): number {
  const base = Math.max(0, baseMs);
  if (backoff === "fixed") return Math.min(MAX_RETRY_DELAY_MS, base);
  const ceiling = Math.min(MAX_RETRY_DELAY_MS, base * 2 ** retry);
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or early (to false) when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
