import type { RunEvent } from "@sloth/workflow";
import { formatDuration, type Painter } from "../output.js";
import type { RunDisplay } from "./display.js";

type Row = {
  status: "pending" | "running" | "retrying" | "succeeded" | "failed" | "skipped" | "cancelled";
  started?: number;
  durationMs?: number;
  note?: string;
  lastLine?: string;
};

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/**
 * A live task list for terminals: status, duration, and the latest output
 * line of running tasks, redrawn in place with log-update.
 */
export async function liveDisplay(c: Painter): Promise<RunDisplay> {
  const { createLogUpdate } = await import("log-update");
  const update = createLogUpdate(process.stdout, { showCursor: false });
  const rows = new Map<string, Row>();
  let workflow = "";
  let frame = 0;
  const icon = (r: Row): string => {
    switch (r.status) {
      case "pending":
        return c.dim("·");
      case "running":
      case "retrying":
        return c.cyan(SPINNER[frame % SPINNER.length] ?? "*");
      case "succeeded":
        return c.green("✓");
      case "failed":
        return c.red("✗");
      case "skipped":
        return c.yellow("↷");
      case "cancelled":
        return c.yellow("⊘");
    }
  };
  const render = (): void => {
    const width = process.stdout.columns ?? 100;
    const nameWidth = Math.min(30, Math.max(0, ...[...rows.keys()].map((n) => n.length)));
    const now = Date.now();
    const lines = [c.bold(workflow)];
    for (const [name, r] of rows) {
      const time =
        r.durationMs !== undefined
          ? formatDuration(r.durationMs)
          : r.started
            ? formatDuration(now - r.started)
            : "";
      let line = `  ${icon(r)} ${name.padEnd(nameWidth)}  ${time.padEnd(7)}`;
      const note = r.note ?? (r.status === "running" ? r.lastLine : undefined);
      if (note) line += ` ${c.dim(note.slice(0, Math.max(10, width - nameWidth - 16)))}`;
      lines.push(line);
    }
    update(lines.join("\n"));
  };
  const timer = setInterval(() => {
    frame++;
    render();
  }, 100);
  timer.unref();
  return {
    event(e: RunEvent) {
      switch (e.type) {
        case "workflow.started":
          workflow = `workflow '${e.workflow}'`;
          for (const t of e.tasks) rows.set(t, { status: "pending" });
          break;
        case "task.started":
          rows.set(e.task, { status: "running", started: e.time });
          break;
        case "workflow.log": {
          // The hooks' output stays on screen, above the task list.
          const text = e.text.endsWith("\n") ? e.text.slice(0, -1) : e.text;
          update.clear();
          for (const line of text.split("\n"))
            process.stdout.write(`${c.dim(`${e.workflow} |`)} ${line}\n`);
          break;
        }
        case "task.log": {
          const row = rows.get(e.task);
          const last = e.text.trimEnd().split("\n").pop()?.trim();
          if (row && last) row.lastLine = last;
          break;
        }
        case "task.retrying":
          patch(rows, e.task, {
            status: "retrying",
            note: `retrying (attempt ${e.attempt}): ${e.message}`,
          });
          break;
        case "task.timed_out":
          patch(rows, e.task, { note: `timed out (attempt ${e.attempt})` });
          break;
        case "task.succeeded":
          patch(rows, e.task, { status: "succeeded", durationMs: e.durationMs, note: e.message });
          break;
        case "task.failed":
          patch(rows, e.task, { status: "failed", durationMs: e.durationMs, note: e.message });
          break;
        case "task.skipped":
          patch(rows, e.task, { status: "skipped", note: e.reason });
          break;
        case "task.cancelled":
          patch(rows, e.task, { status: "cancelled", durationMs: e.durationMs, note: e.reason });
          break;
        default:
          break;
      }
      if (e.type !== "task.log") render();
    },
    stop() {
      clearInterval(timer);
      render();
      update.done();
    },
  };
}

function patch(rows: Map<string, Row>, task: string, fields: Partial<Row>): void {
  const row = rows.get(task) ?? { status: "pending" };
  if (fields.status === "retrying") row.status = "running";
  else if (fields.status) row.status = fields.status;
  if (fields.durationMs !== undefined) row.durationMs = fields.durationMs;
  row.note = fields.note;
  rows.set(task, row);
}
