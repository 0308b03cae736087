import type { Argv, CommandModule } from "yargs";
import { CliError, dataDirOf, type GlobalArgs, parseKeyValues, withMaster } from "../context.js";
import { withMasterOptions } from "../master-options.js";
import { painter, printJson, println, table } from "../output.js";
import { runCommand } from "./agent-run.js";
import { shellCommand } from "./agent-shell.js";
import { runAgent, startAgentCommand, startAgentOptions } from "./agent-start.js";

type JsonArgs = GlobalArgs & { json?: boolean };
type NameArgs = JsonArgs & { name: string };

const jsonOption = { type: "boolean", describe: "Print JSON" } as const;

// The view helpers load the protocol code: only when a command runs.
const view = () => import("./agent-view.js");

type ListArgs = JsonArgs & { label?: string | string[]; name?: string };

const list: CommandModule<GlobalArgs, ListArgs> = {
  command: ["list", "ls"],
  describe: "List the agents registered with the master",
  builder: (y) =>
    withMasterOptions(y)
      .option("json", jsonOption)
      .option("label", {
        type: "string",
        describe: "Only agents with label K=V (repeatable, AND)",
      })
      .option("name", {
        type: "string",
        describe: "Only agents whose name matches this glob ('web-*')",
      }),
  handler: (argv) =>
    withMaster(argv, async ({ client }) => {
      const { agentJson, ago, paintStatus } = await view();
      const labels = parseKeyValues(argv.label, "--label");
      const { agents } = await client.listAgents(
        { labels, nameGlob: argv.name ?? "" },
        { timeoutMs: 15_000 },
      );
      if (argv.json) return printJson(agents.map(agentJson));
      if (agents.length === 0) {
        println(
          argv.label || argv.name
            ? "No agents match the selection"
            : "No agents registered; start one with `sloth-runner agent start --name NAME`",
        );
        return;
      }
      const c = painter(process.stdout);
      const rows = [
        ["NAME", "ADDRESS", "STATUS", "VERSION", "LAST SEEN", "LABELS"].map((h) => c.bold(h)),
      ];
      for (const a of agents) {
        const labels = Object.entries(a.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(",");
        rows.push([a.name, a.address, paintStatus(c, a.status), a.version, ago(a), labels]);
      }
      println(table(rows));
      const down = agents.filter((a) => a.statusReason);
      for (const a of down) println(c.dim(`${a.name}: ${a.statusReason}`));
    }),
};

const get: CommandModule<GlobalArgs, NameArgs> = {
  command: "get <name>",
  describe: "Show one agent",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", demandOption: true })
      .option("json", jsonOption),
  handler: (argv) =>
    withMaster(argv, async ({ client }) => {
      const { agentJson, ago, bytes, paintStatus } = await view();
      const { agent } = await client.getAgent({ name: argv.name }, { timeoutMs: 15_000 });
      if (!agent) throw new CliError(`agent '${argv.name}' not found`);
      if (argv.json) return printJson(agentJson(agent));
      const c = painter(process.stdout);
      const j = agentJson(agent);
      println(
        `${c.bold(agent.name)}  ${paintStatus(c, agent.status)}${agent.statusReason ? ` (${agent.statusReason})` : ""}`,
      );
      println(`  Address:    ${agent.address}`);
      println(`  Version:    ${agent.version}`);
      println(`  Last seen:  ${ago(agent)}${j.lastSeen ? ` (${j.lastSeen})` : ""}`);
      println(`  Registered: ${j.registeredAt ?? "-"}`);
      const labels = Object.entries(agent.labels).map(([k, v]) => `${k}=${v}`);
      println(`  Labels:     ${labels.length ? labels.join(", ") : "-"}`);
      if (j.facts) {
        println(
          `  Host:       ${j.facts.hostname} (${j.facts.os}/${j.facts.arch}, kernel ${j.facts.kernel})`,
        );
        println(
          `  CPUs:       ${j.facts.cpus}, memory ${bytes(j.facts.memoryBytes)}, node ${j.facts.nodeVersion}`,
        );
      }
    }),
};

const del: CommandModule<GlobalArgs, NameArgs> = {
  command: "delete <name>",
  aliases: ["rm", "remove"],
  describe: "Forget an agent (a running agent registers again)",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", demandOption: true })
      // Nothing is lost (a running agent registers again): it never asks, so
      // --yes, as `master remove` takes it, changes nothing.
      .option("yes", {
        alias: "y",
        type: "boolean",
        describe: "Accepted for scripts; deleting never asks",
      }),
  handler: (argv) =>
    withMaster(argv, async ({ client }) => {
      await client.deleteAgent({ name: argv.name }, { timeoutMs: 15_000 });
      println(`Agent '${argv.name}' deleted`);
    }),
};

const stop: CommandModule<GlobalArgs, NameArgs & { local?: boolean; timeout?: string }> = {
  command: "stop <name>",
  describe: "Ask an agent to shut down (through the master, or with --local by its pid file here)",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", demandOption: true })
      .option("local", {
        type: "boolean",
        describe:
          "Stop the agent started from this data dir: SIGTERM, then SIGKILL after --timeout",
      })
      .option("timeout", {
        type: "string",
        default: "10s",
        describe:
          "With --local: SIGKILL after this long (running commands get this long to finish)",
      }),
  handler: async (argv) => {
    if (argv.local) {
      const { stopPidFile, parseDuration } = await import("@sloth/client");
      const dir = (await dataDirOf(argv)).agent(argv.name);
      const r = await stopPidFile(dir.pid, parseDuration(argv.timeout ?? "10s", "s"));
      if (r.outcome === "not-running") {
        throw new CliError(`no agent '${argv.name}' is running from this data dir`, {
          hint: `there is no ${dir.pid}`,
        });
      }
      if (r.outcome === "stale") {
        throw new CliError(
          `agent '${argv.name}' is not running (removed a stale pid file naming pid ${r.pid})`,
        );
      }
      println(
        r.outcome === "stopped"
          ? `Agent '${argv.name}' stopped (pid ${r.pid})`
          : `Agent '${argv.name}' killed after ${argv.timeout ?? "10s"} (pid ${r.pid})`,
      );
      return;
    }
    await withMaster(argv, async ({ client }) => {
      await client.stopAgent({ name: argv.name }, { timeoutMs: 15_000 });
      println(`Agent '${argv.name}' is stopping`);
    });
  },
};

const metrics: CommandModule<GlobalArgs, NameArgs> = {
  command: "metrics <name>",
  describe: "Show an agent's resource usage",
  builder: (y) =>
    withMasterOptions(y)
      .positional("name", { type: "string", demandOption: true })
      .option("json", jsonOption),
  handler: (argv) =>
    withMaster(argv, async ({ client }) => {
      const { bytes, metricsJson } = await view();
      const { metrics: m } = await client.getAgentMetrics(
        { name: argv.name },
        { timeoutMs: 15_000 },
      );
      if (!m) throw new CliError(`agent '${argv.name}' sent no metrics`);
      const j = metricsJson(argv.name, m);
      if (argv.json) return printJson(j);
      const c = painter(process.stdout);
      println(c.bold(`Metrics of ${argv.name}`));
      println(
        `  CPU:      ${j.cpuPercent.toFixed(1)}% of ${j.cpuCount} cores, load ${j.load.map((l) => l.toFixed(2)).join(" ")}`,
      );
      println(`  Memory:   ${bytes(j.memoryUsedBytes)} of ${bytes(j.memoryTotalBytes)}`);
      println(
        `  Disk:     ${bytes(j.diskUsedBytes)} of ${bytes(j.diskTotalBytes)} (${j.diskPath})`,
      );
      println(`  Uptime:   host ${j.uptimeSeconds}s, agent ${j.processUptimeSeconds}s`);
      println(
        `  Agent:    version ${j.version}, RSS ${bytes(j.processRssBytes)}, ${j.runningCommands} running`,
      );
    }),
};

/** `sloth-runner agent ...`; bare `agent -p PORT` starts an agent (seed 004). */
export const agentCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: "agent",
  describe: "Manage agents, run commands on them, or start one (`agent start`, `agent -p PORT`)",
  builder: (y) =>
    y
      .command(startAgentCommand)
      .command(list)
      .command(get)
      .command(runCommand)
      .command(shellCommand)
      .command(del)
      .command(stop)
      .command(metrics)
      // Bare `agent [options]`: the start options belong to it alone, so
      // `agent list --help` does not offer --port or --daemon.
      .command({
        command: "$0",
        describe: false,
        builder: (b) => startAgentOptions(b),
        handler: (argv) => runAgent(argv as Parameters<typeof runAgent>[0]),
      }) as unknown as Argv<GlobalArgs>,
  handler: () => {},
};
