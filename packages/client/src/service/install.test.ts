import path from "node:path";
import { describe, expect, it } from "vitest";
import { serviceArgs } from "./install.js";

describe("serviceArgs", () => {
  it("drops install-only flags, makes paths absolute and carries the data directory", () => {
    const warnings: string[] = [];
    const args = serviceArgs(
      [
        "install-service",
        "--name",
        "w",
        "--token-file",
        "tok",
        "--tls-ca=ca/ca.crt",
        "--print",
        "--user",
        "svc",
        "--unit-dir",
        "/x",
        "--daemon",
      ],
      ["install-service"],
      { SLOTH_RUNNER_DATA_DIR: "data" },
      (m) => warnings.push(m),
    );
    expect(args).toEqual([
      "--name",
      "w",
      "--token-file",
      path.resolve("tok"),
      `--tls-ca=${path.resolve("ca/ca.crt")}`,
      "--data-dir",
      path.resolve("data"),
    ]);
    expect(warnings).toEqual([
      `--token-file ${path.resolve("tok")} does not exist on this machine; the service will need it`,
      `--tls-ca ${path.resolve("ca/ca.crt")} does not exist on this machine; the service will need it`,
    ]);
  });

  it("keeps an explicit --data-dir over the environment's", () => {
    expect(
      serviceArgs(["--data-dir", "/srv/sloth"], [], { SLOTH_RUNNER_DATA_DIR: "/other" }),
    ).toEqual(["--data-dir", "/srv/sloth"]);
  });
});
