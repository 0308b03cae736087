import http2 from "node:http2";
import net from "node:net";
import { afterEach, expect, it } from "vitest";
import { createDualServer } from "./listener.js";

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function listen(silentMs: number): Promise<number> {
  const dual = createDualServer((_req, res) => {
    res.end("ok");
  }, silentMs);
  await new Promise<void>((r) => dual.server.listen(0, "127.0.0.1", r));
  closers.push(() => {
    dual.destroyConnections();
    dual.server.close();
  });
  return (dual.server.address() as net.AddressInfo).port;
}

const closedWithin = (socket: net.Socket, ms: number) =>
  new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });

it("closes a connection that sends nothing, and an HTTP/2 session that asks nothing", async () => {
  const port = await listen(200);
  const silent = net.connect(port, "127.0.0.1");
  expect(await closedWithin(silent, 3000)).toBe(true);
  // Preface and settings, then no request.
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const closed = new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 3000);
    session.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  expect(await closed).toBe(true);
});

it("keeps a session that makes a request, however long it then stays idle", async () => {
  const port = await listen(200);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.destroy());
  const body = await new Promise<string>((resolve, reject) => {
    const req = session.request({ ":path": "/" });
    let text = "";
    req.on("data", (d: Buffer) => {
      text += d.toString();
    });
    req.on("end", () => resolve(text));
    req.on("error", reject);
  });
  expect(body).toBe("ok");
  await new Promise((r) => setTimeout(r, 600));
  expect(session.closed || session.destroyed).toBe(false);
});
