// The replica scenario in a real headless browser: `node test/browser.mjs EXPORT_DIR
// [CHROMIUM]` serves the export and the package on loopback, opens test/page.html in
// headless chromium (its own temporary profile, no network beyond loopback), waits for
// the page to post its result, prints it as one line of JSON and exits 0 only if the
// scenario passed.

import { launch } from "./chromium.mjs";
import { start } from "./server.mjs";

const TIMEOUT_MS = Number(process.env.DATOMS_BROWSER_TIMEOUT_MS ?? 120000);
const chromium = process.argv[3] ?? process.env.CHROMIUM ?? "chromium";

const server = await start(process.argv[2]);
const browser = await launch(chromium, `${server.origin}/js/test/page.html`);

let code = 1;
try {
  const outcome = await Promise.race([
    server.nextResult(),
    browser.exited,
    new Promise((resolve) => setTimeout(() => resolve({ timeout: true }), TIMEOUT_MS)),
  ]);
  if (typeof outcome === "string") {
    const result = JSON.parse(outcome);
    result.blobRequests = server.counts.blobs;
    result.watchStreams = server.counts.watches;
    console.log(JSON.stringify(result));
    code = result.error ? 1 : 0;
  } else {
    console.log(JSON.stringify({ error: `no result from the page (${JSON.stringify(outcome)}); chromium said: ${browser.stderr()}` }));
  }
} finally {
  await browser.close();
  await server.close();
}
process.exit(code);
