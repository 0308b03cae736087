// The two standard gRPC services every production gRPC server is expected to
// offer: health checking (grpc.health.v1) for probes and load balancers, and
// server reflection (grpc.reflection.v1 and v1alpha) so grpcurl and other
// dynamic clients can list, describe and call the services without the
// .proto files.
import {
  create,
  type DescEnum,
  type DescFile,
  type DescMessage,
  type DescService,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { type DescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { grpcHealthV1, grpcReflectionV1, grpcReflectionV1alpha } from "@sloth/proto";

const { Health, HealthCheckResponse_ServingStatus: Status } = grpcHealthV1;

/** A health status as the protocol names it. */
export type ServingStatus = "SERVING" | "NOT_SERVING";

/**
 * The methods of the standard services callable without the cluster token:
 * health checks, which probes make without credentials. Reflection needs
 * the token (grpcurl sends its `-H` headers with reflection requests).
 */
export const STANDARD_PUBLIC_METHODS: readonly string[] = [
  "/grpc.health.v1.Health/Check",
  "/grpc.health.v1.Health/List",
  "/grpc.health.v1.Health/Watch",
];

/** Options of {@link createStandardServices}. */
export interface StandardServicesOptions {
  /** The server's own services: reported by health, described by reflection. */
  services: readonly DescService[];
  /**
   * The server's life: once aborted, every service reports NOT_SERVING and
   * Watch streams end (so a stopping server is not held open by them).
   */
  signal?: AbortSignal;
  /**
   * Health `Watch` streams open at once (default {@link MAX_HEALTH_WATCHES}).
   * Watch needs no token, so this bounds what callers without one can hold
   * open; past it a Watch fails with RESOURCE_EXHAUSTED.
   */
  maxWatches?: number;
}

/** Default bound of concurrent health Watch streams per server. */
export const MAX_HEALTH_WATCHES = 1000;

/** Routes of the standard services and the health status they report. */
export interface StandardServices {
  /** Registers Health and ServerReflection (v1 and v1alpha) on a Connect router. */
  routes(router: ConnectRouter): void;
  /** Sets the status of one service, or of the server as a whole ("", the default). */
  setStatus(status: ServingStatus, service?: string): void;
  /** The status of a service ("" for the server), undefined when unknown. */
  status(service?: string): ServingStatus | undefined;
}

/**
 * Health checking and server reflection for `options.services` (and for
 * themselves). Every service starts SERVING.
 */
export function createStandardServices(options: StandardServicesOptions): StandardServices {
  const all = [
    ...options.services,
    Health,
    grpcReflectionV1.ServerReflection,
    grpcReflectionV1alpha.ServerReflection,
  ];
  const statuses = new Map<string, ServingStatus>([["", "SERVING"]]);
  for (const s of all) statuses.set(s.typeName, "SERVING");
  const watchers = new Set<() => void>();
  const changed = () => {
    for (const w of watchers) w();
  };
  const stopping = () => {
    for (const k of statuses.keys()) statuses.set(k, "NOT_SERVING");
    changed();
  };
  if (options.signal?.aborted) stopping();
  else options.signal?.addEventListener("abort", stopping, { once: true });
  const lookup = (service: string) => {
    const s = statuses.get(service);
    return s === undefined ? undefined : Status[s];
  };
  const reflection = createReflectionIndex(all);
  return {
    routes(router) {
      router.service(Health, {
        check(req) {
          const status = lookup(req.service);
          if (status === undefined)
            throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
          return { status };
        },
        list() {
          const out: Record<string, grpcHealthV1.HealthCheckResponse> = {};
          for (const [name, s] of statuses)
            out[name] = create(grpcHealthV1.HealthCheckResponseSchema, { status: Status[s] });
          return { statuses: out };
        },
        async *watch(req, ctx) {
          if (watchers.size >= (options.maxWatches ?? MAX_HEALTH_WATCHES))
            throw new ConnectError(
              `too many health watches open (${watchers.size}); use Check, or close some watches`,
              Code.ResourceExhausted,
            );
          let wake: (() => void) | undefined;
          let dirty = true;
          const notify = () => {
            dirty = true;
            wake?.();
          };
          const ended = () => wake?.();
          watchers.add(notify);
          ctx.signal.addEventListener("abort", ended, { once: true });
          let last: number | undefined;
          try {
            for (;;) {
              if (dirty) {
                dirty = false;
                const status = lookup(req.service) ?? Status.SERVICE_UNKNOWN;
                if (status !== last) {
                  last = status;
                  yield { status };
                }
              }
              if (ctx.signal.aborted || options.signal?.aborted) return;
              // A change made while the last status was being sent is sent now.
              if (dirty) continue;
              await new Promise<void>((resolve) => {
                wake = resolve;
              });
              wake = undefined;
            }
          } finally {
            watchers.delete(notify);
            ctx.signal.removeEventListener("abort", ended);
          }
        },
      });
      // One implementation for both versions: their messages are the same.
      router.service(grpcReflectionV1.ServerReflection, {
        async *serverReflectionInfo(requests) {
          for await (const req of requests)
            yield reflection.answer(req) as MessageInitShape<
              typeof grpcReflectionV1.ServerReflectionResponseSchema
            >;
        },
      });
      router.service(grpcReflectionV1alpha.ServerReflection, {
        async *serverReflectionInfo(requests) {
          for await (const req of requests)
            yield reflection.answer(req) as MessageInitShape<
              typeof grpcReflectionV1alpha.ServerReflectionResponseSchema
            >;
        },
      });
    },
    setStatus(status, service = "") {
      if (statuses.get(service) === status) return;
      statuses.set(service, status);
      changed();
    },
    status(service = "") {
      return statuses.get(service);
    },
  };
}

type ReflectionRequest =
  | grpcReflectionV1.ServerReflectionRequest
  | grpcReflectionV1alpha.ServerReflectionRequest;

/** Files and symbols of the served services, answering reflection requests. */
function createReflectionIndex(services: readonly DescService[]) {
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  /** Message names: the only symbols `all_extension_numbers_of_type` answers for. */
  const messages = new Set<string>();
  /** An enum and its values, which protobuf scopes beside the enum, not inside it. */
  const addEnum = (e: DescEnum, file: DescFile) => {
    symbols.set(e.typeName, file);
    const scope = e.typeName.slice(0, e.typeName.lastIndexOf(".") + 1);
    for (const v of e.values) symbols.set(`${scope}${v.name}`, file);
  };
  /** A message as the descriptor holds it: map entries are nested messages too. */
  const addProto = (typeName: string, proto: DescriptorProto, file: DescFile) => {
    symbols.set(typeName, file);
    messages.add(typeName);
    for (const f of proto.field) symbols.set(`${typeName}.${f.name}`, file);
    for (const o of proto.oneofDecl) symbols.set(`${typeName}.${o.name}`, file);
    for (const x of proto.extension) symbols.set(`${typeName}.${x.name}`, file);
    for (const n of proto.nestedType) addProto(`${typeName}.${n.name}`, n, file);
  };
  const addMessage = (m: DescMessage, file: DescFile) => {
    addProto(m.typeName, m.proto, file);
    for (const e of m.nestedEnums) addEnum(e, file);
    for (const n of m.nestedMessages) addMessage(n, file);
  };
  const addFile = (file: DescFile) => {
    const name = file.proto.name;
    if (files.has(name)) return;
    files.set(name, file);
    for (const m of file.messages) addMessage(m, file);
    for (const e of file.enums) addEnum(e, file);
    for (const x of file.extensions) symbols.set(x.typeName, file);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
    for (const d of file.dependencies) addFile(d);
  };
  for (const s of services) addFile(s.file);
  const names = [...new Set(services.map((s) => s.typeName))].sort();
  const encoded = new Map<string, Uint8Array>();
  const encode = (f: DescFile) => {
    let b = encoded.get(f.proto.name);
    if (b === undefined) {
      b = toBinary(FileDescriptorProtoSchema, f.proto);
      encoded.set(f.proto.name, b);
    }
    return b;
  };
  /** The file first, then every file it imports, each once. */
  const withImports = (file: DescFile): Uint8Array[] => {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(encode(f));
      for (const d of f.dependencies) visit(d);
    };
    visit(file);
    return out;
  };
  const error = (errorCode: Code, errorMessage: string) =>
    ({ case: "errorResponse", value: { errorCode, errorMessage } }) as const;
  const respond = (
    req: ReflectionRequest["messageRequest"],
  ): MessageInitShape<
    typeof grpcReflectionV1.ServerReflectionResponseSchema
  >["messageResponse"] => {
    switch (req.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: names.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const f = files.get(req.value);
        if (f === undefined)
          return error(Code.NotFound, `unknown file ${JSON.stringify(req.value)}`);
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: withImports(f) },
        };
      }
      case "fileContainingSymbol": {
        const f = symbols.get(req.value.replace(/^\./, ""));
        if (f === undefined)
          return error(Code.NotFound, `unknown symbol ${JSON.stringify(req.value)}`);
        return {
          case: "fileDescriptorResponse",
          value: { fileDescriptorProto: withImports(f) },
        };
      }
      case "fileContainingExtension":
        return error(
          Code.NotFound,
          `no extension ${req.value.extensionNumber} of ${JSON.stringify(req.value.containingType)}`,
        );
      case "allExtensionNumbersOfType":
        if (!messages.has(req.value.replace(/^\./, "")))
          return error(Code.NotFound, `unknown type ${JSON.stringify(req.value)}`);
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: req.value.replace(/^\./, ""), extensionNumber: [] },
        };
      default:
        return error(Code.InvalidArgument, "empty reflection request");
    }
  };
  return {
    answer(req: ReflectionRequest) {
      return {
        validHost: req.host,
        originalRequest: req,
        messageResponse: respond(req.messageRequest),
      };
    },
  };
}
