import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { agentClient, connect } from "@sloth/client";
import { MasterService } from "@sloth/proto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { main } from "./main.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const launcher = path.join(here, "../test/run-source.ts");
const TOKEN = "agentd-test-token-5f3a9c";

interface Daemon {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const daemons: Daemon[] = [];
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) {
    if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill("SIGKILL");
    await d.exited;
  }
  for (const c of cleanups.splice(0)) await c();
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sloth-agentd-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function agentd(args: string[], env: Record<string, string> = {}): Daemon {
  const child = spawn(
    process.execPath,
    ["--conditions=source", "--import", "tsx", launcher, ...args],
    {
      cwd: here,
      env: { ...process.env, SLOTH_RUNNER_TOKEN: "", SLOTH_RUNNER_MASTER_ADDR: "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("close", (code) => resolve(code)),
  );
  const d = { child, stdout: () => out, stderr: () => err, exited };
  daemons.push(d);
  return d;
}

async function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts agentd on an ephemeral port and returns its port, read from its log. */
/** Flags for an agentd on a free loopback port, its master unreachable, in `dataDir`. */
const alone = (dataDir: string) => [
  "--port",
  "0",
  "--bind-address",
  "127.0.0.1",
  "--master",
  "127.0.0.1:1",
  "--data-dir",
  dataDir,
];

async function startDaemon(extra: string[] = [], env: Record<string, string> = {}) {
  const dataDir = tempDir();
  const d = agentd([...alone(dataDir), ...extra], { SLOTH_RUNNER_TOKEN: TOKEN, ...env });
  const port = await waitFor(
    () => {
      const m = /agent listening on 127\.0\.0\.1:(\d+)/.exec(d.stderr());
      return m ? Number(m[1]) : undefined;
    },
    30_000,
    `agentd to listen (stderr: ${d.stderr()})`,
  );
  const conn = connect({ address: `127.0.0.1:${port}`, token: TOKEN });
  cleanups.push(() => conn.close());
  return { d, port, client: agentClient(conn), dataDir };
}

describe("sloth-agentd", () => {
  it("serves commands and stops on SIGTERM", async () => {
    const { d, client, dataDir } = await startDaemon(["--name", "box1", "--label", "env=test"]);
    let out = "";
    for await (const res of client.runCommand({ spec: { command: "echo hello" } })) {
      const ev = res.event?.event;
      if (ev?.case === "output") out += Buffer.from(ev.value.data).toString();
    }
    expect(out).toBe("hello\n");
    expect(fs.statSync(path.join(dataDir, "agents/box1/identity")).mode & 0o777).toBe(0o600);
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    expect(d.stderr()).toContain('"msg":"agent stopped"');
    expect(d.stderr()).not.toContain(TOKEN);
  });

  it("logs readable lines with --log-format text, warnings marked, the token never", async () => {
    const dataDir = tempDir();
    const d = agentd(["--log-format", "text", "--name", "plain1", ...alone(dataDir)], {
      SLOTH_RUNNER_TOKEN: TOKEN,
    });
    const port = await waitFor(
      () => /^Agent 'plain1' listening on 127\.0\.0\.1:(\d+)$/m.exec(d.stderr())?.[1],
      30_000,
      `agentd to listen (stderr: ${d.stderr()})`,
    );
    // No master answers at 127.0.0.1:1: the agent says so and retries.
    await waitFor(
      () =>
        /^warning: cannot register: cannot reach master at 127\.0\.0\.1:1: connection refused; .*\(retrying in \S+\)$/m.test(
          d.stderr(),
        ) || undefined,
      30_000,
      `a registration warning (stderr: ${d.stderr()})`,
    );
    const conn = connect({ address: `127.0.0.1:${port}`, token: TOKEN });
    cleanups.push(() => conn.close());
    expect((await agentClient(conn).health({})).name).toBe("plain1");
    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    const lines = d.stderr().trim().split("\n");
    expect(lines.at(-2)).toBe("Agent 'plain1' stopping");
    expect(lines.at(-1)).toBe("Agent 'plain1' stopped");
    // Not a JSON line among them.
    expect(lines.filter((l) => l.startsWith("{"))).toEqual([]);
    expect(d.stderr()).not.toContain(TOKEN);

    const bad = agentd(["--log-format", "yaml"], { SLOTH_RUNNER_TOKEN: TOKEN });
    expect(await bad.exited).toBe(2);
    expect(bad.stderr()).toBe(
      'error: invalid value "yaml" for --log-format: choose one of "json", "text"; run `sloth-agentd --help` to see the usage\n',
    );
  });

  it("exits 0 after a Shutdown call", async () => {
    const { d, client } = await startDaemon();
    await client.shutdown({});
    expect(await d.exited).toBe(0);
  });

  it("reads the token from --token-file and refuses other tokens", async () => {
    const dir = tempDir();
    const file = path.join(dir, "token");
    fs.writeFileSync(file, "file-token-0123456789\n", { mode: 0o600 });
    const { d, port } = await startDaemon(["--token-file", file], { SLOTH_RUNNER_TOKEN: "" });
    const good = connect({ address: `127.0.0.1:${port}`, token: "file-token-0123456789" });
    cleanups.push(() => good.close());
    expect((await agentClient(good).health({})).runningCommands).toBe(0);
    await agentClient(good).getMetrics({});
    const bad = connect({ address: `127.0.0.1:${port}`, token: TOKEN });
    cleanups.push(() => bad.close());
    const err = await agentClient(bad)
      .getMetrics({})
      .catch((e: unknown) => e);
    expect(ConnectError.from(err).code).toBe(Code.Unauthenticated);
    d.child.kill("SIGINT");
    expect(await d.exited).toBe(0);
  });

  it("says when the port is in use", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const port = (holder.address() as AddressInfo).port;
    const d = agentd(
      ["--port", String(port), "--bind-address", "127.0.0.1", "--data-dir", tempDir()],
      {
        SLOTH_RUNNER_TOKEN: TOKEN,
      },
    );
    expect(await d.exited).toBe(1);
    expect(d.stderr()).toBe(`error: port ${port} is already in use; choose another with --port\n`);
  });

  it("stops with exit 1 when its name is held by another agent", async () => {
    const server = http2.createServer(
      connectNodeAdapter({
        routes(router) {
          router.service(MasterService, {
            registerAgent(req) {
              throw new ConnectError(
                `agent name '${req.name}' is held by another agent`,
                Code.AlreadyExists,
              );
            },
          });
        },
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const masterPort = (server.address() as AddressInfo).port;
    const d = agentd(
      [
        "--name",
        "web1",
        "--port",
        "0",
        "--bind-address",
        "127.0.0.1",
        "--master",
        `127.0.0.1:${masterPort}`,
        "--data-dir",
        tempDir(),
      ],
      { SLOTH_RUNNER_TOKEN: TOKEN },
    );
    expect(await d.exited).toBe(1);
    const lines = d.stderr().trimEnd().split("\n");
    expect(lines.at(-1)).toBe(
      "error: agent name 'web1' is held by another agent; run `sloth-runner agent delete web1`",
    );
  });
});

/** Runs main() in this process, capturing stdout, stderr and the exit code. */
async function mainInProcess(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  const out: string[] = [];
  const err: string[] = [];
  const outSpy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  const errSpy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  Object.assign(process.env, { SLOTH_RUNNER_TOKEN: "", SLOTH_RUNNER_MASTER_ADDR: "", ...env });
  try {
    await main(args);
    return { code: process.exitCode ?? 0, stdout: out.join(""), stderr: err.join("") };
  } finally {
    process.exitCode = undefined;
    outSpy.mockRestore();
    errSpy.mockRestore();
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
}

describe("sloth-agentd, errors before starting", () => {
  it("prints its version", async () => {
    const r = await mainInProcess(["--version"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it.each([
    [
      ["--label", "novalue"],
      1,
      "error: invalid label 'novalue': expected KEY=VALUE; pass labels as --label env=prod\n",
    ],
    [
      ["--bogus"],
      2,
      "error: unknown option: --bogus; run `sloth-agentd --help` to see the usage\n",
    ],
    [["--master", "nohost:"], 1, /^error: invalid address 'nohost:'[^\n]*\n$/],
    [
      ["--port", "70000"],
      1,
      "error: invalid port '70000': expected 0-65535; choose another with --port\n",
    ],
    [["--name", "../x"], 1, /^error: invalid agent name '\.\.\/x'[^\n]*\n$/],
  ] as const)("rejects bad input %j", async (args, code, message) => {
    const r = await mainInProcess([...args, "--data-dir", tempDir()], {
      SLOTH_RUNNER_TOKEN: TOKEN,
    });
    expect(r.code).toBe(code);
    if (typeof message === "string") expect(r.stderr).toBe(message);
    else expect(r.stderr).toMatch(message);
  });

  it("says where to find a token when there is none", async () => {
    const dataDir = tempDir();
    const r = await mainInProcess(["--data-dir", dataDir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: no cluster token found; pass --token-file FILE or set SLOTH_RUNNER_TOKEN (the master writes it to ${dataDir}/master/token)\n`,
    );
  });
});
