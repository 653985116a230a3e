export { Peer, Replica } from "./pkg/datoms_wasm.js";
import type { Peer, Replica } from "./pkg/datoms_wasm.js";

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

/** Where a peer keeps its outbox's bytes. */
export interface OutboxStore {
  load(): Promise<Uint8Array | null>;
  save(bytes: Uint8Array): Promise<void>;
}

/** An outbox in memory (lost with the page or process). */
export function memoryOutbox(): OutboxStore;

/** An outbox in IndexedDB database `name` (browsers). */
export function indexedDbOutbox(name?: string): OutboxStore;

/** An outbox in a file (node): temporary file, fsync, rename. */
export function fileOutbox(path: string): OutboxStore;

/** Options of `openPeer`. */
export interface PeerOptions {
  /** The server's bearer token (writes need it). */
  token?: string;
  /** Where the outbox is kept (default: memory). */
  outbox?: OutboxStore;
  /** The schema (EDN) of a head that does not exist yet. */
  schema?: string;
  /** Replaces the global fetch. */
  fetch?: (url: string, init?: RequestInit) => Promise<Response>;
}

/** Opens the peer on head `head` of the `datoms serve` at `baseUrl`. */
export function openPeer(baseUrl: string, head: string, options?: PeerOptions): Promise<Peer>;

/** Pushes `peer`'s pending transactions on a timer until `stop()`. */
export function keepPushing(
  peer: Peer,
  options?: { intervalMs?: number; onError?: (error: unknown) => void },
): { stop(): void };
