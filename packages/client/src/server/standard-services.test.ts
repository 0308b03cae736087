import { create } from "@bufbuild/protobuf";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { grpcHealthV1, grpcReflectionV1 } from "@sloth/proto";
import { describe, expect, it } from "vitest";
import { createStandardServices } from "./standard-services.js";

type Impl = Record<string, (...args: unknown[]) => unknown>;

/** The handlers createStandardServices registers, by service name. */
function handlers(services: ReturnType<typeof createStandardServices>): Map<string, Impl> {
  const out = new Map<string, Impl>();
  const router = {
    service(desc: { typeName: string }, impl: Impl) {
      out.set(desc.typeName, impl);
      return router;
    },
  } as unknown as ConnectRouter;
  services.routes(router);
  return out;
}

const ctx = () => ({ signal: new AbortController().signal });

describe("health", () => {
  it("sends a change made while the last status was being sent", async () => {
    const s = createStandardServices({ services: [] });
    const watch = handlers(s).get("grpc.health.v1.Health")?.watch as (
      req: object,
      c: object,
    ) => AsyncGenerator<{ status: number }>;
    const it = watch({ service: "" }, ctx());
    expect((await it.next()).value?.status).toBe(
      grpcHealthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
    // The generator is paused at its yield: the change must not be lost.
    s.setStatus("NOT_SERVING");
    const next = await Promise.race([
      it.next(),
      new Promise((r) => setTimeout(() => r("timeout"), 1000)),
    ]);
    expect((next as IteratorResult<{ status: number }>).value?.status).toBe(
      grpcHealthV1.HealthCheckResponse_ServingStatus.NOT_SERVING,
    );
    await it.return(undefined);
  });

  it("bounds the Watch streams open at once (they need no token)", async () => {
    const s = createStandardServices({ services: [], maxWatches: 3 });
    const watch = handlers(s).get("grpc.health.v1.Health")?.watch as (
      req: object,
      c: object,
    ) => AsyncGenerator<{ status: number }>;
    const open = [0, 1, 2].map(() => watch({ service: "" }, ctx()));
    for (const w of open) await w.next();
    const extra = watch({ service: "" }, ctx());
    await expect(extra.next()).rejects.toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "too many health watches open (3); use Check, or close some watches",
    });
    // A closed watch makes room.
    await open[0]?.return(undefined);
    const again = watch({ service: "" }, ctx());
    expect((await again.next()).value?.status).toBe(
      grpcHealthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
    for (const w of [...open.slice(1), again]) await w.return(undefined);
  });

  it("reports NOT_SERVING from the start for a signal already aborted", () => {
    const s = createStandardServices({ services: [], signal: AbortSignal.abort() });
    expect(s.status()).toBe("NOT_SERVING");
    expect(s.status("grpc.health.v1.Health")).toBe("NOT_SERVING");
  });
});

describe("reflection", () => {
  async function ask(requests: object[]) {
    const s = createStandardServices({ services: [grpcHealthV1.Health] });
    const info = handlers(s).get("grpc.reflection.v1.ServerReflection")?.serverReflectionInfo as (
      reqs: AsyncIterable<unknown>,
    ) => AsyncIterable<{ messageResponse: { case?: string; value?: { errorCode?: number } } }>;
    const reqs = (async function* () {
      for (const r of requests) yield create(grpcReflectionV1.ServerReflectionRequestSchema, r);
    })();
    const out: { case?: string; value?: { errorCode?: number } }[] = [];
    for await (const r of info(reqs)) out.push(r.messageResponse);
    return out;
  }

  it("finds enum values, map entries and their fields, as a field's type name points at them", async () => {
    const symbol = (v: string) => ({ messageRequest: { case: "fileContainingSymbol", value: v } });
    const out = await ask([
      symbol("grpc.health.v1.HealthCheckResponse.SERVING"),
      symbol("grpc.health.v1.HealthCheckResponse.ServingStatus"),
      symbol("grpc.health.v1.HealthListResponse.StatusesEntry"),
      symbol(".grpc.health.v1.HealthListResponse.StatusesEntry"),
      symbol("grpc.health.v1.HealthListResponse.StatusesEntry.value"),
      symbol("grpc.health.v1.Health.Watch"),
      symbol("grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING"),
    ]);
    expect(out.map((r) => r.case)).toEqual([
      "fileDescriptorResponse",
      "fileDescriptorResponse",
      "fileDescriptorResponse",
      "fileDescriptorResponse",
      "fileDescriptorResponse",
      "fileDescriptorResponse",
      "errorResponse",
    ]);
  });

  it("answers extension numbers for messages only", async () => {
    const ext = (v: string) => ({
      messageRequest: { case: "allExtensionNumbersOfType", value: v },
    });
    const out = await ask([
      ext("grpc.health.v1.HealthCheckRequest"),
      ext("grpc.health.v1.Health.Check"),
      ext("grpc.health.v1.Health"),
    ]);
    expect(out.map((r) => r.case)).toEqual([
      "allExtensionNumbersResponse",
      "errorResponse",
      "errorResponse",
    ]);
    expect(out[1]?.value?.errorCode).toBe(5);
  });
});
