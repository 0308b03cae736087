// Simulated agents for the registry benchmark, run as a child process (the
// parent forks this file). It speaks the Connect protocol over raw node:http2
// with pre-encoded protobuf bodies, so the load generator costs little CPU and
// the measured process is the master. All agents report one address, served
// here: a tiny Connect endpoint answering AgentService.Health, so the master's
// registration probe succeeds and agents are listed active.
import http2 from "node:http2";
import type { AddressInfo } from "node:net";

interface Start {
  cmd: "start";
  master: string;
  token: string;
  count: number;
  sessions: number;
  concurrency: number;
  intervalMs: number;
}

// --- protobuf encoding of the few messages sent (proto3, wire format) ---
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}
function bytesField(field: number, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(data.length)]), data]);
}
const str = (field: number, s: string) => bytesField(field, Buffer.from(s, "utf8"));
const uint = (field: number, n: number) => Buffer.from([...varint(field << 3), ...varint(n)]);

function registerBody(name: string, secret: Buffer, report: string, port: number): Buffer {
  const facts = Buffer.concat([str(1, `sim-${name}`), str(2, "linux"), str(3, "x64")]);
  const label = Buffer.concat([str(1, "role"), str(2, "sim")]);
  return Buffer.concat([
    str(1, name),
    str(2, report),
    str(3, "127.0.0.1"),
    uint(4, port),
    str(5, "0.1.0-sim"),
    bytesField(6, label),
    bytesField(7, facts),
    bytesField(8, secret),
  ]);
}
const heartbeatBody = (name: string, secret: Buffer) =>
  Buffer.concat([str(1, name), bytesField(2, secret)]);

/** One Connect unary call; resolves with the HTTP status. */
function unary(session: http2.ClientHttp2Session, path: string, token: string, body: Buffer) {
  return new Promise<number>((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/proto",
      "connect-protocol-version": "1",
      authorization: `Bearer ${token}`,
    });
    let status = 0;
    req.once("response", (h) => {
      status = Number(h[":status"]);
    });
    req.on("data", () => {});
    req.once("end", () => resolve(status));
    req.once("error", reject);
    req.end(body);
  });
}

/** The shared Health endpoint: an empty HealthResponse (name "") for every agent. */
async function healthServer(): Promise<{
  server: http2.Http2Server;
  port: number;
  calls(): number;
}> {
  let calls = 0;
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    stream.resume();
    if (headers[":path"] === "/sloth.agent.v1.AgentService/Health") {
      calls++;
      stream.respond({ ":status": 200, "content-type": "application/proto" });
      stream.end();
    } else {
      stream.respond({ ":status": 404, "content-type": "application/json" });
      stream.end(JSON.stringify({ code: "unimplemented", message: "simulated agent" }));
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port, calls: () => calls };
}

async function run(o: Start): Promise<void> {
  const health = await healthServer();
  const report = `127.0.0.1:${health.port}`;
  const sessions = Array.from({ length: o.sessions }, () => http2.connect(`http://${o.master}`));
  for (const s of sessions) s.on("error", () => {});
  const agents = Array.from({ length: o.count }, (_, i) => {
    const name = `sim-${String(i).padStart(5, "0")}`;
    const secret = Buffer.alloc(32, i % 251);
    secret.writeUInt32BE(i, 0);
    return {
      name,
      hb: heartbeatBody(name, secret),
      reg: registerBody(name, secret, report, health.port),
      registered: false,
    };
  });

  // Heartbeats: each registered agent once per interval, spread evenly over
  // it, from its registration on (as real agents do).
  let hbOk = 0;
  let hbErr = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let hbSkipped = 0;
  const MAX_IN_FLIGHT = 1024;
  const TICK = 20;
  // Real agents follow the interval the master's replies carry.
  let perTick = (agents.length * TICK) / o.intervalMs;
  let cursor = 0;
  let owed = 0;
  let rr = 0;
  const timer = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed--;
      const a = agents[cursor]!;
      cursor = (cursor + 1) % agents.length;
      if (!a.registered) continue;
      // A real agent's call times out; here a backlog is counted, not queued.
      if (inFlight >= MAX_IN_FLIGHT) {
        hbSkipped++;
        continue;
      }
      const session = sessions[rr++ % sessions.length]!;
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      void unary(session, "/sloth.master.v1.MasterService/Heartbeat", o.token, a.hb).then(
        (st) => {
          inFlight--;
          if (st === 200) hbOk++;
          else hbErr++;
        },
        () => {
          inFlight--;
          hbErr++;
        },
      );
    }
  }, TICK);

  // Registration with `concurrency` calls in flight over the sessions.
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  let regFailures = 0;
  const statuses: Record<string, number> = {};
  await Promise.all(
    Array.from({ length: o.concurrency }, async (_, w) => {
      const session = sessions[w % sessions.length]!;
      while (next < agents.length) {
        const a = agents[next++]!;
        try {
          const st = await unary(
            session,
            "/sloth.master.v1.MasterService/RegisterAgent",
            o.token,
            a.reg,
          );
          statuses[st] = (statuses[st] ?? 0) + 1;
          if (st === 200) a.registered = true;
          else regFailures++;
        } catch {
          regFailures++;
        }
      }
    }),
  );
  const registerMs = performance.now() - t0;
  const c = process.cpuUsage(cpu0);
  process.send?.({
    type: "registered",
    registerMs,
    regFailures,
    statuses,
    healthProbes: health.calls(),
    simCpuMs: (c.user + c.system) / 1000,
  });

  process.on("message", (m: { cmd: string; intervalMs?: number }) => {
    if (m.cmd === "interval" && m.intervalMs) {
      perTick = (agents.length * TICK) / m.intervalMs;
    } else if (m.cmd === "counters") {
      const u = process.cpuUsage();
      process.send?.({
        type: "counters",
        hbOk,
        hbErr,
        hbSkipped,
        inFlight,
        maxInFlight,
        simCpuMs: (u.user + u.system) / 1000,
        at: performance.now(),
      });
    } else if (m.cmd === "stop") {
      clearInterval(timer);
      for (const s of sessions) s.close();
      health.server.close();
      process.disconnect?.();
      setTimeout(() => process.exit(0), 200).unref();
    }
  });
}

process.once("message", (m: Start) => {
  if (m.cmd === "start") {
    run(m).catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  }
});
process.on("disconnect", () => process.exit(0));
