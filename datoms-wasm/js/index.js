// datoms-replica: the JavaScript entry point of datoms-wasm.
//
// `init()` loads the WebAssembly module (once): in a browser or worker it is fetched
// beside this file; in node it is read from disk. `Replica` is the wasm class (see
// README.md); `follow()` keeps a replica on its head by polling, or by the server's
// event stream where the runtime has EventSource.
//
// The writer: `openPeer()` opens datoms' peer (the Rust one, in wasm) on a head of a
// `datoms serve`, its outbox kept by `indexedDbOutbox()` (browsers), `fileOutbox()`
// (node) or `memoryOutbox()`; `keepPushing()` lands its pending transactions as the
// server becomes reachable.

import wasmInit, { initSync, Peer, Replica } from "./pkg/datoms_wasm.js";

export { Peer, Replica };

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

/**
 * An outbox kept in memory: survives nothing but the page or process (tests, or an app
 * that accepts losing unpushed writes).
 */
export function memoryOutbox() {
  let bytes = null;
  return {
    async load() {
      return bytes;
    },
    async save(b) {
      bytes = b.slice();
    },
  };
}

/**
 * An outbox in IndexedDB (database `name`, one record): each save is a read-write
 * transaction with `durability: "strict"`, complete only once the browser has flushed it.
 */
export function indexedDbOutbox(name = "datoms-outbox") {
  let opened = null;
  const open = () =>
    (opened ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore("outbox");
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    }));
  const run = async (mode, work) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction("outbox", mode, { durability: "strict" });
      const request = work(tx.objectStore("outbox"));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  };
  return {
    async load() {
      const bytes = await run("readonly", (store) => store.get("outbox"));
      return bytes ?? null;
    },
    save(bytes) {
      return run("readwrite", (store) => store.put(bytes, "outbox"));
    },
  };
}

/**
 * An outbox in a file (node): each save writes a temporary file, fsyncs it and renames
 * it over the old one, so a crash leaves the old bytes or the new ones, never a mix.
 */
export function fileOutbox(path) {
  return {
    async load() {
      const { readFile } = await import("node:fs/promises");
      try {
        return new Uint8Array(await readFile(path));
      } catch (e) {
        if (e.code === "ENOENT") return null;
        throw e;
      }
    },
    async save(bytes) {
      const { open, rename } = await import("node:fs/promises");
      const tmp = `${path}.tmp`;
      const file = await open(tmp, "w");
      try {
        await file.writeFile(bytes);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(tmp, path);
    },
  };
}

/**
 * Opens the peer on head `head` of the `datoms serve` at `baseUrl`, with the pending
 * transactions `outbox` kept (see `Peer.open`). Saves are queued: each waits for the one
 * before, so the outbox's last bytes are always the newest.
 */
export async function openPeer(baseUrl, head, { token, outbox = memoryOutbox(), fetch, schema } = {}) {
  await init();
  const bytes = await outbox.load();
  let last = Promise.resolve();
  const save = (b) => (last = last.catch(() => {}).then(() => outbox.save(b)));
  return Peer.open(baseUrl, head, token, bytes ?? undefined, save, fetch, schema);
}

/**
 * Pushes `peer`'s pending transactions every `intervalMs` (default 1000) while there are
 * some; failures (an unreachable server) go to `onError` and are tried again at the next
 * tick. Pushes never overlap. Returns `{ stop() }`.
 */
export function keepPushing(peer, { intervalMs = 1000, onError } = {}) {
  let running = false;
  const report = onError ?? ((e) => console.warn("datoms peer push failed:", e));
  const tick = async () => {
    if (running || peer.pending().length === 0) return;
    running = true;
    try {
      await peer.push();
    } catch (e) {
      report(e);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(tick, intervalMs);
  tick();
  return {
    stop() {
      clearInterval(timer);
    },
  };
}
