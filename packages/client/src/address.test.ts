import { describe, expect, it } from "vitest";
import { formatHostPort, parseHostPort } from "./address.js";
import { parseDuration } from "./duration.js";
import { isSlothError } from "./errors.js";

describe("parseHostPort", () => {
  it.each([
    ["localhost:50053", "localhost", 50053],
    ["192.168.1.29:50053", "192.168.1.29", 50053],
    ["master.example.com:1", "master.example.com", 1],
    ["[::1]:65535", "::1", 65535],
    ["[fe80::1:2]:80", "fe80::1:2", 80],
    [" web-1:22 ", "web-1", 22],
  ])("accepts %s", (input, host, port) => {
    expect(parseHostPort(input)).toEqual({ host, port });
  });

  it.each([
    ["localhost", "missing ':PORT'"],
    ["localhost:0", "port 0 is outside 1-65535"],
    ["localhost:65536", "port 65536 is outside 1-65535"],
    ["localhost:http", "port 'http' is not a number"],
    [":50053", "missing host"],
    ["::1:50053", "put IPv6 addresses in brackets"],
    ["[::1]50053", "expected [IPv6]:PORT"],
    ["[zz::1]:5", "'zz::1' is not an IPv6 address"],
    ["bad_host:5", "'bad_host' is not a valid host name or IPv4 address"],
    ["300.1.1.1:5", "'300.1.1.1' is not a valid host name or IPv4 address"],
    ["-x:5", "'-x' is not a valid host name"],
    ["http://127.0.0.1:50053", "a URL, where HOST:PORT is expected (leave out the scheme)"],
    ["https://master.example.com:443", "a URL, where HOST:PORT is expected"],
  ])("rejects %s", (input, reason) => {
    let err: unknown;
    try {
      parseHostPort(input);
    } catch (e) {
      err = e;
    }
    expect(isSlothError(err, "SLOTH_INVALID_ADDRESS")).toBe(true);
    expect((err as Error).message).toContain(reason);
  });

  it("formats IPv6 in brackets", () => {
    expect(formatHostPort("::1", 5)).toBe("[::1]:5");
    expect(formatHostPort("10.0.0.1", 5)).toBe("10.0.0.1:5");
  });
});

describe("parseDuration", () => {
  it.each([
    ["250ms", 250],
    ["30s", 30_000],
    ["5m", 300_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
    ["2d", 172_800_000],
    ["100", 100],
  ])("parses %s", (input, ms) => expect(parseDuration(input)).toBe(ms));

  it("reads bare numbers in the given unit", () => {
    expect(parseDuration("3", "s")).toBe(3000);
    expect(parseDuration(2, "s")).toBe(2000);
  });

  it.each(["", "abc", "5x", "-1s", "1h 30m", "s"])("rejects '%s'", (input) => {
    expect(() => parseDuration(input)).toThrow(/invalid duration/);
  });
});
