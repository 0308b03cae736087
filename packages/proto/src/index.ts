/**
 * Generated protobuf messages and Connect service descriptors of the Sloth
 * Runner protocol. Regenerate with `pnpm generate`; never edit `src/gen`.
 *
 * The agent's and the master's `HealthRequest`/`HealthResponse` share a
 * name: the bare names are the agent's; the master's are exported as
 * `MasterHealthRequest` and `MasterHealthResponse`.
 */

// The standard gRPC protocols masters and agents also serve.
export * as grpcHealthV1 from "./gen/grpc/health/v1/health_pb.js";
export * as grpcReflectionV1 from "./gen/grpc/reflection/v1/reflection_pb.js";
export * as grpcReflectionV1alpha from "./gen/grpc/reflection/v1alpha/reflection_pb.js";
export * from "./gen/sloth/agent/v1/agent_pb.js";
export {
  type HealthRequest,
  HealthRequestSchema,
  type HealthResponse,
  HealthResponseSchema,
} from "./gen/sloth/agent/v1/agent_pb.js";
export * from "./gen/sloth/master/v1/master_pb.js";
export {
  type HealthRequest as MasterHealthRequest,
  HealthRequestSchema as MasterHealthRequestSchema,
  type HealthResponse as MasterHealthResponse,
  HealthResponseSchema as MasterHealthResponseSchema,
} from "./gen/sloth/master/v1/master_pb.js";
export {
  type Entry as StateEntryMessage,
  EntrySchema as StateEntryMessageSchema,
  file_sloth_state_v1_state,
  type LockHolder as StateLockHolder,
  LockHolderSchema as StateLockHolderSchema,
  type StateErrorDetail,
  StateErrorDetailSchema,
  StateService,
} from "./gen/sloth/state/v1/state_pb.js";
