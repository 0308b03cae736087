import fs from "node:fs";
import path from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { agentClient, connect } from "@sloth/client";
import type { ShellRequestSchema } from "@sloth/proto";
import { afterEach, describe, expect, it } from "vitest";
import { startTestAgent, type TestAgent, tempDir, waitFor } from "../test/helpers.js";
import { shellArgv } from "./shell.js";

let t: TestAgent | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await t?.close();
  t = undefined;
});

type Req = MessageInitShape<typeof ShellRequestSchema>;

/** A request stream the test feeds while reading the responses. */
function feed(open: Req) {
  const queue: Req[] = [open];
  let ended = false;
  let wake: (() => void) | undefined;
  return {
    send(data: string) {
      queue.push({ event: { case: "input", value: Buffer.from(data) } });
      wake?.();
    },
    resize(rows: number, cols: number) {
      queue.push({ event: { case: "resize", value: { rows, cols } } });
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<Req> {
      for (;;) {
        const r = queue.shift();
        if (r) yield r;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

interface Session {
  tty: boolean | undefined;
  stdout: string;
  stderr: string;
  exitCode: number | undefined;
}

async function collect(
  client: TestAgent["client"],
  input: AsyncIterable<Req>,
  signal?: AbortSignal,
  seen?: (s: Session) => void,
): Promise<Session> {
  const s: Session = { tty: undefined, stdout: "", stderr: "", exitCode: undefined };
  for await (const res of client.shell(input, { signal })) {
    const ev = res.event?.event;
    if (ev?.case === "started") s.tty = res.tty;
    else if (ev?.case === "output") {
      if (ev.value.stream === 2) s.stderr += Buffer.from(ev.value.data).toString();
      else s.stdout += Buffer.from(ev.value.data).toString();
    } else if (ev?.case === "exit") s.exitCode = ev.value.exitCode;
    seen?.(s);
  }
  return s;
}

const hasScript = shellArgv({ tty: true } as never).tty;

describe("AgentService.Shell", () => {
  it("runs piped input as one shell session: state carries over, streams stay apart, the exit code comes back", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const input = feed({ event: { case: "open", value: { workdir: dir, env: { WHO: "sloth" } } } });
    input.send("cd sub 2>/dev/null || { mkdir sub && cd sub; }\nX=42\n");
    input.send('pwd; echo "$X $WHO"; echo oops >&2\nexit 7\n');
    input.end();
    const s = await collect(t.client, input);
    expect(s.tty).toBe(false);
    expect(s.stdout).toBe(`${fs.realpathSync(path.join(dir, "sub"))}\n42 sloth\n`);
    expect(s.stderr).toBe("oops\n");
    expect(s.exitCode).toBe(7);
  });

  it("ends when its input ends", async () => {
    t = await startTestAgent();
    const input = feed({ event: { case: "open", value: {} } });
    input.send("echo one\n");
    input.end();
    const s = await collect(t.client, input);
    expect(s).toMatchObject({ stdout: "one\n", exitCode: 0 });
  });

  it.skipIf(!hasScript)(
    "gives a terminal when asked: its size, Ctrl-C interrupting the running command only",
    async () => {
      t = await startTestAgent();
      const input = feed({
        event: { case: "open", value: { tty: true, rows: 33, cols: 101, term: "xterm" } },
      });
      let last: Session | undefined;
      const done = collect(t.client, input, undefined, (s) => {
        last = s;
      });
      input.send("tty; stty size; echo TERM=$TERM\r");
      await waitFor(() => last?.stdout.includes("TERM=xterm") === true, { what: "tty output" });
      expect(last?.tty).toBe(true);
      expect(last?.stdout).toMatch(/\/dev\/pts\/\d+/);
      expect(last?.stdout).toContain("33 101");
      // The caller's window changes size: the shell's terminal follows.
      input.resize(51, 149);
      await new Promise((r) => setTimeout(r, 300));
      input.send("stty size\r");
      await waitFor(() => last?.stdout.includes("51 149") === true, { what: "the new size" });
      input.send("sleep 60; echo slept\r");
      await waitFor(() => last?.stdout.includes("sleep 60; echo slept") === true, {
        what: "echo of the command",
      });
      await new Promise((r) => setTimeout(r, 300));
      input.send("\u0003");
      input.send("echo after-$((6*7))\r");
      await waitFor(() => last?.stdout.includes("after-42") === true, {
        what: "the shell after Ctrl-C",
      });
      input.send("exit 3\r");
      const s = await done;
      expect(s.stdout).not.toContain("\nslept");
      expect(s.exitCode).toBe(3);
    },
    30_000,
  );

  it("kills the shell and what it runs when the caller goes away", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const pidFile = path.join(dir, "pid");
    const input = feed({ event: { case: "open", value: {} } });
    input.send(`sleep 60 & echo $! > ${pidFile}; wait\n`);
    const controller = new AbortController();
    const done = collect(t.client, input, controller.signal).catch((e: unknown) => e);
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== "");
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    controller.abort();
    expect(ConnectError.from(await done).code).toBe(Code.Canceled);
    await waitFor(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { what: `sleep (pid ${pid}) killed` },
    );
    await waitFor(() => t?.agent.status().runningCommands === 0, { what: "no running command" });
  });

  it("refuses a first message that does not open the shell", async () => {
    t = await startTestAgent();
    const input = feed({ event: { case: "input", value: Buffer.from("id\n") } });
    input.end();
    const err = await collect(t.client, input).catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.InvalidArgument);
    expect(ConnectError.from(err).rawMessage).toContain("first message must open it");
  });

  it("refuses callers without the right token, and runs nothing", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const marker = path.join(dir, "marker");
    for (const token of [undefined, "wrong-token"]) {
      const conn = connect({ address: t.address, token });
      cleanups.push(() => conn.close());
      const input = feed({ event: { case: "open", value: {} } });
      input.send(`touch ${marker}\n`);
      input.end();
      const err = await collect(agentClient(conn), input).catch((e: unknown) => e);
      expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    }
    const ok = feed({ event: { case: "open", value: {} } });
    ok.end();
    await collect(t.client, ok);
    expect(fs.existsSync(marker)).toBe(false);
  });
});
