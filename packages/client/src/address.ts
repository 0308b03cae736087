import { SlothError } from "./errors.js";

/** A parsed `HOST:PORT` address. */
export interface HostPort {
  /** Host name or IP address, without brackets for IPv6. */
  host: string;
  port: number;
}

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Agent names: host-name characters (they become directory names), at most 253. */
const AGENT_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$/;

/** True when `name` is a valid agent name. */
export function isAgentName(name: string): boolean {
  return AGENT_NAME.test(name) && !name.includes("..");
}

function isIPv6(s: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(s) || !s.includes(":")) return false;
  const doubles = s.split("::").length - 1;
  if (doubles > 1) return false;
  const groups = s.split(":").filter((g) => g !== "");
  return groups.length <= 8 && groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g) || IPV4.test(g));
}

function invalid(input: string, why: string): SlothError {
  return new SlothError("SLOTH_INVALID_ADDRESS", `invalid address '${input}': ${why}`, {
    hint: "use HOST:PORT, such as 192.168.1.29:50053, localhost:50053 or [::1]:50053",
    details: { address: input },
  });
}

/**
 * Parses `HOST:PORT`: a host name, an IPv4 address or a bracketed IPv6
 * address, and a port from 1 to 65535.
 */
export function parseHostPort(input: string): HostPort {
  const s = input.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s))
    throw invalid(input, "a URL, where HOST:PORT is expected (leave out the scheme)");
  let host: string;
  let portText: string;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") throw invalid(input, "expected [IPv6]:PORT");
    host = s.slice(1, end);
    portText = s.slice(end + 2);
    if (!isIPv6(host)) throw invalid(input, `'${host}' is not an IPv6 address`);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) throw invalid(input, "missing ':PORT'");
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(":")) throw invalid(input, "put IPv6 addresses in brackets");
    if (host === "") throw invalid(input, "missing host");
    if (!IPV4.test(host) && (/^[\d.]+$/.test(host) || !HOSTNAME.test(host))) {
      throw invalid(input, `'${host}' is not a valid host name or IPv4 address`);
    }
  }
  if (!/^\d{1,5}$/.test(portText)) throw invalid(input, `port '${portText}' is not a number`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw invalid(input, `port ${port} is outside 1-65535`);
  return { host, port };
}

/** Formats a host and port as `HOST:PORT`, bracketing IPv6 hosts. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** True for addresses that accept connections on every interface. */
export function isWildcardHost(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}

/** True for loopback hosts (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}
