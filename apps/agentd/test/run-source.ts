// Runs sloth-agentd from source (tsx, "source" export condition), so tests
// need no build.
import { main } from "../src/main.js";

await main(process.argv.slice(2));
