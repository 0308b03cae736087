/** Exponential backoff settings. */
export interface BackoffOptions {
  /** First ceiling in ms (default 500). */
  baseMs?: number;
  /** Largest ceiling in ms (default 30 000). */
  maxMs?: number;
}

/**
 * Delay before retry number `attempt` (0-based): "full jitter", a uniform
 * draw below an exponentially growing, capped ceiling. Spreading retries over
 * the whole window keeps many agents from hitting a restarted master at once.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random = Math.random,
): number {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const ceiling = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** `intervalMs` moved by up to `percent` % either way. */
export function jittered(intervalMs: number, percent: number, random = Math.random): number {
  const spread = (intervalMs * Math.min(Math.max(percent, 0), 100)) / 100;
  return Math.max(1, Math.round(intervalMs - spread + random() * 2 * spread));
}

/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects), so
 * loops can check their own stop flag afterwards.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
