import type { RunEvent, RunResult } from "@sloth/workflow";
import { formatDuration, type Painter, println } from "../output.js";

/** Shows a run's events as they happen. */
export interface RunDisplay {
  event(event: RunEvent): void;
  /** Stops any live rendering (before the summary is printed). */
  stop(): void;
}

/** One NDJSON line per event on stdout. */
export function jsonDisplay(): RunDisplay {
  return {
    event: (e) => process.stdout.write(`${JSON.stringify(e)}\n`),
    stop: () => {},
  };
}

/** The longest unfinished line held back before it is shown in parts. */
const MAX_HELD_LINE = 1024 * 1024;

/** Plain ordered lines, for logs and pipes; task output as `task | line`. */
export function plainDisplay(c: Painter): RunDisplay {
  // The unfinished line of each task's stream, as pieces: joining them only
  // at a newline keeps a long line linear (a 200 MB line is one piece per chunk).
  const partial = new Map<string, { pieces: string[]; length: number }>();
  const flush = (task: string) => {
    for (const key of [...partial.keys()].filter((k) => k.startsWith(`${task}\0`))) {
      const rest = partial.get(key);
      if (rest && rest.length > 0) println(`${c.dim(`${task} |`)} ${rest.pieces.join("")}`);
      partial.delete(key);
    }
  };
  return {
    event(e) {
      if (e.type === "task.log" || e.type === "workflow.log") {
        // The workflow's own hooks write under its name.
        const who = e.type === "task.log" ? e.task : e.workflow;
        const key = `${who}\0${e.stream}`;
        const p = partial.get(key) ?? { pieces: [], length: 0 };
        partial.set(key, p);
        const lines = e.text.split("\n");
        const last = lines.pop() ?? "";
        for (const line of lines) {
          const head = p.length > 0 ? p.pieces.join("") : "";
          p.pieces = [];
          p.length = 0;
          println(`${c.dim(`${who} |`)} ${head}${line}`);
        }
        if (last !== "") {
          p.pieces.push(last);
          p.length += last.length;
        }
        // A line without end is shown in parts rather than held whole.
        if (p.length >= MAX_HELD_LINE) {
          println(`${c.dim(`${who} |`)} ${p.pieces.join("")}`);
          p.pieces = [];
          p.length = 0;
        }
        return;
      }
      if ("task" in e && e.type.startsWith("task.")) flush(e.task);
      const line = describeEvent(e, c);
      if (line) println(line);
    },
    stop: () => {},
  };
}

/** The one-line description of an event (undefined for log chunks). */
export function describeEvent(e: RunEvent, c: Painter): string | undefined {
  switch (e.type) {
    case "workflow.started":
      return c.bold(`workflow '${e.workflow}' started: ${plural(e.tasks.length, "task")}`);
    case "task.started":
      return `${e.task}: ${c.cyan("started")}`;
    case "task.succeeded":
      return `${e.task}: ${c.green("succeeded")} in ${formatDuration(e.durationMs)}${e.message?.trim() ? ` (${oneLine(e.message)})` : ""}`;
    case "task.failed": {
      const tries = e.attempts > 1 ? ` after ${e.attempts} attempts` : "";
      return `${e.task}: ${c.red("failed")}${tries} in ${formatDuration(e.durationMs)}: ${e.message}`;
    }
    case "task.skipped":
      return `${e.task}: ${c.yellow("skipped")}: ${e.reason}`;
    case "task.retrying":
      return `${e.task}: ${c.yellow("retrying")} in ${formatDuration(e.delayMs)} (attempt ${e.attempt}): ${e.message}`;
    case "task.timed_out":
      return `${e.task}: ${c.red("timed out")} after ${formatDuration(e.timeoutMs)} (attempt ${e.attempt})`;
    case "task.cancelled":
      return `${e.task}: ${c.yellow("cancelled")}: ${e.reason}`;
    default:
      // Terminal workflow events are covered by the summary.
      return undefined;
  }
}

/** The summary printed after a run. */
export function summaryLines(result: RunResult, c: Painter): string[] {
  const { counts } = result;
  const paintStatus =
    result.status === "succeeded" ? c.green : result.status === "interrupted" ? c.yellow : c.red;
  const parts = [
    `${counts.succeeded} succeeded`,
    `${counts.failed} failed`,
    `${counts.skipped} skipped`,
    ...(counts.cancelled > 0 ? [`${counts.cancelled} cancelled`] : []),
  ];
  const lines = [
    `${c.bold(`workflow '${result.workflow}'`)} ${paintStatus(result.status)} in ${formatDuration(result.durationMs)}: ${parts.join(", ")}`,
  ];
  // "task 'x' failed" would only repeat the lines below.
  const generic = /^tasks? '.*' failed$/.test(result.message ?? "");
  if (result.status !== "succeeded" && result.message && !generic)
    lines.push(`  ${result.message}`);
  for (const t of result.tasks) {
    if (t.status === "failed") lines.push(`  ${c.red("✗")} ${t.name}: ${t.message ?? "failed"}`);
  }
  return lines;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * A message as one line of an event list or a table cell: its first line,
 * at most `max` characters, with a note of what was left out.
 */
export function oneLine(text: string, max = 200): string {
  const lines = text.trim().split("\n");
  let first = (lines[0] ?? "").trimEnd();
  if (first.length > max) first = `${first.slice(0, max)}…`;
  return lines.length > 1
    ? `${first} (+${lines.length - 1} more line${lines.length > 2 ? "s" : ""})`
    : first;
}
