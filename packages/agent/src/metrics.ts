import fs from "node:fs";
import os from "node:os";

/** A snapshot of the agent host and process, as GetMetrics reports it. */
export interface HostMetrics {
  cpuPercent: number;
  cpuCount: number;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  diskPath: string;
  diskTotalBytes: number;
  diskUsedBytes: number;
  load1: number;
  load5: number;
  load15: number;
  uptimeSeconds: number;
  processUptimeSeconds: number;
  processRssBytes: number;
  collectedAt: Date;
}

interface CpuTimes {
  busy: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

/**
 * Samples CPU time once a second so GetMetrics can answer at once with the
 * busy percentage of the last second, instead of making each caller wait
 * for a fresh interval.
 */
export class CpuSampler {
  private previous = cpuTimes();
  private latest = this.previous;
  private timer: NodeJS.Timeout | undefined;

  start(intervalMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.previous = this.latest;
      this.latest = cpuTimes();
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Busy percentage (0-100) across all cores over the last interval. */
  percent(): number {
    let from = this.previous;
    let to = this.latest;
    if (to.total - from.total <= 0) {
      // Not sampled yet (just started): measure since construction.
      from = this.previous;
      to = cpuTimes();
    }
    const total = to.total - from.total;
    if (total <= 0) return 0;
    return Math.min(100, Math.max(0, ((to.busy - from.busy) / total) * 100));
  }
}

/** Memory in use: total minus what the kernel could hand out (MemAvailable). */
function memoryUsed(total: number): number {
  try {
    const text = fs.readFileSync("/proc/meminfo", "utf8");
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(text);
    if (m?.[1]) return Math.max(0, total - Number(m[1]) * 1024);
  } catch {
    // Not Linux: fall back to free memory, which undercounts caches.
  }
  return total - os.freemem();
}

/** Collects host metrics; disk figures are for the file system holding `diskPath`. */
export function collectMetrics(sampler: CpuSampler, diskPath: string): HostMetrics {
  const memoryTotalBytes = os.totalmem();
  let diskTotalBytes = 0;
  let diskUsedBytes = 0;
  try {
    const st = fs.statfsSync(diskPath);
    diskTotalBytes = st.blocks * st.bsize;
    diskUsedBytes = (st.blocks - st.bfree) * st.bsize;
  } catch {
    // The directory vanished; report zeros rather than fail the whole call.
  }
  const [load1 = 0, load5 = 0, load15 = 0] = os.loadavg();
  return {
    cpuPercent: sampler.percent(),
    cpuCount: os.availableParallelism(),
    memoryTotalBytes,
    memoryUsedBytes: memoryUsed(memoryTotalBytes),
    diskPath,
    diskTotalBytes,
    diskUsedBytes,
    load1,
    load5,
    load15,
    uptimeSeconds: Math.floor(os.uptime()),
    processUptimeSeconds: Math.floor(process.uptime()),
    processRssBytes: process.memoryUsage.rss(),
    collectedAt: new Date(),
  };
}
