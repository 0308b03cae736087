import { describe, expect, it } from "vitest";
import { parseDelegateTo } from "./delegate.js";
import { parseDuration } from "./duration.js";
import { SourceIndex } from "./source-index.js";

describe("parseDelegateTo", () => {
  it.each([
    ["an agent name", "build-1", { target: { kind: "agent", name: "build-1" } }],
    [
      "an address",
      { address: "10.0.0.5:50051" },
      { target: { kind: "address", address: "10.0.0.5:50051" } },
    ],
    [
      "an IPv6 address",
      { address: "[::1]:50051", fallback: "local" },
      { target: { kind: "address", address: "[::1]:50051" }, fallback: "local" },
    ],
    [
      "an address given as a string (agent names never hold ':')",
      "127.0.0.1:47151",
      { target: { kind: "address", address: "127.0.0.1:47151" } },
    ],
    ["a list", ["a", "b"], { target: { kind: "agents", names: ["a", "b"] } }],
    [
      "a list with fallback",
      { "1": "a", "2": "b", fallback: "local" },
      { target: { kind: "agents", names: ["a", "b"] }, fallback: "local" },
    ],
    ["agents", { agents: ["a"] }, { target: { kind: "agents", names: ["a"] } }],
    ["an agent table", { agent: "a" }, { target: { kind: "agent", name: "a" } }],
    [
      "labels",
      { labels: { role: "web", tier: 2 } },
      { target: { kind: "labels", labels: { role: "web", tier: "2" }, all: false } },
    ],
    [
      "labels, all",
      { labels: { role: "web" }, all: true },
      { target: { kind: "labels", labels: { role: "web" }, all: true } },
    ],
  ])("reads %s", (_, input, expected) => {
    expect(parseDelegateTo(input)).toEqual(expected);
  });

  it.each([
    ["a number", 42, /must be an agent name, a list of names or a table, got 42/],
    ["an empty name", "", /non-empty string/],
    ["a name with spaces", "a b", /contains spaces/],
    ["an empty list", {}, /needs one of address, agent, agents, labels or a list of names/],
    ["a port out of range", { address: "h:70000" }, /'h:70000' is not host:port/],
    ["an address without a port", { address: "h" }, /'h' is not host:port/],
    ["all without labels", { agent: "a", all: true }, /all only goes with labels/],
    ["empty labels", { labels: {} }, /labels must be a non-empty table/],
    [
      "an unknown key",
      { adress: "h:1" },
      /unknown field 'adress'; valid fields: address, agent, agents, labels, all, fallback/,
    ],
    ["two forms", { address: "h:1", labels: { a: "b" } }, /mixes address and labels/],
    ["a string that is not host:port", "h:x", /'h:x' is not host:port/],
    ["an address in a list of names", ["a", "h:1"], /agent name 'h:1' is an address/],
  ])("rejects %s", (_, input, message) => {
    expect(() => parseDelegateTo(input)).toThrow(message);
  });
});

describe("parseDuration", () => {
  it.each([
    [30, 30_000],
    ["30", 30_000],
    ["250ms", 250],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
  ])("%s", (input, ms) => {
    expect(parseDuration(input, "s")).toBe(ms);
  });

  it.each(["", "soon", "5x", "-1s", "1h 30m"])("rejects %j", (input) => {
    expect(() => parseDuration(input)).toThrow(/invalid duration/);
  });
});

describe("SourceIndex", () => {
  it("finds keys past comments and strings, with their enclosing keys", () => {
    const index = new SourceIndex(`-- beta = {
TaskDefinitions = {
  --[[ alpha = { ]]
  beta = { tasks = { x = { command = "y = {" }, ["w"] = {} } },
  alpha = {
    tasks = { { name = "n1" }, x = {} },
  },
}
local s = [[ gamma = { ]]
`);
    expect(index.group("beta")).toMatchObject({ line: 4 });
    expect(index.group("alpha")).toMatchObject({ line: 5 });
    expect(index.group("gamma")).toBeUndefined();
    expect(index.keyedTask("x", "alpha")).toMatchObject({ line: 6 });
    expect(index.keyedTask("x", "beta")).toMatchObject({ line: 4 });
    expect(index.keyedTask("w", "beta")).toMatchObject({ line: 4 });
    expect(index.nameLine("n1")).toBe(6);
  });
});
