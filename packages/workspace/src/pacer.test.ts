import { expect, it } from "vitest";
import { Pacer } from "./pacer.js";

it("lets the event loop run during a long synchronous loop", async () => {
  let ran = false;
  setImmediate(() => {
    ran = true;
  });
  const pacer = new Pacer();
  const end = performance.now() + 60;
  let pauses = 0;
  while (performance.now() < end) {
    if (pacer.due()) {
      await pacer.pause();
      pauses++;
    }
  }
  expect(ran).toBe(true);
  expect(pauses).toBeGreaterThanOrEqual(1);
});
