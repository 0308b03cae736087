// A trivial delegated task's overhead next to the same task run locally:
// the workflow runner, a real master and agent (built binaries), the Lua
// task shipped and run on the agent with its workspace, results back.
import fs from "node:fs";
import path from "node:path";
import { connect, masterClient } from "@sloth/client";
import { createDelegate, workspaceShipper } from "@sloth/delegation";
import { loadWorkflowFile, shutdownLuaWorkers } from "@sloth/dsl-lua";
import { runWorkflow, type WorkflowModel } from "@sloth/workflow";
import { startAgent, startMaster, teardown, tempDir } from "./lib/cluster.js";
import { median, percentile, printTable, QUICK, round, row, writeResult } from "./lib/report.js";

const N = QUICK ? 10 : 40;

async function timeRuns(
  model: WorkflowModel,
  options: Parameters<typeof runWorkflow>[1],
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const r = await runWorkflow(model, options).result;
    if (r.status !== "succeeded") throw new Error(`run failed: ${r.message}`);
    times.push(performance.now() - t0);
  }
  return times;
}

async function main() {
  const master = await startMaster();
  await startAgent(master, "bench-1");
  const dir = tempDir("sloth-bench-deleg-");
  for (let i = 0; i < 20; i++)
    fs.writeFileSync(path.join(dir, `f${i}.txt`), `file ${i}\n`.repeat(50));
  const file = path.join(dir, "flow.sloth");
  fs.writeFileSync(
    file,
    `
local here = task("here"):command(function() return true, "ok", { n = 1 } end)
local there = task("there"):delegate_to("bench-1"):command(function() return true, "ok", { n = 1 } end)
workflow.define("local_only"):tasks({ here })
workflow.define("delegated"):tasks({ there })
`,
  );
  const loaded = await loadWorkflowFile(file, {});
  const local = loaded.workflows.find((w) => w.name === "local_only")!;
  const remote = loaded.workflows.find((w) => w.name === "delegated")!;
  const conn = connect({ address: master.address, token: master.token });
  const d = createDelegate({
    master: { client: masterClient(conn), address: master.address },
    token: master.token,
    workflowFile: file,
    workflow: "delegated",
    workspace: workspaceShipper(),
  });
  try {
    await timeRuns(local, {});
    const localMs = await timeRuns(local, {});
    // The agent's first delegated task loads the Lua engine there: shown apart.
    const t0 = performance.now();
    const first = await runWorkflow(remote, { delegate: d.delegate }).result;
    if (first.status !== "succeeded") throw new Error(`run failed: ${first.message}`);
    const coldMs = performance.now() - t0;
    const remoteMs = await timeRuns(remote, { delegate: d.delegate });
    const lp50 = median(localMs);
    const rp50 = median(remoteMs);
    const rows = [
      row({ measure: "trivial Lua task, local, p50", value: `${round(lp50)} ms` }),
      row({
        measure: "same task delegated (20-file workspace, via master), p50",
        value: `${round(rp50)} ms`,
        reference: `${round(lp50)} ms local`,
        ratio: rp50 / lp50,
      }),
      row({
        measure: "first delegated task of a fresh agent (loads its Lua engine)",
        value: `${round(coldMs)} ms`,
      }),
      row({
        measure: "delegation overhead per task, p50 / p99",
        value: `${round(rp50 - lp50)} / ${round(percentile(remoteMs, 99) - percentile(localMs, 99))} ms`,
      }),
    ];
    printTable(`Delegated task overhead (${N} runs each)`, rows);
    writeResult("delegation", rows, { localMs, remoteMs, coldMs });
  } finally {
    d.close();
    conn.close();
    await shutdownLuaWorkers();
    teardown();
  }
}

await main();
