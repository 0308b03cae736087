import path from "node:path";
import type { Client } from "@connectrpc/connect";
import {
  explainClosedConnection,
  fromConnectError,
  isSlothError,
  SlothError,
  type TlsMaterial,
} from "@sloth/client";
import { AgentStatus, type MasterService } from "@sloth/proto";
import type {
  DelegateExecutor,
  DelegateTarget,
  TaskContext,
  TaskModel,
  TaskOutcome,
  TaskOutput,
  Value,
} from "@sloth/workflow";
import { directChannel, masterChannel, notThere, type TaskChannel } from "./channel.js";
import { collectSources, type SourceFile } from "./sources.js";
import type { WorkspaceShipper } from "./workspace.js";

/** Options of {@link createDelegate}. */
export interface DelegateOptions {
  /** The master, for agent names and labels; without it only addresses work. */
  master?: { client: Client<typeof MasterService>; address: string } | undefined;
  /** The cluster token, to dial agents directly (`{ address = ... }`). */
  token?: string | undefined;
  /** TLS material to dial agents directly. */
  tls?: TlsMaterial | undefined;
  /** The workflow file, shipped (with the Lua files beside it) to agents. */
  workflowFile: string;
  /** The workflow (or TaskDefinitions group) the tasks belong to. */
  workflow: string;
  /** Ships the task's working directory and brings changes back; none ships nothing. */
  workspace?: WorkspaceShipper | undefined;
}

/** A delegate executor and what it holds open. */
export interface Delegate {
  delegate: DelegateExecutor;
  /** Closes direct connections to agents. */
  close(): void;
}

/** Agents to run on, or why there are none (`some`: some of the targets are there). */
type Resolved = { channels: TaskChannel[] } | { none: string; some?: boolean };

