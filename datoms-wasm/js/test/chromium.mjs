// Headless chromium for the package's browser tests: its own temporary profile, no
// network beyond loopback, no sandbox (containers), no GPU. `launch(url)` opens the page;
// `close()` ends the browser (SIGTERM, then SIGKILL) and removes the profile.

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Starts `chromium` (a command) on `url`; resolves to { exited, stderr(), close() }. */
export async function launch(chromium, url) {
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
      url,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  browser.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((resolve) => browser.on("exit", (code) => resolve({ exited: code })));
  return {
    exited,
    stderr: () => stderr,
    async close() {
      browser.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (browser.exitCode === null && browser.signalCode === null) browser.kill("SIGKILL");
      await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}
