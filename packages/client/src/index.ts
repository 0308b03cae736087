/**
 * @sloth/client: the one place for talking to Sloth Runner masters and
 * agents: master resolution, tokens, TLS, HTTP/2 sessions and error mapping,
 * plus the data directory layout shared by the CLI and the daemons.
 */
export {
  formatHostPort,
  type HostPort,
  isAgentName,
  isLoopbackHost,
  isWildcardHost,
  parseHostPort,
} from "./address.js";
export { type AuthInterceptorOptions, bearerInterceptor, createAuthInterceptor } from "./auth.js";
export {
  type ErrorTarget,
  fromConnectError,
  slothCodeOf,
  slothErrorInterceptor,
  toConnectError,
} from "./connect-errors.js";
export { type DataDir, type DataDirSource, ensurePrivateDir, resolveDataDir } from "./data-dir.js";
export { parseDuration } from "./duration.js";
export {
  isSlothError,
  SlothError,
  type SlothErrorCode,
  type SlothErrorOptions,
} from "./errors.js";
export {
  type AgentRunResult,
  LINK_FAILED_EXIT,
  type RunOnAgentsOptions,
  runOnAgent,
  runOnAgents,
  worstCode,
} from "./fan-out.js";
export { type ProcessIdentity, pidAlive, processGone, processIdentity } from "./liveness.js";
export { readMasters } from "./masters/read.js";
export {
  DEFAULT_MASTER_ADDRESS,
  type MasterSource,
  type ResolvedMaster,
  type ResolveMasterOptions,
  resolveMaster,
} from "./masters/resolve.js";
export {
  type AddMasterInput,
  type MasterRecord,
  type MastersStore,
  type MasterTlsPaths,
  openMastersStore,
  type UpdateMasterInput,
  validateMasterName,
} from "./masters/store.js";
export {
  answerUnary,
  answerUnaryError,
  CONNECT_STREAM_PROTO,
  CONNECT_UNARY_PROTO,
  endStreamFrame,
  isPlainConnectCall,
  isPlainConnectUnary,
  messageFrame,
  readConnectRequest,
  readUnaryRequest,
} from "./server/connect-stream.js";
export { specGrpcMessage, withSpecGrpcMessages } from "./server/grpc-message.js";
export {
  answerMetrics,
  closeIfSilent,
  FIRST_REQUEST_TIMEOUT_MS,
  hasBearerToken,
  MAX_STREAMS_PER_SESSION,
  type MetricsSource,
  requestAllowed,
  TRUSTED_READ_MAX_BYTES,
  tokenTieredHandler,
  UNTRUSTED_READ_MAX_BYTES,
} from "./server/guarded.js";
export {
  createStandardServices,
  MAX_HEALTH_WATCHES,
  type ServingStatus,
  STANDARD_PUBLIC_METHODS,
  type StandardServices,
  type StandardServicesOptions,
} from "./server/standard-services.js";
export {
  type ServiceUnitFor,
  serviceArgs,
  serviceUnitFor,
  writeServiceUnit,
} from "./service/install.js";
export {
  claimPidFile,
  type PidFileState,
  processAlive,
  processStartTime,
  readPidFile,
  releasePidFile,
  type StopOutcome,
  stopPidFile,
} from "./service/pid-file.js";
export { renderSystemdUnit, type SystemdUnitOptions } from "./service/systemd.js";
export { type ShellOptions, shellOnAgent, type TerminalSize } from "./shell.js";
export {
  type Durability,
  migrateWithRetry,
  type OpenSqliteOptions,
  openSqlite,
  openSqliteWith,
  sqliteOpenError,
  writeTransaction,
} from "./sqlite.js";
export {
  type CertificatePair,
  type CreateCaOptions,
  createCertificateAuthority,
  type IssueOptions,
  issueCertificate,
  readCertificatePair,
  readPem,
  writeCertificatePair,
} from "./tls/ca.js";
export { loadTls, type TlsPaths } from "./tls/load.js";
export { explainClosedConnection, probeTls } from "./tls/probe.js";
export {
  assertClusterToken,
  ensureTokenFile,
  generateToken,
  MIN_TOKEN_LENGTH,
  type ResolvedToken,
  type ResolveTokenOptions,
  readTokenFile,
  resolveToken,
  secretsEqual,
  type TokenSource,
  tokenFileWarning,
} from "./token.js";
export {
  agentClient,
  type ConnectOptions,
  connect,
  masterClient,
  type SlothConnection,
  type TlsMaterial,
} from "./transport.js";