/** Creates the executor `runWorkflow` calls for tasks with `delegateTo`. */
export function createDelegate(options: DelegateOptions): Delegate {
  const direct = new Map<string, ReturnType<typeof directChannel>>();
  // Agents lost during an attempt of each task (by run and task): a retry on
  // a labelled target picks another one while there is one.
  const lost = new Map<string, Set<string>>();
  const lostKey = (ctx: { runId: string; taskName: string }) => `${ctx.runId}\0${ctx.taskName}`;
  // What each agent of a task on several agents gave when it succeeded, by
  // run and task, while an attempt elsewhere failed: its retry skips them.
  const succeeded = new Map<string, Map<string, TaskOutcome>>();
  let sources: SourceFile[] | undefined;
  let sourcesRoot = "";

  const needMaster = (what: string) => {
    if (!options.master) {
      throw new SlothError(
        "SLOTH_INVALID_ARGUMENT",
        `cannot delegate to ${what}: no master to resolve it`,
        {
          hint: 'pass --master (or select one with `sloth-runner master select`), or use delegate_to = { address = "host:port" }',
        },
      );
    }
    return options.master;
  };

  async function resolve(
    target: DelegateTarget,
    signal: AbortSignal,
    avoid: ReadonlySet<string> = new Set(),
  ): Promise<Resolved> {
    switch (target.kind) {
      case "address": {
        if (!options.token) {
          throw new SlothError(
            "SLOTH_TOKEN_MISSING",
            `cannot dial agent at ${target.address}: no cluster token`,
            {
              hint: "pass --token-file FILE or set SLOTH_RUNNER_TOKEN",
            },
          );
        }
        let ch = direct.get(target.address);
        if (!ch) {
          ch = directChannel(target.address, options.token, options.tls);
          direct.set(target.address, ch);
        }
        return { channels: [ch] };
      }
      case "agent":
      case "agents": {
        const m = needMaster(target.kind === "agent" ? `agent '${target.name}'` : "agents by name");
        // An agent listed twice runs the task once (its output has one place in deps).
        const names = target.kind === "agent" ? [target.name] : [...new Set(target.names)];
        const { agents } = await m.client.listAgents({}, { signal, timeoutMs: 15_000 });
        const byName = new Map(agents.map((a) => [a.name, a]));
        const down = names.filter((n) => byName.get(n)?.status !== AgentStatus.ACTIVE);
        if (down.length) {
          const why = down
            .map((n) =>
              byName.has(n)
                ? `agent '${n}' is ${statusWord(byName.get(n)!.status)}`
                : `agent '${n}' is not registered`,
            )
            .join("; ");
          return { none: why, some: down.length < names.length };
        }
        return { channels: names.map((n) => masterChannel(m.client, m.address, n)) };
      }
      case "labels": {
        const m = needMaster("agents by label");
        const { agents } = await m.client.listAgents(
          { labels: target.labels, status: AgentStatus.ACTIVE },
          { signal, timeoutMs: 15_000 },
        );
        const labels = Object.entries(target.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",");
        if (agents.length === 0) return { none: `no active agent has labels ${labels}` };
        // Least loaded first: fewest commands running at the last heartbeat.
        const sorted = [...agents].sort(
          (a, b) => a.runningCommands - b.runningCommands || a.name.localeCompare(b.name),
        );
        // One agent: not one this task already lost, unless no other is left.
        const fresh = sorted.filter((a) => !avoid.has(a.name));
        const picked = target.all ? sorted : (fresh.length > 0 ? fresh : sorted).slice(0, 1);
        return { channels: picked.map((a) => masterChannel(m.client, m.address, a.name)) };
      }
    }
  }

  async function runOn(
    ch: TaskChannel,
    task: TaskModel,
    ctx: TaskContext,
    prefix: string,
  ): Promise<TaskOutcome> {
    if (!sources) {
      const collected = collectSources(options.workflowFile);
      sources = collected.files;
      sourcesRoot = collected.root;
    }
    const write = (stream: "stdout" | "stderr" | "log", text: string) =>
      ctx.log.write(stream, prefix ? text.replace(/^(?=.)/gm, prefix) : text);
    // Whether the agent ever answered: one that never did is not "lost".
    let reached = false;
    let remote: { signal: AbortSignal; dispose(): void } | undefined;
    try {
      let manifestJson = "";
      if (options.workspace) {
        const shipped = await options.workspace.send(
          ch,
          ctx.workdir,
          ctx.signal,
          task.workspace?.exclude,
        );
        manifestJson = shipped.manifestJson;
        reached = true;
      }
      const deps: Record<string, TaskOutput> = ctx.deps;
      let outcome: TaskOutcome | undefined;
      const changes =
        options.workspace && manifestJson
          ? options.workspace.receiver(ctx.workdir, manifestJson, task.workspace?.exclude)
          : undefined;
      // The agent enforces what is left of the attempt's time; a timeout
      // here keeps the call open so its report and changes still arrive.
      remote = lingerOnTimeout(ctx.signal);
      const timeoutMs =
        ctx.deadline !== undefined ? Math.max(1, ctx.deadline - Date.now()) : (task.timeoutMs ?? 0);
      const stream = ch.runTask(
        {
          workflowFile: path
            .relative(sourcesRoot, path.resolve(options.workflowFile))
            .split(path.sep)
            .join("/"),
          sources,
          workflow: options.workflow,
          task: task.name,
          paramsJson: JSON.stringify(ctx.params),
          valuesJson: JSON.stringify(ctx.values),
          depsJson: JSON.stringify(deps),
          runId: ctx.runId,
          attempt: ctx.attempt,
          timeoutMs: BigInt(timeoutMs),
          manifestJson,
          returnChanges: changes !== undefined,
        },
        remote.signal,
      );
      for await (const r of stream) {
        reached = true;
        const ev = r.event;
        if (ev.case === "log") write(ev.value.stream as "stdout" | "stderr" | "log", ev.value.text);
        else if (ev.case === "result") {
          const v = ev.value;
          outcome = {
            ok: v.ok,
            message: v.message || undefined,
            output: v.outputJson ? (JSON.parse(v.outputJson) as TaskOutput) : undefined,
            retryable: v.retryable,
          };
        } else if (ev.case === "changes") await changes?.chunk(ev.value);
        else if (ev.case === "changesEnd") await changes?.end(ev.value.deleted);
      }
      if (!outcome) {
        return {
          ok: false,
          message: `agent lost: ${ch.label} ended the task without a result`,
          retryable: true,
        };
      }
      return outcome;
    } catch (e) {
      if (ctx.signal.aborted) return { ok: false, message: "cancelled", retryable: false };
      // The workspace could not be read here: no agent is at fault, and
      // trying again will not help.
      const local = e as { code?: unknown; syscall?: unknown };
      if (
        !reached &&
        (typeof local.syscall === "string" ||
          (typeof local.code === "string" &&
            /^SLOTH_(WORKSPACE|ARCHIVE|INVALID_ARGUMENT)/.test(local.code)))
      ) {
        const msg = isSlothError(e) ? e.describe() : (e as Error).message;
        return { ok: false, message: `cannot ship the workspace: ${msg}`, retryable: false };
      }
      let err = isSlothError(e)
        ? e
        : fromConnectError(e, {
            kind: ch.via === "master" ? "master" : "agent",
            address: ch.address,
          });
      if (!reached) err = (await ch.diagnose?.(err)) ?? err;
      const lostLink =
        err.code === "SLOTH_UNREACHABLE" ||
        err.code === "SLOTH_AGENT_UNAVAILABLE" ||
        err.code === "SLOTH_REMOTE";
      const neverReached =
        !reached &&
        /refused|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|no such host|does not speak HTTP\/2/i.test(
          err.message,
        );
      return {
        ok: false,
        message:
          lostLink && !neverReached && !err.message.startsWith("agent lost")
            ? `agent lost: ${ch.label}: ${err.describe()}`
            : err.describe(),
        retryable: err.retryable || lostLink,
        ...(lostLink ? { lostAgent: ch.agent } : {}),
      };
    } finally {
      remote?.dispose();
    }
  }

  const delegate: DelegateExecutor = async (task, ctx) => {
    const target = task.delegateTo?.target;
    if (!target) return undefined;
    const key = lostKey(ctx);
    if (ctx.attempt <= 1) succeeded.delete(key);
    // A retry of a task on several agents, some of which succeeded already:
    // it needs only the others, and never runs here instead.
    const prior = succeeded.get(key);
    const retrying = prior !== undefined;
    const wanted: DelegateTarget =
      prior && target.kind === "agents"
        ? { kind: "agents", names: target.names.filter((n) => !prior.has(n)) }
        : target;
    let resolved: Resolved;
    try {
      resolved = await resolve(wanted, ctx.signal, lost.get(key));
    } catch (e) {
      let err = isSlothError(e)
        ? e
        : fromConnectError(e, { kind: "master", address: options.master?.address ?? "" });
      if (options.master && !options.tls)
        err = await explainClosedConnection(err, {
          kind: "master",
          address: options.master.address,
        });
      // No master to ask, or one that does not answer: no target is
      // available. A refused token or TLS setting is a mistake to fix, not
      // a reason to run elsewhere.
      const unavailable =
        (target.kind !== "address" && options.master === undefined) || notThere(err);
      if (
        task.delegateTo?.fallback === "local" &&
        unavailable &&
        !retrying &&
        !ctx.signal.aborted
      ) {
        ctx.log.write("log", `no target available (${err.message}): running locally\n`);
        return undefined;
      }
      return {
        ok: false,
        message: `task '${task.name}': ${err.describe()}`,
        retryable: err.retryable,
      };
    }
    if ("none" in resolved) {
      // A list of agents falls back only when none of them is there: with
      // some of them up, running here instead would skip those.
      if (task.delegateTo?.fallback === "local" && resolved.some !== true && !retrying) {
        ctx.log.write("log", `no target available (${resolved.none}): running locally\n`);
        return undefined;
      }
      return {
        ok: false,
        message: `task '${task.name}' has no target: ${resolved.none}`,
        retryable: true,
      };
    }
    const channels = resolved.channels;
    // An agent dialled by address is known to be up only by trying it.
    const only = channels.length === 1 ? channels[0] : undefined;
    if (task.delegateTo?.fallback === "local" && only?.unreachable && !retrying) {
      const why = await only.unreachable(ctx.signal);
      if (why !== undefined) {
        ctx.log.write("log", `no target available (${why}): running locally\n`);
        return undefined;
      }
    }
    const remember = (o: TaskOutcome & { lostAgent?: string }) => {
      if (o.lostAgent !== undefined) {
        const set = lost.get(lostKey(ctx)) ?? new Set<string>();
        set.add(o.lostAgent);
        lost.set(lostKey(ctx), set);
        delete o.lostAgent;
      }
      return o;
    };
    // Where it runs goes in the task's log (text, JSON events and history).
    const on = channels.map((ch) => ch.label).join(", ");
    ctx.log.write(
      "log",
      `INFO running on ${on}${ctx.attempt > 1 ? ` (attempt ${ctx.attempt})` : ""}\n`,
    );
    if (channels.length === 1 && !retrying) {
      ctx.placed?.([channels[0]!.agent]);
      return remember(await runOn(channels[0]!, task, ctx, ""));
    }
    // A retry runs again only where an earlier attempt failed.
    const before = prior ?? new Map<string, TaskOutcome>();
    const done = [...before.keys()];
    // The task's result names every agent with a part in it.
    ctx.placed?.([
      ...done,
      ...channels.filter((ch) => !before.has(ch.agent)).map((ch) => ch.agent),
    ]);
    if (done.length > 0)
      ctx.log.write(
        "log",
        `INFO already done on ${done.map((a) => `agent '${a}'`).join(", ")}: not run again\n`,
      );
    const todo = channels.filter((ch) => !before.has(ch.agent));
    const outcomes = await Promise.all(
      todo.map((ch) => runOn(ch, task, ctx, `[${ch.agent}] `).then(remember)),
    );
    // Every agent has its place, with or without an output of its own.
    const output: Record<string, Value> = {};
    for (const [agent, o] of before) output[agent] = (o.output ?? {}) as Value;
    todo.forEach((ch, i) => {
      output[ch.agent] = (outcomes[i]?.output ?? {}) as Value;
      if (outcomes[i]?.ok) before.set(ch.agent, outcomes[i] as TaskOutcome);
    });
    const failed = todo.filter((_, i) => !outcomes[i]?.ok);
    if (failed.length === 0) succeeded.delete(key);
    else succeeded.set(key, before);
    return {
      ok: failed.length === 0,
      message: failed.length
        ? `failed on ${failed.map((c) => c.label).join(", ")}: ${failed.map((c) => outcomes[todo.indexOf(c)]?.message).join("; ")}`
        : `succeeded on ${Object.keys(output).length} agents`,
      output,
      retryable: outcomes.some((o) => !o.ok && o.retryable !== false),
    };
  };

  return {
    delegate,
    close() {
      for (const ch of direct.values()) ch.close();
      direct.clear();
    },
  };
}

