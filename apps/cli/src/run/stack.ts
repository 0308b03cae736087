import fs from "node:fs";
import type { JsonObject } from "@sloth/stack";
import type { RunResult, WorkflowModel } from "@sloth/workflow";
import { CliError } from "../context.js";
import { eprintln } from "../output.js";

/** A `run STACK -f FILE` in progress: its stack locked, its executions recorded. */
export interface StackRun {
  onStart(runId: string): void;
  onResult(result: RunResult): void;
  /**
   * Records how the run ended, carries out the workflow's stack keys
   * (rollback on failure, drift check after success) and releases the lock.
   * `failure` says why a run that succeeded must still exit non-zero.
   */
  finish(
    interrupted: string | undefined,
  ): Promise<{ failure?: string; signal?: NodeJS.Signals | undefined }>;
}

/**
 * Opens `<data dir>/stacks.db`, creates the stack on its first run and takes
 * its lock for the run (another run of the stack fails at once, naming the
 * holder; the lock breaks if this process dies), then carries out the
 * workflows' stack keys: `validate_before` (refuse to run on a failed
 * pre-flight check), `create_snapshot` (snapshot first), `on_failure =
 * "rollback"` (back to that snapshot, and the resources' fixes run, when the
 * run fails), `detect_drift` (check the resources after a successful run).
 * Each finished workflow's task outputs become the stack's state.
 */
export async function beginStackRun(
  file: string,
  stack: string,
  workflowFile: string,
  models: WorkflowModel[],
  /** The id to give the run's lock (the Lua `stack` module makes its changes under it). */
  runLockId: string,
  /** The caller already holds the stack's lock under `runLockId` (`run --lock-id`). */
  callerHolds = false,
): Promise<StackRun> {
  const { openStackStore, defaultActor, validateStack, detectDrift, fixDrift, isStackError } =
    await import("@sloth/stack");
  const any = (f: (m: WorkflowModel) => boolean) => models.some(f);
  const rollback = any((m) => m.config.onFailure === "rollback");
  const snapshotFirst = rollback || any((m) => m.config.createSnapshot === true);
  const validateBefore = any((m) => m.config.validateBefore === true);
  const driftAfter = any((m) => m.config.detectDrift === true);
  const store = openStackStore({ path: file });
  let lockId: string | undefined;
  let before: number | undefined;
  try {
    store.ensure(stack);
    if (callerHolds) {
      if (store.lockStatus(stack)?.lockId !== runLockId)
        throw new CliError(`the lock of stack '${stack}' is not ${runLockId}`, {
          hint: `see \`sloth-runner stack lock status ${stack}\``,
          exitCode: 1,
        });
    } else
      lockId = store.lock(stack, {
        operation: "run",
        reason: workflowFile,
        lockedBy: `${defaultActor()} (pid ${process.pid})`,
        lockId: runLockId,
      }).lockId;
    if (validateBefore) {
      const errors = validateStack(store, stack).filter((c) => c.level === "error");
      if (errors.length > 0)
        throw new CliError(
          `stack '${stack}' failed its pre-flight checks (validate_before): ${errors.map((c) => `${c.check}: ${c.message}`).join("; ")}`,
          { hint: `see \`sloth-runner stack validate ${stack}\`` },
        );
    }
    if (snapshotFirst) {
      before = store.snapshot(stack, {
        description: `before running ${workflowFile}`,
        lockId,
      }).version;
      eprintln(`stack '${stack}': snapshot v${before} taken before the run`);
    }
  } catch (e) {
    try {
      if (lockId !== undefined) store.unlock(stack, { lockId });
    } finally {
      store.close();
    }
    throw e;
  }
  // The lock the run's changes are made under; released at the end only if taken here.
  const held = callerHolds ? runLockId : (lockId as string);
  const results: RunResult[] = [];
  let started: string | undefined;
  return {
    onStart(runId) {
      if (started !== undefined) return;
      started = runId;
      store.beginExecution(stack, { runId, lockId: held });
    },
    onResult(result) {
      results.push(result);
    },
    async finish(interrupted) {
      let failure: string | undefined;
      // Ctrl-C during the rollback's fixes or the drift check stops their
      // commands; what was done is recorded and the lock released.
      const stop = (await import("../signals.js")).abortOnStopSignals();
      try {
        if (started === undefined) return {};
        const failed = results.find((r) => r.status !== "succeeded");
        let ok = !failed && !interrupted;
        const message =
          interrupted ??
          (failed
            ? `${failed.workflow} ${failed.status}${failed.message ? `: ${failed.message}` : ""}`
            : undefined);
        try {
          if (ok) {
            store.endExecution(stack, {
              lockId: held,
              runId: started,
              status: "completed",
              state: nextState(store.find(stack)?.state ?? {}, workflowFile, results),
            });
          } else {
            // A failed run leaves the state of the last good one.
            store.endExecution(stack, { lockId: held, runId: started, status: "failed", message });
          }
        } catch (e) {
          if (isStackError(e, "SLOTH_STACK_NOT_FOUND")) {
            failure = `stack '${stack}' was deleted while the run held it: its outcome is not recorded`;
            eprintln(`error: ${failure}`);
            return { failure };
          }
          if (!ok || !isStackError(e, "SLOTH_INVALID_ARGUMENT")) throw e;
          // Outputs that cannot be a stack's state (nested too deep): the run fails.
          ok = false;
          failure = `the run's task outputs cannot be stack '${stack}''s state: ${(e as Error).message}`;
          eprintln(`error: ${failure}`);
          store.endExecution(stack, {
            lockId: held,
            runId: started,
            status: "failed",
            message: failure,
          });
        }
        let restored = false;
        if (!ok && rollback && before !== undefined) {
          try {
            store.restore(stack, before, { lockId: held });
            restored = true;
            eprintln(
              `stack '${stack}': rolled back to snapshot v${before} (on_failure = "rollback")`,
            );
          } catch (e) {
            failure = `the rollback of stack '${stack}' to v${before} failed: ${(e as Error).message}`;
            eprintln(`error: ${failure}`);
            store.addEvent(stack, {
              type: "stack.rollback.failed",
              severity: "error",
              message: failure,
              data: { runId: started, version: before },
            });
          }
        }
        if (restored) {
          if (store.resources(stack).some((r) => r.fix !== undefined)) {
            const r = await fixDrift(store, stack, {
              source: `run ${started}`,
              signal: stop.signal,
            });
            if (r.fixed.length > 0) eprintln(`stack '${stack}': fixed ${r.fixed.join(", ")}`);
            for (const f of r.failed)
              eprintln(`stack '${stack}': not fixed: ${f.name}: ${f.message}`);
          }
        }
        if (ok && driftAfter) {
          const r = await detectDrift(store, stack, {
            source: `run ${started}`,
            signal: stop.signal,
          });
          const off = r.resources.filter(
            (x) => !["in_sync", "unchecked"].includes(x.finding.status),
          );
          if (off.length > 0) {
            failure = `stack '${stack}' drifted after the run (detect_drift): ${off.map((x) => `${x.name} (${x.finding.status})`).join(", ")}`;
            eprintln(`error: ${failure}; see \`sloth-runner stack drift show ${stack}\``);
          } else eprintln(`stack '${stack}': no drift after the run`);
        }
        const signal = stop.stoppedBy();
        if (signal) {
          store.addEvent(stack, {
            type: "stack.execution.interrupted",
            severity: "warning",
            message: `interrupted by ${signal} after run ${started} ended${!ok && rollback ? ", during the rollback" : ", during the drift check"}`,
            data: { runId: started },
          });
          failure ??= `interrupted by ${signal}`;
        }
        return failure === undefined ? {} : { failure, signal };
      } finally {
        stop.off();
        try {
          if (!callerHolds) store.unlock(stack, { lockId: held });
        } finally {
          store.close();
        }
      }
    },
  };
}

