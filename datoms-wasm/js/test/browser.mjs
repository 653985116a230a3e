// The replica scenario in a real headless browser: `node test/browser.mjs EXPORT_DIR
// [CHROMIUM]` serves the export and the package on loopback, opens test/page.html in
// headless chromium (its own temporary profile, no network beyond loopback), waits for
// the page to post its result, prints it as one line of JSON and exits 0 only if the
// scenario passed.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { start } from "./server.mjs";

const TIMEOUT_MS = Number(process.env.DATOMS_BROWSER_TIMEOUT_MS ?? 120000);
const chromium = process.argv[3] ?? process.env.CHROMIUM ?? "chromium";

const server = await start(process.argv[2]);
const profile = await mkdtemp(join(tmpdir(), "datoms-chromium-"));
const browser = spawn(
  chromium,
  [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    `${server.origin}/js/test/page.html`,
  ],
  { stdio: ["ignore", "ignore", "pipe"] },
);
let stderr = "";
browser.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
const exited = new Promise((resolve) => browser.on("exit", (code) => resolve({ exited: code })));

let code = 1;
try {
  const outcome = await Promise.race([
    server.nextResult(),
    exited,
    new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), TIMEOUT_MS)),
  ]);
  if (typeof outcome === "string") {
    const result = JSON.parse(outcome);
    result.blobRequests = server.counts.blobs;
    result.watchStreams = server.counts.watches;
    console.log(JSON.stringify(result));
    code = result.error ? 1 : 0;
  } else {
    console.log(JSON.stringify({ error: `no result from the page (${JSON.stringify(outcome)}); chromium said: ${stderr}` }));
  }
} finally {
  browser.kill("SIGTERM");
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (browser.exitCode === null) browser.kill("SIGKILL");
  await server.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(code);
