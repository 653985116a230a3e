// datoms-replica: the JavaScript entry point of datoms-wasm.
//
// `init()` loads the WebAssembly module (once): in a browser or worker it is fetched
// beside this file; in node it is read from disk. `Replica` is the wasm class (see
// README.md); `follow()` keeps a replica on its head by polling, or by the server's
// event stream where the runtime has EventSource.

import wasmInit, { initSync, Replica } from "./pkg/datoms_wasm.js";

export { Replica };

let loading = null;

/** Loads the wasm module; `input` (optional) is a URL, Response, bytes or WebAssembly.Module. */
export function init(input) {
  if (!loading) {
    loading = (async () => {
      if (input === undefined && typeof process !== "undefined" && process.versions?.node) {
        const { readFile } = await import("node:fs/promises");
        const bytes = await readFile(new URL("./pkg/datoms_wasm_bg.wasm", import.meta.url));
        initSync({ module: bytes });
        return;
      }
      await wasmInit(input === undefined ? undefined : { module_or_path: input });
    })();
  }
  return loading;
}

/**
 * Follows the replica's head: refreshes it every `intervalMs` (default 1000), and at once
 * whenever the server's event stream `{baseUrl}/heads/{head}/watch` announces a move (when
 * `watch` is true and the runtime has EventSource; polling continues as a fallback, every
 * `watchFallbackMs`). Refreshes never overlap: a change seen during one runs one more.
 * Listeners registered with `replica.onCommit` see each new commit.
 * Returns `{ stop(), watching }`: `watching` resolves to true once the event stream is
 * open, to false when following by polling only.
 */
export function follow(replica, { intervalMs = 1000, watch = false, watchFallbackMs = 30000, onError } = {}) {
  let stopped = false;
  let running = false;
  let again = false;
  let source = null;
  const report = onError ?? ((e) => console.error("datoms replica refresh failed:", e));
  const tick = async () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await replica.refresh();
      } while (again && !stopped);
    } catch (e) {
      report(e);
    } finally {
      running = false;
    }
  };
  let every = intervalMs;
  let watching = Promise.resolve(false);
  if (watch && typeof EventSource !== "undefined") {
    source = new EventSource(`${replica.baseUrl}/heads/${encodeURIComponent(replica.head)}/watch`);
    source.onmessage = tick;
    source.addEventListener("head", tick);
    // After a reconnection the stream may have missed moves: read the head.
    watching = new Promise((resolve) => {
      source.onopen = () => {
        resolve(true);
        tick();
      };
    });
    every = watchFallbackMs;
  }
  const timer = setInterval(tick, every);
  tick();
  return {
    watching,
    stop() {
      stopped = true;
      clearInterval(timer);
      if (source) source.close();
    },
  };
}
