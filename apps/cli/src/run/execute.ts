import type {
  DelegateExecutor,
  Logger,
  RunResult,
  TaskOutput,
  Value,
  WorkflowModel,
} from "@sloth/workflow";
import { eprintln, painter, println } from "../output.js";
import { onStopSignals, signalExitCode } from "../signals.js";
import { jsonDisplay, plainDisplay, type RunDisplay, summaryLines } from "./display.js";
import type { Recording, RunHistory } from "./record.js";

/** Options of {@link executeRuns}. */
export interface ExecuteOptions {
  json: boolean;
  params: Record<string, Value>;
  values: Record<string, Value>;
  maxParallel: number | undefined;
  failFast: boolean | undefined;
  dataDir: string;
  logger: Logger;
  /** Records each run in history.db; absent with --no-history. */
  history?: RunHistory | undefined;
  /** Tasks done in the resumed run, with their outputs (`run --resume`). */
  completed?: Record<string, TaskOutput | undefined> | undefined;
  /** Runs delegated tasks on agents; absent when no task is delegated. */
  delegateFor?: ((model: WorkflowModel) => DelegateExecutor) | undefined;
  /** The stack the runs deploy (`run STACK -f FILE`). */
  stack?: string | undefined;
  /** Called as each workflow starts, with its run id. */
  onStart?: ((runId: string) => void) | undefined;
  /** Called with every finished workflow's result. */
  onResult?: ((result: RunResult) => void) | undefined;
  /**
   * Masks secret values in everything shown and recorded (events, results,
   * history); the tasks themselves see the real values.
   */
  redact?: import("@sloth/secrets").Redactor | undefined;
}

/**
 * Runs the models one after another (the groups of a TaskDefinitions file
 * run in declaration order; a failed one stops the rest), showing progress
 * and a summary. SIGINT/SIGTERM interrupt the run: every task's process group
 * is killed. Returns the exit code.
 */
export async function executeRuns(
  models: WorkflowModel[],
  options: ExecuteOptions,
): Promise<number> {
  const { runWorkflow } = await import("@sloth/workflow");
  const c = painter(process.stdout);
  const results: RunResult[] = [];
  let signal: NodeJS.Signals | undefined;
  let signals = 0;
  let cancel: ((reason: string) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    // The run kills every process group within the kill grace; leaving
    // earlier could orphan processes that ignore SIGTERM, so only a third
    // signal exits at once.
    if (signals === 2) eprintln("still stopping tasks; send the signal again to exit now");
    if (signals >= 3) process.exit(signalCode(sig));
    if (signal) return;
    signal = sig;
    cancel?.(`interrupted by ${sig}`);
  };
  const offSignals = onStopSignals(onSignal);
  const started = Date.now();
  const redact = options.redact?.empty === false ? options.redact : undefined;
  const mask = <T>(v: T): T => (redact ? redact.value(v) : v);
  try {
    for (const model of models) {
      if (signal) break;
      const display = await makeDisplay(options.json, c);
      const masking = redact ? eventMasker(redact) : undefined;
      let recording: Recording | undefined;
      const handle = runWorkflow(model, {
        params: options.params,
        values: options.values,
        maxParallel: options.maxParallel,
        failFast: options.failFast,
        dataDir: options.dataDir,
        logger: options.logger,
        completed: options.completed,
        delegate: options.delegateFor?.(model),
        stack: options.stack,
        onEvent: (raw) => {
          for (const e of masking ? masking(raw) : [raw]) {
            display.event(e);
            recording?.event(e);
          }
        },
      });
      // The run starts on the next macrotask, so no event is missed.
      recording = options.history?.begin(model, handle.runId);
      options.onStart?.(handle.runId);
      cancel = handle.cancel;
      const result = mask(await handle.result);
      recording?.finish(result);
      display.stop();
      results.push(result);
      options.onResult?.(result);
      if (!options.json) for (const line of summaryLines(result, c)) println(line);
      if (!options.json && recording) println(`run id: ${result.runId}`);
      if (result.status !== "succeeded") break;
    }
  } finally {
    offSignals();
  }
  const failed = results.find((r) => r.status !== "succeeded");
  if (options.json) {
    const status = failed?.status ?? "succeeded";
    const summary = {
      type: "summary",
      status,
      durationMs: Date.now() - started,
      workflows: results,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } else if (results.length < models.length && failed) {
    const rest = models.slice(results.length).map((m) => `'${m.name}'`);
    println(`not run after '${failed.workflow}' ${failed.status}: ${rest.join(", ")}`);
  }
  if (signal || failed?.status === "interrupted") return signalCode(signal ?? "SIGINT");
  return failed ? 1 : 0;
}

async function makeDisplay(json: boolean, c: ReturnType<typeof painter>): Promise<RunDisplay> {
  if (json) return jsonDisplay();
  // A terminal that reports no size (some ptys) would get an empty frame.
  if (process.stdout.isTTY && (process.stdout.rows ?? 0) > 0) {
    const { liveDisplay } = await import("./live.js");
    return liveDisplay(c);
  }
  return plainDisplay(c);
}

/** Exit codes shells expect after SIGINT (130) and SIGTERM (143). */
function signalCode(sig: NodeJS.Signals): number {
  return signalExitCode(sig);
}

type RunEventOf = import("@sloth/workflow").RunEvent;
type LogEvent = Extract<RunEventOf, { type: "task.log" | "workflow.log" }>;

/**
 * Masks secret values in a run's events. Output comes in pieces, so each
 * stream of each task is masked as a stream (a value split between two
 * pieces is masked too); what a stream held back is let out, masked, before
 * the next event of its task, and before the run's end for every stream.
 */
function eventMasker(redact: import("@sloth/secrets").Redactor): (e: RunEventOf) => RunEventOf[] {
  const streams = new Map<
    string,
    { masker: import("@sloth/secrets").StreamMasker; like: LogEvent }
  >();
  const flush = (out: RunEventOf[], which: (like: LogEvent) => boolean, time: number) => {
    for (const [key, s] of streams) {
      if (!which(s.like)) continue;
      streams.delete(key);
      const text = s.masker.flush();
      if (text !== "") out.push({ ...s.like, text, time });
    }
  };
  return (e) => {
    if (e.type === "task.log" || e.type === "workflow.log") {
      const key = e.type === "task.log" ? `t\0${e.task}\0${e.stream}` : `w\0${e.stream}`;
      let s = streams.get(key);
      if (s === undefined) {
        s = { masker: redact.stream(), like: e };
        streams.set(key, s);
      }
      const text = s.masker.push(e.text);
      return text === "" ? [] : [{ ...e, text }];
    }
    const out: RunEventOf[] = [];
    if ("task" in e && e.type !== "workflow.aborted")
      flush(out, (l) => l.type === "task.log" && l.task === e.task, e.time);
    if (e.type.startsWith("workflow.")) flush(out, () => true, e.time);
    out.push(redact.value(e));
    return out;
  };
}
