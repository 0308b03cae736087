import http from "node:http";
import type { AddressInfo } from "node:net";
import { answerMetrics, SlothError } from "@sloth/client";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Prometheus metrics of one agent. */
export interface AgentPrometheus {
  registry: Registry;
  /** Records a finished command: "ok", "failed", "signal", "timeout" or "start-error". */
  commandFinished(result: string, durationMs: number): void;
  /** Counts output bytes relayed, by stream. */
  output(stream: "stdout" | "stderr", bytes: number): void;
}

/** Creates the agent's metrics; `running()` reports commands in flight. */
export function createAgentPrometheus(running: () => number): AgentPrometheus {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "sloth_agent_" });
  new Gauge({
    name: "sloth_agent_commands_running",
    help: "Commands running now",
    registers: [registry],
    collect() {
      this.set(running());
    },
  });
  const finished = new Counter({
    name: "sloth_agent_commands_total",
    help: "Commands finished, by result",
    labelNames: ["result"],
    registers: [registry],
  });
  const seconds = new Histogram({
    name: "sloth_agent_command_duration_seconds",
    help: "Command wall time",
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
    registers: [registry],
  });
  const bytes = new Counter({
    name: "sloth_agent_output_bytes_total",
    help: "Output bytes streamed to callers, by stream",
    labelNames: ["stream"],
    registers: [registry],
  });
  return {
    registry,
    commandFinished(result, durationMs) {
      finished.inc({ result });
      seconds.observe(durationMs / 1000);
    },
    output(stream, n) {
      bytes.inc({ stream }, n);
    },
  };
}

/** Serves `GET /metrics` over HTTP/1.1 on `host:port`; returns the bound port and a closer. */
export async function serveMetrics(
  metrics: AgentPrometheus,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (answerMetrics(req, res, metrics.registry)) return;
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new SlothError("SLOTH_PORT_IN_USE", `metrics port ${port} is already in use`, {
              cause: e,
              hint: "choose another with --metrics-port",
              details: { port },
            })
          : e,
      ),
    );
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
