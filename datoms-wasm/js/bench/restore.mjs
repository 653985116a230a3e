// Restore speed of the wasm replica in node: `node js/bench/restore.mjs EXPORT_DIR HEAD RUNS`.
// Every blob of the export is read into memory first and served by a `fetch` given to the
// replica (no HTTP), so the time is the replica's own: requests through the fetch API,
// hashing every blob, decoding, building the trees. Prints one line of JSON: the
// fastest and median full-restore times in ms, nodes and bytes fetched.

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { init, Replica } from "../index.js";

const [dir, head = "main", runsText = "5"] = process.argv.slice(2);
await init();
const blobs = new Map();
for (const name of await readdir(join(dir, "blobs"))) {
  blobs.set(name, await readFile(join(dir, "blobs", name)));
}
const headDocument = await readFile(join(dir, "heads", head));
const base = "mem://db";
const fetchFromMemory = (url) => {
  const path = url.slice(base.length + 1);
  const body = path.startsWith("blobs/") ? blobs.get(path.slice(6)) : path === `heads/${head}` ? headDocument : undefined;
  return Promise.resolve(body ? new Response(body) : new Response(null, { status: 404 }));
};
const times = [];
let stats;
for (let i = 0; i < Number(runsText); i++) {
  const replica = new Replica(base, head, fetchFromMemory);
  const start = performance.now();
  stats = await replica.restore();
  times.push(performance.now() - start);
  replica.free();
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  fastestMs: times[0],
  medianMs: times[Math.floor(times.length / 2)],
  nodesFetched: stats.nodesFetched,
  bytesFetched: stats.bytesFetched,
}));
