#!/usr/bin/env node
// The Datascript (JS) side of Datascript's own benchmark suite (bench/src/dsbench/).
//
// Reads one JSON object on stdin, every data string EDN text the Rust side generated:
//   {timing: {warmup_ms, bench_ms, samples, batch},
//    schema,
//    dbs: {NAME: tx},                       dbs built (untimed) from an empty db
//    benches: [{name, kind, ...}]}
// kinds (what is timed, as Datascript's bench/datascript/bench/datascript.cljc does it):
//   tx:     {db?, txs: [tx]}          reduce db-with over txs, from db (or the empty db)
//   init:   {datoms}                  init-db of the datoms ([[e a v] ...])
//   datoms: {db, ids: [from, to], attr}  (:v (first (datoms db :eavt id attr))) per id
//   q:      {db, query, inputs: [edn]}   q with the db and the inputs (`%` rules: EDN)
//   pull:   {db, pattern, eid}
// and prints one JSON object: {datascript, node, results: [{name, ms, samples, answer}]},
// `answer` the benchmark's result printed with pr-str (for tx and init: the datoms of
// the db made, as a set of [e a v]; for datoms: the vector of values).
//
// Timing is Datascript's (bench/datascript/bench/bench.cljc): run the body in batches of
// `batch` until `warmup_ms` passed, then `samples` times until `bench_ms` passed, each
// sample the mean ms per run; the median sample is reported.
"use strict";

const fs = require("fs");
const { loadDatascript, EXPECTED_VERSION } = require("./datascript-raw");

const d = loadDatascript();
const read = (text) => d.read_string(text);
const show = (value) => (value === null || value === undefined ? "nil" : String(value));
const now = () => {
  const t = process.hrtime();
  return t[0] * 1000 + t[1] / 1e6;
};

function dotime(durationMs, batch, f) {
  const start = now();
  const end = start + durationMs;
  let iterations = 0;
  for (;;) {
    for (let i = 0; i < batch; i++) f();
    iterations += batch;
    const t = now();
    if (t >= end) return (t - start) / iterations;
  }
}

function bench(timing, f) {
  dotime(timing.warmup_ms, timing.batch, f);
  const samples = [];
  for (let i = 0; i < timing.samples; i++) samples.push(dotime(timing.bench_ms, timing.batch, f));
  const sorted = [...samples].sort((a, b) => a - b);
  return { ms: sorted[Math.floor(sorted.length / 2)], samples };
}

const ALL_DATOMS = read("[:find ?e ?a ?v :where [?e ?a ?v]]");

function prepare(b, dbs, schema, empty) {
  const dbOf = (name) => {
    if (name === undefined || name === null) return empty;
    const db = dbs[name];
    if (!db) throw new Error(`dsbench.js: no db ${name}`);
    return db;
  };
  switch (b.kind) {
    case "tx": {
      const base = dbOf(b.db);
      const txs = b.txs.map(read);
      const run = () => {
        let db = base;
        for (const tx of txs) db = d.db_with_raw(db, tx);
        return db;
      };
      return { run, answer: (db) => show(d.q_raw(ALL_DATOMS, db)) };
    }
    case "init": {
      const datoms = JSON.parse(b.datoms_json).map(([e, a, v]) =>
        d.datom_raw([e, read(a), read(v)]));
      const run = () => d.init_db_raw(datoms, schema);
      return { run, answer: (db) => show(d.q_raw(ALL_DATOMS, db)) };
    }
    case "datoms": {
      const db = dbOf(b.db);
      const eavt = read(":eavt");
      const attr = read(b.attr);
      const [from, to] = b.ids;
      const comps = [];
      for (let id = from; id < to; id++) comps.push(read(`[${id} ${b.attr}]`));
      const run = () => {
        const out = [];
        for (const c of comps) {
          const found = d.datoms_raw(db, eavt, c);
          out.push(found.length > 0 ? found[0].v : null);
        }
        return out;
      };
      return {
        run,
        answer: (vs) => `[${vs.map((v) => (typeof v === "string" ? JSON.stringify(v) : show(v))).join(" ")}]`,
      };
    }
    case "q": {
      const db = dbOf(b.db);
      const query = read(b.query);
      const inputs = b.inputs.map(read);
      const run = () => d.q_raw(query, db, ...inputs);
      return { run, answer: show };
    }
    case "pull": {
      const db = dbOf(b.db);
      const pattern = read(b.pattern);
      const run = () => d.pull_raw(db, pattern, b.eid);
      return { run, answer: show };
    }
    default:
      throw new Error(`dsbench.js: unknown kind ${b.kind}`);
  }
}

function main() {
  const input = JSON.parse(fs.readFileSync(0, "utf8"));
  const schema = read(input.schema);
  const empty = d.empty_db(schema);
  const dbs = {};
  for (const [name, tx] of Object.entries(input.dbs)) dbs[name] = d.db_with_raw(empty, read(tx));
  const results = [];
  for (const b of input.benches) {
    const p = prepare(b, dbs, schema, empty);
    const answer = p.answer(p.run());
    const t = bench(input.timing, p.run);
    results.push({ name: b.name, ms: t.ms, samples: t.samples, answer });
  }
  process.stdout.write(
    JSON.stringify({ datascript: EXPECTED_VERSION, node: process.version, results }) + "\n");
}

try {
  main();
} catch (e) {
  process.stderr.write(`dsbench.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
}