function statusWord(s: AgentStatus): string {
  return s === AgentStatus.INACTIVE
    ? "inactive"
    : s === AgentStatus.UNREACHABLE
      ? "unreachable"
      : "not active";
}

/**
 * How long a task's call stays open after its attempt timed out here: the
 * agent enforces the same deadline, then reports it and sends the changes
 * made before it (the engine waits up to DELEGATED_TIMEOUT_WAIT_MS).
 */
const TIMEOUT_LINGER_MS = 20_000;

/**
 * A signal for the agent call that follows `signal`, except that a timeout
 * (the engine's `{ kind: "timeout" }` reason) cancels the call only if the
 * agent has not ended it within {@link TIMEOUT_LINGER_MS}, or once the run
 * itself stops.
 */
function lingerOnTimeout(signal: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const c = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let run: AbortSignal | undefined;
  const now = () => c.abort(signal.reason);
  const onAbort = () => {
    const reason = signal.reason as { kind?: unknown; runSignal?: unknown } | undefined;
    if (reason?.kind !== "timeout") return now();
    timer = setTimeout(now, TIMEOUT_LINGER_MS);
    if (reason.runSignal instanceof AbortSignal) {
      run = reason.runSignal;
      if (run.aborted) now();
      else run.addEventListener("abort", now, { once: true });
    }
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return {
    signal: c.signal,
    dispose: () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      run?.removeEventListener("abort", now);
    },
  };
}
