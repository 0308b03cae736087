/**
 * Test helpers shared by the packages' tests and the end-to-end suite: real
 * masters and agents on 127.0.0.1 with temp data dirs, the built binaries
 * spawned as a user would, and deadline-based waiting.
 */
export {
  FAST_TIMERS,
  spawnAgent,
  spawnMaster,
  startTestMaster,
  type TestMaster,
  type TestProcess,
  writeToken,
} from "./cluster.js";
export {
  AGENTD_BIN,
  alive,
  CLI_BIN,
  type CliResult,
  cleanup,
  onCleanup,
  REPO_ROOT,
  runCli,
  type Spawned,
  spawnNode,
  tempDir,
  waitFor,
} from "./process.js";
