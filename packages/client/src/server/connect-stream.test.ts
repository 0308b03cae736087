import http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { SlothError } from "../errors.js";
import { toConnectError } from "../index.js";
import { answerUnaryError } from "./connect-stream.js";

let server: http2.Http2Server | undefined;
afterEach(async () => {
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

describe("answerUnaryError", () => {
  it("answers with the code's status, the error's JSON, its metadata as headers and a length", async () => {
    server = http2.createServer();
    server.on("stream", (stream) => {
      answerUnaryError(
        stream,
        toConnectError(
          new SlothError("SLOTH_AGENT_NOT_FOUND", "agent 'x' not found", {
            hint: "list them with `sloth-runner agent list`",
          }),
        ),
      );
    });
    await new Promise<void>((r) => server!.listen(0, "127.0.0.1", () => r()));
    const { port } = server.address() as { port: number };
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const { headers, body } = await new Promise<{
        headers: http2.IncomingHttpHeaders;
        body: string;
      }>((resolve, reject) => {
        const req = session.request({ ":method": "POST", ":path": "/x" });
        let head: http2.IncomingHttpHeaders = {};
        let text = "";
        req.once("response", (h) => {
          head = h;
        });
        req.setEncoding("utf8");
        req.on("data", (c: string) => {
          text += c;
        });
        req.once("end", () => resolve({ headers: head, body: text }));
        req.once("error", reject);
        req.end();
      });
      expect(headers[":status"]).toBe(404);
      expect(headers["content-type"]).toBe("application/json");
      expect(Number(headers["content-length"])).toBe(Buffer.byteLength(body));
      expect(headers["sloth-error-code"]).toBe("SLOTH_AGENT_NOT_FOUND");
      expect(JSON.parse(body)).toMatchObject({ code: "not_found", message: "agent 'x' not found" });
    } finally {
      session.close();
    }
  });
});
