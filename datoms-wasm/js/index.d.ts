export { Replica } from "./pkg/datoms_wasm.js";
import type { Replica } from "./pkg/datoms_wasm.js";

/** Loads the wasm module; in node it is read from disk beside this file. */
export function init(input?: string | URL | Response | BufferSource | WebAssembly.Module): Promise<void>;

/** Options of `follow`. */
export interface FollowOptions {
  /** How often to read the head, in milliseconds (default 1000). */
  intervalMs?: number;
  /** Listen to `{baseUrl}/heads/{head}/watch` (server-sent events) where EventSource exists. */
  watch?: boolean;
  /** Polling interval while watching, as a fallback (default 30000). */
  watchFallbackMs?: number;
  /** Called with a failed refresh's error (default: console.error). */
  onError?: (error: unknown) => void;
}

/** Keeps `replica` on its head until `stop()`. */
export function follow(
  replica: Replica,
  options?: FollowOptions,
): { stop(): void; watching: Promise<boolean> };
