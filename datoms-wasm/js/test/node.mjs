// The replica scenario in node: `node test/node.mjs EXPORT_DIR` prints one line of JSON
// (the scenario's result, or {"error": …}) and exits 0 only if the scenario passed.

import * as lib from "../index.js";
import { run } from "./scenario.mjs";
import { start } from "./server.mjs";

const server = await start(process.argv[2]);
let code = 0;
try {
  const result = await run(lib, server.origin);
  result.blobRequests = server.counts.blobs;
  result.watchStreams = server.counts.watches;
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack ?? e) }));
  code = 1;
} finally {
  await server.close();
}
process.exit(code);
