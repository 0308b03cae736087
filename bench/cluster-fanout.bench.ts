// Fan-out: `echo hi` on every one of 50 agent processes (10 in quick mode)
// on loopback, registered with one master process, dispatched in parallel
// through the master by this process with the client library (one RunOnAgent
// stream per agent, all in flight at once). Next to it, in the same run: 50
// local `bash -c 'echo hi'` spawned at once, the floor of any fan-out here.
import { connect, masterClient } from "@sloth/client";
import {
  type AgentProc,
  localBash,
  mib,
  rssBytes,
  startAgent,
  startMaster,
  teardown,
  tempDir,
} from "./lib/cluster.js";
import { median, ms, printTable, QUICK, type Row, round, row, writeResult } from "./lib/report.js";

const AGENTS = Number(process.env.SLOTH_BENCH_FANOUT ?? (QUICK ? 10 : 50));
const START_PARALLEL = 5;
const ROUNDS = QUICK ? 3 : 5;
const ACTIVE = 1; // AgentStatus.ACTIVE

type MasterClient = ReturnType<typeof masterClient>;

/** `echo hi` on one agent through the master; checks the output and exit. */
async function echoOn(mc: MasterClient, name: string): Promise<void> {
  let out = "";
  let code = -1000;
  for await (const r of mc.runOnAgent({ agentName: name, spec: { command: "echo hi" } })) {
    const e = r.event?.event;
    if (e?.case === "output") out += Buffer.from(e.value.data).toString("utf8");
    else if (e?.case === "exit") code = e.value.exitCode;
  }
  if (code !== 0 || out !== "hi\n")
    throw new Error(`${name}: exit ${code}, output ${JSON.stringify(out)}`);
}

async function timed(op: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await op();
  return performance.now() - t;
}

async function main(): Promise<void> {
  const master = await startMaster();
  const conn = connect({ address: master.address, token: master.token });
  const mc = masterClient(conn);
  const agents: AgentProc[] = [];
  try {
    // Start the agents a few at a time: 2 cores are shared with the master.
    const dataDir = tempDir("sloth-bench-agents-");
    const startT = performance.now();
    const names = Array.from({ length: AGENTS }, (_, i) => `fan-${String(i + 1).padStart(2, "0")}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: START_PARALLEL }, async () => {
        while (next < names.length) {
          const name = names[next++]!;
          agents.push(await startAgent(master, name, dataDir));
        }
      }),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { agents: listed } = await mc.listAgents({});
      if (listed.filter((a) => a.status === ACTIVE).length >= AGENTS) break;
      if (Date.now() > deadline) throw new Error("agents did not all become active in 60 s");
      await new Promise((r) => setTimeout(r, 200));
    }
    const startMs = performance.now() - startT;
    const agentRss = agents.map((a) => rssBytes(a.pid));

    const fan = () => Promise.all(names.map((n) => echoOn(mc, n)));
    const local = () => Promise.all(names.map(() => localBash("echo hi")));
    const first = await timed(fan);
    const fanT: number[] = [];
    const localT: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      localT.push(await timed(local));
      fanT.push(await timed(fan));
    }
    const f50 = median(fanT);
    const l50 = median(localT);
    const rows: Row[] = [
      row({
        measure: `start ${AGENTS} agent processes (${START_PARALLEL} at a time) until all active`,
        value: `${round(startMs / 1000)} s`,
        note: `agent RSS median ${mib(median(agentRss))}, total ${mib(agentRss.reduce((a, b) => a + b, 0))}`,
      }),
      row({
        measure: `\`echo hi\` on ${AGENTS} agents through the master, first round`,
        value: ms(first),
      }),
      row({
        measure: `\`echo hi\` on ${AGENTS} agents through the master, median of ${ROUNDS}`,
        value: ms(f50),
        reference: `${AGENTS} local spawns at once ${ms(l50)}`,
        ratio: f50 / l50,
      }),
    ];
    printTable(`Fan-out to ${AGENTS} agent processes (${QUICK ? "quick" : "full"})`, rows);
    writeResult("cluster-fanout", rows, {
      agents: AGENTS,
      startMs,
      firstMs: first,
      fanMs: fanT,
      localMs: localT,
      agentRss,
    });
  } finally {
    conn.close();
    await Promise.all(agents.map((a) => a.stop()));
    await master.stop();
    teardown();
  }
}

await main();
