// The workflow engine's cost per task: DAGs of trivial Lua tasks (parsed by
// @sloth/dsl-lua, run by @sloth/workflow) next to the same number of no-op
// JS functions through the same scheduler, in a wide and a deep shape, with
// run history on and off; plus Lua engine creation and pooled reuse.
// Prints a table; writes results/workflow.json.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadWorkflowFile, shutdownLuaWorkers } from "@sloth/dsl-lua";
import { type HistoryStore, openHistory } from "@sloth/history";
import { defineWorkflow, runWorkflow, type WorkflowModel } from "@sloth/workflow";
import { median, printTable, QUICK, type Row, round, row, writeResult } from "./lib/report.js";

type Shape = "wide" | "deep";
const SIZES = QUICK ? [200, 1000] : [1000, 10_000];
const REPS = QUICK ? 1 : 3;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-bench-workflow-"));
const perTaskGoal = { kind: "max", limit: 1, text: "≤ 1 ms" } as const;
const linearGoal = { kind: "max", limit: 1.5, text: "≤ 1.5×" } as const;

function jsModel(n: number, shape: Shape): WorkflowModel {
  const noop = async () => ({ ok: true });
  return defineWorkflow({
    name: `js-${shape}-${n}`,
    baseDir: tmp,
    tasks: Array.from({ length: n }, (_, i) => ({
      name: `t${i + 1}`,
      dependsOn: shape === "deep" && i > 0 ? [`t${i}`] : [],
      command: noop,
    })),
  });
}

/** A file declaring n tasks one by one (a table: Lua caps locals at 200). */
function luaFile(n: number, shape: Shape): string {
  const lines = ["local t = {}"];
  for (let i = 1; i <= n; i++) {
    const dep = shape === "deep" && i > 1 ? `:depends_on({ t[${i - 1}] })` : "";
    lines.push(`t[${i}] = task("t${i}")${dep}:command(function() return true end)`);
  }
  lines.push(`workflow.define("lua-${shape}-${n}"):tasks(t)`);
  const file = path.join(tmp, `${shape}-${n}.sloth`);
  fs.writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

/** Runs a model to its end, recording it as the CLI does when `history` is given; wall ms. */
async function timeRun(model: WorkflowModel, history?: HistoryStore): Promise<number> {
  const start = performance.now();
  let rec: ReturnType<HistoryStore["record"]> | undefined;
  const run = runWorkflow(model, { dataDir: tmp, onEvent: (e) => rec?.event(e) });
  const tasks = model.tasks.map((t) => t.name);
  rec = history?.record({ id: run.runId, workflow: model.name, tasks });
  const result = await run.result;
  rec?.finish(result);
  const ms = performance.now() - start;
  if (result.status !== "succeeded") throw new Error(`${model.name}: ${result.message}`);
  if (rec?.error) throw rec.error;
  return ms;
}

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const start = performance.now();
  const value = await fn();
  return [performance.now() - start, value];
}

const openBenchHistory = (name: string) =>
  openHistory({ path: path.join(tmp, `${name}-${Math.random().toString(16).slice(2)}.db`) });

interface Cell {
  n: number;
  shape: Shape;
  parseMs: number;
  luaOffMs: number;
  luaOnMs: number;
  jsOffMs: number;
  jsOnMs: number;
}

async function measure(n: number, shape: Shape): Promise<Cell> {
  const js = jsModel(n, shape);
  const file = luaFile(n, shape);
  const off: number[] = [];
  const on: number[] = [];
  const parse: number[] = [];
  const luaOff: number[] = [];
  const luaOn: number[] = [];
  // Interleaved, so machine noise hits both sides alike. Every Lua run loads
  // the file anew, as each `sloth-runner run` does, so the workers it uses
  // load it again too: that cost is part of the per-task figure.
  for (let i = 0; i < REPS; i++) {
    off.push(await timeRun(js));
    const h = openBenchHistory("js");
    on.push(await timeRun(js, h));
    h.close();
    const [parseMs, loaded] = await timed(() => loadWorkflowFile(file, { dataDir: tmp }));
    parse.push(parseMs);
    luaOff.push(await timeRun(loaded.workflows[0]!));
    const again = await loadWorkflowFile(file, { dataDir: tmp });
    const hl = openBenchHistory("lua");
    luaOn.push(await timeRun(again.workflows[0]!, hl));
    hl.close();
  }
  return {
    n,
    shape,
    parseMs: median(parse),
    luaOffMs: median(luaOff),
    luaOnMs: median(luaOn),
    jsOffMs: median(off),
    jsOnMs: median(on),
  };
}

