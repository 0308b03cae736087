import { describe, expect, it } from "vitest";
import { migrateWithRetry } from "./sqlite.js";

describe("migrateWithRetry", () => {
  it("tries again after losing a migration race, and only then", () => {
    let calls = 0;
    migrateWithRetry(() => {
      calls++;
      if (calls < 3)
        throw Object.assign(new Error("Failed to run the query 'ALTER TABLE x ADD y'"), {
          cause: new Error("duplicate column name: y"),
        });
    });
    expect(calls).toBe(3);
    let other = 0;
    expect(() =>
      migrateWithRetry(() => {
        other++;
        throw new Error("file is not a database");
      }),
    ).toThrow("file is not a database");
    expect(other).toBe(1);
    let busy = 0;
    expect(() =>
      migrateWithRetry(() => {
        busy++;
        throw Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" });
      }, 3),
    ).toThrow("database is locked");
    expect(busy).toBe(3);
  });
});
