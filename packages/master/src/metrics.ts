import type { Interceptor } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { AgentRegistry } from "./registry.js";

/** Prometheus metrics of one master. */
export interface MasterMetrics {
  registry: Registry;
  /** Counts and times every RPC. */
  interceptor: Interceptor;
  /** Counts a call handled outside the Connect handler (the relay's fast path). */
  record(method: string, code: string, seconds: number): void;
}

/** Creates the master's metrics: agents by status, RPC counts and latencies, runs in flight. */
export function createMasterMetrics(
  agents: AgentRegistry,
  runsInFlight: () => number,
): MasterMetrics {
  const registry = new Registry();
  new Gauge({
    name: "sloth_master_agents",
    help: "Registered agents by status",
    labelNames: ["status"],
    registers: [registry],
    collect() {
      const counts = agents.counts();
      for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: "sloth_master_runs_in_flight",
    help: "Commands being relayed to agents now",
    registers: [registry],
    collect() {
      this.set(runsInFlight());
    },
  });
  const calls = new Counter({
    name: "sloth_master_rpc_total",
    help: "RPCs handled, by method and code",
    labelNames: ["method", "code"],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: "sloth_master_rpc_duration_seconds",
    help: "RPC handling time until the response (or the end of the stream), by method",
    labelNames: ["method"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers: [registry],
  });
  const interceptor: Interceptor = (next) => async (req) => {
    const method = req.method.name;
    const end = seconds.startTimer({ method });
    try {
      const res = await next(req);
      if (!res.stream) {
        calls.inc({ method, code: "OK" });
        end();
      } else {
        // A stream is counted when it ends, with the code it ended with.
        const inner = res.message;
        return {
          ...res,
          message: (async function* () {
            let code = "OK";
            try {
              yield* inner;
            } catch (e) {
              code = codeName(e);
              throw e;
            } finally {
              calls.inc({ method, code });
              end();
            }
          })(),
        };
      }
      return res;
    } catch (e) {
      calls.inc({ method, code: codeName(e) });
      end();
      throw e;
    }
  };
  const record = (method: string, code: string, secs: number) => {
    calls.inc({ method, code });
    seconds.observe({ method }, secs);
  };
  return { registry, interceptor, record };
}

function codeName(e: unknown): string {
  return e instanceof ConnectError ? (Code[e.code] ?? String(e.code)) : "unknown";
}
