// Dispatch through the master, one agent, every part its own process: this
// process is the client, the master and the agent are the built binaries.
// Measured in the same run: a local `bash -c true` spawn (what an agent must
// do) and a bare Connect unary round trip to the master (Health), so each
// goal is a ratio. Also: throughput at concurrency 32, agent idle RSS, and
// master RSS growth while it relays a large output.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { agentClient, connect, masterClient } from "@sloth/client";
import {
  cpuMs,
  localBash,
  mib,
  rateAt,
  rssBytes,
  spawnNode,
  startAgent,
  startMaster,
  teardown,
} from "./lib/cluster.js";
import {
  median,
  ms,
  percentile,
  printTable,
  QUICK,
  type Row,
  round,
  row,
  writeResult,
} from "./lib/report.js";

const SEQUENTIAL = QUICK ? 100 : 500;
const ROUNDS = 5;
const CONCURRENCY = 32;
const RATE_SECONDS = QUICK ? 1 : 4;
const RATE_REPS = 3;
const WARM_SECONDS = QUICK ? 2 : 4;
const RELAY_BYTES = QUICK ? 128 * 1048576 : 1024 * 1048576;

type MasterClient = ReturnType<typeof masterClient>;
type AgentClient = ReturnType<typeof agentClient>;

/** Runs `command` on `agent` through the master; the exit code. */
async function viaMaster(mc: MasterClient, agent: string, command: string): Promise<number> {
  let code = -1000;
  for await (const r of mc.runOnAgent({ agentName: agent, spec: { command } })) {
    if (r.event?.event.case === "exit") code = r.event.event.value.exitCode;
  }
  if (code !== 0) throw new Error(`'${command}' on ${agent} through the master exited ${code}`);
  return code;
}

/** Runs `command` on the agent directly (no master): shows the relay's share. */
async function direct(ac: AgentClient, command: string): Promise<number> {
  let code = -1000;
  for await (const r of ac.runCommand({ spec: { command } })) {
    if (r.event?.event.case === "exit") code = r.event.event.value.exitCode;
  }
  if (code !== 0) throw new Error(`'${command}' on the agent exited ${code}`);
  return code;
}

async function time(op: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await op();
  return performance.now() - t;
}

/** Bytes of `head -c N /dev/zero` read locally through a pipe: the relay's floor. */
function localRead(bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const c = spawn("head", ["-c", String(bytes), "/dev/zero"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    let n = 0;
    c.stdout.on("data", (b: Buffer) => {
      n += b.length;
    });
    c.once("error", reject);
    c.once("close", () =>
      n === bytes ? resolve(performance.now() - t) : reject(new Error(`read ${n}`)),
    );
  });
}

/** The agent's helper process that forks its commands, if running. */
function spawnerOf(agentPid: number): number | undefined {
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== agentPid) continue;
      if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes("spawner"))
        return Number(entry);
    } catch {
      // Gone while listing.
    }
  }
  return undefined;
}

async function idleNodeRss(): Promise<number> {
  const p = spawnNode("-e", ["setInterval(() => {}, 1000); console.log('up')"]);
  await p.waitFor(/up/);
  await new Promise((r) => setTimeout(r, 1000));
  const rss = rssBytes(p.pid);
  await p.stop();
  return rss;
}