/** wasmoon engine creation, first and further, and a task call on a warm pooled worker. */
async function engines(): Promise<Record<string, number>> {
  const t0 = performance.now();
  const { LuaFactory } = await import("wasmoon");
  const importMs = performance.now() - t0;
  const factory = new LuaFactory();
  const [firstMs, first] = await timed(() => factory.createEngine());
  first.global.close();
  const further: number[] = [];
  for (let i = 0; i < 20; i++) {
    const [ms, e] = await timed(() => factory.createEngine());
    further.push(ms);
    e.global.close();
  }
  const one = path.join(tmp, "one.sloth");
  fs.writeFileSync(
    one,
    'workflow.define("one"):tasks({ task("t"):command(function() return true end) })\n',
  );
  const model = (await loadWorkflowFile(one, { dataDir: tmp })).workflows[0]!;
  await timeRun(model);
  const calls: number[] = [];
  for (let i = 0; i < (QUICK ? 5 : 20); i++) calls.push(await timeRun(model));
  return { importMs, firstMs, furtherMs: median(further), pooledCallMs: median(calls) };
}

async function main(): Promise<void> {
  const cells: Cell[] = [];
  try {
    // A warm pool first (a worker per parallel task), so the first cell does
    // not pay for worker start-up; and a warm JIT for the JS runs.
    const warm = await loadWorkflowFile(luaFile(8, "wide"), { dataDir: tmp });
    await timeRun(warm.workflows[0]!);
    await timeRun(jsModel(1000, "wide"));
    for (const n of SIZES)
      for (const shape of ["wide", "deep"] as const) {
        cells.push(await measure(n, shape));
        console.error(`measured ${shape} ${n}`);
      }
    const eng = await engines();
    const rows: Row[] = [];
    for (const c of cells) {
      const label = `${c.shape} ${c.n}`;
      const js = c.jsOffMs / c.n;
      const lua = c.luaOffMs / c.n;
      rows.push(
        row({
          measure: `${label}: parse, per task`,
          value: `${round((c.parseMs / c.n) * 1000, 1)} µs`,
          note: `${round(c.parseMs)} ms in all`,
        }),
        row({
          measure: `${label}: JS no-op, per task (history off)`,
          value: `${round(js, 3)} ms`,
          ratio: js,
          goal: perTaskGoal,
        }),
        row({
          measure: `${label}: JS no-op, per task (history on)`,
          value: `${round(c.jsOnMs / c.n, 3)} ms`,
          reference: `${round(js, 3)} ms off`,
          ratio: c.jsOnMs / c.n,
          goal: perTaskGoal,
        }),
        row({
          measure: `${label}: Lua, per task (history off)`,
          value: `${round(lua, 3)} ms`,
          reference: `${round(js, 3)} ms JS`,
          ratio: lua,
          goal: perTaskGoal,
          note: `${round(lua / js, 1)}× the JS no-op`,
        }),
        row({
          measure: `${label}: Lua, per task (history on)`,
          value: `${round(c.luaOnMs / c.n, 3)} ms`,
          reference: `${round(lua, 3)} ms off`,
          ratio: c.luaOnMs / c.n,
          goal: perTaskGoal,
        }),
      );
    }
    const [small, big] = SIZES as [number, number];
    for (const shape of ["wide", "deep"] as const) {
      const a = cells.find((c) => c.n === small && c.shape === shape)!;
      const b = cells.find((c) => c.n === big && c.shape === shape)!;
      const grow = (x: number, y: number) => y / x;
      rows.push(
        row({
          measure: `${shape}: JS per-task cost, ${big} vs ${small}`,
          value: `${round(b.jsOffMs / big, 3)} ms`,
          reference: `${round(a.jsOffMs / small, 3)} ms`,
          ratio: grow(a.jsOffMs / small, b.jsOffMs / big),
          goal: linearGoal,
        }),
        row({
          measure: `${shape}: Lua per-task cost, ${big} vs ${small}`,
          value: `${round(b.luaOffMs / big, 3)} ms`,
          reference: `${round(a.luaOffMs / small, 3)} ms`,
          ratio: grow(a.luaOffMs / small, b.luaOffMs / big),
          goal: linearGoal,
        }),
        row({
          measure: `${shape}: parse per task, ${big} vs ${small}`,
          value: `${round((b.parseMs / big) * 1000, 1)} µs`,
          reference: `${round((a.parseMs / small) * 1000, 1)} µs`,
          ratio: grow(a.parseMs / small, b.parseMs / big),
          goal: linearGoal,
        }),
      );
    }
    rows.push(
      row({ measure: "wasmoon import", value: `${round(eng.importMs)} ms` }),
      row({
        measure: "Lua engine: first / further",
        value: `${round(eng.firstMs)} ms / ${round(eng.furtherMs)} ms`,
      }),
      row({
        measure: "one-task Lua workflow on a warm pooled worker",
        value: `${round(eng.pooledCallMs)} ms`,
        reference: `${round(eng.furtherMs)} ms engine`,
        ratio: eng.pooledCallMs / eng.furtherMs,
      }),
    );
    printTable("workflow engine: overhead per task", rows);
    writeResult("workflow", rows, { cells, engines: eng, reps: REPS });
  } finally {
    await shutdownLuaWorkers();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
