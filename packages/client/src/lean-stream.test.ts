import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { AgentService, OutputStream, type RunCommandRequest } from "@sloth/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthInterceptor } from "./auth.js";
import { fromConnectError, toConnectError } from "./connect-errors.js";
import { SlothError } from "./errors.js";
import { connect, type SlothConnection } from "./transport.js";

// A real Connect server whose RunCommand plays the script named by the
// command; the lean path and the plain Connect transport must see the same.
const TOKEN = "lean-stream-test-token-0123456789";
const seen: { command: string; aborted: boolean }[] = [];

async function* script(req: RunCommandRequest, ctx: HandlerContext) {
  const command = req.spec?.command ?? "";
  const entry = { command, aborted: false };
  seen.push(entry);
  ctx.signal.addEventListener("abort", () => (entry.aborted = true));
  yield { event: { event: { case: "started" as const, value: { pid: 42, agentName: "t" } } } };
  if (command === "many") {
    // Sizes that cross frame and chunk boundaries.
    for (let i = 0; i < 300; i++) {
      const data = new Uint8Array((i * 7919) % 70_000).fill(i % 251);
      yield {
        event: {
          event: { case: "output" as const, value: { stream: OutputStream.STDOUT, data } },
        },
      };
    }
    yield {
      event: {
        event: { case: "exit" as const, value: { exitCode: 3, signal: "", durationMs: 5 } },
      },
    };
  } else if (command === "fail") {
    throw toConnectError(
      new SlothError("SLOTH_AGENT_NOT_FOUND", "no agent named 'x'", { hint: "list them" }),
    );
  } else if (command === "drop") {
    // The server goes away mid-call: every connection dropped.
    setTimeout(() => {
      for (const session of sessions) session.destroy();
    }, 50);
    await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
  } else if (command === "hang") {
    await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
  }
}

let server: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let address: string;
const open: SlothConnection[] = [];

beforeAll(async () => {
  server = http2.createServer(
    connectNodeAdapter({
      interceptors: [createAuthInterceptor({ token: TOKEN })],
      routes: (router) => {
        router.service(AgentService, {
          runCommand: script,
          health: async () => ({}),
        } as never);
      },
    }),
  );
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const c of open) c.close();
  // The reference transport's session is not ours to close.
  for (const s of sessions) s.destroy();
  await new Promise((r) => server.close(r));
});

/** A connection through `connect()` (lean once up), warmed so the lean path is taken. */
async function leanClient(token = TOKEN) {
  const conn = connect({ address, token });
  open.push(conn);
  await conn.sessionManager.connect();
  expect(["open", "idle"]).toContain(conn.sessionManager.state());
  return createClient(AgentService, conn.transport);
}

/** The plain Connect transport, as reference. */
function plainClient(token = TOKEN) {
  return createClient(
    AgentService,
    createConnectTransport({
      baseUrl: `http://${address}`,
      httpVersion: "2",
      useBinaryFormat: true,
      interceptors: [
        (next) => (req) => {
          req.header.set("authorization", `Bearer ${token}`);
          return next(req);
        },
      ],
    }),
  );
}

type Client = ReturnType<typeof plainClient>;

async function collect(client: Client, command: string, options = {}) {
  const events: unknown[] = [];
  try {
    for await (const r of client.runCommand({ spec: { command } }, options)) events.push(r.event);
    return { events };
  } catch (e) {
    return { events, error: ConnectError.from(e) };
  }
}

describe("lean server streams", () => {
  it("yields the same messages as the Connect transport, across frame boundaries", async () => {
    const lean = await collect(await leanClient(), "many");
    const plain = await collect(plainClient(), "many");
    expect(lean.error).toBeUndefined();
    expect(lean.events).toHaveLength(302);
    // Bytes fields are views into the received frames: compared by content.
    const flat = (events: unknown[]) =>
      events.map((e) =>
        JSON.stringify(e, function (this: Record<string, unknown>, k, v) {
          const raw = this[k];
          if (raw instanceof Uint8Array) return Buffer.from(raw).toString("base64");
          return typeof v === "bigint" ? String(v) : v;
        }),
      );
    expect(flat(lean.events)).toEqual(flat(plain.events));
    // Bytes come as Buffers, as from the Connect transport.
    const data = (lean.events[2] as { event: { value: { data: unknown } } }).event.value.data;
    expect(Buffer.isBuffer(data)).toBe(true);
  });

  it("reports a server error with its code, message and metadata", async () => {
    const lean = await collect(await leanClient(), "fail");
    const plain = await collect(plainClient(), "fail");
    expect(lean.events).toHaveLength(1);
    expect(lean.error?.code).toBe(Code.NotFound);
    expect(lean.error?.rawMessage).toBe(plain.error?.rawMessage);
    const target = { kind: "agent" as const, address };
    const a = fromConnectError(lean.error, target);
    const b = fromConnectError(plain.error, target);
    expect([a.code, a.message, a.hint]).toEqual([b.code, b.message, b.hint]);
    expect(a.code).toBe("SLOTH_AGENT_NOT_FOUND");
  });

  it("refuses a bad token as the Connect transport does", async () => {
    const lean = await collect(await leanClient("wrong-token-wrong-token-wrong"), "many");
    expect(lean.error?.code).toBe(Code.Unauthenticated);
    expect(lean.error?.rawMessage).toBe("invalid token");
  });

  it("ends a call at its deadline, cancelling it on the server", async () => {
    const t = performance.now();
    const lean = await collect(await leanClient(), "hang", { timeoutMs: 150 });
    expect(lean.error?.code).toBe(Code.DeadlineExceeded);
    expect(performance.now() - t).toBeLessThan(5_000);
    await expect.poll(() => seen.filter((s) => s.command === "hang").at(-1)?.aborted).toBe(true);
  });

  it("cancels on the caller's signal", async () => {
    const client = await leanClient();
    const ac = new AbortController();
    const pending = collect(client, "hang", { signal: ac.signal });
    await expect.poll(() => seen.filter((s) => s.command === "hang").length).toBeGreaterThan(1);
    ac.abort();
    const r = await pending;
    expect(r.error?.code).toBe(Code.Canceled);
    await expect.poll(() => seen.filter((s) => s.command === "hang").at(-1)?.aborted).toBe(true);
  });

  it("cancels when the signal is aborted while the stream is being opened", async () => {
    const client = await leanClient();
    const ac = new AbortController();
    const before = seen.length;
    const pending = collect(client, "hang", { signal: ac.signal });
    // The lean path awaits the session before the stream exists.
    ac.abort();
    const r = await pending;
    expect(r.error?.code).toBe(Code.Canceled);
    // Either the request never reached the server, or it was cancelled there.
    await expect
      .poll(() => seen.slice(before).every((s) => s.aborted), { timeout: 10_000 })
      .toBe(true);
  });

  it("reports a connection lost mid-call as Unavailable, not as a protocol error", async () => {
    const r = await collect(await leanClient(), "drop");
    expect(r.events).toHaveLength(1);
    expect(r.error?.code).toBe(Code.Unavailable);
    expect(r.error?.rawMessage).not.toMatch(/protocol error/);
  });

  it("still names an unreachable server through the Connect path", async () => {
    const conn = connect({ address: "127.0.0.1:1", token: TOKEN });
    open.push(conn);
    const r = await collect(createClient(AgentService, conn.transport), "many");
    expect(r.error?.code).toBe(Code.Unavailable);
    expect(fromConnectError(r.error, { kind: "agent", address: "127.0.0.1:1" }).message).toBe(
      "cannot reach agent at 127.0.0.1:1: connection refused",
    );
  });
});
