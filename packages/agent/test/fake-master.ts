import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createAuthInterceptor } from "@sloth/client";
import { MasterService, type RegisterAgentRequest } from "@sloth/proto";
import { TEST_TOKEN } from "./helpers.js";

/**
 * A minimal MasterService for the agent's registration logic, until tests
 * can use the real master: it keeps names and secrets in memory.
 */
export interface FakeMaster {
  port: number;
  address: string;
  /** Every registration request received, in order. */
  registrations: RegisterAgentRequest[];
  heartbeats: number;
  /** Registered names and their secrets (hex); delete to "forget" an agent. */
  agents: Map<string, string>;
  close(): Promise<void>;
}

/** Starts a fake master on 127.0.0.1 (`port` 0: any free port). */
export async function startFakeMaster(
  options: { port?: number; heartbeatIntervalMs?: number; agents?: Map<string, string> } = {},
): Promise<FakeMaster> {
  const agents = options.agents ?? new Map<string, string>();
  const state = { registrations: [] as RegisterAgentRequest[], heartbeats: 0 };
  const server = http2.createServer(
    connectNodeAdapter({
      interceptors: [createAuthInterceptor({ token: TEST_TOKEN })],
      routes(router) {
        router.service(MasterService, {
          registerAgent(req) {
            state.registrations.push(req);
            const secret = Buffer.from(req.identitySecret).toString("hex");
            const held = agents.get(req.name);
            if (held !== undefined && held !== secret) {
              throw new ConnectError(
                `agent name '${req.name}' is held by another agent`,
                Code.AlreadyExists,
              );
            }
            agents.set(req.name, secret);
            return {
              agent: { name: req.name },
              heartbeatIntervalMs: BigInt(options.heartbeatIntervalMs ?? 50),
              heartbeatJitterPercent: 0,
            };
          },
          heartbeat(req) {
            state.heartbeats++;
            if (agents.get(req.name) !== Buffer.from(req.identitySecret).toString("hex")) {
              throw new ConnectError(`agent '${req.name}' not found`, Code.NotFound);
            }
            return { heartbeatIntervalMs: 0n };
          },
        });
      },
    }),
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    get registrations() {
      return state.registrations;
    },
    get heartbeats() {
      return state.heartbeats;
    },
    agents,
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sessions) s.destroy();
      });
    },
  };
}

/** A free port on 127.0.0.1, found by listening on port 0 and closing. */
export async function freePort(): Promise<number> {
  const m = await startFakeMaster();
  await m.close();
  return m.port;
}