/**
 * The state a successful run leaves: the outputs of the tasks it ran over
 * those of the tasks it did not run (a `-t` subset keeps the rest), keyed by
 * task name, or `workflow.task` where two workflows of the run have the name.
 */
function nextState(
  previous: Record<string, unknown>,
  workflowFile: string,
  results: RunResult[],
): JsonObject {
  const counts = new Map<string, number>();
  for (const r of results)
    for (const t of r.tasks) counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
  const before = previous.outputs;
  const outputs: Record<string, unknown> =
    typeof before === "object" && before !== null && !Array.isArray(before)
      ? { ...(before as Record<string, unknown>) }
      : {};
  for (const r of results)
    for (const t of r.tasks) {
      if (t.output === undefined) continue;
      outputs[(counts.get(t.name) ?? 0) > 1 ? `${r.workflow}.${t.name}` : t.name] = t.output;
    }
  return {
    file: workflowFile,
    workflows: results.map((r) => r.workflow),
    runIds: results.map((r) => r.runId),
    outputs: JSON.parse(JSON.stringify(outputs)),
  } as JsonObject;
}

/** What a run of `stack` would do first, for --dry-run (reads stacks.db, creates nothing). */
export async function describeStackPlan(
  file: string,
  stack: string,
  models: WorkflowModel[],
): Promise<string> {
  const keys = [
    models.some((m) => m.config.validateBefore) ? "validate it" : "",
    models.some((m) => m.config.createSnapshot || m.config.onFailure === "rollback")
      ? "snapshot it"
      : "",
  ].filter(Boolean);
  const after = [
    models.some((m) => m.config.detectDrift) ? "check drift after success" : "",
    models.some((m) => m.config.onFailure === "rollback") ? "roll back on failure" : "",
  ].filter(Boolean);
  const plan = `a run would lock it${keys.length > 0 ? `, ${keys.join(", ")}` : ""}${after.length > 0 ? `, then ${after.join(" and ")}` : ""}`;
  let now = "does not exist yet (a run creates it)";
  if (fs.existsSync(file)) {
    const { openStackStore } = await import("@sloth/stack");
    const store = openStackStore({ path: file });
    try {
      const s = store.find(stack);
      if (s)
        now = `is ${s.status}${s.lock && !s.lock.stale ? `, locked by ${s.lock.lockedBy} (a run now would fail)` : ""}`;
    } finally {
      store.close();
    }
  }
  return `dry run: stack '${stack}' ${now}; ${plan}`;
}
