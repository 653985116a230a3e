// The peer scenario (peer-scenario.mjs) against a real `datoms serve` that this script
// starts, stops and restarts when the scenario asks: `node test/peer.mjs DIR MODE
// [CHROMIUM]`. DIR holds peer.json, written by the Rust test: {bin, db, tokenFile, head,
// token, schema, run}. MODE `browser` runs peer-page.html in headless chromium (the
// outbox in IndexedDB, a real page reload between the phases); `node` runs the phases in
// this process (the outbox in a file of DIR, a new peer between them). The server
// listens on a free loopback port, the same one after each restart, and is killed at the
// end. Prints one line of JSON (the scenario's result, or {"error": …}); exits 0 only if
// it passed.

import * as lib from "../index.js";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { launch } from "./chromium.mjs";
import { phaseA, phaseB } from "./peer-scenario.mjs";
import { start } from "./server.mjs";

const TIMEOUT_MS = Number(process.env.DATOMS_BROWSER_TIMEOUT_MS ?? 120000);
const [dir, mode, chromium = process.env.CHROMIUM ?? "chromium"] = process.argv.slice(2);
const config = JSON.parse(await readFile(join(dir, "peer.json"), "utf8"));

/** The `datoms serve` of the test: started on `listen`, stopped by SIGKILL. */
let serve = null;
async function startServe(listen) {
  const child = spawn(
    config.bin,
    ["serve", "--db", config.db, "--listen", listen, "--token-file", config.tokenFile, "--public-reads", "--stop-on-stdin-close"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const line = await Promise.race([
    new Promise((resolve) => createInterface({ input: child.stdout }).once("line", resolve)),
    exited.then(() => null),
  ]);
  if (!line?.startsWith("listening on ")) throw new Error(`datoms serve did not start: ${line} ${stderr}`);
  serve = { child, exited };
  return line.slice("listening on ".length).trim();
}
async function stopServe() {
  if (!serve) return;
  serve.child.kill("SIGKILL");
  await serve.exited;
  serve = null;
}

const base = await startServe("127.0.0.1:0");
const listen = new URL(base).host;
config.base = base;
await writeFile(join(dir, "peer.json"), JSON.stringify(config));
const control = {
  stop: stopServe,
  start: async () => {
    await startServe(listen);
  },
};

let code = 1;
let server = null;
let browser = null;
try {
  let result;
  if (mode === "browser") {
    server = await start(dir, { control });
    browser = await launch(chromium, `${server.origin}/js/test/peer-page.html`);
    const outcome = await Promise.race([
      server.nextResult(),
      browser.exited,
      new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), TIMEOUT_MS)),
    ]);
    result = typeof outcome === "string" ? JSON.parse(outcome) : { error: `no result from the page (${JSON.stringify(outcome)}); chromium said: ${browser.stderr()}` };
  } else {
    const outbox = lib.fileOutbox(join(dir, "outbox.bin"));
    const ask = (what) => control[what === "stop-server" ? "stop" : "start"]();
    const before = await phaseA(lib, config, outbox, ask);
    // "Reload": nothing of phase A's peer is used again but its outbox file.
    result = await phaseB(lib, config, outbox, ask, before);
    result.phaseA = before;
  }
  console.log(JSON.stringify(result));
  code = result.error ? 1 : 0;
} catch (e) {
  console.log(JSON.stringify({ error: String(e?.stack ?? e) }));
} finally {
  if (browser) await browser.close();
  if (server) await server.close();
  await stopServe();
}
process.exit(code);
