import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { agentClient, connect } from "@sloth/client";
import { type CommandExit, OutputStream } from "@sloth/proto";
import { afterEach, describe, expect, it } from "vitest";
import {
  processExists,
  startTestAgent,
  type TestAgent,
  tempDir,
  waitFor,
} from "../test/helpers.js";

let t: TestAgent | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await t?.close();
  t = undefined;
});

interface Collected {
  pieces: Array<{ stream: "stdout" | "stderr"; data: Buffer }>;
  stdout: Buffer;
  stderr: Buffer;
  exit: CommandExit | undefined;
  pid: number;
  agentName: string;
}

async function run(
  client: TestAgent["client"],
  spec: { command: string; workdir?: string; env?: Record<string, string>; timeoutMs?: bigint },
  signal?: AbortSignal,
  onChunk?: (stream: "stdout" | "stderr", data: Buffer) => void,
): Promise<Collected> {
  const c: Collected = {
    pieces: [],
    stdout: Buffer.alloc(0),
    stderr: Buffer.alloc(0),
    exit: undefined,
    pid: 0,
    agentName: "",
  };
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  for await (const res of client.runCommand({ spec }, { signal })) {
    const ev = res.event?.event;
    if (ev?.case === "started") {
      c.pid = ev.value.pid;
      c.agentName = ev.value.agentName;
    } else if (ev?.case === "output") {
      const stream = ev.value.stream === OutputStream.STDOUT ? "stdout" : "stderr";
      const data = Buffer.from(ev.value.data);
      (stream === "stdout" ? out : err).push(data);
      const last = c.pieces.at(-1);
      if (last?.stream === stream) last.data = Buffer.concat([last.data, data]);
      else c.pieces.push({ stream, data });
      onChunk?.(stream, data);
    } else if (ev?.case === "exit") {
      c.exit = ev.value;
    }
  }
  c.stdout = Buffer.concat(out);
  c.stderr = Buffer.concat(err);
  return c;
}

function grandchildKiller(pid: () => number) {
  cleanups.push(() => {
    try {
      if (pid() > 0) process.kill(pid(), "SIGKILL");
    } catch {}
  });
}

