import { setMaxListeners } from "node:events";
import { isSchedulerError, SchedulerError } from "./errors.js";
import { nextRunOf, type RunEnd, type ScheduleStore } from "./store.js";
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
 * launcher that starts a process reports its pid with `started`, so that a
 * run whose scheduler died is still seen running until that process ends.
 * A rejection counts as a failed run, its message recorded.
 */
export type Launcher = (
  schedule: Schedule,
  run: ScheduleRun,
  signal: AbortSignal,
  started?: (pid: number) => void,
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
/** How often runs left by a dead scheduler are checked for having ended. */
const SETTLE_MS = 5000;

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
  // A listener that throws must not stop the scheduler.
  const emit = (e: SchedulerEvent) => {
    try {
      options.onEvent?.(e);
    } catch {
      // The listener's own problem.
    }
  };
  const pollMs = Math.max(10, options.pollMs ?? 1000);
  const release = store.claimScheduler();
  const stop = new AbortController();
  // Every run under way listens for the stop.
  setMaxListeners(0, stop.signal);
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
      // Running already, started by hand or by a scheduler that died.
      if (isSchedulerError(e, "SLOTH_SCHEDULE_BUSY")) skip(s, due, e.message);
      else emit({ type: "error", schedule: s.name, message: messageOf(e) });
      return;
    }
    emit({ type: "run-started", schedule: s.name, run });
    const done = (async () => {
      let ended: ScheduleRun;
      try {
        const r = await launch(s, run, stop.signal, (pid) => store.setChild(run.id, pid));
        ended = store.finishRun(run.id, endOf(r, stop.signal.aborted));
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

  const skip = (s: Schedule, due: number, message: string) => {
    try {
      const run = store.skip(s.name, new Date(due), message);
      emit({ type: "skipped", schedule: s.name, run });
    } catch (e) {
      emit({ type: "error", schedule: s.name, message: messageOf(e) });
    }
  };

  const settle = () => {
    try {
      const lost = store.settleLost();
      if (lost > 0) emit({ type: "lost", count: lost });
    } catch (e) {
      emit({ type: "error", message: messageOf(e) });
    }
  };

  try {
    settle();
    let list: Schedule[] = store.definitions();
    let version = store.changeCounter();
    emit({ type: "started", schedules: list.filter((s) => s.enabled && !s.error).length });
    const broken = new Map<string, string>();
    let lastTick = Date.now();
    let lastSettle = lastTick;
    while (!stop.signal.aborted) {
      const now = Date.now();
      // The clock was set back: every next slot is computed again.
      if (now < lastTick) slots.clear();
      lastTick = now;
      if (now - lastSettle >= SETTLE_MS) {
        lastSettle = now;
        settle();
      }
      try {
        // Read again only when another process changed the file.
        const v = store.changeCounter();
        if (v !== version) {
          version = v;
          list = store.definitions();
        }
      } catch (e) {
        emit({ type: "error", message: messageOf(e) });
      }
      const seen = new Set<string>();
      let nextWake = now + pollMs;
      for (const s of list) {
        seen.add(s.name);
        if (s.error) {
          // Told once per version of the row; the others run on.
          const key = `${s.updatedAt.getTime()}`;
          if (broken.get(s.name) !== key) {
            broken.set(s.name, key);
            emit({ type: "error", schedule: s.name, message: s.error });
          }
          slots.delete(s.name);
          continue;
        }
        broken.delete(s.name);
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
          if (running.has(s.name)) skip(s, due, "its previous run was still going");
          else start(s, due);
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
  if (s.error)
    throw new SchedulerError(
      "SLOTH_INVALID_ARGUMENT",
      `cannot run schedule '${s.name}': ${s.error}`,
    );
  const run = store.startRun(s.name, "manual");
  try {
    const r = await launch(s, run, signal, (pid) => store.setChild(run.id, pid));
    return store.finishRun(run.id, endOf(r, signal.aborted));
  } catch (e) {
    return store.finishRun(run.id, { status: "failed", message: messageOf(e) });
  }
}

/** How a launched run ended, for the record. */
function endOf(r: LaunchResult, stopped: boolean): RunEnd {
  if (r.exitCode === 0)
    return { status: "succeeded", exitCode: 0, runId: r.runId, message: r.message };
  return {
    status: stopped ? "stopped" : "failed",
    exitCode: r.exitCode ?? undefined,
    runId: r.runId,
    message: r.message ?? `exit code ${r.exitCode}`,
  };
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
