import { nextRunOf, type ScheduleStore } from "./store.js";
import type { Schedule, ScheduleRun } from "./types.js";

/** How a launched run ended, as the launcher reports it. */
export interface LaunchResult {
  /** The process's exit code; null when a signal ended it. */
  exitCode: number | null;
  /** The workflow run's id, when the run printed one. */
  runId?: string | undefined;
  /** A line on how it ended (such as "killed by SIGTERM"). */
  message?: string | undefined;
}

/**
 * Starts one run of `schedule` and resolves when it has ended. `signal`
 * aborts when the scheduler stops: the launcher then stops the run. A
 * rejection counts as a failed run, its message recorded.
 */
export type Launcher = (
  schedule: Schedule,
  run: ScheduleRun,
  signal: AbortSignal,
) => Promise<LaunchResult>;

/** What the loop tells as it goes (the CLI prints these). */
export type SchedulerEvent =
  | { type: "started"; schedules: number }
  | { type: "run-started"; schedule: string; run: ScheduleRun }
  | { type: "run-ended"; schedule: string; run: ScheduleRun }
  | { type: "skipped"; schedule: string; run: ScheduleRun }
  | { type: "lost"; count: number }
  | { type: "error"; schedule?: string | undefined; message: string }
  | { type: "stopped" };

/** Options of {@link runScheduler}. */
export interface SchedulerOptions {
  store: ScheduleStore;
  launch: Launcher;
  /** Stops the loop; runs under way get the abort too. */
  signal?: AbortSignal | undefined;
  /** How often schedules are read again, for changes made by other processes (default 1 s). */
  pollMs?: number | undefined;
  onEvent?: ((e: SchedulerEvent) => void) | undefined;
}

const MAX_SLEEP_MS = 2 ** 31 - 1;

/**
 * Runs schedules on time until `signal` aborts; resolves once the runs under
 * way have ended. One loop per schedules file (SLOTH_SCHEDULER_RUNNING
 * otherwise). A schedule's slot comes while its previous run still goes:
 * the slot is recorded as skipped, never run twice at once. Slots missed
 * while no scheduler ran are not made up (as cron does); a schedule added
 * or changed takes its next slot from then on.
 */
export async function runScheduler(options: SchedulerOptions): Promise<void> {
  const { store, launch } = options;
  const emit = options.onEvent ?? (() => undefined);
  const pollMs = Math.max(10, options.pollMs ?? 1000);
  const release = store.claimScheduler();
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });

  /** Per schedule: its next slot, for the definition it was computed from. */
  const slots = new Map<string, { key: string; due: number | undefined }>();
  const running = new Map<string, Promise<void>>();
  let wake: (() => void) | undefined;

  const start = (s: Schedule, due: number) => {
    let run: ScheduleRun;
    try {
      run = store.startRun(s.name, "schedule", new Date(due));
    } catch (e) {
      emit({ type: "error", schedule: s.name, message: messageOf(e) });
      return;
    }
    emit({ type: "run-started", schedule: s.name, run });
    const done = (async () => {
      let ended: ScheduleRun;
      try {
        const r = await launch(s, run, stop.signal);
        ended = store.finishRun(run.id, {
          status: r.exitCode === 0 ? "succeeded" : "failed",
          exitCode: r.exitCode ?? undefined,
          runId: r.runId,
          message: r.message ?? (r.exitCode === 0 ? "" : `exit code ${r.exitCode}`),
        });
      } catch (e) {
        try {
          ended = store.finishRun(run.id, { status: "failed", message: messageOf(e) });
        } catch (e2) {
          emit({ type: "error", schedule: s.name, message: messageOf(e2) });
          return;
        }
      }
      emit({ type: "run-ended", schedule: s.name, run: ended });
    })().finally(() => {
      running.delete(s.name);
    });
    running.set(s.name, done);
  };

  try {
    const lost = store.settleLost();
    if (lost > 0) emit({ type: "lost", count: lost });
    emit({ type: "started", schedules: store.list().filter((s) => s.enabled).length });
    while (!stop.signal.aborted) {
      const now = Date.now();
      let list: Schedule[];
      try {
        list = store.list();
      } catch (e) {
        emit({ type: "error", message: messageOf(e) });
        list = [];
      }
      const seen = new Set<string>();
      let nextWake = now + pollMs;
      for (const s of list) {
        seen.add(s.name);
        if (!s.enabled) {
          slots.delete(s.name);
          continue;
        }
        const key = `${s.cron}\u0000${s.timezone ?? ""}\u0000${s.updatedAt.getTime()}`;
        let slot = slots.get(s.name);
        if (slot === undefined || slot.key !== key) {
          // New or changed: its next slot from now on.
          slot = { key, due: nextDue(s, now) };
          slots.set(s.name, slot);
        }
        if (slot.due !== undefined && slot.due <= now) {
          const due = slot.due;
          if (running.has(s.name)) {
            try {
              const run = store.skip(s.name, new Date(due), "its previous run was still going");
              emit({ type: "skipped", schedule: s.name, run });
            } catch (e) {
              emit({ type: "error", schedule: s.name, message: messageOf(e) });
            }
          } else start(s, due);
          // Slots passed meanwhile are not made up: the next one after now.
          slot.due = nextDue(s, Math.max(now, due));
        }
        if (slot.due !== undefined) nextWake = Math.min(nextWake, slot.due);
      }
      for (const name of slots.keys()) if (!seen.has(name)) slots.delete(name);
      const sleep = Math.min(MAX_SLEEP_MS, Math.max(1, nextWake - Date.now()));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, sleep);
        function done() {
          clearTimeout(timer);
          stop.signal.removeEventListener("abort", done);
          wake = undefined;
          resolve();
        }
        wake = done;
        stop.signal.addEventListener("abort", done, { once: true });
      });
    }
  } finally {
    wake?.();
    options.signal?.removeEventListener("abort", onAbort);
    if (!stop.signal.aborted) stop.abort();
    await Promise.allSettled([...running.values()]);
    release();
    emit({ type: "stopped" });
  }
}

/** Runs `name` once now, outside its slots; resolves with the recorded run. */
export async function runScheduleNow(
  store: ScheduleStore,
  name: string,
  launch: Launcher,
  signal: AbortSignal = new AbortController().signal,
): Promise<ScheduleRun> {
  const s = store.get(name);
  const run = store.startRun(s.name, "manual");
  try {
    const r = await launch(s, run, signal);
    return store.finishRun(run.id, {
      status: r.exitCode === 0 ? "succeeded" : "failed",
      exitCode: r.exitCode ?? undefined,
      runId: r.runId,
      message: r.message ?? (r.exitCode === 0 ? "" : `exit code ${r.exitCode}`),
    });
  } catch (e) {
    return store.finishRun(run.id, { status: "failed", message: messageOf(e) });
  }
}

function nextDue(s: Schedule, from: number): number | undefined {
  try {
    return nextRunOf(s.cron, s.timezone, new Date(from))?.getTime();
  } catch {
    return undefined;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
