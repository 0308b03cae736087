import os from "node:os";

/** Facts about this host sent at registration (SystemFacts in the protocol). */
export interface SystemFactsInit {
  hostname: string;
  os: string;
  arch: string;
  kernel: string;
  cpus: number;
  memoryBytes: bigint;
  nodeVersion: string;
}

/** Collects the host facts reported to the master. */
export function systemFacts(): SystemFactsInit {
  return {
    hostname: os.hostname(),
    os: os.platform(),
    arch: os.arch(),
    kernel: os.release(),
    cpus: os.availableParallelism(),
    memoryBytes: BigInt(os.totalmem()),
    nodeVersion: process.version,
  };
}
