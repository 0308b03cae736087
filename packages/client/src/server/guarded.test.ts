import { expect, it } from "vitest";
import { answerMetrics } from "./guarded.js";

function response() {
  const r = { status: 0, headers: {} as Record<string, string>, body: "" };
  const done = new Promise<typeof r>((resolve) => {
    Object.assign(r, {
      writeHead(status: number, headers: Record<string, string>) {
        r.status = status;
        r.headers = headers;
      },
      end(text: string) {
        r.body = text;
        resolve(r);
      },
    });
  });
  return { res: r as typeof r & Parameters<typeof answerMetrics>[1], done };
}

it("answers GET /metrics with the registry's text, a failing registry with 500, and leaves the rest", async () => {
  const ok = { metrics: async () => "up 1\n", contentType: "text/plain; version=0.0.4" };
  const a = response();
  expect(answerMetrics({ method: "GET", url: "/metrics?x=1" }, a.res, ok)).toBe(true);
  expect(await a.done).toMatchObject({ status: 200, body: "up 1\n" });
  const failing = { metrics: () => Promise.reject(new Error("boom")), contentType: "text/plain" };
  const b = response();
  expect(answerMetrics({ method: "GET", url: "/metrics" }, b.res, failing)).toBe(true);
  expect(await b.done).toMatchObject({ status: 500, body: "cannot collect metrics: boom\n" });
  expect(answerMetrics({ method: "POST", url: "/metrics" }, response().res, ok)).toBe(false);
  expect(answerMetrics({ method: "GET", url: "/metricsx" }, response().res, ok)).toBe(false);
});
