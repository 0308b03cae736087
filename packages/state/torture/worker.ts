// A torture-test worker: repeatedly takes the lock, writes to the protected
// resource (the parent process) with its fencing token, and increments a
// counter, reporting each acknowledged increment. Run with
// `node --import tsx --conditions=source worker.ts FILE CYCLES TTL_MS`.
import { setTimeout as sleep } from "node:timers/promises";
import { openState } from "../src/index.js";

const [file, cyclesArg, ttlArg] = process.argv.slice(2);
const cycles = Number(cyclesArg);
const ttl = Number(ttlArg);
if (!file || !(cycles >= 0) || !(ttl > 0) || !process.send) {
  throw new Error("usage: worker.ts FILE CYCLES TTL_MS (with an IPC channel)");
}
const send = process.send.bind(process);

type Reply = { id: number; accepted: boolean };
const pending = new Map<number, (accepted: boolean) => void>();
let nextId = 0;
process.on("message", (m: Reply) => pending.get(m.id)?.(m.accepted));

/** Asks the resource and waits for its verdict, so causality is preserved. */
function request(msg: Record<string, unknown>): Promise<boolean> {
  const id = ++nextId;
  return new Promise((resolve) => {
    pending.set(id, (accepted) => {
      pending.delete(id);
      resolve(accepted);
    });
    send({ ...msg, id });
  });
}

const store = await openState({ path: file, busyTimeoutMs: 30_000 });
for (let i = 0; i < cycles; i++) {
  await request({ t: "cycle" });
  const lease = await store.lock("resource", { ttl, waitMs: 120_000, autoRenew: true });
  const token = lease.fencingToken;
  const rejected = (step: string) =>
    send({ t: "rejected", step, token, expiredLocally: Date.now() > lease.expiresAt.getTime() });
  if (await request({ t: "begin", token })) {
    await sleep(Math.random() * 3);
    const value = await store.increment("counter");
    send({ t: "ack", value });
    if (!(await request({ t: "end", token }))) rejected("end");
  } else {
    rejected("begin");
  }
  await lease[Symbol.asyncDispose]();
  send({ t: "done" });
}
await store.close();
process.disconnect();