describe("AgentService.RunCommand", () => {
  it("streams stdout and stderr in order, then exit 3", async () => {
    t = await startTestAgent();
    const r = await run(t.client, {
      command:
        "printf 'out1\\n'; sleep 0.3; printf 'err1\\n' >&2; sleep 0.3; printf 'out2\\n'; exit 3",
    });
    expect(r.pieces.map((p) => [p.stream, p.data.toString()])).toEqual([
      ["stdout", "out1\n"],
      ["stderr", "err1\n"],
      ["stdout", "out2\n"],
    ]);
    expect(r.pid).toBeGreaterThan(0);
    expect(r.agentName).toBe("test-agent");
    expect(r.exit).toMatchObject({ exitCode: 3, signal: "", timedOut: false, startError: "" });
    expect(r.exit?.durationMs).toBeGreaterThanOrEqual(500n);
  });

  it("delivers a line while the command still runs, within a bounded delay", async () => {
    t = await startTestAgent();
    const ac = new AbortController();
    let latencyMs = -1;
    // The command prints the time it writes the line; the gap to its arrival
    // is the agent's added delay (well under 100 ms on an idle machine).
    const p = run(t.client, { command: "sleep 0.3; date +%s%3N; sleep 30" }, ac.signal, (_s, d) => {
      latencyMs = Date.now() - Number(d.toString().trim());
      ac.abort();
    });
    await expect(p).rejects.toThrow();
    expect(latencyMs).toBeGreaterThanOrEqual(-50);
    expect(latencyMs).toBeLessThan(2000);
  });

  it("treats a timeout beyond a timer's range as no limit", async () => {
    t = await startTestAgent();
    const r = await run(t.client, { command: "echo ok", timeoutMs: 2n ** 63n });
    expect(r.stdout.toString()).toBe("ok\n");
    expect(r.exit).toMatchObject({ exitCode: 0, timedOut: false });
  });

  it("reports a command Node cannot pass to bash as start_error", async () => {
    t = await startTestAgent();
    const r = await run(t.client, { command: "echo a\0b" });
    expect(r.exit?.exitCode).toBe(-1);
    expect(r.exit?.startError).toMatch(/^cannot run command: /);
  });

  it("reports death by signal", async () => {
    t = await startTestAgent();
    const r = await run(t.client, { command: "kill -USR1 $$" });
    expect(r.exit).toMatchObject({ exitCode: -1, signal: "SIGUSR1", signalNumber: 10 });
  });

  it("passes 10 MB of output intact", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, "blob");
    const blob = crypto.randomBytes(10 * 1024 * 1024);
    fs.writeFileSync(file, blob);
    const r = await run(t.client, { command: `cat ${file}; printf tail >&2` });
    expect(r.stdout.length).toBe(blob.length);
    expect(r.stdout.equals(blob)).toBe(true);
    expect(r.stderr.toString()).toBe("tail");
    expect(r.exit?.exitCode).toBe(0);
  });

  it("passes a 1 MB line without newline", async () => {
    t = await startTestAgent();
    const r = await run(t.client, { command: "head -c 1048576 /dev/zero | tr '\\0' x" });
    expect(r.stdout.length).toBe(1048576);
    expect(r.stdout.every((b) => b === 0x78)).toBe(true);
  });

  it("kills the whole process group on timeout", async () => {
    t = await startTestAgent();
    let sleepPid = 0;
    grandchildKiller(() => sleepPid);
    const r = await run(
      t.client,
      // Long enough for bash to start and print on a loaded machine.
      { command: "sleep 600 & echo $!; wait", timeoutMs: 2000n },
      undefined,
      (_s, d) => {
        sleepPid = Number(d.toString().trim());
      },
    );
    expect(sleepPid).toBeGreaterThan(0);
    expect(r.exit).toMatchObject({ timedOut: true, signal: "SIGTERM", exitCode: -1 });
    await waitFor(() => !processExists(sleepPid), 10_000, "the sleep grandchild to die");
  });

  it("kills the command when the call is cancelled", async () => {
    t = await startTestAgent();
    const ac = new AbortController();
    let sleepPid = 0;
    grandchildKiller(() => sleepPid);
    const p = run(t.client, { command: "sleep 600 & echo $!; wait" }, ac.signal, (_s, d) => {
      sleepPid = Number(d.toString().trim());
      ac.abort();
    });
    await expect(p).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Canceled);
    expect(sleepPid).toBeGreaterThan(0);
    await waitFor(() => !processExists(sleepPid), 10_000, "the sleep to die");
    const agent = t.agent;
    await waitFor(() => agent.status().runningCommands === 0, 10_000, "the run to end");
  });

  it("kills the command when the caller's connection drops", async () => {
    t = await startTestAgent();
    const conn = connect({ address: t.address, token: "test-token-0123456789abcdef" });
    let sleepPid = 0;
    grandchildKiller(() => sleepPid);
    const p = run(
      agentClient(conn),
      { command: "sleep 600 & echo $!; wait" },
      undefined,
      (_s, d) => {
        sleepPid = Number(d.toString().trim());
        conn.close();
      },
    );
    await expect(p).rejects.toThrow();
    expect(sleepPid).toBeGreaterThan(0);
    await waitFor(() => !processExists(sleepPid), 10_000, "the sleep to die");
  });

  it("holds the command back while the caller does not read", async () => {
    t = await startTestAgent();
    const ac = new AbortController();
    const it = t.client
      .runCommand({ spec: { command: "head -c 500000000 /dev/zero" } }, { signal: ac.signal })
      [Symbol.asyncIterator]();
    const first = await it.next();
    const started = first.value?.event?.event;
    expect(started?.case).toBe("started");
    const pid = started?.case === "started" ? started.value.pid : 0;
    grandchildKiller(() => pid);
    // Unread, 500 MB would pass in well under this time without backpressure.
    await new Promise((r) => setTimeout(r, 1500));
    expect(processExists(pid)).toBe(true);
    expect(process.memoryUsage.rss()).toBeLessThan(1024 * 1024 * 1024);
    ac.abort();
    await it.next().catch(() => undefined);
    await waitFor(() => !processExists(pid), 10_000, "the command to die");
  });

  it("keeps concurrent runs apart", async () => {
    t = await startTestAgent();
    const client = t.client;
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        run(client, {
          command: `for j in 1 2 3; do echo run${i}-$j; echo err${i} >&2; done; exit ${i}`,
        }),
      ),
    );
    results.forEach((r, i) => {
      expect(r.stdout.toString()).toBe(`run${i}-1\nrun${i}-2\nrun${i}-3\n`);
      expect(r.stderr.toString()).toBe(`err${i}\n`.repeat(3));
      expect(r.exit?.exitCode).toBe(i);
    });
  });

  it("reports a bad workdir as start_error", async () => {
    t = await startTestAgent();
    const r = await run(t.client, { command: "true", workdir: "/nonexistent/dir" });
    expect(r.pid).toBe(0);
    expect(r.exit?.exitCode).toBe(-1);
    expect(r.exit?.startError).toMatch(/workdir \/nonexistent\/dir does not exist/);
    // A file where the folder should be.
    const file = path.join(os.tmpdir(), `sloth-workdir-file-${process.pid}`);
    fs.writeFileSync(file, "");
    try {
      const f = await run(t.client, { command: "true", workdir: file });
      expect(f.exit?.startError).toBe(`cannot run command: workdir ${file} is not a directory`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it("runs in the workdir with the extra environment", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const r = await run(t.client, {
      command: 'echo "$(pwd) $GREETING"',
      workdir: dir,
      env: { GREETING: "hi" },
    });
    expect(r.stdout.toString()).toBe(`${fs.realpathSync(dir)} hi\n`);
  });

  it("refuses callers without the right token, and runs nothing", async () => {
    t = await startTestAgent();
    const dir = tempDir();
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const marker = path.join(dir, "marker");
    for (const token of [undefined, "wrong-token"]) {
      const conn = connect({ address: t.address, token });
      cleanups.push(() => conn.close());
      const err = await run(agentClient(conn), { command: `touch ${marker}` }).catch(
        (e: unknown) => e,
      );
      expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
      expect(String(err)).not.toContain("test-token");
      await expect(agentClient(conn).getMetrics({})).rejects.toSatisfy(
        (e) => ConnectError.from(e).code === Code.Unauthenticated,
      );
    }
    // A permitted run afterwards: had the refused ones started, the marker would exist by now.
    await run(t.client, { command: "true" });
    expect(fs.existsSync(marker)).toBe(false);
  });
});

describe("AgentService.Health, GetMetrics", () => {
  it("answers Health without a token", async () => {
    t = await startTestAgent();
    const conn = connect({ address: t.address });
    cleanups.push(() => conn.close());
    const h = await agentClient(conn).health({});
    expect(h).toMatchObject({ name: "test-agent", runningCommands: 0 });
    expect(h.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("reports sane metrics", async () => {
    t = await startTestAgent();
    const { metrics: m } = await t.client.getMetrics({});
    expect(m).toBeDefined();
    if (!m) return;
    expect(m.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(m.cpuPercent).toBeLessThanOrEqual(100);
    expect(m.cpuCount).toBeGreaterThan(0);
    expect(m.memoryTotalBytes).toBeGreaterThan(0n);
    expect(m.memoryUsedBytes).toBeGreaterThan(0n);
    expect(m.memoryUsedBytes).toBeLessThanOrEqual(m.memoryTotalBytes);
    expect(m.diskTotalBytes).toBeGreaterThan(0n);
    expect(m.diskUsedBytes).toBeLessThanOrEqual(m.diskTotalBytes);
    expect(m.diskPath).toBe(process.cwd());
    expect(m.processRssBytes).toBeGreaterThan(1_000_000n);
    expect(m.uptimeSeconds).toBeGreaterThan(0n);
    expect(m.runningCommands).toBe(0);
    expect(m.load1).toBeGreaterThanOrEqual(0);
    expect(Number(m.collectedAt?.seconds)).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it("stops on Shutdown", async () => {
    t = await startTestAgent();
    await t.client.shutdown({ graceMs: 100n });
    await t.agent.wait();
    expect(t.agent.status().state).toBe("stopped");
  });
});

describe("AgentService.PrepareWorkspace and UploadBlobs", () => {
  it("offers bundles, and stores every blob of a bundled upload", async () => {
    t = await startTestAgent();
    const { packBlobs, scanWorkspace } = await import("@sloth/workspace");
    const src = tempDir();
    for (let i = 0; i < 50; i++)
      fs.writeFileSync(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(i));
    const manifest = await scanWorkspace(src);
    const prepared = await t.client.prepareWorkspace({ manifestJson: JSON.stringify(manifest) });
    expect(prepared.blobBundles).toBe(true);
    expect(prepared.missing).toHaveLength(50);
    async function* requests() {
      for await (const chunk of packBlobs(src, manifest, prepared.missing, { bundle: true }))
        yield { chunk, gzip: false };
    }
    const r = await t.client.uploadBlobs(requests());
    expect(Number(r.blobs)).toBe(50);
    const again = await t.client.prepareWorkspace({ manifestJson: JSON.stringify(manifest) });
    expect(again.missing).toEqual([]);
    expect(again.blobBundles).toBe(true);
  });

  it("refuses a blob that is not what its name says with the reason and code, not an internal error", async () => {
    t = await startTestAgent();
    const { packBlobs, scanWorkspace } = await import("@sloth/workspace");
    const src = tempDir();
    fs.writeFileSync(path.join(src, "a.txt"), "the content");
    const manifest = await scanWorkspace(src);
    const { missing } = await t.client.prepareWorkspace({ manifestJson: JSON.stringify(manifest) });
    // Rewritten after the scan, same size: the blob no longer matches its name.
    fs.writeFileSync(path.join(src, "a.txt"), "THE CONTENT");
    async function* requests() {
      for await (const chunk of packBlobs(src, manifest, missing)) yield { chunk, gzip: false };
    }
    const e = await t.client.uploadBlobs(requests()).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ConnectError);
    expect((e as ConnectError).code).toBe(Code.InvalidArgument);
    expect((e as ConnectError).rawMessage).toContain(`cannot accept blob "${missing[0]}"`);
    expect((e as ConnectError).metadata.get("sloth-error-code")).toBe("SLOTH_BLOB_MISMATCH");
  });
});
