// The registry at scale: a real master process (production 5 s heartbeat)
// and simulated agents in a separate process over at most 16 HTTP/2
// sessions. Times the registration of all of them (each probed by the master
// through a shared Health endpoint in the simulator, so they are active),
// then the master's CPU share at steady heartbeat. Goal: 10,000 agents at
// ≤ 25 % of one core.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { connect, masterClient } from "@sloth/client";
import { cpuMs, mib, rssBytes, startMaster, teardown } from "./lib/cluster.js";
import { ms, printTable, QUICK, type Row, round, row, writeResult } from "./lib/report.js";

const COUNT = Number(process.env.SLOTH_BENCH_AGENTS ?? (QUICK ? 1000 : 10_000));
const SESSIONS = 16;
const CONCURRENCY = 64;
const INTERVAL_MS = 5000;
const WINDOW_S = QUICK ? 5 : 10;
const GOAL_AGENTS = 10_000;
// Registry.heartbeatInterval's default: the most heartbeats a second the master asks for.
const MAX_HEARTBEATS_PER_S = 250;

type Msg = Record<string, number> & { type: string; statuses?: Record<string, number> };

async function main(): Promise<void> {
  const master = await startMaster();
  const sim = fork(fileURLToPath(new URL("./lib/registry-sim.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx", "--conditions=source"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const conn = connect({ address: master.address, token: master.token });
  const mc = masterClient(conn);
  const messages: Msg[] = [];
  const waiters: Array<(m: Msg) => void> = [];
  sim.on("message", (m: Msg) => {
    const w = waiters.shift();
    if (w) w(m);
    else messages.push(m);
  });
  const exited = new Promise<void>((r) => sim.once("exit", () => r()));
  const nextMessage = () =>
    new Promise<Msg>((resolve, reject) => {
      const m = messages.shift();
      if (m) return resolve(m);
      waiters.push(resolve);
      void exited.then(() => reject(new Error("the simulator exited")));
    });
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const idleCpu0 = cpuMs(master.pid);
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    const idleShare = (cpuMs(master.pid) - idleCpu0) / (performance.now() - idleT0);
    const rssBefore = rssBytes(master.pid);

    const cpuReg0 = cpuMs(master.pid);
    sim.send({
      cmd: "start",
      master: master.address,
      token: master.token,
      count: COUNT,
      sessions: SESSIONS,
      concurrency: CONCURRENCY,
      intervalMs: INTERVAL_MS,
    });
    const reg = await nextMessage();
    const regCpu = cpuMs(master.pid) - cpuReg0;
    const health = await mc.health({});
    const listed = (await mc.listAgents({})).agents.length;

    // The interval the master now tells agents (it stretches with the
    // cluster's size); the simulated agents follow it, as real ones do.
    const probe = await mc.registerAgent({
      name: "bench-interval-probe",
      reportAddress: "127.0.0.1:1",
      port: 1,
      identitySecret: new Uint8Array(32).fill(7),
    });
    const interval = Number(probe.heartbeatIntervalMs) || INTERVAL_MS;
    sim.send({ cmd: "interval", intervalMs: interval });
    // One full interval so every agent heartbeats, then the measured window.
    await new Promise((r) => setTimeout(r, interval));
    sim.send({ cmd: "counters" });
    const c0 = await nextMessage();
    const cpu0 = cpuMs(master.pid);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
    const cpu1 = cpuMs(master.pid);
    const wall = performance.now() - t0;
    sim.send({ cmd: "counters" });
    const c1 = await nextMessage();
    const rssSteady = rssBytes(master.pid);
    const after = await mc.health({});

    const share = (cpu1 - cpu0) / wall;
    const hbRate = ((c1.hbOk ?? 0) - (c0.hbOk ?? 0)) / (wall / 1000);
    const hbErrors = (c1.hbErr ?? 0) - (c0.hbErr ?? 0);
    const hbSkipped = (c1.hbSkipped ?? 0) - (c0.hbSkipped ?? 0);
    const expectedRate = (COUNT * 1000) / interval;
    const simShare = ((c1.simCpuMs ?? 0) - (c0.simCpuMs ?? 0)) / wall;
    const scale = GOAL_AGENTS / COUNT;
    const regMs = reg.registerMs ?? Number.NaN;
    const perHb = (cpu1 - cpu0) / Math.max(1, hbRate * (wall / 1000));
    // When the master falls behind, the share it used understates what the
    // full heartbeat rate needs: judge the goal at the full rate.
    // A smaller run is judged at the rate 10,000 agents send: the master
    // stretches their interval (Registry.heartbeatInterval) to at most
    // MAX_HEARTBEATS_PER_S, so that rate, not ten times this run's, is what it
    // must sustain; CPU per heartbeat here includes the idle baseline.
    const goalRate =
      (GOAL_AGENTS * 1000) /
      Math.max(INTERVAL_MS, Math.ceil((GOAL_AGENTS / MAX_HEARTBEATS_PER_S) * 1000));
    const goalShare =
      scale === 1 ? share * Math.max(1, expectedRate / hbRate) : (perHb * goalRate) / 1000;
    const rows: Row[] = [
      row({
        measure: `register ${COUNT} agents (${SESSIONS} sessions, ${CONCURRENCY} in flight)`,
        value: `${round(regMs / 1000)} s`,
        reference: `${Math.round(COUNT / (regMs / 1000))} /s`,
        note: `failures ${reg.regFailures}; HTTP statuses ${JSON.stringify(reg.statuses)}; Health probes answered by the simulator: ${reg.healthProbes}${(reg.healthProbes ?? 0) > COUNT ? " (more than agents: some probes exceeded the master's 3 s probe timeout and were repeated by its re-probe loop)" : ""}; master CPU ${Math.round(regCpu)} ms; listed ${listed}, active ${health.agentsActive}`,
      }),
      row({
        measure: "master CPU, idle with no agents",
        value: `${round(idleShare * 100, 1)} % of a core`,
      }),
      row({
        measure: `heartbeats/s at the master's interval (${interval / 1000} s; base ${INTERVAL_MS / 1000} s)`,
        value: `${Math.round(hbRate)} /s`,
        reference: `expected ${Math.round(expectedRate)} /s`,
        ratio: hbRate / expectedRate,
        note: `errors ${hbErrors}; not sent because 1,024 were already waiting ${hbSkipped}; max in flight ${c1.maxInFlight}; simulator CPU ${round(simShare * 100, 1)} % of a core; active after the window ${after.agentsActive}`,
      }),
      row({
        measure: "master CPU per heartbeat",
        value: ms(perHb),
        reference: `at ${Math.round(expectedRate)} /s: ${round(perHb * expectedRate * 0.1, 1)} % of a core`,
      }),
      row({
        measure: `master CPU at steady heartbeat, ${COUNT} agents${scale === 1 ? "" : ` (CPU per heartbeat × the ${Math.round(goalRate)}/s ${GOAL_AGENTS} agents send at their stretched interval)`}`,
        value: `${round(share * 100, 1)} % of a core${scale === 1 ? "" : ` → ${round(goalShare * 100, 1)} % at ${GOAL_AGENTS}`}`,
        reference: `over ${round(wall / 1000, 1)} s`,
        ratio: goalShare,
        goal: { kind: "max", limit: 0.25, text: "≤ 25 %" },
        note:
          hbRate < 0.95 * expectedRate
            ? `the master answered only ${Math.round(hbRate)} of ${Math.round(expectedRate)} heartbeats/s: the ratio is the share needed at the full rate (measured share × ${round(expectedRate / hbRate)})`
            : undefined,
      }),
      row({
        measure: "master RSS",
        value: mib(rssSteady),
        reference: `with no agents ${mib(rssBefore)}`,
      }),
    ];
    if (after.agentsActive !== COUNT) {
      rows[2]!.note += ` — only ${after.agentsActive} of ${COUNT} active`;
    }
    printTable(
      `Registry: ${COUNT} simulated agents (${QUICK ? "quick" : "full"}); registered active: the simulator answers the master's Health probes`,
      rows,
    );
    writeResult("cluster-registry", rows, {
      count: COUNT,
      sessions: SESSIONS,
      concurrency: CONCURRENCY,
      intervalMs: INTERVAL_MS,
      windowMs: wall,
      registration: reg,
      registerMasterCpuMs: regCpu,
      steady: {
        masterCpuShare: share,
        heartbeatsPerSecond: hbRate,
        hbErrors,
        simCpuShare: simShare,
      },
      agentsActive: { afterRegistration: health.agentsActive, afterWindow: after.agentsActive },
      rss: { before: rssBefore, steady: rssSteady },
    });
  } finally {
    conn.close();
    if (sim.connected) sim.send({ cmd: "stop" });
    const t = setTimeout(() => sim.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
    await master.stop();
    teardown();
  }
}

await main();
