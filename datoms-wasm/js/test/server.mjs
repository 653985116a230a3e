// A static HTTP server for the replica's tests, on a free loopback port:
//   /db/...   the exported directory (blobs/<address>, heads/<name>, scenario.json), as
//             any static host would serve it (blobs immutable, heads not cached);
//   /js/...   the JavaScript package (index.js, pkg/, test/);
//   GET /db/heads/<head>/watch  server-sent events: one `data:` event each time the head
//             moves (as `datoms serve` announces moves), and a comment on connect;
//   POST /test/advance  moves the scenario's head to its next commit (rewrites heads/<head>)
//             and tells the watchers) — or, when the scenario names an `upstream`
//             `datoms serve` ({url, token}), moves the head there with the head CAS
//             (`PUT /heads/<head>` with `If-Match`), which announces it itself;
//   POST /test/result   receives a page's result (the browser test waits for it);
//   POST /test/stop-server, /test/start-server  call the `control` hooks given to start()
//             (the peer test stops and restarts its `datoms serve` when the page asks).
// A directory without scenario.json (the peer test's) is served as it is.
// It counts the requests for blobs, so a test can check what a replica fetched.

import { createServer } from "node:http";
import { readFile, writeFile, rename } from "node:fs/promises";
import { join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";

const packageDir = fileURLToPath(new URL("..", import.meta.url));

const types = {
  ".js": "text/javascript",
  ".mjs": "text/javascript",
  ".html": "text/html",
  ".wasm": "application/wasm",
  ".json": "application/json",
};

function typeOf(path) {
  const dot = path.lastIndexOf(".");
  return (dot >= 0 && types[path.slice(dot)]) || "application/octet-stream";
}

/** A path under `root` for the URL path `rest`, or null if it escapes. */
function under(root, rest) {
  const path = normalize(join(root, decodeURIComponent(rest)));
  return path.startsWith(root.endsWith(sep) ? root : root + sep) ? path : null;
}

/** Moves head `head` of the `datoms serve` at `upstream.url` to `commit` (read, then CAS). */
async function moveUpstream(upstream, head, commit) {
  const at = `${upstream.url}/heads/${encodeURIComponent(head)}`;
  const auth = { authorization: `Bearer ${upstream.token}` };
  const current = await fetch(at, { headers: auth });
  if (current.status !== 200) throw new Error(`GET ${at}: ${current.status}`);
  const moved = await fetch(at, {
    method: "PUT",
    headers: { ...auth, "content-type": "application/json", "if-match": current.headers.get("etag") },
    body: JSON.stringify({ commit }),
  });
  if (moved.status !== 200) throw new Error(`PUT ${at}: ${moved.status} ${await moved.text()}`);
}

/**
 * Starts the server for directory `dbDir`; resolves to { origin, close, counts, results }.
 * `control` holds the async hooks `stop()` and `start()` behind /test/stop-server and
 * /test/start-server.
 */
export async function start(dbDir, { control } = {}) {
  let scenario = { head: null, steps: [] };
  try {
    scenario = JSON.parse(await readFile(join(dbDir, "scenario.json"), "utf8"));
  } catch (e) {
    if (e.code !== "ENOENT") throw e;
  }
  let position = 0;
  const counts = { blobs: 0, heads: 0, watches: 0 };
  const waiting = [];
  const results = [];
  const watchers = new Set();
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://localhost");
      if (req.method === "POST" && url.pathname === "/test/advance" && scenario.upstream) {
        position = Math.min(position + 1, scenario.steps.length - 1);
        await moveUpstream(scenario.upstream, scenario.head, scenario.steps[position].commit);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ position }));
        return;
      }
      if (req.method === "POST" && url.pathname === "/test/advance") {
        position = Math.min(position + 1, scenario.steps.length - 1);
        const file = join(dbDir, "heads", scenario.head);
        await writeFile(file + ".tmp", JSON.stringify(scenario.steps[position].headDocument));
        await rename(file + ".tmp", file);
        for (const w of watchers) w.write(`data: ${JSON.stringify(scenario.steps[position].headDocument)}\n\n`);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ position }));
        return;
      }
      const hook = { "/test/stop-server": "stop", "/test/start-server": "start" }[url.pathname];
      if (req.method === "POST" && hook && control?.[hook]) {
        await control[hook]();
        res.writeHead(204);
        res.end();
        return;
      }
      if (req.method === "POST" && url.pathname === "/test/result") {
        let body = "";
        for await (const chunk of req) body += chunk;
        results.push(body);
        waiting.splice(0).forEach((w) => w(body));
        res.writeHead(204);
        res.end();
        return;
      }
      if (req.method === "GET" && url.pathname === `/db/heads/${scenario.head}/watch`) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.write(": watching\n\n");
        watchers.add(res);
        counts.watches += 1;
        req.on("close", () => watchers.delete(res));
        return;
      }
      let path = null;
      let headers = {};
      if (url.pathname.startsWith("/db/")) {
        path = under(dbDir, url.pathname.slice(4));
        if (url.pathname.startsWith("/db/blobs/")) {
          counts.blobs += 1;
          headers["cache-control"] = "public, max-age=31536000, immutable";
        } else {
          if (url.pathname.startsWith("/db/heads/")) counts.heads += 1;
          headers["cache-control"] = "no-cache";
        }
      } else if (url.pathname.startsWith("/js/")) {
        path = under(packageDir, url.pathname.slice(4));
        headers["cache-control"] = "no-cache";
      }
      if (!path || req.method !== "GET") {
        res.writeHead(404);
        res.end();
        return;
      }
      let bytes;
      try {
        bytes = await readFile(path);
      } catch {
        res.writeHead(404);
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": typeOf(path), ...headers });
      res.end(bytes);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    counts,
    /** Resolves to the next result a page posts. */
    nextResult() {
      return new Promise((resolve) => waiting.push(resolve));
    },
    close() {
      for (const w of watchers) w.end();
      server.closeAllConnections?.();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