async function main(): Promise<void> {
  const master = await startMaster();
  const agent = await startAgent(master, "bench-1");
  await new Promise((r) => setTimeout(r, 1000));
  const agentIdleRss = rssBytes(agent.pid);
  const spawner = spawnerOf(agent.pid);
  const spawnerIdleRss = spawner === undefined ? 0 : rssBytes(spawner);
  const nodeIdleRss = await idleNodeRss();

  const conn = connect({ address: master.address, token: master.token });
  const agentConn = connect({ address: agent.address, token: master.token });
  const mc = masterClient(conn);
  const ac = agentClient(agentConn);
  try {
    // Warm-up: connections dialled, then each path driven at load until the
    // three processes' hot code is optimised, as in a master and an agent
    // that have been up for a while. Measured here, a few hundred calls
    // leave V8 compiling: in the first seconds at load its compiler threads
    // take about an eighth of the machine's CPU, and the client, master and
    // agent each spend 1.5–2× their steady CPU per command.
    for (let i = 0; i < 20; i++) {
      await localBash("true");
      await mc.health({});
      await viaMaster(mc, agent.name, "true");
      await direct(ac, "true");
    }
    await rateAt(CONCURRENCY, WARM_SECONDS, () => localBash("true"));
    await rateAt(CONCURRENCY, WARM_SECONDS, () => viaMaster(mc, agent.name, "true"));
    await rateAt(CONCURRENCY, WARM_SECONDS, () => direct(ac, "true"));
    // The reference's round trip is warmed the same way.
    await rateAt(CONCURRENCY, WARM_SECONDS, () => mc.health({}));

    // Sequential latency, interleaved in rounds so machine noise hits all alike.
    const spawnT: number[] = [];
    const rttT: number[] = [];
    const dispatchT: number[] = [];
    const directT: number[] = [];
    const per = Math.ceil(SEQUENTIAL / ROUNDS);
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < per; i++) spawnT.push(await time(() => localBash("true")));
      for (let i = 0; i < per; i++) rttT.push(await time(() => mc.health({})));
      for (let i = 0; i < per; i++)
        dispatchT.push(await time(() => viaMaster(mc, agent.name, "true")));
      for (let i = 0; i < per; i++) directT.push(await time(() => direct(ac, "true")));
    }

    // Throughput at concurrency 32, interleaved repetitions.
    const localRates: number[] = [];
    const masterRates: number[] = [];
    const directRates: number[] = [];
    for (let r = 0; r < RATE_REPS; r++) {
      localRates.push(await rateAt(CONCURRENCY, RATE_SECONDS, () => localBash("true")));
      masterRates.push(
        await rateAt(CONCURRENCY, RATE_SECONDS, () => viaMaster(mc, agent.name, "true")),
      );
      directRates.push(await rateAt(CONCURRENCY, RATE_SECONDS, () => direct(ac, "true")));
    }

    // Relay of a large output: master RSS sampled while the client discards.
    const masterRssBefore = rssBytes(master.pid);
    const masterCpuBefore = cpuMs(master.pid);
    let masterRssPeak = masterRssBefore;
    let agentRssPeak = rssBytes(agent.pid);
    const sampler = setInterval(() => {
      masterRssPeak = Math.max(masterRssPeak, rssBytes(master.pid));
      agentRssPeak = Math.max(agentRssPeak, rssBytes(agent.pid));
    }, 25);
    let relayed = 0;
    let chunks = 0;
    const relayMs = await time(async () => {
      const spec = { command: `head -c ${RELAY_BYTES} /dev/zero` };
      for await (const r of mc.runOnAgent({ agentName: agent.name, spec })) {
        if (r.event?.event.case === "output") {
          relayed += r.event.event.value.data.length;
          chunks++;
        }
      }
    });
    clearInterval(sampler);
    const masterRelayCpu = cpuMs(master.pid) - masterCpuBefore;
    if (relayed !== RELAY_BYTES) throw new Error(`relayed ${relayed} of ${RELAY_BYTES} bytes`);
    const localReadMs = await localRead(RELAY_BYTES);

    const s50 = median(spawnT);
    const h50 = median(rttT);
    const d50 = median(dispatchT);
    const s99 = percentile(spawnT, 99);
    const h99 = percentile(rttT, 99);
    const d99 = percentile(dispatchT, 99);
    const localRate = median(localRates);
    const masterRate = median(masterRates);
    const relayMiBs = RELAY_BYTES / 1048576 / (relayMs / 1000);
    const localMiBs = RELAY_BYTES / 1048576 / (localReadMs / 1000);
    const rows: Row[] = [
      row({ measure: "local `bash -c true` spawn p50 / p99", value: `${ms(s50)} / ${ms(s99)}` }),
      row({
        measure: "Connect unary RTT (master Health) p50 / p99",
        value: `${ms(h50)} / ${ms(h99)}`,
      }),
      row({
        measure: "`agent run true` through the master, p50",
        value: ms(d50),
        reference: `spawn + RTT ${ms(s50 + h50)}`,
        ratio: d50 / (s50 + h50),
        goal: { kind: "max", limit: 1.5, text: "≤ 1.5×" },
      }),
      row({
        measure: "`agent run true` through the master, p99",
        value: ms(d99),
        reference: `spawn + RTT ${ms(s99 + h99)}`,
        ratio: d99 / (s99 + h99),
        goal: { kind: "max", limit: 1.5, text: "≤ 1.5×" },
      }),
      row({
        measure: "`true` on the agent directly (no master), p50 / p99",
        value: `${ms(median(directT))} / ${ms(percentile(directT, 99))}`,
        reference: `spawn + RTT ${ms(s50 + h50)}`,
        ratio: median(directT) / (s50 + h50),
        note: "diagnostic: the agent alone, to split the cost between agent and relay",
      }),
      row({
        measure: `local spawn rate, concurrency ${CONCURRENCY}`,
        value: `${Math.round(localRate)} /s`,
      }),
      row({
        measure: `\`true\` through the master, concurrency ${CONCURRENCY}`,
        value: `${Math.round(masterRate)} /s`,
        reference: `local ${Math.round(localRate)} /s`,
        ratio: masterRate / localRate,
        goal: { kind: "min", limit: 0.8, text: "≥ 80 %" },
      }),
      row({
        measure: `\`true\` on the agent directly, concurrency ${CONCURRENCY}`,
        value: `${Math.round(median(directRates))} /s`,
        reference: `local ${Math.round(localRate)} /s`,
        ratio: median(directRates) / localRate,
      }),
      row({
        measure: "agent idle RSS",
        value: mib(agentIdleRss),
        reference: `idle \`node\` ${mib(nodeIdleRss)}`,
        ratio: agentIdleRss / nodeIdleRss,
        note:
          spawner === undefined
            ? "no spawner helper process found"
            : `plus its spawner helper process (forks the commands): ${mib(spawnerIdleRss)}`,
      }),
      row({
        measure: `master RSS growth relaying ${mib(RELAY_BYTES)}`,
        value: mib(masterRssPeak - masterRssBefore),
        reference: `before ${mib(masterRssBefore)}, peak ${mib(masterRssPeak)}`,
        note: `agent peak RSS ${mib(agentRssPeak)}; master CPU ${Math.round(masterRelayCpu)} ms for the relay`,
      }),
      row({
        measure: "relay throughput (agent → master → client)",
        value: `${round(relayMiBs, 1)} MiB/s`,
        reference: `local pipe read ${round(localMiBs, 1)} MiB/s`,
        ratio: relayMiBs / localMiBs,
        note: `${chunks} output messages, ${round(RELAY_BYTES / chunks / 1024, 1)} KiB each on average; master CPU ${round(masterRelayCpu / (RELAY_BYTES / 1048576), 2)} ms per MiB relayed`,
      }),
    ];
    printTable(`Dispatch through the master (${QUICK ? "quick" : "full"})`, rows);
    writeResult("cluster-dispatch", rows, {
      sequentialPerKind: spawnT.length,
      concurrency: CONCURRENCY,
      rateSeconds: RATE_SECONDS,
      warmSeconds: WARM_SECONDS,
      ms: {
        spawn: { p50: s50, p99: s99 },
        rtt: { p50: h50, p99: h99 },
        dispatch: { p50: d50, p99: d99 },
        direct: { p50: median(directT), p99: percentile(directT, 99) },
      },
      perSecond: { local: localRates, master: masterRates, direct: directRates },
      rss: {
        agentIdle: agentIdleRss,
        spawnerIdle: spawnerIdleRss,
        nodeIdle: nodeIdleRss,
        masterRssBefore,
        masterRssPeak,
        agentRssPeak,
      },
      relay: { bytes: RELAY_BYTES, chunks, ms: relayMs, localReadMs, masterCpuMs: masterRelayCpu },
    });
  } finally {
    conn.close();
    agentConn.close();
    await agent.stop();
    await master.stop();
    teardown();
  }
}

await main();
