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
): Promise<StackRun> {
  const { openStackStore, defaultActor, validateStack, detectDrift, fixDrift } = await import(
    "@sloth/stack"
  );
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
  const held = lockId;
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
      const stop = new AbortController();
      const { onStopSignals } = await import("../signals.js");
      let signal: NodeJS.Signals | undefined;
      const off = onStopSignals((sig) => {
        signal ??= sig;
        stop.abort();
      });
      try {
        if (started === undefined) return {};
        const failed = results.find((r) => r.status !== "succeeded");
        const ok = !failed && !interrupted;
        const outputs: Record<string, unknown> = {};
        for (const r of results)
          for (const t of r.tasks) if (t.output !== undefined) outputs[t.name] = t.output;
        store.endExecution(stack, {
          lockId: held,
          runId: started,
          status: ok ? "completed" : "failed",
          message:
            interrupted ??
            (failed
              ? `${failed.workflow} ${failed.status}${failed.message ? `: ${failed.message}` : ""}`
              : undefined),
          // A failed run leaves the state of the last good one.
          ...(ok
            ? {
                state: {
                  file: workflowFile,
                  workflows: results.map((r) => r.workflow),
                  runIds: results.map((r) => r.runId),
                  outputs: JSON.parse(JSON.stringify(outputs)),
                },
              }
            : {}),
        });
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
        off();
        try {
          store.unlock(stack, { lockId: held });
        } finally {
          store.close();
        }
      }
    },
  };
}
