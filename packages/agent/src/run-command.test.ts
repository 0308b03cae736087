import { afterEach, describe, expect, it } from "vitest";
import { processExists, waitFor } from "../test/helpers.js";
import { type CommandEvent, runCommand } from "./run-command.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function killLater(pid: number) {
  cleanups.push(() => {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  });
}

describe("runCommand", () => {
  it("pauses the child while the consumer does not read, and loses nothing", async () => {
    const total = 50_000_000;
    const run = runCommand(
      { command: `head -c ${total} /dev/zero` },
      { highWaterBytes: 256 * 1024 },
    );
    const first = (await run.next()).value as CommandEvent;
    expect(first.type).toBe("started");
    const pid = (first as { pid: number }).pid;
    killLater(pid);
    // Not reading for a while: with backpressure the child blocks on a full
    // pipe instead of the agent buffering 50 MB.
    await new Promise((r) => setTimeout(r, 1000));
    expect(processExists(pid)).toBe(true);
    let bytes = 0;
    let exit: CommandEvent | undefined;
    for await (const e of run) {
      if (e.type === "output") bytes += e.data.length;
      if (e.type === "exit") exit = e;
    }
    expect(bytes).toBe(total);
    expect(exit).toMatchObject({ exitCode: 0, signal: "" });
  });

  it("ends when bash exits even if a background child keeps the pipes open", async () => {
    const events: CommandEvent[] = [];
    for await (const e of runCommand({ command: "sleep 30 & echo $!" }, { exitDrainMs: 300 })) {
      events.push(e);
    }
    const out = events.flatMap((e) =>
      e.type === "output" ? [Buffer.from(e.data).toString()] : [],
    );
    const pid = Number(out.join("").trim());
    killLater(pid);
    expect(events.at(-1)).toMatchObject({ type: "exit", exitCode: 0 });
  });

  it("kills the group when the consumer stops iterating", async () => {
    const run = runCommand({ command: "sleep 600 & echo $!; wait" }, { killGraceMs: 500 });
    let pid = 0;
    for await (const e of run) {
      if (e.type === "output") {
        pid = Number(Buffer.from(e.data).toString().trim());
        break;
      }
    }
    killLater(pid);
    expect(pid).toBeGreaterThan(0);
    await waitFor(() => !processExists(pid), 10_000, "the sleep to die");
  });

  it("does not pass the cluster token to commands", async () => {
    let out = "";
    for await (const e of runCommand(
      { command: 'echo "[$SLOTH_RUNNER_TOKEN][$EXTRA]"', env: { EXTRA: "x" } },
      { baseEnv: { PATH: process.env.PATH, SLOTH_RUNNER_TOKEN: "secret" } },
    )) {
      if (e.type === "output") out += Buffer.from(e.data).toString();
    }
    expect(out).toBe("[][x]\n");
  });
});
