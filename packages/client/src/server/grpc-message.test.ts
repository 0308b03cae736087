import { describe, expect, it } from "vitest";
import { specGrpcMessage } from "./grpc-message.js";

describe("specGrpcMessage", () => {
  it("leaves printable ASCII as it is and escapes '%' and everything else as UTF-8 bytes", () => {
    const text = "cannot reach agent 'a1' at 127.0.0.1:50051 (see /var/log, 100% sure) — ünïcode\n";
    const out = specGrpcMessage(encodeURIComponent(text));
    expect(out).toBe(
      "cannot reach agent 'a1' at 127.0.0.1:50051 (see /var/log, 100%25 sure) %E2%80%94 %C3%BCn%C3%AFcode%0A",
    );
    // What grpc-js (decodeURI) and Connect (decodeURIComponent) read back.
    expect(decodeURI(out)).toBe(text);
    expect(decodeURIComponent(out)).toBe(text);
  });

  it("leaves a value that is not valid percent-encoding untouched", () => {
    expect(specGrpcMessage("50%-off")).toBe("50%-off");
  });
});
