import { isAgentName, parseHostPort } from "@sloth/client/light";
import type { Delegate } from "@sloth/delegation";
import type { DelegateExecutor, WorkflowModel } from "@sloth/workflow";
import { CliError, dataDirOf, type GlobalArgs, masterOf, tlsFor, tokenFor } from "../context.js";

/** Delegate executors for a run, and the connections they hold. */
export interface RunDelegation {
  delegateFor(model: WorkflowModel): DelegateExecutor;
  close(): void;
}

/**
 * Applies `--delegate-to` to tasks without a target of their own, and, when
 * any task is delegated, connects what delegation needs: the master for
 * names and labels, the cluster token (and TLS) for every agent.
 */
/** Gives `--delegate-to` agents to the tasks without a target of their own. */
export function applyDelegateTo(models: WorkflowModel[], given: string[]): void {
  if (given.length === 0) return;
  // Repeated, or separated by commas (as -t takes tasks).
  const delegateTo = given.flatMap((g) => g.split(",")).map((d) => d.trim());
  for (const d of delegateTo) {
    if (d.includes(":")) {
      try {
        parseHostPort(d);
      } catch (e) {
        throw new CliError(`--delegate-to: ${(e as Error).message}`, {
          hint: "give an agent name or HOST:PORT",
          exitCode: 2,
        });
      }
    } else if (!isAgentName(d))
      throw new CliError(`--delegate-to '${d}' is not an agent name`, {
        hint: "agent names hold letters, digits, '.', '_' and '-' (`sloth-runner agent list` shows them), or give HOST:PORT",
        exitCode: 2,
      });
  }
  // Agent names never hold ':': HOST:PORT dials that agent directly.
  const addresses = delegateTo.filter((d) => d.includes(":"));
  if (addresses.length > 0 && delegateTo.length > 1)
    throw new CliError(`--delegate-to '${addresses[0]}' is an address, given with other targets`, {
      hint: "give either agent names (repeatable) or one HOST:PORT",
      exitCode: 2,
    });
  const target =
    addresses.length === 1
      ? { kind: "address" as const, address: addresses[0]! }
      : delegateTo.length === 1
        ? { kind: "agent" as const, name: delegateTo[0]! }
        : { kind: "agents" as const, names: delegateTo };
  for (const m of models) for (const t of m.tasks) t.delegateTo ??= { target };
}

/**
 * True when the run's local tasks keep Lua `state` in the master's store,
 * where agents keep their tasks' state: when a task goes through the master
 * (by name or labels), or is dialled by address while a master is
 * configured (not merely the default address, where none may run).
 */
export async function sharesMasterState(
  argv: GlobalArgs,
  models: WorkflowModel[],
): Promise<boolean> {
  const targets = models.flatMap((m) =>
    m.tasks.flatMap((t) => (t.delegateTo ? [t.delegateTo.target] : [])),
  );
  if (targets.some((t) => t.kind !== "address")) return true;
  if (targets.length === 0) return false;
  return (await masterOf(argv)).source !== "fallback";
}

export async function prepareDelegation(
  argv: GlobalArgs,
  file: string,
  models: WorkflowModel[],
  delegateTo: string[],
  workspace: { maxBytes?: number | undefined } = {},
): Promise<RunDelegation | undefined> {
  applyDelegateTo(models, delegateTo);
  const targets = models.flatMap((m) =>
    m.tasks.flatMap((t) => (t.delegateTo ? [t.delegateTo.target] : [])),
  );
  if (targets.length === 0) return undefined;
  const { connect, masterClient } = await import("@sloth/client");
  const { createDelegate } = await import("@sloth/delegation");
  const master = await masterOf(argv);
  const token = await tokenFor(argv, master);
  if (!token) {
    throw new CliError("delegated tasks need the cluster token", {
      hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN (a local master keeps it in <data dir>/master/token)",
    });
  }
  const tls = await tlsFor(argv, master);
  const needsMaster = targets.some((t) => t.kind !== "address");
  const conn = needsMaster
    ? connect({ address: master.address, token: token.token, tls })
    : undefined;
  const client = conn ? masterClient(conn) : undefined;
  const { workspaceShipper } = await import("@sloth/delegation");
  const shipper = workspaceShipper({
    maxBytes: workspace.maxBytes,
    scanCache: (await dataDirOf(argv)).workspaceScans,
  });
  const delegates: Delegate[] = [];
  return {
    delegateFor(model) {
      const d = createDelegate({
        master: client ? { client, address: master.address } : undefined,
        token: token.token,
        tls,
        workflowFile: file,
        workflow: model.name,
        workspace: shipper,
      });
      delegates.push(d);
      return d.delegate;
    },
    close() {
      for (const d of delegates) d.close();
      conn?.close();
    },
  };
}
