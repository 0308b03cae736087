import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { openState } from "../src/index.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../../..");

/** Options of {@link runTorture}. */
export interface TortureOptions {
  file: string;
  processes: number;
  cyclesPerProcess: number;
  ttlMs: number;
  /** Give up (and fail) after this long. */
  deadlineMs: number;
}

/** What happened, for assertions and a summary line. */
export interface TortureReport {
  violations: string[];
  committed: number;
  rejected: number;
  kills: number;
  stops: number;
  acks: number;
  counter: number;
  maxToken: number;
  elapsedMs: number;
}

interface Worker {
  key: number;
  child: ChildProcess;
  remaining: number;
  stopped: boolean;
  exited: boolean;
  killedByUs: boolean;
  stderr: string;
}

/** Spawns a worker that runs from source through tsx, no build needed. */
export function spawnTs(script: string, args: string[], ipc: boolean): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "--conditions=source", script, ...args], {
    cwd: ROOT,
    stdio: ipc ? ["ignore", "ignore", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
}

/**
 * Runs lock-holding workers against one file while killing (-9) and pausing
 * (SIGSTOP/SIGCONT) them at random. This process plays the protected
 * resource: it accepts a write step only if its fencing token is at least
 * the highest seen, and records which writes committed (begin and end both
 * accepted) to check they never overlap and their tokens only grow.
 */
export async function runTorture(o: TortureOptions): Promise<TortureReport> {
  const started = performance.now();
  const violations: string[] = [];
  const acks = new Set<number>();
  const tokenOwner = new Map<number, number>();
  const open = new Map<number, { token: number; begin: number }>();
  const committed: { token: number; begin: number; end: number }[] = [];
  let highest = 0;
  let seq = 0;
  let rejected = 0;
  let kills = 0;
  let stops = 0;
  let finished = 0;
  let nextKey = 0;
  const workers = new Set<Worker>();

  const start = (remaining: number) => {
    const child = spawnTs(
      path.join(HERE, "worker.ts"),
      [o.file, String(remaining), String(o.ttlMs)],
      true,
    );
    const w: Worker = {
      key: ++nextKey,
      child,
      remaining,
      stopped: false,
      exited: false,
      killedByUs: false,
      stderr: "",
    };
    workers.add(w);
    child.stderr?.on("data", (d: Buffer) => {
      w.stderr += d.toString();
    });
    child.on(
      "message",
      (m: { t: string; id?: number; token?: number; value?: number; expiredLocally?: boolean }) => {
        const reply = (accepted: boolean) => {
          if (child.connected) child.send({ id: m.id, accepted }, () => {});
        };
        if (m.t === "cycle") reply(true);
        else if (m.t === "begin" && m.token !== undefined) {
          seq++;
          if (m.token < highest) return reply(false);
          highest = m.token;
          const prior = tokenOwner.get(m.token);
          if (prior !== undefined && prior !== w.key)
            violations.push(`token ${m.token} held by workers ${prior} and ${w.key}`);
          tokenOwner.set(m.token, w.key);
          open.set(w.key, { token: m.token, begin: seq });
          reply(true);
        } else if (m.t === "end" && m.token !== undefined) {
          seq++;
          const write = open.get(w.key);
          open.delete(w.key);
          if (!write || write.token !== m.token || m.token < highest) return reply(false);
          committed.push({ token: m.token, begin: write.begin, end: seq });
          reply(true);
        } else if (m.t === "ack" && m.value !== undefined) {
          if (acks.has(m.value)) violations.push(`increment result ${m.value} acknowledged twice`);
          acks.add(m.value);
        } else if (m.t === "rejected") {
          rejected++;
          // Only a holder whose lease had run out may be refused by the resource.
          if (!m.expiredLocally)
            violations.push(
              `worker ${w.key} refused with token ${m.token} while its lease was live`,
            );
        } else if (m.t === "done") {
          w.remaining--;
          finished++;
        }
      },
    );
    child.on("exit", (code, signal) => {
      w.exited = true;
      workers.delete(w);
      if (w.killedByUs && signal === "SIGKILL") {
        if (w.remaining > 0) start(w.remaining);
      } else if (code !== 0) {
        violations.push(
          `worker ${w.key} exited with ${code ?? signal}: ${w.stderr.trim().slice(-500)}`,
        );
      }
    });
  };

  for (let i = 0; i < o.processes; i++) start(o.cyclesPerProcess);
  const total = o.processes * o.cyclesPerProcess;
  try {
    while (workers.size > 0) {
      if (performance.now() - started > o.deadlineMs) {
        violations.push(`deadline passed with ${finished}/${total} cycles done`);
        break;
      }
      await sleep(200 + Math.random() * 300);
      const live = [...workers].filter((w) => !w.exited && !w.stopped && w.child.pid !== undefined);
      // Half the time aim at the holder mid-write, where a pause does the most harm.
      const writing = live.filter((w) => open.has(w.key));
      const pool = writing.length > 0 && Math.random() < 0.5 ? writing : live;
      const w = pool[Math.floor(Math.random() * pool.length)];
      if (!w) continue;
      // Every fifth event is a kill, so each run sees both kinds of fault.
      if ((kills + stops) % 5 === 2) {
        w.killedByUs = true;
        kills++;
        w.child.kill("SIGKILL");
      } else {
        w.stopped = true;
        stops++;
        w.child.kill("SIGSTOP");
        // Pauses straddle the TTL: some holders resume with a lost lease.
        setTimeout(
          () => {
            w.stopped = false;
            if (!w.exited) w.child.kill("SIGCONT");
          },
          Math.random() * o.ttlMs * 2,
        ).unref();
      }
    }
  } finally {
    for (const w of workers) {
      w.killedByUs = true;
      w.remaining = 0;
      w.child.kill("SIGKILL");
    }
  }

  for (let i = 1; i < committed.length; i++) {
    const [a, b] = [committed[i - 1], committed[i]];
    if (a && b && b.begin < a.end)
      violations.push(`writes with tokens ${a.token} and ${b.token} overlapped`);
    if (a && b && b.token <= a.token) violations.push(`token went from ${a.token} to ${b.token}`);
  }
  const store = await openState({ path: o.file });
  const counter = (await store.get<number>("counter")) ?? 0;
  await store.close();
  const maxAck = Math.max(0, ...acks);
  if (counter < maxAck || counter < acks.size) {
    violations.push(
      `counter is ${counter} but ${acks.size} increments were acknowledged (max ${maxAck})`,
    );
  }
  if (counter > acks.size + kills)
    violations.push(`counter ${counter} exceeds acks ${acks.size} + kills ${kills}`);
  if (finished < total) violations.push(`only ${finished}/${total} cycles finished`);
  return {
    violations,
    committed: committed.length,
    rejected,
    kills,
    stops,
    acks: acks.size,
    counter,
    maxToken: highest,
    elapsedMs: Math.round(performance.now() - started),
  };
}
