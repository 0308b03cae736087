// Writes keys as fast as it can and prints each one only after its write
// resolved, until it is killed. Run with
// `node --import tsx --conditions=source crash-writer.ts FILE PREFIX`.
import { openState } from "../src/index.js";

const [file, prefix] = process.argv.slice(2);
if (!file || !prefix) throw new Error("usage: crash-writer.ts FILE PREFIX");
const store = await openState({ path: file });
const pad = "x".repeat(200);
for (let i = 0; ; i++) {
  const key = `${prefix}/${i}`;
  if (i % 3 === 0) await store.set(key, { i, pad });
  else if (i % 3 === 1) await store.cas(key, undefined, { i, pad });
  else {
    // A killed predecessor may still hold the lock until its short TTL runs out.
    await store.withLock(
      "crash",
      async () => {
        await store.set(key, { i, pad });
      },
      { ttl: 200, waitMs: 5000 },
    );
  }
  // Pipes are written synchronously on Linux: a printed key reached the parent.
  process.stdout.write(`${key}\n`);
}
